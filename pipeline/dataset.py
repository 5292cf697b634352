"""The dataset index and clip loading (SPEC section 1).

An input is either a GTZAN-style folder ``ROOT/<genre>/<file>`` or a
``gtzan.hdf5`` (one float32 dataset per genre, shape ``(Nsamples, Nclips)``).
:func:`open_index` turns either into a :class:`DatasetIndex`; :func:`preflight`
checks every clip cheaply (headers, not full decodes); :func:`load_clip` reads
one clip as float32 of exactly ``Nsamples`` samples.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .exceptions import BadInputError, Problem
from .params import Params

GTZAN_ATTRS = ("Ngenres", "Nclips", "sr", "Nsamples")


@dataclass(frozen=True)
class ClipRef:
    """Where one clip lives and which output slot ``(g, c)`` it fills."""

    g: int
    c: int
    genre: str
    source: str  # the audio file, or the gtzan.hdf5 file
    column: int | None = None  # the column in gtzan.hdf5, None for audio files

    @property
    def name(self) -> str:
        """What a user calls this clip in messages."""
        if self.column is None:
            return self.source
        return f"{self.source}[{self.genre}][:, {self.column}]"


@dataclass
class DatasetIndex:
    """Every clip of an input, ordered by genre then clip."""

    path: str
    kind: str  # "folder" or "hdf5"
    labels: tuple
    nclips: int
    clips: list = field(default_factory=list)
    problems: list = field(default_factory=list)  # found while scanning

    @property
    def ngenres(self) -> int:
        return len(self.labels)

    def fingerprint(self) -> str:
        """Digest of what the input is: its path, kind and each clip's file identity."""
        h = hashlib.sha256()
        h.update(json.dumps([self.path, self.kind, list(self.labels), self.nclips]).encode())
        seen = set()
        for ref in self.clips:
            if ref.source in seen:
                continue
            seen.add(ref.source)
            try:
                st = os.stat(ref.source)
                ident = [os.path.relpath(ref.source, self.path) if self.kind == "folder" else ref.source,
                         st.st_size, st.st_mtime_ns]
            except OSError:
                ident = [ref.source, None, None]
            h.update(json.dumps(ident).encode())
        return h.hexdigest()[:32]


def open_index(path, *, allow_unequal: bool = False) -> DatasetIndex:
    """Index a genres folder or a ``gtzan.hdf5``.

    Raises :class:`BadInputError` for a missing path or a layout that cannot be
    read at all; per-clip problems are checked by :func:`preflight`.
    """
    p = Path(path)
    if not p.exists():
        raise BadInputError([Problem(str(p), "no such file or folder")],
                            "give a GTZAN-style folder ROOT/<genre>/<file> or a gtzan.hdf5")
    if p.is_dir():
        return _index_folder(p, allow_unequal=allow_unequal)
    return _index_hdf5(p)


def _index_folder(root: Path, *, allow_unequal: bool) -> DatasetIndex:
    genres = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not genres:
        hint = "expected ROOT/<genre>/<file>"
        if (root / "genres").is_dir():
            hint += f"; did you mean {root / 'genres'}?"
        raise BadInputError([Problem(str(root), "holds no genre sub-folders")], hint)
    problems, files = [], {}
    for genre in genres:
        names = sorted(f.name for f in (root / genre).iterdir() if f.is_file() and not f.name.startswith("."))
        files[genre] = names
        if not names:
            problems.append(Problem(str(root / genre), "empty genre folder: holds no clips"))
    counts = {g: len(n) for g, n in files.items() if n}
    nclips = max(counts.values(), default=0)
    if len(set(counts.values())) > 1:
        detail = ", ".join(f"{g}={n}" for g, n in counts.items())
        problems.append(Problem(str(root), f"genres hold unequal numbers of clips ({detail}); "
                                           "use --skip-bad to go on with the missing slots marked invalid"))
    clips = [ClipRef(g, c, genre, str(root / genre / name))
             for g, genre in enumerate(genres) for c, name in enumerate(files[genre])]
    if allow_unequal:
        # With --skip-bad the missing slots are only marked invalid, not errors.
        problems = [p for p in problems if "unequal" not in p.reason]
    return DatasetIndex(str(root.resolve()), "folder", tuple(genres), nclips, clips, problems)


def _index_hdf5(path: Path) -> DatasetIndex:
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise BadInputError([Problem(str(path), f"not a folder and not a readable HDF5 file ({e})")],
                            "give a GTZAN-style folder or a gtzan.hdf5 written by 'audioprep ingest'") from None
    with f:
        missing = [a for a in GTZAN_ATTRS if a not in f.attrs]
        if missing:
            raise BadInputError([Problem(str(path), f"gtzan.hdf5 lacks the attribute(s) {', '.join(missing)}")],
                                "re-create it with 'audioprep ingest GENRES_DIR -o gtzan.hdf5'")
        ng, nc, ns = (int(f.attrs[a]) for a in ("Ngenres", "Nclips", "Nsamples"))
        genres = sorted(k for k in f.keys() if isinstance(f[k], h5py.Dataset))
        problems = []
        if len(genres) != ng:
            problems.append(Problem(str(path), f"attribute Ngenres={ng} but the file holds {len(genres)} "
                                               f"datasets ({', '.join(genres)})"))
        for genre in genres:
            d = f[genre]
            if d.shape != (ns, nc):
                problems.append(Problem(f"{path}[{genre}]", f"shape {d.shape} differs from "
                                                            f"(Nsamples, Nclips)=({ns}, {nc}) of the attributes"))
            elif not np.issubdtype(d.dtype, np.floating):
                problems.append(Problem(f"{path}[{genre}]", f"dtype {d.dtype} is not floating point"))
        if problems:
            raise BadInputError(problems, "re-create it with 'audioprep ingest GENRES_DIR -o gtzan.hdf5'")
    clips = [ClipRef(g, c, genre, str(path.resolve()), c) for g, genre in enumerate(genres) for c in range(nc)]
    return DatasetIndex(str(path.resolve()), "hdf5", tuple(genres), nc, clips)


