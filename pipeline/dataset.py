"""The dataset index and clip loading (SPEC section 1).

An input is a GTZAN-style folder ``ROOT/<genre>/<file>``, a ``gtzan.hdf5``
(one float32 dataset per genre, shape ``(Nsamples, Nclips)``) or a manifest
CSV (one row per clip: a path column and a label column).
:func:`open_index` turns any of them into a :class:`DatasetIndex`;
:func:`preflight` checks every clip cheaply (headers, not full decodes);
:func:`load_clip` reads one clip as float32 of exactly ``Nsamples`` samples.

Order, the same for every kind of input: genres (labels) sorted by name
(code-point order); in a folder, a genre's clips sorted by file name, so
``blues.00054.wav`` fills clip slot 54 of ``blues`` when the files are
numbered from 0; in a manifest, a label's clips in the order of their rows.
"""

from __future__ import annotations

import csv
import errno
import functools
import hashlib
import json
import os
import stat
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .exceptions import BadInputError, Problem, escaped
from .params import Params

GTZAN_ATTRS = ("Ngenres", "Nclips", "sr", "Nsamples")

#: File extensions of the libsndfile formats, where they are not the format's name in lower case.
_EXTENSIONS = {"AIFF": ("aif", "aiff", "aifc"), "AU": ("au", "snd"), "IRCAM": ("sf", "ircam"),
               "NIST": ("nist", "sph"), "OGG": ("ogg", "oga", "opus"), "SVX": ("svx", "iff", "8svx"),
               "WAVEX": ("wav",), "MPC2K": ("mpc2k",)}
#: libsndfile formats that are not taken as clips: headerless bytes, and MATLAB/Octave data files
#: (a collection's .mat feature files are not recordings).
_NOT_CLIPS = ("RAW", "MAT4", "MAT5")

#: Column names a manifest's path and label columns are looked for under (case-insensitive), in order.
PATH_COLUMNS = ("path", "filepath", "file_path", "filename", "file", "audio", "audio_path")
LABEL_COLUMNS = ("label", "genre", "genre_top", "class", "category")

#: Input samples decoded beyond what the kept span needs when a clip is resampled: soxr's
#: filter and block processing (librosa's default 'soxr_hq') need at most 7,000 extra samples
#: at 192 kHz and 0.12 s at 8 kHz in measurements; one second plus 16,384 samples is kept.
RESAMPLE_MARGIN_SECONDS = 1.0
RESAMPLE_MARGIN_SAMPLES = 16384


@functools.lru_cache(maxsize=1)
def audio_extensions() -> frozenset:
    """The file extensions (lower case, no dot) of the audio formats the installed libsndfile reads."""
    import soundfile as sf

    exts = set()
    for fmt in sf.available_formats():
        if fmt not in _NOT_CLIPS:
            exts.update(_EXTENSIONS.get(fmt, (fmt.lower(),)))
    return frozenset(exts)


def is_audio_name(name: str) -> bool:
    """True for a visible file name with an audio extension (case-insensitive)."""
    return not name.startswith(".") and Path(name).suffix[1:].lower() in audio_extensions()


def shown(path) -> str:
    """A path as a message shows it, whatever bytes its name holds (control characters escaped)."""
    return escaped(os.fsencode(str(path)).decode("utf-8", "backslashreplace"))


def label(name: str) -> str:
    """A genre name as a label: NFC, so a folder named on macOS (NFD) and the same name typed are one genre."""
    return unicodedata.normalize("NFC", name)


