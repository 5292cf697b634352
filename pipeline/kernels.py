"""Pure numpy kernels: framing, constant-Q transform, local contrast normalization.

Nothing here imports dask, zarr or h5py; each function takes and returns numpy
arrays, so each can be tested on a two-second sine without a cluster.
"""

from __future__ import annotations

import functools

import numpy as np

#: The ways the CQT and the LCN can be computed (``Params.precision``): ``float32``, the default, runs the
#: CQT's STFT on float32 frames and the LCN in float32, within 1e-6 of the clip's maximum of ``librosa.cqt``
#: (SPEC section 3) and 1e-5 of the float64 LCN (section 4); ``exact`` gives ``librosa.cqt``'s bits and the
#: LCN in float64.
PRECISIONS = ("float32", "exact")

#: How many :class:`CQTPlan` this process has built (a warm worker, forked from a process that built its
#: plan, inherits the count and builds none).
PLANS_BUILT = {"count": 0, "pid": None}


def nframes_for(nsamples: int, na: int) -> int:
    """Frames per stream: ``min(floor(N / na), floor(N / na - 0.5))`` (SPEC section 2)."""
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


class CQTPlan:
    """``librosa.cqt`` with its filter bases built once, for many signals of one dtype.

    ``librosa.cqt`` (a VQT with ``gamma=0``) rebuilds the FFT of every
    octave's filter basis at each call, about 60 % of a call on a 30 s clip.
    This plan builds them once, from librosa's public pieces
    (``interval_frequencies``, ``filters.wavelet``, ``filters.wavelet_lengths``,
    ``util.sparsify_rows``, ``resample``, and an STFT equal to ``stft``'s), and then follows
    librosa's algorithm step by step (librosa 0.10 to 0.11, ``core/constantq.py``:
    ``vqt``, ``__vqt_filter_fft``, ``__cqt_response``, ``__early_downsample``,
    ``__trim_stack``), with its defaults: ``tuning=0``, ``filter_scale=1``,
    ``norm=1``, ``sparsity=0.01``, a Hann window, ``scale=True``,
    ``pad_mode="constant"``, ``res_type="soxr_hq"``.  The same operations in
    the same order give the same bits: the tests compare it with
    ``librosa.cqt`` bit for bit, so a change in a future librosa is caught.

    Parameters
    ----------
    sr : int > 0
    hop_length : int > 0, a multiple of ``2**(n_octaves - 1)``
    fmin : float > 0
    n_bins : int > 1
    bins_per_octave : int > 0
    dtype : np.dtype
        The real dtype of the signals (float32 here): it fixes the complex dtype.
    exact : bool
        True: the STFTs run on float64 frames, as librosa's do (its window is
        float64), giving ``librosa.cqt``'s bits.  False: on float32 frames,
        about half the STFT's time, within float32 rounding of it (tested).
    """

    def __init__(self, *, sr: int, hop_length: int, fmin: float, n_bins: int, bins_per_octave: int,
                 dtype=np.float32, exact: bool = True):
        import os

        import librosa
        from librosa import filters

        PLANS_BUILT["count"] += 1
        PLANS_BUILT["pid"] = os.getpid()
        self.exact = bool(exact)
        self.dtype = np.dtype(dtype)
        self.cdtype = librosa.util.dtype_r2c(self.dtype)
        self.n_bins = n_bins
        n_octaves = int(np.ceil(float(n_bins) / bins_per_octave))
        n_filters = min(bins_per_octave, n_bins)
        freqs = librosa.interval_frequencies(n_bins=n_bins, fmin=fmin, intervals="equal",
                                             bins_per_octave=bins_per_octave, sort=True)
        alpha = filters._relative_bandwidth(freqs=freqs)
        _, cutoff = filters.wavelet_lengths(freqs=freqs, sr=sr, window="hann", filter_scale=1, gamma=0,
                                            alpha=alpha)
        nyquist = sr / 2.0
        if cutoff > nyquist:
            raise ValueError(f"CQT filters reach {cutoff:.1f} Hz, above the Nyquist frequency {nyquist:g} Hz")
        # Early downsampling: as many halvings as both the filters' cut-off and the hop allow.
        twos = (hop_length & -hop_length).bit_length() - 1
        count = min(max(0, int(np.ceil(np.log2(nyquist / cutoff)) - 1) - 1), max(0, twos - n_octaves + 1))
        self.early_factor = 2 ** count if count > 0 else 1
        sr_used, hop = (sr / float(self.early_factor), hop_length // self.early_factor) \
            if count > 0 else (sr, hop_length)
        self.octaves = []  # (fft_basis, n_fft, hop, halve_after)
        my_sr, my_hop = sr_used, hop
        fft = librosa.get_fftlib()
        for i in range(n_octaves):
            sl = slice(-n_filters, None) if i == 0 else slice(-n_filters * (i + 1), -n_filters * i)
            basis, lengths = filters.wavelet(freqs=freqs[sl], sr=my_sr, filter_scale=1, norm=1, pad_fft=True,
                                             window="hann", gamma=0, alpha=alpha[sl])
            n_fft = basis.shape[1]
            basis *= lengths[:, np.newaxis] / float(n_fft)
            fft_basis = fft.fft(basis, n=n_fft, axis=1)[:, : (n_fft // 2) + 1]
            fft_basis = librosa.util.sparsify_rows(fft_basis, quantile=0.01, dtype=self.cdtype)
            fft_basis[:] *= np.sqrt(sr_used / my_sr)  # compensates the downsampling, as librosa does
            halve = my_hop % 2 == 0
            self.octaves.append((fft_basis, n_fft, my_hop, halve))
            if halve:
                my_hop //= 2
                my_sr /= 2.0
        lengths, _ = filters.wavelet_lengths(freqs=freqs, sr=sr_used, window="hann", filter_scale=1, gamma=0,
                                             alpha=alpha)
        self.sqrt_lengths = np.sqrt(lengths)[:, np.newaxis]

    def __call__(self, y: np.ndarray) -> np.ndarray:
        """The complex CQT of ``y`` [shape=(n,)], exactly as ``librosa.cqt`` returns it [shape=(n_bins, t)]."""
        import librosa

        if y.dtype != self.dtype:
            raise ValueError(f"this plan is for {self.dtype} signals, not {y.dtype}")
        if self.early_factor > 1:
            y = librosa.resample(y, orig_sr=self.early_factor, target_sr=1, res_type="soxr_hq", scale=True)
        responses = []
        for fft_basis, n_fft, hop, halve in self.octaves:
            responses.append(fft_basis.dot(_stft_ones(y, n_fft=n_fft, hop_length=hop, dtype=self.cdtype,
                                                      exact=self.exact)))
            if halve:
                y = librosa.resample(y, orig_sr=2, target_sr=1, res_type="soxr_hq", scale=True)
        # Stack the octaves, lowest bins first, trimmed to the shortest response.
        cols = min(r.shape[-1] for r in responses)
        out = np.empty((self.n_bins, cols), dtype=self.cdtype, order="F")
        end = self.n_bins
        for r in responses:
            n_oct = r.shape[-2]
            if end < n_oct:
                out[:end, :] = r[-end:, :cols]
            else:
                out[end - n_oct: end, :] = r[:, :cols]
            end -= n_oct
        out /= self.sqrt_lengths
        return out


def _stft_ones(y: np.ndarray, *, n_fft: int, hop_length: int, dtype, exact: bool = True) -> np.ndarray:
    """``librosa.stft(y, window="ones", center=True, pad_mode="constant")`` in one FFT call.

    librosa frames the zero-padded signal, multiplies by the float64 window
    (ones: exact, but it makes the frames float64), and transforms blocks of
    columns with ``scipy.fft.rfft``; framing once and transforming all frames
    at once gives the same bits in 60 % of the time.  With ``exact=False``
    the frames stay in ``y``'s float32 and the FFT is a float32 one: no
    float64 copy, half the FFT's work, within float32 rounding.

    Returns
    -------
    D : np.ndarray [shape=(1 + n_fft // 2, frames)], ``dtype``
    """
    import scipy.fft

    real = np.float64 if exact else y.dtype
    pad = n_fft // 2
    padded = np.zeros(y.shape[-1] + 2 * pad, dtype=real)
    padded[pad: pad + y.shape[-1]] = y
    n = 1 + (padded.shape[0] - n_fft) // hop_length
    step = padded.itemsize
    frames = np.lib.stride_tricks.as_strided(padded, shape=(n, n_fft), strides=(hop_length * step, step),
                                             writeable=False)
    return scipy.fft.rfft(frames, axis=-1).T.astype(dtype, copy=False)


@functools.lru_cache(maxsize=8)
def cqt_plan(*, sr: int, hop_length: int, fmin: float, n_bins: int, bins_per_octave: int,
             dtype: str = "float32", exact: bool = True) -> CQTPlan:
    """The :class:`CQTPlan` of these parameters, built once per process."""
    return CQTPlan(sr=sr, hop_length=hop_length, fmin=fmin, n_bins=n_bins, bins_per_octave=bins_per_octave,
                   dtype=np.dtype(dtype), exact=exact)


def _check_precision(precision: str) -> bool:
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} must be one of {', '.join(PRECISIONS)}")
    return precision == "exact"


def cqt_magnitude(
    y: np.ndarray, *, sr: int, hop_length: int, fmin: float, n_bins: int, bins_per_octave: int, nframes: int,
    precision: str = "exact",
) -> np.ndarray:
    """``|librosa.cqt(y)|`` as (frames x bins), keeping the first ``nframes`` frames.

    With centred frames librosa returns ``1 + len(y) // hop_length`` frames; the
    last, mostly padded, one is dropped (SPEC section 3).  Computed with the
    process's cached :class:`CQTPlan`: with ``precision="exact"`` the same bits
    as ``librosa.cqt``, with ``"float32"`` a float32 STFT within float32
    rounding of it.

    Returns
    -------
    S : np.ndarray [shape=(nframes, n_bins)], float32
    """
    plan = cqt_plan(sr=sr, hop_length=hop_length, fmin=float(fmin), n_bins=n_bins,
                    bins_per_octave=bins_per_octave, dtype=y.dtype.name, exact=_check_precision(precision))
    C = plan(y)
    if C.shape[-1] < nframes + 1:
        raise ValueError(f"CQT gave {C.shape[-1]} frames, needs at least nframes+1={nframes + 1}")
    return np.abs(C[..., :nframes]).T.astype(np.float32, copy=False)


def cqt_streams(
    y: np.ndarray, *, sr: int, na: int, fmin: float, ns: int, n_octaves: int, nframes: int,
    precision: str = "exact",
) -> np.ndarray:
    """Constant-Q magnitudes of both streams of a clip.

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
        See :data:`PRECISIONS`.

    Returns
    -------
    Xs : np.ndarray [shape=(nframes, 2, ns)], float32
    """
    out = np.empty((nframes, 2, ns), dtype=np.float32)
    for s, ys in enumerate(streams(y, na=na)):
        out[:, s, :] = cqt_magnitude(
            ys, sr=sr, hop_length=na, fmin=fmin, n_bins=ns, bins_per_octave=ns // n_octaves, nframes=nframes,
            precision=precision,
        )
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


def lcn(S: np.ndarray, *, size: int = 9, sigma: float = 2.0, log: bool = False,
        precision: str = "exact") -> np.ndarray:
    """Local contrast normalization of one spectrogram (SPEC section 4).

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


def lcn_streams(Xs: np.ndarray, *, size: int = 9, sigma: float = 2.0, log: bool = False,
                precision: str = "exact") -> np.ndarray:
    """:func:`lcn` applied to each stream of ``Xs`` [shape=(frames, 2, bins)] separately."""
    out = np.empty(Xs.shape, dtype=np.float32)
    for s in range(Xs.shape[1]):
        out[:, s, :] = lcn(Xs[:, s, :], size=size, sigma=sigma, log=log, precision=precision)
    return out
