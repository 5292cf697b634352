"""Input format: a ``gtzan.hdf5``, the original conversion's layout, and the one place its schema is written.

One float32 dataset per genre of shape ``(Nsamples, Nclips)``, one clip a
column (chunked a column a chunk), and the attributes :data:`ATTRS`.
``audioprep ingest`` writes it (:func:`create`), a run reads it (this format),
``audioprep info`` describes it (:func:`describe`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..exceptions import BadInputError, Problem
from ..params import Params
from .audio import decode_frames, error_text, format_problem, header_verdict, span_start, to_nsamples
from .base import InputFormat, Verdict
from .index import ClipRef, InputIndex

NAME = "hdf5"
#: The attributes of a gtzan.hdf5 (int64 scalars).
ATTRS = ("Ngenres", "Nclips", "sr", "Nsamples")
#: The group of per-clip records ``ingest`` writes (a name no genre folder has: indexing skips dot folders):
#: ``samples``, each clip's own length in samples (the rest of its column is ``--pad-short``'s zeros), and
#: ``bad``, why a clip ``--skip-bad`` left as zeros could not be used ("" for a good clip); both
#: ``(Ngenres, Nclips)`` in the genres' sorted order.  A file without it (the original layout, which ingest
#: keeps when every clip is full and good) has every column full and good.
CLIPS = ".clips"


#: The first bytes of an HDF5 file (at offset 0, or after a user block of 512, 1024, 2048, ... bytes).
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class Gtzan(InputFormat):
    name = NAME
    description = "a gtzan.hdf5 written by 'audioprep ingest'"

    def can_open(self, path: Path) -> bool:
        """An HDF5 file (its signature): a gtzan.hdf5, or refused by :func:`index` with what it lacks."""
        try:
            size = path.stat().st_size
            with open(path, "rb") as f:
                at = 0
                while at + 8 <= size:
                    f.seek(at)
                    if f.read(8) == HDF5_SIGNATURE:
                        return True
                    at = 512 if at == 0 else 2 * at
        except OSError:
            return False
        return False

    def index(self, path: Path, **_) -> InputIndex:
        return index(path)

    def inspect(self, ref: ClipRef, params: Params) -> Verdict:
        return inspect(ref, params)

    def inspect_all(self, index: InputIndex, params: Params, *, progress: bool = False, **_) -> list:
        return inspect_all(index, params)

    def load(self, ref: ClipRef, params: Params) -> np.ndarray:
        return load(ref, params)


FORMAT = Gtzan()


def is_gtzan(f) -> bool:
    """Whether the open h5py file ``f`` is a gtzan.hdf5 (not an audioprep output, which has labels)."""
    return all(a in f.attrs for a in ATTRS) and "labels" not in f.attrs


def create(f, labels, nsamples: int, nclips: int, sr: int) -> dict:
    """Lay out a gtzan.hdf5 in the open h5py file ``f``; return its datasets by genre (fill column c of each)."""
    dsets = {
        genre: f.create_dataset(genre, shape=(nsamples, nclips), dtype="float32", chunks=(nsamples, 1))
        for genre in labels
    }
    for key, value in zip(ATTRS, (len(labels), nclips, sr, nsamples)):
        f.attrs[key] = np.int64(value)
    return dsets


def write_records(f, samples: np.ndarray, bad: np.ndarray) -> None:
    """Write :data:`CLIPS` into the open gtzan.hdf5 ``f`` when some clip is padded or bad; a file whose clips
    are all full and good keeps the original layout (nothing but the genre datasets)."""
    import h5py

    if (samples >= int(f.attrs["Nsamples"])).all() and not (bad != "").any():
        return
    clips = f.create_group(CLIPS)
    clips.create_dataset("samples", data=samples.astype(np.int64))
    clips.create_dataset("bad", data=bad.astype(object), dtype=h5py.string_dtype())


def records(f) -> tuple:
    """``(samples, bad)`` of the open gtzan.hdf5 ``f`` (see :data:`CLIPS`); full and good if it has none."""
    ng, nc, ns = (int(f.attrs[a]) for a in ("Ngenres", "Nclips", "Nsamples"))
    if CLIPS not in f:
        return np.full((ng, nc), ns, dtype=np.int64), np.full((ng, nc), "", dtype=object)
    bad = np.array(
        [[b.decode() if isinstance(b, bytes) else b for b in row] for row in f[CLIPS]["bad"][...]], dtype=object
    ).reshape(ng, nc)
    return f[CLIPS]["samples"][...], bad


def describe(f) -> list:
    """The lines ``audioprep info`` prints for the open gtzan.hdf5 ``f``."""
    lines = ["kind: gtzan.hdf5 (input layout: one (Nsamples, Nclips) dataset per genre)"]
    lines += [f"{k}: {f.attrs[k]}" for k in ATTRS]
    lines.append("datasets:")
    genres = [name for name in sorted(f.keys()) if name != CLIPS]
    for name in genres:
        d = f[name]
        lines.append(f"  {name:<12} {str(d.shape):<16} {d.dtype}  chunks {d.chunks}  codec {d.compression or 'none'}")
    lines.append(f"labels: {', '.join(genres)}")
    samples, bad = records(f)
    ns = int(f.attrs["Nsamples"])
    padded = samples[(samples < ns) & (bad == "")]
    if padded.size:
        lines.append(
            f"padded: {padded.size} clip(s) zero-padded to Nsamples={ns} (ingest --pad-short), their own "
            f"lengths {padded.min()} to {padded.max()} samples"
        )
    if (bad != "").any():
        lines.append(
            f"bad: {int((bad != '').sum())} clip(s) left as zeros (ingest --skip-bad); a run reports "
            "them again and needs --skip-bad"
        )
    return lines


def index(path: Path, **_) -> InputIndex:
    """Index a gtzan.hdf5: its genre datasets (sorted by name), one clip a column."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise BadInputError(
            [Problem(str(path), f"not a folder, a manifest .csv or a readable HDF5 file ({e})")],
            "give a GTZAN-style folder, a manifest .csv or a gtzan.hdf5 written by 'audioprep ingest'",
        ) from None
    with f:
        missing = [a for a in ATTRS if a not in f.attrs]
        if missing:
            raise BadInputError(
                [Problem(str(path), f"gtzan.hdf5 lacks the attribute(s) {', '.join(missing)}")],
                "re-create it with 'audioprep ingest GENRES_DIR -o gtzan.hdf5'",
            )
        ng, nc, ns = (int(f.attrs[a]) for a in ("Ngenres", "Nclips", "Nsamples"))
        genres = sorted(k for k in f.keys() if isinstance(f[k], h5py.Dataset))
        problems = []
        if len(genres) != ng:
            problems.append(
                Problem(
                    str(path), f"attribute Ngenres={ng} but the file holds {len(genres)} datasets ({', '.join(genres)})"
                )
            )
        for genre in genres:
            d = f[genre]
            if d.shape != (ns, nc):
                problems.append(
                    Problem(
                        f"{path}[{genre}]",
                        f"shape {d.shape} differs from (Nsamples, Nclips)=({ns}, {nc}) of the attributes",
                    )
                )
            elif not np.issubdtype(d.dtype, np.floating):
                problems.append(Problem(f"{path}[{genre}]", f"dtype {d.dtype} is not floating point"))
        if not problems and (not genres or nc == 0):
            problems.append(Problem(str(path), "holds no clip (no genre dataset, or Nclips=0)"))
        if problems:
            raise BadInputError(problems, "re-create it with 'audioprep ingest GENRES_DIR -o gtzan.hdf5'")
    clips = [
        ClipRef(g, c, genre, str(path.resolve()), c, rel=f"{genre}[:, {c}]", format=NAME)
        for g, genre in enumerate(genres)
        for c in range(nc)
    ]
    return InputIndex(str(path.resolve()), NAME, tuple(genres), nc, clips)


