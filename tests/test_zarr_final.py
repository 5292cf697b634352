"""The Zarr-only output (``--output-format zarr``, :mod:`pipeline.output.zarr_final`): the store is the output.

Real runs on a real LocalCluster, in both layouts, compared with the independent serial reference and with
what ``audio.hdf5`` holds; a run killed mid-way; the option's rule.
"""

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from support.cli import audioprep, finished, start, wait_until
from support.compare import read_hdf5, read_zarr
from support.data import SMALL, SMALL_ARGS, SR, genre_folder

from pipeline import ParameterError, preprocess

pytestmark = pytest.mark.slow

#: The folders each layout runs on: a grid needs genres of one size; the clip layout takes any.
SIZES = {"grid": {"blues": 2, "jazz": 2, "rock": 2}, "clips": {"blues": 3, "jazz": 2, "rock": 1}}


def _clip(g, c):
    rng = np.random.default_rng(10 * g + c)
    t = np.arange(int(SR * 3)) / SR
    return (0.3 * np.sin(2 * np.pi * (130 + 40 * g + 9 * c) * t) + 0.05 * rng.standard_normal(t.size)).astype(
        np.float32
    )


def serial_reference(root):
    """Each clip's reference arrays, one row a clip in (genre, file) order, with the genres, labels and sources."""
    from support.reference import reference_rows

    return reference_rows(root, Nsamples=SMALL["nsamples"])


def hdf5_files(folder: Path) -> list:
    """Every entry under ``folder`` whose name says HDF5 (``audio.hdf5``, its temporary ``.partial``)."""
    return sorted(str(p) for p in folder.rglob("*") if "hdf5" in p.name)


def complete(store: Path):
    """The store's ``complete`` attribute as its metadata file holds it now (None: not there)."""
    return json.loads((store / "zarr.json").read_text())["attributes"].get("complete")


@pytest.fixture(scope="module")
def runs(client, tmp_path_factory):
    """For each layout: its input folder, and the outputs of one run with --output-format zarr and one with the
    default (audio.hdf5), each with its RunResult."""
    base = tmp_path_factory.mktemp("zarr-final")
    out = {}
    for layout, sizes in SIZES.items():
        src = genre_folder(base / layout / "genres", sizes, _clip)
        kw = dict(client=client, progress=False, layout=layout, **SMALL)
        zarr_res = preprocess(src, base / layout / "zarr", output_format="zarr", **kw)
        hdf5_res = preprocess(src, base / layout / "hdf5", **kw)
        out[layout] = (src, base / layout / "zarr", zarr_res, base / layout / "hdf5", hdf5_res)
    return out


@pytest.mark.parametrize("layout", ["grid", "clips"])
def test_the_store_alone_is_the_output_equal_to_the_reference(runs, layout):
    src, out, res, _, _ = runs[layout]
    store = out / "audio.zarr"
    n = sum(SIZES[layout].values())
    assert hdf5_files(out) == []  # no audio.hdf5, not even a temporary one
    assert (res.output_path, res.output_format, res.computed, res.clips) == (str(store), "zarr", n, n)
    summary = json.loads((out / "audio.summary.json").read_text())
    assert summary["output_path"] == str(store) and summary["output_format"] == "zarr" and "hdf5_path" not in summary
    assert summary["output_bytes"] == sum(p.stat().st_size for p in store.rglob("*") if p.is_file())
    arrays, attrs = read_zarr(store)
    assert attrs["complete"] is True
    want, genres, labels, sources = serial_reference(src)
    slots = (3, 2) if layout == "grid" else (n,)
    for name in ("Xa", "Xs", "Xn"):
        assert arrays[name].shape == slots + want[name].shape[1:] and arrays[name].dtype == np.float32, name
    got = {k: arrays[k].reshape(want[k].shape) for k in ("Xa", "Xs", "Xn")}  # one row a clip, in file order
    assert np.array_equal(got["Xa"], want["Xa"])
    for row in range(n):  # docs/numerics.md: within 1e-5 of each clip's maximum
        assert np.abs(got["Xs"][row] - want["Xs"][row]).max() <= 1e-5 * np.abs(want["Xs"][row]).max(), row
    assert np.abs(got["Xn"] - want["Xn"]).max() <= 1e-4
    assert attrs["labels"] == genres and arrays["valid"].all()
    assert arrays["source"].ravel().tolist() == sources
    assert (arrays["samples"] == SMALL["nsamples"]).all() and (arrays["start"] == 0).all()
    if layout == "clips":
        assert attrs["layout"] == "clips" and arrays["label"].tolist() == labels
    else:
        assert arrays["genre"].tolist() == genres
    import zarr

    root = zarr.open_group(str(store), mode="r")
    assert root["Xs"].chunks == (1,) * len(slots) + (64, 2, 96)  # one chunk a clip
    assert root.metadata.consolidated_metadata is not None  # consolidated after the marker


