"""load_model on files that may be hostile, and how saving treats the file system: every
refusal a clear `load_model:` ValueError, nothing allocated beyond what the file implies, no
read that blocks or never ends; saved files with normal permissions, through symlinks, and
orphaned temporary files cleaned up."""
import hashlib
import io
import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
import zipfile

import numpy as np
import pytest

import pynn
from pynn import Input, Model, load_model, serialization
from pynn.layers import Conv2d, Dense, Flatten, MaxPool2d


def _dense_model():
    pynn.manual_seed(0)
    x_in = Input((4,))
    return Model(x_in, Dense(4, 2, name="dense_1")(x_in))


def _write(path, config, weights):
    """A file in pynn's format (valid checksums) holding any architecture and arrays."""
    text = config if isinstance(config, str) else json.dumps(config)
    serialization.save_arrays(path, weights, kind="model", architecture=text)
    return path


def _config_and_weights():
    model = _dense_model()
    return model.get_config(), dict(model.state_dict())


def _refused(path, match):
    with pytest.raises(ValueError, match=match) as info:
        load_model(path)
    assert str(info.value).startswith("load_model:"), str(info.value)
    return str(info.value)


def test_a_valid_file_loads_without_drawing_random_weights(tmp_path):
    model = _dense_model()
    model.save(tmp_path / "m.npz")
    pynn.manual_seed(7)
    loaded = load_model(tmp_path / "m.npz")
    after_load = pynn.random.rng().random()
    pynn.manual_seed(7)
    assert pynn.random.rng().random() == after_load     # load_model drew no random numbers
    x = np.random.default_rng(0).random((3, 4), dtype=np.float32)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_a_huge_claimed_layer_is_refused_before_allocating(tmp_path):
    config, weights = _config_and_weights()
    config["layers"][0]["config"].update(in_features=10**6, out_features=10**6)
    config["inputs"][0]["shape"] = [10**6]
    _write(tmp_path / "huge.npz", config, weights)
    _refused(tmp_path / "huge.npz", r"claims layers of about 1,000,000,000,000 elements")


@pytest.mark.parametrize("weight, found", [
    (np.zeros((3, 4), np.float32), r"shape \(3, 4\) and dtype float32"),
    (np.zeros((2, 4), np.int64), r"shape \(2, 4\) and dtype int64"),
    (np.array([["a"] * 4] * 2), r"shape \(2, 4\) and dtype <U1"),
    (np.zeros((2, 4), np.float16), r"shape \(2, 4\) and dtype float16"),
])
def test_weights_that_contradict_the_architecture_are_refused(tmp_path, weight, found):
    config, weights = _config_and_weights()
    weights["dense_1.weight"] = weight
    _write(tmp_path / "bad.npz", config, weights)
    _refused(tmp_path / "bad.npz", r"layer 'dense_1' \(Dense\(4->2\)\): weight has " + found
             + r" in the file, but the architecture implies shape \(2, 4\) and float32 or float64")


def test_load_weights_refuses_non_number_arrays(tmp_path):
    model = _dense_model()
    state = dict(model.state_dict())
    state["dense_1.weight"] = np.array([["a"] * 4] * 2)
    serialization.save_arrays(tmp_path / "w.npz", state, kind="weights")
    with pytest.raises(ValueError, match=r"load_state_dict: dense_1.weight holds <U1 values"):
        model.load_weights(tmp_path / "w.npz")


def test_a_missing_weight_is_refused_naming_it(tmp_path):
    config, weights = _config_and_weights()
    del weights["dense_1.bias"]
    _write(tmp_path / "bad.npz", config, weights)
    _refused(tmp_path / "bad.npz", r"layer 'dense_1' .* has bias of shape \(2,\), which the "
                                   r"file does not hold")


def test_keras_style_layers_are_checked_too(tmp_path):
    """Dense(units) gets its input size at its first call: load_model builds it there, with
    placeholders, and checks the file's weight before using it."""
    pynn.manual_seed(0)
    x_in = Input((5,))
    model = Model(x_in, Dense(3, name="d")(x_in))
    config, weights = model.get_config(), dict(model.state_dict())
    config["layers"][0]["config"]["in_features"] = None
    _write(tmp_path / "ok.npz", config, weights)
    np.testing.assert_array_equal(load_model(tmp_path / "ok.npz").get_layer("d").weight.data,
                                  model.get_layer("d").weight.data)
    weights["d.weight"] = np.zeros((3, 4), np.float32)
    _write(tmp_path / "bad.npz", config, weights)
    _refused(tmp_path / "bad.npz", r"layer 'd' \(Dense\(5->3\)\): weight has shape \(3, 4\)")


