"""The clip layout (``layout="clips"``): one row a clip, for genres of any size, against the serial reference."""

from pathlib import Path

import numpy as np
import pytest
from support.compare import assert_zarr_equals_hdf5, read_hdf5
from support.data import SMALL, SR, genre_folder

from pipeline.params import Params
from pipeline.run import run

pytestmark = pytest.mark.slow

SIZES = {"blues": 5, "jazz": 2, "rock": 1}


def _clip(g, c):
    rng = np.random.default_rng(100 * g + c)
    t = np.arange(int(SR * 3)) / SR
    return (0.3 * np.sin(2 * np.pi * (110 + 50 * g + 7 * c) * t) + 0.05 * rng.standard_normal(t.size)).astype(
        np.float32
    )


@pytest.fixture(scope="module")
def unequal(tmp_path_factory):
    """Genres of 5, 2 and 1 clips."""
    return genre_folder(tmp_path_factory.mktemp("unequal") / "genres", SIZES, _clip)


def clip_reference(root):
    """Each clip's reference arrays, one row a clip in (genre, file) order, with its label and source."""
    from support.reference import reference_rows

    return reference_rows(root, Nsamples=SMALL["nsamples"])


def test_unequal_genres_run_to_one_row_a_clip_equal_to_the_reference(unequal, client, tmp_path):
    res = run(unequal, tmp_path, Params(**SMALL, layout="clips"), client=client)
    assert res.clips == 8 and res.computed == 8 and not res.bad and not res.missing
    arrays, attrs = read_hdf5(tmp_path / "audio.hdf5")
    want, genres, labels, sources = clip_reference(unequal)
    assert attrs["layout"] == "clips" and [s.decode() for s in attrs["labels"]] == genres
    assert "genre" not in arrays  # no genre dimension: the label is per clip
    assert arrays["label"].tolist() == labels == [0, 0, 0, 0, 0, 1, 1, 2]
    assert arrays["source"].tolist() == sources
    assert arrays["valid"].tolist() == [True] * 8 and arrays["samples"].tolist() == [SMALL["nsamples"]] * 8
    assert arrays["start"].tolist() == [0.0] * 8 and arrays["clip"].tolist() == list(range(8))
    for name in ("Xa", "Xs", "Xn"):
        assert arrays[name].shape == want[name].shape == (8, 64, 2, 1024 if name == "Xa" else 96), name
    assert np.array_equal(arrays["Xa"], want["Xa"])
    for row in range(8):  # docs/numerics.md: within 1e-5 of each clip's maximum
        assert np.abs(arrays["Xs"][row] - want["Xs"][row]).max() <= 1e-5 * np.abs(want["Xs"][row]).max(), row
    assert np.abs(arrays["Xn"] - want["Xn"]).max() <= 1e-4
    assert_zarr_equals_hdf5(tmp_path / "audio.zarr", tmp_path / "audio.hdf5")
    import h5py
    import zarr

    root = zarr.open_group(str(tmp_path / "audio.zarr"), mode="r")
    assert root["Xs"].chunks == (1, 64, 2, 96) and root["Xs"].metadata.dimension_names[0] == "clip"
    with h5py.File(tmp_path / "audio.hdf5") as f:  # named dimensions, the label beside each array
        assert [d[0].name.lstrip("/") for d in f["Xs"].dims] == ["clip", "frame", "overlap", "bin"]
        assert "label" in f["Xs"].attrs["coordinates"].split()


def test_skip_bad_and_datasets_in_the_clip_layout(unequal, client, tmp_path):
    import shutil

    root = tmp_path / "genres"
    shutil.copytree(unequal, root)
    (root / "jazz" / "jazz.00000.wav").write_bytes(b"not audio at all" * 100)
    res = run(root, tmp_path / "o", Params(**SMALL, layout="clips", datasets=("Xs",)), client=client, skip_bad=True)
    assert res.computed == 7 and len(res.bad) == 1 and "jazz.00000.wav" in res.bad[0]
    arrays, attrs = read_hdf5(tmp_path / "o" / "audio.hdf5")
    assert "Xa" not in arrays and "Xn" not in arrays and arrays["Xs"].shape == (8, 64, 2, 96)
    assert arrays["valid"].tolist() == [True] * 5 + [False] + [True] * 2
    assert not arrays["Xs"][5].any() and arrays["label"][5] == 1
    want = clip_reference(unequal)[0]["Xs"]
    for row in (0, 4, 6, 7):
        assert np.abs(arrays["Xs"][row] - want[row]).max() <= 1e-5 * np.abs(want[row]).max(), row
    assert_zarr_equals_hdf5(tmp_path / "o" / "audio.zarr", tmp_path / "o" / "audio.hdf5")


