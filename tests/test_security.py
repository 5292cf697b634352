"""Nobody but the run's owner can drive a run: TLS with per-run credentials, links that cannot redirect writes.

The attacker here is another client on the same machine: it knows the ports
(it can list them, as any user can) but not the run's credentials.
"""

import os
import signal
import subprocess
import sys

import pytest
from support.cli import audioprep, start
from support.data import SMALL
from support.probes import probe_run

pytestmark = [
    pytest.mark.slow,
    # an outsider's failed asynchronous Client leaves an unawaited close behind when collected
    pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning"),
]


def test_an_outsider_cannot_connect_to_a_local_run(many_clips, tmp_path):
    from distributed.security import Security

    out = tmp_path / "out"
    proc = start([many_clips, "-o", out, "--workers", "2"], tmp_path)
    try:
        # TLS, but with the attacker's own certificates, is refused too
        reached = probe_run(proc, out, Security.temporary())
    finally:
        text, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, text
    assert not any(reached.values()), [k for k, v in reached.items() if v]
    assert "Traceback" not in text and "WARNING" not in text  # the refused handshakes are not the user's noise


def test_without_tls_an_outsider_can_connect_and_the_run_warns(many_clips, tmp_path):
    """The control case: the same probes do reach a run with TLS turned off, and that run says so."""
    out = tmp_path / "out"
    proc = start([many_clips, "-o", out, "--workers", "2", "--no-tls"], tmp_path)
    try:
        reached = probe_run(proc, out, None)
    finally:
        text, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, text
    assert sum(v for (kind, _), v in reached.items() if kind == "drive") == 1  # the scheduler's port
    assert sum(v for (kind, _), v in reached.items() if kind == "worker") >= 4  # scheduler, nannies, workers
    assert "WARNING audioprep: TLS is off (audioprep.tls: false): any user who can reach the scheduler's port" in text


def test_dask_scratch_is_private_and_removed(tiny_dataset, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "DASK_TEMPORARY_DIRECTORY"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            "run",
            str(tiny_dataset),
            "-o",
            str(tmp_path / "o"),
            "--nsamples",
            str(SMALL["nsamples"]),
            "--workers",
            "2",
        ],
        env={**env, "TMPDIR": str(tmp)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    said, stopped = [], False
    try:
        # The dashboard's line comes once the cluster runs in its scratch folder: stop the whole run there.
        for line in proc.stdout:
            said.append(line)
            if line.startswith("dashboard: "):
                os.killpg(proc.pid, signal.SIGSTOP)
                stopped = True
                break
        seen = {(p.name, oct(p.stat().st_mode & 0o777)) for p in tmp.glob("audioprep-dask-*")}
    finally:
        os.killpg(proc.pid, signal.SIGCONT)
    said.append(proc.communicate(timeout=300)[0])
    assert proc.returncode == 0, "".join(said)
    assert stopped  # on its dashboard line, mid-run
    assert len(seen) == 1 and all(mode == "0o700" for _, mode in seen), seen
    assert not list(tmp.iterdir())  # removed at the end


def test_job_script_uses_tls_and_private_credentials():
    out = audioprep("cluster", "job-script", "--cluster", "slurm").stdout
    worker = [ln for ln in out.splitlines() if "dask_worker" in ln or "distributed.cli" in ln][0]
    assert " tls://" in worker and "--protocol tls://" in worker
    for opt in ("--tls-ca-file", "--tls-cert", "--tls-key"):
        assert opt in worker
    assert ".audioprep-credentials-" in worker or "audioprep-credentials-" in worker


@pytest.mark.parametrize(
    "planted",
    [
        ".audioprep.write-test",
        ".audio.hdf5.partial",
        ".audio.config.yaml.partial",
        ".audio.summary.json.partial",
        ".audioprep.lock",
    ],
)
def test_a_planted_link_cannot_redirect_a_write(tiny_dataset, tmp_path, planted):
    """Another user plants a link in a shared output folder; the run never writes through it."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "shared"
    out.mkdir()
    os.chmod(out, 0o1777)
    (out / planted).symlink_to(victim)
    p = audioprep(
        "run", tiny_dataset, "-o", out, "--nsamples", SMALL["nsamples"], "--workers", "2", check=False, cwd=tmp_path
    )
    assert victim.read_text() == "precious\n"
    if planted == ".audioprep.lock":
        assert p.returncode == 1 and "Traceback" not in p.stderr
        assert f"error: cannot create the lock file {out / planted} (" in p.stderr
        assert "remove it if it is a link" in p.stderr
    else:
        assert p.returncode == 0, p.stderr
        assert (out / "audio.hdf5").exists()
