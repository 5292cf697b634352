"""Pure numpy kernels: framing, constant-Q transform, local contrast normalization.

Nothing here imports dask, zarr or h5py; each function takes and returns numpy
arrays, so each can be tested on a two-second sine without a cluster.  The CQT
itself is in :mod:`pipeline.cqt`, its plans cached on disk by
:mod:`pipeline.plancache`.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

#: The ways the CQT and the LCN can be computed (``Params.precision``): ``float32``, the default, computes both
#: streams' CQT in one float32 pass (:meth:`pipeline.cqt.CQTPlan.streams`), within 1e-6 of the clip's maximum of
#: ``librosa.cqt`` (docs/numerics.md, section 3), and the LCN in float32, within 1e-5 of the float64 LCN (section 4);
#: ``exact`` gives ``librosa.cqt``'s bits and the LCN in float64.
PRECISIONS = ("float32", "exact")

#: How many CQT plans this process has made, built or loaded from the disk cache (a warm worker, forked from
#: a process that made its plan, inherits the count and makes none).
PLANS_BUILT: dict[str, Any] = {"count": 0, "pid": None}


def nframes_for(nsamples: int, na: int) -> int:
    """Frames per stream: ``min(floor(N / na), floor(N / na - 0.5))`` (docs/numerics.md, section 2)."""
    return int(min(np.floor(nsamples / na), np.floor(nsamples / na - 0.5)))


def streams(y: np.ndarray, *, na: int) -> tuple[np.ndarray, np.ndarray]:
    """The aligned stream ``y1 = y`` and the overlapped one ``y2 = y[na // 2:]``."""
    return y, y[na // 2 :]


def frame_streams(y: np.ndarray, *, na: int, nframes: int) -> np.ndarray:
    """Slice a clip into frames of both streams.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        The clip, already truncated to ``Nsamples``.
    na : int > 0, even
        Samples per frame.
    nframes : int > 0
        Frames per stream (see :func:`nframes_for`).

    Returns
    -------
    Xa : np.ndarray [shape=(nframes, 2, na)], same dtype as ``y``
        ``Xa[:, 0]`` holds the aligned frames, ``Xa[:, 1]`` the frames of the
        stream that starts ``na // 2`` samples later.
    """
    out = np.empty((nframes, 2, na), dtype=y.dtype)
    for s, ys in enumerate(streams(y, na=na)):
        out[:, s, :] = ys[: na * nframes].reshape(nframes, na)
    return out


def cqt_plan(*, sr: int, hop_length: int, fmin: float, n_bins: int, bins_per_octave: int):
    """The :class:`~pipeline.cqt.CQTPlan` of these parameters, made once a process: loaded from the disk cache
    (:mod:`pipeline.plancache`, no librosa needed), else built with librosa and cached there."""
    return _cqt_plan(int(sr), int(hop_length), float(fmin), int(n_bins), int(bins_per_octave))


@functools.lru_cache(maxsize=8)
def _cqt_plan(sr: int, hop_length: int, fmin: float, n_bins: int, bins_per_octave: int):
    import os

    from . import cqt, plancache

    kw: dict[str, Any] = dict(sr=sr, hop_length=hop_length, fmin=fmin, n_bins=n_bins, bins_per_octave=bins_per_octave)
    key = dict(kw, fmin=repr(fmin), format=cqt.PLAN_FORMAT, **plancache.versions())
    plan, arrays = None, plancache.load(key)
    if arrays is not None:
        try:
            plan = cqt.CQTPlan(arrays)
        except Exception:  # well-formed and ours, yet not a plan: built again
            plan = None
    if plan is None:
        arrays = cqt.build_plan(**kw)
        plan = cqt.CQTPlan(arrays)
        plancache.save(key, arrays)
    PLANS_BUILT["count"] += 1
    PLANS_BUILT["pid"] = os.getpid()
    return plan


def _check_precision(precision: str) -> bool:
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} must be one of {', '.join(PRECISIONS)}")
    return precision == "exact"


def cqt_streams(
    y: np.ndarray,
    *,
    sr: int,
    na: int,
    fmin: float,
    ns: int,
    n_octaves: int,
    nframes: int,
    precision: str = "exact",
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Constant-Q magnitudes of both streams of a clip: ``|librosa.cqt(ys)|[:, :nframes].T`` for ``y`` and
    ``y[na // 2:]`` (docs/numerics.md, section 3; the last, mostly padded, frame dropped).

    Parameters
    ----------
    y : np.ndarray [shape=(n,)], float32
        The clip, truncated to ``Nsamples``.
    sr : int > 0
    na : int > 0
        Frame length, used as the CQT hop.
    fmin : float > 0
        Frequency of bin 0 in Hz.
    ns : int > 0
        Number of bins; ``ns // n_octaves`` bins per octave.
    nframes : int > 0
    precision : "exact" or "float32"
        See :data:`PRECISIONS`: ``librosa.cqt``'s bits, or both streams in one float32 pass
        (:meth:`pipeline.cqt.CQTPlan.streams`).
    out : np.ndarray [shape=(nframes, 2, ns)], float32, optional
        Where to write the result.

    Returns
    -------
    Xs : np.ndarray [shape=(nframes, 2, ns)], float32
    """
    plan = cqt_plan(sr=sr, hop_length=na, fmin=fmin, n_bins=ns, bins_per_octave=ns // n_octaves)
    if not _check_precision(precision):
        return plan.streams(y, na=na, nframes=nframes, out=out)
    if out is None:
        out = np.empty((nframes, 2, ns), dtype=np.float32)
    for s, ys in enumerate(streams(y, na=na)):
        C = plan.exact(ys)
        if C.shape[-1] < nframes + 1:
            raise ValueError(f"CQT gave {C.shape[-1]} frames, needs at least nframes+1={nframes + 1}")
        out[:, s, :] = np.abs(C[..., :nframes]).T
    return out


def gaussian_taps(size: int, sigma: float) -> np.ndarray:
    """1-D Gaussian of ``size`` taps (odd) and standard deviation ``sigma``, summing to 1."""
    t = np.arange(size) - (size - 1) / 2
    g = np.exp(-0.5 * (t / sigma) ** 2)
    return g / g.sum()


def gaussian_window(size: int, sigma: float) -> np.ndarray:
    """The LCN's 2-D window ``w`` [shape=(size, size)], ``sum(w) == 1``."""
    g = gaussian_taps(size, sigma)
    return np.outer(g, g)


def _smooth(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    # The 2-D Gaussian is the outer product of two 1-D ones, so the 2-D
    # correlation is two 1-D passes (2 * size instead of size**2 taps a value).
    from scipy import ndimage  # here, not at import: the driver imports this module but computes no LCN

    x = ndimage.correlate1d(x, g, axis=0, mode="constant", cval=0.0)
    return ndimage.correlate1d(x, g, axis=1, mode="constant", cval=0.0)


_CONTRAST_EPS = 1e-6


def lcn(S: np.ndarray, *, size: int = 9, sigma: float = 2.0, log: bool = False, precision: str = "exact") -> np.ndarray:
    """Local contrast normalization of one spectrogram (docs/numerics.md, section 4).

    Subtractive then divisive normalization with a Gaussian window ``w``:
    ``m = (w*S)/(w*1)``, ``v = S - m``, ``sigma = sqrt((w*v**2)/(w*1))``,
    ``Xn = v / max(sigma, mean(sigma))``; ``*`` is a same-size correlation with
    zeros outside ``S``, and dividing by ``(w*1)`` makes each value a weighted
    mean over the part of the window inside ``S``.

    Parameters
    ----------
    S : np.ndarray [shape=(frames, bins)], non-negative
    size : int > 0, odd
        Window taps in both directions.
    sigma : float > 0
        Window standard deviation in taps.
    log : bool
        Normalize ``log(1 + S)`` instead of ``S``.
    precision : "exact" or "float32"
        The arithmetic: float64, or float32 (half the time, within 1e-5 of
        float64, tested).

    Returns
    -------
    Xn : np.ndarray [shape=(frames, bins)], float32
        Zero where the spectrogram is silent or constant (never NaN or inf):
        a mean local deviation ``c`` at most 1e-6 of ``max|S|`` counts as 0.
    """
    x = np.asarray(S, dtype=np.float64 if _check_precision(precision) else np.float32)
    if log:
        x = np.log1p(x)
    g = gaussian_taps(size, sigma).astype(x.dtype)
    norm = _smooth(np.ones_like(x), g)
    v = x - _smooth(x, g) / norm
    sd = np.sqrt(np.maximum(_smooth(v * v, g) / norm, x.dtype.type(0)))
    c = sd.mean()
    out = np.zeros_like(x)
    # A contrast below float32 resolution of the data is rounding noise, not
    # signal: treat it as silence (c == 0) so Xn is 0, not amplified noise.
    if c > _CONTRAST_EPS * np.abs(x).max():
        np.divide(v, np.maximum(sd, c), out=out)
    return out.astype(np.float32, copy=False)


def lcn_streams(
    Xs: np.ndarray, *, size: int = 9, sigma: float = 2.0, log: bool = False, precision: str = "exact"
) -> np.ndarray:
    """:func:`lcn` applied to each stream of ``Xs`` [shape=(frames, 2, bins)] separately."""
    out = np.empty(Xs.shape, dtype=np.float32)
    for s in range(Xs.shape[1]):
        out[:, s, :] = lcn(Xs[:, s, :], size=size, sigma=sigma, log=log, precision=precision)
    return out
