"""pipeline.output: the Zarr store, consolidation into HDF5, the folder's files and lock."""

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import zarr

from pipeline import StoreError
from pipeline.inputs import open_index
from pipeline.output.files import OutputLock
from pipeline.output.hdf5 import consolidate, read_attrs
from pipeline.output.hdf5 import create as hdf5_create
from pipeline.output.layout import make_attrs
from pipeline.output.layout import mismatch as store_mismatch
from pipeline.output.zarr_store import attrs as zarr_attrs
from pipeline.output.zarr_store import create_store, write_clip, write_valid


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
    assert root["valid"].shape == (3, 2) and root["done"].chunks == (1, 1) and root["valid"].chunks == (3, 2)
    assert root.attrs["labels"] == ["blues", "classical", "country"]
    assert root.attrs["sr"] == 22050


def _arrays(params, seed):
    rng = np.random.default_rng(seed)
    F = params.nframes
    return {
        "Xa": rng.standard_normal((F, 2, 1024)).astype(np.float32),
        "Xs": rng.random((F, 2, 96)).astype(np.float32),
        "Xn": rng.standard_normal((F, 2, 96)).astype(np.float32),
    }


def test_write_clip_marks_done_and_consolidates(store, small_params, tmp_path):
    path, idx, attrs = store
    arrays = _arrays(small_params, 0)
    write_clip(str(path), 2, 1, arrays)
    root = zarr.open_group(str(path), mode="r+")
    assert root["done"][...].sum() == 1 and root["done"][2, 1]
    assert write_valid(root).sum() == 1
    out = tmp_path / "audio.hdf5"
    consolidate(path, out)
    assert not list(tmp_path.glob(".audio.hdf5*"))  # no temporary file left
    with h5py.File(out) as f:
        for k, a in arrays.items():
            assert np.array_equal(f[k][2, 1], a)
            assert not f[k][0, 0].any()  # never written: zeros
            assert f[k].chunks is None and f[k].compression is None  # contiguous, no filter plugins
        assert f["valid"][2, 1] and f["valid"][...].sum() == 1
        assert f.attrs["labels"].dtype == np.dtype("S9")
    assert read_attrs(out) == zarr_attrs(path) == attrs


def test_store_costs_at_most_five_files_and_folders_a_clip(tmp_path, small_params):
    """Flat chunk keys: a clip is four files (Xa, Xs, Xn, done) and no folder, for HPC inode quotas."""
    from pipeline.synth import synth_dataset

    counts = {}
    for clips in (2, 6):
        data = synth_dataset(tmp_path / f"d{clips}", genres=2, clips=clips, seconds=0.2, seed=3)
        idx = open_index(data)
        params = small_params.replace(nsamples=2048)
        path = tmp_path / f"s{clips}" / "audio.zarr"
        path.parent.mkdir()
        create_store(path, idx, params, make_attrs(idx, params, created="x"))
        for ref in idx.clips:
            F = params.nframes
            write_clip(
                str(path),
                ref.g,
                ref.c,
                {
                    "Xa": np.ones((F, 2, 1024), np.float32),
                    "Xs": np.ones((F, 2, 96), np.float32),
                    "Xn": np.ones((F, 2, 96), np.float32),
                },
            )
        counts[clips] = sum(1 for _ in path.rglob("*"))
    per_clip = (counts[6] - counts[2]) / (2 * 6 - 2 * 2)
    assert per_clip == 4, counts
    assert counts[2] <= 5 * 4 + 45  # and a constant few for metadata and coordinates


def test_slots_of_the_temporary_hdf5_are_where_hdf5_reads_them(tmp_path, small_params):
    shapes = {n: small_params.shape(n, 3, 4) for n in ("Xa", "Xs")}
    slots = hdf5_create(tmp_path / "audio.hdf5", shapes)
    assert Path(slots.path).name.startswith(".audio.hdf5.") and (Path(slots.path).stat().st_mode & 0o077) == 0
    written = {(g, c): _arrays(small_params, 10 * g + c) for g, c in ((0, 0), (1, 3), (2, 3))}
    for (g, c), arrays in written.items():
        slots.write(g, c, arrays)
    with h5py.File(slots.path, "r") as f:
        for name in shapes:
            assert f[name].id.get_offset() == slots.offsets[name]
            for g in range(3):
                for c in range(4):
                    want = written[g, c][name] if (g, c) in written else np.zeros(shapes[name][2:], np.float32)
                    assert np.array_equal(f[name][g, c], want), (name, g, c)
    # a clip is contiguous: its bytes are one range, at offset + slot * clip_bytes
    assert slots.position("Xa", 1, 3) - slots.position("Xa", 1, 2) == 4 * int(np.prod(shapes["Xa"][2:]))