@pytest.mark.parametrize("layout", ["grid", "clips"])
def test_the_store_holds_everything_audio_hdf5_holds(runs, layout):
    """Beside its arrays: valid, source, samples, start, labels, coordinates and every attribute, with the values
    of an audio.hdf5 of the same input."""
    _, out, _, h5out, _ = runs[layout]
    z_arrays, z_attrs = read_zarr(out / "audio.zarr")
    h_arrays, h_attrs = read_hdf5(h5out / "audio.hdf5")
    assert set(h_arrays) <= set(z_arrays) and set(z_arrays) - set(h_arrays) == {"done"}
    for name, value in h_arrays.items():
        assert np.array_equal(z_arrays[name], value), name
    h_attrs["labels"] = [s.decode() for s in h_attrs["labels"]]
    for attrs in (z_attrs, h_attrs):
        attrs.pop("created")
    assert z_attrs.pop("complete") is True
    assert z_attrs == h_attrs


@pytest.mark.parametrize("layout", ["grid", "clips"])
def test_loaders_info_and_show_read_it(runs, layout, tmp_path):
    from pipeline.output.reader import FrameBlocks, describe, open_dataset, to_matrix

    src, out, _, _, _ = runs[layout]
    store = out / "audio.zarr"
    want, genres, labels, sources = serial_reference(src)
    n = len(labels)
    with open_dataset(store) as ds:
        assert ds.attrs["complete"] is True and ds.source.values.ravel().tolist() == sources
        assert np.array_equal(ds.Xa.values.reshape(want["Xa"].shape), want["Xa"])
        assert ds.Xs.dims[-1] == "bin" and ds.frequency.size == 96
    X, y = to_matrix(store, "Xa", labels=True)
    assert np.array_equal(X, want["Xa"].reshape(-1, 1024))  # rows: clip, frame, overlap
    assert y.tolist() == [lab for lab in labels for _ in range(64 * 2)]
    blocks = FrameBlocks(store, "Xa", frames=16)
    assert len(blocks) == n * 4
    block, label = blocks[n * 4 - 1]  # the last clip's last block
    assert label == labels[-1] and np.array_equal(block, want["Xa"][-1, 48:64])
    text = describe(store)
    assert f"progress: {n} of {n} clips finished; complete (a finished output)" in text
    assert f"clips: {n} slots, {n} valid" in text
    pytest.importorskip("matplotlib")
    p = audioprep("show", store, *(["--genre", "jazz"] if layout == "grid" else []), "--clip", "1", cwd=tmp_path)
    png = tmp_path / ("jazz-1.png" if layout == "grid" else "clip-1.png")
    assert png.stat().st_size > 10000 and f"wrote {png.name}" in p.stdout


@pytest.mark.parametrize("layout", ["grid", "clips"])
def test_the_same_run_again_is_up_to_date(runs, client, layout):
    src, out, first, _, _ = runs[layout]
    created = read_zarr(out / "audio.zarr")[1]["created"]
    again = preprocess(src, out, client=client, progress=False, output_format="zarr", layout=layout, **SMALL)
    assert again.up_to_date and again.computed == 0 and again.workers == []
    assert again.output_path == first.output_path and read_zarr(out / "audio.zarr")[1]["created"] == created
    assert hdf5_files(out) == []


