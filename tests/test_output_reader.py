"""pipeline.output.reader: open_dataset, to_matrix and describe on both stores, against direct h5py / zarr reads."""

import warnings

import h5py
import numpy as np
import pytest
import zarr

from pipeline import PipelineError
from pipeline.output import describe, open_dataset, to_matrix


@pytest.fixture
def output(tiny_output):
    return tiny_output


def direct(out, kind, name):
    if kind == "hdf5":
        with h5py.File(out / "audio.hdf5") as f:
            return f[name][...]
    return zarr.open_group(str(out / "audio.zarr"), mode="r")[name][...]


def test_an_output_folder_reads_as_the_output_it_holds(output, tmp_path):
    """Before: 'not an audioprep Zarr store (GroupNotFoundError ...)' for the folder a run wrote."""
    ds = open_dataset(output)
    assert np.array_equal(ds.Xs.values, direct(output, "hdf5", "Xs"))
    assert describe(output).splitlines()[0].startswith(f"{output / 'audio.hdf5'}  (")
    zarr_only = tmp_path / "o"
    zarr_only.mkdir()
    (zarr_only / "audio.zarr").symlink_to(output / "audio.zarr")  # (a folder holding only the store)
    assert describe(zarr_only).splitlines()[0].startswith(f"{zarr_only / 'audio.zarr'}  (")


@pytest.mark.parametrize("kind", ["hdf5", "zarr"])
def test_open_dataset_is_lazy_and_labelled(output, kind):
    import dask.array as da

    ds = open_dataset(output / f"audio.{kind}")
    assert isinstance(ds.Xs.data, da.Array)  # nothing loaded yet
    assert ds.Xa.dims == ("genre", "clip", "frame", "overlap", "sample")
    assert ds.Xn.dims == ("genre", "clip", "frame", "overlap", "bin")
    assert list(ds.genre.values) == ["blues", "classical", "country"]
    assert ds.frequency.values[0] == pytest.approx(65.406, abs=1e-3)
    assert ds.frequency.values[24] == pytest.approx(130.81, abs=1e-2)  # one octave up
    assert ds.note.values[0] == "C2" and ds.note.values[24] == "C3" and ds.note.values[1] == "C2+50"
    assert ds.time.sel(frame=2, overlap=0) == pytest.approx(2 * 1024 / 22050)
    assert ds.time.sel(frame=2, overlap=1) == pytest.approx(2.5 * 1024 / 22050)
    for name in ("Xa", "Xs", "Xn", "valid"):
        assert np.array_equal(ds[name].values, direct(output, kind, name)), name
    assert np.array_equal(ds.Xs.sel(genre="classical").isel(clip=1).values, direct(output, kind, "Xs")[1, 1])


@pytest.mark.parametrize("kind", ["hdf5", "zarr"])
@pytest.mark.parametrize("name", ["Xa", "Xs", "Xn"])
def test_to_matrix_is_the_original_reshape(output, kind, name):
    full = direct(output, kind, name)
    n = full.shape[-1]
    m = to_matrix(output / f"audio.{kind}", name, genres=2, clips=1, frames=10)
    assert m.dtype == np.float32 and m.shape == (2 * 1 * 10 * 2, n)
    assert np.array_equal(m, full[:2, :1, :10].reshape(-1, n))
    assert np.array_equal(to_matrix(output / f"audio.{kind}", name), full.reshape(-1, n))
    by_name = to_matrix(output / f"audio.{kind}", name, genres=["country", "blues"], clips=[1], frames=5)
    assert np.array_equal(by_name, full[[0, 2]][:, [1], :5].reshape(-1, n))


def test_one_clip_is_one_range_of_bytes(output):
    """The layout to_matrix relies on: contiguous, C order, so clip (g, c) is one range at a known offset."""
    with h5py.File(output / "audio.hdf5") as f:
        d = f["Xa"]
        assert d.chunks is None and d.compression is None
        offset, clip = d.id.get_offset(), d[1, 1]
        G, C = d.shape[:2]
    with open(output / "audio.hdf5", "rb") as raw:
        raw.seek(offset + (1 * C + 1) * clip.nbytes)
        assert np.array_equal(np.frombuffer(raw.read(clip.nbytes), dtype="<f4").reshape(clip.shape), clip)


def test_to_matrix_errors_name_the_fix(output):
    with pytest.raises(PipelineError, match=r"genres: unknown name 'polka'; known: blues, classical, country"):
        to_matrix(output / "audio.hdf5", "Xs", genres=["polka"])
    with pytest.raises(PipelineError, match=r"clips=9 must be between 1 and 2"):
        to_matrix(output / "audio.zarr", "Xs", clips=9)
    with pytest.raises(PipelineError, match=r"holds no dataset 'Xq'"):
        to_matrix(output / "audio.zarr", "Xq")


def test_describe_shows_schema_labels_and_provenance(output, tmp_path, tiny_dataset, small_params):
    text = describe(output / "audio.hdf5")
    assert "Xa     (3, 2, 64, 2, 1024)" in text and "float32" in text and "chunks contiguous" in text
    assert "labels: blues, classical, country" in text
    assert "sr: 22050 Hz" in text and "6 valid" in text
    assert "lcn_sigma=2.0" in text and "librosa 0." in text and str(tiny_dataset) in text
    ztext = describe(output / "audio.zarr")
    assert "blosc(cname=lz4" in ztext and "progress: 6 of 6 clips finished" in ztext
    from pipeline.ingest import ingest

    g = ingest(tiny_dataset, tmp_path / "gtzan.hdf5", small_params)
    gtext = describe(g)
    assert "gtzan.hdf5" in gtext and "Ngenres: 3" in gtext and f"({small_params.nsamples}, 2)" in gtext


def test_a_store_with_unfinished_clips_is_read_with_a_warning(output, tmp_path):
    """Before: a Zarr-only output a run was interrupted in read as if whole (10 of 11 clips, no word)."""
    import shutil

    store = shutil.copytree(output / "audio.zarr", tmp_path / "audio.zarr")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a finished store: nothing said
        open_dataset(store).close()
    (store / "done" / "c.1.0").unlink()  # what a run stopped before it finished that clip leaves
    with pytest.warns(UserWarning, match=r"audio\.zarr is not finished: 5 of 6 clips are done \(a run was interrupted"):
        open_dataset(store).close()
