"""What an output folder holds: file names, dimension names, attributes and provenance.

Both stores, ``audio.zarr`` and ``audio.hdf5``, carry the same attributes
(:func:`make_attrs`); :func:`mismatch` says why an existing output cannot be
resumed or reused for a run.  Nothing here touches a file.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from ..arrays import ARRAYS, DATASETS
from ..params import Params

ZARR_NAME = "audio.zarr"
HDF5_NAME = "audio.hdf5"
SUMMARY_NAME = "audio.summary.json"
CONFIG_NAME = "audio.config.yaml"
LOCK_NAME = ".audioprep.lock"
LOG_DIR = "logs"
#: In ``audio.zarr``'s ``source`` array folder (where Zarr readers do not look): each input file's size and
#: mtime when the store was made (:meth:`InputIndex.stamps`), so a later run names the files that changed.
INPUTS_NAME = "source/stamps.json"

#: Written into both stores; an output of another format is never resumed.
FORMAT = "audioprep-4"  # 2: per-slot source array, UTF-8 labels; 3: flat chunk keys, contiguous HDF5; 4: samples

#: The per-clip arrays besides the datasets: ``valid`` in both stores, ``done`` in Zarr only (the resume record).
FLAGS = ("valid", "done")
#: The per-slot provenance array: each slot's file relative to the input (``""`` for a missing slot).
SOURCE = "source"
SOURCE_DOC = "the clip's file relative to the input, or its gtzan.hdf5 column; empty for a missing slot"
#: The per-slot length: how many of the slot's Nsamples samples are the clip's own (the rest is --pad-short's
#: zeros); 0 for a bad or missing slot.
SAMPLES = "samples"
SAMPLES_DOC = "samples of the slot that are the clip's own (at sr); the rest, up to Nsamples, is zero padding"
#: The per-slot start: seconds into the clip's file where its kept span begins (--offset, --crop center).
START = "start"
START_DOC = "seconds into the clip's file where the slot's samples begin (--offset, --crop center)"
#: The per-slot coordinates, in the order readers show them.
SLOT_COORDS = (SOURCE, SAMPLES, START)

#: The clip layout's per-clip arrays (docs/output.md): each clip's label, its split, its tags.
LABEL = "label"
LABEL_DOC = "the clip's label: an index into the labels attribute, -1 for a clip without one"
SPLIT = "split"
SPLIT_DOC = "the collection's split of the clip (training, validation, test), empty where unknown"
TAGS = "tags"
TAGS_DOC = "whether the clip carries each tag (the tag coordinate names them as the input writes them)"
TAG = "tag"
#: The per-clip arrays of the clip layout, in the order readers show them (split and tags where the input has them).
CLIP_COORDS = (LABEL, SPLIT, TAGS)

#: The dimensions that say where a clip is, by layout.
SLOT_DIMS = {"grid": ("genre", "clip"), "clips": ("clip",)}


def slot(ndim: int, g: int, c: int) -> tuple:
    """Where the per-clip arrays of ``ndim`` slot dimensions hold clip ``(g, c)``: ``(g, c)`` in the grid,
    ``(c,)`` (its row) in the clip layout."""
    return (int(g), int(c)) if ndim == 2 else (int(c),)


def clip_columns(index) -> dict:
    """The clip layout's per-clip arrays of ``index`` (one row a clip): ``{name: (values, doc)}``, ``label``
    always, ``split`` where a clip has one, ``tags`` (with the ``tag`` names) where a clip has some."""
    out = {LABEL: (np.array([ref.g for ref in index.clips], dtype=np.int64), LABEL_DOC)}
    if any(ref.split for ref in index.clips):
        out[SPLIT] = (np.array([ref.split for ref in index.clips], dtype=object), SPLIT_DOC)
    names = sorted({t for ref in index.clips for t in ref.tags})
    if names:
        where = {t: i for i, t in enumerate(names)}
        tags = np.zeros((len(index.clips), len(names)), dtype=bool)
        for row, ref in enumerate(index.clips):
            tags[row, [where[t] for t in ref.tags]] = True
        out[TAGS] = (tags, TAGS_DOC)
        out[TAG] = (np.array(names, dtype=object), "")
    return out


def kind(attrs: dict) -> str:
    """An output's layout (``grid`` for the outputs of before the clip layout, which do not say)."""
    return str(attrs.get("layout", "grid"))


