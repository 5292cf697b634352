"""``audio.zarr`` as the finished output itself (``--output-format zarr``): no ``audio.hdf5`` at all.

For collections where a second copy of the arrays costs too much: 100,000
clips of 30 s make about 630 GB of ``audio.hdf5`` beside a store of about 40 %
of that, and a scratch quota counts both; the store alone costs the file
system 4 files a clip (one chunk a clip and array, and ``done``), no folder.  The resume store already holds everything
``audio.hdf5`` holds beside its arrays (``valid``, ``source``, ``samples``,
``start``, the clip layout's ``label``, ``split`` and ``tags``, the
coordinates with their dimension names, every attribute), one chunk a clip,
so finishing it is small: the run has written ``valid``; this adds the
:data:`~pipeline.output.store.COMPLETE` attribute (``complete: true``) and
writes the consolidated metadata again, so readers open it in one read and
see that it is finished.  The workers write each clip once, into the store
(:meth:`ZarrOutput.lay_out` gives them no other store), and a resumed run
copies nothing.

Every run that opens the store to write into it removes ``complete`` first
(:class:`~pipeline.output.folder.OutputFolder`), so a store a later run was
interrupted in is never taken for a finished one.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..exceptions import StoreError
from . import layout, zarr_store
from .files import storage_errors
from .store import COMPLETE


def _disk_bytes(path: Path) -> int:
    """The bytes of the files under ``path`` (one scan of each folder, no walk through links)."""
    total, folders = 0, [str(path)]
    while folders:
        with os.scandir(folders.pop()) as entries:
            for e in entries:
                if e.is_dir(follow_symlinks=False):
                    folders.append(e.path)
                elif e.is_file(follow_symlinks=False):
                    total += e.stat(follow_symlinks=False).st_size
    return total


class ZarrOutput:
    """The Zarr store as the run's :class:`~pipeline.output.store.FinalOutput`: nothing laid out beside it,
    finished by marking it complete and consolidating its metadata."""

    name = "zarr"

    def __init__(self, folder):
        self.path = Path(folder) / layout.ZARR_NAME
        self.notes: list = []

    def complete(self) -> bool:
        try:
            return self.path.is_dir() and self.read_attrs().get(COMPLETE) is True
        except OSError:
            return False

    def lay_out(self, shapes: dict, k: int = 2) -> None:
        return None  # the resume store is the output: the workers write nowhere else

    def finish(self, store, resume_path) -> int:
        if Path(resume_path).resolve() != self.path.resolve():
            raise ValueError(f"the Zarr output {self.path} is its resume store, not {resume_path}")
        with storage_errors(self.path):
            root = zarr_store.open_store(self.path, mode="r+")
            root.attrs[COMPLETE] = True
            zarr_store.consolidate_metadata(self.path)  # again: the root's metadata changed
            self._remove_stale_hdf5(dict(root.attrs))
            return _disk_bytes(self.path)

    def _remove_stale_hdf5(self, attrs: dict) -> None:
        """Remove an ``audio.hdf5`` an earlier run left that no longer holds what the store holds (the input
        grew or changed since, or other parameters), so no reader takes it for this output; one that still
        matches stays (it holds the same arrays)."""
        from .files import discard
        from .hdf5 import read_attrs

        old = self.path.with_name(layout.HDF5_NAME)
        if not old.is_file() or old.is_symlink():
            return
        try:
            why = layout.mismatch(read_attrs(old), attrs)
        except OSError:
            why = "it cannot be read"
        if why is not None:
            discard(old)
            self.notes.append(f"removed {old}, made by an earlier run: {why}, so it no longer held this output")

    def discard(self, store) -> None:
        return None  # nothing temporary: the store is kept to resume

    def read_attrs(self) -> dict:
        try:
            return zarr_store.attrs(self.path)
        except StoreError as e:
            raise OSError(str(e)) from None

    def hint(self, resume_path) -> str:
        return (
            f"{self.path} is the output (no audio.hdf5): pipeline.open_dataset, to_matrix and FrameBlocks read "
            "it, and it resumes or extends this run; keep it whole"
        )
