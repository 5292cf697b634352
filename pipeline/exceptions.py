"""One exception family for everything the pipeline reports to a user.

Every message carries the offending value, the rule it breaks and how to fix it,
so that the command line can print it as one line instead of a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class PipelineError(Exception):
    """Base class of every error audioprep raises on purpose."""


class ParameterError(PipelineError, ValueError):
    """A numerical or runtime parameter breaks a rule (raised before any work)."""


class StoreError(PipelineError):
    """An output store cannot be used: other parameters, locked, exists, unwritable."""


class StorageError(StoreError):
    """The storage refused a write (full, over quota, read-only); ``reason`` is the system's word for it."""

    def __init__(self, reason: str, where: str = ""):
        self.reason, self.where = reason, where
        super().__init__(f"{where}: {reason}" if where else reason)


class UnsafeOutputError(StoreError):
    """An entry of the output folder is a link, or another user's: audioprep never writes through it."""


class ClusterError(PipelineError):
    """A cluster cannot be created or reached."""


class Terminated(BaseException):
    """SIGTERM turned into an exception in the main thread, so a run cleans up as it does for Ctrl-C.

    Like :class:`KeyboardInterrupt`, not an :class:`Exception`: nothing catches it by accident.
    """


def escaped(text: str) -> str:
    """``text`` with its control characters (a newline in a file name, ...) escaped, so that it prints as one
    line."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii") for ch in text)


def flags(fixes, *, python: bool = False) -> str:
    """Flags (Python names, ``("mono", "pad_short")``) as the command line gives them (``--mono --pad-short``),
    or as Python keywords (``mono=True, pad_short=True``)."""
    if python:
        return ", ".join(f"{name}=True" for name in fixes)
    return " ".join("--" + name.replace("_", "-") for name in fixes)


@dataclass(frozen=True)
class Problem:
    """One bad clip (or bad part of the input): where it is, what is wrong, and the flags (Python names) that
    together make it pass, as data (empty when no flag does)."""

    path: str
    reason: str
    fixes: tuple = field(default=(), compare=False)

    def __str__(self) -> str:
        return f"{escaped(self.path)}: {escaped(self.reason)}"


class BadInputError(PipelineError):
    """The input holds bad clips; ``problems`` lists each with its reason.

    ``fixes``: flags (Python names) that make every problem pass, written into
    the hint where it says ``{fixes}``, in the command line's words or, with
    ``python``, as keywords (what :func:`pipeline.preprocess` raises).
    """

    def __init__(self, problems, hint: str = "", *, fixes: tuple = (), python: bool = False):
        self.problems = list(problems)
        self.template, self.fixes = hint, tuple(fixes)
        hint = hint.replace("{fixes}", flags(self.fixes, python=python)) if self.fixes else hint
        self.hint = hint
        lines = [str(p) for p in self.problems]
        if hint and len(lines) == 1:
            lines[0] += f"; {hint}"  # one problem: one line
        elif hint:
            lines.append(hint)
        super().__init__("\n".join(lines))


class IncompleteError(BadInputError):
    """Clips the run could not compute for reasons of the run (a worker killed, out of memory, a lost
    connection), not of their data: they are not stored as bad, and the next run computes them again."""
