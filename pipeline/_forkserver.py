"""Imported by the forkserver of :mod:`pipeline.warm` only: the imports and the CQT plan every worker needs.

The run's parameters come from the environment variable ``AUDIOPREP_WARM_PARAMS``;
the stages run once on a silent clip, which imports what they use and loads the
CQT plan (from the plan cache, :mod:`pipeline.plancache`: no librosa; else it
builds it with librosa and caches it).  Each worker forked from this process
starts with all of it.
"""

from __future__ import annotations

import os
import signal

# A Ctrl-C or a SIGTERM to the whole process group (kill, a batch system's notice) is the driver's to handle: the
# forkserver stays until its parent ends (it leaves when the parent's end of its pipe closes), so that the nannies
# do not take a vanished forkserver for dead workers, and it never prints a traceback of the imports a signal
# interrupted.  It starts with both signals blocked (pipeline.warm.start_forkserver): ignoring them drops one that
# came meanwhile, and only then are they unblocked.  Its children, the workers, get SIGTERM's default back.
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
os.register_at_fork(after_in_child=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))

import distributed  # noqa: E402,F401  (what every worker imports first)

from .warm import ENV, params_from_env  # noqa: E402

#: What this process readied: its pid and the parameters it built the plan for (as :data:`ENV` holds them).
WARM: dict = {}


def _warm() -> None:
    text = os.environ.get(ENV)
    if not text:
        return
    import numpy as np

    from . import graph

    params = params_from_env(text)
    graph.compute(np.zeros(params.nsamples, dtype=np.float32), params, graph.stages_for(params))
    WARM.update(pid=os.getpid(), params=text)


try:
    _warm()
except Exception:  # a forkserver that cannot warm up still forks workers; each then warms itself
    WARM.clear()
