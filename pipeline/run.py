"""One run: input -> preflight -> graph on a cluster -> audio.zarr -> audio.hdf5.

This module orchestrates; the numbers come from :mod:`pipeline.kernels`, the
tasks from :mod:`pipeline.graph`, the files from :mod:`pipeline.store`.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import store as st
from .cluster import ClusterSpec, Connection
from .dataset import ClipRef, open_index, preflight
from .exceptions import BadInputError, PipelineError, Problem, StoreError
from .graph import build_graph
from .params import Params

log = logging.getLogger("audioprep")

SUMMARY_NAME = "audio.summary.json"
CONFIG_NAME = "audio.config.yaml"
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


@dataclass
class RunResult:
    """What a run did; also written as JSON beside the output."""

    zarr_path: str
    hdf5_path: str
    clips: int = 0          # slots in the output (genres x clips)
    computed: int = 0       # clips computed by this run
    resumed: int = 0        # clips found finished in the store and skipped
    bad: list = field(default_factory=list)  # "path: reason" per bad clip
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


def _reason(exc: BaseException) -> str:
    if isinstance(exc, BadInputError) and exc.problems:
        return exc.problems[0].reason
    name = type(exc).__name__
    if name == "KilledWorker":
        return "killed its worker process on every attempt (crash or out of memory); not retried further"
    return f"{name}: {exc}".strip()


def _is_storage_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and getattr(exc, "errno", None) in _STORAGE_ERRNOS


def run(input_path, outdir, params: Params, *, spec: ClusterSpec | None = None, client=None,
        skip_bad: bool = False, overwrite: bool = False, progress: bool = False,
        echo=None, config_text: str | None = None) -> RunResult:
    """Run the pipeline; return a :class:`RunResult`.

    Raises :class:`BadInputError` for bad clips (unless ``skip_bad``), with the
    finished clips kept in the store, and :class:`StoreError` when the outputs
    cannot be written or belong to another run.
    """
    echo = echo or (lambda msg: log.info(msg))
    spec = spec or ClusterSpec()
    t0 = time.perf_counter()
    outdir = Path(outdir)
    zarr_path, hdf5_path = outdir / st.ZARR_NAME, outdir / st.HDF5_NAME
    result = RunResult(str(zarr_path), str(hdf5_path), params=params.to_dict())

    index = open_index(input_path, allow_unequal=skip_bad)
    problems = preflight(index, params, progress=progress)
    if problems and not skip_bad:
        raise BadInputError(problems, f"{len(problems)} problem(s) in {index.path}; fix or remove the bad "
                                      "clips, or run with --skip-bad to go on without them")
    result.clips = index.ngenres * index.nclips

    try:
        outdir.mkdir(parents=True, exist_ok=True)
        probe = outdir / ".audioprep.write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise StoreError(f"cannot write to the output folder {outdir} ({e.strerror}); "
                         "choose another with -o or fix its permissions") from None

    with st.OutputLock(outdir):
        if config_text is not None:
            _write_atomic(outdir / CONFIG_NAME, config_text)
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        expected = st.make_attrs(index, params, created=created)
        if hdf5_path.exists() and not overwrite:
            why = st.store_mismatch(_safe_attrs(hdf5_path), expected)
            if why is None:
                result.up_to_date, result.resumed = True, result.clips
                result.seconds = time.perf_counter() - t0
                return result
            raise StoreError(f"{hdf5_path} exists and {why}; use --overwrite to replace it, or -o another folder")
        _check_space(outdir, params, index)
        root = _open_or_create(zarr_path, index, params, expected, overwrite)
        done = st.done_mask(root)
        result.resumed = int(done.sum())
        if result.resumed:
            echo(f"resuming: {result.resumed} of {result.clips} clips already in {zarr_path}, skipping them")

        result.bad.extend(str(p) for p in problems)
        todo = _plan(index, problems, root, done)

        # The single HDF5 writer copies each clip as soon as it is finished, so
        # consolidation overlaps the computation; the file appears only at the end.
        writer = _storage(lambda: st.HDF5Writer(zarr_path, hdf5_path), hdf5_path, zarr_path)
        try:
            failures = _compute(todo, index, params, zarr_path, spec, client, progress, echo, result, writer)
            for ref, reason in failures:
                result.bad.append(f"{ref.name}: {reason}")
                if skip_bad:
                    st.mark_bad(root, ref.g, ref.c, ref.name, reason)
            if failures and not skip_bad:
                raise BadInputError([Problem(r.name, why) for r, why in failures],
                                    f"{len(failures)} clip(s) failed; the other clips are saved in {zarr_path}: "
                                    "fix the bad clips and run again, or add --skip-bad")
            echo(f"consolidating {zarr_path} -> {hdf5_path}")
            result.hdf5_bytes = writer.finish()
            result.consolidate_seconds = writer.busy_seconds
        finally:
            writer.abort()  # removes the temporary file unless finish() renamed it
        result.seconds = time.perf_counter() - t0
        write_summary(outdir / SUMMARY_NAME, result)
        return result


def _plan(index, problems, root, done) -> list:
    """Mark the clips pre-flight found bad, and the missing slots, invalid; return the clips to compute."""
    bad_paths = {p.path: p.reason for p in problems}
    todo = []
    for ref in index.clips:
        if done[ref.g, ref.c]:
            continue
        if ref.column is None and ref.source in bad_paths:
            st.mark_bad(root, ref.g, ref.c, ref.source, bad_paths[ref.source])
        elif ref.column is not None and index.path in bad_paths:  # a gtzan.hdf5 unusable as a whole
            st.mark_bad(root, ref.g, ref.c, ref.name, bad_paths[index.path])
        else:
            todo.append(ref)
    present = {(r.g, r.c) for r in index.clips}
    for g, genre in enumerate(index.labels):
        for c in range(index.nclips):
            if (g, c) not in present and not done[g, c]:
                st.mark_bad(root, g, c, f"{genre}[{c}]", "missing: the genre holds fewer clips")
    return todo


def _check_space(outdir: Path, params: Params, index) -> None:
    """Refuse before any work when the disk cannot hold audio.hdf5 (plus 10 %)."""
    import shutil

    need = 1.1 * sum(4 * int(np.prod(params.shape(n, index.ngenres, index.nclips))) for n in params.datasets)
    free = shutil.disk_usage(outdir).free
    if free < need:
        raise StoreError(f"{outdir} has {free / 1e6:.1f} MB free but audio.hdf5 needs about {need / 1e6:.1f} MB "
                         "(plus the Zarr store); free space or choose a larger disk with -o")


def _safe_attrs(path) -> dict:
    try:
        return st.read_attrs(path)
    except Exception:
        return {}


def _open_or_create(zarr_path: Path, index, params, expected, overwrite):
    if zarr_path.exists() and not overwrite:
        try:
            root = st.open_store(zarr_path, mode="r+")
            attrs = dict(root.attrs)
        except StoreError:
            attrs = {}
        why = st.store_mismatch(attrs, expected)
        if why is not None:
            raise StoreError(f"{zarr_path} exists and {why}; use --overwrite to start it again, "
                             "or -o another folder")
        return root
    try:
        return st.create_store(zarr_path, index, params, expected)
    except OSError as e:
        raise StoreError(f"cannot create {zarr_path} ({e.strerror or e})") from None


def _storage(fn, hdf5_path, zarr_path):
    """Run ``fn``, turning a failed write of the HDF5 file into a clear StoreError."""
    try:
        return fn()
    except OSError as e:
        raise StoreError(f"writing {hdf5_path} failed ({e.strerror or e}); the finished clips are kept in "
                         f"{zarr_path}: free space and run again to resume") from None


def _compute(todo, index, params, zarr_path, spec, client, progress, echo, result, writer) -> list:
    """Compute ``todo`` clips; return ``[(ref, reason)]`` for the clips that failed."""
    if not todo:
        return []
    import dask.config
    from distributed import as_completed
    from tqdm.auto import tqdm

    from . import config

    failures: list[tuple[ClipRef, str]] = []
    with dask.config.set({"distributed.scheduler.allowed-failures": int(config.get("allowed-failures"))}):
        if spec.log_directory is None:
            spec.log_directory = str(Path(zarr_path).parent / "logs")  # batch jobs' stdout / stderr
        conn = Connection(spec, client)
        with conn as cl:
            result.dashboard = cl.dashboard_link
            echo(f"dashboard: {cl.dashboard_link}")
            conn.wait_for_workers(echo)
            token = st.store_token(dict(st.open_store(zarr_path).attrs))
            writes = build_graph(todo, params, str(zarr_path), index.labels, token)
            refs = {ref.g * index.nclips + ref.c: ref for ref in todo}
            futures = cl.compute(list(writes.values()))
            slot = {f.key: (g, c) for f, (g, c) in zip(futures, writes)}
            storage_error = None
            with tqdm(total=len(todo), unit="clip", desc="clips", disable=not progress, smoothing=0.1) as bar:
                for fut in as_completed(futures):
                    g, c = slot[fut.key]
                    ref = refs[g * index.nclips + c]
                    if fut.status == "finished":
                        result.bytes_written += fut.result()
                        result.computed += 1
                        writer.copy_clip(g, c)  # queued to the writer process
                    else:
                        exc = fut.exception()
                        if _is_storage_error(exc):
                            storage_error = exc
                            cl.cancel(futures)
                            break
                        failures.append((ref, _reason(exc)))
                    bar.update()
                    fut.release()
            result.workers = sorted({str(w.get("name")) for w in cl.scheduler_info()["workers"].values()})
            if storage_error is not None:
                raise StoreError(f"writing to {zarr_path} failed ({storage_error.strerror}); the finished clips "
                                 "are kept: free space or fix permissions and run again to resume")
    return failures


def write_summary(path: Path, result: RunResult) -> None:
    data = asdict(result)
    data["clips_per_second"] = round(result.clips_per_second, 3)
    data["seconds"] = round(result.seconds, 3)
    _write_atomic(path, json.dumps(data, indent=2) + "\n")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name("." + path.name + ".partial")
    tmp.write_text(text)
    os.replace(tmp, path)


__all__ = ["run", "RunResult", "PipelineError"]
