"""Nobody but the run's owner can drive a run: TLS with per-run credentials, links that cannot redirect writes.

The attacker here is another client on the same machine: it knows the ports
(it can list them, as any user can) but not the run's credentials.
"""

import asyncio
import os
import socket
import subprocess
import sys
import time

import psutil
import pytest
from conftest import SMALL
from test_cli import audioprep
from test_faults import finished, start, wait_until

pytestmark = [pytest.mark.slow,
              # an outsider's failed asynchronous Client leaves an unawaited close behind when collected
              pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")]


def listening_ports(pid: int) -> set:
    """TCP ports the process and its children listen on (what any local user can see with ss -ltn)."""
    ports = set()
    for p in [psutil.Process(pid)] + psutil.Process(pid).children(recursive=True):
        try:
            ports |= {c.laddr.port for c in p.net_connections("tcp") if c.status == psutil.CONN_LISTEN}
        except psutil.Error:
            continue
    return ports


async def try_to_drive(port: int, security=None) -> bool:
    """Connect a Dask client as an outsider and run code on the scheduler; True if that worked."""
    from distributed import Client

    proto = "tls" if security is not None else "tcp"
    client = None
    try:
        client = await asyncio.wait_for(Client(f"{proto}://127.0.0.1:{port}", asynchronous=True, timeout=1,
                                               security=security), 3)
        return await asyncio.wait_for(client.run_on_scheduler(os.getpid), 3) > 0
    except Exception:
        return False
    finally:
        if client is not None:
            await asyncio.wait_for(client.close(), 3)


async def try_worker(port: int, security=None) -> bool:
    """Talk to a worker or nanny directly, as an outsider; True if it answered."""
    from distributed.core import rpc

    proto = "tls" if security is not None else "tcp"
    kwargs = security.get_connection_args("client") if security is not None else {}
    try:
        async with rpc(f"{proto}://127.0.0.1:{port}", timeout=1, connection_args=kwargs) as r:
            return bool(await asyncio.wait_for(r.identity(), 2))
    except Exception:
        return False


def is_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def is_http(port: int) -> bool:
    """The dashboard speaks plain HTTP (readable by local users, as the README says); Dask ports do not."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.settimeout(1)
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            return s.recv(5) == b"HTTP/"
    except OSError:
        return False


async def bracketed(fn, port, security):
    """``fn``'s answer if the port was open just before and just after it, else None (the answer proves nothing)."""
    if not is_open(port):
        return None
    try:
        reached = await asyncio.wait_for(fn(port, security), 5)
    except Exception:
        reached = False
    return reached if is_open(port) else None


def batch_worker_pids() -> list:
    return [p.pid for p in psutil.process_iter(["cmdline"])
            if "distributed.cli.dask_worker" in " ".join(p.info["cmdline"] or [])]


def probe_run(proc, out, security, *, batch: bool = False) -> dict:
    """Every way in, tried on every listening port of the running run: {(probe, port): reached or None}.

    For a batch cluster the workers run in jobs, not under the driver: their ports are found by command line.
    """
    wait_until(lambda: finished(out) >= 1, proc)
    ports = {p for p in listening_ports(proc.pid) if not is_http(p)}
    if batch:
        ports |= {p for pid in batch_worker_pids() for p in listening_ports(pid)}
    assert len(ports) >= 5, ports  # scheduler, 2 nannies, 2 workers
    probes = [((kind, port), fn, sec) for port in ports
              for kind, fn, sec in (("drive", try_to_drive, None), ("drive-own-ca", try_to_drive, security),
                                    ("worker", try_worker, None), ("worker-own-ca", try_worker, security))]

    async def all_probes():
        return await asyncio.gather(*(bracketed(fn, port, sec) for (_, port), fn, sec in probes))

    reached = dict(zip((key for key, _, _ in probes), asyncio.run(all_probes())))
    answered = [k for k, v in reached.items() if v is not None]
    assert len(answered) >= 12, reached  # most probes met an open port, so the answers mean something
    return reached


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
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "run", str(tiny_dataset), "-o", str(tmp_path / "o"),
                             "--nsamples", str(SMALL["nsamples"]), "--workers", "2"],
                            env={**env, "TMPDIR": str(tmp)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    seen = set()
    while proc.poll() is None:
        seen |= {(p.name, oct(p.stat().st_mode & 0o777)) for p in tmp.glob("audioprep-dask-*")}
        time.sleep(0.05)
    assert proc.returncode == 0, proc.stdout.read()
    assert seen and all(mode == "0o700" for _, mode in seen), seen
    assert not list(tmp.iterdir())  # removed at the end


def test_job_script_uses_tls_and_private_credentials():
    out = audioprep("cluster", "job-script", "--cluster", "slurm").stdout
    worker = [ln for ln in out.splitlines() if "dask_worker" in ln or "distributed.cli" in ln][0]
    assert " tls://" in worker and "--protocol tls://" in worker
    for opt in ("--tls-ca-file", "--tls-cert", "--tls-key"):
        assert opt in worker
    assert ".audioprep-credentials-" in worker or "audioprep-credentials-" in worker


@pytest.mark.parametrize("planted", [".audioprep.write-test", ".audio.hdf5.partial", ".audio.config.yaml.partial",
                                     ".audio.summary.json.partial", ".audioprep.lock"])
def test_a_planted_link_cannot_redirect_a_write(tiny_dataset, tmp_path, planted):
    """Another user plants a link in a shared output folder; the run never writes through it."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "shared"
    out.mkdir()
    os.chmod(out, 0o1777)
    (out / planted).symlink_to(victim)
    p = audioprep("run", tiny_dataset, "-o", out, "--nsamples", SMALL["nsamples"], "--workers", "2", check=False,
                  cwd=tmp_path)
    assert victim.read_text() == "precious\n"
    if planted == ".audioprep.lock":
        assert p.returncode == 1 and "Traceback" not in p.stderr
        assert f"error: cannot create the lock file {out / planted} (" in p.stderr
        assert "remove it if it is a link" in p.stderr
    else:
        assert p.returncode == 0, p.stderr
        assert (out / "audio.hdf5").exists()
