"""The store interface: where a clip's arrays go.

A run writes each clip into several stores at once, each a
:class:`ClipStore`: the Zarr store (:class:`~pipeline.output.zarr_store.ZarrClips`,
the resume record: it alone says which clips are done) and the temporary
``audio.hdf5`` (:class:`~pipeline.output.hdf5.Slots`).  A task carries the run's
:class:`ClipWriter`, small and picklable, and never asks which stores it holds.

The driver's side of a store (laying it out from the index and the parameters,
the done mask, ``mark_bad``, finishing, being up to date) is
:class:`~pipeline.output.folder.OutputFolder`'s, the one door :mod:`pipeline.run`
and :mod:`pipeline.graph` use.  The final output is a :class:`FinalOutput` of
:data:`FINALS`, chosen by ``--output-format`` (``output_format=``): ``hdf5``
(:class:`~pipeline.output.hdf5.HDF5Output`, ``audio.hdf5`` beside the store) or
``zarr`` (:class:`~pipeline.output.zarr_final.ZarrOutput`, the store itself,
no second copy).  Another kind (Zarr through fsspec) is one new module
implementing it and its entry there: the option's choices, the run and the
command line ask the :class:`FinalOutput`, never its kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class ClipStore(Protocol):
    """A store one clip at a time is written into (on a worker) and read back from.

    ``g, c`` name the clip's slot (in the clip layout ``c`` is its row and ``g`` its label); ``arrays`` map
    array names (:data:`pipeline.arrays.ARRAYS`) to one clip's array [shape=(Nframes, 2, size)], float32.
    """

    def write_clip(self, g: int, c: int, arrays: dict) -> None:
        """Write the clip's arrays into its places."""

    def read_clip(self, g: int, c: int, names) -> dict:
        """The clip's arrays ``names``, as written (zeros where nothing was)."""

    def zero_clip(self, g: int, c: int) -> None:
        """Zero the clip's places (a failed attempt may have written part of them)."""


@runtime_checkable
class ResumeStore(ClipStore, Protocol):
    """The store that records which clips are done, so that a later run resumes from it."""

    def mark_done(self, g: int, c: int) -> None:
        """Record the clip as complete in every store: called last, after every store was written."""


#: The resume store's attribute that says a run finished it and no run has written into it since: set by a
#: final output that is the store itself (``zarr``), removed by every run that opens the store to write.
COMPLETE = "complete"


@runtime_checkable
class FinalOutput(Protocol):
    """The output a run leaves for its readers (``audio.hdf5``, or the Zarr store itself), made from the resume
    store at the end.  ``FINALS[kind](folder)`` makes one for an output folder."""

    path: Path  # its final path
    name: str  # its kind, the key of FINALS (--output-format)
    notes: list  # lines the run prints once it finished the output (what finishing did beside it)

    def complete(self) -> bool:
        """Whether a finished output is in place (made by some run: :meth:`read_attrs` says which)."""

    def lay_out(self, shapes: dict, k: int = 2) -> ClipStore | None:
        """Create it under a temporary name, laid out for ``shapes`` (array name -> full shape: ``k`` slot
        dimensions, 2 in the grid and 1 in the clip layout, then one clip's); return the store the workers
        fill besides the resume store, or None if the resume store is the output itself."""

    def finish(self, store, resume_path) -> int:
        """Add what the resume store at ``resume_path`` holds beside the arrays to ``store`` (what
        :meth:`lay_out` returned), and put it in place; its size in bytes."""

    def discard(self, store) -> None:
        """Remove the temporary file (nothing once finished)."""

    def read_attrs(self) -> dict:
        """The attributes of the finished output (:class:`OSError` if it cannot be read)."""

    def hint(self, resume_path) -> str:
        """What a finished run's closing lines add about this output and the resume store ("" for nothing)."""


@dataclass(frozen=True)
class ClipWriter:
    """What each task carries: the run's resume store and the other stores its clips go to.

    A clip is written into the resume store, then into the others, then marked
    done: a clip marked done is complete in every store.
    """

    resume: ResumeStore
    others: tuple = ()

    def write(self, g: int, c: int, arrays: dict) -> None:
        self.resume.write_clip(g, c, arrays)
        for store in self.others:
            store.write_clip(g, c, arrays)
        self.resume.mark_done(g, c)  # last: the clip counts as finished only now

    @property
    def copies(self) -> bool:
        """Whether clips an earlier run finished must be copied anywhere (not when the resume store is the
        output itself)."""
        return bool(self.others)

    def copy(self, g: int, c: int, names) -> None:
        """Copy a clip an earlier run finished from the resume store into the others."""
        arrays = self.resume.read_clip(g, c, names)
        for store in self.others:
            store.write_clip(g, c, arrays)

    def zero(self, g: int, c: int) -> None:
        """Zero a clip in the other stores (a failed attempt may have written part of it); the resume store
        clears it when it is marked bad."""
        for store in self.others:
            store.zero_clip(g, c)


from .hdf5 import HDF5Output  # noqa: E402  (at the end: the implementations import the interfaces above)
from .zarr_final import ZarrOutput  # noqa: E402
from .zarr_store import ZarrClips  # noqa: E402

#: The kinds of final output, by name (``--output-format``): ``FINALS[kind](folder)`` is a :class:`FinalOutput`.
FINALS: dict[str, Callable[[Any], FinalOutput]] = {"hdf5": HDF5Output, "zarr": ZarrOutput}
#: The kind a run makes when none is given.
DEFAULT_FINAL = "hdf5"


def store_writer(zarr_path, token: str = "", *others) -> ClipWriter:
    """The :class:`ClipWriter` of the Zarr store at ``zarr_path`` (and ``others``), for tests and benchmarks
    that write clips without a run."""
    return ClipWriter(ZarrClips(str(zarr_path), token), tuple(others))