def dims(name: str, layout: str = "grid") -> tuple:
    """Dimension names of array ``name`` (a dataset, a per-clip flag or coordinate) in ``layout``."""
    slot = SLOT_DIMS[layout]
    if name in FLAGS or name in SLOT_COORDS or name in (LABEL, SPLIT):
        return slot
    if name == TAGS:
        return (*slot, TAG)
    if name == TAG:
        return (TAG,)
    if name not in DATASETS:
        raise KeyError(name)
    return ARRAYS[name].dims(slot)


#: How frames line up in time (the CQT is centred on its hop).
TIME_DOC = (
    "start of the frame's na samples in Xa, and centre of the frame's CQT column in Xs and Xn "
    "(the CQT is centred: column t covers t*na/sr seconds +- half its filter length)"
)


#: The order the coordinates are written in (the seed's: files made before the arrays' records carried them).
_ORDER = ("genre", "clip", "frame", "overlap", "time", "sample", "bin", "frequency", "note")


def coordinates(attrs: dict, names) -> dict:
    """The labelled coordinates of the arrays ``names``, from an output's attributes.

    Returns ``{name: (dims, values, attrs)}``: the dimension coordinates
    ``genre`` (labels), ``clip``, ``frame``, ``overlap`` (0 aligned, 1 shifted by
    ``na // 2``), ``sample``, ``bin``, and ``time`` (frame start in seconds, per
    frame and overlap), ``frequency`` (bin centres in Hz) and ``note`` (the
    nearest note and offset in cents, e.g. ``C2+50``).  Both stores carry them
    (HDF5 as dimension scales) and :func:`~pipeline.output.reader.open_dataset`
    labels its dataset with them, so every reader sees the same names.
    """
    na, sr = int(attrs["na"]), int(attrs["sr"])
    nframes, nclips = int(attrs["Nframes"]), int(attrs["Nclips"])
    start = np.arange(nframes) * na / sr
    coords: dict[str, tuple] = (
        {} if kind(attrs) == "clips" else {"genre": (("genre",), np.array(list(attrs["labels"]), dtype=object), {})}
    )
    coords |= {
        "clip": (("clip",), np.arange(nclips), {}),
        "frame": (("frame",), np.arange(nframes), {}),
        "overlap": (("overlap",), np.array([0, 1]), {}),
        "time": (
            ("frame", "overlap"),
            start[:, None] + np.array([0.0, na / 2 / sr])[None, :],
            {"units": "s", "long_name": TIME_DOC},
        ),
    }
    for name in DATASETS:  # each array's last dimension, as its record says (sample; bin, frequency, note)
        if name in names:
            coords.update(ARRAYS[name].coords(attrs))
    coords = dict(sorted(coords.items(), key=lambda kv: _ORDER.index(kv[0]) if kv[0] in _ORDER else len(_ORDER)))
    used = {d for name in names for d in dims(name, kind(attrs))}
    return {k: v for k, v in coords.items() if set(v[0]) <= used}


def auxiliary(name: str, coords: dict, layout: str = "grid", extra=()) -> str:
    """The non-dimension coordinates of array ``name``, as the CF ``coordinates`` attribute names them.

    :data:`SOURCE` is one of them: xarray and netCDF readers show each slot's file beside its arrays;
    ``extra`` names the clip layout's per-clip arrays the output holds (:data:`CLIP_COORDS`).
    """
    names = [k for k, (d, _, _) in coords.items() if d != (k,) and set(d) <= set(dims(name, layout))]
    return " ".join([*names, *SLOT_COORDS, *extra])


def software_versions() -> dict:
    import importlib.metadata

    from .. import __version__

    # From the installed packages' metadata: the driver does not import librosa (and numba) to name its version.
    versions = {"python": sys.version.split()[0], "numpy": np.__version__}
    for name in ("librosa", "dask", "zarr", "h5py"):
        versions[name] = importlib.metadata.version(name)
    return {**versions, "audioprep": __version__}