@dataclass(frozen=True)
class ClipRef:
    """Where one clip lives and which output slot ``(g, c)`` it fills."""

    g: int
    c: int
    genre: str
    source: str  # the audio file, or the gtzan.hdf5 file
    column: int | None = None  # the column in gtzan.hdf5, None for audio files
    rel: str = ""  # the slot's ``source`` entry: the path relative to the input, or ``<genre>[:, <column>]``

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
    kind: str  # "folder", "hdf5" or "manifest"
    labels: tuple
    nclips: int
    clips: list = field(default_factory=list)
    problems: list = field(default_factory=list)  # found while scanning
    ignored: list = field(default_factory=list)  # entries of a folder that are not clips, relative to it
    samples: np.ndarray | None = None  # each slot's own samples [shape=(genres, clips)], set by preflight

    @property
    def ngenres(self) -> int:
        return len(self.labels)

    def sources(self) -> np.ndarray:
        """Each slot's ``source`` entry [shape=(genres, clips)], ``""`` for a missing slot."""
        out = np.full((self.ngenres, self.nclips), "", dtype=object)
        for ref in self.clips:
            out[ref.g, ref.c] = ref.rel
        return out

    def missing(self) -> list:
        """The slots no clip fills (genres with fewer clips, allowed by ``--pad``), as ``(g, c)``."""
        present = {(r.g, r.c) for r in self.clips}
        return [(g, c) for g in range(self.ngenres) for c in range(self.nclips) if (g, c) not in present]

    def stamps(self) -> dict:
        """Each input file's identity, ``{name relative to the input: [size, mtime_ns]}`` (None if unreadable):
        saved with the store, so that a later run names the files that changed."""
        out = {}
        for ref in self.clips:
            key = ref.rel if ref.column is None else Path(ref.source).name
            if key not in out:
                try:
                    st = os.stat(ref.source)
                    out[key] = [st.st_size, st.st_mtime_ns]
                except OSError:
                    out[key] = None
        return out

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
            try:
                st = os.stat(ref.source)
                ident = [ref.g, ref.c, ref.rel, st.st_size, st.st_mtime_ns]
            except OSError:
                ident = [ref.g, ref.c, ref.rel, None, None]
            h.update(json.dumps(ident).encode())
        return h.hexdigest()[:32]


def open_index(path, *, pad: bool = False, path_column: str | None = None,
               label_column: str | None = None) -> DatasetIndex:
    """Index a genres folder, a ``gtzan.hdf5`` or a manifest CSV.

    ``pad`` allows genres of different sizes (the shorter ones' last slots are
    missing); without it they are a problem.  ``path_column`` and
    ``label_column`` name a manifest's columns (default: the first of
    :data:`PATH_COLUMNS` and :data:`LABEL_COLUMNS` it has).

    Raises :class:`BadInputError` for a missing path, a layout that cannot be
    read at all, or an input holding no clip; per-clip problems are checked by
    :func:`preflight`.
    """
    p = Path(path)
    if not p.exists():
        raise BadInputError([Problem(str(p), "no such file or folder")],
                            "give a GTZAN-style folder ROOT/<genre>/<file>, a gtzan.hdf5 or a manifest .csv")
    if p.is_dir():
        index = _index_folder(p)
    elif p.suffix.lower() == ".csv":
        index = _index_manifest(p, path_column, label_column)
    else:
        index = _index_hdf5(p)
    _check_sizes(index, pad)
    _check_names(index)
    return index


def _scan(folder: Path) -> tuple:
    """The audio files and the other entries of ``folder``, each sorted by name; OSError if it cannot be read."""
    clips, other = [], []
    with os.scandir(folder) as it:
        for entry in it:
            if is_audio_name(entry.name):
                clips.append(entry.name)  # whatever it is: pre-flight names a folder, FIFO or broken link
            else:
                other.append(entry.name + ("/" if _is_dir(entry) else ""))
    return sorted(clips), sorted(other)


