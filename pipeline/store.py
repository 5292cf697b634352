"""The Zarr store the workers write into, and its consolidation into HDF5.

``audio.zarr`` holds ``Xa``, ``Xs``, ``Xn`` (5-D, one chunk per clip) and
``valid`` (genre x clip) like ``audio.hdf5``, plus ``done`` (genre x clip, one
chunk per clip), the record that a clip's chunks are all written.  A clip's
``done`` chunk is written last, so after any crash a clip either is complete or
is computed again; no two tasks write the same chunk, so no lock is needed.

Attributes are written only by the driver process, never by a task.
"""

from __future__ import annotations

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
    # well; lz4 keeps the codec far cheaper than the CQT.
    from zarr.codecs import BloscCodec

    return BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")


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


def write_clip(path, g: int, c: int, arrays: dict) -> int:
    """Write one clip's arrays into their chunks, then mark the clip done.

    Runs on a worker.  Returns the bytes of array data written.
    """
    import zarr

    root = zarr.open_group(str(path), mode="r+")
    nbytes = 0
    for name, a in arrays.items():
        root[name][g, c] = a
        nbytes += a.nbytes
    root["valid"][g, c] = True
    root["done"][g, c] = True  # last: the clip counts as finished only now
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


def consolidate(zarr_path, hdf5_path, *, progress: bool = False) -> int:
    """Copy a complete Zarr store into ``hdf5_path`` atomically; return its size in bytes.

    The file is written under a temporary name and renamed only when complete,
    so a reader never sees a half-written ``audio.hdf5``.
    """
    import h5py
    from tqdm.auto import tqdm

    root = open_store(zarr_path)
    attrs = dict(root.attrs)
    hdf5_path = Path(hdf5_path)
    tmp = hdf5_path.with_name("." + hdf5_path.name + ".partial")
    names = [n for n in DATASETS if n in root]
    G, C = root["valid"].shape
    try:
        with h5py.File(tmp, "w") as f:
            dsets = {n: f.create_dataset(n, shape=root[n].shape, dtype="float32",
                                         chunks=hdf5_chunks(root[n].shape)) for n in names}
            with tqdm(total=G * C, desc="consolidating", unit="clip", disable=not progress, leave=False) as bar:
                for g in range(G):
                    for c in range(C):
                        for n in names:
                            dsets[n][g, c] = root[n][g, c]
                        bar.update()
            f.create_dataset("valid", data=np.asarray(root["valid"][...], dtype=bool))
            for k, v in attrs.items():
                f.attrs[k] = _h5_attr(k, v)
            f.flush()
            os.fsync(f.id.get_vfd_handle())
        os.replace(tmp, hdf5_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return hdf5_path.stat().st_size


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
