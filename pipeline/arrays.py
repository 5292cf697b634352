"""The output arrays: one record each, from which the graph, the stores' layout, the CLI and ``show`` derive.

For each array: the kernel that makes it from the clip and the arrays before it,
the stage name the dashboard shows for it, what it needs, the name and size of
its last dimension and that dimension's coordinates (``sample``, or ``bin`` with
``frequency`` and ``note``), its dimensions (:meth:`OutputArray.dims`), and how
``audioprep show`` draws it.  A new array is a new record here and a kernel in
:mod:`pipeline.kernels`; the stores, the readers and ``show`` derive the rest.

Every array is float32 of shape ``(genres, clips, Nframes, 2, size)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import kernels

if TYPE_CHECKING:  # pragma: no cover
    from .params import Params


@dataclass(frozen=True)
class OutputArray:
    name: str
    doc: str  # one line: what it holds
    stage: str  # the stage name the dashboard's fine performance metrics show
    needs: tuple  # "y" (the clip's samples) and/or earlier arrays
    make: Callable  # make(*needed, params) -> np.ndarray [shape=(Nframes, 2, size)]
    last: str  # the last dimension: "sample" (na of them) or "bin" (ns of them)
    panel: str  # how 'audioprep show' draws it: "waveform", "spectrogram" (dB) or "diverging"
    axis: Callable | None = None  # axis(attrs) -> {coordinate: (dims, values, attrs)} of the last dimension

    def size(self, params: Params) -> int:
        return params.na if self.last == "sample" else params.ns

    def dims(self, clip_dims=("genre", "clip")) -> tuple:
        """Its dimension names: the clip's (``clip_dims``, the layout's), then ``frame``, ``overlap``, last."""
        return (*clip_dims, "frame", "overlap", self.last)

    def coords(self, attrs: dict) -> dict:
        """The coordinates of its last dimension, from an output's attributes (:func:`axis`)."""
        return self.axis(attrs) if self.axis is not None else {}


def _sample_axis(attrs: dict) -> dict:
    import numpy as np

    return {"sample": (("sample",), np.arange(int(attrs["na"])), {})}


def _bin_axis(attrs: dict) -> dict:
    """``bin`` (0..ns-1), its centre ``frequency`` in Hz and its nearest ``note`` (with cents, e.g. ``C2+50``)."""
    import numpy as np

    from .pitch import cqt_frequencies, note_name

    freqs = cqt_frequencies(int(attrs["ns"]), fmin=float(attrs["fmin"]), bins_per_octave=int(attrs["bins_per_octave"]))
    return {
        "bin": (("bin",), np.arange(int(attrs["ns"])), {}),
        "frequency": (("bin",), freqs, {"units": "Hz"}),
        "note": (("bin",), np.array([note_name(f, cents=True).replace("+0", "") for f in freqs], dtype=object), {}),
    }


def _frame(y, p):
    return kernels.frame_streams(y, na=p.na, nframes=p.nframes)


def _cqt(y, p):
    return kernels.cqt_streams(
        y, sr=p.sr, na=p.na, fmin=p.fmin, ns=p.ns, n_octaves=p.n_octaves, nframes=p.nframes, precision=p.precision
    )


def _lcn(Xs, p):
    return kernels.lcn_streams(Xs, size=p.lcn_size, sigma=p.lcn_sigma, log=p.lcn_log, precision=p.precision)


#: The arrays in the order they are computed and written.
ARRAYS = {
    a.name: a
    for a in (
        OutputArray("Xa", "raw frames", "frame", ("y",), _frame, "sample", "waveform", _sample_axis),
        OutputArray("Xs", "constant-Q spectrogram magnitude", "cqt", ("y",), _cqt, "bin", "spectrogram", _bin_axis),
        OutputArray("Xn", "local contrast normalization of Xs", "lcn", ("Xs",), _lcn, "bin", "diverging", _bin_axis),
    )
}

#: Array names, in the order they are written.
DATASETS = tuple(ARRAYS)


def needed(names) -> list:
    """The arrays that computing ``names`` takes (theirs and what they need), in computing order."""
    want, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in ARRAYS and name not in want:
            want.add(name)
            todo.extend(ARRAYS[name].needs)
    return [a for a in ARRAYS.values() if a.name in want]
