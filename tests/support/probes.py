"""Connecting to a run's ports as another user of the machine would: no credentials, or TLS with one's own."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

import psutil

from .cli import finished, wait_until


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
    # Made before it connects, so that it is closed on this loop whether it connected or not (a client left
    # to __del__ closes from outside its loop: "coroutine 'Client._close' was never awaited").
    client = Client(f"{proto}://127.0.0.1:{port}", asynchronous=True, timeout=1, security=security)
    try:
        await asyncio.wait_for(client, 3)
        return await asyncio.wait_for(client.run_on_scheduler(os.getpid), 3) > 0
    except Exception:
        return False
    finally:
        with contextlib.suppress(Exception):
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
    """The dashboard speaks plain HTTP (readable by local users, as docs/security.md says); Dask ports do not."""
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
    return [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if "distributed.cli.dask_worker" in " ".join(p.info["cmdline"] or [])
    ]


def probe_run(proc, out, security, *, batch: bool = False) -> dict:
    """Every way in, tried on every listening port of the running run: {(probe, port): reached or None}.

    For a batch cluster the workers run in jobs, not under the driver: their ports are found by command line.
    """
    wait_until(lambda: finished(out) >= 1, proc)
    ports = {p for p in listening_ports(proc.pid) if not is_http(p)}
    if batch:
        ports |= {p for pid in batch_worker_pids() for p in listening_ports(pid)}
    assert len(ports) >= 5, ports  # scheduler, 2 nannies, 2 workers
    probes = [
        ((kind, port), fn, sec)
        for port in ports
        for kind, fn, sec in (
            ("drive", try_to_drive, None),
            ("drive-own-ca", try_to_drive, security),
            ("worker", try_worker, None),
            ("worker-own-ca", try_worker, security),
        )
    ]

    async def all_probes():
        return await asyncio.gather(*(bracketed(fn, port, sec) for (_, port), fn, sec in probes))

    reached = dict(zip((key for key, _, _ in probes), asyncio.run(all_probes())))
    answered = [k for k, v in reached.items() if v is not None]
    assert len(answered) >= 12, reached  # most probes met an open port, so the answers mean something
    return reached


def who_built_the_plan(params):
    """Run on a worker: its pid, its parent's, which process built its CQT plan and how many this process has
    built (inherited through a fork), whether it was forked warm for ``params``, and its CPU seconds so far."""
    import os

    import psutil

    from pipeline import kernels, warm

    me = psutil.Process()
    return {
        "pid": os.getpid(),
        "parent": me.ppid(),
        "plans": dict(kernels.PLANS_BUILT),
        "forked_warm": warm.forked_warm(params),
        "cpu": sum(me.cpu_times()[:2]),
    }
