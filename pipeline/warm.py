"""Workers that start warm: each worker process forks from one that has already done the work of starting.

A worker needs its imports (distributed, scipy's FFT, soxr; librosa and numba
too where the plan is not in the plan cache, :mod:`pipeline.plancache`) and the
run's CQT plan before its first clip: 0.6 s of CPU (2.5 to 3 s without the plan
cache) when each worker process is spawned from scratch.  Here a forkserver (Python's
``multiprocessing`` forkserver, which Dask's nannies use when
``distributed.worker.multiprocessing-method`` is ``forkserver``) imports
:mod:`pipeline._forkserver` once, which does all of that; every worker is then
a ``fork`` of it and starts with the imports done and the plan built.

- A local cluster: the driver starts the forkserver before the nannies start
  their workers (:func:`start_forkserver`), and a worker that dies and is
  replaced forks warm too.
- Batch jobs: the job script's ``dask worker`` process runs :func:`dask_setup`
  as a nanny preload, so the ``--nworkers`` workers of a job share one warm
  parent per job (per node).

``audioprep.warm-start: false`` spawns every worker from scratch instead.
"""

from __future__ import annotations

import contextlib
import json
import os

#: The environment variable that hands the run's parameters to the forkserver (it is a fresh process).
ENV = "AUDIOPREP_WARM_PARAMS"
#: The module the forkserver imports: the imports and the CQT plan.
PRELOAD = "pipeline._forkserver"
#: The nanny preload a batch job's ``dask worker`` runs (``--preload-nanny``).
NANNY_PRELOAD = "pipeline.warm"
#: What a worker's nanny needs in its dask config to fork its workers from the forkserver.
CONFIG = {"distributed.worker.multiprocessing-method": "forkserver"}

# distributed's nanny sets MALLOC_TRIM_THRESHOLD_=65536 in its workers. Setting
# any malloc tunable turns off glibc's dynamic mmap threshold, so every large
# numpy temporary is mmapped and page-faulted afresh: measured in a worker, the
# CQT took 65 ms a clip instead of 48 ms and the LCN 9.5 ms instead of 5 ms.
# Leaving the variable unset gives the workers the speed of a plain process.
UNSET = ("MALLOC_TRIM_THRESHOLD_",)
#: The dask config that leaves it unset in a local cluster's workers (batch jobs: :func:`dask_setup`).
WORKER_CONFIG = {f"distributed.nanny.pre-spawn-environ.{name}": None for name in UNSET}


@contextlib.contextmanager
def _environ(values: dict):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def params_env(params) -> str:
    """The parameters as the value of :data:`ENV`: JSON in URL-safe base64, so that no batch system's quoting
    (a job script's ``export``, HTCondor's ``Arguments``) can change it."""
    import base64

    return base64.urlsafe_b64encode(json.dumps(params.to_dict(), sort_keys=True).encode()).decode("ascii")


def params_from_env(text: str):
    import base64

    from .params import Params

    return Params.from_dict(json.loads(base64.urlsafe_b64decode(text.encode("ascii"))))


def start_forkserver(params) -> None:
    """Start this process's forkserver, warmed for ``params``, if it is not running yet.

    Call it in the process whose nannies start the workers, before they start.
    A forkserver lives as long as the process that started it: a later run in
    the same process (a notebook) reuses it, and a run with other parameters
    builds its own plan in each worker (:class:`~pipeline.worker_setup.Warmup`).
    """
    import multiprocessing
    import multiprocessing.forkserver
    import multiprocessing.resource_tracker

    import dask.config
    import distributed.utils

    ctx = multiprocessing.get_context("forkserver")
    if getattr(distributed.utils, "_forkserver_preload_set", None) is False:
        # distributed's get_mp_context sets its preload list the first time it is called, importing every
        # optional package it knows (pandas, ...: 0.25 s of the driver's CPU) to find it; ours replaces it.
        distributed.utils._forkserver_preload_set = True
    else:
        with dask.config.set(CONFIG):
            ctx = distributed.utils.get_mp_context()
    ctx.set_forkserver_preload(["distributed", PRELOAD])
    # The forkserver's environment is its workers' environment: the variables a nanny would set before
    # spawning (distributed.nanny.pre-spawn-environ, e.g. OMP_NUM_THREADS=1) must be set when it starts.
    env = {
        str(k): str(v)
        for k, v in (dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {}).items()
        if v is not None and k not in UNSET
    }
    if env.get("PYTHONHASHSEED") in (None, "0"):
        env["PYTHONHASHSEED"] = "6640"  # as a nanny sets it: hash() agrees across the workers
    env[ENV] = params_env(params)
    with _environ(env):
        # The resource tracker first: starting it unblocks SIGINT and SIGTERM in this thread.
        multiprocessing.resource_tracker.ensure_running()
        with _signals_blocked():
            multiprocessing.forkserver.ensure_running()


@contextlib.contextmanager
def _signals_blocked():
    """Block SIGINT and SIGTERM in this thread while it starts the forkserver: a new process inherits the mask,
    so a Ctrl-C or a ``kill`` of the process group that reaches the forkserver before it ignores them
    (:mod:`pipeline._forkserver` does, then unblocks them) waits instead of raising in its imports."""
    import signal

    held = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)  # a signal that came meanwhile is delivered now


def forked_warm(params) -> bool:
    """Whether this process was forked from a forkserver that did the imports and built ``params``' plan."""
    import sys

    mod = sys.modules.get(PRELOAD)
    return bool(mod and mod.WARM.get("params") == params_env(params) and mod.WARM.get("pid") != os.getpid())


def dask_setup(nanny) -> None:
    """Nanny preload of a batch job's ``dask worker``: its workers start without the variables of
    :data:`UNSET`, and fork from one warm forkserver (when the job script names the run's parameters)."""
    for name in UNSET:
        getattr(nanny, "pre_spawn_env", {}).pop(name, None)
    text = os.environ.get(ENV)
    if text:
        start_forkserver(params_from_env(text))


def _room(dask_worker) -> tuple:
    import psutil

    return psutil.Process().memory_info().rss, getattr(dask_worker.memory_manager, "memory_limit", None)


def check_room(client, *, need: float = 0.0) -> None:
    """Refuse, at once, workers that a warm start already fills past the share of their memory limit at which
    distributed pauses them (they would never run a task) or kills them (again and again), once they hold ``need``
    more bytes (one clip's, :meth:`Params.clip_memory`).

    A forked worker starts holding what its forkserver gave it (its imports, the CQT plan): what each holds is read
    from the workers themselves, and a worker that died meanwhile is refused the same way.
    """
    import dask.config

    fractions = [
        f
        for f in (
            dask.config.get("distributed.worker.memory.pause", None),
            dask.config.get("distributed.worker.memory.terminate", None),
        )
        if f
    ]
    if not fractions:
        return
    for got in client.run(_room, on_error="return").values():
        if isinstance(got, BaseException):
            raise MemoryError(f"a worker died as it started ({type(got).__name__})")
        held, limit = got
        if limit and held + need >= min(fractions) * limit:
            raise MemoryError(
                f"a ready worker holds {held / 2**20:.0f} MiB and one clip needs about {need / 2**20:.0f} MiB more, "
                f"{100 * (held + need) / limit:.0f} % of its memory limit of {limit / 2**20:.0f} MiB"
            )
