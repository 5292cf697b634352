"""The output folder of a run: what it holds and the rules for using it.

:class:`OutputFolder` is the one object a run talks to: it checks that the
folder is writable, locks it, decides whether an existing output is up to
date, reusable or foreign, opens or creates the Zarr store, lays out the
temporary ``audio.hdf5`` the workers fill, and writes the run's configuration and summary atomically.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from ..exceptions import StoreError
from . import files, hdf5, layout, zarr_store


class OutputFolder:
    """The files of one output folder (``audio.zarr``, ``audio.hdf5``, summary, config, logs)."""

    def __init__(self, path):
        self.path = Path(path)
        self.zarr_path = self.path / layout.ZARR_NAME
        self.hdf5_path = self.path / layout.HDF5_NAME
        self.summary_path = self.path / layout.SUMMARY_NAME
        self.config_path = self.path / layout.CONFIG_NAME
        self.log_dir = self.path / layout.LOG_DIR
        self._store_opened = False

    def check_early(self) -> None:
        """Refuse now, creating nothing, a folder this run cannot use (:func:`files.check_early`)."""
        files.check_early(self.path)

    @contextlib.contextmanager
    def open(self):
        """Check the folder is writable, hold its lock, and clear what killed runs left.

        A folder this run created is removed again if the run ends before writing anything into it
        (refused for want of space, a cluster that cannot start, Ctrl-C).
        """
        created = not self.path.exists()
        files.check_writable(self.path)
        with files.OutputLock(self.path):
            files.check_owned(self.path)  # again, under the lock: what this run reads and writes is its user's
            for name in (layout.HDF5_NAME, layout.ZARR_NAME, layout.SUMMARY_NAME, layout.CONFIG_NAME):
                files.remove_partials(self.path, name)
            try:
                yield self
            except BaseException:
                if created:
                    files.remove_if_only_lock(self.path)
                raise

    def _mismatch(self, attrs: dict, expected: dict, index) -> tuple:
        """``(why, again)``: why an output cannot serve this run (:func:`layout.mismatch`; None if it can),
        naming the input files that changed, and what ``--overwrite`` would compute again then ("" if all)."""
        why = layout.mismatch(attrs, expected)
        if why is None or attrs.get("input_fingerprint") == expected["input_fingerprint"] or index is None:
            return why, ""
        try:
            old = json.loads((self.zarr_path / layout.INPUTS_NAME).read_text())
        except (OSError, ValueError):
            return why, ""
        new = index.stamps()
        changed = layout.changed_files(old, new)
        same = sum(1 for k, v in new.items() if old.get(k) == v)
        again = f" (it computes all {len(index.clips)} clips again, those of the {same} unchanged file(s) too)"
        return (f"{why}: {changed}", again) if changed else (why, "")

    def up_to_date(self, expected: dict, *, overwrite: bool, index=None) -> bool:
        """True if ``audio.hdf5`` exists and was made from the same input and parameters.

        Raises :class:`StoreError` if it exists for another run (unless ``overwrite``)
        or cannot be read.
        """
        if overwrite or not self.hdf5_path.exists():
            return False
        try:
            attrs = hdf5.read_attrs(self.hdf5_path)
        except OSError as e:
            raise StoreError(f"{self.hdf5_path} exists but cannot be read ({hdf5.describe_error(e)}; is another "
                             "program writing it?); close that program, or use --overwrite to replace it") from None
        why, again = self._mismatch(attrs, expected, index)
        if why is None:
            return True
        raise StoreError(f"{self.hdf5_path} exists and {why}; use --overwrite to replace it{again}, or -o another "
                         "folder")

    def hdf5_attrs(self) -> dict:
        """The attributes of the existing ``audio.hdf5``."""
        return hdf5.read_attrs(self.hdf5_path)

    def check_space(self, params, index) -> None:
        files.check_space(self.path, params, index.ngenres, index.nclips)

    def store(self, index, params, expected: dict, *, overwrite: bool):
        """The Zarr store for this run: the existing one if it matches, else a new one."""
        if self.zarr_path.exists() and not overwrite:
            try:
                root = zarr_store.open_store(self.zarr_path, mode="r+")
                attrs = dict(root.attrs)
            except StoreError:
                attrs = {}
            why, again = self._mismatch(attrs, expected, index)
            if why is not None:
                raise StoreError(f"{self.zarr_path} exists and {why}; use --overwrite to start it again{again}, "
                                 "or -o another folder")
            self._store_opened = True
            return root
        try:
            root = zarr_store.create_store(self.zarr_path, index, params, expected)
        except OSError as e:
            raise StoreError(f"cannot create {self.zarr_path} ({e.strerror or e})") from None
        self._store_opened = True
        return root

    def store_removed(self) -> bool:
        """Whether this run opened or created its store and it is gone now (removed while the run wrote)."""
        return self._store_opened and not self.zarr_path.is_dir()

    def finished_clips(self) -> int:
        """Valid clips whose results are complete in the store (0 if there is none)."""
        try:
            return int(zarr_store.valid_mask(zarr_store.open_store(self.zarr_path)).sum())
        except Exception:
            return 0

    @contextlib.contextmanager
    def hdf5_slots(self, shapes: dict):
        """The temporary ``audio.hdf5``, laid out for the workers to fill (:func:`hdf5.create`).

        Yields its :class:`~pipeline.output.hdf5.Slots`; the file is removed
        unless :meth:`finish_hdf5` renamed it into place.
        """
        slots = hdf5.create(self.hdf5_path, shapes)  # a storage error is said by the run, in one line
        try:
            yield slots
        finally:
            files.discard(slots.path)  # nothing left once committed

    def finish_hdf5(self, slots) -> int:
        """Complete the temporary ``audio.hdf5`` and rename it into place; return its size."""
        return hdf5.finish(slots, self.zarr_path, self.hdf5_path)

    def write_config(self, text: str) -> None:
        files.atomic_write(self.config_path, text)

    def write_summary(self, data: dict) -> None:
        files.atomic_write(self.summary_path, json.dumps(data, indent=2) + "\n")
