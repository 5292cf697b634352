"""Typed checks of setting values: one rule each, one message each, whatever the value's source.

A value reaches audioprep as a command-line string, a YAML scalar from a
``--config`` file or ``~/.config/dask``, or a ``DASK_AUDIOPREP__*``
environment variable (which dask parses with ``ast.literal_eval``, so
``false`` stays the string ``'false'``).  Each :class:`Rule` turns any of
them into one normalized value or raises :class:`ParameterError` with the
same line for the same value, so an option and a config key are refused
alike.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .exceptions import ParameterError

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


#: What a local worker holds once started (imports, the CQT plan) before its first clip.
WORKER_BYTES = 300 * 2**20


def machine_memory() -> int:
    """This machine's memory in bytes (what a local cluster's workers share).

    From the operating system's own count where it gives one (POSIX ``sysconf``: no import, so the parameters
    check with numpy alone), else psutil's.
    """
    import os

    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        import psutil

        return int(psutil.virtual_memory().total)


def machine_cores() -> int:
    import os

    return os.cpu_count() or 1


class Invalid(ValueError):
    """Raised by a rule's converter; the caller adds the setting's name and value."""


@dataclass(frozen=True)
class Rule:
    """How a setting's value is read: ``convert`` returns the normalized value or raises :class:`Invalid`."""

    convert: Callable[[Any], Any]
    text: str | Callable[[], str]  # what the value must be, as a message says it
    optional: bool = False  # None (YAML null) is allowed
    metavar: str = "TEXT"  # what a command-line option's help shows for its value

    def __call__(self, name: str, value, where: str = ""):
        if value is None and self.optional:
            return None
        try:
            if value is None:
                raise Invalid
            return self.convert(value)
        except (Invalid, ValueError, TypeError, OverflowError, KeyError):
            rule = (self.text() if callable(self.text) else self.text) + (" or null" if self.optional else "")
            raise ParameterError(f"{name}={shown(value)} must be {rule}{f' ({where})' if where else ''}") from None


def shown(value) -> str:
    """A value as the user typed it, whether an option (always text) or a YAML / environment value gave it."""
    if isinstance(value, str) and value and value == value.strip() and "\n" not in value:
        return value
    return repr(value)


def _text(value) -> str:
    if isinstance(value, str):
        return value.strip()
    raise Invalid


def _bound(hi):
    return hi() if callable(hi) else hi


def _why(why) -> str:
    why = why() if callable(why) else why
    return f" ({why})" if why else ""


def whole(lo: int | None = None, hi=None, *, optional: bool = False, why="") -> Rule:
    """An integer in ``[lo, hi]``; an integral string counts, a bool or a float does not.

    ``hi`` (a number, or a function giving one when a value is checked: this machine's cores) is the upper
    bound every setting has, and ``why`` says where it comes from.
    """

    def convert(value):
        if isinstance(value, bool) or isinstance(value, float):
            raise Invalid
        if isinstance(value, str):
            if not re.fullmatch(r"[+-]?\d{1,30}", value.strip()):
                raise Invalid
            value = int(value)
        top = _bound(hi)
        if not isinstance(value, int) or (lo is not None and value < lo) or (top is not None and value > top):
            raise Invalid
        return value

    def text():
        top = _bound(hi)
        bounds = f" >= {lo}" if top is None and lo is not None else f" from {lo} to {top}" if top is not None else ""
        return f"a whole number{bounds}{_why(why)}"

    return Rule(convert, text, optional, "INTEGER")


def number(*, above: float = 0.0, at_least: float | None = None, at_most: float | None = None, why="") -> Rule:
    """A finite number greater than ``above`` (or, given ``at_least``, not less than it), and at most ``at_most``
    (``why`` says why).  ``-0`` is ``0``."""

    def convert(value):
        if isinstance(value, bool):
            raise Invalid
        value = float(_text(value) if isinstance(value, str) else value) + 0.0  # -0.0 + 0.0 is 0.0
        if not math.isfinite(value) or (value < at_least if at_least is not None else value <= above):
            raise Invalid
        if at_most is not None and value > at_most:
            raise Invalid
        return value

    bound = f">= {at_least:g}" if at_least is not None else f"> {above:g}"
    if at_most is not None:
        bound += f" and <= {at_most:g}"
    return Rule(convert, f"a number {bound}{_why(why)}", metavar="FLOAT")


def flag() -> Rule:
    """A yes/no setting: a YAML bool, or the words true/false, yes/no, on/off, 1/0 (any case)."""

    def convert(value):
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        word = _text(value).lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise Invalid

    return Rule(convert, "true or false (yes/no, on/off and 1/0 are read the same way)", metavar="BOOLEAN")


