"""pipeline.output: the Zarr store, consolidation into HDF5, the folder's files and lock."""

import subprocess
import sys

import h5py
import numpy as np
import pytest
import zarr

from pipeline import StoreError
from pipeline.dataset import open_index
from pipeline.output.files import OutputLock
from pipeline.output.hdf5 import chunks as hdf5_chunks
from pipeline.output.hdf5 import consolidate, read_attrs
from pipeline.output.layout import make_attrs
from pipeline.output.layout import mismatch as store_mismatch
from pipeline.output.zarr_store import attrs as zarr_attrs
from pipeline.output.zarr_store import create_store, write_clip


@pytest.fixture
def store(tmp_path, tiny_dataset, small_params):
    idx = open_index(tiny_dataset)
    attrs = make_attrs(idx, small_params, created="2026-01-01T00:00:00+00:00")
    create_store(tmp_path / "audio.zarr", idx, small_params, attrs)
    return tmp_path / "audio.zarr", idx, attrs


def test_store_schema_and_chunks(store, small_params):
    path, idx, _ = store
    root = zarr.open_group(str(path), mode="r")
    F = small_params.nframes
    assert root["Xa"].shape == (3, 2, F, 2, 1024) and root["Xa"].chunks == (1, 1, F, 2, 1024)
    assert root["Xn"].shape == (3, 2, F, 2, 96) and root["Xn"].dtype == np.float32
    assert root["valid"].shape == (3, 2) and root["done"].chunks == (1, 1)
    assert root.attrs["labels"] == ["blues", "classical", "country"]
    assert root.attrs["sr"] == 22050


def test_write_clip_marks_done_and_consolidates(store, small_params, tmp_path):
    path, idx, attrs = store
    rng = np.random.default_rng(0)
    F = small_params.nframes
    arrays = {"Xa": rng.standard_normal((F, 2, 1024)).astype(np.float32),
              "Xs": rng.random((F, 2, 96)).astype(np.float32),
              "Xn": rng.standard_normal((F, 2, 96)).astype(np.float32)}
    write_clip(str(path), 2, 1, arrays)
    root = zarr.open_group(str(path), mode="r")
    assert root["done"][...].sum() == 1 and root["done"][2, 1]
    out = tmp_path / "audio.hdf5"
    consolidate(path, out)
    assert not list(tmp_path.glob(".audio.hdf5*"))  # no temporary file left
    with h5py.File(out) as f:
        for k, a in arrays.items():
            assert np.array_equal(f[k][2, 1], a)
            assert not f[k][0, 0].any()
        assert f["Xa"].chunks == hdf5_chunks(f["Xa"].shape)
        assert f["Xa"].compression is None  # plain h5py, no filter plugins
        assert f.attrs["labels"].dtype == np.dtype("S9")
    assert read_attrs(out) == zarr_attrs(path) == attrs


def test_hdf5_chunks_cover_one_clip_and_stay_small():
    ch = hdf5_chunks((10, 100, 644, 2, 1024))
    assert ch[:2] == (1, 1) and ch[3:] == (2, 1024)
    assert np.prod(ch) * 4 <= 1 << 20


def test_mismatch_names_the_changed_parameter(store, small_params, tiny_dataset):
    _, idx, attrs = store
    assert store_mismatch(attrs, attrs) is None
    other = make_attrs(idx, small_params.replace(lcn_sigma=3.0), created="x")
    assert "lcn_sigma: 2.0 -> 3.0" in store_mismatch(attrs, other)
    assert "format" in store_mismatch({}, attrs) or "version" in store_mismatch({}, attrs)


def test_lock_stops_a_second_holder_and_names_it(tmp_path):
    code = ("import sys,time; from pipeline.output.files import OutputLock; "
            f"l=OutputLock({str(tmp_path)!r}).acquire(); print('held', flush=True); time.sleep(30)")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "held"
        with pytest.raises(StoreError, match=rf"in use by another audioprep run \(pid {p.pid} on host "):
            OutputLock(tmp_path).acquire()
    finally:
        p.kill()
        p.wait()
    # the kernel released the dead holder's lock
    with OutputLock(tmp_path):
        pass