def _edit(change):
    config, weights = _config_and_weights()
    change(config)
    return config, weights


@pytest.mark.parametrize("change, match", [
    (lambda c: c["layers"][0].update({"class": "Evil"}), "unknown layer class 'Evil'"),
    (lambda c: c["nodes"][0].update(layer=5), r"node #0 calls layer #5; there are 1"),
    (lambda c: c["nodes"][0].update(inputs=[{"input": 3}]), r"reads input #3; there are 1"),
    (lambda c: c["outputs"].__setitem__(0, {"node": 9}), r"reads node #9, which is not an "
                                                         r"earlier node"),
    (lambda c: c["nodes"][0].update(inputs=[{"node": 0}]), "not an earlier node"),
    (lambda c: c["nodes"][0].update(inputs=[{"param": "nope"}]), "unknown parameter 'nope'"),
    (lambda c: c["nodes"][0].update(inputs=[{}]), "a reference to nothing"),
    (lambda c: c["nodes"].append({"op": "os.system", "attrs": {}, "inputs": []}),
     "unknown op 'os.system'"),
    (lambda c: c.pop("layers"), "has no 'layers'"),
    (lambda c: c.update(layers="Dense"), "'layers' must be a list"),
    (lambda c: c["inputs"][0].update(shape=[10**5, 10**5]), "elements per sample"),
    (lambda c: c["inputs"][0].update(shape=[-3]), "has a size -3"),
    (lambda c: c["inputs"][0].update(dtype="O"), "not a number type"),
    (lambda c: c["inputs"][0].update(dtype="not a dtype"), "is not a dtype"),
    (lambda c: c["layers"][0]["config"].update(in_features=2**40), "holds the integer"),
    (lambda c: c["layers"][0]["config"].update(in_features="4"),
     r"layer 'dense_1' \(Dense\) cannot be made from its saved settings"),
    (lambda c: c["layers"][0]["config"].update(bias=json.loads("[" * 20 + "1" + "]" * 20)),
     "nested more than 16 deep"),
])
def test_malformed_architectures_are_refused_clearly(tmp_path, change, match):
    config, weights = _edit(change)
    _write(tmp_path / "bad.npz", config, weights)
    _refused(tmp_path / "bad.npz", match)


@pytest.mark.parametrize("setting, value", [
    ("kernel_size", [0, 3]), ("stride", [1, -1]), ("padding", [-1, 0]),
    ("padding", [10**6, 1]), ("kernel_size", [5000, 5000]),
])
def test_window_geometry_is_range_checked(tmp_path, setting, value):
    pynn.manual_seed(0)
    x_in = Input((1, 8, 8))
    x = Conv2d(1, 2, 3, padding=1, name="conv")(x_in)
    x = MaxPool2d(2, name="pool")(x)
    model = Model(x_in, Dense(32, 2)(Flatten()(x)))
    config, weights = model.get_config(), dict(model.state_dict())
    config["layers"][0]["config"][setting] = value
    _write(tmp_path / "bad.npz", config, weights)
    _refused(tmp_path / "bad.npz", rf"layer 'conv' \(Conv2d\) has {setting}=")


def test_deeply_nested_json_and_models_are_refused(tmp_path):
    config, weights = _config_and_weights()
    _write(tmp_path / "deep.npz", "[" * 200_000 + "]" * 200_000, weights)
    _refused(tmp_path / "deep.npz", "nested too deeply|malformed")
    inner = config
    for _ in range(20):
        inner = {"inputs": config["inputs"], "layers": [{"class": "Model", "name": "m",
                                                         "config": inner}],
                 "nodes": [{"layer": 0, "inputs": [{"input": 0}]}], "outputs": [{"node": 0}],
                 "multi_in": False, "multi_out": False}
    _write(tmp_path / "nested.npz", inner, weights)
    _refused(tmp_path / "nested.npz", "models nested more than 16 deep")


def _run_bounded(fn, seconds=60):
    """fn() in a thread, which must finish (a read that blocks forever fails the test)."""
    box = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as e:      # handed back to the test
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "the call did not return: it blocked"
    return box


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "model.npz"
    os.mkfifo(fifo)
    box = _run_bounded(lambda: load_model(fifo))
    assert isinstance(box.get("error"), ValueError)
    assert str(box["error"]).startswith("load_model:") and "FIFO" in str(box["error"])


