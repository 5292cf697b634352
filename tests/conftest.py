"""Shared fixtures: small seeded synthetic data and one real LocalCluster per session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

# Dask's scratch files go to a temporary folder, not the repo or /tmp/dask-scratch-space.
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")
# Every run a test starts puts its dashboard on a free port: none binds the default 8787 (tests run side by side,
# and a user's own Dask may hold it). A test of the default itself removes this (audioprep(env={KEY: None})).
os.environ.setdefault("DASK_AUDIOPREP__DASHBOARD_ADDRESS", "127.0.0.1:0")

from support.data import SMALL, SMALL_SECONDS  # noqa: E402


@pytest.fixture(scope="session")
def small_params():
    from pipeline.params import Params

    return Params(**SMALL)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """3 genres x 2 clips of 3 s, 16-bit PCM .au files (GTZAN layout)."""
    from pipeline.synth import synth_dataset

    base = tmp_path_factory.mktemp("tiny")
    return synth_dataset(base, genres=3, clips=2, seconds=SMALL_SECONDS, seed=1)


@pytest.fixture(scope="session")
def reference(tiny_dataset):
    from support.reference import reference_folder

    return reference_folder(tiny_dataset, Nsamples=SMALL["nsamples"])


@pytest.fixture(scope="session")
def client(tmp_path_factory):
    """A real dask.distributed LocalCluster: 2 single-threaded worker processes."""
    from distributed import Client, LocalCluster

    scratch = tmp_path_factory.mktemp("dask-scratch")
    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        local_directory=str(scratch),
    )
    cl = Client(cluster)
    yield cl
    cl.close()
    cluster.close()


@pytest.fixture(scope="session")
def tiny_output(tiny_dataset, small_params, client, tmp_path_factory):
    """The output folder of one run on the tiny dataset (read, never written, by the tests that use it)."""
    from pipeline.run import run

    out = tmp_path_factory.mktemp("tiny-output")
    run(tiny_dataset, out, small_params, client=client)
    return out


@pytest.fixture(scope="session")
def full_clips(tmp_path_factory):
    """2 genres x 4 GTZAN-length clips: long enough to interrupt a run in mid-flight."""
    from pipeline.synth import synth_dataset

    return synth_dataset(tmp_path_factory.mktemp("full"), genres=2, clips=4, seed=4)


@pytest.fixture(scope="session")
def undisturbed(full_clips, tmp_path_factory):
    """audio.hdf5 of an uninterrupted CLI run on ``full_clips``."""
    import subprocess

    out = tmp_path_factory.mktemp("undisturbed")
    p = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", str(full_clips), "-o", str(out), "--workers", "2"],
        capture_output=True,
        text=True,
        cwd=out,
    )
    assert p.returncode == 0, p.stderr
    return out / "audio.hdf5"


@pytest.fixture(scope="session")
def many_clips(tmp_path_factory):
    """10 genres x 10 GTZAN-length clips: a run that lasts while a test probes it."""
    from pipeline.synth import synth_dataset

    return synth_dataset(tmp_path_factory.mktemp("many"), genres=10, clips=10, seed=9)


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MB tmpfs (remount it to resize it), to fill a disk for real."""
    import subprocess

    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here to fill a disk ({r.stderr.decode().strip()})")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)])


@pytest.fixture(scope="session")
def padded_output(tmp_path_factory):
    """A run with --pad-short and --skip-bad: blues has a full clip and a 1-s one (zero-padded), rock a full clip
    and a corrupt one (invalid, zeros)."""
    import numpy as np
    import soundfile as sf
    from support.cli import audioprep
    from support.data import SMALL_ARGS

    base = tmp_path_factory.mktemp("padded")
    rng = np.random.default_rng(8)
    for genre in ("blues", "rock"):
        (base / "genres" / genre).mkdir(parents=True)
        sf.write(
            base / "genres" / genre / "a.wav", rng.uniform(-0.3, 0.3, SMALL["nsamples"] + 100), 22050, subtype="PCM_16"
        )
    sf.write(base / "genres" / "blues" / "b.wav", rng.uniform(-0.3, 0.3, 22050), 22050, subtype="PCM_16")
    (base / "genres" / "rock" / "b.wav").write_bytes(b"RIFF" + rng.bytes(3000))
    audioprep("run", base / "genres", "-o", base / "out", *SMALL_ARGS, "--pad-short", "--skip-bad", cwd=base)
    return base / "out" / "audio.hdf5"
