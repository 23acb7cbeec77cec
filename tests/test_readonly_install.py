"""pynn installed read-only (site-packages and HOME not writable) still imports and runs.

Numba caches every `@njit(cache=True)` kernel next to its source or under ~/.cache; when neither
can be written it used to fail at `import pynn` with "no locator available". The package is
copied to a temporary folder that is then made read-only, together with a fresh HOME: by chmod
for an ordinary user, by a read-only bind mount in a private mount namespace (`unshare -m`)
when the tests run as root (root ignores file permissions).
"""
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent('''
    import os
    import numpy as np
    import pynn
    from pynn import Tensor
    from pynn.layers import Conv2d, MaxPool2d
    print("pynn from", pynn.__file__)
    print("cache", os.environ.get("NUMBA_CACHE_DIR"))
    pynn.manual_seed(0)
    conv = Conv2d(1, 2, 3, padding=1)
    x = Tensor.randn(2, 1, 6, 6)
    y = MaxPool2d(2)(conv(x))
    y.sum().backward()
    assert y.shape == (2, 2, 3, 3) and conv.weight.grad.shape == (2, 1, 3, 3)
    assert np.isfinite(conv.weight.grad.numpy()).all()
    print("ok")
''')


def _readonly_run(tmp_path, cmd, env, readonly):
    if os.geteuid() != 0:
        for d in readonly:
            for root, dirs, files in os.walk(d):
                for name in dirs + files:
                    p = os.path.join(root, name)
                    os.chmod(p, os.stat(p).st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
            os.chmod(d, 0o555)
        try:
            return subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True,
                                  timeout=600)
        finally:
            for d in readonly:
                os.chmod(d, 0o755)
                for root, dirs, _ in os.walk(d):
                    for name in dirs:
                        os.chmod(os.path.join(root, name), 0o755)
    if shutil.which("unshare") is None:
        pytest.skip("running as root without unshare: cannot make a folder read-only for root")
    mounts = " && ".join(f"mount --bind {d} {d} && mount -o remount,ro,bind {d}"
                         for d in readonly)
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"running as root and unshare -m is not permitted here: {probe.stderr!r}")
    shell = mounts + " && exec " + " ".join(f"'{c}'" for c in cmd)
    return subprocess.run(["unshare", "-m", "sh", "-c", shell], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.parametrize("numba_first", [False, True], ids=["pynn-first", "numba-first"])
def test_import_and_conv_from_a_readonly_install_with_a_readonly_home(tmp_path, numba_first):
    site = tmp_path / "site"
    shutil.copytree(REPO / "pynn", site / "pynn",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc"))
    home = tmp_path / "home"
    home.mkdir()
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    # numba imported before pynn has read its configuration already
    (tmp_path / "check.py").write_text(("import numba\n" if numba_first else "") + SCRIPT)
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME", "PYTHONPATH")}
    env.update(HOME=str(home), PYTHONPATH=str(site), TMPDIR=str(scratch),
               PYTHONDONTWRITEBYTECODE="1")
    r = _readonly_run(tmp_path, [sys.executable, str(tmp_path / "check.py")], env,
                      [str(site), str(home)])
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"pynn from {site}" in r.stdout
    # the kernels were cached in the temporary folder, not in the read-only ones
    assert f"cache {scratch}" in r.stdout
    assert list(scratch.glob("pynn-numba-cache-*/**/*.nbi"))
    assert not list(site.rglob("*.nbi")) and not list(home.rglob("*.nbi"))
    assert r.stdout.strip().endswith("ok")
