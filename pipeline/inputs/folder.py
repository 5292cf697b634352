"""Input format: a genres folder ``ROOT/<genre>/<file>`` (GTZAN's layout).

Each sub-folder is a genre; its files with an audio extension are its clips,
those in its own sub-folders too (a library's ``Genre/Album/track``), sorted by
their path below the genre folder; anything else is ignored and named.  A
folder that holds no clip, or a download's wrapper around one
(``Data/genres_original``), gets a "did you mean" for the layouts downloads
have.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..exceptions import BadInputError, Problem
from . import audio
from .audio import is_audio_name
from .index import ClipRef, InputIndex, label, shown

NAME = "folder"


class Folder(audio.AudioFiles):
    name = NAME
    description = "a genres folder ROOT/<genre>/<file>"

    def can_open(self, path: Path) -> bool:
        return path.is_dir()

    def index(self, path: Path, **_) -> InputIndex:
        return index(path)


FORMAT = Folder()


def _scan(folder: Path, *, below: bool = False) -> tuple:
    """The audio files and the other entries of ``folder``, each sorted by path relative to it; OSError if it
    cannot be read.  ``below``: the audio files in its sub-folders too (an artist's or album's folder inside a
    genre), found without following linked folders; a hidden sub-folder is not entered (it is named)."""
    clips, other = [], []
    pending = [""]
    while pending:
        rel = pending.pop()
        with os.scandir(folder / rel) as it:
            entries = list(it)
        if rel and not entries:
            other.append(rel)  # an empty sub-folder is named, as a sub-folder was before the search went below
        for entry in entries:
            name = f"{rel}{entry.name}"
            if is_audio_name(entry.name):
                clips.append(name)  # whatever it is: pre-flight names a folder, FIFO or broken link
            elif below and not entry.name.startswith(".") and _is_dir(entry) and not entry.is_symlink():
                pending.append(name + "/")
            else:
                other.append(name + ("/" if _is_dir(entry) else ""))
    return sorted(clips), sorted(other)


def _scan_genres(root: Path, genres: list, *, below: bool) -> tuple:
    """``(files, ignored, problems)`` of the genre folders: :func:`_scan` of each, an unreadable one a problem."""
    ignored: list[str]
    files, ignored, problems = {}, [], []
    for genre in genres:
        try:
            files[genre], other = _scan(root / genre, below=below)
        except OSError as e:
            files[genre], other = [], []
            problems.append(Problem(shown(root / genre), f"cannot be read ({e.strerror})"))
        ignored.extend(f"{genre}/{name}" for name in other)
    return files, ignored, problems


def _is_download(root: Path, genres: list) -> bool:
    """Whether a folder whose genre folders hold no audio file directly is a download's wrapper (Kaggle's
    ``Data/genres_original``, or one folder around it) rather than a library of ``Genre/Album/track``."""
    named = any(g in ("genres_original", "genres") for g in genres)
    return (named or len(genres) == 1) and "did you mean" in _did_you_mean(root, genres, 0)


def index(root: Path, **_) -> InputIndex:
    """Index ``ROOT/<genre>/<file>``: each sub-folder a genre, its audio files (sorted by name) the clips."""
    try:
        with os.scandir(root) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as e:
        raise BadInputError(
            [Problem(shown(root), f"cannot be read ({e.strerror})")], "give a folder you can read"
        ) from None
    genres, ignored = [], []
    for entry in entries:
        if not entry.name.startswith(".") and _is_dir(entry):
            genres.append(entry.name)
        else:
            ignored.append(entry.name + ("/" if _is_dir(entry) else ""))
    files, other, problems = _scan_genres(root, genres, below=True)
    if not any("/" not in name for names in files.values() for name in names) and _is_download(root, genres):
        # no genre holds audio of its own, and this is a download's wrapper: the did-you-mean below, not one
        # genre holding a whole download (the one case scanned twice)
        files, other, problems = _scan_genres(root, genres, below=False)
    ignored.extend(other)
    if not any(files.values()):
        loose = sum(is_audio_name(e.name) and not _is_dir(e) for e in entries)  # audio files beside the genres
        why = _no_clips(genres, loose)
        unread = audio.unreadable(ignored)
        if unread:  # e.g. a folder of tracker modules, or of .m4a without PyAV: say what they are
            why = why.replace("holds no audio files", "holds no audio files it can read") + f": {unread}"
        raise BadInputError([Problem(shown(root), why)], _did_you_mean(root, genres, loose))
    nclips = max(len(n) for n in files.values())
    by_label: dict[str, list[str]] = {}
    for genre in genres:
        by_label.setdefault(label(genre), []).append(genre)
    for name, folders in by_label.items():
        if len(folders) > 1:  # e.g. café written once in NFC and once in NFD (as macOS writes it)
            problems.append(
                Problem(
                    shown(root),
                    f"genre folders {' and '.join(repr(f) for f in folders)} have the "
                    f"same name {name!r} once Unicode-normalized (NFC); merge or "
                    "rename them",
                )
            )
    genres = [folders[0] for folders in by_label.values()]
    genres.sort(key=label)
    clips = [
        ClipRef(g, c, label(genre), str(root / genre / name), rel=f"{genre}/{name}", format=NAME)
        for g, genre in enumerate(genres)
        for c, name in enumerate(files[genre])
    ]
    return InputIndex(str(root.resolve()), NAME, tuple(label(g) for g in genres), nclips, clips, problems, ignored)


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
    candidates = [root / g for g in sorted(genres, key=lambda g: (g not in preferred, g)) if _holds_genres(root / g)]
    if not candidates:  # one level deeper, e.g. a download's Data/genres_original under the folder given
        candidates = [root / g / s for g in genres for s in preferred if _holds_genres(root / g / s)]
    if candidates:
        return f"{layout}; did you mean {shown(candidates[0])}?"
    if not genres and loose:
        return (
            f"{layout}: put each genre's files in a folder of its own, or list the files with their "
            "labels in a manifest .csv (a path column and a label column) and run that"
        )
    return layout
