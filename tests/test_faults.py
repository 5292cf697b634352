"""Every failure is one line, with the right exit code, no traceback from any process, and nothing lost.

Each case runs the real command line in its own process group, the way a
terminal or a batch system runs it, and reads everything the run's processes
print.  After a failure, the same command again must give the output of an
uninterrupted run, attributes included (``created`` aside).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import soundfile as sf
from support.cli import assert_clean, audioprep, children_alive, finished, lines, start, wait_until
from support.compare import assert_same_output
from support.data import SMALL_ARGS, SMALL_SECONDS

from pipeline.synth import synth_dataset

pytestmark = pytest.mark.slow

SR = 22050


@pytest.mark.parametrize(
    "sig,group,code",
    [
        (signal.SIGINT, True, 130),
        (signal.SIGTERM, True, 143),
        (signal.SIGTERM, False, 143),
        (signal.SIGINT, False, 130),
    ],
    ids=["ctrl-c", "kill-group", "kill-driver", "sigint-driver"],
)
def test_signal_gives_one_line_and_the_run_resumes(full_clips, undisturbed, tmp_path, sig, group, code):
    out = tmp_path / "out"
    proc = start([full_clips, "-o", out, "--workers", "2", "-q"], tmp_path)
    wait_until(lambda: finished(out) >= 2, proc)
    (os.killpg if group else os.kill)(proc.pid, sig)
    text, _ = proc.communicate(timeout=180)
    assert proc.returncode == code, text
    kept = finished(out)
    assert lines(text) == [f"interrupted: {kept} clips finished and kept; run the same command again to resume"]
    assert_clean(text)
    assert not list(out.glob(".*.partial")) and not (out / "audio.hdf5").exists()
    deadline = time.time() + 15  # the resource tracker leaves a moment after the driver
    while children_alive(proc.pid) and time.time() < deadline:
        time.sleep(0.2)
    assert not children_alive(proc.pid), "a process of the run outlived it"
    code, text = audioprep("run", full_clips, "-o", out, "--workers", "2", cwd=tmp_path, check=False).outcome
    assert code == 0 and f"resuming: {kept} of 8 clips" in text
    assert_same_output(out / "audio.hdf5", undisturbed)


@pytest.fixture
def bad_mid_run(tmp_path):
    """3 genres x 2 clips; one a float WAV holding NaN: its header is fine, its computation is not."""
    root = synth_dataset(tmp_path / "in", genres=3, clips=2, seconds=SMALL_SECONDS, seed=11)
    target = root / "country" / "country.00001.au"
    y, _ = sf.read(target, dtype="float32")
    target.unlink()
    y[500] = np.nan
    sf.write(root / "country" / "country.00001.wav", y, SR, subtype="FLOAT")
    return root, root / "country" / "country.00001.wav"


def test_bad_clip_mid_run_is_one_line_without_worker_traceback(bad_mid_run, tmp_path):
    root, bad = bad_mid_run
    code, text = audioprep("run", root, "-o", tmp_path / "o", "-q", *SMALL_ARGS, cwd=tmp_path, check=False).outcome
    assert code == 3
    assert_clean(text)
    assert "Compute Failed" not in text
    assert lines(text)[0].startswith(f"error: {bad}: ") and len(lines(text)) == 1  # one problem, one line
    assert "; 1 clip(s) failed; the other clips are saved in " in lines(text)[0]


def test_skip_bad_lists_the_clip_in_both_stores_and_equals_a_resumed_run(bad_mid_run, tmp_path):
    root, bad = bad_mid_run
    code, text = audioprep(
        "run", root, "-o", tmp_path / "a", "--skip-bad", *SMALL_ARGS, cwd=tmp_path, check=False
    ).outcome
    assert code == 0
    assert_clean(text)
    found = lines(text)
    i = found.index("1 bad clip(s), zero-filled and flagged invalid:")
    assert found[i + 1].startswith(f"  {bad}: ")
    with h5py.File(tmp_path / "a" / "audio.hdf5") as f:
        in_hdf5 = json.loads(f.attrs["bad_clips"])
    import zarr

    in_zarr = json.loads(zarr.open_group(str(tmp_path / "a" / "audio.zarr"), mode="r").attrs["bad_clips"])
    assert in_hdf5 == in_zarr and [b["path"] for b in in_hdf5] == [str(bad)]
    # the same input, first refused (no --skip-bad), then resumed with --skip-bad: the same file
    assert audioprep("run", root, "-o", tmp_path / "b", *SMALL_ARGS, cwd=tmp_path, check=False).returncode == 3
    audioprep("run", root, "-o", tmp_path / "b", "--skip-bad", *SMALL_ARGS, cwd=tmp_path)
    assert_same_output(tmp_path / "b" / "audio.hdf5", tmp_path / "a" / "audio.hdf5")


@pytest.fixture
def tmpfs(small_disk):
    remount(small_disk, "size=64m")
    return small_disk


def remount(mnt, opts):
    subprocess.run(["mount", "-o", f"remount,{opts}", str(mnt)], check=True)


def test_disk_full_while_workers_write_is_one_line(full_clips, undisturbed, tmp_path, tmpfs):
    """The disk fills while the workers write (audio.hdf5 would fit: the space check passes).

    The disk is sized before the run, never while the workers write: 60 MiB holds audio.hdf5's 50 MB plus the
    check's 10 %, but not the Zarr store's 22 MB beside it, so the writes fill it whatever the speed of the run.
    """
    from pipeline.params import Params

    need = 8 * Params().clip_bytes()
    remount(tmpfs, "size=60m")
    assert 1.1 * need < 60 * 2**20 < 1.3 * need  # the check passes; the arrays and the store (43 % of them) do not
    out = tmpfs / "out"
    proc = start([full_clips, "-o", out, "--workers", "2", "-q"], tmp_path)
    text, _ = proc.communicate(timeout=180)
    assert proc.returncode == 1, text
    assert lines(text) == [
        f"error: cannot write to {out} (No space left on device); the finished clips are kept in "
        f"{out / 'audio.zarr'}: free space or fix permissions, then run the same command again "
        "to resume"
    ]
    assert_clean(text)
    remount(tmpfs, "size=256m")
    code, text = audioprep("run", full_clips, "-o", out, "--workers", "2", cwd=tmp_path, check=False).outcome
    assert code == 0, text
    assert_same_output(out / "audio.hdf5", undisturbed)


def test_output_made_read_only_during_a_run_is_one_line(full_clips, undisturbed, tmp_path):
    """The output folder stops taking writes mid-run (chattr +i: even root cannot write there)."""
    out = tmp_path / "out"
    proc = start([full_clips, "-o", out, "--workers", "2", "-q"], tmp_path)
    wait_until(lambda: finished(out) >= 2, proc)
    r = subprocess.run(["chattr", "-R", "+i", str(out)], capture_output=True, text=True)
    if r.returncode != 0:
        proc.kill()
        proc.wait()
        pytest.skip(f"chattr does not work here ({r.stderr.strip()})")
    try:
        text, _ = proc.communicate(timeout=180)
    finally:
        subprocess.run(["chattr", "-R", "-i", str(out)], capture_output=True)
    assert proc.returncode == 1, text
    assert lines(text) == [
        f"error: cannot write to {out} (Operation not permitted); the finished clips are kept in "
        f"{out / 'audio.zarr'}: free space or fix permissions, then run the same command again "
        "to resume"
    ]
    assert_clean(text)
    code, text = audioprep("run", full_clips, "-o", out, "--workers", "2", cwd=tmp_path, check=False).outcome
    assert code == 0, text
    assert_same_output(out / "audio.hdf5", undisturbed)


def test_quiet_means_quiet_and_a_refused_run_keeps_the_saved_config(tiny_dataset, tmp_path):
    with socket.socket() as busy:  # the dashboard's port is taken (a free one, never the default 8787)
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, text = audioprep(
            "run",
            tiny_dataset,
            "-o",
            tmp_path / "o",
            "-q",
            "--workers",
            "2",
            *SMALL_ARGS,
            "--dashboard-address",
            f"127.0.0.1:{port}",
            cwd=tmp_path,
            check=False,
        ).outcome
        assert code == 0 and text == "", text  # no "Port N is already in use", no semaphore warnings
        code, text = audioprep("cluster", "job-script", "--cluster", "slurm", cwd=tmp_path, check=False).outcome
        assert code == 0 and text.startswith("#!/usr/bin/env bash") and "Warning" not in text, text
    saved = (tmp_path / "o" / "audio.config.yaml").read_text()
    code, text = audioprep(
        "run", tiny_dataset, "-o", tmp_path / "o", "-q", "--lcn-log", *SMALL_ARGS, cwd=tmp_path, check=False
    ).outcome
    assert code == 1 and lines(text) == [
        f"error: {tmp_path / 'o' / 'audio.hdf5'} exists and it was made with other parameters "
        "(lcn_log: False -> True); use --overwrite to replace it, or -o another folder"
    ]
    assert (tmp_path / "o" / "audio.config.yaml").read_text() == saved


def test_hdf5_held_open_for_writing_says_so(tiny_dataset, tmp_path):
    audioprep("run", tiny_dataset, "-o", tmp_path / "o", "-q", *SMALL_ARGS, cwd=tmp_path)
    path = tmp_path / "o" / "audio.hdf5"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import h5py, sys, time; f = h5py.File({str(path)!r}, 'a'); print('open', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        code, text = audioprep(
            "run", tiny_dataset, "-o", tmp_path / "o", "-q", *SMALL_ARGS, cwd=tmp_path, check=False
        ).outcome
    finally:
        holder.kill()
        holder.wait()
    assert code == 1
    assert_clean(text)
    (line,) = lines(text)
    assert line.startswith(f"error: {path} exists but cannot be read (")
    assert line.endswith("; is another program writing it?); close that program, or use --overwrite to replace it")
    assert "format=None" not in line


def _as_non_root(cmd):
    """``cmd`` as root without any capability (setpriv): permission bits apply, so a 0555 folder of another user
    cannot be written, as for any other user; the Python installation stays readable (it is root's)."""
    import shutil

    if shutil.which("setpriv") is None or os.getuid() != 0:
        pytest.skip("needs root and util-linux's setpriv to drop the capabilities")
    return ["setpriv", "--bounding-set=-all", "--", *cmd]


@pytest.mark.parametrize("where", ["ro", "ro/new"])
def test_an_unwritable_output_folder_is_one_line_before_anything_starts(tiny_dataset, tmp_path, where):
    """Before: as a normal user, -o into a 0555 folder waited until killed (issue 26). The refusal must come before
    a cluster starts: no scratch folder is made, no output folder created, and the run ends (a hang fails the
    subprocess timeout, not an assertion on time)."""
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    os.chown(ro, 65534, 65534)  # nobody's
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    out = tmp_path / where
    p = subprocess.run(
        _as_non_root([sys.executable, "-m", "pipeline", "run", str(tiny_dataset), "-o", str(out), *SMALL_ARGS]),
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TMPDIR": str(scratch)},
    )
    assert p.returncode == 1, p.stderr
    assert lines(p.stdout + p.stderr) == [
        f"error: cannot write to the output folder {out} (Permission denied); "
        "choose another with -o or fix its permissions"
    ]
    assert list(scratch.iterdir()) == [] and list(ro.iterdir()) == []


def test_a_read_only_file_system_is_one_line_before_anything_starts(tiny_dataset, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    r = subprocess.run(["mount", "--bind", str(ro), str(ro)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot bind-mount here ({r.stderr.strip()})")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(ro)], check=True)
        scratch = tmp_path / "scratch"
        scratch.mkdir()
        p = audioprep(
            "run",
            tiny_dataset,
            "-o",
            ro / "out",
            *SMALL_ARGS,
            cwd=tmp_path,
            check=False,
            env={"TMPDIR": str(scratch)},
            timeout=120,
        )
        assert p.returncode == 1 and lines(p.text) == [
            f"error: cannot write to the output folder {ro / 'out'} (Read-only file system); choose another with "
            "-o or fix its permissions"
        ]
        assert list(scratch.iterdir()) == []
    finally:
        subprocess.run(["umount", str(ro)])


def test_a_folder_in_use_is_refused_before_a_cluster_starts(tiny_dataset, tmp_path):
    """Before: refused only after about 35 s, once its Dask processes had started (issue 26)."""
    from pipeline.output.files import OutputLock

    out = tmp_path / "out"
    out.mkdir()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with OutputLock(out):  # this process plays the run in progress
        p = audioprep(
            "run",
            tiny_dataset,
            "-o",
            out,
            *SMALL_ARGS,
            cwd=tmp_path,
            check=False,
            env={"TMPDIR": str(scratch)},
            timeout=120,
        )
    assert p.returncode == 1 and lines(p.text) == [
        f"error: {out} is in use by another audioprep run (pid {os.getpid()} on host {socket.gethostname()}); "
        "wait for it to finish or choose another -o"
    ]
    assert list(scratch.iterdir()) == []  # no local cluster was started (its scratch folder would be here)
