"""Files in the output folder: the lock, the write probe, the space check, atomic writes.

Every file audioprep writes appears under its final name only when complete:
it is written under a fresh, unpredictable temporary name in the same folder
(created with ``O_EXCL``, so a planted link cannot redirect it) and renamed
into place.  :func:`atomic_path` is that rule; everything else uses it, but
the files workers write in place (a clip's chunks, its byte ranges of the
temporary ``audio.hdf5``), which :func:`open_to_write` opens, never through a
link.  :func:`check_owned` refuses an output entry that is a link or another
user's before anything is read from or written into it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import pwd
import shutil
import socket
import stat
import tempfile
from pathlib import Path
from typing import TypeGuard

from ..exceptions import StorageError, StoreError, UnsafeOutputError
from . import layout

_UMASK = os.umask(0)
os.umask(_UMASK)

#: OS errors that mean "the storage cannot take this": full, over quota, read-only, not permitted.
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})


def is_storage_error(e: BaseException) -> TypeGuard[OSError]:
    return isinstance(e, OSError) and e.errno in STORAGE_ERRNOS


def partial_glob(path) -> str:
    """The pattern of the temporary names :func:`atomic_path` gives ``path``."""
    return f".{Path(path).name}.*.partial"


def new_partial(path, *, directory: bool = False) -> Path:
    """A fresh temporary file (or folder) beside ``path``, to be :func:`commit`-ted or :func:`discard`-ed.

    It is created exclusively, with a random name, so it cannot be a link
    someone planted, and only its owner can read it until it is committed.
    """
    path = Path(path)
    prefix, suffix = f".{path.name}.", ".partial"
    if directory:
        return Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=path.parent))
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
    os.close(fd)
    return Path(name)


def commit(tmp, path) -> None:
    """Give ``tmp`` the permissions a plain ``open`` would (the umask) and rename it to ``path``."""
    tmp = Path(tmp)
    os.chmod(tmp, (0o777 if tmp.is_dir() else 0o666) & ~_UMASK)
    os.replace(tmp, path)


def discard(tmp) -> None:
    """Remove a temporary file or folder; never raises (it must not mask the error being handled)."""
    tmp = Path(tmp)
    with contextlib.suppress(OSError):
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp)
        else:
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path, *, directory: bool = False):
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds, else remove it."""
    tmp = new_partial(path, directory=directory)
    try:
        yield tmp
        commit(tmp, path)
    except BaseException:
        discard(tmp)
        raise


