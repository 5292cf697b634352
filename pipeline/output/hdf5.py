"""``audio.hdf5``: consolidation of the Zarr store by a single writer process.

The writer copies each clip as soon as the driver reports it finished, so
consolidation overlaps the computation; at the end it copies whatever is left,
writes ``valid`` and the attributes as they are in the store *then*, and
renames the temporary file into place (a reader never sees a half-written
``audio.hdf5``).  A failed write (a full disk) comes back as a
:class:`StoreError`; HDF5 can crash at exit after such a failure, and being a
process of its own the writer cannot take the run down with it.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from pathlib import Path

import numpy as np

from ..exceptions import StorageError
from ..params import DATASETS
from . import layout, zarr_store
from .files import STORAGE_ERRNOS, commit, discard, new_partial, remove_partials


def chunks(shape: tuple) -> tuple:
    """One clip per chunk, cut along frames to at most about 1 MiB.

    Reading one clip, or ``X[:G', :C', :F', ...]``, touches only the chunks it needs.
    """
    per_frame = int(np.prod(shape[3:])) * 4
    frames = max(1, min(shape[2], (1 << 20) // per_frame))
    return (1, 1, frames) + tuple(shape[3:])


def write_attr(attrs, key, value) -> None:
    """Write one attribute as ``audio.hdf5`` stores it.

    ``labels`` is a fixed-length byte string per genre (``S<longest>``, the
    SPEC's type) holding UTF-8, and typed as UTF-8 in the file, so HDF5 tools
    show ``musique électronique`` as it is: ``[s.decode() for s in
    f.attrs["labels"]]`` reads it with plain h5py.  Other strings are
    variable-length UTF-8; numbers and booleans are stored as they are.
    """
    import h5py

    if key == "labels":
        data = [s.encode("utf-8") for s in value]
        width = max([len(b) for b in data] + [1])
        attrs.create(key, np.array(data, dtype=f"S{width}"), dtype=h5py.string_dtype("utf-8", width))
    else:
        attrs[key] = value


def decode_attr(key, value):
    """An attribute as :func:`write_attr` stored it, in plain Python types."""
    if key == "labels":
        return [s.decode("utf-8") if isinstance(s, bytes) else str(s) for s in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode()
    return value


def write_coordinates(f, coords: dict) -> dict:
    """The coordinates (:func:`layout.coordinates`) as datasets, the dimension ones as scales.

    With them netCDF readers (xarray's h5netcdf engine, ncdump) and HDF5 tools
    see named dimensions (``genre``, ``clip``, ``frame``, ``overlap``,
    ``sample``/``bin``) with their labels instead of anonymous ``phony_dim_*``.
    Returns the dimension scales by name.
    """
    import h5py

    scales = {}
    for name, (dims, values, extra) in coords.items():
        if values.dtype == object:
            d = f.create_dataset(name, data=values.astype(str).tolist(), dtype=h5py.string_dtype("utf-8"))
        else:
            d = f.create_dataset(name, data=values)
        d.attrs.update(extra)
        if dims == (name,):
            d.make_scale(name)
            scales[name] = d
    for name, (dims, _, _) in coords.items():
        if dims != (name,):
            for i, dim in enumerate(dims):
                f[name].dims[i].attach_scale(scales[dim])
    return scales


def label(dset, name: str, scales: dict, coords: dict) -> None:
    """Attach the dimension scales of array ``name``, and name its other coordinates (the CF convention)."""
    for i, dim in enumerate(layout.dims(name)):
        dset.dims[i].attach_scale(scales[dim])
    dset.attrs["coordinates"] = layout.auxiliary(name, coords)


def read_attrs(path) -> dict:
    """The attributes of an ``audio.hdf5``, in plain Python types."""
    import h5py

    with h5py.File(path, "r") as f:
        return {k: decode_attr(k, v) for k, v in f.attrs.items()}


class _Copier:
    """Copies clips from the Zarr store into the temporary HDF5 file (runs in the writer process)."""

    def __init__(self, zarr_path, hdf5_path):
        import h5py

        self.zarr_path = zarr_path
        self.path = Path(hdf5_path)
        self.chunks = zarr_store.ClipChunks(zarr_path)
        self.arrays = {n: a for n, a in self.chunks.arrays.items() if n in DATASETS}
        self.tmp = new_partial(self.path)
        self.file = h5py.File(self.tmp, "w")
        # Unwritten chunks read as the fill value 0, which is what a bad clip holds.
        self.dsets = {n: self.file.create_dataset(n, shape=a.shape, dtype="float32", chunks=chunks(a.shape),
                                                  fillvalue=0.0)
                      for n, a in self.arrays.items()}
        self.coords = layout.coordinates(zarr_store.attrs(zarr_path), [*self.dsets, "valid"])
        self.scales = write_coordinates(self.file, self.coords)
        sources = np.asarray(zarr_store.open_store(zarr_path)[layout.SOURCE][...]).astype(object)
        src = self.file.create_dataset(layout.SOURCE, data=sources, dtype=h5py.string_dtype("utf-8"))
        src.attrs["long_name"] = layout.SOURCE_DOC
        for i, dim in enumerate(layout.dims(layout.SOURCE)):
            src.dims[i].attach_scale(self.scales[dim])
        for n, d in self.dsets.items():
            label(d, n, self.scales, self.coords)
        self.copied: set = set()

    def copy_clip(self, g: int, c: int) -> None:
        for n in self.arrays:
            self.dsets[n][g, c] = self.chunks.read(n, g, c)
        self.copied.add((g, c))

    def finish(self) -> int:
        # Read the store afresh: the driver marked bad clips (attributes) after this process started.
        root = zarr_store.open_store(self.zarr_path)
        done = zarr_store.done_mask(root)
        valid = np.asarray(root["valid"][...], dtype=bool)
        for g, c in zip(*np.nonzero(done & valid)):
            if (int(g), int(c)) not in self.copied:
                self.copy_clip(int(g), int(c))
        label(self.file.create_dataset("valid", data=valid), "valid", self.scales, self.coords)
        for k, v in dict(root.attrs).items():
            write_attr(self.file.attrs, k, v)
        self.file.flush()
        os.fsync(self.file.id.get_vfd_handle())
        self.file.close()
        commit(self.tmp, self.path)
        return self.path.stat().st_size


def _writer_main(zarr_path, hdf5_path, conn) -> None:
    """The writer process: copy clips as asked, then finish or abort; report, then leave.

    After a failed write (a full disk) it leaves with ``os._exit``: the HDF5
    library would crash at interpreter exit, flushing the file again.
    """
    # The driver alone ends the run (it sends "abort"); a Ctrl-C or kill of the process group is not ours.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Every failure goes back over the pipe, said once by the driver.  After a failed write h5py's
    # finalizers print tracebacks of their own (some through sys.excepthook, some as unraisable
    # exceptions, depending on which object is freed first), so without -v this process's stderr
    # is closed off as a whole rather than one hook at a time.
    if os.environ.get("AUDIOPREP_VERBOSE", "0") == "0":
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    code, copier, error, busy = 0, None, None, 0.0
    try:
        copier = _Copier(zarr_path, hdf5_path)
    except Exception as e:
        error = e
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            msg = ("abort",)  # the driver is gone: leave nothing behind
            error = error or EOFError("the driver is gone")
        t0 = time.perf_counter()
        if msg[0] == "copy":
            if error is None:
                try:
                    copier.copy_clip(msg[1], msg[2])
                except Exception as e:
                    error = e
            busy += time.perf_counter() - t0
            conn.send(("copied", msg[1], None if error is None else describe_error(error), busy, _storage(error)))
            continue
        if msg[0] == "finish" and error is None:
            try:
                size = copier.finish()
                conn.send(("finished", size, None, busy + time.perf_counter() - t0, True))
                break
            except Exception as e:
                error = e
        if copier is not None:
            discard(copier.tmp)
        try:
            conn.send(("failed", None, describe_error(error) if error else "aborted", busy, _storage(error)))
        except OSError:
            pass
        code = 1
        break
    conn.close()
    if error is not None:
        os._exit(code)  # skip HDF5's exit handlers, which crash on a file whose writes failed
    sys.exit(code)


def _storage(error) -> bool:
    """Whether a writer's error is the storage's doing, not a bug.

    h5py raises OSError for most failed writes, but some (a full disk met while
    flushing chunks) come as other types carrying the system's words.
    """
    if error is None or isinstance(error, (OSError, EOFError)):
        return True
    return any(os.strerror(code) in str(error) for code in STORAGE_ERRNOS)


def describe_error(e: BaseException) -> str:
    """The reason of a failed write in a few words (HDF5 wraps the OS's in a long text)."""
    found = re.search(r"error message = '([^']+)'", str(e))
    if found:
        return found.group(1)
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


class HDF5Writer:
    """The single writer of ``audio.hdf5``, in a process of its own.

    :meth:`copy_clip` queues a finished clip to be copied from the Zarr store;
    :meth:`finish` copies the rest, writes ``valid`` and the attributes and
    renames the temporary file into place; :meth:`abort` drops the temporary
    file.  A failed write is raised as :class:`StoreError`.
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
            self._fail(msg[2], msg[4])

    def _fail(self, why: str, storage: bool = True):
        self.abort()
        if not storage:
            raise RuntimeError(f"the HDF5 writer failed: {why}")  # not the disk's fault: a bug, said as one
        raise StorageError(why, str(self.path))

    def finish(self) -> int:
        """Complete ``audio.hdf5``; return its size in bytes."""
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
            self._fail(msg[2], msg[4])
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
        """Stop the writer and drop its temporary file (nothing if :meth:`finish` completed)."""
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
        remove_partials(self.path.parent, self.path.name)  # what a killed writer left

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.abort()


def consolidate(zarr_path, hdf5_path) -> int:
    """Copy a complete Zarr store into ``hdf5_path`` atomically; return its size in bytes."""
    with HDF5Writer(zarr_path, hdf5_path) as writer:
        return writer.finish()
