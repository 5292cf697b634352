"""Running the real command line, as a user or a batch system does, and watching a run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


class Result(subprocess.CompletedProcess):
    """A finished command: ``returncode``, ``stdout``, ``stderr``, and ``text`` (both, as a terminal shows them)."""

    @property
    def text(self) -> str:
        return self.stdout + self.stderr

    @property
    def outcome(self) -> tuple:
        """``(returncode, text)``."""
        return self.returncode, self.text


def audioprep(*args, cwd=None, env=None, check: bool = True, timeout: float = 600) -> Result:
    """Run ``python -m pipeline ARGS`` in a process of its own; with ``check``, fail the test on a non-zero exit.

    ``env`` adds to the environment; a variable given as None is removed from it."""
    full_env = {**os.environ, "DASK_TEMPORARY_DIRECTORY": str(cwd or os.getcwd()), **(env or {})}
    full_env = {k: v for k, v in full_env.items() if v is not None}
    p = subprocess.run(
        [sys.executable, "-m", "pipeline", *map(str, args)],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and p.returncode != 0:
        raise AssertionError(f"audioprep {' '.join(map(str, args))} exited {p.returncode}:\n{p.stderr}")
    return Result(p.args, p.returncode, p.stdout, p.stderr)


def start(args, cwd, env=None) -> subprocess.Popen:
    """Start ``audioprep run ARGS`` in its own process group (as a terminal does); stdout and stderr merged."""
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run", *map(str, args)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )


def finished(out: Path) -> int:
    """Clips marked done in ``out``'s store so far (bad and missing slots included): a done chunk holding its byte
    (a run killed while it writes one can leave it empty, and such a clip is computed again)."""
    d = Path(out) / "audio.zarr" / "done"
    count = 0
    for p in d.glob("c.*") if d.exists() else ():
        try:
            count += p.stat().st_size > 0
        except FileNotFoundError:  # replaced while we look
            continue
    return count


def wait_until(cond, proc, timeout: float = 240) -> None:
    t0 = time.time()
    while not cond():
        assert proc.poll() is None, proc.stdout.read()
        assert time.time() - t0 < timeout, "the run never reached the point to interrupt it"
        time.sleep(0.02)


def lines(text: str) -> list:
    return [ln for ln in text.splitlines() if ln.strip()]


def assert_clean(text: str) -> None:
    """No traceback, no leak report, no warning in what a run printed."""
    assert "Traceback" not in text, text
    assert "leaked" not in text and "Warning" not in text, text


def children_alive(pgid: int) -> list:
    """The processes of process group ``pgid`` still running (zombies aside)."""
    import psutil

    alive = []
    for p in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(p.pid) == pgid and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return alive