def _index_folder(root: Path) -> DatasetIndex:
    try:
        with os.scandir(root) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as e:
        raise BadInputError([Problem(shown(root), f"cannot be read ({e.strerror})")],
                            "give a folder you can read") from None
    genres, ignored, problems, files = [], [], [], {}
    for entry in entries:
        if not entry.name.startswith(".") and _is_dir(entry):
            genres.append(entry.name)
        else:
            ignored.append(entry.name + ("/" if _is_dir(entry) else ""))
    for genre in genres:
        try:
            files[genre], other = _scan(root / genre)
        except OSError as e:
            files[genre], other = [], []
            problems.append(Problem(shown(root / genre), f"cannot be read ({e.strerror})"))
        ignored.extend(f"{genre}/{name}" for name in other)
    if not any(files.values()):
        loose = sum(is_audio_name(e.name) and not _is_dir(e) for e in entries)  # audio files beside the genres
        raise BadInputError([Problem(shown(root), _no_clips(genres, loose))], _did_you_mean(root, genres, loose))
    nclips = max(len(n) for n in files.values())
    by_label = {}
    for genre in genres:
        by_label.setdefault(label(genre), []).append(genre)
    for name, folders in by_label.items():
        if len(folders) > 1:  # e.g. café written once in NFC and once in NFD (as macOS writes it)
            problems.append(Problem(shown(root), f"genre folders {' and '.join(repr(f) for f in folders)} have the "
                                                 f"same name {name!r} once Unicode-normalized (NFC); merge or "
                                                 "rename them"))
    genres = [folders[0] for folders in by_label.values()]
    genres.sort(key=label)
    clips = [ClipRef(g, c, label(genre), str(root / genre / name), rel=f"{genre}/{name}")
             for g, genre in enumerate(genres) for c, name in enumerate(files[genre])]
    return DatasetIndex(str(root.resolve()), "folder", tuple(label(g) for g in genres), nclips, clips, problems,
                        ignored)


