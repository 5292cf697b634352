"""The CQT plans' arrays kept on disk, so that a worker computes the CQT with numpy, scipy and soxr only.

Building a plan needs librosa (and numba through it): about 2 s of CPU a
process.  The first process on a machine to need a plan builds it and leaves its
arrays here; every later one loads them in milliseconds, without librosa.

- **Where**: ``$XDG_CACHE_HOME/audioprep`` (an absolute path; else
  ``~/.cache/audioprep``), one ``.npz`` file a plan, named by the SHA-256 of its
  key: the plan's parameters, :data:`pipeline.cqt.PLAN_FORMAT` and the installed
  versions of librosa, numpy and soxr (a new librosa builds its plans again).
- **Plain arrays only**: written with ``np.savez``, read with
  ``allow_pickle=False``; never a pickle.
- **Trusted only if** the folder is a real directory (not a symlink) owned by
  this user with mode 0700 (created so), and the file a regular file (opened
  without following links) owned by this user and writable by no one else,
  holding the same key and a SHA-256 of its arrays that matches them.
  Otherwise the plan is built again: a damaged file or one made by anybody else
  is replaced (atomically: written under a temporary name, fsynced, renamed),
  and nothing is read from or written into a folder that is not trusted (a
  warning names it and the fix).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import warnings

import numpy as np

#: The folder's mode: only its owner may list, read or write it.
FOLDER_MODE = 0o700
#: A plan file is a few hundred kB; anything far larger is not one.
MAX_BYTES = 64 * 2**20


def folder() -> str:
    """The cache folder: ``$XDG_CACHE_HOME/audioprep``, or ``~/.cache/audioprep``."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # the XDG spec: a relative path is to be ignored
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "audioprep")


#: The packages whose versions key a plan: librosa builds it, numpy's FFT computes its bases, soxr's filters
#: fix how many first frames of the second stream the shared chain recomputes.
KEYED_BY = ("librosa", "numpy", "soxr")


def versions() -> dict:
    """The installed versions of :data:`KEYED_BY`, read from their metadata (librosa is not imported);
    ``"none"`` for one that is missing."""
    from importlib import metadata

    out = {}
    for name in KEYED_BY:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "none"
    return out


def _name(key: dict) -> str:
    return "cqt-" + hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32] + ".npz"


def _checksum(arrays: dict) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape}:".encode())
        h.update(a.tobytes())
    return h.hexdigest()


_WARNED: set = set()


def _trusted_folder(*, create: bool) -> int | None:
    """The cache folder, open (a file descriptor, for the calls relative to it), if it can be trusted; created
    with mode 0700 where it is missing and ``create``."""
    path = folder()
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        if not create:
            return None
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.mkdir(path, FOLDER_MODE)
            os.chmod(path, FOLDER_MODE)  # whatever the umask took away or left
        except FileExistsError:
            pass  # another process made it meanwhile: checked below like any other
        except OSError:
            return None  # a read-only home: no cache, the plans are built in memory
        st = os.lstat(path)
    except OSError:
        return None
    try:  # opened without following a link, and checked as opened: it cannot be swapped after the check
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        st = os.fstat(fd)
    except OSError:
        fd = None  # a symbolic link (ELOOP), or not a directory: said below
    why = (
        "is a symbolic link"
        if stat.S_ISLNK(st.st_mode)
        else "is not a directory"
        if not stat.S_ISDIR(st.st_mode)
        else f"is owned by uid {st.st_uid}, not {os.geteuid()}"
        if st.st_uid != os.geteuid()
        else f"has mode {stat.S_IMODE(st.st_mode):04o}, not {FOLDER_MODE:04o}"
        if stat.S_IMODE(st.st_mode) != FOLDER_MODE
        else ""
    )
    if why and fd is not None:
        os.close(fd)
    if why:
        if path not in _WARNED:
            _WARNED.add(path)
            warnings.warn(
                f"the CQT plan cache {path} {why}, so it is not used (each process builds its plans "
                f"with librosa); remove it, or make it a folder of yours with chmod 700",
                RuntimeWarning,
                stacklevel=3,
            )
        return None
    return fd


def load(key: dict) -> dict | None:
    """The arrays cached under ``key``, or None where there are none that can be trusted."""
    where = _trusted_folder(create=False)
    if where is None:
        return None
    try:
        fd = os.open(_name(key), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=where)
    except OSError:
        return None
    finally:
        os.close(where)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
            return None
        data = f.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        return None
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
        meta = json.loads(str(arrays.pop("_meta")))
    except Exception:  # not an .npz, truncated, an object array (a pickle): damaged, built again
        return None
    if meta.get("key") != key or meta.get("sha256") != _checksum(arrays):
        return None
    return arrays


def save(key: dict, arrays: dict) -> bool:
    """Write ``arrays`` under ``key``, atomically; False where the folder cannot be trusted or written."""
    where = _trusted_folder(create=True)
    if where is None:
        return False
    meta = json.dumps({"key": key, "sha256": _checksum(arrays)}, sort_keys=True)
    tmp = f".tmp-{os.getpid()}-{os.urandom(6).hex()}.npz"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=where)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, _meta=np.array(meta), **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, _name(key), src_dir_fd=where, dst_dir_fd=where)
        return True
    except OSError:
        try:
            os.unlink(tmp, dir_fd=where)
        except OSError:
            pass
        return False
    finally:
        os.close(where)
