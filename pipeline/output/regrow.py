"""An input that grew or changed: a new store laid out for it, holding the finished clips of its unchanged files.

A finished clip is known by its file, not by its slot: the store records
each slot's ``source`` (the file relative to the input) and each file's size
and modification time (``source/stamps.json``).  When a run finds the store
made from the same input folder or manifest with the same parameters, but
with files added, removed, reordered or changed since, :func:`regrow` lays
out a new store for the input as it is now and moves into it, by hard links
(no bytes copied; a copy where the file system has no links), the chunks of
every finished clip whose file is unchanged, in its new row or slot.  The run
then resumes as from any store: the copy tasks put those clips into
``audio.hdf5`` and only the clips of new or changed files are computed.

The new store is built under a temporary name and put in place with one
atomic exchange of the two folders (``renameat2(RENAME_EXCHANGE)``); where
the file system has none (NFS, some parallel file systems), with two
renames, the old store kept as ``.audio.zarr.previous`` in between, which
:func:`recover` puts back if the run was killed there.  At no moment is a
finished clip only in a folder a later run would remove.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import files, layout
from .zarr_store import ClipChunks, build_store, open_store, valid_mask


@dataclass(frozen=True)
class Changes:
    """How the input differs from the one the store was made from, and what the new store kept."""

    added: int  # files in the input now, not then
    changed: int  # files whose size or modification time differ
    removed: int  # files then, not now
    reused: int  # finished clips of unchanged files, moved into their new places
    removed_files: tuple = ()  # the first few files removed (their finished clips are not kept)

    def to_json(self) -> dict:
        return {**asdict(self), "removed_files": list(self.removed_files)}

    def line(self) -> str:
        more = f" and {self.removed - len(self.removed_files)} more" if self.removed > len(self.removed_files) else ""
        gone = f": {', '.join(self.removed_files)}{more}" if self.removed_files else ""
        return (
            f"the input changed since the store was made ({self.added} file(s) added, {self.changed} changed, "
            f"{self.removed} removed{gone}): {self.reused} finished clip(s) of unchanged files kept"
        )


def previous_path(path) -> Path:
    """Where the two-rename exchange keeps the old store for a moment (not a name :func:`files.remove_partials`
    removes: it may hold the only copy of finished clips)."""
    path = Path(path)
    return path.with_name(f".{path.name}.previous")


def recover(path) -> None:
    """Finish an exchange a killed run left half done: put the old store back if the new one is not in place,
    else remove the old one."""
    previous = previous_path(path)
    files.check_entry(previous)  # a link, or another user's folder: refused, naming it, never trusted or moved
    if not previous.is_dir():
        return
    with os.scandir(previous) as entries:
        for e in entries:
            files.check_entry(previous / e.name)
    if Path(path).exists():
        files.discard(previous)
    else:
        os.rename(previous, path)


def stamps_of(path) -> dict | None:
    """The file stamps a store recorded when it was made (None if it has none that can be read)."""
    try:
        value = json.loads((Path(path) / layout.INPUTS_NAME).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def regrow(path, index, params, attrs: dict, old_stamps: dict) -> Changes:
    """Replace the store at ``path`` by one laid out for ``index`` (and ``attrs``) holding the finished clips of
    the files whose stamps are unchanged; return what changed."""
    path = Path(path)
    new_stamps = index.stamps()
    pairs = _pairs(open_store(path), index, old_stamps, new_stamps)
    tmp = files.new_partial(path, directory=True)
    try:
        build_store(tmp, index, params, attrs)
        _move_clips(path, tmp, pairs, [*params.datasets, "done"])
        os.chmod(tmp, 0o777 & ~files._UMASK)  # as files.commit gives a folder
        exchange(tmp, path)
    finally:
        files.discard(tmp)  # the old store once exchanged; the unfinished new one otherwise
    return Changes(
        added=sum(1 for k in new_stamps if k not in old_stamps),
        changed=sum(1 for k, v in new_stamps.items() if k in old_stamps and old_stamps[k] != v),
        removed=sum(1 for k in old_stamps if k not in new_stamps),
        reused=len(pairs),
        removed_files=tuple(k for k in old_stamps if k not in new_stamps)[:3],
    )


def _pairs(root, index, old_stamps: dict, new_stamps: dict) -> list:
    """``[(old slot, new slot)]`` of the finished clips whose file is unchanged.  A clip of a ``gtzan.hdf5``
    column is not reused (its stamps are the whole file's)."""
    finished = valid_mask(root)
    sources = np.asarray(root[layout.SOURCE][...], dtype=object)
    where: dict[str, tuple] = {}
    for at in zip(*np.nonzero(finished)):
        where.setdefault(str(sources[at]), tuple(int(i) for i in at))
    pairs = []
    for ref in index.clips:
        stamp = new_stamps.get(ref.rel)
        if ref.column is not None or stamp is None or old_stamps.get(ref.rel) != stamp:
            continue
        old = where.get(ref.rel)
        if old is not None:
            pairs.append((old, index.slot(ref)))
    return pairs


def _move_clips(old_path: Path, new_path: Path, pairs: list, names: list) -> None:
    """Give the new store the old one's chunks of each pair: a hard link a chunk file, or read and written
    again where the layout or the file system does not allow a link."""
    if not pairs:
        return
    old, new = ClipChunks(old_path), ClipChunks(new_path)
    for name in names:
        if name not in old.arrays or name not in new.arrays:
            continue
        if not (old.direct and new.direct):
            for a, b in pairs:
                new.write(name, *_gc(b), old.read(name, *_gc(a)))
            continue
        with os.scandir(old_path / name) as entries:  # regular files only: never a link planted in a store
            present = {e.name for e in entries if e.is_file(follow_symlinks=False)}
        tail = [0] * (old.arrays[name].ndim - old.k)
        for a, b in pairs:
            src = ".".join(map(str, ["c", *a, *tail]))
            if src not in present:  # a chunk equal to the fill value is not stored
                continue
            dst = new_path / name / ".".join(map(str, ["c", *b, *tail]))
            try:
                os.link(old_path / name / src, dst, follow_symlinks=False)
            except OSError as e:
                if e.errno not in (errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOTSUP):
                    raise
                files.write_bytes(dst, (old_path / name / src).read_bytes())


def _gc(at: tuple) -> tuple[int, int]:
    """A slot as the stores' ``(g, c)`` (the clip layout's row as ``c``)."""
    return (at[0], at[1]) if len(at) == 2 else (0, at[0])


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def exchange(new, path) -> None:
    """Put the folder ``new`` in the place of the folder ``path``; ``new`` then names the old folder."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        renameat2 = None
    if renameat2 is not None:
        if renameat2(_AT_FDCWD, os.fsencode(new), _AT_FDCWD, os.fsencode(path), _RENAME_EXCHANGE) == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            raise OSError(err, os.strerror(err), str(path))
    rename_twice(new, path)


def rename_twice(new, path) -> None:
    """:func:`exchange` where the file system cannot exchange: the old store waits under :func:`previous_path`
    (which :func:`recover` understands) while the new one is renamed into place."""
    previous = previous_path(path)
    os.rename(path, previous)
    os.rename(new, path)
    os.rename(previous, new)
