"""One run: index -> pre-flight -> open the output folder -> compute -> consolidate -> summary.

This module orchestrates; the numbers come from :mod:`pipeline.kernels`, the
tasks from :mod:`pipeline.graph`, the files from :mod:`pipeline.output`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .cluster import ClusterSpec, Connection
from .config import setting
from .dataset import open_index, preflight, shown
from .exceptions import BadInputError, ParameterError, PipelineError, Problem, StorageError, StoreError, Terminated
from .graph import build_graph
from .output import OutputFolder, zarr_store
from .output.files import is_storage_error
from .output.layout import make_attrs, store_token
from .params import Params

log = logging.getLogger("audioprep")

@dataclass
class RunResult:
    """What a run did; also written as JSON beside the output."""

    zarr_path: str
    hdf5_path: str
    clips: int = 0          # slots in the output (genres x clips) = computed + resumed + bad + missing
    computed: int = 0       # clips computed by this run
    resumed: int = 0        # valid clips found finished in the store (earlier runs) and skipped
    bad: list = field(default_factory=list)  # "path: reason" per bad clip (zero-filled, invalid)
    missing: list = field(default_factory=list)  # "genre[clip]" per slot no clip fills (--pad)
    ignored: list = field(default_factory=list)  # input entries that are not clips, relative to the input
    seconds: float = 0.0
    bytes_written: int = 0  # array bytes this run's tasks wrote
    hdf5_bytes: int = 0
    consolidate_seconds: float = 0.0  # time the HDF5 writer process spent copying
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
    failures: list = field(default_factory=list)  # [(ClipRef, reason)]
    dashboard: str | None = None
    workers: list = field(default_factory=list)


def run(input_path, outdir, params: Params, *, spec: ClusterSpec | None = None, client=None,
        skip_bad: bool = False, pad: bool = False, path_column: str | None = None,
        label_column: str | None = None, overwrite: bool = False, progress: bool = False,
        echo=None, config_text: str | None = None) -> RunResult:
    """Run the pipeline; return a :class:`RunResult`.

    Raises :class:`BadInputError` for bad clips (unless ``skip_bad``) and for
    problems of the input as a whole (genres of different sizes unless
    ``pad``, names that cannot be stored, no clip at all), with the finished
    clips kept in the store, and :class:`StoreError` when the outputs cannot
    be written or belong to another run.  Nothing is created before the input
    passes.  ``config_text`` is saved as the folder's ``audio.config.yaml``
    once the run is accepted.
    """
    echo = echo or (lambda msg: log.info(msg))
    t0 = time.perf_counter()
    _check_outdir(input_path, outdir)
    out = OutputFolder(outdir)
    result = RunResult(str(out.zarr_path), str(out.hdf5_path), params=params.to_dict())

    index = open_index(input_path, pad=pad, path_column=path_column, label_column=label_column)
    result.ignored = list(index.ignored)
    if index.ignored:
        echo(ignored_line(index.ignored))
    problems = preflight(index, params, progress=progress)
    if index.problems:
        raise BadInputError(problems, f"{len(problems)} problem(s) in {index.path}: fix them, or give the options "
                                      "they name, and run again" + (" (--skip-bad covers bad clips only)"
                                                                    if skip_bad else ""))
    if problems and not skip_bad:
        raise BadInputError(problems, f"{len(problems)} problem(s) in {index.path}; fix or remove the bad "
                                      "clips, or run with --skip-bad to go on without them")
    result.clips = index.ngenres * index.nclips

    try:
        with out.open():
            created = datetime.now(timezone.utc).isoformat(timespec="seconds")
            expected = make_attrs(index, params, created=created)
            if out.up_to_date(expected, overwrite=overwrite):
                result.up_to_date = True
                _account(result, out.hdf5_attrs(), resumed=None)
                result.seconds = time.perf_counter() - t0
                return result
            out.check_space(params, index)
            root = out.store(index, params, expected, overwrite=overwrite)
            if config_text is not None:
                out.write_config(config_text)
            done = zarr_store.done_mask(root)
            resumed = int((done & np.asarray(root["valid"][...], dtype=bool)).sum())
            if done.any():
                echo(f"resuming: {int(done.sum())} of {result.clips} clips already in {out.zarr_path}, skipping them")
            todo = _plan(index, problems, root, done)

            # The single HDF5 writer copies each clip as soon as it is finished, so
            # consolidation overlaps the computation; the file appears only at the end.
            with out.hdf5_writer() as writer:
                spec = spec or ClusterSpec()
                if spec.log_directory is None:
                    spec = dataclasses.replace(spec, log_directory=str(out.log_dir))  # batch jobs' stdout / stderr
                if spec.shared_directory is None:
                    spec = dataclasses.replace(spec, shared_directory=str(out.path))  # batch jobs' credentials
                got = _compute(todo, index, params, out.zarr_path, spec, client, progress, echo, writer)
                result.computed, result.bytes_written = got.computed, got.bytes_written
                result.dashboard, result.workers = got.dashboard, got.workers
                if got.failures and not skip_bad:
                    raise BadInputError([Problem(r.name, why) for r, why in got.failures],
                                        f"{len(got.failures)} clip(s) failed; the other clips are saved in "
                                        f"{out.zarr_path}: fix the bad clips and run again, or add --skip-bad")
                zarr_store.mark_bad(root, [_bad(ref.g, ref.c, ref.name, why) for ref, why in got.failures])
                zarr_store.consolidate(out.zarr_path)
                echo(f"consolidating {out.zarr_path} -> {out.hdf5_path}")
                result.hdf5_bytes = writer.finish()
                result.consolidate_seconds = writer.busy_seconds
            _account(result, zarr_store.attrs(out.zarr_path), resumed=resumed)
            result.seconds = time.perf_counter() - t0
            out.write_summary(result.to_json())
            return result
    except (KeyboardInterrupt, Terminated) as e:
        e.finished = out.finished_clips()  # for the one line the command prints
        raise
    except StorageError as e:
        raise _cannot_write(out, e.reason) from None
    except OSError as e:
        if not is_storage_error(e):
            raise
        raise _cannot_write(out, e.strerror) from None


def _check_outdir(input_path, outdir) -> None:
    """Refuse an output folder inside an input folder: the next run would index it as a genre."""
    inp = Path(input_path).resolve()
    out = Path(outdir).resolve()
    if inp.is_dir() and (out == inp or inp in out.parents):
        raise ParameterError(f"-o {outdir} is inside the input folder {inp}, where the next run would read "
                             f"it as a genre; choose an output folder outside {inp} (e.g. -o {inp.parent / 'out'})")


def ignored_line(ignored: list, first: int = 10) -> str:
    """The one line naming the entries of the input that are not clips (the first ``first`` of them)."""
    more = f", and {len(ignored) - first} more (listed in the run summary)" if len(ignored) > first else ""
    return f"ignored {len(ignored)} non-audio file(s): {', '.join(ignored[:first])}{more}"


def _bad(g: int, c: int, path: str, reason: str, missing: bool = False) -> dict:
    """One entry of the stores' ``bad_clips`` list."""
    entry = {"genre": int(g), "clip": int(c), "path": path, "reason": reason}
    if missing:
        entry["missing"] = True
    return entry