def size(*, minimum: int, maximum=None, auto: bool = False, optional: bool = False, why="") -> Rule:
    """A number of bytes (``2GiB``, ``500MB``, a plain integer) of at least ``minimum`` and at most ``maximum``
    (a number or a function giving one; ``why`` says why); ``auto`` if allowed."""
    from dask.utils import format_bytes, parse_bytes

    def convert(value):
        if auto and isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        if isinstance(value, bool) or isinstance(value, float):
            raise Invalid
        n = parse_bytes(_text(value) if isinstance(value, str) else value)
        top = _bound(maximum)
        if n < minimum or (top is not None and n > top):
            raise Invalid
        return value.strip() if isinstance(value, str) else n

    def text():
        top = _bound(maximum)
        most = f" and at most {format_bytes(top)}" if top is not None else ""
        return (
            "'auto' or " if auto else ""
        ) + f"a size of at least {minimum // 2**20} MiB{most}{_why(why)} (e.g. 2GiB, 500MB)"

    return Rule(convert, text, optional, "SIZE")


#: The longest time span a setting takes: a wait (or a worker's lifetime) of more than a year is none at all,
#: and asyncio's timers overflow long before the float range ends.
LONGEST = 365 * 24 * 3600


def duration(*, optional: bool = False) -> Rule:
    """A time span (``20s``, ``10m``, ``1h``, or seconds as a number) greater than zero, at most a year."""
    from dask.utils import parse_timedelta

    def convert(value):
        if isinstance(value, bool):
            raise Invalid
        seconds = parse_timedelta(_text(value) if isinstance(value, str) else value)
        if seconds is None or not 0 < seconds <= LONGEST:
            raise Invalid
        return value.strip() if isinstance(value, str) else value

    return Rule(convert, "a time span > 0 such as 30s, 10m or 1h, at most a year (365d)", optional, "DURATION")


def walltime() -> Rule:
    """A batch job's walltime: ``[D-]HH:MM:SS``, ``HH:MM`` or minutes, as the schedulers take it."""

    def convert(value):
        text = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else None
        m = re.fullmatch(r"(?:(\d{1,9})-)?(\d{1,9})((?::[0-5]?\d){0,2})", text or "")
        if not m or not any(c != "0" for c in text if c.isdigit()):
            raise Invalid
        parts = [int(x) for x in m.group(3).split(":")[1:]]
        days, first = int(m.group(1) or 0), int(m.group(2))
        hours = parts or m.group(1)  # HH:MM[:SS] or D-HH; else minutes
        seconds = (
            days * 86400 + (first * 3600 if hours else first * 60) + sum(x * 60 ** (1 - i) for i, x in enumerate(parts))
        )
        if seconds > LONGEST:
            raise Invalid
        return text

    return Rule(
        convert,
        "a walltime such as 01:00:00 (HH:MM:SS), 2-00:00:00 or 90 (minutes), at most a year",
        metavar="HH:MM:SS",
    )


def text(*, optional: bool = False, most: int = 255, why: str = "a name") -> Rule:
    """A non-empty string without line breaks, of at most ``most`` characters (``why`` says why)."""

    def convert(value):
        value = _text(value)
        if not value or "\n" in value or len(value) > most:
            raise Invalid
        return value

    return Rule(convert, f"a non-empty text of at most {most} characters ({why})", optional)


def choice(options: tuple, *, optional: bool = False) -> Rule:
    """One of ``options`` (any case); None too where ``optional``."""

    def convert(value):
        value = _text(value).lower()
        if value not in options:
            raise Invalid
        return value

    return Rule(convert, f"one of {', '.join(options)}", optional, metavar="[" + "|".join(options) + "]")


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise Invalid
    return int(text)


def host_port() -> Rule:
    """Where a service listens: ``HOST:PORT``, ``:PORT`` (every interface) or a port number; port 0 = any free."""

    def convert(value):
        if isinstance(value, int) and not isinstance(value, bool):
            return f":{_port(str(value))}"
        value = _text(value)
        host, sep, port = value.rpartition(":")
        if not sep:
            return f":{_port(value)}"
        if host and not re.fullmatch(r"[A-Za-z0-9._\-\[\]:]+", host):
            raise Invalid
        _port(port)
        return value

    return Rule(convert, "HOST:PORT (e.g. 127.0.0.1:8787), :PORT or a port number", metavar="HOST:PORT")


def choice_or_address(kinds: Callable[[], tuple]) -> Rule:
    """One of ``kinds()`` (asked when a value is checked), or a scheduler address ``tcp://HOST:PORT`` /
    ``tls://HOST:PORT``."""

    def convert(value):
        value = _text(value)
        if value.lower() in kinds():
            return value.lower()
        m = re.fullmatch(r"(tcp|tls)://([^/:\s]+|\[[0-9A-Fa-f:]+\]):(\d+)/?", value)
        if not m:
            raise Invalid
        _port(m.group(3))
        return value

    return Rule(
        convert, lambda: f"one of {', '.join(kinds())}, or a scheduler address tcp://HOST:PORT", metavar="KIND|ADDRESS"
    )
