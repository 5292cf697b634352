"""Both outputs open in readers audioprep did not write: tensorstore, HDF5's own tools, xarray, a torch DataLoader.

.ci/run installs them (tensorstore and h5netcdf from PyPI, Debian's hdf5-tools)
and sets AUDIOPREP_REQUIRE_TOOLS=1, so there a missing reader fails, never skips.
"""

import os
import re
import shutil
import subprocess
import warnings

import h5py
import numpy as np
import pytest

from pipeline.output import FrameBlocks, open_dataset

REQUIRE = os.environ.get("AUDIOPREP_REQUIRE_TOOLS") == "1"


def need(module_or_tool: str):
    if module_or_tool in ("h5ls", "h5dump"):
        if shutil.which(module_or_tool):
            return
    else:
        try:
            return __import__(module_or_tool)
        except ImportError:
            pass
    if REQUIRE:
        pytest.fail(f"{module_or_tool} is missing but AUDIOPREP_REQUIRE_TOOLS=1 (.ci/run installs it)")
    pytest.skip(f"{module_or_tool} is not installed")


def h5(out, name):
    with h5py.File(out / "audio.hdf5") as f:
        return f[name][...]


def test_tensorstore_reads_the_zarr_store_as_h5py_reads_the_hdf5(tiny_output):
    """tensorstore: an independent C++ implementation of Zarr v3 (codecs, chunk keys, metadata)."""
    ts = need("tensorstore")
    store = ts.open(
        {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(tiny_output / "audio.zarr" / "Xs")}}, read=True
    ).result()
    assert tuple(store.shape) == h5(tiny_output, "Xs").shape
    assert np.array_equal(store.read().result(), h5(tiny_output, "Xs"))
    valid = (
        ts.open(
            {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(tiny_output / "audio.zarr" / "valid")}},
            read=True,
        )
        .result()
        .read()
        .result()
    )
    assert np.array_equal(valid, h5(tiny_output, "valid"))


