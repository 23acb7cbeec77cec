"""Downloads are bounded in time (a deadline per file, not only per socket read) and in size
(never more bytes than the file's known size, cut off while streaming), and orphaned `.part`
files are cleaned up; all against a local HTTP server on 127.0.0.1."""
import hashlib
import http.server
import os
import subprocess
import sys
import threading
import time

import pytest

import pynn
from pynn.datasets import ChecksumError, DownloadError
from pynn.datasets import download as dl
from pynn.datasets.mnist import fashion_mnist, mnist

PAYLOAD = bytes(range(256)) * 40        # 10240 bytes


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"       # the body ends when the connection closes

    def log_message(self, *args):
        pass

    def do_GET(self):
        server = self.server
        server.requests.append(self.path)
        try:
            if self.path.startswith("/ok/"):
                self._headers(len(PAYLOAD))
                self.wfile.write(PAYLOAD)
            elif self.path.startswith("/trickle/"):     # one byte at a time, forever
                self._headers(None)
                while not server.stop.is_set():
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.01)
            elif self.path.startswith("/endless/"):     # as fast as it goes, forever
                self._headers(None)
                chunk = b"\0" * 65536
                while not server.stop.is_set():
                    self.wfile.write(chunk)
                    server.sent += len(chunk)
            elif self.path.startswith("/liar/"):        # announces a huge file
                self._headers(10**12)
                self.wfile.write(PAYLOAD)
            else:
                self.send_error(404)
        except (BrokenPipeError, ConnectionResetError):
            pass                                         # the client hung up: as it should

    def _headers(self, length):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.requests, httpd.sent, httpd.stop = [], 0, threading.Event()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.stop.set()
    httpd.shutdown()
    httpd.server_close()


def _bounded(fn, seconds=120):
    """Run fn() in a thread that must return: a download that never ends fails the test."""
    box = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as e:      # handed back to the test
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "the download did not stop"
    return box


def test_a_good_file_downloads(server, tmp_path):
    dest = tmp_path / "f.bin"
    dl.download(server.url + "/ok/f.bin", dest, sha256=hashlib.sha256(PAYLOAD).hexdigest(),
                size=len(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_a_trickling_server_hits_the_per_file_deadline(server, tmp_path):
    """One byte every 10 ms never trips a socket timeout; the deadline for the file stops it."""
    dest = tmp_path / "f.bin"
    box = _bounded(lambda: dl.download(server.url + "/trickle/f.bin", dest, size=10**6,
                                       progress=False, timeout=5.0, deadline=1.0))
    assert isinstance(box.get("error"), DownloadError), box
    assert "deadline" in str(box["error"])
    assert os.listdir(tmp_path) == []               # no final file, no .part left


def test_more_bytes_than_the_known_size_are_cut_off_while_streaming(server, tmp_path):
    dest = tmp_path / "f.bin"
    box = _bounded(lambda: dl.download(server.url + "/endless/f.bin", dest, size=28881,
                                       progress=False, deadline=60.0))
    assert isinstance(box.get("error"), ChecksumError), box
    assert "more than the 28881 bytes expected" in str(box["error"])
    assert os.listdir(tmp_path) == []
    # the client stopped at once: the server got no further than its socket buffers allow
    server.stop.set()
    assert server.sent < 64 * 2**20


def test_an_announced_size_above_the_known_size_is_refused_before_reading(server, tmp_path):
    box = _bounded(lambda: dl.download(server.url + "/liar/f.bin", tmp_path / "f.bin",
                                       size=len(PAYLOAD), progress=False))
    assert isinstance(box.get("error"), ChecksumError), box
    assert "announces 1000000000000 bytes" in str(box["error"])


def test_the_next_mirror_is_tried_after_a_deadline(server, tmp_path):
    dest = tmp_path / "f.bin"
    dl.download([server.url + "/trickle/f.bin", server.url + "/ok/f.bin"], dest,
                size=len(PAYLOAD), progress=False, deadline=0.5)
    assert dest.read_bytes() == PAYLOAD


@pytest.mark.parametrize("load", [mnist, fashion_mnist])
def test_mnist_takes_timeout_and_deadline(server, tmp_path, load):
    box = _bounded(lambda: load(data_dir=tmp_path, mirrors=[server.url + "/trickle/"],
                                progress=False, timeout=2.0, deadline=0.5))
    assert isinstance(box.get("error"), DownloadError), box
    assert "deadline" in str(box["error"])


def test_orphaned_part_files_are_removed_by_the_next_download(server, tmp_path):
    host = pynn.fileutil._host()
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    dead = tmp_path / f".g.bin.{host}-{proc.pid}-0a0b0c0d.part"
    old = tmp_path / ".f.bin.x7y8z9ab.part"             # mkstemp's name, from an older pynn
    recent = tmp_path / ".h.bin.w1v2u3t4.part"          # maybe another process's: kept
    for p in (dead, old, recent):
        p.write_bytes(b"partial")
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago))
    dl.download(server.url + "/ok/f.bin", tmp_path / "f.bin", size=len(PAYLOAD),
                progress=False)
    assert sorted(os.listdir(tmp_path)) == sorted(["f.bin", recent.name])


def test_a_downloaded_file_gets_the_umask_mode(server, tmp_path):
    old = os.umask(0o027)
    try:
        dl.download(server.url + "/ok/f.bin", tmp_path / "f.bin", progress=False)
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "f.bin").st_mode & 0o777 == 0o640
