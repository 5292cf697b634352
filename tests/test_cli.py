"""The command line end to end, as a user runs it (real processes, real LocalCluster)."""

import subprocess

import h5py
import pytest
from support.cli import audioprep
from support.compare import assert_matches_reference
from support.data import SMALL_ARGS


def test_help_lists_commands_and_defaults():
    out = audioprep("--help").stdout
    for cmd in ("run", "ingest", "synth", "cluster"):
        assert cmd in out
    run_help = " ".join(audioprep("run", "--help", env={"DASK_AUDIOPREP__DASHBOARD_ADDRESS": None}).stdout.split())
    assert "[default: 1024]" in run_help and "C2 = 65.406 Hz" in run_help and "127.0.0.1:8787" in run_help


def test_console_script_is_installed(tmp_path):
    """The 'audioprep' installed beside this Python is the package's entry point (pipeline._entry:main), and it
    answers as 'python -m pipeline' does: its version, a user's mistake (one line, exit 3), a command's files."""
    import importlib.metadata
    import os
    import shutil
    import sys

    import pipeline

    dist = importlib.metadata.distribution("audioprep-dask")
    (entry,) = [e for e in dist.entry_points if e.group == "console_scripts" and e.name == "audioprep"]
    assert entry.value == "pipeline._entry:main"  # a light entry: a Ctrl-C during the imports is one line too
    exe = shutil.which("audioprep", path=os.path.dirname(sys.executable))
    assert exe, f"no audioprep script beside {sys.executable}"
    v = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert (v.returncode, v.stdout) == (0, f"audioprep, version {pipeline.__version__}\n"), v.stderr
    missing = tmp_path / "nowhere"
    script = subprocess.run(
        [exe, "run", str(missing), "-o", str(tmp_path / "o")], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    module = audioprep("run", missing, "-o", tmp_path / "o", check=False, cwd=tmp_path)
    assert script.returncode == module.returncode == 3
    assert (
        script.stderr == module.stderr == f"error: {missing}: no such file or folder; give a GTZAN-style "
        "folder ROOT/<genre>/<file>, a gtzan.hdf5 or a manifest .csv\n"
    )
    s = subprocess.run(
        [exe, "synth", str(tmp_path / "s"), "--genres", "2", "--clips", "1", "-q"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert s.returncode == 0, s.stderr
    assert sorted(p.name for p in (tmp_path / "s" / "genres").iterdir()) == ["blues", "classical"]


@pytest.mark.slow
def test_run_folder_then_ingest_and_run_hdf5(tiny_dataset, reference, tmp_path):
    a = audioprep("run", tiny_dataset, "-o", tmp_path / "a", "--workers", 2, *SMALL_ARGS, cwd=tmp_path)
    assert "6 clips computed" in a.stdout
    assert_matches_reference(tmp_path / "a" / "audio.hdf5", reference)
    audioprep("ingest", tiny_dataset, "-o", tmp_path / "gtzan.hdf5", *SMALL_ARGS, cwd=tmp_path)
    audioprep("run", tmp_path / "gtzan.hdf5", "-o", tmp_path / "b", "--workers", 2, *SMALL_ARGS, cwd=tmp_path)
    assert_matches_reference(tmp_path / "b" / "audio.hdf5", reference)
    # the same command again finds the output up to date
    again = audioprep("run", tiny_dataset, "-o", tmp_path / "a", "--workers", 2, *SMALL_ARGS, cwd=tmp_path)
    assert "up to date" in again.stdout


@pytest.mark.slow
def test_default_run_synthesizes_and_writes_data(tmp_path):
    """The quickstart: 'audioprep run' with no arguments, GTZAN-sized clips, 10 x 10."""
    p = audioprep("run", cwd=tmp_path)
    assert "dashboard: http://127.0.0.1:" in p.stderr
    assert (tmp_path / "data" / "genres" / "rock" / "rock.00009.au").exists()
    with h5py.File(tmp_path / "data" / "audio.hdf5") as f:
        assert f["Xa"].shape == (10, 10, 644, 2, 1024)
        assert f["Xs"].shape == f["Xn"].shape == (10, 10, 644, 2, 96)
        assert {f[k].dtype.str for k in ("Xa", "Xs", "Xn")} == {"<f4"}
        assert [s.decode() for s in f.attrs["labels"]][:2] == ["blues", "classical"]
        assert int(f.attrs["sr"]) == 22050
        # spot-check one clip against the serial reference
        import soundfile as sf
        from support.reference import reference_clip

        y, _ = sf.read(tmp_path / "data" / "genres" / "metal" / "metal.00004.au", dtype="float32")
        xa, xs, xn = reference_clip(y)
        import numpy as np

        assert np.array_equal(f["Xa"][6, 4], xa)
        assert np.abs(f["Xs"][6, 4] - xs).max() <= 1e-5 * np.abs(xs).max()
        assert np.abs(f["Xn"][6, 4] - xn).max() <= 1e-4


def test_bad_parameter_is_one_line_no_traceback(tmp_path, tiny_dataset):
    p = audioprep("run", tiny_dataset, "-o", tmp_path, "--na", "1023", check=False, cwd=tmp_path)
    assert p.returncode == 1
    assert "Traceback" not in p.stderr
    assert (
        p.stderr.strip() == "error: na=1023 must be even so that the overlapped stream starts at na // 2; try na=1024"
    )
    assert not (tmp_path / "audio.zarr").exists()


def test_missing_input_is_a_clear_error(tmp_path):
    p = audioprep("run", tmp_path / "nope", "-o", tmp_path / "o", check=False, cwd=tmp_path)
    assert p.returncode == 3 and "Traceback" not in p.stderr
    assert f"error: {tmp_path / 'nope'}: no such file or folder" in p.stderr


def test_an_interruptions_exit_prints_nothing_of_the_exit_handlers():
    """A Ctrl-C that catches a local cluster half started left distributed's atexit ``close_clusters`` to fail
    (``AssertionError: Status.init``): 35 lines after the one line the run promised."""
    import subprocess
    import sys

    code = (
        "import atexit\n"
        "def handler():\n"
        "    raise AssertionError('Status.init')\n"
        "atexit.register(handler)\n"
        "from pipeline._entry import quiet_exit\n"
        "quiet_exit(130)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 130 and p.stderr == ""
