"""Progress bars (tqdm): one look for every long step, its rate always in clips per second."""

from __future__ import annotations

#: The rate stays ``clip/s`` whether clips take more or less than a second (tqdm would flip to ``s/clip``).
BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_noinv_fmt}]"


def bar(iterable=None, *, desc: str, enabled: bool, unit: str = "clip", **kw):
    """A tqdm bar over ``iterable`` (or one updated by hand with ``total=``), shown only if ``enabled``."""
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, unit=unit, disable=not enabled, bar_format=BAR_FORMAT, **kw)