def test_hdf5_tools_list_the_schema_and_dump_a_hyperslab(tiny_output):
    """h5ls / h5dump: Debian's own libhdf5 build, not h5py's bundled one."""
    need("h5ls")
    need("h5dump")
    path = str(tiny_output / "audio.hdf5")
    listing = subprocess.run(["h5ls", path], capture_output=True, text=True, check=True).stdout
    for name, shape in (
        ("Xa", "{3, 2, 64, 2, 1024}"),
        ("Xs", "{3, 2, 64, 2, 96}"),
        ("Xn", "{3, 2, 64, 2, 96}"),
        ("valid", "{3, 2}"),
        ("genre", "{3}"),
        ("frequency", "{96}"),
    ):
        assert re.search(rf"^{name}\s+Dataset {re.escape(shape)}$", listing, re.M), listing
    header = subprocess.run(["h5dump", "-H", "-A", path], capture_output=True, text=True, check=True).stdout
    assert 'ATTRIBUTE "DIMENSION_LIST"' in header and 'ATTRIBUTE "CLASS"' in header  # dimension scales
    assert 'ATTRIBUTE "labels"' in header and 'ATTRIBUTE "sr"' in header
    # one hyperslab: Xs[1, 0, 2:5, 1, 10:14]
    dump = subprocess.run(
        ["h5dump", "-d", "/Xs", "-s", "1,0,2,1,10", "-c", "1,1,3,1,4", "-m", "%.9g", "-y", "-w", "0", path],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    body = dump.split("DATA {", 1)[1].split("}", 1)[0]
    values = np.array([float(v) for v in re.findall(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?", body)], dtype=np.float32)
    assert np.array_equal(values, h5(tiny_output, "Xs")[1, 0, 2:5, 1, 10:14].ravel())
    # one whole clip of the contiguous layout: Xn[2, 1]
    header = subprocess.run(
        ["h5dump", "-H", "-p", "-d", "/Xn", path], capture_output=True, text=True, check=True
    ).stdout
    assert "CONTIGUOUS" in header, header
    dump = subprocess.run(
        ["h5dump", "-d", "/Xn", "-s", "2,1,0,0,0", "-c", "1,1,64,2,96", "-m", "%.9g", "-y", "-w", "0", path],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    body = dump.split("DATA {", 1)[1].split("}", 1)[0]
    values = np.array([float(v) for v in re.findall(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?", body)], dtype=np.float32)
    assert np.array_equal(values, h5(tiny_output, "Xn")[2, 1].ravel())


def _same(a, b):
    """Two xarray datasets hold the same named, labelled arrays."""
    assert set(a.data_vars) == set(b.data_vars)
    for name in a.data_vars:
        assert a[name].dims == b[name].dims, name
        assert np.array_equal(a[name].values, b[name].values), name
    for name in ("genre", "clip", "frame", "overlap", "time", "frequency", "note", "bin", "sample"):
        assert name in a.coords and name in b.coords, name
        assert a[name].dims == b[name].dims, name
        assert [str(v) for v in np.asarray(a[name].values).ravel()] == [
            str(v) for v in np.asarray(b[name].values).ravel()
        ], name
    assert a.time.attrs.get("units") == b.time.attrs.get("units") == "s"
    assert a.frequency.attrs.get("units") == b.frequency.attrs.get("units") == "Hz"


def test_xarray_opens_the_zarr_store_without_warnings(tiny_output):
    xr = need("xarray")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Failed to open Zarr store with consolidated metadata" would fail here
        theirs = xr.open_zarr(tiny_output / "audio.zarr")
    ours = open_dataset(tiny_output / "audio.zarr")
    _same(theirs.drop_vars("done"), ours)
    assert list(theirs.genre.values) == ["blues", "classical", "country"]


def test_xarray_opens_the_hdf5_file_as_netcdf_without_warnings(tiny_output):
    xr = need("xarray")
    need("h5netcdf")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        theirs = xr.open_dataset(tiny_output / "audio.hdf5", engine="h5netcdf")
    assert not [d for d in theirs.dims if str(d).startswith("phony_dim")]
    ours = open_dataset(tiny_output / "audio.hdf5")
    _same(theirs, ours)
    assert theirs.Xs.sel(genre="classical").isel(clip=1).frequency[0] == pytest.approx(65.406, abs=1e-3)


def test_frame_blocks_read_block_by_block(tiny_output):
    blocks = FrameBlocks(tiny_output / "audio.hdf5", "Xn", frames=16)
    full = h5(tiny_output, "Xn")
    assert len(blocks) == 3 * 2 * (64 // 16)
    x, g = blocks[5]  # clip (0, 1), frames 16:32
    assert g == 0 and x.shape == (16, 2, 96) and x.dtype == np.float32
    assert np.array_equal(x, full[0, 1, 16:32])
    pairs = list(blocks)
    assert [g for _, g in pairs] == [g for g in range(3) for _ in range(2 * 4)]
    assert np.array_equal(np.concatenate([x for x, _ in pairs[:4]]), full[0, 0])
    with pytest.raises(Exception, match=r"frames=65 must be between 1 and the 64 frames"):
        FrameBlocks(tiny_output / "audio.zarr", "Xn", frames=65)


def test_frame_blocks_equal_h5py_slices_in_any_order_and_after_pickling(tiny_output):
    """The contiguous audio.hdf5 is read by byte range (one pread a block): every block, shuffled, equals
    h5py's own slice, in this process and in a copy made as DataLoader workers make theirs."""
    import pickle

    blocks = FrameBlocks(tiny_output / "audio.hdf5", "Xs", frames=8)
    assert blocks._offset is not None  # the byte-range path is the one under test
    full = h5(tiny_output, "Xs")
    order = np.random.default_rng(2).permutation(len(blocks))
    for i in order:
        g, c, f = blocks.index[i]
        x, label = blocks[i]
        assert label == g and x.flags.writeable and np.array_equal(x, full[g, c, f : f + 8])
    copy = pickle.loads(pickle.dumps(blocks))
    assert copy._fd is None and np.array_equal(copy[7][0], blocks[7][0])
    copy.close()
    blocks.close()
    assert np.array_equal(blocks[3][0], full[0, 0, 24:32])  # reopens after close


def test_frame_blocks_in_a_torch_dataloader(tiny_output):
    torch = pytest.importorskip("torch")
    blocks = FrameBlocks(tiny_output / "audio.zarr", "Xn", frames=32)
    loader = torch.utils.data.DataLoader(blocks, batch_size=4, shuffle=False, num_workers=2)
    xs, gs = zip(*loader)
    x, g = torch.cat(xs), torch.cat(gs)
    assert x.shape == (12, 32, 2, 96) and g.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    assert np.array_equal(x[5].numpy(), h5(tiny_output, "Xn")[1, 0, 32:64])


def _plain_rule(path, frames=None):
    """The loaders' rule written as a plain h5py loop: valid slots only, frames wholly inside the clip's own
    samples (frame f of the overlapped stream ends at sample (f + 1) * na + na // 2)."""
    with h5py.File(path) as f:
        na, F = int(f.attrs["na"]), f["Xn"].shape[2]
        keep = {}
        for g in range(f["valid"].shape[0]):
            for c in range(f["valid"].shape[1]):
                if f["valid"][g, c]:
                    keep[g, c] = [k for k in range(F) if (k + 1) * na + na // 2 <= f["samples"][g, c]]
        return keep, f["Xn"][...]


def test_loaders_leave_out_padding_and_invalid_slots(padded_output):
    """Before: 16 of 200 FrameBlocks were pure zero padding labelled with a genre, and to_matrix kept invalid
    slots and gave no labels."""
    from pipeline.output import to_matrix

    keep, X = _plain_rule(padded_output)
    assert sorted(keep) == [(0, 0), (0, 1), (1, 0)] and len(keep[0, 1]) == 21 and len(keep[0, 0]) == X.shape[2]
    want_rows = np.concatenate([X[g, c, fr].reshape(-1, X.shape[-1]) for (g, c), fr in sorted(keep.items())])
    want_y = np.concatenate([np.full(2 * len(fr), g) for (g, c), fr in sorted(keep.items())])
    rows, y = to_matrix(padded_output, "Xn", labels=True)
    assert np.array_equal(rows, want_rows) and np.array_equal(y, want_y)
    everything = to_matrix(padded_output, "Xn", padding=True, invalid=True)
    assert np.array_equal(everything, X.reshape(-1, X.shape[-1]))  # the original reshape, when asked for
    blocks = FrameBlocks(padded_output, "Xn", frames=8)
    want = [(g, c, s) for (g, c), fr in sorted(keep.items()) for s in range(0, len(fr) - 7, 8)]
    assert blocks.index == want and len(want) == 8 + 2 + 8
    for i, (g, c, s) in enumerate(want):
        block, label = blocks[i]
        assert label == g and np.array_equal(block, X[g, c, s : s + 8])
    padded = FrameBlocks(padded_output, "Xn", frames=8, padding=True)
    assert (0, 1, 56) in padded.index and (1, 1, 0) not in padded.index  # padding when asked; never invalid slots


def test_info_says_how_many_slots_were_padded_and_how_long_they_are(padded_output):
    """Before: 'info' said only '3 valid', not that one of them is mostly --pad-short's zeros."""
    from pipeline.output import describe

    text = describe(padded_output)
    assert "clips: 4 slots, 3 valid, 1 invalid or missing" in text
    assert (
        "padded: 1 valid clip(s) zero-padded to Nsamples=66136 (--pad-short), their own 22050 samples "
        "(1.00 s: the 'samples' array); the loaders leave the padding out"
    ) in text
