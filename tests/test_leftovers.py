"""What a stopped or refused run leaves behind, and what reaches the run's output from outside.

Real runs in their own process groups (as a terminal runs them), stopped by
real signals; the dashboard is requested over real HTTP.
"""

import json
import os
import pwd
import signal
import socket
import urllib.error
import urllib.request

import pytest
from support.cli import audioprep, finished, lines, start, wait_until
from support.compare import assert_same_output

from pipeline import StoreError
from pipeline.run import run

pytestmark = pytest.mark.slow


def test_a_killed_runs_scratch_folder_is_removed_by_the_next_run(full_clips, undisturbed, tmp_path):
    """Before: kill -9 left /tmp/audioprep-dask-* for ever."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {"TMPDIR": str(tmp)}
    out = tmp_path / "out"
    proc = start([full_clips, "-o", out, "--workers", "2", "-q"], tmp_path, env=env)
    wait_until(lambda: finished(out) >= 1, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = list(tmp.glob("audioprep-dask-*"))
    assert len(killed) == 1
    host = socket.gethostname()
    alive = tmp / f"audioprep-dask-{host}-{os.getpid()}-live"  # a run still going: kept
    alive.mkdir()
    other = tmp / f"audioprep-dask-{host}-{killed[0].name.split('-')[-2]}-other"  # another user's: kept
    other.mkdir()
    nobody = pwd.getpwnam("nobody")
    os.chown(other, nobody.pw_uid, nobody.pw_gid)
    code, text = audioprep(
        "run", full_clips, "-o", out, "--workers", "2", "-q", cwd=tmp_path, env=env, check=False
    ).outcome
    assert code == 0, text
    assert sorted(p.name for p in tmp.glob("audioprep-dask-*")) == sorted([alive.name, other.name])
    assert_same_output(out / "audio.hdf5", undisturbed)


def test_summary_lost_to_a_stop_after_the_rename_is_written_by_the_next_run(tiny_dataset, tmp_path):
    """Before: a Ctrl-C between the rename of audio.hdf5 and the summary left no audio.summary.json for
    good, since every later run was 'up to date'."""
    from support.data import SMALL

    out = tmp_path / "out"
    args = ("run", tiny_dataset, "-o", out, "--nsamples", SMALL["nsamples"], "--workers", "1")
    code, text = audioprep(*args, cwd=tmp_path, check=False).outcome
    assert code == 0, text
    first = json.loads((out / "audio.summary.json").read_text())
    (out / "audio.summary.json").unlink()  # where a stop at that moment leaves the folder
    code, text = audioprep(*args, cwd=tmp_path, check=False).outcome
    assert code == 0 and "is up to date" in text
    again = json.loads((out / "audio.summary.json").read_text())
    assert again["clips"] == first["clips"] == 6 and again["bad"] == first["bad"] == []
    assert again["up_to_date"] is True and again["output_path"] == first["output_path"] == str(out / "audio.hdf5")


def test_space_refusal_leaves_no_new_folder(tiny_dataset, small_params, client, small_disk):
    """Before: the refusal left a new folder holding .audioprep.lock."""
    out = small_disk / "new"
    with pytest.raises(StoreError, match=r"has 1\.\d MB free but audio.hdf5 needs"):
        run(tiny_dataset, out, small_params, client=client)
    assert not out.exists()
    kept = small_disk / "kept"  # a folder the user made is left as it was
    kept.mkdir()
    with pytest.raises(StoreError):
        run(tiny_dataset, kept, small_params, client=client)
    assert kept.is_dir()


def test_dashboard_requests_from_others_write_nothing_into_the_run_output(full_clips, tmp_path):
    """Before: GET /json/identity.json from any local user printed tornado's 'Uncaught exception' traceback
    into the run's output (a way to flood a batch log)."""
    out = tmp_path / "out"
    proc = start([full_clips, "-o", out, "--workers", "2", "--dashboard-address", "127.0.0.1:0"], tmp_path)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("dashboard: "):
            break
    assert seen and seen[-1].startswith("dashboard: "), seen
    base = seen[-1].split()[1].rsplit("/", 1)[0]
    answered = 0
    for _ in range(5):
        for path in ("/json/identity.json", "/sitemap.json", "/no-such-page", "/status"):
            try:
                urllib.request.urlopen(base + path, timeout=10).read()
                answered += 1
            except urllib.error.HTTPError:
                answered += 1
    assert answered == 20  # the dashboard was up and answered every request
    rest, _ = proc.communicate(timeout=300)
    text = "".join(seen) + rest
    assert proc.returncode == 0, text
    assert "Traceback" not in text and "Uncaught exception" not in text and "tornado" not in text, text
    assert [ln for ln in lines(text) if ln.startswith(("ERROR", "WARNING", "error"))] == []


def test_a_worker_dying_while_it_gets_ready_is_one_line_about_memory(tiny_dataset, tmp_path):
    """A memory limit below what a worker needs to import and plan the CQT: one line naming the limit."""
    from support.data import SMALL

    out = tmp_path / "out"
    code, text = audioprep(
        "run",
        tiny_dataset,
        "-o",
        out,
        "--workers",
        "1",
        "-q",
        "--nsamples",
        SMALL["nsamples"],
        cwd=tmp_path,
        env={"DASK_AUDIOPREP__MEMORY_LIMIT": "100MiB", "DASK_DISTRIBUTED__WORKER__MEMORY__TERMINATE": "0.3"},
        check=False,
    ).outcome
    assert code == 1
    assert len(lines(text)) == 1 and "memory-limit 100MiB a worker" in text, text
    assert not out.exists()


