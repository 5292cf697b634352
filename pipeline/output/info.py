"""``audioprep info``: a human-readable description of an ``audio.hdf5``, ``audio.zarr`` or ``gtzan.hdf5``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..exceptions import StoreError, escaped
from ..inputs import gtzan
from . import layout
from .reader import OutputReader
from .store import COMPLETE


def _disk_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def describe(path) -> str:
    """A human-readable description of an ``audio.hdf5``, ``audio.zarr`` or ``gtzan.hdf5``."""
    from .reader import output_in

    path = output_in(path)  # an output folder: the output it holds
    if not path.exists():
        raise StoreError(f"{path}: no such file or folder")
    lines = [f"{path}  ({_disk_size(path) / 1e6:.1f} MB on disk)"]
    if path.is_file():
        import h5py

        try:
            f = h5py.File(path, "r")
        except OSError as e:
            raise StoreError(f"{path}: not a readable HDF5 file ({e})") from None
        with f:
            if gtzan.is_gtzan(f):
                return "\n".join(escaped(line) for line in lines + gtzan.describe(f))
    with OutputReader(path) as src:
        _describe_output(src, lines)
    return "\n".join(escaped(line) for line in lines)  # a name holding a newline or U+202E prints as one line


def _describe_output(src, lines) -> None:
    a = src.attrs
    lines.append(f"kind: {'Zarr store' if src.kind == 'zarr' else 'HDF5 file'} ({a.get('format', '?')})")
    lines.append("arrays:")
    for name in src.names:
        arr = src.array(name)
        chunking = tuple(arr.chunks) if arr.chunks else "contiguous"
        lines.append(
            f"  {name:<6} {str(tuple(arr.shape)):<28} {str(arr.dtype):<8} chunks {chunking}  "
            f"codec {_codec_name(src, arr)}"
        )
    lines.append(f"labels: {', '.join(a['labels'])}")
    if src.layout == "clips":
        lines.append(_clip_layout_line(src))
    if a.get("input_subset") or a.get("input_splits"):
        lines.append(_collection_line(src))
    lines.append(f"sr: {a['sr']} Hz")
    valid = np.asarray(src.array("valid")[...]) if "valid" in src.names else None
    if valid is not None:
        lines.append(f"clips: {valid.size} slots, {int(valid.sum())} valid, {int((~valid).sum())} invalid or missing")
        own, n = src.samples()[valid.astype(bool)], int(a["Nsamples"])
        if (own < n).any():
            s, sr = own[own < n], float(a["sr"])
            span = [" to ".join(dict.fromkeys(v)) for v in zip(*[(f"{x}", f"{x / sr:.2f}") for x in (min(s), max(s))])]
            lines.append(
                f"padded: {s.size} valid clip(s) zero-padded to Nsamples={n} (--pad-short), their own "
                f"{span[0]} samples ({span[1]} s: the 'samples' array); the loaders leave the padding out"
            )
    if src.kind == "zarr":
        done = np.asarray(src.array("done")[...])
        complete = "; complete (a finished output)" if a.get(COMPLETE) is True else ""
        lines.append(f"progress: {int(done.sum())} of {done.size} clips finished{complete}")
    sources = [s for s in src.sources().ravel() if s]
    if sources:
        lines.append(f"source: {sources[0]} ... {sources[-1]} (each slot's file, in the 'source' array)")
    bad, missing, _ = layout.bad_and_missing(a)
    lines += [f"  bad: {line}" for line in bad]
    if missing:
        lines.append(f"  missing (genres with fewer clips): {slot_ranges(missing)}")
    lines.append("provenance:")
    params = json.loads(a.get("params", "{}"))
    lines.append("  parameters: " + ", ".join(f"{k}={v}" for k, v in sorted(params.items())))
    lines.append(f"  input: {a.get('input_path')} ({a.get('input_kind')}, fingerprint {a.get('input_fingerprint')})")
    versions = json.loads(a.get("versions", "{}"))
    lines.append("  software: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    lines.append(f"  created: {a.get('created')}")


def _clip_layout_line(src) -> str:
    """``info``'s line on the clip layout: the clips a label, those without one, the splits and tags."""
    lab, names = src.clip_labels(), list(src.attrs["labels"])
    counts = [f"{n}={int((lab == g).sum())}" for g, n in enumerate(names)]
    if (lab < 0).any():
        counts.append(f"no label={int((lab < 0).sum())}")
    line = f"layout: clips, one row a clip ({lab.size} clips: {', '.join(counts)})"
    if layout.SPLIT in src._root:
        splits = src.text(layout.SPLIT)
        line += "; split: " + ", ".join(f"{k or '(none)'}={int((splits == k).sum())}" for k in sorted(set(splits)))
    if layout.TAGS in src._root:
        line += f"; {src._root[layout.TAGS].shape[1]} tags (the 'tags' array, named by 'tag')"
    return line


def _collection_line(src) -> str:
    """``info``'s line on a collection's own divisions: its subset and where its labels came from; in the grid
    also the clips a label and a split (the clip layout's line says those)."""
    a, parts = src.attrs, []
    if a.get("input_subset"):
        meta = f" (labels from {a['input_metadata']})" if a.get("input_metadata") else ""
        parts.append(f"subset: {a['input_subset']}{meta}")
    if src.layout != "clips":
        per_label = (src.sources() != "").sum(axis=-1)
        parts.append("clips a label: " + ", ".join(f"{n}={int(k)}" for n, k in zip(a["labels"], per_label)))
        splits = json.loads(a.get("input_splits") or "{}")
        if splits:
            parts.append("split: " + ", ".join(f"{k}={v}" for k, v in splits.items()))
    return "; ".join(parts)


def slot_ranges(slots: list) -> str:
    """``["jazz[7]", "jazz[8]", "rock[9]"]`` as ``jazz[7..8], rock[9]``."""
    runs: list[list] = []  # [genre, first, last]
    for slot in slots:
        genre, c = slot[:-1].rsplit("[", 1)
        if runs and runs[-1][0] == genre and runs[-1][2] == int(c) - 1:
            runs[-1][2] = int(c)
        else:
            runs.append([genre, int(c), int(c)])
    return ", ".join(f"{g}[{a}]" if a == b else f"{g}[{a}..{b}]" for g, a, b in runs)


def _codec_name(src, arr) -> str:
    if src.kind == "hdf5":
        return arr.compression or "none"
    names = []
    for c in getattr(arr, "compressors", ()):
        parts = [
            f"{k}={getattr(getattr(c, k), 'value', getattr(c, k))}"
            for k in ("cname", "clevel", "shuffle", "level")
            if hasattr(c, k)
        ]
        names.append(f"{type(c).__name__.replace('Codec', '').lower()}({', '.join(parts)})")
    return ", ".join(names) or "none"