def test_the_grid_refusal_offers_the_clip_layout_first_and_a_resume_refuses_to_mix_layouts(unequal, client, tmp_path):
    from pipeline.exceptions import BadInputError, StoreError

    with pytest.raises(BadInputError) as e:
        run(unequal, tmp_path, Params(**SMALL), client=client)
    (p,) = e.value.problems
    assert p.reason.index("--layout clips") < p.reason.index("--pad")
    assert not (tmp_path / "audio.zarr").exists()
    run(unequal, tmp_path, Params(**SMALL, layout="clips", datasets=("Xa",)), client=client)
    (tmp_path / "audio.hdf5").unlink()  # so the store itself is what is resumed
    with pytest.raises(StoreError, match=r"other parameters \(layout: 'clips' -> 'grid'\)"):
        run(unequal, tmp_path, Params(**SMALL, datasets=("Xa",)), client=client, pad=True)


def test_pad_with_the_clip_layout_is_refused_before_anything_is_created(unequal, client, tmp_path):
    from pipeline.exceptions import ParameterError

    out = tmp_path / "out"
    with pytest.raises(ParameterError, match=r"--layout clips has no slots to fill .*drop --pad"):
        run(unequal, out, Params(**SMALL, layout="clips"), client=client, pad=True)
    assert not out.exists()


@pytest.fixture(scope="module")
def clips_out(unequal, client, tmp_path_factory):
    """The clip layout's output of the genres of 5, 2 and 1 clips."""
    out = tmp_path_factory.mktemp("clips-out")
    run(unequal, out, Params(**SMALL, layout="clips"), client=client)
    return out


