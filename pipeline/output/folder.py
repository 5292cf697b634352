"""The output folder of a run: what it holds and the rules for using it.

:class:`OutputFolder` is the one object a run talks to, and the only door
to the stores (:mod:`pipeline.output.store`): it checks that the folder is
writable and its entries the user's own, locks it, decides whether an
existing output is up to date, reusable or foreign, lays out the Zarr store
(the resume record) and the final output the workers fill (``audio.hdf5``,
:data:`~pipeline.output.store.FINALS`), hands the tasks their
:class:`~pipeline.output.store.ClipWriter`, records bad clips, finishes, and
writes the run's configuration and summary atomically.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from ..exceptions import StoreError
from . import files, hdf5, layout, regrow, zarr_store
from .store import COMPLETE, DEFAULT_FINAL, FINALS, ClipWriter


class OutputFolder:
    """The files of one output folder (``audio.zarr``, ``audio.hdf5``, summary, config, logs)."""

    def __init__(self, path, final: str | None = None):
        self.path = Path(path)
        self.zarr_path = self.path / layout.ZARR_NAME
        self.final = FINALS[final or DEFAULT_FINAL](self.path)  # the output the run leaves (--output-format)
        self.hdf5_path = Path(self.final.path)
        self._final_store: hdf5.Slots | None
        self._root = self._final_store = None
        self._writing = False
        self.summary_path = self.path / layout.SUMMARY_NAME
        self.config_path = self.path / layout.CONFIG_NAME
        self.log_dir = self.path / layout.LOG_DIR
        self._store_opened = False
        #: How the input changed since the store was made, when this run made it anew keeping the finished
        #: clips of unchanged files (:mod:`pipeline.output.regrow`); None otherwise.
        self.changes: regrow.Changes | None = None

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
            regrow.recover(self.zarr_path)  # a store exchange a killed run left half done
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

    @staticmethod
    def _regrowable(attrs: dict | None, expected: dict) -> bool:
        """Whether an output with ``attrs`` differs from this run's only by its input's files (the same
        format, parameters and input path): then a new store keeps the finished clips of unchanged files."""
        if not attrs or attrs.get("input_fingerprint") == expected["input_fingerprint"]:
            return False
        return layout.mismatch(attrs, {**expected, "input_fingerprint": attrs.get("input_fingerprint")}) is None

    def _store_attrs_or_none(self) -> dict | None:
        """The store's attributes, if it is there, records its files' stamps and can be read."""
        if regrow.stamps_of(self.zarr_path) is None:
            return None
        try:
            return zarr_store.attrs(self.zarr_path)
        except StoreError:
            return None

    def up_to_date(self, expected: dict, *, overwrite: bool, index=None) -> bool:
        """True if ``audio.hdf5`` exists and was made from the same input and parameters.

        Raises :class:`StoreError` if it exists for another run (unless ``overwrite``)
        or cannot be read.
        """
        if overwrite or not self.final.complete():
            return False
        try:
            attrs = self.final.read_attrs()
        except OSError as e:
            raise StoreError(
                f"{self.hdf5_path} exists but cannot be read ({hdf5.describe_error(e)}; is another "
                "program writing it?); close that program, or use --overwrite to replace it"
            ) from None
        why, again = self._mismatch(attrs, expected, index)
        if why is None:
            return True
        store = self._store_attrs_or_none()
        if (
            self._regrowable(attrs, expected)
            and store
            and (self._regrowable(store, expected) or layout.mismatch(store, expected) is None)
        ):
            # The store is made anew for the input as it is, keeping what is unchanged; or an earlier run did that
            # and stopped before finishing (a bad clip, a kill, the other output format): this run resumes it.
            return False
        raise StoreError(
            f"{self.hdf5_path} exists and {why}; use --overwrite to replace it{again}, or -o another folder"
        )

    def has_output(self) -> bool:
        """Whether a finished output is in place (perhaps up to date: then no cluster is needed)."""
        return self.final.complete()

    def hdf5_attrs(self) -> dict:
        """The attributes of the existing final output (``audio.hdf5``)."""
        return self.final.read_attrs()

    def check_space(self, params, index) -> None:
        if Path(self.final.path) != self.zarr_path:  # an output apart from the store needs its arrays' room
            files.check_space(self.path, params, 1, index.nslots)

    def lay_out(self, index, params, expected: dict, *, overwrite: bool) -> None:
        """Open the Zarr store for this run (the existing one if it matches), or lay out a new one from the
        index, the parameters and the attributes ``expected``."""
        self._root = self._store(index, params, expected, overwrite=overwrite)

    def _store(self, index, params, expected: dict, *, overwrite: bool):
        if self.zarr_path.exists() and not overwrite:
            try:
                root = zarr_store.open_store(self.zarr_path, mode="r+")
                attrs = dict(root.attrs)
            except StoreError:
                attrs = {}
            why, again = self._mismatch(attrs, expected, index)
            old_stamps = regrow.stamps_of(self.zarr_path) if why is not None and index is not None else None
            if old_stamps is not None and self._regrowable(attrs, expected):
                try:
                    self.changes = regrow.regrow(self.zarr_path, index, params, expected, old_stamps)
                except OSError as e:
                    if files.is_storage_error(e):  # full, read-only: the run's one line; the old store is intact
                        raise
                    raise StoreError(f"cannot create {self.zarr_path} ({e.strerror or e})") from None
                root = zarr_store.open_store(self.zarr_path, mode="r+")
            elif why is not None:
                raise StoreError(
                    f"{self.zarr_path} exists and {why}; use --overwrite to start it again{again}, or -o another folder"
                )
            self._store_opened = True
            if COMPLETE in root.attrs:
                del root.attrs[COMPLETE]  # this run writes into it: not finished again until its finish()
            return root
        try:
            root = zarr_store.create_store(self.zarr_path, index, params, expected)
        except OSError as e:
            raise StoreError(f"cannot create {self.zarr_path} ({e.strerror or e})") from None
        self._store_opened = True
        return root

    def store_removed(self) -> bool:
        """Whether this run opened or created its store and it is gone now (removed while the run wrote)."""
        return self._store_opened and files.store_missing(self.zarr_path)

    def finished_clips(self) -> int | None:
        """Valid clips whose results are complete in the store (0 if there is none; None if it cannot be read
        now, e.g. interrupted while it was being laid out: then no count is said rather than a wrong one)."""
        if not self.zarr_path.exists():
            return 0
        try:
            return int(zarr_store.valid_mask(zarr_store.open_store(self.zarr_path)).sum())
        except Exception:
            return None

    # -- the store, as a run uses it (driver) -------------------------------------------------------

    def done_mask(self):
        """Clips done in the store [shape=(genres, clips), or (clips,) in the clip layout: index it with
        :meth:`InputIndex.slot`], bool: finished, or recorded bad or missing."""
        return zarr_store.done_mask(self._root)

    def finished_mask(self, done=None):
        """Clips done and not bad [shape=(genres, clips)]: their arrays are complete in the store."""
        return zarr_store.valid_mask(self._root, done)

    def mark_bad(self, entries) -> None:
        """Record slots as invalid and why (:func:`layout.bad_entry` dicts), zeroed and done."""
        zarr_store.mark_bad(self._root, entries)

    def write_valid(self) -> None:
        """Write the store's ``valid`` from what is done and not bad (the store says what it holds)."""
        zarr_store.write_valid(self._root)

    def store_attrs(self) -> dict:
        """The store's attributes as they are on disk now."""
        return zarr_store.attrs(self.zarr_path)

    @contextlib.contextmanager
    def writer(self, index, params):
        """Lay out the final output for the workers to fill, and yield the :class:`ClipWriter` the tasks
        carry (the store's clips, then the final output's places).  The final output's temporary file is
        removed unless :meth:`finish` put it in place."""
        shapes = {n: index.slot_shape + params.clip_shape(n) for n in params.datasets}
        final = self.final.lay_out(shapes, len(index.slot_shape))  # a storage error is said by the run, in one line
        self._final_store, self._writing = final, True
        try:
            resume = zarr_store.ZarrClips(str(self.zarr_path), layout.store_token(self.store_attrs()))
            yield ClipWriter(resume, (final,) if final is not None else ())  # None: the store is the output
        finally:
            self.final.discard(final)  # nothing left once committed
            self._final_store, self._writing = None, False

    def finish(self) -> int:
        """Complete the store's metadata and the final output, and put it in place; return its size."""
        assert self._writing  # the run finishes inside writer()
        zarr_store.consolidate_metadata(self.zarr_path)
        return self.final.finish(self._final_store, self.zarr_path)

    def write_config(self, text: str) -> None:
        files.atomic_write(self.config_path, text)

    def write_summary(self, data: dict) -> None:
        files.atomic_write(self.summary_path, json.dumps(data, indent=2) + "\n")
