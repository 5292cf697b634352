"""Input format: an FMA audio folder as downloaded (``fma_small``, ``fma_medium``, ``fma_large``, ``fma_full``),
read with its ``fma_metadata/tracks.csv``.

``tracks.csv`` has two header rows (a group: ``album``, ``artist``, ``set``,
``track``; then the field: ``genre_top``, ``split``, ``subset``, ...) and a
third holding only ``track_id``; its text fields are quoted and hold commas,
quotes and newlines.  ``('set', 'subset')`` is ``small``, ``medium`` or
``large``, ordered: the folder ``fma_medium`` holds every track whose subset
is small or medium.  A track's audio is ``<first 3 digits>/<6-digit id>.mp3``.
Each clip's label is its ``('track', 'genre_top')``, its ``split`` its
``('set', 'split')``; clips are ordered by label, then by track id.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

from ..exceptions import BadInputError, ParameterError, Problem
from . import audio, checksums
from .index import ClipRef, InputIndex, label, shown

NAME = "fma"
#: The subsets in their order: a folder of one holds the tracks of every subset up to it.
SUBSETS = ("small", "medium", "large")
#: What ``--subset`` takes: the subsets and ``full`` (every track, as ``large``, its audio untrimmed).
CHOICES = (*SUBSETS, "full")
_FOLDER = re.compile(r"fma_(small|medium|large|full)")
_AUDIO = re.compile(r"(\d{6})\.mp3")
#: Files of the download that are not clips, and not worth a line.
_KNOWN = ("README.txt", "checksums")
#: The columns read, as (group, field).
_COLUMNS = {"subset": ("set", "subset"), "split": ("set", "split"), "genre_top": ("track", "genre_top")}


def metadata_of(folder: Path) -> Path | None:
    """The ``tracks.csv`` of an FMA audio folder: in ``fma_metadata`` beside it (as the downloads unzip), or
    inside it."""
    for candidate in (folder.parent / "fma_metadata" / "tracks.csv", folder / "fma_metadata" / "tracks.csv"):
        if candidate.is_file():
            return candidate
    return None


def _is_tracks_csv(path: Path) -> bool:
    """Whether ``path`` starts with tracks.csv's two header rows (groups, then fields)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = [next(csv.reader(f)), next(csv.reader(f))]
    except (OSError, UnicodeDecodeError, StopIteration, csv.Error):
        return False
    return all((g, k) in zip(*rows) for g, k in _COLUMNS.values())


class Fma(audio.AudioFiles):
    name = NAME
    description = "an FMA audio folder (fma_small, fma_medium, ...) with its fma_metadata/tracks.csv"
    verifies = True

    def can_open(self, path: Path) -> bool:
        if not (path.is_dir() and _FOLDER.fullmatch(path.name)):
            return False
        meta = metadata_of(path)
        return meta is not None and _is_tracks_csv(meta)

    def index(
        self,
        path: Path,
        *,
        layout: str = "grid",
        metadata: str | None = None,
        subset: str | None = None,
        verify: bool = False,
        **_,
    ) -> InputIndex:
        return index(path, layout=layout, metadata=metadata, subset=subset, verify=verify)


FORMAT = Fma()


def read_tracks(path: Path) -> dict:
    """``{track id: (subset, split, genre_top)}`` of ``tracks.csv`` (empty strings where a cell is empty)."""
    hint = "give the tracks.csv of fma_metadata.zip as it unzips (two header rows, then track_id)"
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            groups, fields = next(reader), next(reader)
            where = {
                name: list(zip(groups, fields)).index(key)
                for name, key in _COLUMNS.items()
                if key in zip(groups, fields)
            }
            lacking = [f"{g}.{k}" for name, (g, k) in _COLUMNS.items() if name not in where]
            if lacking:
                raise BadInputError(
                    [Problem(shown(path), f"has no column {', '.join(lacking)}: not FMA's tracks.csv")], hint
                )
            next(reader)  # the row naming the index: track_id
            out = {}
            for row in reader:
                if not row or not row[0].strip().isdigit():
                    continue
                out[int(row[0])] = tuple(row[i].strip() if i < len(row) else "" for i in where.values())
    except (OSError, UnicodeDecodeError, StopIteration, csv.Error) as e:
        raise BadInputError(
            [
                Problem(
                    shown(path),
                    f"cannot be read as FMA's tracks.csv ({getattr(e, 'strerror', None) or e or 'too short'})",
                )
            ],
            hint,
        ) from None
    return out