def _is_dir(entry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _no_clips(genres: list, loose: int) -> str:
    if not genres:
        if loose:
            return f"holds {loose} audio file(s) but no genre sub-folders"
        return "holds no genre sub-folders"
    return f"holds no audio files in its sub-folder(s) {', '.join(genres[:5])}{', ...' if len(genres) > 5 else ''}"


def _holds_genres(folder: Path) -> bool:
    """True if some sub-folder of ``folder`` holds an audio file."""
    try:
        with os.scandir(folder) as it:
            subs = [e for e in it if not e.name.startswith(".") and _is_dir(e)]
        return any(any(is_audio_name(n) for n in os.listdir(s.path)) for s in subs)
    except OSError:
        return False


def _did_you_mean(root: Path, genres: list, loose: int) -> str:
    """The hint for an input folder with no clip: the layouts users have."""
    layout = "expected ROOT/<genre>/<file>"
    preferred = ("genres_original", "genres")
    candidates = [root / g for g in sorted(genres, key=lambda g: (g not in preferred, g))
                  if _holds_genres(root / g)]
    if not candidates:  # one level deeper, e.g. a download's Data/genres_original under the folder given
        candidates = [root / g / s for g in genres for s in preferred if _holds_genres(root / g / s)]
    if candidates:
        return f"{layout}; did you mean {shown(candidates[0])}?"
    if not genres and loose:
        return (f"{layout}: put each genre's files in a folder of its own, or list the files with their "
                "labels in a manifest .csv (a path column and a label column) and run that")
    return layout


def _index_manifest(path: Path, path_column: str | None, label_column: str | None) -> DatasetIndex:
    """A CSV with a header row, one row per clip: a path (relative to the CSV's folder) and a label."""
    hint = "fix the manifest: a header row, then one row per clip with its path and its label"
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            text = f.read()
        rows = list(csv.reader(text.splitlines(), _dialect(text)))
    except UnicodeDecodeError as e:
        raise BadInputError([Problem(str(path), f"not UTF-8 text ({e.reason} at byte {e.start})")], hint) from None
    except (OSError, csv.Error) as e:
        raise BadInputError([Problem(str(path), f"cannot be read as CSV ({getattr(e, 'strerror', None) or e})")],
                            hint) from None
    if not rows:
        raise BadInputError([Problem(str(path), "is empty")], hint)
    header = [h.strip() for h in rows[0]]
    cols = []
    for given, names, kind in ((path_column, PATH_COLUMNS, "path"), (label_column, LABEL_COLUMNS, "label")):
        wanted = [given] if given else list(names)
        found = [i for w in wanted for i, h in enumerate(header) if _column_key(h) == _column_key(w)]
        if not found:
            what = f"no column {given!r}" if given else f"no {kind} column (looked for {', '.join(names)})"
            raise BadInputError([Problem(str(path), f"has {what}; its columns: {', '.join(header)}")],
                                f"name the {kind} column with --{kind}-column")
        cols.append(found[0])
    problems, by_label, rows_of = [], {}, {}
    base = path.parent
    for n, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue  # a blank line
        cells = [row[i].strip() if i < len(row) else "" for i in cols]
        if not all(cells):
            problems.append(Problem(f"{path}:{n}", f"empty {'path' if not cells[0] else 'label'}"))
            continue
        rel, name = cells
        full = os.path.normpath(base / rel)
        if full in rows_of:
            problems.append(Problem(f"{path}:{n}", f"{rel} is listed twice (rows {rows_of[full]} and {n})"))
            continue
        rows_of[full] = n
        by_label.setdefault(label(name), []).append((full, rel))
    if problems:
        raise BadInputError(problems, hint)
    if not by_label:
        raise BadInputError([Problem(str(path), "lists no clip")], hint)
    listed = [item for items in by_label.values() for item in items]
    if not any(os.path.lexists(full) for full, _ in listed):
        raise BadInputError([Problem(str(path), f"none of the {len(listed)} paths it lists exists relative to its "
                                                f"folder {base} (e.g. {listed[0][1]})")], _where_are_they(base, listed))
    labels = tuple(sorted(by_label))
    clips = [ClipRef(g, c, name, full, rel=rel)
             for g, name in enumerate(labels) for c, (full, rel) in enumerate(by_label[name])]
    return DatasetIndex(str(path.resolve()), "manifest", labels, max(len(v) for v in by_label.values()), clips)


def _column_key(name: str) -> str:
    """A column name as it is compared: case, spaces, underscores and hyphens do not count (``File Path``
    is ``file_path``)."""
    return "".join(ch for ch in unicodedata.normalize("NFC", name).casefold() if ch not in " _-\t")


def _dialect(text: str):
    """The CSV dialect of a manifest: its delimiter (``,``, ``;`` as spreadsheets write it in much of Europe,
    a tab or ``|``) detected from its first lines; a plain comma-separated file if nothing else fits."""
    sample = "\n".join(text.splitlines()[:50])
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        return csv.excel


def _where_are_they(base: Path, listed: list) -> str:
    """The hint for a manifest whose paths all miss: where its first file is, if it is under the manifest's folder."""
    name = os.path.basename(listed[0][1])
    for pattern in ("*/", "*/*/", "*/*/*/"):
        found = sorted(base.glob(pattern + name))
        if found:
            example = found[0].relative_to(base).as_posix()
            return (f"paths are read relative to the manifest's folder; {listed[0][1]} is at {example}: write the "
                    f"paths that way (or move the manifest)")
    return "paths are read relative to the manifest's folder (or give absolute paths)"


def _check_sizes(index: DatasetIndex, pad: bool) -> None:
    """Genres of different sizes (an empty genre folder among them) are a problem, unless ``pad`` allows them."""
    if pad:
        return
    counts = {}
    for ref in index.clips:
        counts[ref.genre] = counts.get(ref.genre, 0) + 1
    broken = {p.path for p in index.problems}  # an unreadable genre folder is said once, as such
    sized = [g for g in index.labels if shown(Path(index.path) / g) not in broken]
    for genre in sized:
        if not counts.get(genre):  # only a folder can hold a genre without clips
            index.problems.append(Problem(shown(Path(index.path) / genre), "empty genre folder: holds no audio files"))
    if len({counts.get(g, 0) for g in sized}) > 1:
        detail = ", ".join(f"{g}={counts.get(g, 0)}" for g in sized)
        index.problems.append(Problem(shown(index.path), f"genres hold unequal numbers of clips ({detail}); use "
                                                         "--pad to allow it (the missing slots are flagged invalid)"))


def _check_names(index: DatasetIndex) -> None:
    """Every label and source entry must be storable: UTF-8 text (both stores), no NUL (HDF5)."""
    why = _unstorable(index.path)
    if why:
        index.problems.append(Problem(shown(index.path), f"the input's path {why}; rename or move it"))
    for label in index.labels:
        why = _unstorable(label)
        if why:
            index.problems.append(Problem(shown(Path(index.path) / label) if index.kind == "folder" else shown(label),
                                          f"genre name {why}; rename it"))
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


def _index_hdf5(path: Path) -> DatasetIndex:
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise BadInputError([Problem(str(path), f"not a folder, a manifest .csv or a readable HDF5 file ({e})")],
                            "give a GTZAN-style folder, a manifest .csv or a gtzan.hdf5 written by "
                            "'audioprep ingest'") from None
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
        if not problems and (not genres or nc == 0):
            problems.append(Problem(str(path), "holds no clip (no genre dataset, or Nclips=0)"))
        if problems:
            raise BadInputError(problems, "re-create it with 'audioprep ingest GENRES_DIR -o gtzan.hdf5'")
    clips = [ClipRef(g, c, genre, str(path.resolve()), c, rel=f"{genre}[:, {c}]")
             for g, genre in enumerate(genres) for c in range(nc)]
    return DatasetIndex(str(path.resolve()), "hdf5", tuple(genres), nc, clips)


# ----------------------------------------------------------------------------
# Pre-flight: cheap per-clip checks


def check_clip(ref: ClipRef, params: Params) -> str | None:
    """The reason ``ref`` is a bad clip, from its header alone; None if it looks fine."""
    return inspect_clip(ref, params)[0]


def inspect_clip(ref: ClipRef, params: Params) -> tuple:
    """``(reason, samples)`` from ``ref``'s header alone: why it is a bad clip (None if it looks fine), and
    how many of its ``Nsamples`` slot samples are its own (:func:`clip_samples`; 0 for a bad clip)."""
    if ref.column is not None:
        return _check_hdf5_clip(ref, params)
    import soundfile as sf

    why = _not_a_file(ref.source)
    if why:
        return why, 0
    if os.path.getsize(ref.source) == 0:
        return "empty file (0 bytes)", 0
    try:
        info = sf.info(ref.source)
    except Exception as e:  # libsndfile says why in its own words, when it says anything useful
        return undecodable(ref.source, e), 0
    if info.format == "RAW":
        return _NO_HEADER, 0
    reason = _check_format(info.samplerate, info.channels, info.frames, params)
    return reason, 0 if reason else clip_samples(info.frames, info.samplerate, params)


def clip_samples(frames: int, rate: int, params: Params) -> int:
    """How many samples of an ``Nsamples`` slot a clip of ``frames`` samples at ``rate`` fills (the rest is
    zero with ``pad_short``): ``frames``, or as many as resampling to ``sr`` gives (librosa: the ceiling of
    ``frames * sr / rate``), at most ``Nsamples``."""
    n = frames if rate == params.sr else -(-frames * params.sr // rate)
    return int(min(n, params.nsamples))


def _not_a_file(path: str) -> str | None:
    """Why ``path`` cannot be opened as a clip (a folder, a FIFO, a broken link, ...); None for a regular file.

    Checked before any open: opening a FIFO would wait for a writer forever.
    """
    try:
        st = os.stat(path)
    except OSError as e:
        if os.path.islink(path) and not os.path.exists(path) and e.errno != errno.ELOOP:
            return f"broken symbolic link (to {shown(os.readlink(path))})"
        if e.errno == errno.ELOOP:
            return "symbolic link loop (a link that leads back to itself)"
        return f"cannot be read ({e.strerror})"
    if stat.S_ISDIR(st.st_mode):
        return "is a folder, not an audio file"
    if not stat.S_ISREG(st.st_mode):
        kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode) else "a device"
        return f"is {kind}, not a regular file"
    if not os.access(path, os.R_OK):
        return "cannot be read (Permission denied)"
    return None


# libsndfile reads any headerless file ending in .au as raw 8 kHz u-law, so
# garbage would pass as audio; a usable clip always has a header.
_NO_HEADER = "not a decodable audio file (no audio header found)"


def _check_format(rate: int, channels: int, frames: int, params: Params) -> str | None:
    """Every way a clip's format breaks the rules, in one line, with the options that fix it."""
    found, needs, fixes = [], [], []
    if channels != 1 and not params.mono:
        found.append(f"{channels} channels")
        needs.append("mono")
        fixes.append("--mono")
    if rate != params.sr and not params.resample:
        found.append(f"sample rate {rate} Hz")
        needs.append(f"sr={params.sr}")
        fixes.append("--resample")
    seconds = frames / rate if rate else 0.0
    short = (int(frames * params.sr / rate) if rate else 0) < params.nsamples
    if frames <= 0:
        found.append("no samples (an empty recording)")
        needs.append("at least one sample")
    elif short and not params.pad_short:
        found.append(f"{seconds:.2f} s long ({frames} samples at {rate} Hz)")
        needs.append(f"at least Nsamples={params.nsamples} samples at {params.sr} Hz "
                     f"({params.nsamples / params.sr:.2f} s)")
        fixes.append("--pad-short")
    if not found:
        return None
    text = f"{_and(found)}; needs {_and(needs)}"
    if not fixes:
        return text
    shorter = " to keep it zero-padded, or a smaller --nsamples" if "--pad-short" in fixes else ""
    return text + f" (use {' '.join(fixes)}{shorter})"


def _and(items: list) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _check_hdf5_clip(ref: ClipRef, params: Params) -> str | None:
    import h5py

    with h5py.File(ref.source, "r") as f:
        sr, ns = int(f.attrs["sr"]), int(f.attrs["Nsamples"])
    reason = _check_format(sr, 1, ns, params)
    return reason, 0 if reason else clip_samples(ns, sr, params)


def undecodable(path: str, e: Exception) -> str:
    """Why libsndfile could not open the regular file ``path``, in words about the file.

    libsndfile's own text is kept when it names the problem; it is dropped when
    it is empty or says the file does not exist (it does: it was checked).
    """
    text = _short(e)
    empty = text.endswith(":") or "does not exist or is not a regular file" in text
    try:
        with open(path, "rb") as f:
            head = f.read(10)
        size = os.path.getsize(path)
    except OSError:
        head, size = b"", 0
    if head[:3] == b"ID3" and len(head) == 10:
        tag = 10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(head[6:10]))
        if size - tag < 128:  # nothing but the tag (and at most an ID3v1 trailer)
            return f"holds an ID3 tag ({tag} bytes) but no audio: an MP3 without MPEG frames"
        return f"an MP3 whose audio cannot be decoded ({'no MPEG frame found' if empty else text})"
    if empty:
        return "not a decodable audio file (its content is no audio format libsndfile reads)"
    return f"not a decodable audio file ({text})"


