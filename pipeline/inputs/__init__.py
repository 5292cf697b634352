"""Inputs: one module per format, each saying whether it can open a path, indexing it, checking and loading
its clips.

- :mod:`.folder`: a genres folder ``ROOT/<genre>/<file>``;
- :mod:`.manifest`: a manifest ``.csv`` (a path column and a label column);
- :mod:`.gtzan`: a ``gtzan.hdf5`` (one ``(Nsamples, Nclips)`` dataset per genre), and its schema;
- :mod:`.audio`: the rules of audio files the first two share (extensions, headers, decoding);
- :mod:`.index`: :class:`ClipRef`, :class:`InputIndex` and the rules of an input as a whole.

A format module has ``NAME``, ``can_open(path)``, ``index(path, **options)``,
``inspect(ref, params) -> (reason, samples, start)`` and ``load(ref, params)``, and may
have ``inspect_all(index, params)``.  :data:`FORMATS` lists them in the order
they are asked; no code outside this package asks which format a clip came from.

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
from . import folder, gtzan, manifest
from .audio import audio_extensions, clip_samples, decode_frames, is_audio_name
from .index import ClipRef, InputIndex, check_names, check_sizes, label, shown

#: The input formats, in the order they are asked whether they can open a path (the last takes any file).
FORMATS = (folder, manifest, gtzan)


def format_of(name: str):
    """The format module called ``name`` (a :attr:`ClipRef.format`)."""
    for fmt in FORMATS:
        if fmt.NAME == name:
            return fmt
    raise KeyError(name)


def open_index(path, *, pad: bool = False, path_column: str | None = None,
               label_column: str | None = None) -> InputIndex:
    """Index any input: the first of :data:`FORMATS` that can open ``path`` does it.

    ``pad`` allows genres of different sizes (the shorter ones' last slots are
    missing); without it they are a problem.  ``path_column`` and
    ``label_column`` name a manifest's columns.

    Raises :class:`BadInputError` for a missing path, a layout that cannot be
    read at all, or an input holding no clip; per-clip problems are checked by
    :func:`preflight`.
    """
    p = Path(path)
    if not p.exists():
        raise BadInputError([Problem(str(p), "no such file or folder")],
                            "give a GTZAN-style folder ROOT/<genre>/<file>, a gtzan.hdf5 or a manifest .csv")
    fmt = next(f for f in FORMATS if f.can_open(p))
    given = [o for o, v in (("--path-column", path_column), ("--label-column", label_column)) if v]
    if given and fmt is not manifest:
        what = "a genres folder" if fmt is folder else "not a manifest .csv"
        raise ParameterError(f"{' and '.join(given)} name(s) a manifest's column, but {shown(p)} is {what}: leave "
                             f"{' and '.join(given)} out, or give a manifest .csv")
    index = fmt.index(p, path_column=path_column, label_column=label_column)
    check_sizes(index, pad)
    check_names(index)
    return index


def inspect_clip(ref: ClipRef, params: Params) -> tuple:
    """``(reason, samples)`` from ``ref``'s header alone (see the format's ``inspect``)."""
    return format_of(ref.format).inspect(ref, params)


def check_clip(ref: ClipRef, params: Params) -> str | None:
    """The reason ``ref`` is a bad clip, from its header alone; None if it looks fine."""
    return inspect_clip(ref, params)[0]


def load_clip(ref: ClipRef, params: Params) -> np.ndarray:
    """Read one clip as float32 of exactly ``params.nsamples`` samples (see the format's ``load``).

    Raises :class:`BadInputError` naming the clip when it cannot be used.
    """
    return format_of(ref.format).load(ref, params)


def preflight(index: InputIndex, params: Params, *, progress: bool = False) -> list:
    """Every problem of the input (scan problems and bad clips), without full decodes; sets ``index.samples``
    and ``index.starts`` (each clip's own samples, and where its kept span starts in seconds)."""
    from ..progress import bar

    problems = list(index.problems)
    index.samples = np.zeros((index.ngenres, index.nclips), dtype=np.int64)
    index.starts = np.zeros((index.ngenres, index.nclips), dtype=np.float64)
    if not index.clips:
        return problems
    fmt = format_of(index.kind)
    if hasattr(fmt, "inspect_all"):
        found = fmt.inspect_all(index, params)
    else:
        known = {p.path for p in problems}
        found = [(ref, *inspect_clip(ref, params))
                 for ref in bar(index.clips, desc="checking", enabled=progress, leave=False)
                 if ref.where not in known]
    for ref, reason, n, start in found:
        index.samples[ref.g, ref.c] = n
        index.starts[ref.g, ref.c] = start
        if reason and (not problems or problems[-1] != Problem(ref.where, reason)):
            problems.append(Problem(ref.where, reason))
    return problems


__all__ = ["FORMATS", "ClipRef", "InputIndex", "open_index", "preflight", "check_clip", "inspect_clip",
           "load_clip", "clip_samples", "decode_frames", "audio_extensions", "is_audio_name", "label", "shown",
           "format_of"]