def test_a_busy_dashboard_port_is_said(tiny_dataset, tmp_path):
    from support.data import SMALL

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, text = audioprep(
            "run",
            tiny_dataset,
            "-o",
            tmp_path / "o",
            "--workers",
            "1",
            "--nsamples",
            SMALL["nsamples"],
            "--dashboard-address",
            f"127.0.0.1:{port}",
            cwd=tmp_path,
            check=False,
        ).outcome
    assert code == 0, text
    said = [ln for ln in lines(text) if ln.startswith("dashboard: ")]
    assert len(said) == 1 and said[0].endswith(
        f" (port {port} was busy: the dashboard moved to {said[0].split(':')[3].split('/')[0]})"
    ), said


def test_ctrl_c_counts_only_the_clips_computed_and_kept(tmp_path):
    """Before: a run with bad clips and --pad slots said 'interrupted: 64 clips finished and kept' at 12/41,
    counting the bad and missing slots, and 'resuming: 64 of 93'."""
    from pipeline.synth import synth_dataset

    root = synth_dataset(tmp_path / "in", genres=2, clips=12, seed=6)
    (root / "blues" / "blues.00002.au").write_bytes(b"")  # bad
    for c in (2, 3, 4):
        (root / "classical" / f"classical.0000{c}.au").unlink()  # 3 missing slots: 20 valid clips of 24
    out = tmp_path / "out"
    proc = start([root, "-o", out, "--workers", "2", "-q", "--skip-bad", "--pad"], tmp_path)
    wait_until(lambda: finished(out) >= 4 + 2, proc)  # the 4 invalid slots are marked done at the start
    os.killpg(proc.pid, signal.SIGINT)
    text, _ = proc.communicate(timeout=180)
    kept = finished(out) - 4
    assert 2 <= kept < 20 and proc.returncode == 130, text
    assert lines(text) == [f"interrupted: {kept} clips finished and kept; run the same command again to resume"]
    code, text = audioprep(
        "run", root, "-o", out, "--workers", "2", "--skip-bad", "--pad", cwd=tmp_path, check=False
    ).outcome
    assert code == 0 and f"resuming: {kept} of 24 clips" in text, text
    assert f"{20 - kept} clips computed ({kept} resumed, 1 bad, 3 missing) of 24" in text


def test_an_up_to_date_run_removes_a_killed_runs_scratch_folder_and_minus_zero_is_zero(tiny_dataset, tmp_path):
    """Before: only a run that started a cluster removed a killed run's scratch folder, so one finding its output
    up to date left it; and '--offset -0' made the next run without it refuse the output as 'made with other
    parameters ()'."""
    import subprocess
    import sys

    from support.data import SMALL

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {"TMPDIR": str(tmp)}
    out = tmp_path / "out"
    args = ("run", tiny_dataset, "-o", out, "--nsamples", SMALL["nsamples"], "--workers", "1", "-q")
    code, text = audioprep(*args, "--offset", "-0", cwd=tmp_path, env=env, check=False).outcome
    assert code == 0, text
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a process id that no longer runs: the killed run's
    host = socket.gethostname()
    stale = tmp / f"audioprep-dask-{host}-{gone.pid}-killed"
    (stale / "dask-scratch-space").mkdir(parents=True)
    other = tmp / f"audioprep-dask-{host}-{gone.pid}-other"  # another user's: kept
    other.mkdir()
    nobody = pwd.getpwnam("nobody")
    os.chown(other, nobody.pw_uid, nobody.pw_gid)
    code, text = audioprep(*args[:-1], cwd=tmp_path, env=env, check=False).outcome
    assert code == 0 and "is up to date" in text, text
    assert [p.name for p in tmp.iterdir()] == [other.name]


@pytest.mark.parametrize(
    "address, says",
    [
        ("tcp://127.0.0.1:1", "could not reach the scheduler at tcp://127.0.0.1:1 ("),
        (
            "tls://127.0.0.1:1",
            "--cluster tls://127.0.0.1:1 needs the certificates of that scheduler's TLS, and none are configured",
        ),
    ],
)
def test_a_scheduler_that_cannot_be_reached_leaves_nothing(tiny_dataset, tmp_path, address, says):
    """Before: both left audio.zarr and audio.config.yaml; tls:// said 'TLS expects a ssl_context argument'."""
    from support.data import SMALL

    out = tmp_path / "out"
    code, text = audioprep(
        "run",
        tiny_dataset,
        "-o",
        out,
        "--nsamples",
        SMALL["nsamples"],
        "--cluster",
        address,
        cwd=tmp_path,
        env={"DASK_AUDIOPREP__CONNECT_TIMEOUT": "3s"},
        check=False,
    ).outcome
    assert code == 1 and len(lines(text)) == 1 and lines(text)[0].startswith("error: " + says), text
    assert not out.exists()
