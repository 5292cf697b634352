"""Set-up of the worker processes of a local cluster (a Dask preload: ``dask_setup`` runs as each starts).

- The driver alone decides when the run ends: a Ctrl-C or a ``kill`` sent to
  the whole process group is ignored here, and the driver closes the cluster.
- A clip that fails for a reason audioprep knows (bad audio, a full disk) is
  reported once, in one line, by the driver; the worker does not log its
  "Compute Failed" traceback too, nor a heartbeat that found the driver's
  scheduler already closed (``-v`` shows both: ``AUDIOPREP_VERBOSE``).
"""

from __future__ import annotations

import logging
import os
import signal

from distributed import WorkerPlugin

from .exceptions import PipelineError


def _family(cls) -> set:
    return {cls.__name__}.union(*(_family(sub) for sub in cls.__subclasses__()))


class _KnownFailures(logging.Filter):
    """Drop distributed's "Compute Failed" record of a task that raised one of audioprep's errors."""

    names = tuple(f"{name}(" for name in _family(PipelineError))

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("Failed to communicate with scheduler during heartbeat"):
            # The scheduler lives in the driver: it is gone only when the run is ending (a failed or
            # interrupted run closing its cluster), and the driver says why in its own line.
            return False
        if not str(record.msg).startswith("Compute Failed"):
            return True
        texts = [a for a in (record.args if isinstance(record.args, tuple) else ()) if isinstance(a, str)]
        return not any(t.startswith(self.names) for t in texts)


def one_blosc_thread() -> None:
    """A worker is one core: blosc encodes the store's chunks in the calling thread, never in a pool of its own
    (numcodecs uses one per core from the main thread)."""
    from numcodecs import blosc

    blosc.use_threads = False


def dask_setup(worker) -> None:
    one_blosc_thread()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if os.environ.get("AUDIOPREP_VERBOSE", "0") == "0":
        logging.getLogger("distributed.worker").addFilter(_KnownFailures())


class Warmup(WorkerPlugin):
    """Readies a worker for a run's clips before the first one arrives: the imports and the process's CQT plan
    (from the plan cache, else built with librosa), made by running the stages once
    on a silent clip.  Registered while the driver checks the input, so that time is not spent twice."""

    name = "audioprep-warmup"
    idempotent = False

    def __init__(self, params):
        self.params = params

    def setup(self, worker) -> None:
        import numpy as np

        from . import graph
        from .warm import forked_warm

        one_blosc_thread()
        if not forked_warm(self.params):  # else forked from a forkserver that did all of this (pipeline.warm)
            graph.compute(np.zeros(self.params.nsamples, dtype=np.float32), self.params, graph.stages_for(self.params))
