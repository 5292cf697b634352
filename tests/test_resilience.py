"""Never lose work: SIGKILL of the run or of a worker, full disks, output rules."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from support.cli import audioprep, finished, start, wait_until
from support.compare import assert_same_output, read_hdf5

from pipeline import StoreError
from pipeline.run import run
from pipeline.synth import synth_dataset

pytestmark = pytest.mark.slow


def kill_mid_run(proc, out: Path) -> None:
    """Stop the driver where the run is now, check that it has not finished, then SIGKILL the run and its workers.

    Only the driver renames audio.hdf5 into place: once it is stopped (SIGSTOP), the run cannot finish before the
    kill, whatever the workers do meanwhile."""
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        assert proc.poll() is None and not (out / "audio.hdf5").exists(), "the run finished before the kill point"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the run and all its workers
        proc.wait()
    assert proc.returncode == -signal.SIGKILL  # killed, not finished


@pytest.mark.parametrize("point", ["store-created", "hdf5-partial", "2-clips", "6-clips", "all-done"])
def test_sigkill_whole_run_then_rerun_is_identical(full_clips, undisturbed, tmp_path, point):
    """Before: a run that finished before its kill point was not killed, and the test passed all the same."""
    out = tmp_path / "out"
    proc = start([full_clips, "-o", out, "--workers", "2"], tmp_path)
    conds = {
        "store-created": lambda: (out / "audio.zarr" / "done").exists(),
        "2-clips": lambda: finished(out) >= 2,
        "6-clips": lambda: finished(out) >= 6,
        "hdf5-partial": lambda: any(out.glob(".audio.hdf5.*.partial")),
        "all-done": lambda: finished(out) >= 8,  # the last copies and the rename are under way
    }
    wait_until(conds[point], proc)  # fails if the run ends first
    kill_mid_run(proc, out)
    done = finished(out)
    rerun = audioprep("run", full_clips, "-o", out, "--workers", "2", cwd=tmp_path)
    if done:
        assert f"resuming: {done} of 8 clips" in rerun.stderr
        assert f"{8 - done} clips computed ({done} resumed" in rerun.stdout
    assert_same_output(out / "audio.hdf5", undisturbed)


def test_sigkill_of_a_worker_does_not_fail_the_run(full_clips, undisturbed, tmp_path):
    out = tmp_path / "out"
    proc = start([full_clips, "-o", out, "--workers", "2"], tmp_path)
    wait_until(lambda: finished(out) >= 1, proc)
    workers = children(proc)
    assert workers, "no worker process found"
    workers[0].send_signal(signal.SIGKILL)
    text, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, text
    assert "0 bad" in text
    assert_same_output(out / "audio.hdf5", undisturbed)


def children(proc):
    """The run's Dask workers: processes spawned by its nannies, or forked from its forkserver (pipeline.warm)."""
    found = []
    for p in psutil.Process(proc.pid).children(recursive=True):
        try:
            cmd = " ".join(p.cmdline())
            parent = " ".join(psutil.Process(p.ppid()).cmdline())
        except psutil.Error:
            continue
        if "spawn_main" in cmd or ("forkserver import main" in parent and p.ppid() != proc.pid):
            found.append(p)
    return found


def hdf5_bytes_written(out: Path) -> int:
    """Bytes the workers have written into the temporary audio.hdf5 so far (it is sparse until then)."""
    total = 0
    for p in out.glob(".audio.hdf5.*.partial"):
        try:
            total += p.stat().st_blocks * 512
        except FileNotFoundError:
            pass
    return total


def test_sigkill_during_the_per_clip_hdf5_writes_then_rerun_is_identical(full_clips, undisturbed, tmp_path):
    """Workers write each clip's bytes into the temporary audio.hdf5: kill everything while they do."""
    out = tmp_path / "out"
    proc = start([full_clips, "-o", out, "--workers", "2"], tmp_path)
    wait_until(lambda: hdf5_bytes_written(out) > 1 << 20 and finished(out) < 8, proc)
    kill_mid_run(proc, out)
    rerun = audioprep("run", full_clips, "-o", out, "--workers", "2", cwd=tmp_path)
    assert "Traceback" not in rerun.stderr
    assert not list(out.glob(".audio.hdf5.*.partial"))  # the killed run's temporary is gone
    assert_same_output(out / "audio.hdf5", undisturbed)


def test_store_from_other_parameters_is_refused(tiny_dataset, small_params, client, tmp_path):
    run(tiny_dataset, tmp_path, small_params, client=client)
    (tmp_path / "audio.hdf5").unlink()
    with pytest.raises(
        StoreError,
        match=r"audio.zarr exists and it was made with other parameters "
        r"\(lcn_sigma: 2.0 -> 3.0\); use --overwrite",
    ):
        run(tiny_dataset, tmp_path, small_params.replace(lcn_sigma=3.0), client=client)
    res = run(tiny_dataset, tmp_path, small_params.replace(lcn_sigma=3.0), client=client, overwrite=True)
    assert res.computed == 6 and res.resumed == 0
    _, attrs = read_hdf5(tmp_path / "audio.hdf5")
    assert attrs["lcn_sigma"] == 3.0


