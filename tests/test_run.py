"""The whole pipeline on a real LocalCluster, against the independent serial reference."""

import json

import numpy as np
import pytest
from support.compare import assert_matches_reference, assert_zarr_equals_hdf5, read_hdf5

from pipeline.ingest import ingest
from pipeline.run import run

pytestmark = pytest.mark.slow


def test_folder_run_matches_serial_reference(tiny_dataset, small_params, reference, client, tmp_path):
    res = run(tiny_dataset, tmp_path, small_params, client=client)
    assert res.computed == 6 and res.resumed == 0 and not res.bad
    assert_matches_reference(tmp_path / "audio.hdf5", reference)
    assert_zarr_equals_hdf5(tmp_path / "audio.zarr", tmp_path / "audio.hdf5")
    arrays, attrs = read_hdf5(tmp_path / "audio.hdf5")
    # The default (float32) path: within 1e-6 of each clip's maximum of the reference loop's librosa.cqt
    want = reference[0]["Xs"]
    assert (np.abs(arrays["Xs"] - want).max(axis=(2, 3, 4)) <= 1e-6 * np.abs(want).max(axis=(2, 3, 4))).all()
    assert not np.array_equal(arrays["Xs"], want)
    assert attrs["precision"] == "float32"
    assert attrs["sr"] == 22050 and attrs["input_kind"] == "folder"
    assert json.loads(attrs["params"]) == small_params.to_dict()
    assert set(json.loads(attrs["versions"])) >= {"python", "numpy", "librosa", "dask", "zarr", "h5py", "audioprep"}
    summary = json.loads((tmp_path / "audio.summary.json").read_text())
    assert summary["computed"] == 6 and summary["bytes_written"] == res.bytes_written > 0


def test_exact_precision_gives_librosa_bits_and_resume_refuses_to_mix_paths(
    tiny_dataset, small_params, reference, client, tmp_path
):
    from pipeline.exceptions import StoreError

    exact = small_params.replace(precision="exact")
    run(tiny_dataset, tmp_path, exact, client=client)
    arrays, attrs = read_hdf5(tmp_path / "audio.hdf5")
    assert np.array_equal(arrays["Xs"], reference[0]["Xs"])  # |librosa.cqt| of the reference loop, to the bit
    assert attrs["precision"] == "exact" and json.loads(attrs["params"])["precision"] == "exact"
    (tmp_path / "audio.hdf5").unlink()  # the store alone is left: a resume with the other path must not mix them
    with pytest.raises(
        StoreError,
        match=r"audio.zarr exists and it was made with other parameters "
        r"\(precision: 'exact' -> 'float32'\); use --overwrite",
    ):
        run(tiny_dataset, tmp_path, small_params, client=client)
    assert not (tmp_path / "audio.hdf5").exists()


def test_hdf5_input_gives_the_same_arrays(tiny_dataset, small_params, reference, client, tmp_path):
    gtzan = ingest(tiny_dataset, tmp_path / "gtzan.hdf5", small_params)
    run(gtzan, tmp_path / "out", small_params, client=client)
    assert_matches_reference(tmp_path / "out" / "audio.hdf5", reference)
    _, attrs = read_hdf5(tmp_path / "out" / "audio.hdf5")
    assert attrs["input_kind"] == "hdf5"


def test_subset_of_datasets(tiny_dataset, small_params, reference, client, tmp_path):
    params = small_params.replace(datasets="Xs,Xn")
    run(tiny_dataset, tmp_path, params, client=client)
    arrays, attrs = read_hdf5(tmp_path / "audio.hdf5")
    assert sorted(a for a in arrays if a in ("Xa", "Xs", "Xn", "valid")) == ["Xn", "Xs", "valid"]
    assert "sample" not in arrays and "bin" in arrays  # only the coordinates of what is there
    assert attrs["datasets"] == "Xs,Xn"
    assert_matches_reference(tmp_path / "audio.hdf5", reference, datasets=("Xs", "Xn"))


def test_hdf5_is_contiguous_and_holds_little_beyond_its_arrays(tiny_dataset, small_params, client, tmp_path):
    """Each array is one contiguous block (a clip is one range of bytes, read with one seek), and the file
    holds its arrays plus a little metadata, however many clips it has."""
    import h5py

    run(tiny_dataset, tmp_path, small_params, client=client)
    with h5py.File(tmp_path / "audio.hdf5") as f:
        arrays = 0
        for name in ("Xa", "Xs", "Xn"):
            d = f[name]
            assert d.chunks is None and d.id.get_storage_size() == d.size * 4
            arrays += d.size * 4
    extra = (tmp_path / "audio.hdf5").stat().st_size - arrays
    assert 0 < extra < 100_000  # coordinates, source, valid, attributes: 1 % of 3.7 MB is 37 kB


