"""Inputs: one module per format, each an :class:`InputFormat` saying whether it can open a path, indexing it,
checking and loading its clips.

- :mod:`.fma`: an FMA audio folder (``fma_small``, ...) with its ``fma_metadata/tracks.csv``;
- :mod:`.folder`: a genres folder ``ROOT/<genre>/<file>``;
- :mod:`.jamendo`: an MTG-Jamendo ``.tsv`` (tags per track; ``audio=`` is its audio folder);
- :mod:`.manifest`: a manifest ``.csv`` (a path column and a label column);
- :mod:`.gtzan`: a ``gtzan.hdf5`` (one ``(Nsamples, Nclips)`` dataset per genre), and its schema;
- :mod:`.base`: the interface (:class:`InputFormat`) and its records (:class:`Verdict`, :class:`Preflight`);
- :mod:`.audio`: the rules of audio files the first two share (extensions, headers, decoding);
- :mod:`.headers`: what a WAV, AU, AIFF or FLAC header states about its length (a cut file);
- :mod:`.checksums`: the checksums a collection lists (sha1sum's format), checked as a clip is loaded;
- :mod:`.report`: the closing line of a refused input, from the problems' fixes;
- :mod:`.index`: :class:`ClipRef`, :class:`InputIndex` and the rules of an input as a whole.

:data:`FORMATS` lists the formats in the order they are asked whether they
can open a path (from its content); ``format=`` (``--format``) names one
instead.  No code outside this package asks which format a clip came from.

Order, the same for every format: genres (labels) sorted by name; in a folder,
a genre's clips sorted by file name, so ``blues.00054.wav`` fills clip slot 54
of ``blues`` when the files are numbered from 0; in a manifest, a label's clips
in the order of their rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..exceptions import BadInputError, ParameterError, Problem
from ..params import Params
from . import checksums, fma, folder, gtzan, jamendo, manifest
from .audio import audio_extensions, clip_samples, decode_frames, is_audio_name
from .base import HEADER_THREADS, InputFormat, Preflight, Verdict
from .index import ClipRef, InputIndex, check_names, check_sizes, label, shown

#: The input formats by name, in the order they are asked whether they can open a path (a collection's own
#: layout before the plain genres folder it also is).
FORMATS = {f.name: f for f in (fma.FORMAT, folder.FORMAT, jamendo.FORMAT, manifest.FORMAT, gtzan.FORMAT)}


def format_of(name: str) -> InputFormat:
    """The format called ``name`` (a :attr:`ClipRef.format`, or ``--format``)."""
    return FORMATS[name]


def guess_format(path: Path) -> InputFormat:
    """The first of :data:`FORMATS` that can open ``path``; :class:`BadInputError` if none can."""
    for fmt in FORMATS.values():
        if fmt.can_open(path):
            return fmt
    raise BadInputError(
        [
            Problem(
                str(path),
                "not a folder, a manifest .csv or a readable HDF5 file (its content is none of the input formats)",
            )
        ],
        "give a GTZAN-style folder, a manifest .csv or a gtzan.hdf5 written by 'audioprep ingest', "
        f"or name its format with --format ({', '.join(FORMATS)})",
    )


def open_index(
    path,
    *,
    pad: bool = False,
    path_column: str | None = None,
    label_column: str | None = None,
    format: str | None = None,
    audio: str | None = None,
    metadata: str | None = None,
    subset: str | None = None,
    verify: bool = False,
    layout: str = "grid",
) -> InputIndex:
    """Index any input: the format ``format`` names, or else the first of :data:`FORMATS` that can open
    ``path``.

    ``pad`` allows genres of different sizes (the shorter ones' last slots are
    missing); without it they are a problem.  ``path_column`` and
    ``label_column`` name a manifest's columns, ``audio`` MTG-Jamendo's audio
    folder, ``metadata`` FMA's ``tracks.csv`` (a folder given with it is FMA's)
    and ``subset`` the FMA subset to take.  ``verify``: each clip carries its
    digest from the checksums its input lists, checked as it is loaded (a
    format without such a list refuses it).  ``layout="clips"`` indexes one
    row a clip (:meth:`InputIndex.as_clips`): genres of any sizes, and the
    clips a format cannot place in the grid (without a label, with tags).

    Raises :class:`BadInputError` for a missing path, a layout that cannot be
    read at all, or an input holding no clip; per-clip problems are checked by
    :func:`preflight`.  Raises :class:`ParameterError` for an unknown
    ``format``, or an option of one format given for another.
    """
    p = Path(path)
    format = format.strip().lower() if isinstance(format, str) else format
    if format is not None and format not in FORMATS:
        raise ParameterError(
            f"--format {format} is not an input format; give one of {', '.join(FORMATS)} (or leave "
            "it out: the input's content says its format)"
        )
    if not p.exists():
        raise BadInputError(
            [Problem(str(p), "no such file or folder")],
            "give a GTZAN-style folder ROOT/<genre>/<file>, a gtzan.hdf5 or a manifest .csv",
        )
    if format is None and metadata and p.is_dir():
        format = fma.NAME  # tracks.csv given: the folder is FMA's wherever its metadata lies
    fmt = FORMATS[format] if format is not None else guess_format(p)
    given = [o for o, v in (("--path-column", path_column), ("--label-column", label_column)) if v]
    if given and fmt is not manifest.FORMAT:
        what = "a genres folder" if fmt is folder.FORMAT else "not a manifest .csv"
        raise ParameterError(
            f"{' and '.join(given)} name(s) a manifest's column, but {shown(p)} is {what}: leave "
            f"{' and '.join(given)} out, or give a manifest .csv"
        )
    if audio and fmt is not jamendo.FORMAT:
        raise ParameterError(
            f"--audio names the audio folder of an MTG-Jamendo .tsv, but {shown(p)} is "
            f"{fmt.description}: leave --audio out"
        )
    given = [o for o, v in (("--metadata", metadata), ("--subset", subset)) if v]
    if given and fmt is not fma.FORMAT:
        raise ParameterError(
            f"{' and '.join(given)} name(s) FMA's tracks.csv or subset, but {shown(p)} is {fmt.description}: "
            f"leave {' and '.join(given)} out"
        )
    if verify and not fmt.verifies:
        raise ParameterError(
            f"--verify checks each clip against the checksums its input lists, but {shown(p)} is "
            f"{fmt.description}, which lists none: leave --verify out"
        )
    index = fmt.index(
        p,
        path_column=path_column,
        label_column=label_column,
        audio=audio,
        metadata=metadata,
        subset=subset,
        verify=verify,
        layout=layout,
    )
    if layout == "clips":
        index = index.as_clips()
    check_sizes(index, pad or layout == "clips")
    check_names(index)
    return index


def inspect_clip(ref: ClipRef, params: Params) -> Verdict:
    """The :class:`Verdict` of ``ref`` from its header alone (see :meth:`InputFormat.inspect`)."""
    return format_of(ref.format).inspect(ref, params)


def check_clip(ref: ClipRef, params: Params) -> str | None:
    """The reason ``ref`` is a bad clip, from its header alone; None if it looks fine."""
    return inspect_clip(ref, params).reason


def load_clip(ref: ClipRef, params: Params) -> np.ndarray:
    """Read one clip as float32 of exactly ``params.nsamples`` samples (see :meth:`InputFormat.load`).

    A clip carrying a digest (``--verify``) is checked against it first, here,
    in the task that loads it.  Raises :class:`BadInputError` naming the clip
    when it cannot be used.
    """
    checksums.verify(ref)
    return format_of(ref.format).load(ref, params)


def preflight(index: InputIndex, params: Params, *, progress: bool = False, threads: int = HEADER_THREADS) -> Preflight:
    """Every problem of the input (scan problems, then bad clips), without full decodes, with each slot's
    lengths (:class:`Preflight`: its own samples, and where its kept span starts in seconds).  The index is
    not changed: :meth:`InputIndex.measured` gives one that carries the lengths.  ``threads`` read the clips'
    headers (:data:`~pipeline.inputs.base.HEADER_THREADS`; 1: one after the other, in this thread)."""
    problems = list(index.problems)
    samples = np.zeros(index.slot_shape, dtype=np.int64)
    starts = np.zeros(index.slot_shape, dtype=np.float64)
    if index.clips:
        for ref, verdict in format_of(index.kind).inspect_all(index, params, progress=progress, threads=threads):
            samples[index.slot(ref)] = verdict.samples
            starts[index.slot(ref)] = verdict.start
            problem = verdict.problem(ref)
            if problem and (not problems or problems[-1] != problem):
                problems.append(problem)
    return Preflight(problems, samples, starts)


__all__ = [
    "FORMATS",
    "InputFormat",
    "Verdict",
    "Preflight",
    "ClipRef",
    "InputIndex",
    "open_index",
    "preflight",
    "check_clip",
    "inspect_clip",
    "load_clip",
    "clip_samples",
    "decode_frames",
    "audio_extensions",
    "is_audio_name",
    "label",
    "shown",
    "format_of",
    "guess_format",
]
