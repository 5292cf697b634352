"""The index of an input, whatever its format: which clip fills which slot ``(genre, clip)``.

:class:`ClipRef` and :class:`InputIndex` are what every format module of
:mod:`pipeline.inputs` produces; the rules here apply to an input as a whole
(genre sizes, storable names) and to names as messages show them.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..exceptions import Problem, escaped


def shown(path) -> str:
    """A path as a message shows it, whatever bytes its name holds (control characters escaped)."""
    return escaped(os.fsencode(str(path)).decode("utf-8", "backslashreplace"))


def label(name: str) -> str:
    """A genre name as a label: NFC, so a folder named on macOS (NFD) and the same name typed are one genre."""
    return unicodedata.normalize("NFC", name)


@dataclass(frozen=True)
class ClipRef:
    """Where one clip lives and which output slot ``(g, c)`` it fills (in the clip layout, ``c`` is its row
    and ``g`` its label, -1 for none)."""

    g: int
    c: int
    genre: str
    source: str  # the audio file, or the gtzan.hdf5 file
    column: int | None = None  # the column in gtzan.hdf5, None for audio files
    rel: str = ""  # the slot's ``source`` entry: the path relative to the input, or ``<genre>[:, <column>]``
    format: str = "folder"  # the name of the input format (module of :mod:`pipeline.inputs`) it came from
    split: str = ""  # the collection's own split (FMA's training, validation, test); "" where it has none
    tags: tuple = ()  # the collection's tags of the clip, as written (MTG-Jamendo's genre---punkrock, ...)
    # (algorithm, hex digest, the file that lists it) where the run verifies the clip (--verify); checked in the
    # task that loads it (:func:`pipeline.inputs.checksums.verify`)
    digest: tuple = ()

    @property
    def name(self) -> str:
        """What a user calls this clip in messages."""
        if self.column is None:
            return self.source
        return f"{self.source}[{self.genre}][:, {self.column}]"

    @property
    def where(self) -> str:
        """What pre-flight files this clip's problems under: its file, or its column of a gtzan.hdf5."""
        return shown(self.name)

    @property
    def file(self) -> str:
        """Its file, where a problem of the whole file is filed (a gtzan.hdf5 at another sample rate)."""
        return shown(self.source)