def make_attrs(index, params: Params, *, created: str) -> dict:
    """The attributes both stores carry: sample rate, labels and provenance.

    Every value is a scalar (int, float, bool, str) or, for ``labels``, a list
    of str, so the same dict fits Zarr's JSON and HDF5's attributes.
    """
    attrs = {
        "format": FORMAT,
        "sr": params.sr,
        "labels": list(index.labels),
        "Ngenres": index.ngenres,
        "Nclips": index.nclips,
        "Nframes": params.nframes,
        "Nsamples": params.nsamples,
        "hop_length": params.hop_length,
        "bins_per_octave": params.bins_per_octave,
    }
    for k, v in params.to_dict().items():
        attrs[k] = ",".join(v) if k == "datasets" else v
    attrs.update(
        {
            "params": json.dumps(params.to_dict(), sort_keys=True),
            "input_path": index.path,
            "input_kind": index.kind,
            "input_fingerprint": index.fingerprint(),
            **_collection(index),
            "versions": json.dumps(software_versions(), sort_keys=True),
            "bad_clips": "[]",
            "created": created,
        }
    )
    return attrs


def _collection(index) -> dict:
    """The attributes of a collection's own divisions, where the input has them: ``input_subset`` (FMA's
    subset), ``input_metadata`` (the file the labels came from), ``input_splits`` (JSON: clips a split)."""
    out: dict[str, str] = {}
    if index.subset:
        out["input_subset"] = index.subset
    if index.metadata:
        out["input_metadata"] = index.metadata
    splits: dict[str, int] = {}
    for ref in index.clips:
        if ref.split:
            splits[ref.split] = splits.get(ref.split, 0) + 1
    if splits:
        out["input_splits"] = json.dumps(dict(sorted(splits.items())))
    return out


def bad_entry(g: int, c: int, path: str, reason: str, missing: bool = False) -> dict:
    """One entry of the stores' ``bad_clips`` attribute (a JSON list): the slot, its file and why it is invalid;
    ``missing`` for a slot no clip fills (``--pad``)."""
    entry = {"genre": int(g), "clip": int(c), "path": path, "reason": reason}
    if missing:
        entry["missing"] = True
    return entry


def bad_and_missing(attrs: dict) -> tuple:
    """From an output's attributes: ``(["path: reason" per bad clip], ["genre[clip]" per missing slot],
    entries)``."""
    entries = json.loads(attrs.get("bad_clips", "[]"))
    labels = list(attrs.get("labels", []))
    bad = [f"{b['path']}: {b['reason']}" for b in entries if not b.get("missing")]
    missing = [f"{labels[b['genre']]}[{b['clip']}]" for b in entries if b.get("missing")]
    return bad, missing, entries


def mismatch(attrs: dict, expected: dict) -> str | None:
    """Why an output with ``attrs`` cannot be resumed or reused for ``expected``; None if it can."""
    if attrs.get("format") != FORMAT:
        return f"it was not written by this version of audioprep (format={attrs.get('format')!r})"
    if attrs.get("params") != expected["params"]:
        old, new = json.loads(attrs.get("params", "{}")), json.loads(expected["params"])
        for d in (old, new):
            d.setdefault("layout", "grid")  # (a grid's parameters do not name it)
        diff = ", ".join(
            f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)
        )
        return f"it was made with other parameters ({diff})"
    if attrs.get("input_path") != expected["input_path"]:
        return f"it was made from other input ({attrs.get('input_path')})"
    if attrs.get("input_fingerprint") != expected["input_fingerprint"]:
        return (
            f"it was made from the same input ({attrs.get('input_path')}) when its files were different "
            "(files added, removed or changed since)"
        )
    return None


def changed_files(old: dict, new: dict, first: int = 3) -> str:
    """The input files that differ between two :meth:`InputIndex.stamps`, as a message names them."""
    parts = []
    for word, names in (
        ("changed", [k for k in new if k in old and old[k] != new[k]]),
        ("added", [k for k in new if k not in old]),
        ("removed", [k for k in old if k not in new]),
    ):
        if names:
            more = f" and {len(names) - first} more" if len(names) > first else ""
            parts.append(f"{word} {', '.join(names[:first])}{more}")
    return "; ".join(parts)


def store_token(attrs: dict) -> str:
    """Identifies one creation of a store, so a worker never writes through stale metadata."""
    import hashlib

    key = json.dumps([attrs.get("created"), attrs.get("input_fingerprint"), attrs.get("params")])
    return hashlib.sha256(key.encode()).hexdigest()[:16]