def _short(e: Exception) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text.replace(" : ", ": ")


def preflight(index: DatasetIndex, params: Params, *, progress: bool = False) -> list:
    """Every problem of the input (scan problems and bad clips), without full decodes."""
    from .progress import bar

    problems = list(index.problems)
    index.samples = np.zeros((index.ngenres, index.nclips), dtype=np.int64)
    if index.kind == "hdf5" and index.clips:
        reason, n = _check_hdf5_clip(index.clips[0], params)  # one header for all clips
        if reason:
            problems.append(Problem(index.path, reason))
        for ref in index.clips:
            index.samples[ref.g, ref.c] = n
        return problems
    known = {p.path for p in problems}
    for ref in bar(index.clips, desc="checking", enabled=progress, leave=False):
        if shown(ref.source) in known:
            continue
        reason, index.samples[ref.g, ref.c] = inspect_clip(ref, params)
        if reason:
            problems.append(Problem(shown(ref.source), reason))
    return problems


# ----------------------------------------------------------------------------
# Loading


def load_clip(ref: ClipRef, params: Params) -> np.ndarray:
    """Read one clip as float32 of exactly ``params.nsamples`` samples.

    Samples are as the decoder returns them (16-bit PCM / 32768), never
    rescaled.  Only the kept span is decoded: ``Nsamples`` samples, or when
    resampling the input samples they come from plus the resampler's margin
    (:func:`decode_frames`), which gives the same bits as decoding the whole
    file.  Raises :class:`BadInputError` naming the file when it cannot be
    used, non-finite samples (NaN, Inf) included.
    """
    if ref.column is not None:
        return _load_hdf5(ref, params)
    import soundfile as sf

    why = _not_a_file(ref.source)
    if why:
        raise BadInputError([Problem(shown(ref.source), why)])
    try:
        with sf.SoundFile(ref.source) as f:
            rate, channels = f.samplerate, f.channels
            reason = _NO_HEADER if f.format == "RAW" else _check_format(rate, channels, f.frames, params)
            if reason:
                raise BadInputError([Problem(shown(ref.source), reason)])
            y = f.read(frames=decode_frames(rate, params), dtype="float32", always_2d=True)
    except BadInputError:
        raise
    except Exception as e:
        raise BadInputError([Problem(shown(ref.source), f"decoding failed ({_short(e)})")]) from None
    y = y.T  # (channels, samples)
    if channels > 1:
        y = y.mean(axis=0, keepdims=True)
    return _to_nsamples(y[0], rate, params, shown(ref.source), "(the file is truncated or corrupt)",
                        frames=f.frames)