def test_neighbouring_slots_written_at_once_by_two_processes_both_land(tmp_path, small_params):
    """Two workers write the slots on either side of one boundary, many times over, at the same moment."""
    shapes = {n: small_params.shape(n, 1, 2) for n in ("Xa", "Xs", "Xn")}
    slots = hdf5_create(tmp_path / "audio.hdf5", shapes)
    code = (
        "import sys, pickle, numpy as np; slots = pickle.loads(bytes.fromhex(sys.argv[1])); c = int(sys.argv[2]); "
        "shapes = slots.clip_shapes; sys.stdin.readline()\n"
        "for i in range(200):\n"
        "    slots.write(0, c, {n: np.full(s, c + 1 + i % 7, np.float32) for n, s in shapes.items()})\n"
        "slots.write(0, c, {n: np.full(s, 10 * (c + 1), np.float32) for n, s in shapes.items()})"
    )
    import pickle

    blob = pickle.dumps(slots).hex()
    procs = [subprocess.Popen([sys.executable, "-c", code, blob, str(c)], stdin=subprocess.PIPE) for c in (0, 1)]
    for p in procs:  # start both together
        p.stdin.write(b"go\n")
        p.stdin.flush()
    assert [p.wait() for p in procs] == [0, 0]
    with h5py.File(slots.path, "r") as f:
        for name in shapes:
            assert (f[name][0, 0] == 10).all() and (f[name][0, 1] == 20).all(), name


def test_full_disk_while_writing_slots_is_a_storage_error(small_disk, small_params):
    """A sparse file takes blocks only as workers write: a full disk shows up as ENOSPC, said in one line."""
    import errno

    shapes = {"Xa": small_params.shape("Xa", 1, 8)}  # 2.1 MB of slots on a 1 MB disk
    slots = hdf5_create(small_disk / "audio.hdf5", shapes)
    with pytest.raises(OSError) as info:
        for c in range(8):
            slots.write(0, c, {"Xa": np.ones(shapes["Xa"][2:], np.float32)})
    assert info.value.errno == errno.ENOSPC


def test_mismatch_names_the_changed_parameter(store, small_params, tiny_dataset):
    _, idx, attrs = store
    assert store_mismatch(attrs, attrs) is None
    other = make_attrs(idx, small_params.replace(lcn_sigma=3.0), created="x")
    assert "lcn_sigma: 2.0 -> 3.0" in store_mismatch(attrs, other)
    assert "format" in store_mismatch({}, attrs) or "version" in store_mismatch({}, attrs)


def test_lock_stops_a_second_holder_and_names_it(tmp_path):
    code = (
        "import sys,time; from pipeline.output.files import OutputLock; "
        f"l=OutputLock({str(tmp_path)!r}).acquire(); print('held', flush=True); time.sleep(30)"
    )
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


def test_run_and_graph_reach_the_stores_only_through_the_output_folder():
    """run.py and graph.py name no store module: OutputFolder and the store interface are their one door."""
    import ast

    import pipeline

    base = Path(pipeline.__file__).parent
    for module in ("run.py", "graph.py"):
        tree = ast.parse((base / module).read_text())
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                names |= {node.module or ""} | {a.name for a in node.names}
            elif isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.Attribute):
                names.add(node.attr)
        assert not names & {"zarr_store", "hdf5", "output.zarr_store", "output.hdf5", "Slots"}, module


def test_a_clip_writer_fills_every_store_then_marks_the_clip_done(store, small_params, tmp_path):
    """The stores behind the interface: a clip written through the run's ClipWriter reads back the same from
    the Zarr store and the temporary audio.hdf5, and is done only once both hold it; a copy fills audio.hdf5
    from the store."""
    from pipeline.output.hdf5 import HDF5Output, Slots
    from pipeline.output.store import ClipStore, ClipWriter, FinalOutput, ResumeStore
    from pipeline.output.zarr_store import ZarrClips, done_mask

    path, idx, _ = store
    shapes = {n: small_params.shape(n, idx.ngenres, idx.nclips) for n in small_params.datasets}
    final = HDF5Output(tmp_path / "final")
    (tmp_path / "final").mkdir()
    slots = final.lay_out(shapes)
    resume = ZarrClips(str(path))
    assert isinstance(resume, ResumeStore) and isinstance(slots, ClipStore) and isinstance(final, FinalOutput)
    assert isinstance(slots, Slots) and not final.complete()
    rng = np.random.default_rng(0)
    arrays = {n: rng.standard_normal(s[2:]).astype(np.float32) for n, s in shapes.items()}
    writer = ClipWriter(resume, (slots,))
    writer.write(2, 1, arrays)
    for got in (resume.read_clip(2, 1, list(arrays)), slots.read_clip(2, 1, list(arrays))):
        assert all(np.array_equal(got[n], arrays[n]) for n in arrays)
    assert done_mask(zarr.open_group(str(path))).nonzero() == (np.array([2]), np.array([1]))
    writer.zero(2, 1)
    assert not slots.read_clip(2, 1, ["Xs"])["Xs"].any()
    writer.copy(2, 1, list(arrays))  # an earlier run's clip, from the store into audio.hdf5
    assert np.array_equal(slots.read_clip(2, 1, ["Xn"])["Xn"], arrays["Xn"])
    final.discard(slots)
    assert not Path(slots.path).exists()