def _scan(folder: Path) -> tuple:
    """``({track id: path relative to folder}, ignored entries)`` of an FMA audio folder."""
    found, ignored = {}, []
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        if entry.is_dir() and entry.name.isdigit():
            with os.scandir(entry.path) as inner:
                for e in sorted(inner, key=lambda e: e.name):
                    m = _AUDIO.fullmatch(e.name)
                    if m:
                        found[int(m.group(1))] = f"{entry.name}/{e.name}"
                    else:
                        ignored.append(f"{entry.name}/{e.name}")
        elif entry.name not in _KNOWN and not entry.name.startswith("."):
            ignored.append(entry.name + ("/" if entry.is_dir() else ""))
    return found, ignored


def _listed(what: str, items: list) -> str:
    return f"{len(items)} {what} ({', '.join(items[:5])}{', ...' if len(items) > 5 else ''})"


def _rank(subset: str) -> int:
    """Which tracks a subset holds, as the number of :data:`SUBSETS` it spans less one (``full`` is ``large``)."""
    return SUBSETS.index("large" if subset == "full" else subset)


def given_metadata(metadata: str) -> Path:
    """``--metadata FILE``, checked once: a file that starts with tracks.csv's two header rows."""
    path = Path(metadata)
    if not path.is_file():
        why = "is a folder" if path.is_dir() else "no such file"
        raise ParameterError(f"--metadata {shown(path)}: {why}; give FMA's tracks.csv (fma_metadata/tracks.csv)")
    if not _is_tracks_csv(path):
        raise ParameterError(
            f"--metadata {shown(path)} is not FMA's tracks.csv (its first two rows do not name set.subset, "
            "set.split and track.genre_top); give fma_metadata/tracks.csv as fma_metadata.zip unzips"
        )
    return path


def _digests(folder: Path, found: dict) -> tuple:
    """``({track id: digest}, problems)`` of the found audio from the folder's ``checksums`` (for ``--verify``)."""
    listing = folder / "checksums"
    try:
        digests, bad = checksums.read(listing)
    except OSError as e:
        raise BadInputError(
            [Problem(shown(listing), f"cannot be read ({e.strerror})")], "leave --verify out, or fix the file"
        ) from None
    problems = []
    if bad:
        problems.append(
            Problem(
                shown(listing),
                _listed("line(s) are not sha1sum's '<40 hex digits>  <path>'", [str(n) for n in bad])
                + "; leave --verify out, or unzip the folder again",
            )
        )
    unlisted = [rel for rel in found.values() if rel not in digests]
    if unlisted:
        problems.append(
            Problem(
                shown(listing),
                _listed("audio file(s) here have no line in it, so --verify cannot check them", unlisted)
                + "; leave --verify out, or unzip the folder again",
            )
        )
    return {tid: digests.get(rel, ()) for tid, rel in found.items()}, problems


