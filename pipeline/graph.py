"""The task graph: one task per clip, or per small batch of clips of one genre.

Inside a task each clip goes load -> frame -> CQT -> LCN -> write (one stage
an output array of :mod:`pipeline.arrays`), each stage a call of one pure kernel
timed through distributed's fine performance
metrics (``context_meter``), so the dashboard's "Fine Performance Metrics"
page shows where the time goes per stage while the scheduler sees one task
for several clips.  The write stage hands the clip to the run's
:class:`~pipeline.output.store.ClipWriter` (the Zarr store's chunks, the
temporary ``audio.hdf5``'s byte ranges: the graph does not ask which).  Task keys name their clips and
end with the run's token (``clips-blues.00003-00010-3f9a2c1d``): two runs on
one scheduler never share a task, even for clips of the same names.

:func:`plan_tasks` only describes the tasks and :func:`build_graph` only
builds delayed objects; the caller hands them to a client.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass

from .arrays import ARRAYS, needed
from .config import setting
from .exceptions import BadInputError
from .inputs import ClipRef, load_clip
from .output.store import ClipWriter, store_writer
from .params import Params

#: Every stage a task can time: loading, one for each output array, writing.
STAGES = ("load", *(a.stage for a in ARRAYS.values()), "write")


@dataclass(frozen=True)
class ClipTask:
    """One task: ``kind`` "clips" computes ``refs``; "copy" copies them, finished by an earlier run, from
    the resume store (``audio.zarr``) into the run's other stores (``audio.hdf5``)."""

    key: str
    kind: str
    refs: tuple


# -- the stages: one pure kernel each ------------------------------------------------


def load(ref: ClipRef, params: Params):
    """Decode the clip (float32, ``Nsamples`` samples)."""
    return load_clip(ref, params)


def write(ref: ClipRef, arrays: dict, target: ClipWriter) -> None:
    """Write the clip's arrays into every store of the run, then mark it done."""
    target.write(ref.g, ref.c, arrays)


def stages_for(params: Params) -> list:
    """The stages the requested datasets need, in order: load, one stage an array (:data:`arrays.ARRAYS`),
    write."""
    return ["load", *(a.stage for a in needed(params.datasets)), "write"]


def compute(y, params: Params, stages, meter=None) -> dict:
    """The arrays of clip ``y`` the ``stages`` make, each stage timed by ``meter(stage)``."""
    meter = meter or (lambda stage: contextlib.nullcontext())
    arrays = {"y": y}
    for a in ARRAYS.values():
        if a.stage in stages:
            with meter(a.stage):
                arrays[a.name] = a.make(*(arrays[n] for n in a.needs), params)
    del arrays["y"]
    return arrays


def process_clip(ref: ClipRef, params: Params, target: ClipWriter, stages=None) -> None:
    """All stages of one clip, each timed on the dashboard; raises :class:`BadInputError` for a bad clip."""
    from distributed.metrics import context_meter

    with context_meter.meter("load"):
        y = load(ref, params)
    arrays = compute(y, params, stages or stages_for(params), context_meter.meter)
    with context_meter.meter("write"):
        write(ref, {n: arrays[n] for n in params.datasets}, target)


def copy_clip(ref: ClipRef, params: Params, target: ClipWriter) -> None:
    """Copy a clip an earlier run finished from the resume store into the run's other stores."""
    from distributed.metrics import context_meter

    with context_meter.meter("copy"):
        target.copy(ref.g, ref.c, params.datasets)


def run_task(task: ClipTask, params: Params, target: ClipWriter) -> tuple:
    """Run one task on a worker; return ``(written, failures)``: ``[(g, c)]`` of the clips it wrote and
    ``[(g, c, reason)]`` of its bad clips.

    A bad clip is reported, not raised, so it never costs the other clips of
    its task; anything else (a full disk, a bug) fails the task.  The driver
    counts a clip as written only from this list, of this run's own task.
    """
    written, failures, stages = [], [], stages_for(params)
    for ref in task.refs:
        if task.kind == "copy":
            copy_clip(ref, params, target)
            written.append((ref.g, ref.c))
            continue
        try:
            process_clip(ref, params, target, stages)
        except BadInputError as e:
            failures.append((ref.g, ref.c, e.problems[0].reason if e.problems else str(e)))
        else:
            written.append((ref.g, ref.c))
    return written, failures


# -- planning -------------------------------------------------------------------------


def _safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", label)


def clip_token(ref: ClipRef, labels) -> str:
    """The clip part of a task key, e.g. ``blues.00003``.

    Only letters, digits and ``_`` stand before the dot, so Dask's key_split
    takes everything up to the first ``-`` as the group (the task's kind).
    """
    genre = _safe(ref.genre) or "nolabel"  # (the clip layout's clips without a label)
    if sum(_safe(lb) == genre for lb in labels) > 1:
        genre = f"{genre}_{ref.g}"  # two labels that differ only in punctuation
    return f"{genre}.{ref.c:05d}"


def run_token() -> str:
    """A new run's token: 8 hex digits, the last word of each of its task keys."""
    import secrets

    return secrets.token_hex(4)


def task_key(kind: str, refs, labels, run: str = "") -> str:
    """``clips-blues.00003`` for one clip, ``clips-blues.00003-00010`` for a batch (first and last clip), each
    followed by ``-<run>`` (:func:`run_token`) when given: the scheduler takes equal keys for one task, so keys
    of two runs must differ even where their clips' names do not."""
    first = clip_token(refs[0], labels)
    key = f"{kind}-{first}" if len(refs) == 1 else f"{kind}-{first}-{refs[-1].c:05d}"
    return f"{key}-{run}" if run else key


def plan_tasks(refs, labels, *, per_task: int, kind: str = "clips", run: str = ""):
    """Group ``refs`` (ordered by genre, then clip) into tasks of at most ``per_task`` clips of one genre.

    A generator: a run takes tasks from it as its window has room, so nothing
    is held per clip beyond the index.
    """
    batch: list[ClipRef] = []
    for ref in refs:
        if batch and (len(batch) == per_task or ref.g != batch[0].g):
            yield ClipTask(task_key(kind, batch, labels, run), kind, tuple(batch))
            batch = []
        batch.append(ref)
    if batch:
        yield ClipTask(task_key(kind, batch, labels, run), kind, tuple(batch))


def build_graph(clips, params: Params, target: ClipWriter | str, labels, *, per_task: int = 1, run: str = "") -> dict:
    """Build (do not run) the tasks for ``clips``, as ``dask.delayed`` objects a client computes.

    Returns
    -------
    dict
        task key -> ``dask.delayed`` of :func:`run_task`, whose value is the
        task's written and bad clips.
    """
    import dask

    if isinstance(target, str):
        target = store_writer(target)  # a Zarr store alone
    return {
        t.key: dask.delayed(run_task, pure=True)(t, params, target, dask_key_name=t.key)
        for t in plan_tasks(clips, labels, per_task=per_task, run=run)
    }


def failure_reason(exc: BaseException) -> str:
    """Why a clip task failed, in one line: its input problem, a worker it kept killing, or the exception."""
    if isinstance(exc, BadInputError) and exc.problems:
        return exc.problems[0].reason
    name = type(exc).__name__
    if name == "KilledWorker":
        return (
            f"killed its worker process on every attempt ({int(setting('allowed-failures')) + 1}): out of "
            f"memory (memory-limit {setting('memory-limit')} a worker) or a crash"
        )
    return f"failed in the run ({name}: {exc})".strip()
