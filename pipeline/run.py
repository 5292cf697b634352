"""One run: index -> pre-flight -> open the output folder -> compute -> consolidate -> summary.

This module orchestrates; the numbers come from :mod:`pipeline.kernels`, the
tasks from :mod:`pipeline.graph`, the files from :mod:`pipeline.output`.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import itertools
import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .cluster import ClusterSpec, Starter, remove_stale_credentials
from .config import setting
from .exceptions import (
    BadInputError,
    IncompleteError,
    ParameterError,
    PipelineError,
    Problem,
    StorageError,
    StoreError,
    Terminated,
    UnsafeOutputError,
)
from .graph import ClipTask, failure_reason, plan_tasks, run_task, run_token, task_key
from .inputs import open_index, preflight
from .inputs.report import ignored_line, no_valid_clip, refuse
from .output import OutputFolder
from .output.files import gone, is_storage_error
from .output.layout import bad_and_missing, bad_entry, make_attrs
from .params import Params

log = logging.getLogger("audioprep")


@dataclass
class RunResult:
    """What a run did; also written as JSON beside the output."""

    zarr_path: str  # the resume store
    output_path: str  # the finished output (audio.hdf5, or the Zarr store itself): what its FinalOutput says
    output_format: str = ""  # its kind (--output-format)
    clips: int = 0  # slots in the output (genres x clips) = computed + resumed + bad + missing
    computed: int = 0  # clips computed by this run
    resumed: int = 0  # valid clips found finished in the store (earlier runs) and skipped
    input_changes: dict | None = None  # files added, changed, removed since the store was made; clips reused
    bad: list = field(default_factory=list)  # "path: reason" per bad clip (zero-filled, invalid)
    missing: list = field(default_factory=list)  # "genre[clip]" per slot no clip fills (--pad)
    ignored: list = field(default_factory=list)  # input entries that are not clips, relative to the input
    empty_genres: list = field(default_factory=list)  # genres left with no valid clip (all bad or missing)
    seconds: float = 0.0
    bytes_written: int = 0  # array bytes this run's tasks wrote
    output_bytes: int = 0  # the finished output's size
    consolidate_seconds: float = 0.0  # the driver's final step: valid, coordinates, attributes, fsync, rename
    up_to_date: bool = False
    dashboard: str | None = None
    workers: list = field(default_factory=list)  # names of the workers that were connected
    params: dict = field(default_factory=dict)

    @property
    def clips_per_second(self) -> float:
        return self.computed / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict:
        data = asdict(self)
        data["clips_per_second"] = round(self.clips_per_second, 3)
        data["seconds"] = round(self.seconds, 3)
        return data


@dataclass
class _Computed:
    """What :func:`_compute` measured."""

    computed: int = 0
    bytes_written: int = 0
    written: list = field(default_factory=list)  # [ClipRef]: clips this run's tasks said they computed and wrote
    failures: list = field(default_factory=list)  # [(ClipRef, reason)]: the clip's own data is bad
    unfinished: list = field(default_factory=list)  # [(ClipRef, reason)]: the run failed it (a worker killed, ...)
    dashboard: str | None = None
    workers: list = field(default_factory=list)


def run(
    input_path,
    outdir,
    params: Params,
    *,
    spec: ClusterSpec | None = None,
    client=None,
    skip_bad: bool = False,
    pad: bool = False,
    path_column: str | None = None,
    label_column: str | None = None,
    format: str | None = None,
    audio: str | None = None,
    output_format: str | None = None,
    metadata: str | None = None,
    subset: str | None = None,
    verify: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    echo=None,
    config_text: str | None = None,
) -> RunResult:
    """Run the pipeline; return a :class:`RunResult`.

    Raises :class:`BadInputError` for bad clips (unless ``skip_bad``) and for
    problems of the input as a whole (genres of different sizes unless
    ``pad``, names that cannot be stored, no clip at all), with the finished
    clips kept in the store, and :class:`StoreError` when the outputs cannot
    be written or belong to another run.  Nothing is created before the input
    passes.  ``config_text`` is saved as the folder's ``audio.config.yaml``
    once the run is accepted.  ``output_format`` names the finished output's
    kind (:data:`pipeline.output.store.FINALS`; None: the default).
    """
    echo = echo or (lambda msg: log.info(msg))
    t0 = time.perf_counter()
    if pad and params.layout == "clips":
        raise ParameterError(
            "--pad fills the empty slots of the grid layout; --layout clips has no slots to fill (a row a clip, "
            "genres of any size): drop --pad, or use --layout grid"
        )
    _check_outdir(input_path, outdir)
    out = OutputFolder(outdir, final=output_format)
    out.check_early()  # unwritable or in use: said at once, before a cluster starts
    result = RunResult(str(out.zarr_path), str(out.final.path), out.final.name, params=params.to_dict())

    index = open_index(
        input_path,
        pad=pad,
        path_column=path_column,
        label_column=label_column,
        format=format,
        audio=audio,
        metadata=metadata,
        subset=subset,
        verify=verify,
        layout=params.layout,
    )
    result.ignored = list(index.ignored)
    if index.ignored:
        echo(ignored_line(index.ignored))
    spec = spec or ClusterSpec()
    if spec.log_directory is None:
        spec = dataclasses.replace(spec, log_directory=str(out.log_dir))  # batch jobs' stdout / stderr
    if spec.shared_directory is None:
        spec = dataclasses.replace(spec, shared_directory=str(out.path))  # batch jobs' credentials
    # A local cluster starts (and its workers warm up), or a scheduler's address is reached, while the input is
    # checked; a batch cluster needs the output folder, so it starts once the run is accepted.
    kind = spec.resolved_kind()
    early = client is None and (kind == "local" or "://" in kind) and not out.has_output()
    with Starter(spec, client, params, early=early) as starter:
        problems = preflight(index, params, progress=progress)
        refuse(problems, index, skip_bad=skip_bad)
        index = index.measured(problems)  # each slot's own samples and start, for the stores
        result.clips = index.nslots
        return _accepted(
            index,
            problems,
            params,
            out,
            starter,
            result,
            skip_bad=skip_bad,
            overwrite=overwrite,
            progress=progress,
            echo=echo,
            config_text=config_text,
            t0=t0,
        )


def _accepted(
    index, problems, params, out, starter, result, *, skip_bad, overwrite, progress, echo, config_text, t0
) -> RunResult:
    """The run once its input and settings passed: open the folder, prepare the store, compute, finish."""
    try:
        with out.open():  # the lock first: a second run on this folder is told at once
            remove_stale_credentials(out.path)  # of a batch run that was killed
            starter.wait(progress)  # a cluster that cannot start fails here, before any file is written
            created = datetime.now(timezone.utc).isoformat(timespec="seconds")
            expected = make_attrs(index, params, created=created)
            if out.up_to_date(expected, overwrite=overwrite, index=index):
                result.up_to_date = True
                _account(result, out.final.read_attrs(), resumed=None)
            else:
                todo, copies, resumed = _prepare(
                    index,
                    problems,
                    params,
                    out,
                    expected,
                    result.clips,
                    overwrite=overwrite,
                    config_text=config_text,
                    echo=echo,
                )
                result.input_changes = out.changes.to_json() if out.changes is not None else None
                _compute_and_finish(
                    index, params, out, todo, copies, starter, result, skip_bad=skip_bad, progress=progress, echo=echo
                )
                _account(result, out.store_attrs(), resumed=resumed)
            result.seconds = time.perf_counter() - t0
            if not result.up_to_date or not out.summary_path.exists():  # (a stop may have lost it after the rename)
                out.write_summary(result.to_json())
            return result
    except (KeyboardInterrupt, Terminated) as e:
        e.finished = out.finished_clips()  # type: ignore[union-attr]  # for the one line the command prints (getattr)
        raise
    except StorageError as e:
        raise _cannot_write(out, e.reason) from None
    except PipelineError:
        raise
    except Exception as e:
        if out.store_removed():  # the driver met the store's absence first (KeyError: 'done', ...)
            raise gone(out.zarr_path) from None
        if not is_storage_error(e):
            raise
        raise _cannot_write(out, e.strerror or str(e)) from None


def _prepare(index, problems, params, out, expected, nslots, *, overwrite, config_text, echo) -> tuple:
    """Check the space, open or lay out the store, mark the bad and missing slots; return ``(clips to
    compute, clips to copy from an earlier run, how many those are)``."""
    out.check_space(params, index)
    out.lay_out(index, params, expected, overwrite=overwrite)
    if config_text is not None:
        out.write_config(config_text)
    done = out.done_mask()
    finished = out.finished_mask(done)  # done and not bad: copied into the final output by tasks (if apart)
    resumed = int(finished.sum())
    todo = _plan(index, problems, out, done)
    if out.changes is not None:  # the store was made anew for an input that grew or changed
        echo(f"resuming: {out.changes.line()} in {out.zarr_path}; {len(todo)} clip(s) to compute")
    elif done.any():
        echo(f"resuming: {resumed} of {nslots} clips already in {out.zarr_path}, skipping them")
    copies = [ref for ref in index.clips if finished[index.slot(ref)]]
    return todo, copies, resumed


def _compute_and_finish(index, params, out, todo, copies, starter, result, *, skip_bad, progress, echo) -> None:
    """Lay out the final output, let the workers fill it (and the store), record what failed, and finish it.

    No process but the workers touches array bytes: each writes a clip's bytes
    into its slots as it finishes it, and copies the clips of earlier runs
    (none when the store is the output itself).
    """
    with out.writer(index, params) as target:
        try:  # (no copies when the store is the output itself)
            got = _compute(todo, copies if target.copies else [], index, params, target, starter, progress, echo, out)
            _check_written(got, out, index)
        except BaseException:
            starter.close()  # the workers stop before the final output's temporary file is removed
            with contextlib.suppress(Exception):
                out.write_valid()  # the store says what it holds, also when interrupted
            raise
        result.computed, result.bytes_written = got.computed, got.bytes_written
        result.dashboard, result.workers = got.dashboard, got.workers
        listed = [Problem(r.name, why) for r, why in got.failures + got.unfinished]
        if got.failures and not got.unfinished and got.computed + len(copies) == 0:
            out.write_valid()
            raise no_valid_clip(len(got.failures), listed)
        if got.failures and not skip_bad:
            out.write_valid()
            raise BadInputError(
                listed,
                f"{len(got.failures)} clip(s) failed; the other clips are saved in "
                f"{out.zarr_path}: fix the bad clips and run again, or add --skip-bad",
            )
        out.mark_bad([bad_entry(ref.g, ref.c, ref.name, why) for ref, why in got.failures])
        for ref, _ in got.failures:
            target.zero(ref.g, ref.c)  # a failed attempt may have written part of its slot
        out.write_valid()
        if got.unfinished:  # not the clips' fault: not stored as bad, so the next run computes them
            raise IncompleteError(
                listed,
                f"{len(got.unfinished)} clip(s) not computed because of the run, not "
                f"their data; the other clips are saved in {out.zarr_path}: run the same "
                "command again to compute them (give the workers more memory, or fewer "
                "workers, if they ran out)",
            )
        echo(f"finishing {out.final.path}" + (f" from {out.zarr_path}" if out.final.path != out.zarr_path else ""))
        t1 = time.perf_counter()
        result.output_bytes = out.finish()
        for note in out.final.notes:
            echo(note)
        result.consolidate_seconds = time.perf_counter() - t1


def _check_outdir(input_path, outdir) -> None:
    """Refuse an output folder inside an input folder: the next run would index it as a genre."""
    inp = Path(input_path).resolve()
    out = Path(outdir).resolve()
    if inp.is_dir() and (out == inp or inp in out.parents):
        raise ParameterError(
            f"-o {outdir} is inside the input folder {inp}, where the next run would read "
            f"it as a genre; choose an output folder outside {inp} (e.g. -o {inp.parent / 'out'})"
        )


def _account(result: RunResult, attrs: dict, *, resumed: int | None) -> None:
    """Fill the bad and missing slots from the store's ``bad_clips``; the rest are computed or resumed."""
    result.bad, result.missing, entries = bad_and_missing(attrs)
    labels = list(attrs.get("labels", []))
    invalid = len(result.bad) + len(result.missing)
    result.resumed = result.clips - invalid - result.computed if resumed is None else resumed
    per_genre = collections.Counter(int(b["genre"]) for b in entries)
    result.empty_genres = [labels[g] for g in sorted(per_genre) if per_genre[g] >= int(attrs.get("Nclips", 0))]