def test_a_run_of_the_other_format_reopens_it_and_the_zarr_run_finishes_it_again_copying_nothing(
    runs, client, tmp_path
):
    """audio.hdf5 made later from a finished Zarr output computes nothing; the run that opened the store to write
    removed its 'complete', and the next Zarr run marks it again without a worker (no clip to copy)."""
    import shutil

    from support.compare import assert_zarr_equals_hdf5

    src, first, _, _, _ = runs["grid"]
    out = tmp_path / "out"
    shutil.copytree(first, out)
    kw = dict(client=client, progress=False, **SMALL)
    res = preprocess(src, out, output_format="hdf5", **kw)
    assert res.computed == 0 and res.resumed == 6 and res.output_path == str(out / "audio.hdf5")
    assert complete(out / "audio.zarr") is None  # opened to write by that run: not finished by it
    assert_zarr_equals_hdf5(out / "audio.zarr", out / "audio.hdf5")
    res = preprocess(src, out, output_format="zarr", **kw)
    assert not res.up_to_date and res.computed == 0 and res.resumed == 6 and res.workers == []
    assert complete(out / "audio.zarr") is True
    assert preprocess(src, out, output_format="zarr", **kw).up_to_date


def kill_mid_run(proc, store: Path) -> None:
    """Stop the driver (only it marks the store complete), check the run has not finished, then SIGKILL the run
    and its workers."""
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        assert proc.poll() is None and complete(store) is None, "the run finished before the kill point"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("layout", ["grid", "clips"])
def test_sigkill_mid_run_then_rerun_is_identical(full_clips, tmp_path, layout):
    args = ["--output-format", "zarr", "--layout", layout, "--workers", "2"]
    audioprep("run", full_clips, "-o", tmp_path / "whole", *args, cwd=tmp_path)
    out = tmp_path / "out"
    proc = start([full_clips, "-o", out, *args], tmp_path)
    wait_until(lambda: finished(out) >= 3, proc)
    kill_mid_run(proc, out / "audio.zarr")
    done = finished(out)
    rerun = audioprep("run", full_clips, "-o", out, *args, cwd=tmp_path)
    assert f"resuming: {done} of 8 clips" in rerun.stderr
    assert f"{8 - done} clips computed ({done} resumed" in rerun.stdout
    assert f"{out / 'audio.zarr'} is the output (no audio.hdf5)" in rerun.stderr
    assert hdf5_files(out) == []
    got, got_attrs = read_zarr(out / "audio.zarr")
    whole, whole_attrs = read_zarr(tmp_path / "whole" / "audio.zarr")
    assert sorted(got) == sorted(whole)
    for name in got:
        assert np.array_equal(got[name], whole[name]), name
    for attrs in (got_attrs, whole_attrs):
        attrs.pop("created")
    assert got_attrs == whole_attrs and got_attrs["complete"] is True


def test_a_bad_output_format_is_one_line_and_creates_nothing(tmp_path):
    src = genre_folder(tmp_path / "genres", {"blues": 1}, _clip)
    out = tmp_path / "out"
    r = audioprep("run", src, "-o", out, *SMALL_ARGS, "--output-format", "netcdf", cwd=tmp_path, check=False)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == "error: output-format=netcdf must be one of hdf5, zarr or null (--output-format)\n"
    with pytest.raises(ParameterError, match=r"^output-format=nc must be one of hdf5, zarr or null \(output_format\)$"):
        preprocess(src, out, output_format="nc", progress=False, **SMALL)
    config = tmp_path / "run.yaml"
    config.write_text("output-format: [zarr]\n")
    r = audioprep("run", src, "-o", out, "--config", config, cwd=tmp_path, check=False)
    assert r.returncode == 1 and r.stderr == (
        "error: output-format=['zarr'] must be one of hdf5, zarr or null (--output-format)\n"
    )
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["genres", "run.yaml"]
    flat = " ".join(audioprep("run", "--help", cwd=tmp_path).stdout.split())
    assert "--output-format [hdf5|zarr] The finished output: hdf5 = audio.hdf5 beside audio.zarr" in flat
    assert "[default: hdf5]" in flat.split("--output-format", 1)[1]
