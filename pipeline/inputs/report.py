"""The closing line of a refused input, built from the problems' fixes (data), for a run and for ingest alike.

Each :class:`~pipeline.exceptions.Problem` carries the flags that make it pass
(``("mono", "resample")``; none when no flag does).  When every problem has
some, the closing line names their union, the whole set of options a run
needs (``all 6 pass with --pad --mono --resample``; ``mono=True, ...`` from
Python), once, whatever mix of clips and layout problems it is.
"""

from __future__ import annotations

from ..exceptions import BadInputError, escaped
from .audio import unreadable
from .base import FIX_ORDER


def common_fix(problems) -> tuple | None:
    """The flags (Python names, in :data:`FIX_ORDER`) that make every one of ``problems`` pass; None if one of
    them has none (an undecodable file, an offset past its end, ...)."""
    union = set()
    for p in problems:
        if not p.fixes:
            return None
        union.update(p.fixes)
    return tuple(sorted(union, key=lambda f: (FIX_ORDER.index(f) if f in FIX_ORDER else len(FIX_ORDER), f))) or None


def no_valid_clip(n: int, problems, written: str = "audio.hdf5") -> BadInputError:
    """The error when no valid clip would be left: nothing is written (exit 3)."""
    fix = common_fix(problems)
    return BadInputError(
        problems,
        f"no valid clip is left: all {n} clip(s) are bad, so no {written} is written; "
        + (f"all {n} pass with {{fixes}}" if fix else "fix the clips (or the parameters) and run again"),
        fixes=fix or (),
    )


def refuse(
    problems,
    index,
    *,
    skip_bad: bool,
    verb: str = "run",
    where: bool = True,
    skip: str = "run with --skip-bad to go on without them",
    written: str = "audio.hdf5",
) -> None:
    """Raise the one error pre-flight's ``problems`` end a ``verb`` (run, ingest) with, if they do.

    Layout problems of the input (``index.problems``: unequal genres, ...)
    refuse it whatever ``skip_bad`` says; bad clips refuse it without
    ``skip_bad``, or when no valid clip would be left.  ``skip`` says what
    ``--skip-bad`` would do; ``where``: the closing line names the input.
    """
    if not problems:
        return
    n, fix = len(problems), common_fix(problems)
    head = f"{n} problem(s)" + (f" in {index.path}" if where else "")
    if fix and (index.problems or not skip_bad):  # one set of options makes every problem pass: the command's
        raise BadInputError(problems, f"{head}; all {n} pass with {{fixes}}", fixes=fix)
    if index.problems:
        raise BadInputError(
            problems,
            f"{n} problem(s) in {index.path}: fix them, or give the options they name, "
            f"and {verb} again" + (" (--skip-bad covers bad clips only)" if skip_bad else ""),
        )
    if not skip_bad:
        raise BadInputError(problems, f"{head}; fix or remove the bad clips, or {skip}")
    if n >= len(index.clips):
        raise no_valid_clip(n, problems, written)


def ignored_line(ignored: list, first: int = 10) -> str:
    """The one line naming the entries of the input that are not clips (the first ``first`` of them)."""
    audio = unreadable(ignored)  # audio files no installed decoder reads: named apart, with what would read them
    ignored = [x for x in ignored if unreadable([x]) is None]
    more = f", and {len(ignored) - first} more (listed in the run summary)" if len(ignored) > first else ""
    rest = f"ignored {len(ignored)} non-audio file(s): {', '.join(escaped(x) for x in ignored[:first])}{more}"
    return "; ".join(([f"ignored {audio}"] if audio else []) + ([rest] if ignored else []))