def index(
    folder: Path,
    *,
    layout: str = "grid",
    metadata: str | None = None,
    subset: str | None = None,
    verify: bool = False,
) -> InputIndex:
    """Index an FMA audio folder with its tracks.csv: the tracks of its subset (or of ``subset``, one it
    holds), labelled by ``genre_top``; in the clip layout the tracks without one too (label -1, after the
    labelled ones, by track id).  ``metadata``: the tracks.csv (else found beside the folder); ``verify``:
    each clip carries its sha1 from the folder's ``checksums``, checked as it is loaded.

    Audio of a subset the folder holds but ``subset`` leaves out (``fma_large`` run as ``medium``) is left
    out without a word; audio of no track, or of a track the folder's own subset does not hold, is a
    problem."""
    meta = given_metadata(metadata) if metadata else metadata_of(folder)
    if meta is None:
        raise BadInputError(
            [Problem(shown(folder), "has no fma_metadata/tracks.csv beside it")],
            "unzip fma_metadata.zip beside the audio folder, or give its tracks.csv with --metadata FILE",
        )
    named = _FOLDER.fullmatch(folder.name)
    if named is None:  # --format fma on a folder renamed: its name is what says the subset it holds
        raise BadInputError(
            [Problem(shown(folder), "is not named fma_small, fma_medium, fma_large or fma_full (its subset)")],
            "give the audio folder under its name as it unzips",
        )
    held = named.group(1)
    subset = subset or held
    if subset == "full" and held != "full":
        raise ParameterError(
            f"--subset full is fma_full's untrimmed audio, but {shown(folder)} holds fma_{held}'s 30-s clips; "
            "give the fma_full folder, or --subset large for every track of this one"
        )
    if _rank(subset) > _rank(held):
        raise ParameterError(
            f"--subset {subset} holds more tracks than {shown(folder)} (fma_{held} holds "
            f"{', '.join(SUBSETS[: _rank(held) + 1])}); give the fma_{subset} folder, or a --subset up to {held}"
        )
    if verify and not (folder / "checksums").is_file():
        raise ParameterError(
            f"--verify checks each clip against its folder's checksums file, but {shown(folder)} has no "
            "checksums; leave --verify out, or unzip the folder again with its checksums"
        )
    listed = read_tracks(meta)
    tracks = {tid: row for tid, row in listed.items() if row[0] in SUBSETS and _rank(row[0]) <= _rank(subset)}
    try:
        found, ignored = _scan(folder)
    except OSError as e:
        raise BadInputError(
            [Problem(shown(folder), f"cannot be read ({e.strerror})")], "give a folder you can read"
        ) from None
    problems = []
    missing = sorted(t for t in tracks if t not in found)
    if missing:
        problems.append(
            Problem(
                shown(folder),
                _listed(
                    f"track(s) of subset {subset} in {shown(meta)} have no audio file here",
                    [f"{t:06d}"[:3] + f"/{t:06d}.mp3" for t in missing],
                )
                + "; download or unzip them again",
            )
        )
    # audio of a track the folder holds but the subset leaves out: expected (fma_large run as medium)
    left_out = {
        t
        for t in found
        if t not in tracks and listed.get(t, ("",))[0] in SUBSETS and _rank(listed[t][0]) <= _rank(held)
    }
    unlisted = sorted(t for t in found if t not in tracks and t not in left_out)
    if unlisted:
        problems.append(
            Problem(
                shown(folder),
                _listed(
                    f"audio file(s) here are not tracks of subset {held} in {shown(meta)}",
                    [found[t] for t in unlisted],
                )
                + "; remove them, or give the folder of their subset",
            )
        )
    digests: dict = {}
    if verify:
        digests, unverifiable = _digests(folder, {t: found[t] for t in tracks if t in found})
        problems += unverifiable
    unlabelled = sorted(t for t in tracks if t in found and not tracks[t][2])
    if unlabelled and layout == "grid":
        problems.append(
            Problem(
                shown(folder),
                _listed("track(s) have no genre_top, so no label in the grid", [f"{t:06d}" for t in unlabelled])
                + "; use --layout clips (they get label -1)",
            )
        )
    by_label: dict[str, list[tuple[int, str]]] = {}
    for tid in sorted(tracks):
        _, split, genre = tracks[tid]
        if tid in found and genre:
            by_label.setdefault(label(genre), []).append((tid, split))
    unlabelled = [(tid, tracks[tid][1]) for tid in unlabelled] if layout == "clips" else []
    if not by_label and not unlabelled:
        raise BadInputError(
            problems or [Problem(shown(folder), f"holds no track of subset {subset} with a genre_top")],
            "give an FMA audio folder with its fma_metadata/tracks.csv",
        )
    labels = tuple(sorted(by_label))

    def ref(g: int, c: int, name: str, tid: int, split: str) -> ClipRef:
        rel = found[tid]
        return ClipRef(g, c, name, str(folder / rel), rel=rel, format=NAME, split=split, digest=digests.get(tid, ()))

    clips = [
        ref(g, c, name, tid, split) for g, name in enumerate(labels) for c, (tid, split) in enumerate(by_label[name])
    ]
    clips += [ref(-1, c, "", tid, split) for c, (tid, split) in enumerate(unlabelled)]
    return InputIndex(
        str(folder.resolve()),
        NAME,
        labels,
        max(len(v) for v in [*by_label.values(), unlabelled]),
        clips,
        problems,
        ignored,
        subset=subset,
        metadata=str(meta.resolve()),
    )