# ----------------------------------------------------------------------------
# Pre-flight: cheap per-clip checks


def check_clip(ref: ClipRef, params: Params) -> str | None:
    """The reason ``ref`` is a bad clip, from its header alone; None if it looks fine."""
    if ref.column is not None:
        return _check_hdf5_clip(ref, params)
    import soundfile as sf

    try:
        size = os.path.getsize(ref.source)
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    if size == 0:
        return "empty file (0 bytes)"
    try:
        info = sf.info(ref.source)
    except Exception as e:  # libsndfile says why in its own words
        return f"not a decodable audio file ({_short(e)})"
    if info.format == "RAW":
        return _NO_HEADER
    return _check_format(info.samplerate, info.channels, info.frames, params)


# libsndfile reads any headerless file ending in .au as raw 8 kHz u-law, so
# garbage would pass as audio; a usable clip always has a header.
_NO_HEADER = "not a decodable audio file (no audio header found)"


def _check_format(rate: int, channels: int, frames: int, params: Params) -> str | None:
    if channels != 1 and not params.mono:
        return f"{channels} channels, needs mono (use --mono to down-mix)"
    if rate != params.sr and not params.resample:
        return f"sample rate {rate} Hz, needs sr={params.sr} (use --resample to convert)"
    usable = int(frames * params.sr / rate) if rate else 0
    if usable < params.nsamples:
        return f"{usable} samples, needs at least Nsamples={params.nsamples}"
    return None


def _check_hdf5_clip(ref: ClipRef, params: Params) -> str | None:
    import h5py

    with h5py.File(ref.source, "r") as f:
        sr, ns = int(f.attrs["sr"]), int(f.attrs["Nsamples"])
    return _check_format(sr, 1, ns, params)


def _short(e: Exception) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text.replace(" : ", ": ")


def preflight(index: DatasetIndex, params: Params, *, progress: bool = False) -> list:
    """Every problem of the input (scan problems and bad clips), without full decodes."""
    from tqdm.auto import tqdm

    problems = list(index.problems)
    if index.kind == "hdf5" and index.clips:
        reason = _check_hdf5_clip(index.clips[0], params)  # one header for all clips
        if reason:
            problems.append(Problem(index.path, reason))
        return problems
    for ref in tqdm(index.clips, desc="checking", unit="clip", disable=not progress, leave=False):
        reason = check_clip(ref, params)
        if reason:
            problems.append(Problem(ref.source, reason))
    return problems


# ----------------------------------------------------------------------------
# Loading


def load_clip(ref: ClipRef, params: Params) -> np.ndarray:
    """Read one clip as float32 of exactly ``params.nsamples`` samples.

    Samples are as the decoder returns them (16-bit PCM / 32768), never rescaled.
    Raises :class:`BadInputError` naming the file when it cannot be used.
    """
    if ref.column is not None:
        return _load_hdf5(ref, params)
    import soundfile as sf

    try:
        with sf.SoundFile(ref.source) as f:
            rate, channels = f.samplerate, f.channels
            reason = _NO_HEADER if f.format == "RAW" else _check_format(rate, channels, f.frames, params)
            if reason:
                raise BadInputError([Problem(ref.source, reason)])
            # Without resampling only the first Nsamples samples are decoded.
            frames = params.nsamples if rate == params.sr else -1
            y = f.read(frames=frames, dtype="float32", always_2d=True)
    except BadInputError:
        raise
    except Exception as e:
        raise BadInputError([Problem(ref.source, f"decoding failed ({_short(e)})")]) from None
    y = y.T  # (channels, samples)
    if channels > 1:
        y = y.mean(axis=0, keepdims=True)
    return _to_nsamples(y[0], rate, params, ref.source, "(the file is truncated or corrupt)")


def _load_hdf5(ref: ClipRef, params: Params) -> np.ndarray:
    import h5py

    try:
        with h5py.File(ref.source, "r") as f:
            rate = int(f.attrs["sr"])
            # Only the first Nsamples rows are read unless the clip is resampled.
            rows = params.nsamples if rate == params.sr else None
            y = f[ref.genre][:rows, ref.column]
    except Exception as e:
        raise BadInputError([Problem(ref.name, f"reading failed ({_short(e)})")]) from None
    return _to_nsamples(y, rate, params, ref.name)


def _to_nsamples(y: np.ndarray, rate: int, params: Params, name: str, why: str = "") -> np.ndarray:
    """Resample a mono clip decoded at ``rate`` to ``params.sr`` if needed, then keep ``Nsamples`` samples."""
    y = np.asarray(y, dtype=np.float32)
    if rate != params.sr:
        import librosa

        y = librosa.resample(y, orig_sr=rate, target_sr=params.sr)
    if y.shape[0] < params.nsamples:
        raise BadInputError([Problem(name, f"decoded {y.shape[0]} samples, needs at least "
                                           f"Nsamples={params.nsamples} {why}".rstrip())])
    return np.ascontiguousarray(y[: params.nsamples], dtype=np.float32)