@pytest.mark.parametrize("path, kind", [("/dev/zero", "a device"), ("/dev/null", "a device")])
def test_devices_are_refused_without_reading(path, kind):
    if not os.path.exists(path):
        pytest.skip(f"no {path}")
    box = _run_bounded(lambda: load_model(path))
    assert isinstance(box.get("error"), ValueError), box
    assert str(box["error"]).startswith("load_model:") and kind in str(box["error"])


def test_a_directory_and_a_socket_are_refused(tmp_path):
    _refused(tmp_path, "directory")
    path = str(tmp_path / "s.sock")
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(path)
        _refused(path, "not a regular file")
    finally:
        server.close()


def _pynn_zip(members, compression=zipfile.ZIP_STORED):
    """Bytes of a zip in pynn's framing (comment tag + SHA-256 of every byte before it)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
        z.comment = serialization._TAG + b"0" * serialization._HEX
    data = buf.getvalue()
    body = data[:-serialization._HEX]
    return body + hashlib.sha256(body).hexdigest().encode()


def _npy(array):
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def test_a_zip_bomb_is_refused_before_decompressing(tmp_path):
    members = {"__architecture__.npy": _npy(np.frombuffer(b"{}", np.uint8)),
               "w/bomb.npy": _npy(np.zeros(50 * 2**20, np.uint8))}   # 50 MB -> ~50 KB
    data = _pynn_zip(members, zipfile.ZIP_DEFLATED)
    assert len(data) < 2**20
    (tmp_path / "bomb.npz").write_bytes(data)
    _refused(tmp_path / "bomb.npz", r"claims \d+ bytes once uncompressed .*zip bomb")


def test_an_array_header_larger_than_its_data_is_refused(tmp_path):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (10**9,)})
    members = {"__architecture__.npy": _npy(np.frombuffer(b"{}", np.uint8)),
               "w/liar.npy": header.getvalue() + b"\0" * 16}
    (tmp_path / "liar.npz").write_bytes(_pynn_zip(members))
    _refused(tmp_path / "liar.npz", r"claims shape \(1000000000,\) of float32 "
                                    r"\(4000000000 bytes\) but its member holds 16 bytes")


def test_a_file_without_checksum_is_named_as_older_pynn(tmp_path):
    """Before format version 1, pynn files had no checksum: a whole zip without one is from an
    older pynn, not a truncated file."""
    arch = np.frombuffer(json.dumps({"format": "pynn-model"}).encode(), np.uint8)
    np.savez(tmp_path / "old.npz", __architecture__=arch, **{"w/x": np.zeros(3)})
    _refused(tmp_path / "old.npz", "saved by an older pynn")
    model = _dense_model()
    model.save(tmp_path / "new.npz")
    raw = (tmp_path / "new.npz").read_bytes()
    for cut in (1, 64, 82, 200):
        (tmp_path / "cut.npz").write_bytes(raw[:-cut])
        assert "truncated" in _refused(tmp_path / "cut.npz", "load_model")


DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def test_a_format_version_1_file_still_loads():
    """tests/data/pynn_v1_cnn.npz was saved by pynn at commit 35b65d6 (format version 1, layers
    without names) with the predictions beside it, on np.linspace(0, 1, 72) as 2x1x6x6."""
    model = load_model(os.path.join(DATA, "pynn_v1_cnn.npz"))
    x = np.linspace(0, 1, 72, dtype=np.float32).reshape(2, 1, 6, 6)
    want = np.load(os.path.join(DATA, "pynn_v1_cnn_predictions.npy"))
    np.testing.assert_array_equal(model.predict(x), want)
    assert model.layer_names == ["conv2d_1", "maxpool2d_1", "flatten_1", "batchnorm1d_1",
                                 "dense_1"]


def test_newer_format_versions_are_named(tmp_path):
    model = _dense_model()
    text = json.dumps(model.get_config())
    path = tmp_path / "future.npz"
    old = serialization.VERSION
    try:
        serialization.VERSION = old + 1
        serialization.save_arrays(path, model.state_dict(), kind="model", architecture=text)
    finally:
        serialization.VERSION = old
    _refused(path, "saved by a newer pynn")


# -- saving ------------------------------------------------------------------------------------
def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("umask, want", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_new_file_gets_the_umask_mode(tmp_path, umask, want):
    old = os.umask(umask)
    try:
        _dense_model().save(tmp_path / "m.npz")
        _dense_model().save_weights(tmp_path / "w.npz")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "m.npz") == want
    assert _mode(tmp_path / "w.npz") == want


def test_replacing_a_file_keeps_its_mode(tmp_path):
    path = tmp_path / "m.npz"
    path.write_bytes(b"old")
    for mode in (0o644, 0o640, 0o600):
        os.chmod(path, mode)
        _dense_model().save(path)
        assert _mode(path) == mode
        load_model(path)


def test_saving_through_a_symlink_updates_its_target(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "model.npz"
    link = tmp_path / "link.npz"
    target.write_bytes(b"old contents")
    link.symlink_to(target)
    model = _dense_model()
    model.save(link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    np.testing.assert_array_equal(load_model(target).get_layer("dense_1").weight.data,
                                  model.get_layer("dense_1").weight.data)
    assert sorted(os.listdir(tmp_path)) == ["link.npz", "real"]
    dangling = tmp_path / "dangling.npz"
    dangling.symlink_to(tmp_path / "real" / "new.npz")
    model.save(dangling)
    assert dangling.is_symlink() and (tmp_path / "real" / "new.npz").is_file()


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_orphaned_temp_files_are_removed_by_the_next_save(tmp_path):
    host = pynn.fileutil._host()
    dead = tmp_path / f".pynn-{host}-{_dead_pid()}-0a1b2c3d.tmp"
    old = tmp_path / ".pynn-k3j4h5.tmp"                 # mkstemp's name, from an older pynn
    live_writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".pynn-{host}-{live_writer.pid}-99aa88bb.tmp"
        fresh_foreign = tmp_path / ".pynn-otherhost-12-deadbeef.tmp"
        unrelated = tmp_path / ".pynn-notes.txt"
        for p in (dead, old, live, fresh_foreign, unrelated):
            p.write_bytes(b"partial")
        hour_ago = time.time() - 3600
        os.utime(old, (hour_ago, hour_ago))
        _dense_model().save(tmp_path / "m.npz")
        left = set(os.listdir(tmp_path))
        assert dead.name not in left and old.name not in left
        # a live writer's file, another host's recent file and other files are left alone
        assert {live.name, fresh_foreign.name, unrelated.name, "m.npz"} <= left
    finally:
        live_writer.kill()
        live_writer.wait()


def test_concurrent_saves_into_one_folder_all_succeed(tmp_path):
    """Each save's cleanup must never remove another live save's temporary file."""
    errors = []

    def save(i):
        try:
            for _ in range(5):
                _dense_model().save(tmp_path / f"m{i}.npz")
        except BaseException as e:       # reported below
            errors.append(e)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert sorted(os.listdir(tmp_path)) == [f"m{i}.npz" for i in range(4)]
    for i in range(4):
        load_model(tmp_path / f"m{i}.npz")


def test_randomly_mutated_architectures_never_escape_as_raw_errors(tmp_path):
    """300 configs with one or two values swapped for something else (fixed seed): each loads,
    or is refused with a load_model: ValueError; no KeyError, TypeError, IndexError or a
    layer's own unprefixed error gets out."""
    import copy
    import random

    from pynn.layers import Add, BatchNorm1d, Dropout
    pynn.manual_seed(0)
    x_in = Input((1, 8, 8))
    x = Flatten()(MaxPool2d(2)(Conv2d(1, 2, 3, padding=1, activation="relu")(x_in)))
    a = Dense(32, 8)(x)
    y = Dropout(0.2)(Add()([a, BatchNorm1d(8)(a)]))
    model = Model(x_in, Dense(8, 3)(y * 2.0))
    config, weights = model.get_config(), dict(model.state_dict())
    paths = []

    def collect(value, path):
        paths.append(path)
        items = value.items() if isinstance(value, dict) else \
            enumerate(value) if isinstance(value, list) else ()
        for k, v in items:
            collect(v, path + [k])

    collect(config, [])
    values = [None, -1, 0, 10**9, "x", [], {}, 1.5, True, [1, 2, 3], {"node": 99},
              {"input": 0}, 2, "Dense", [[[[1]]]], -10**12]
    rng = random.Random(0)
    path = tmp_path / "m.npz"
    for _ in range(300):
        c = copy.deepcopy(config)
        for _ in range(rng.choice([1, 1, 2])):
            where = rng.choice(paths[1:])
            target = c
            try:
                for k in where[:-1]:
                    target = target[k]
                target[where[-1]] = copy.deepcopy(rng.choice(values))
            except (KeyError, IndexError, TypeError):
                pass             # the path went away with an earlier change
        _write(path, c, weights)
        try:
            load_model(path)
        except ValueError as e:
            assert str(e).startswith("load_model:"), str(e)
