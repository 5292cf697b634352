"""The Zarr store the workers write into, and its consolidation into HDF5.

``audio.zarr`` holds ``Xa``, ``Xs``, ``Xn`` (5-D, one chunk per clip) and
``valid`` (genre x clip) like ``audio.hdf5``, plus ``done`` (genre x clip, one
chunk per clip), the record that a clip's chunks are all written.  A clip's
``done`` chunk is written last, so after any crash a clip either is complete or
is computed again; no two tasks write the same chunk, so no lock is needed.

Attributes are written only by the driver process, never by a task.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .exceptions import StoreError
from .params import DATASETS, Params

ZARR_NAME, HDF5_NAME, LOCK_NAME = "audio.zarr", "audio.hdf5", ".audioprep.lock"
FORMAT = "audioprep-1"

# Keys that differ between two otherwise identical runs.
VOLATILE_ATTRS = ("created",)


def software_versions() -> dict:
    import dask
    import h5py
    import librosa
    import zarr

    from . import __version__

    return {"python": sys.version.split()[0], "numpy": np.__version__, "librosa": librosa.__version__,
            "dask": dask.__version__, "zarr": zarr.__version__, "h5py": h5py.__version__,
            "audioprep": __version__}


def make_attrs(index, params: Params, *, created: str) -> dict:
    """The attributes both stores carry: sample rate, labels and provenance.

    Every value is a scalar (int, float, bool, str) or, for ``labels``, a list
    of str, so the same dict fits Zarr's JSON and HDF5's attributes.
    """
    attrs = {"format": FORMAT, "sr": params.sr, "labels": list(index.labels),
             "Ngenres": index.ngenres, "Nclips": index.nclips, "Nframes": params.nframes,
             "Nsamples": params.nsamples, "hop_length": params.hop_length,
             "bins_per_octave": params.bins_per_octave}
    for k, v in params.to_dict().items():
        attrs[k] = ",".join(v) if k == "datasets" else v
    attrs.update({"params": json.dumps(params.to_dict(), sort_keys=True),
                  "input_path": index.path, "input_kind": index.kind,
                  "input_fingerprint": index.fingerprint(),
                  "versions": json.dumps(software_versions(), sort_keys=True),
                  "bad_clips": "[]", "created": created})
    return attrs


def _codec():
    # Samples come from 16-bit PCM, so their float32 bytes shuffle and compress
    # well (5.3 MB -> 1.8 MB a clip of Xa). Measured per clip: lz4 level 1 writes
    # in 15 ms, level 5 in 19 ms, zstd in 20-28 ms, no codec in 36 ms (the
    # disk writes dominate), so lz4 level 1 it is (benchmarks/RESULTS.md).
    from zarr.codecs import BloscCodec

    return BloscCodec(cname="lz4", clevel=1, shuffle="shuffle")


# ----------------------------------------------------------------------------
# Zarr


def create_store(path, index, params: Params, attrs: dict):
    """Create ``audio.zarr`` (replacing any store at ``path``) and return its group."""
    import zarr

    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    tmp = path.with_name("." + path.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    root = zarr.open_group(str(tmp), mode="w", zarr_format=3)
    G, C = index.ngenres, index.nclips
    for name in params.datasets:
        shape = params.shape(name, G, C)
        root.create_array(name, shape=shape, chunks=(1, 1) + shape[2:], dtype="float32",
                          fill_value=0.0, compressors=[_codec()], dimension_names=_dims(name))
    for name in ("valid", "done"):
        root.create_array(name, shape=(G, C), chunks=(1, 1), dtype="bool", fill_value=False,
                          compressors=None, dimension_names=("genre", "clip"))
    root.attrs.update(attrs)
    # The store appears under its final name only once its metadata is complete.
    os.replace(tmp, path)
    return zarr.open_group(str(path), mode="r+")


def _dims(name):
    return ("genre", "clip", "frame", "overlap", "sample" if name == "Xa" else "bin")


def open_store(path, mode="r"):
    import zarr

    try:
        return zarr.open_group(str(path), mode=mode)
    except Exception as e:
        raise StoreError(f"{path}: not an audioprep Zarr store ({type(e).__name__}: {e})") from None


def store_token(attrs: dict) -> str:
    """Identifies one creation of a store, so a worker never writes through stale metadata."""
    import hashlib

    key = json.dumps([attrs.get("created"), attrs.get("input_fingerprint"), attrs.get("params")])
    return hashlib.sha256(key.encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=4)
def _arrays(path: str, token: str) -> dict:
    # Opening the group reads its metadata; a worker does it once per store,
    # not once per clip (about 5 ms a clip).
    import zarr

    root = zarr.open_group(path, mode="r+")
    return {name: root[name] for name in (*DATASETS, "valid", "done") if name in root}


def write_clip(path, g: int, c: int, arrays: dict, token: str = "") -> int:
    """Write one clip's arrays into their chunks, then mark the clip done.

    Runs on a worker.  Returns the bytes of array data written.
    """
    store = _arrays(str(path), token)
    nbytes = 0
    for name, a in arrays.items():
        store[name][g, c] = a
        nbytes += a.nbytes
    store["valid"][g, c] = True
    store["done"][g, c] = True  # last: the clip counts as finished only now
    return nbytes


def mark_bad(root, g: int, c: int, path: str, reason: str) -> None:
    """Zero a clip's slots, flag it invalid and record why (driver only)."""
    for name in DATASETS:
        if name in root:
            root[name][g, c] = 0.0  # also clears chunks a killed attempt left
    root["valid"][g, c] = False
    bad = [b for b in json.loads(root.attrs.get("bad_clips", "[]")) if (b["genre"], b["clip"]) != (g, c)]
    bad.append({"genre": g, "clip": c, "path": path, "reason": reason})
    bad.sort(key=lambda b: (b["genre"], b["clip"]))
    root.attrs["bad_clips"] = json.dumps(bad)
    root["done"][g, c] = True