def _cannot_write(out, reason: str) -> StoreError:
    """The one line for a storage failure, whichever process met it (a worker, the driver)."""
    return StoreError(
        f"cannot write to {out.path} ({reason}); the finished clips are kept in {out.zarr_path}: "
        "free space or fix permissions, then run the same command again to resume"
    )


def _plan(index, problems, out, done) -> list:
    """Mark the clips pre-flight found bad, and the missing slots, invalid; return the clips to compute."""
    bad_paths = {p.path: p.reason for p in problems}
    todo, marks = [], []
    for ref in index.clips:
        if done[index.slot(ref)]:
            continue
        why = bad_paths.get(ref.where, bad_paths.get(ref.file))  # the clip's own problem, or its whole file's
        if why is not None:
            marks.append(bad_entry(ref.g, ref.c, ref.name, why))
        else:
            todo.append(ref)
    sizes: dict[int, int] = {}
    for ref in index.clips:
        sizes[ref.g] = sizes.get(ref.g, 0) + 1
    for g, c in index.missing():
        if not done[g, c]:
            marks.append(
                bad_entry(g, c, "", f"missing: {index.labels[g]} holds {sizes.get(g, 0)} clip(s)", missing=True)
            )
    out.mark_bad(marks)
    return todo


def _compute(todo, copies, index, params, target, starter, progress, echo, out) -> _Computed:
    """Compute the ``todo`` clips and copy the finished ``copies`` into the final output's places.

    Tasks go to the scheduler in a bounded window (``audioprep.clips-in-flight``
    clips), refilled many at a time as tasks finish, so the driver's and the
    scheduler's memory stay flat however many clips the dataset holds.  A task
    of several clips that fails as a whole (a worker killed, a bug), or a copy
    that fails, is retried as one task a clip that computes it, so only the
    clip at fault is reported.
    """
    got = _Computed()
    if not todo and not copies:
        return got
    from distributed import as_completed

    from .progress import bar as progress_bar

    clip_bytes = params.clip_bytes()
    conn = starter.connection(progress=progress)
    cl = conn.client
    got.dashboard = conn.dashboard_link
    echo(f"dashboard: {conn.dashboard_link}{conn.moved()}")
    conn.wait_for_workers(echo)
    # Tasks of clips-per-task clips (the scheduler's cost is per task), but at least two a worker, so a small
    # input keeps every worker busy.
    workers = max(1, len(cl.scheduler_info()["workers"]))
    total = len(todo) + len(copies)
    per_task = max(1, min(int(setting("clips-per-task")), -(-total // (2 * workers))))
    window = max(1, -(-int(setting("clips-in-flight")) // per_task))  # tasks in the scheduler at once
    run = run_token()  # in every key: another run on this scheduler never shares a task with this one
    planned = itertools.chain(
        plan_tasks(copies, index.labels, per_task=per_task, kind="copy", run=run),
        plan_tasks(todo, index.labels, per_task=per_task, run=run),
    )
    retry: collections.deque[ClipTask] = collections.deque()  # one task a clip, after a failed task; submitted first
    tasks: dict[str, ClipTask] = {}  # key -> ClipTask in flight

    def submit(n: int) -> list:
        batch = [retry.popleft() for _ in range(min(n, len(retry)))]
        batch += itertools.islice(planned, n - len(batch))
        if not batch:
            return []
        tasks.update((t.key, t) for t in batch)
        return cl.map(run_task, batch, key=[t.key for t in batch], params=params, target=target, pure=False)

    done_iter = as_completed(submit(window), with_results=True, raise_errors=False)
    storage_error = fatal = None
    try:
        with progress_bar(desc="clips", enabled=progress, total=len(todo) + len(copies), smoothing=0.1) as bar:
            for finished in done_iter.batches():
                for fut, value in finished:
                    task = tasks.pop(fut.key)
                    status = fut.status
                    fut.release()
                    if status == "finished":
                        written, bad = set(value[0]), {(g, c): why for g, c, why in value[1]}
                        for ref in task.refs:
                            if (ref.g, ref.c) in bad:
                                got.failures.append((ref, bad[ref.g, ref.c]))
                            elif (ref.g, ref.c) not in written:  # its task did not say it wrote it
                                got.unfinished.append((ref, "not written by its task"))
                            elif task.kind == "clips":
                                got.written.append(ref)
                                got.bytes_written += clip_bytes
                        bar.update(len(task.refs))
                        continue
                    value = value[1] if isinstance(value, tuple) else value  # (type, exception, traceback)
                    if isinstance(value, StorageError) or is_storage_error(value):
                        storage_error = value.reason if isinstance(value, StorageError) else value.strerror
                    elif isinstance(value, UnsafeOutputError) or out.store_removed():
                        fatal = value if isinstance(value, UnsafeOutputError) else gone(out.zarr_path)
                    elif len(task.refs) > 1 or task.kind == "copy":
                        retry.extend(
                            ClipTask(task_key("retry", [ref], index.labels, run), "clips", (ref,)) for ref in task.refs
                        )
                    else:
                        got.unfinished.append((task.refs[0], failure_reason(value)))
                        bar.update(1)
                if storage_error is not None or fatal is not None:
                    cl.cancel(list(done_iter.futures))
                    break
                done_iter.update(submit(window - len(tasks)))
    except BaseException:
        with contextlib.suppress(Exception):  # a client handed in outlives the run: leave it no work
            cl.cancel(list(done_iter.futures))
        raise
    got.workers = sorted({str(w.get("name")) for w in cl.scheduler_info()["workers"].values()})
    if fatal is not None:
        raise fatal
    if storage_error is not None:
        raise StorageError(storage_error, str(out.zarr_path))
    return got


def _check_written(got: _Computed, out, index) -> None:
    """Count as computed only the clips this run's tasks wrote that the store holds as done; any other is
    unfinished (the next run computes it), never reported as computed."""
    done = out.done_mask()
    for ref in got.written:
        if done[index.slot(ref)]:
            got.computed += 1
        else:
            got.unfinished.append((ref, "its task returned but the store does not hold it"))


__all__ = ["run", "RunResult", "PipelineError"]