def test_hdf5_input_at_another_rate_is_resampled_then_truncated(small_params, client, tmp_path):
    """A gtzan.hdf5 at 44.1 kHz with --resample: the arrays of that audio resampled, then cut to Nsamples."""
    import h5py
    import librosa
    from support.reference import reference_clip

    from pipeline.synth import synth_clip

    y44 = librosa.resample(synth_clip("jazz", 0, 0, nsamples=22050 * 4), orig_sr=22050, target_sr=44100)
    path = tmp_path / "gtzan.hdf5"
    with h5py.File(path, "w") as f:
        f.create_dataset("jazz", data=y44.astype(np.float32)[:, None])
        f.attrs.update({"Ngenres": 1, "Nclips": 1, "sr": 44100, "Nsamples": len(y44)})
    params = small_params.replace(resample=True)
    run(path, tmp_path / "out", params, client=client)
    y = librosa.resample(y44.astype(np.float32), orig_sr=44100, target_sr=22050)[: params.nsamples]
    xa, xs, xn = reference_clip(y, Nsamples=params.nsamples)
    arrays, _ = read_hdf5(tmp_path / "out" / "audio.hdf5")
    assert np.array_equal(arrays["Xa"][0, 0], xa)
    assert np.abs(arrays["Xs"][0, 0] - xs).max() <= 1e-5 * np.abs(xs).max()
    assert np.abs(arrays["Xn"][0, 0] - xn).max() <= 1e-4


def test_a_window_of_one_clip_in_flight_gives_the_same_output(tiny_dataset, small_params, reference, client, tmp_path):
    """Clips are submitted in a bounded window (audioprep.clips-in-flight); the smallest window still works."""
    import dask

    with dask.config.set({"audioprep.clips-in-flight": 1}):
        res = run(tiny_dataset, tmp_path, small_params, client=client)
    assert res.computed == 6 and not res.bad
    assert_matches_reference(tmp_path / "audio.hdf5", reference)


def test_two_runs_on_one_scheduler_each_write_their_own_clips(small_params, tmp_path):
    """Before: task keys were made from the clip names alone, so of two runs on one client with the same clip
    names the scheduler gave the second the first's tasks: its output was all zeros, and it said '6 computed'.

    Both runs' tasks are in the scheduler before any worker exists (a cluster of no workers, scaled up once the
    scheduler has received both runs' graphs), so they always overlap."""
    import concurrent.futures
    import threading

    from distributed import Client, LocalCluster
    from distributed.diagnostics.plugin import SchedulerPlugin
    from support.reference import reference_folder

    from pipeline.synth import synth_dataset

    inputs = [synth_dataset(tmp_path / f"in{i}", genres=3, clips=2, seconds=3.0, seed=11 + i) for i in range(2)]
    assert sorted(p.name for p in inputs[0].rglob("*.au")) == sorted(p.name for p in inputs[1].rglob("*.au"))

    class Graphs(SchedulerPlugin):
        def __init__(self):
            self.seen, self.both = 0, threading.Event()

        def update_graph(self, scheduler, **kwargs):
            self.seen += 1
            if self.seen >= 2:
                self.both.set()

    graphs = Graphs()
    with (
        LocalCluster(
            n_workers=0,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            local_directory=str(tmp_path / "scratch"),
        ) as cluster,
        Client(cluster) as cl,
    ):
        cluster.scheduler.add_plugin(graphs)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:  # two notebook cells, one client
            runs = [pool.submit(run, inputs[i], tmp_path / f"o{i}", small_params, client=cl) for i in range(2)]
            assert graphs.both.wait(120), "the two runs did not both submit their tasks"
            cluster.scale(2)
            results = [r.result(timeout=300) for r in runs]
    for i in range(2):
        assert results[i].computed == 6 and not results[i].bad, results[i]
        assert_matches_reference(
            tmp_path / f"o{i}" / "audio.hdf5", reference_folder(inputs[i], Nsamples=small_params.nsamples)
        )
