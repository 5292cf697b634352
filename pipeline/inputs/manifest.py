"""Input format: a manifest ``.csv``, for collections whose labels live in a table.

A header row, then one row per clip: its path (relative to the manifest's
folder, or absolute) and its label.  The delimiter is detected; the columns are
found by name (compared without case, spaces, hyphens or underscores) or named
with ``--path-column`` / ``--label-column``.  A label's clips keep the order of
their rows.
"""

from __future__ import annotations

import csv
import os
import unicodedata
from pathlib import Path

from ..exceptions import BadInputError, Problem
from . import audio
from .gtzan import HDF5_SIGNATURE
from .index import ClipRef, InputIndex, label, shown

NAME = "manifest"

#: Column names a manifest's path and label columns are looked for under (case-insensitive), in order.
PATH_COLUMNS = ("path", "filepath", "file_path", "filename", "file", "audio", "audio_path")
LABEL_COLUMNS = ("label", "genre", "genre_top", "class", "category")


def _not_utf8(e: UnicodeDecodeError) -> str:
    """Where a manifest stops being UTF-8: the byte, its line, and that line as Windows-1252 would read it."""
    data = e.object
    line = data[: e.start].count(b"\n") + 1
    text = data.splitlines()[line - 1] if data.splitlines() else b""
    seen = text.decode("cp1252", errors="replace").strip()
    return f"not UTF-8 text: byte 0x{data[e.start]:02x} at byte {e.start}, line {line} ({seen[:60]!r})"


def _encoding_fix(path: Path, data: bytes) -> str:
    """How to make the manifest (its bytes ``data``) UTF-8, naming the encoding it most likely has."""
    try:
        data.decode("cp1252")
        was, looks = "WINDOWS-1252", "it looks like Windows-1252 text (Excel's 'CSV' on Windows); "
    except UnicodeDecodeError:
        was, looks = "<its encoding>", ""
    return (
        f"{looks}save it as UTF-8 (Excel: 'CSV UTF-8'), or convert it: iconv -f {was} -t UTF-8 "
        f"{shown(path)} > {shown(path.with_name(path.stem + '-utf8.csv'))}"
    )


class Manifest(audio.AudioFiles):
    name = NAME
    description = "a manifest .csv (a path column and a label column)"

    def can_open(self, path: Path) -> bool:
        """A ``.csv`` that is not an HDF5 file, or a text file (no NUL in its first 4 KiB) whose first line is
        delimited: a table of clips named otherwise (``clips.txt``)."""
        if not path.is_file():
            return False
        try:
            with open(path, "rb") as f:
                head = f.read(4096)
        except OSError:
            return path.suffix.lower() == ".csv"  # refused by index(), with why it cannot be read
        if head.startswith(HDF5_SIGNATURE):
            return False
        if path.suffix.lower() == ".csv":  # whatever its encoding: index() names it if it is not UTF-8
            return True
        first = head.split(b"\n", 1)[0]
        return b"\0" not in head and any(d in first for d in (b",", b";", b"\t", b"|"))

    def index(self, path: Path, *, path_column: str | None = None, label_column: str | None = None, **_) -> InputIndex:
        return index(path, path_column=path_column, label_column=label_column)


FORMAT = Manifest()


def index(path: Path, *, path_column: str | None = None, label_column: str | None = None, **_) -> InputIndex:
    """A CSV with a header row, one row per clip: a path (relative to the CSV's folder) and a label."""
    hint = "fix the manifest: a header row, then one row per clip with its path and its label"
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            text = f.read()
        rows = list(csv.reader(text.splitlines(), _dialect(text)))
    except UnicodeDecodeError as e:
        raise BadInputError([Problem(str(path), _not_utf8(e))], _encoding_fix(path, e.object)) from None
    except (OSError, csv.Error) as e:
        raise BadInputError(
            [Problem(str(path), f"cannot be read as CSV ({getattr(e, 'strerror', None) or e})")], hint
        ) from None
    if not rows:
        raise BadInputError([Problem(str(path), "is empty")], hint)
    header = [h.strip() for h in rows[0]]
    cols = []
    for given, names, kind in ((path_column, PATH_COLUMNS, "path"), (label_column, LABEL_COLUMNS, "label")):
        wanted = [given] if given else list(names)
        found = [i for w in wanted for i, h in enumerate(header) if _column_key(h) == _column_key(w)]
        if not found:
            what = f"no column {given!r}" if given else f"no {kind} column (looked for {', '.join(names)})"
            raise BadInputError(
                [Problem(str(path), f"has {what}; its columns: {', '.join(header)}")],
                f"name the {kind} column with --{kind}-column",
            )
        cols.append(found[0])
    by_label: dict[str, list[tuple[str, str]]]  # label -> (path, as written)
    rows_of: dict[str, int]  # path -> its row
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
        raise BadInputError(
            [
                Problem(
                    str(path),
                    f"none of the {len(listed)} paths it lists exists relative to its "
                    f"folder {base} (e.g. {listed[0][1]})",
                )
            ],
            _where_are_they(base, listed),
        )
    labels = tuple(sorted(by_label))
    clips = [
        ClipRef(g, c, name, full, rel=rel, format=NAME)
        for g, name in enumerate(labels)
        for c, (full, rel) in enumerate(by_label[name])
    ]
    return InputIndex(str(path.resolve()), NAME, labels, max(len(v) for v in by_label.values()), clips)


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
            return (
                f"paths are read relative to the manifest's folder; {listed[0][1]} is at {example}: write the "
                f"paths that way (or move the manifest)"
            )
    return "paths are read relative to the manifest's folder (or give absolute paths)"
