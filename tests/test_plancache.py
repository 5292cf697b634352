"""The CQT plans cached on disk (pipeline.plancache): created private, plain arrays, a damaged or foreign file
rebuilt, an untrusted folder left alone, and a worker that finds its plan there imports no librosa."""

import json
import os
import stat
import subprocess
import sys
import warnings
import zipfile

import numpy as np
import pytest

from pipeline import kernels, plancache

SR = 22050
C2 = 65.40639132514966
KW = dict(sr=SR, hop_length=1024, fmin=C2, n_bins=96, bins_per_octave=24)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh XDG_CACHE_HOME; the process's plans forgotten before and after."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    kernels._cqt_plan.cache_clear()
    plancache._WARNED.clear()
    yield tmp_path / "xdg" / "audioprep"
    kernels._cqt_plan.cache_clear()


def _clip():
    return (0.2 * np.random.default_rng(3).standard_normal(3 * SR)).astype(np.float32)


def _matches_librosa(plan) -> bool:
    import librosa

    y = _clip()
    return np.array_equal(plan.exact(y), librosa.cqt(y, **KW))


def _plan():
    kernels._cqt_plan.cache_clear()
    return kernels.cqt_plan(**KW)


def _the_file(folder):
    files = [f for f in os.listdir(folder) if f.endswith(".npz")]
    assert len(files) == 1, files
    return folder / files[0]


def _tamper(path, owner=None):
    """Rewrite the cached plan as a well-formed one (checksum and key consistent) whose filters are zero: a
    plan that gives wrong numbers if it is trusted."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop("_meta")))
    for k in arrays:
        if k.startswith("data"):
            arrays[k] = np.zeros_like(arrays[k])
    meta["sha256"] = plancache._checksum(arrays)
    with open(path, "wb") as f:
        np.savez(f, _meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)
    if owner is not None:
        os.chown(path, owner, -1)
    return os.stat(path)


def test_the_first_plan_is_written_private_as_plain_arrays_and_the_next_process_loads_it(cache):
    plan = _plan()
    assert _matches_librosa(plan)
    st = os.lstat(cache)
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os.geteuid()
    path = _the_file(cache)
    fst = os.lstat(path)
    assert stat.S_ISREG(fst.st_mode) and stat.S_IMODE(fst.st_mode) == 0o600 and fst.st_uid == os.geteuid()
    assert not [f for f in os.listdir(cache) if f.startswith(".tmp")]  # written under another name, renamed
    with zipfile.ZipFile(path) as z:  # an .npz of .npy files, no pickle in any
        assert all(n.endswith(".npy") for n in z.namelist())
    with np.load(path, allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)
        meta = json.loads(str(z["_meta"]))
    assert meta["key"]["librosa"] == __import__("librosa").__version__ and meta["key"]["n_bins"] == 96
    before = kernels.PLANS_BUILT["count"]
    again = _plan()  # loaded: the same arrays
    assert kernels.PLANS_BUILT["count"] == before + 1 and _matches_librosa(again)
    assert os.stat(path).st_mtime_ns == fst.st_mtime_ns  # not written again


@pytest.mark.parametrize("damage", ["truncated", "flipped bytes", "not an npz", "tampered, old checksum"])
def test_a_damaged_file_is_rebuilt_not_trusted(cache, damage):
    _plan()
    path = _the_file(cache)
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flipped bytes":
        mid = len(data) // 2
        path.write_bytes(data[:mid] + bytes(b ^ 0xFF for b in data[mid : mid + 64]) + data[mid + 64 :])
    elif damage == "not an npz":
        path.write_bytes(b"\x80\x04pickle?" + data[:100])
    else:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        arrays["data0"] = np.zeros_like(arrays["data0"])
        with open(path, "wb") as f:
            np.savez(f, **arrays)
    plan = _plan()
    assert _matches_librosa(plan)
    with np.load(_the_file(cache), allow_pickle=False) as z:  # written again, whole
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop("_meta")))
    assert meta["sha256"] == plancache._checksum(arrays) and np.abs(arrays["data0"]).max() > 0


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_file_owned_by_another_user_is_not_trusted_and_is_replaced(cache):
    import pwd

    _plan()
    path = _the_file(cache)
    nobody = pwd.getpwnam("nobody").pw_uid
    assert _tamper(path, owner=nobody).st_uid == nobody
    assert _matches_librosa(_plan())
    assert os.stat(path).st_uid == os.geteuid()  # built again and written over it


def test_a_file_others_may_write_is_not_trusted(cache):
    _plan()
    path = _the_file(cache)
    _tamper(path)
    os.chmod(path, 0o666)
    assert _matches_librosa(_plan())
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


@pytest.mark.parametrize("how", ["symlinked folder", "folder open to others"])
def test_an_untrusted_folder_is_neither_read_nor_written(cache, how):
    real = cache.parent / "elsewhere"
    os.environ["XDG_CACHE_HOME"] = str(real.parent / "first")
    plancache._WARNED.clear()
    kernels._cqt_plan.cache_clear()
    _plan()  # a valid plan file, in a private folder
    os.rename(real.parent / "first" / "audioprep", real)
    os.environ["XDG_CACHE_HOME"] = str(cache.parent)
    cache.parent.mkdir(exist_ok=True)
    if how == "symlinked folder":
        os.symlink(real, cache)
    else:
        os.rename(real, cache)
        os.chmod(cache, 0o755)
        real = cache
    st = _tamper(_the_file(real))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plan = _plan()
    assert _matches_librosa(plan)  # the zeroed filters were not used
    assert any(str(cache) in str(w.message) and "chmod 700" in str(w.message) for w in caught), caught
    assert [f.name for f in real.iterdir()] == [_the_file(real).name]  # nothing written there
    assert os.stat(_the_file(real)).st_mtime_ns == st.st_mtime_ns


def _worker_probe(env):
    """A fresh process that imports the forkserver's module (it warms: runs every stage on a silent clip) and
    says what it imported."""
    code = (
        "import sys, json; import pipeline._forkserver as f; from pipeline import kernels; "
        "print(json.dumps({'warm': bool(f.WARM), 'librosa': 'librosa' in sys.modules, "
        "'numba': 'numba' in sys.modules, 'plans': kernels.PLANS_BUILT['count']}))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_worker_with_a_warm_cache_imports_no_librosa(cache):
    from pipeline.params import Params
    from pipeline.warm import ENV, params_env

    env = dict(os.environ, **{ENV: params_env(Params())})
    cold = _worker_probe(env)  # the first on this machine builds the plan (with librosa) and caches it
    assert cold["warm"] and cold["librosa"] and cold["plans"] == 1
    assert _the_file(cache)
    warm = _worker_probe(env)
    assert warm == {"warm": True, "librosa": False, "numba": False, "plans": 1}