def test_existing_hdf5_is_not_overwritten(tiny_dataset, small_params, client, tmp_path):
    run(tiny_dataset, tmp_path, small_params, client=client)
    before = (tmp_path / "audio.hdf5").stat().st_mtime_ns
    with pytest.raises(StoreError, match=r"audio.hdf5 exists and it was made with other parameters"):
        run(tiny_dataset, tmp_path, small_params.replace(ns=48, n_octaves=2), client=client)
    assert (tmp_path / "audio.hdf5").stat().st_mtime_ns == before
    # the same run again is up to date and does nothing
    assert run(tiny_dataset, tmp_path, small_params, client=client).up_to_date


def test_unwritable_output_folder_is_a_clear_error(tiny_dataset, small_params, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match=r"cannot write to the output folder .*file/out .*choose another with -o"):
        run(tiny_dataset, blocker / "out", small_params)


def test_second_run_on_same_output_exits_at_once_naming_the_holder(many_clips, tmp_path):
    out = tmp_path / "out"
    first = start([many_clips, "-o", out, "--workers", "1"], tmp_path)
    try:
        wait_until(lambda: (out / "audio.zarr").exists(), first)
        second = audioprep("run", many_clips, "-o", out, check=False, cwd=tmp_path, timeout=60)
        assert second.returncode == 1
        assert f"in use by another audioprep run (pid {first.pid} on host " in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()


def test_full_disk_is_a_clear_error_and_the_store_resumes(tiny_dataset, small_params, client, small_disk, tmp_path):
    from support.compare import assert_matches_reference
    from support.data import SMALL
    from support.reference import reference_folder

    # 1 MB cannot hold audio.hdf5 (3.7 MB): refused before any work
    with pytest.raises(StoreError, match=r"has 1\.\d MB free but audio.hdf5 needs about 4\.\d MB"):
        run(tiny_dataset, small_disk, small_params, client=client)
    assert not (small_disk / "audio.zarr").exists()
    # 4.5 MB passes the check, holds the store, then fills while audio.hdf5 is written
    subprocess.run(["mount", "-o", "remount,size=4500k", str(small_disk)], check=True)
    with pytest.raises(
        StoreError,
        match=r"cannot write to .* \(No space left on device\); the finished "
        r"clips are kept in .*audio.zarr: .*run the same command again to resume",
    ):
        run(tiny_dataset, small_disk, small_params, client=client)
    assert not (small_disk / "audio.hdf5").exists() and not list(small_disk.glob(".audio.hdf5*"))
    # space freed: the same run resumes from the store and completes
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    res = run(tiny_dataset, small_disk, small_params, client=client)
    assert res.resumed + res.computed == 6 and res.resumed > 0  # a clip counts as done once in both files
    assert_matches_reference(small_disk / "audio.hdf5", reference_folder(tiny_dataset, Nsamples=SMALL["nsamples"]))


def test_clip_that_keeps_killing_workers_is_not_stored_and_the_next_run_computes_it(tmp_path):
    """A 1024-channel WAV (libsndfile's most), which --mono must decode to down-mix: its clip's 540 MB
    of samples exceed the workers' memory limit (400 MiB), and the nanny kills each worker that takes it.

    The run, not the clip's data, failed it: it is not stored as bad (before, it was, for good, and the
    next run said "up to date"); the run exits 4 naming it, and the next run, given the memory, computes
    it and keeps the others.  (A long file no longer does: --resample decodes only the span a clip keeps.)"""
    import numpy as np
    import soundfile as sf

    root = synth_dataset(tmp_path / "in", genres=1, clips=3, seconds=6.0, seed=5)
    (root / "blues" / "blues.00001.au").unlink()
    bomb = root / "blues" / "blues.00001.wav"
    nsamples = 132300
    with sf.SoundFile(str(bomb), "w", 22050, 1024, "PCM_16") as f:
        block = np.tile((0.1 * np.sin(np.arange(22050) / 7)).astype(np.float32)[:, None], (1, 1024))
        for _ in range(nsamples // 22050 + 1):
            f.write(block)
    args = [
        sys.executable,
        "-m",
        "pipeline",
        "run",
        str(root),
        "-o",
        str(tmp_path / "out"),
        "--mono",
        "--nsamples",
        str(nsamples),
        "--skip-bad",
        "--workers",
        "2",
    ]
    env = {**os.environ, "DASK_AUDIOPREP__MEMORY_LIMIT": "400MiB", "DASK_AUDIOPREP__ALLOWED_FAILURES": "1"}
    p = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert p.returncode == 4, p.stderr
    assert f"error: {bomb}: killed its worker process on every attempt (2): out of memory" in p.stderr
    assert "1 clip(s) not computed because of the run" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "out" / "audio.hdf5").exists()
    done = sorted(q.name for q in (tmp_path / "out" / "audio.zarr" / "done").glob("c.*"))
    assert done == ["c.0.0", "c.0.2"]
    env["DASK_AUDIOPREP__MEMORY_LIMIT"] = "3GiB"
    p = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "1 clips computed (2 resumed, 0 bad, 0 missing) of 3" in p.stdout
    arrays, _ = read_hdf5(tmp_path / "out" / "audio.hdf5")
    assert arrays["valid"].tolist() == [[True, True, True]]
