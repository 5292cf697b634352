"""Input format: an MTG-Jamendo ``.tsv`` (``data/autotagging.tsv``, its subsets, its splits) as downloaded.

Tab-separated, header ``TRACK_ID ARTIST_ID ALBUM_ID PATH DURATION TAGS``, one
row a track, its tags from the sixth field on (one field a tag,
``genre---punkrock``, ``mood/theme---happy``: category, three dashes, tag).
``PATH`` (``14/214.mp3``) is relative to the downloaded audio folder
(``--audio DIR``; without it, the TSV's folder).  Each clip keeps its tags as
written, in row order; the tracks are full length, so ``--crop center`` is the
natural choice.  Tags are not one genre each: the genres x clips grid cannot
hold them, and says so (``--layout clips`` stores them).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from ..exceptions import BadInputError, Problem
from . import audio
from .index import ClipRef, InputIndex, shown

NAME = "jamendo"
HEADER = ("TRACK_ID", "ARTIST_ID", "ALBUM_ID", "PATH", "DURATION", "TAGS")


class Jamendo(audio.AudioFiles):
    name = NAME
    description = "an MTG-Jamendo .tsv (TRACK_ID, ARTIST_ID, ALBUM_ID, PATH, DURATION, TAGS)"

    def can_open(self, path: Path) -> bool:
        """A file whose first line is MTG-Jamendo's header."""
        try:
            with open(path, "rb") as f:
                first = f.readline(4096)
        except OSError:
            return False
        return tuple(first.decode("utf-8", "replace").strip().split("\t")) == HEADER

    def index(self, path: Path, *, audio: str | None = None, layout: str = "grid", **_) -> InputIndex:
        return index(path, audio=audio, layout=layout)


FORMAT = Jamendo()


def index(path: Path, *, audio: str | None = None, layout: str = "grid") -> InputIndex:
    """Index an MTG-Jamendo TSV: one clip a row, in row order, with its tags; ``audio`` is the folder ``PATH``
    is relative to (the TSV's folder by default).  Every clip's label is the TSV's name (its tags are what
    tells them apart); only the clip layout (``layout="clips"``) takes them."""
    hint = "give an MTG-Jamendo .tsv as its repository has it (TRACK_ID ARTIST_ID ALBUM_ID PATH DURATION TAGS)"
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise BadInputError(
            [Problem(shown(path), f"cannot be read as a TSV ({getattr(e, 'strerror', None) or e})")], hint
        ) from None
    if not rows or tuple(h.strip() for h in rows[0]) != HEADER:
        raise BadInputError([Problem(shown(path), f"its header is not {' '.join(HEADER)}")], hint)
    base = Path(audio) if audio else path.parent
    seen: dict[str, int]  # track id -> its row
    problems, tracks, seen = [], [], {}
    for n, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < 5 or not row[0].strip() or not row[3].strip():
            problems.append(
                Problem(
                    f"{shown(path)}:{n}",
                    f"has {len(row)} field(s), needs at least TRACK_ID, ARTIST_ID, ALBUM_ID, PATH and DURATION",
                )
            )
            continue
        track, rel = row[0].strip(), row[3].strip()
        if track in seen:
            problems.append(Problem(f"{shown(path)}:{n}", f"{track} is listed twice (rows {seen[track]} and {n})"))
            continue
        seen[track] = n
        tags = tuple(t.strip() for t in row[5:] if t.strip())
        tracks.append((rel, tags))
    if problems:
        raise BadInputError(problems, hint)
    if not tracks:
        raise BadInputError([Problem(shown(path), "lists no track")], hint)
    if not any(os.path.lexists(base / rel) for rel, _ in tracks):
        raise BadInputError(
            [
                Problem(
                    shown(path),
                    f"none of the {len(tracks)} paths it lists exists in {shown(base)} (e.g. {tracks[0][0]})",
                )
            ],
            "give the folder the audio was downloaded to with --audio DIR (PATH is relative to it)",
        )
    group = path.stem
    clips = [
        ClipRef(0, c, group, str(base / rel), rel=rel, format=NAME, tags=tags) for c, (rel, tags) in enumerate(tracks)
    ]
    grid = Problem(
        shown(path),
        f"its {len(tracks)} track(s) carry tags (genre, instrument, mood/theme), not one "
        "genre each: the genres x clips grid cannot hold them; use --layout clips",
    )
    return InputIndex(str(path.resolve()), NAME, (group,), len(tracks), clips, [grid] if layout == "grid" else [])