def _check(sr: int, own: int, bad: str, params: Params) -> Verdict:
    if bad:
        return Verdict(f"left as zeros by 'audioprep ingest --skip-bad' ({bad})")
    return header_verdict(sr, 1, int(own), params)


def inspect(ref: ClipRef, params: Params) -> Verdict:
    """The :class:`Verdict` from the file's attributes and records: each clip's own length (shorter than
    ``Nsamples`` if ingest zero-padded it) and whether ingest left it out as bad."""
    import h5py

    with h5py.File(ref.source, "r") as f:
        samples, bad = records(f)
        sr = int(f.attrs["sr"])
    return _check(sr, samples[ref.g, ref.column], bad[ref.g, ref.column], params)


def inspect_all(index: InputIndex, params: Params) -> list:
    """Pre-flight of the whole file from one read of its header and records: ``[(ref, verdict)]``."""
    import h5py

    with h5py.File(index.clips[0].source, "r") as f:
        samples, bad = records(f)
        sr, ns = int(f.attrs["sr"]), int(f.attrs["Nsamples"])
    whole, fixes = format_problem(sr, 1, ns, params)  # the file's rate, or its Nsamples: one problem, of the file
    if whole:
        ref = index.clips[0]
        return [(ref, Verdict(whole, fixes=fixes, ref=dataclasses.replace(ref, column=None)))]
    return [(ref, _check(sr, samples[ref.g, ref.column], bad[ref.g, ref.column], params)) for ref in index.clips]


def load(ref: ClipRef, params: Params) -> np.ndarray:
    """Read column ``ref.column`` of genre ``ref.genre`` as float32 of exactly ``Nsamples`` samples (its own
    samples, then zeros if ``pad_short``)."""
    import h5py

    try:
        with h5py.File(ref.source, "r") as f:
            rate = int(f.attrs["sr"])
            own = int(f[CLIPS]["samples"][ref.g, ref.column]) if CLIPS in f else int(f.attrs["Nsamples"])
            start = span_start(own, rate, params)
            y = f[ref.genre][start : min(own, start + decode_frames(rate, params)), ref.column]
    except Exception as e:
        raise BadInputError([Problem(ref.name, f"reading failed ({error_text(e)})")]) from None
    return to_nsamples(y, rate, params, ref.name, frames=own)