def done_mask(root) -> np.ndarray:
    return np.asarray(root["done"][...], dtype=bool)


def store_mismatch(attrs: dict, expected: dict) -> str | None:
    """Why a store with ``attrs`` cannot be resumed for ``expected``; None if it can."""
    if attrs.get("format") != FORMAT:
        return f"it was not written by this version of audioprep (format={attrs.get('format')!r})"
    if attrs.get("params") != expected["params"]:
        old, new = json.loads(attrs.get("params", "{}")), json.loads(expected["params"])
        diff = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
                         if old.get(k) != new.get(k))
        return f"it was made with other parameters ({diff})"
    for key, what in (("input_path", "input"), ("input_fingerprint", "input files")):
        if attrs.get(key) != expected[key]:
            return f"it was made from other {what} ({attrs.get('input_path')})"
    return None


# ----------------------------------------------------------------------------
# HDF5


def hdf5_chunks(shape: tuple) -> tuple:
    """One clip per chunk, cut along frames to at most about 1 MiB.

    Reading one clip, or ``X[:G', :C', :F', ...]``, touches only the chunks it needs.
    """
    per_frame = int(np.prod(shape[3:])) * 4
    frames = max(1, min(shape[2], (1 << 20) // per_frame))
    return (1, 1, frames) + tuple(shape[3:])


class _HDF5Copy:
    """Copies clips from the Zarr store into the temporary HDF5 file (runs in the writer process)."""

    def __init__(self, zarr_path, hdf5_path):
        import h5py

        self.root = open_store(zarr_path)
        self.path = Path(hdf5_path)
        self.tmp = self.path.with_name("." + self.path.name + ".partial")
        self.names = [n for n in DATASETS if n in self.root]
        self.arrays = {n: self.root[n] for n in self.names}
        self.file = h5py.File(self.tmp, "w")
        # Unwritten chunks read as the fill value 0, which is what a bad clip holds.
        self.dsets = {n: self.file.create_dataset(n, shape=a.shape, dtype="float32", chunks=hdf5_chunks(a.shape),
                                                  fillvalue=0.0)
                      for n, a in self.arrays.items()}
        self.copied: set = set()

    def copy_clip(self, g: int, c: int) -> None:
        for n in self.names:
            self.dsets[n][g, c] = self.arrays[n][g, c]
        self.copied.add((g, c))

    def finish(self) -> int:
        done = done_mask(self.root)
        valid = np.asarray(self.root["valid"][...], dtype=bool)
        for g, c in zip(*np.nonzero(done & valid)):
            if (int(g), int(c)) not in self.copied:
                self.copy_clip(int(g), int(c))
        self.file.create_dataset("valid", data=valid)
        for k, v in dict(self.root.attrs).items():
            self.file.attrs[k] = _h5_attr(k, v)
        self.file.flush()
        os.fsync(self.file.id.get_vfd_handle())
        self.file.close()
        os.replace(self.tmp, self.path)
        return self.path.stat().st_size


def _writer_main(zarr_path, hdf5_path, conn) -> None:
    """The writer process: copy clips as asked, then finish or abort; report, then leave.

    After a failed write (a full disk) it leaves with ``os._exit``: the HDF5
    library would crash at interpreter exit, flushing the file again. Being a
    process of its own, it could not take the run down with it anyway.
    """
    import time

    code, copier, error, busy = 0, None, None, 0.0
    try:
        copier = _HDF5Copy(zarr_path, hdf5_path)
    except Exception as e:
        error = e
    while True:
        msg = conn.recv()
        t0 = time.perf_counter()
        if msg[0] == "copy":
            if error is None:
                try:
                    copier.copy_clip(msg[1], msg[2])
                except Exception as e:
                    error = e
            busy += time.perf_counter() - t0
            conn.send(("copied", msg[1], None if error is None else _describe(error), busy))
            continue
        if msg[0] == "finish" and error is None:
            try:
                size = copier.finish()
                conn.send(("finished", size, None, busy + time.perf_counter() - t0))
                break
            except Exception as e:
                error = e
        if copier is not None:
            Path(copier.tmp).unlink(missing_ok=True)
        conn.send(("failed", None, _describe(error) if error else "aborted", busy))
        code = 1
        break
    conn.close()
    if error is not None:
        os._exit(code)  # skip HDF5's exit handlers, which crash on a file whose writes failed
    sys.exit(code)


def _describe(e: BaseException) -> str:
    """The reason of a failed write in a few words (HDF5 wraps the OS's in a long text)."""
    import re

    found = re.search(r"error message = '([^']+)'", str(e))
    if found:
        return found.group(1)
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


class HDF5Writer:
    """The single writer of ``audio.hdf5``, in a process of its own.

    :meth:`copy_clip` queues a finished clip to be copied from the Zarr store,
    so consolidation overlaps the computation; :meth:`finish` copies the rest,
    writes ``valid`` and the attributes and renames the temporary file into
    place (a reader never sees a half-written ``audio.hdf5``); :meth:`abort`
    drops the temporary file. A failed write (a full disk) is raised as
    :class:`StoreError` and cannot crash the run.
    """

    def __init__(self, zarr_path, hdf5_path):
        self.path = Path(hdf5_path)
        self.zarr_path = Path(zarr_path)
        self._closed = False
        self.busy_seconds = 0.0  # time the writer process spent copying and finishing
        self._start()

    def _start(self) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        # A pipe, not queues: sends are synchronous and it needs no semaphores.
        self._conn, child = ctx.Pipe(duplex=True)
        self._proc = ctx.Process(target=_writer_main, args=(str(self.zarr_path), str(self.path), child),
                                 daemon=True, name="audioprep-hdf5")
        self._proc.start()
        child.close()
        self._pending = 0
        self._lost = False  # the process died (killed, out of memory): start afresh in finish()

    def copy_clip(self, g: int, c: int) -> None:
        if self._lost:
            return  # finish() copies every finished clip from the store anyway
        try:
            self._pending += 1
            self._conn.send(("copy", int(g), int(c)))
            while self._pending and self._conn.poll(0):  # read the replies that are there
                self._reply(self._conn.recv())
        except (OSError, EOFError):
            self._lost = True

    def _reply(self, msg) -> None:
        self._pending -= 1
        if msg[2] is not None:
            self._fail(msg[2])

    def _fail(self, why: str):
        self.abort()
        raise StoreError(f"writing {self.path} failed ({why}); the finished clips are kept in {self.zarr_path}: "
                         "free space and run again to resume")

    def finish(self) -> int:
        for attempt in (1, 2):
            try:
                msg = self._finish_once()
                break
            except (OSError, EOFError):
                if attempt == 2:
                    raise
                # The writer died: a new one consolidates the whole store.
                self._proc.kill()
                self._proc.join()
                self._conn.close()
                self._start()
        self._proc.join(timeout=60)
        self._closed = True
        self.busy_seconds += msg[3]
        if msg[0] != "finished":
            self._fail(msg[2])
        self._conn.close()
        return msg[1]

    def _finish_once(self):
        if self._lost or not self._proc.is_alive():
            raise EOFError("the HDF5 writer process is gone")
        self._conn.send(("finish",))
        while True:
            if not self._conn.poll(3600):
                self._fail("the HDF5 writer did not answer for an hour")
            msg = self._conn.recv()
            if msg[0] != "copied":
                return msg
            self._pending -= 1

    def abort(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._proc.is_alive():
            try:
                self._conn.send(("abort",))
            except OSError:
                pass
            self._proc.join(timeout=30)
            if self._proc.is_alive():
                self._proc.kill()
        self._conn.close()
        self.path.with_name("." + self.path.name + ".partial").unlink(missing_ok=True)


def consolidate(zarr_path, hdf5_path) -> int:
    """Copy a complete Zarr store into ``hdf5_path`` atomically; return its size in bytes."""
    writer = HDF5Writer(zarr_path, hdf5_path)
    try:
        return writer.finish()
    finally:
        writer.abort()


def _h5_attr(key, value):
    if key == "labels":
        width = max([len(s) for s in value] + [1])
        return np.array([s.encode("ascii") for s in value], dtype=f"S{width}")
    return value


def read_attrs(path) -> dict:
    """The attributes of an ``audio.hdf5`` or ``audio.zarr``, in plain Python types."""
    path = Path(path)
    if path.is_dir():
        return dict(open_store(path).attrs)
    import h5py

    with h5py.File(path, "r") as f:
        out = {}
        for k, v in f.attrs.items():
            if k == "labels":
                out[k] = [s.decode("ascii") for s in v]
            elif isinstance(v, np.generic):
                out[k] = v.item()
            elif isinstance(v, bytes):
                out[k] = v.decode()
            else:
                out[k] = v
        return out


# ----------------------------------------------------------------------------
# The output folder's lock


@dataclass
class OutputLock:
    """An exclusive lock on an output folder, held by one run at a time.

    Uses ``flock``, which the kernel releases when the process dies, even on
    SIGKILL, so a crashed run never leaves a stale lock behind.
    """

    folder: Path
    _fd: int | None = None

    def acquire(self) -> "OutputLock":
        import fcntl

        path = Path(self.folder) / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise StoreError(f"{self.folder} is in use by another audioprep run ({holder}); "
                             "wait for it to finish or choose another -o") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