def _account(result: RunResult, attrs: dict, *, resumed: int | None) -> None:
    """Fill the bad and missing slots from the store's ``bad_clips``; the rest are computed or resumed."""
    entries = json.loads(attrs.get("bad_clips", "[]"))
    labels = list(attrs.get("labels", []))
    result.bad = [f"{b['path']}: {b['reason']}" for b in entries if not b.get("missing")]
    result.missing = [f"{labels[b['genre']]}[{b['clip']}]" for b in entries if b.get("missing")]
    invalid = len(result.bad) + len(result.missing)
    result.resumed = result.clips - invalid - result.computed if resumed is None else resumed
def _cannot_write(out, reason: str) -> StoreError:
    """The one line for a storage failure, whichever process met it (a worker, the HDF5 writer, the driver)."""
    return StoreError(f"cannot write to {out.path} ({reason}); the finished clips are kept in {out.zarr_path}: "
                      "free space or fix permissions, then run the same command again to resume")


def _plan(index, problems, root, done) -> list:
    """Mark the clips pre-flight found bad, and the missing slots, invalid; return the clips to compute."""
    bad_paths = {p.path: p.reason for p in problems}
    todo, marks = [], []
    for ref in index.clips:
        if done[ref.g, ref.c]:
            continue
        where = shown(ref.source) if ref.column is None else index.path  # a gtzan.hdf5 is good or bad as a whole
        if where in bad_paths:
            marks.append(_bad(ref.g, ref.c, ref.name, bad_paths[where]))
        else:
            todo.append(ref)
    sizes = {}
    for ref in index.clips:
        sizes[ref.g] = sizes.get(ref.g, 0) + 1
    for g, c in index.missing():
        if not done[g, c]:
            marks.append(_bad(g, c, "", f"missing: {index.labels[g]} holds {sizes.get(g, 0)} clip(s)",
                              missing=True))
    zarr_store.mark_bad(root, marks)
    return todo