def decode_frames(rate: int, params: Params) -> int:
    """How many samples at ``rate`` to decode for a clip of ``Nsamples`` samples at ``sr``.

    ``Nsamples`` at the target rate; when resampling, the input span those
    samples come from plus :data:`RESAMPLE_MARGIN_SECONDS` and
    :data:`RESAMPLE_MARGIN_SAMPLES`, beyond which the resampler's output
    over the kept span no longer changes (tested bit for bit).
    """
    if rate == params.sr:
        return params.nsamples
    span = -(-params.nsamples * rate // params.sr)  # ceil
    return span + int(RESAMPLE_MARGIN_SECONDS * rate) + RESAMPLE_MARGIN_SAMPLES


def _load_hdf5(ref: ClipRef, params: Params) -> np.ndarray:
    import h5py

    try:
        with h5py.File(ref.source, "r") as f:
            rate = int(f.attrs["sr"])
            d = f[ref.genre]
            y = d[:decode_frames(rate, params), ref.column]
            frames = d.shape[0]
    except Exception as e:
        raise BadInputError([Problem(ref.name, f"reading failed ({_short(e)})")]) from None
    return _to_nsamples(y, rate, params, ref.name, frames=frames)


def _to_nsamples(y: np.ndarray, rate: int, params: Params, name: str, why: str = "", *,
                 frames: int) -> np.ndarray:
    """Resample a mono clip decoded at ``rate`` to ``params.sr`` if needed, then keep ``Nsamples`` samples
    (zero-padded to them with ``pad_short`` if the clip, ``frames`` long by its header, is shorter)."""
    y = np.asarray(y, dtype=np.float32)
    finite = np.isfinite(y[: decode_frames(rate, params)])
    if not finite.all():
        first = int(np.argmin(finite))
        raise BadInputError([Problem(name, f"holds {int((~finite).sum())} non-finite sample(s) (NaN or Inf), "
                                           f"the first at {first / rate:.3f} s; fix or remove the file")])
    if rate != params.sr:
        import librosa

        y = librosa.resample(y, orig_sr=rate, target_sr=params.sr)
    if params.pad_short and y.shape[0] < params.nsamples:
        expected = clip_samples(frames, rate, params)
        if y.shape[0] < expected:  # the slot's recorded length (its header's) must be the truth
            raise BadInputError([Problem(name, f"decoded {y.shape[0]} samples where its header promises "
                                               f"{expected} {why}".rstrip())])
        y = np.concatenate([y[:expected], np.zeros(params.nsamples - expected, dtype=y.dtype)])
    if y.shape[0] < params.nsamples:
        raise BadInputError([Problem(name, f"decoded {y.shape[0]} samples, needs at least "
                                           f"Nsamples={params.nsamples} {why}".rstrip())])
    return np.ascontiguousarray(y[: params.nsamples], dtype=np.float32)