@pytest.mark.parametrize("store", ["audio.hdf5", "audio.zarr"])
def test_loaders_read_the_clip_layout(clips_out, unequal, store):
    from pipeline.output.reader import FrameBlocks, describe, open_dataset, to_matrix

    want, genres, labels, sources = clip_reference(unequal)
    got, _ = read_hdf5(clips_out / "audio.hdf5")
    path = clips_out / store
    with open_dataset(path) as ds:
        assert ds.Xn.dims == ("clip", "frame", "overlap", "bin") and ds.sizes["clip"] == 8
        assert ds.label.values.tolist() == labels and ds.source.values.tolist() == sources
        assert list(ds.attrs["labels"]) == genres  # what each label index names (the grid's is its genre axis)
        assert np.array_equal(ds.Xn.isel(clip=6).values, got["Xn"][6])
        assert np.array_equal(ds.Xa.where(ds.label == 1, drop=True).values, want["Xa"][5:7])
    X, y = to_matrix(path, "Xa", labels=True)
    assert np.array_equal(X, want["Xa"].reshape(-1, 1024))  # rows: clip, frame, overlap
    assert y.tolist() == [lab for lab in labels for _ in range(64 * 2)]
    X, y = to_matrix(path, "Xa", genres=["rock", "jazz"], frames=3, labels=True)
    assert np.array_equal(X, want["Xa"][5:8, :3].reshape(-1, 1024)) and y.tolist() == [1] * 12 + [2] * 6
    X = to_matrix(path, "Xs", clips=[7, 0])
    assert np.array_equal(X, got["Xs"][[0, 7]].reshape(-1, 96))
    blocks = FrameBlocks(path, "Xa", frames=16)
    assert len(blocks) == 8 * 4
    for i in (0, 21, 31):
        block, label = blocks[i]
        assert label == labels[i // 4] and np.array_equal(block, want["Xa"][i // 4, (i % 4) * 16 : (i % 4 + 1) * 16])
    from pipeline.exceptions import PipelineError

    with pytest.raises(PipelineError, match="holds no split array"):  # a folder has no splits
        to_matrix(path, "Xa", split="training")
    text = describe(path)
    assert "layout: clips, one row a clip (8 clips: blues=5, jazz=2, rock=1)" in text
    assert "clips: 8 slots, 8 valid" in text


def kill_mid_run(proc, out: Path) -> None:
    """Stop the driver (only it renames audio.hdf5 into place), check the run has not finished, then SIGKILL the
    run and its workers."""
    import os
    import signal

    os.kill(proc.pid, signal.SIGSTOP)
    try:
        assert proc.poll() is None and not (out / "audio.hdf5").exists(), "the run finished before the kill point"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL


@pytest.fixture(scope="module")
def unequal_full(tmp_path_factory):
    """Genres of 5, 2 and 1 GTZAN-length clips: long enough to interrupt a run in mid-flight."""

    def clip(g, c):
        return np.tile(_clip(g, c), 11)[: 30 * SR + 100]

    return genre_folder(tmp_path_factory.mktemp("unequal-full") / "genres", SIZES, clip)


@pytest.mark.parametrize("point", ["hdf5-partial", "3-clips"])
def test_sigkill_in_the_clip_layout_then_rerun_is_identical(unequal_full, tmp_path, point):
    from support.cli import audioprep, finished, start, wait_until
    from support.compare import assert_same_output

    args = ["--layout", "clips", "--workers", "2"]
    audioprep("run", unequal_full, "-o", tmp_path / "whole", *args, cwd=tmp_path)
    out = tmp_path / "out"
    proc = start([unequal_full, "-o", out, *args], tmp_path)
    conds = {
        "hdf5-partial": lambda: any(out.glob(".audio.hdf5.*.partial")),
        "3-clips": lambda: finished(out) >= 3,
    }
    wait_until(conds[point], proc)
    kill_mid_run(proc, out)
    done = finished(out)
    rerun = audioprep("run", unequal_full, "-o", out, *args, cwd=tmp_path)
    if done:
        assert f"resuming: {done} of 8 clips" in rerun.stderr
        assert f"{8 - done} clips computed ({done} resumed" in rerun.stdout
    assert_same_output(out / "audio.hdf5", tmp_path / "whole" / "audio.hdf5")
    arrays, attrs = read_hdf5(out / "audio.hdf5")
    assert attrs["layout"] == "clips" and arrays["label"].tolist() == [0] * 5 + [1] * 2 + [2]


def test_show_draws_a_clip_by_row_and_the_summary_per_label(clips_out, unequal, tmp_path):
    pytest.importorskip("matplotlib")
    from support.cli import audioprep

    from pipeline.exceptions import PipelineError
    from pipeline.plot import show_clip, show_summary

    want = clip_reference(unequal)[0]
    got, _ = read_hdf5(clips_out / "audio.hdf5")
    for kw, row in (({"clip": 6}, 6), ({"genre": "jazz", "clip": 1}, 6), ({"genre": "rock", "clip": 0}, 7)):
        fig = show_clip(clips_out / "audio.zarr", **kw)
        assert fig._suptitle.get_text().startswith(f"clip {row} (")
        line = [ax for ax in fig.axes if ax.get_title().startswith("waveform")][0].get_lines()[0]
        assert np.array_equal(line.get_ydata()[:1024], want["Xa"][row, 0, 0])
    with pytest.raises(PipelineError, match=r"--clip 2 is out of range; .* holds 2 clips labelled jazz"):
        show_clip(clips_out / "audio.hdf5", genre="jazz", clip=2)
    fig = show_summary(clips_out / "audio.hdf5")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["blues", "jazz", "rock"]
    shown = np.ma.getdata(ax.images[0].get_array())
    mean = np.stack([got["Xs"][rows].mean(axis=(1, 2)).mean(axis=0) for rows in ([0, 1, 2, 3, 4], [5, 6], [7])], 1)
    assert np.allclose(shown, 20 * np.log10(np.maximum(mean, mean.max() * 1e-5) / mean.max()), atol=1e-4)
    p = audioprep("show", clips_out / "audio.hdf5", "--clip", "7", cwd=tmp_path)
    assert (tmp_path / "clip-7.png").stat().st_size > 10000 and "wrote clip-7.png" in p.stdout
