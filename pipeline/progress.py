"""Progress bars (tqdm): one look for every long step, its rate always in clips per second.

With progress off no tqdm code runs at all.  In a Jupyter kernel the bar is tqdm's widget when ipywidgets is
installed and tqdm's text bar otherwise, chosen without importing ``tqdm.auto`` (whose import warns
``TqdmWarning: IProgress not found`` in a kernel without ipywidgets).
"""

from __future__ import annotations

import sys

#: The rate stays ``clip/s`` whether clips take more or less than a second (tqdm would flip to ``s/clip``).
BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_noinv_fmt}]"


class _Off:
    """What a bar that is not shown does: nothing (iterating it iterates its iterable)."""

    def __init__(self, iterable=None):
        self.iterable = iterable

    def __iter__(self):
        return iter(self.iterable if self.iterable is not None else ())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n=1):
        pass

    def refresh(self):
        pass

    def close(self):
        pass


def tqdm_class():
    """tqdm's widget bar in a Jupyter kernel that has ipywidgets, its text bar everywhere else."""
    if "ipykernel" in sys.modules:
        try:
            import ipywidgets  # noqa: F401
            from tqdm.notebook import tqdm

            return tqdm
        except ImportError:
            pass
    from tqdm import tqdm

    return tqdm


def bar(iterable=None, *, desc: str, enabled: bool, unit: str = "clip", bar_format: str = BAR_FORMAT, **kw):
    """A tqdm bar over ``iterable`` (or one updated by hand with ``total=``), shown only if ``enabled``."""
    if not enabled:
        return _Off(iterable)
    return tqdm_class()(iterable, desc=desc, unit=unit, bar_format=bar_format, **kw)
