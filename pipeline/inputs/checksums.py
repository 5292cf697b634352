"""Checksums a collection lists for its files (``sha1sum``'s format), and checking a clip against its own.

A format that has such a list (FMA's ``checksums``) puts each clip's expected
digest into its :class:`~pipeline.inputs.index.ClipRef` (``digest``: the
algorithm, the hex digest, the file that lists it) when a run asks for
``--verify``; :func:`verify` checks it in the task that loads the clip (a
worker, not the driver), whatever the format, and a mismatch makes that clip a
bad clip like any other.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from ..exceptions import BadInputError, Problem
from .index import ClipRef, shown

#: A line of ``sha1sum`` (and ``md5sum``, ``sha256sum``): the hex digest, two spaces (or a space and ``*``,
#: binary mode), the path relative to the folder it was run in.
_LINE = re.compile(r"([0-9a-fA-F]{32,128}) [ *](.+)")
#: The algorithms by hex digest length.
_BY_LENGTH = {32: "md5", 40: "sha1", 64: "sha256", 128: "sha512"}
_BLOCK = 1 << 20


def read(path: Path) -> tuple:
    """``({relative path: (algorithm, hex digest, shown path of the list)}, [numbers of the lines that are not
    sha1sum's])`` of a checksums file; ``./`` before a path is dropped."""
    where = shown(path)
    digests, bad = {}, []
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for n, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            m = _LINE.fullmatch(line)
            algorithm = _BY_LENGTH.get(len(m.group(1))) if m else None
            if m is None or algorithm is None:
                bad.append(n)
                continue
            rel = m.group(2)
            digests[rel[2:] if rel.startswith("./") else rel] = (algorithm, m.group(1).lower(), where)
    return digests, bad


def digest_of(path: str, algorithm: str) -> str:
    """The hex digest of the file ``path``, read in blocks of 1 MiB."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def verify(ref: ClipRef) -> None:
    """Raise :class:`BadInputError` naming the clip when its file's digest is not the one its input lists
    (``ref.digest``; nothing to check where it is empty)."""
    if not ref.digest:
        return
    algorithm, want, listed_in = ref.digest
    try:
        got = digest_of(ref.source, algorithm)
    except OSError as e:
        why = f"cannot be read to check its {algorithm} ({e.strerror})"
        raise BadInputError([Problem(shown(ref.source), why)]) from None
    if got != want:
        raise BadInputError(
            [
                Problem(
                    shown(ref.source),
                    f"{algorithm} {got} does not match checksums' {want} ({listed_in}): the file is damaged or "
                    "changed since; download it again",
                )
            ]
        )