def _reason(exc: BaseException) -> str:
    if isinstance(exc, BadInputError) and exc.problems:
        return exc.problems[0].reason
    name = type(exc).__name__
    if name == "KilledWorker":
        return "killed its worker process on every attempt (crash or out of memory); not retried further"
    return f"{name}: {exc}".strip()


def _compute(todo, index, params, zarr_path, spec, client, progress, echo, writer) -> _Computed:
    """Compute ``todo`` clips into the store, queueing each finished clip to ``writer``."""
    got = _Computed()
    if not todo:
        return got
    import dask.config
    from distributed import as_completed
    from tqdm.auto import tqdm

    with dask.config.set({"distributed.scheduler.allowed-failures": int(setting("allowed-failures"))}):
        with Connection(spec, client) as conn:
            cl = conn.client
            got.dashboard = conn.dashboard_link
            echo(f"dashboard: {conn.dashboard_link}")
            conn.wait_for_workers(echo)
            token = store_token(zarr_store.attrs(zarr_path))
            clip_bytes = sum(4 * int(np.prod(params.shape(n, 1, 1))) for n in params.datasets)
            # A bounded window of clips is in the scheduler at any time, so the driver's and the
            # scheduler's memory stay flat however many clips the dataset holds.
            window = max(1, int(setting("clips-in-flight")))
            pending = iter(todo)
            slot, futures = {}, set()

            def submit(n: int) -> list:
                refs = [ref for _, ref in zip(range(n), pending)]
                writes = build_graph(refs, params, str(zarr_path), index.labels, token)
                new = cl.compute(list(writes.values()))
                slot.update({f.key: ref for f, ref in zip(new, refs)})
                futures.update(new)
                return new

            done_iter = as_completed(submit(window))
            storage_error = None
            with tqdm(total=len(todo), unit="clip", desc="clips", disable=not progress, smoothing=0.1) as bar:
                for fut in done_iter:
                    ref = slot.pop(fut.key)
                    futures.discard(fut)
                    if fut.status == "finished":
                        # Not fut.result(): fetching each clip's count from its worker costs a round trip.
                        got.bytes_written += clip_bytes
                        got.computed += 1
                        writer.copy_clip(ref.g, ref.c)  # queued to the writer process
                    else:
                        exc = fut.exception()
                        if isinstance(exc, StorageError) or is_storage_error(exc):
                            storage_error = getattr(exc, "reason", None) or exc.strerror
                            cl.cancel(list(futures))
                            break
                        got.failures.append((ref, _reason(exc)))
                    bar.update()
                    fut.release()
                    done_iter.update(submit(1))
            got.workers = sorted({str(w.get("name")) for w in cl.scheduler_info()["workers"].values()})
            if storage_error is not None:
                raise StorageError(storage_error, str(zarr_path))
    return got


__all__ = ["run", "RunResult", "PipelineError"]
