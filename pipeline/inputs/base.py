"""The interface every input format implements, and the records it returns.

A format (a genres folder, a manifest, a gtzan.hdf5, ...) is a subclass of
:class:`InputFormat` in a module of its own, registered in
:data:`pipeline.inputs.FORMATS`.  The caller asks each whether it can open a
path (from the path's content), or takes the one ``--format`` names, and never
asks which format it holds: a clip's checks come back as a :class:`Verdict`
(a record, with the options that fix it as data), pre-flight's as a
:class:`Preflight` (the problems, and each slot's lengths).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..exceptions import Problem
from ..params import Params
from .index import ClipRef, InputIndex

#: The order flags are named in, wherever several fix one problem (``--pad --mono --resample --pad-short``).
FIX_ORDER = ("pad", "mono", "resample", "pad_short")
#: The threads that read clips' headers at pre-flight.  On a cluster's shared file system each open and stat
#: waits on the network, one clip after the other; libsndfile and PyAV read without the GIL, so threads overlap
#: the waits (docs/speed.md: indexing and pre-flight at 100,000 clips).
HEADER_THREADS = 16
#: Clips a thread checks at a time: few futures for 100,000 clips, and one batch (no thread) for a small input.
HEADER_BATCH = 256


@dataclass(frozen=True)
class Verdict:
    """What a clip's header (or a format's records) says about it, before any decode.

    ``reason``: why it is a bad clip, one line (None if it looks fine);
    ``samples``: how many of its ``Nsamples`` slot samples are its own (0 for
    a bad clip); ``start``: where its kept span starts, in seconds into the
    file; ``fixes``: the flags (Python names, ``("mono", "resample")``) that
    together make it pass, empty when no flag does (a smaller value, or fixing
    the file); ``ref``: where the problem is filed when not under the clip
    itself (a whole gtzan.hdf5 at another rate).
    """

    reason: str | None = None
    samples: int = 0
    start: float = 0.0
    fixes: tuple = ()
    ref: ClipRef | None = None

    def problem(self, ref: ClipRef) -> Problem | None:
        """The :class:`Problem` of the clip ``ref`` this verdict is about (None if it passes)."""
        if self.reason is None:
            return None
        return Problem((self.ref or ref).where, self.reason, self.fixes)


class Preflight(list):
    """The problems pre-flight found (a list of :class:`Problem`: scan problems first, then bad clips), and
    each slot's lengths: ``samples`` [shape=(genres, clips)], its own samples at ``sr``, and ``starts``, where
    its kept span starts in seconds (0 for a bad or missing slot)."""

    def __init__(self, problems, samples: np.ndarray, starts: np.ndarray):
        super().__init__(problems)
        self.samples, self.starts = samples, starts


class InputFormat(abc.ABC):
    """One kind of input.  ``name`` is what ``--format`` (Python ``format=``) calls it and what
    :attr:`ClipRef.format` records; ``description`` says what it is, in messages; ``verifies``: whether its
    index can carry each clip's digest from a list of checksums the input holds (``--verify``), which the
    task that loads the clip checks (:func:`pipeline.inputs.checksums.verify`), whatever the format."""

    name: str
    description: str
    verifies: bool = False

    @abc.abstractmethod
    def can_open(self, path: Path) -> bool:
        """Whether ``path`` is of this format, from what it holds (its first bytes, or its being a folder):
        cheap, and never raising."""

    @abc.abstractmethod
    def index(self, path: Path, **options) -> InputIndex:
        """Every clip of the input, in slot order; :class:`BadInputError` when it cannot be read at all.
        ``options``: ``path_column``, ``label_column``, ``audio``, ``metadata``, ``subset``, each None where not
        given (a format takes those it has), ``verify`` (a format that :attr:`verifies` puts each clip's
        :attr:`ClipRef.digest` in), and ``layout`` ("grid" or "clips": a format may hold clips only the clip
        layout takes)."""

    @abc.abstractmethod
    def inspect(self, ref: ClipRef, params: Params) -> Verdict:
        """The :class:`Verdict` of one clip, without decoding it."""

    @abc.abstractmethod
    def load(self, ref: ClipRef, params: Params) -> np.ndarray:
        """One clip as float32 of exactly ``params.nsamples`` samples; :class:`BadInputError` naming it when it
        cannot be used."""

    def inspect_all(
        self, index: InputIndex, params: Params, *, progress: bool = False, threads: int = HEADER_THREADS
    ) -> list:
        """``[(ref, verdict)]`` of every clip of ``index`` not already filed under a scan problem (a format
        holding every clip in one file reads its records once instead).  ``threads`` read the headers, a batch
        of :data:`HEADER_BATCH` clips at a time, where there is more than one batch."""
        from concurrent.futures import ThreadPoolExecutor

        from ..progress import bar

        known = {p.path for p in index.problems}
        refs = [ref for ref in index.clips if ref.where not in known]
        batches = [refs[i : i + HEADER_BATCH] for i in range(0, len(refs), HEADER_BATCH)]

        def check(batch: list) -> list:
            return [self.inspect(ref, params) for ref in batch]

        parallel = threads > 1 and len(batches) > 1
        pool = ThreadPoolExecutor(min(threads, len(batches)), "audioprep-headers") if parallel else None
        out: list = []
        try:
            with bar(desc="checking", enabled=progress, leave=False, total=len(refs)) as shown:
                for batch, verdicts in zip(batches, pool.map(check, batches) if pool else map(check, batches)):
                    out += zip(batch, verdicts)
                    shown.update(len(batch))
        finally:
            if pool:
                pool.shutdown(wait=True, cancel_futures=True)  # Ctrl-C: the batches not begun are dropped
        return out

    def __repr__(self) -> str:
        return f"<input format {self.name!r}: {self.description}>"