@dataclass
class InputIndex:
    """Every clip of an input, ordered by genre then clip."""

    path: str
    kind: str  # "folder", "hdf5" or "manifest"
    labels: tuple
    nclips: int
    clips: list = field(default_factory=list)
    problems: list = field(default_factory=list)  # found while scanning
    ignored: list = field(default_factory=list)  # entries of a folder that are not clips, relative to it
    samples: np.ndarray | None = None  # each slot's own samples [shape=(genres, clips)], as pre-flight found them
    starts: np.ndarray | None = None  # where each clip's kept span starts, in seconds, as pre-flight found them
    subset: str = ""  # the collection's subset the input holds (FMA's small, medium, large, full)
    metadata: str = ""  # the file the labels were read from, where it is not the input (FMA's tracks.csv)
    layout: str = "grid"  # "grid": slots (genre, clip); "clips": one row a clip (:meth:`as_clips`)

    def as_clips(self) -> InputIndex:
        """This index in the clip layout: each clip's ``c`` its row (in the grid's order), no missing slot."""
        clips = [dataclasses.replace(ref, c=row) for row, ref in enumerate(self.clips)]
        return dataclasses.replace(self, layout="clips", nclips=len(clips), clips=clips)

    def slot(self, ref: ClipRef) -> tuple:
        """Where the stores' per-clip arrays hold ``ref``: ``(g, c)`` in the grid, ``(row,)`` in the clip layout."""
        return (ref.c,) if self.layout == "clips" else (ref.g, ref.c)

    @property
    def slot_shape(self) -> tuple:
        """The shape of the per-clip arrays: ``(genres, clips)``, or ``(clips,)`` in the clip layout."""
        return (self.nclips,) if self.layout == "clips" else (self.ngenres, self.nclips)

    @property
    def nslots(self) -> int:
        return int(np.prod(self.slot_shape))

    def measured(self, lengths) -> InputIndex:
        """This index with the lengths pre-flight returned (a :class:`~pipeline.inputs.Preflight`): what the
        stores record per slot."""
        return dataclasses.replace(self, samples=lengths.samples, starts=lengths.starts)

    @property
    def ngenres(self) -> int:
        return len(self.labels)

    def sources(self) -> np.ndarray:
        """Each slot's ``source`` entry [shape=(genres, clips)], ``""`` for a missing slot."""
        out = np.full(self.slot_shape, "", dtype=object)
        for ref in self.clips:
            out[self.slot(ref)] = ref.rel
        return out

    def missing(self) -> list:
        """The slots no clip fills (genres with fewer clips, allowed by ``--pad``), as ``(g, c)``."""
        if self.layout == "clips":
            return []
        present = {(r.g, r.c) for r in self.clips}
        return [(g, c) for g in range(self.ngenres) for c in range(self.nclips) if (g, c) not in present]

    @functools.cached_property
    def _stats(self) -> dict:
        """Each input file's ``[size, mtime_ns]`` by path (None if it cannot be read): one stat a file a run."""
        out: dict[str, list[int] | None] = {}
        for ref in self.clips:
            if ref.source not in out:
                try:
                    st = os.stat(ref.source)
                    out[ref.source] = [st.st_size, st.st_mtime_ns]
                except OSError:
                    out[ref.source] = None
        return out

    def stamps(self) -> dict:
        """Each input file's identity, ``{name relative to the input: [size, mtime_ns]}`` (None if unreadable):
        saved with the store, so that a later run names the files that changed."""
        return {ref.rel if ref.column is None else Path(ref.source).name: self._stats[ref.source] for ref in self.clips}

    def fingerprint(self) -> str:
        """Digest of what the input is: its path, kind, and each slot's file identity."""
        h = hashlib.sha256()
        h.update(json.dumps([self.path, self.kind, list(self.labels), self.nclips]).encode())
        seen = set()
        for ref in self.clips:
            if ref.source in seen:  # a gtzan.hdf5: one file for every slot
                h.update(json.dumps([ref.g, ref.c, ref.rel]).encode())
                continue
            seen.add(ref.source)
            h.update(json.dumps([ref.g, ref.c, ref.rel, *(self._stats[ref.source] or [None, None])]).encode())
        return h.hexdigest()[:32]


def check_sizes(index: InputIndex, pad: bool) -> None:
    """Genres of different sizes (an empty genre folder among them) are a problem, unless ``pad`` allows them."""
    if pad:
        return
    counts: dict[str, int] = {}
    for ref in index.clips:
        counts[ref.genre] = counts.get(ref.genre, 0) + 1
    broken = {p.path for p in index.problems}  # an unreadable genre folder is said once, as such
    sized = [g for g in index.labels if shown(Path(index.path) / g) not in broken]
    from .audio import unreadable  # (audio imports this module)

    for genre in sized:
        if not counts.get(genre):  # only a folder can hold a genre without clips
            why = "empty genre folder: holds no audio files"
            unread = unreadable([x for x in index.ignored if x.startswith(f"{genre}/")])
            if unread:  # tracker modules, or .m4a without PyAV: named, with what would read them
                why = f"holds no audio files it can read: {unread}"
            index.problems.append(Problem(shown(Path(index.path) / genre), why))
    if len({counts.get(g, 0) for g in sized}) > 1:
        detail = ", ".join(f"{g}={counts.get(g, 0)}" for g in sized)
        index.problems.append(
            Problem(
                shown(index.path),
                f"genres hold unequal numbers of clips ({detail}); use --layout clips to store one row a "
                "clip, or --pad to allow it (the missing slots are flagged invalid)",
                ("pad",),
            )
        )


def check_names(index: InputIndex) -> None:
    """Every label and source entry must be storable: UTF-8 text (both stores), no NUL (HDF5)."""
    why = _unstorable(index.path)
    if why:
        index.problems.append(Problem(shown(index.path), f"the input's path {why}; rename or move it"))
    for label in index.labels:
        why = _unstorable(label)
        if why:
            index.problems.append(
                Problem(
                    shown(Path(index.path) / label) if index.kind == "folder" else shown(label),
                    f"genre name {why}; rename it",
                )
            )
    for ref in index.clips:
        why = _unstorable(ref.rel)
        if why and ref.column is None:
            index.problems.append(Problem(shown(ref.source), f"file name {why}; rename it"))


def _unstorable(text: str) -> str | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8 text, which the outputs store names as"
    if "\x00" in text:
        return "holds a NUL character"
    return None