def atomic_write(path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`); :class:`StoreError` if the disk refuses."""
    try:
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    except OSError as e:
        raise StorageError(e.strerror or str(e), str(path)) from None


def open_to_write(path, *, create: bool = True) -> int:
    """Open ``path`` to write (truncated and created if ``create``, else as it is), never through a link.

    The one way a file of the output is opened for writing in place; :class:`UnsafeOutputError` if ``path``
    is a link.  Returns the file descriptor.
    """
    flags = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_CREAT | os.O_TRUNC if create else 0)
    try:
        return os.open(path, flags, 0o666)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise _unsafe(Path(path), "is a link") from None
        raise


def write_bytes(path, data) -> None:
    """Write ``data`` (bytes or a buffer) as the whole of ``path``, never through a link (:func:`open_to_write`)."""
    fd = open_to_write(path)
    try:
        view = memoryview(data).cast("B")
        while len(view):
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def store_missing(zarr_path) -> bool:
    """Whether the store at ``zarr_path`` has lost its metadata (its root's or its ``done`` array's): removed.

    The metadata is what is asked for, not the folder: a removal racing the workers' writes (``rm -rf`` while a
    chunk file is created) can leave folders behind with the store itself gone.
    """
    root = Path(zarr_path)
    return not all(m.is_file() for m in (root / "zarr.json", root / "done" / "zarr.json"))


def gone(zarr_path) -> StoreError:
    """The one line for a store (or its output folder) removed while a run wrote into it."""
    return StoreError(
        f"{zarr_path} was removed while the run wrote into it (the output folder is gone, or its "
        "store): nothing is left to resume; run the same command again to start afresh"
    )


@contextlib.contextmanager
def storage_errors(store):
    """On a worker: a storage error (full, read-only) as :class:`StorageError`, which the driver says once for
    the whole run; ``store`` removed under the run as the one line that says so (:func:`gone`)."""
    try:
        yield
    except OSError as e:
        if is_storage_error(e):
            raise StorageError(e.strerror, str(store)) from None
        if isinstance(e, FileNotFoundError) and store_missing(store):
            raise gone(store) from None
        raise


def _unsafe(path: Path, what: str) -> UnsafeOutputError:
    return UnsafeOutputError(
        f"{path} {what}: audioprep never writes through a link or into another user's "
        "files; remove it (or choose another -o) and run again"
    )


def _owner(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def check_entry(path) -> None:
    """Refuse ``path`` if it is a link or not owned by the running user (nothing if it does not exist)."""
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise _unsafe(path, f"is a link (to {os.readlink(path)})")
    if st.st_uid != os.geteuid():
        raise _unsafe(path, f"belongs to {_owner(st.st_uid)}, not to {_owner(os.geteuid())} who runs audioprep")


#: The entries of an output folder that a run reads or writes under their own names.
ENTRIES = (layout.ZARR_NAME, layout.HDF5_NAME, layout.SUMMARY_NAME, layout.CONFIG_NAME, layout.LOG_DIR)


def check_owned(folder) -> None:
    """Refuse (:class:`UnsafeOutputError`, naming it) an entry of the output folder, or of its Zarr store's top
    level, that is a link or another user's: in a shared folder another user could plant a store of their
    own, or a link to a file of the run's user, for the run to trust or overwrite."""
    folder = Path(folder)
    for name in ENTRIES:
        check_entry(folder / name)
    store = folder / layout.ZARR_NAME
    if store.is_dir():
        with os.scandir(store) as entries:
            for e in entries:
                check_entry(store / e.name)


def remove_partials(folder, name: str) -> None:
    """Remove temporary files or folders a killed run left for ``folder/name``."""
    for p in Path(folder).glob(partial_glob(name)):
        discard(p)


def check_writable(folder) -> None:
    """Create ``folder`` if needed and prove a file can be written there."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # An anonymous, exclusively created file: no planted link can be followed.
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise _cannot_write(folder, e.strerror or str(e)) from None


def _cannot_write(folder, reason: str) -> StoreError:
    return StoreError(
        f"cannot write to the output folder {folder} ({reason}); choose another with -o or fix its permissions"
    )


def check_early(folder) -> None:
    """Refuse, creating nothing, an output folder this run could not use: unwritable (permissions, a read-only
    file system), or locked by a run in progress.  Called before a cluster starts, so the refusal is at once;
    :class:`OutputLock` and :func:`check_writable` decide again when the run takes the folder."""
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise _cannot_write(folder, f"{existing} is not a folder")
    if existing == folder:
        check_owned(folder)
    effective = os.access in os.supports_effective_ids
    if not os.access(existing, os.W_OK | os.X_OK, effective_ids=effective):
        reason = "Read-only file system" if _read_only(existing) else os.strerror(errno.EACCES)
        raise _cannot_write(folder, reason)
    if existing == folder:
        OutputLock(folder).check()


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def check_space(folder, params, ngenres: int, nclips: int) -> None:
    """Refuse before any work when the disk cannot hold audio.hdf5 (plus 10 %)."""
    need = 1.1 * params.clip_bytes() * ngenres * nclips
    free = shutil.disk_usage(folder).free
    if free < need:
        raise StoreError(
            f"{folder} has {free / 1e6:.1f} MB free but audio.hdf5 needs about {need / 1e6:.1f} MB "
            "(plus the Zarr store); free space or choose a larger disk with -o"
        )


def remove_if_only_lock(folder) -> None:
    """Remove ``folder`` if it holds nothing but the lock (and an empty log folder): a run that created it
    and wrote nothing into it leaves nothing behind."""
    folder = Path(folder)
    with contextlib.suppress(OSError):
        logs = folder / layout.LOG_DIR
        if logs.is_dir() and not logs.is_symlink() and not any(logs.iterdir()):
            logs.rmdir()
        if set(os.listdir(folder)) <= {layout.LOCK_NAME}:
            with contextlib.suppress(FileNotFoundError):
                (folder / layout.LOCK_NAME).unlink()
            folder.rmdir()


class OutputLock:
    """An exclusive lock on an output folder, held by one run at a time.

    Uses ``flock``, which the kernel releases when the process dies, even on
    SIGKILL, so a crashed run never leaves a stale lock behind.
    """

    def __init__(self, folder):
        self.folder = Path(folder)
        self._fd: int | None = None

    def acquire(self) -> OutputLock:
        path = self.folder / layout.LOCK_NAME
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as e:
            raise StoreError(
                f"cannot create the lock file {path} ({e.strerror}); remove it if it is a link, or choose another -o"
            ) from None
        self._take(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()}\n".encode(), 0)
        self._fd = fd
        return self

    def _take(self, fd: int, how: int) -> None:
        try:
            fcntl.flock(fd, how | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise StoreError(
                f"{self.folder} is in use by another audioprep run ({holder}); "
                "wait for it to finish or choose another -o"
            ) from None

    def check(self) -> None:
        """Refuse at once if a run holds the lock; create nothing, take nothing."""
        try:
            fd = os.open(self.folder / layout.LOCK_NAME, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return  # no lock file (or a planted link, which acquire refuses): nothing to tell yet
        self._take(fd, fcntl.LOCK_SH)
        os.close(fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
