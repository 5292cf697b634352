"""The constant-Q transform of a clip's two streams, from a plan of plain arrays (numpy, scipy and soxr only).

A :class:`CQTPlan` holds the filter bases of ``librosa.cqt`` for one set of
parameters as plain arrays: :func:`build_plan` makes them with librosa (once a
machine: :mod:`pipeline.plancache` keeps them on disk), and computing with them
needs no librosa.  Two ways to compute:

- :meth:`CQTPlan.exact`: ``librosa.cqt``'s algorithm step by step (librosa 0.10
  to 0.11, ``core/constantq.py``: ``vqt``, ``__vqt_filter_fft``,
  ``__cqt_response``, ``__early_downsample``, ``__trim_stack``, and
  ``resample``'s soxr call), with its defaults: ``tuning=0``,
  ``filter_scale=1``, ``norm=1``, ``sparsity=0.01``, a Hann window,
  ``scale=True``, ``pad_mode="constant"``, ``res_type="soxr_hq"``.  The same
  operations in the same order give the same bits (tested against
  ``librosa.cqt``, so a change in a future librosa is caught).
- :meth:`CQTPlan.streams`: both streams at once in float32, within 1e-6 of
  each clip's maximum of ``librosa.cqt`` (docs/numerics.md, section 3).  The second stream
  is the first shifted by ``na // 2`` samples, which at every octave's rate is
  half that octave's hop: one downsampling chain and one STFT at half the hop
  give both streams' frames interleaved, i.e. the ``(frames, 2, bins)`` block
  itself.  Only the second stream's first frames differ (its start is zero
  padded and its resampler starts there): they are computed from a short
  prefix of that stream (``patch_frames`` frames, found when the plan is
  built).  The resampling scales and ``1 / sqrt(lengths)`` are folded into one
  complex64 matrix an octave over the FFT bins its filters touch.
"""

from __future__ import annotations

from typing import cast

import numpy as np

#: Changes whenever the arrays of a plan change meaning (part of the disk cache's key).
PLAN_FORMAT = 1


def _resample_down(y: np.ndarray, factor: int) -> np.ndarray:
    """``librosa.resample(y, orig_sr=factor, target_sr=1, res_type="soxr_hq", scale=True)``, bit for bit."""
    import soxr

    ratio = float(1) / factor
    n = int(np.ceil(y.shape[-1] * ratio))
    out = soxr.resample(y, in_rate=factor, out_rate=1, quality="soxr_hq")
    if out.shape[-1] != n:  # util.fix_length
        out = out[:n] if out.shape[-1] > n else np.pad(out, (0, n - out.shape[-1]))
    out /= np.sqrt(ratio)
    return np.asarray(out, dtype=y.dtype)


def _down_unscaled(y: np.ndarray, factor: int) -> np.ndarray:
    """The same without the ``sqrt(factor)`` scale (the fast path folds it into its filters)."""
    import soxr

    n = -(-y.shape[-1] // factor)
    out = soxr.resample(y, in_rate=factor, out_rate=1, quality="soxr_hq")
    return out if out.shape[-1] == n else (out[:n] if out.shape[-1] > n else np.pad(out, (0, n - out.shape[-1])))


def _stft_ones(y: np.ndarray, *, n_fft: int, hop_length: int, dtype, exact: bool = True) -> np.ndarray:
    """``librosa.stft(y, window="ones", center=True, pad_mode="constant")`` in one FFT call.

    librosa frames the zero-padded signal, multiplies by the float64 window
    (ones: exact, but it makes the frames float64), and transforms blocks of
    columns with ``scipy.fft.rfft``; framing once and transforming all frames
    at once gives the same bits.  With ``exact=False`` the frames stay in
    ``y``'s float32 and the FFT is a float32 one, within float32 rounding.

    Returns
    -------
    D : np.ndarray [shape=(1 + n_fft // 2, frames)], ``dtype``
    """
    import scipy.fft

    real = np.float64 if exact else y.dtype
    pad = n_fft // 2
    padded = np.zeros(y.shape[-1] + 2 * pad, dtype=real)
    padded[pad : pad + y.shape[-1]] = y
    n = 1 + (padded.shape[0] - n_fft) // hop_length
    return scipy.fft.rfft(_frames(padded, n_fft, hop_length, n), axis=-1).T.astype(dtype, copy=False)


def _frames(padded: np.ndarray, n_fft: int, step: int, count: int) -> np.ndarray:
    if count > 1 + (padded.shape[0] - n_fft) // step:
        raise ValueError(f"{count} frames of {n_fft} samples {step} apart do not fit in {padded.shape[0]}")
    s = padded.itemsize
    return np.lib.stride_tricks.as_strided(padded, shape=(count, n_fft), strides=(step * s, s), writeable=False)


def build_plan(*, sr: int, hop_length: int, fmin: float, n_bins: int, bins_per_octave: int) -> dict:
    """The plan's arrays, made with librosa's public pieces (``interval_frequencies``, ``filters.wavelet``,
    ``filters.wavelet_lengths``, ``util.sparsify_rows``) as ``librosa.cqt`` makes them for float32 signals."""
    import librosa
    from librosa import filters

    cdtype = np.complex64
    n_octaves = int(np.ceil(float(n_bins) / bins_per_octave))
    n_filters = min(bins_per_octave, n_bins)
    freqs = librosa.interval_frequencies(
        n_bins=n_bins, fmin=fmin, intervals="equal", bins_per_octave=bins_per_octave, sort=True
    )
    alpha = filters._relative_bandwidth(freqs=freqs)
    _, cutoff = filters.wavelet_lengths(freqs=freqs, sr=sr, window="hann", filter_scale=1, gamma=0, alpha=alpha)
    nyquist = sr / 2.0
    if cutoff > nyquist:
        raise ValueError(f"CQT filters reach {cutoff:.1f} Hz, above the Nyquist frequency {nyquist:g} Hz")
    # Early downsampling: as many halvings as both the filters' cut-off and the hop allow.
    twos = (hop_length & -hop_length).bit_length() - 1
    count = min(max(0, int(np.ceil(np.log2(nyquist / cutoff)) - 1) - 1), max(0, twos - n_octaves + 1))
    early = 2**count if count > 0 else 1
    sr_used, hop = (sr / float(early), hop_length // early) if count > 0 else (sr, hop_length)
    arrays = {"early": np.array(early), "n_bins": np.array(n_bins)}
    n_ffts, hops, halves, shapes = [], [], [], []
    my_sr, my_hop = sr_used, hop
    fft = librosa.get_fftlib()
    for i in range(n_octaves):
        sl = slice(-n_filters, None) if i == 0 else slice(-n_filters * (i + 1), -n_filters * i)
        # alpha: librosa annotates a float, yet its own vqt passes this slice of the array, as here.
        basis, lengths = filters.wavelet(
            freqs=freqs[sl],
            sr=my_sr,
            filter_scale=1,
            norm=1,
            pad_fft=True,
            window="hann",
            gamma=0,
            alpha=cast(float, alpha[sl]),
        )
        n_fft = basis.shape[1]
        basis *= lengths[:, np.newaxis] / float(n_fft)
        fft_basis = fft.fft(basis, n=n_fft, axis=1)[:, : (n_fft // 2) + 1]
        fft_basis = librosa.util.sparsify_rows(fft_basis, quantile=0.01, dtype=cdtype)
        fft_basis[:] *= np.sqrt(sr_used / my_sr)  # compensates the downsampling, as librosa does
        for part in ("data", "indices", "indptr"):
            arrays[f"{part}{i}"] = np.ascontiguousarray(getattr(fft_basis, part))
        shapes.append(fft_basis.shape)
        halve = my_hop % 2 == 0
        n_ffts.append(n_fft)
        hops.append(my_hop)
        halves.append(halve)
        if halve:
            my_hop //= 2
            my_sr /= 2.0
    lengths, _ = filters.wavelet_lengths(freqs=freqs, sr=sr_used, window="hann", filter_scale=1, gamma=0, alpha=alpha)
    arrays.update(
        n_fft=np.array(n_ffts),
        hop=np.array(hops),
        halve=np.array(halves),
        shape=np.array(shapes),
        sqrt_lengths=np.sqrt(lengths)[:, np.newaxis],
    )
    plan = CQTPlan(arrays)
    arrays["patch"] = np.array(plan.find_patch(hop_length))
    return arrays


class CQTPlan:
    """``librosa.cqt`` of float32 signals for one set of parameters, from the arrays of :func:`build_plan`."""

    def __init__(self, arrays: dict):
        import scipy.sparse

        self.arrays = arrays
        self.early = int(arrays["early"])
        self.n_bins = int(arrays["n_bins"])
        self.sqrt_lengths = arrays["sqrt_lengths"]
        self.patch_frames, self.patch_len = (int(n) for n in arrays.get("patch", (-1, 0)))
        self.octaves = []  # (fft_basis, n_fft, hop, halve)
        for i, shape in enumerate(arrays["shape"]):
            basis = scipy.sparse.csr_matrix(
                (arrays[f"data{i}"], arrays[f"indices{i}"], arrays[f"indptr{i}"]), shape=tuple(int(n) for n in shape)
            )
            self.octaves.append((basis, int(arrays["n_fft"][i]), int(arrays["hop"][i]), bool(arrays["halve"][i])))
        # The fast path: each octave's filters as a matrix over the FFT bins they touch, with the
        # resampling scales and 1 / sqrt(lengths) folded in; the bins of the output each octave fills.
        self.fast, scale, end = [], np.sqrt(float(self.early)) if self.early > 1 else 1.0, self.n_bins
        for basis, n_fft, hop, halve in self.octaves:
            rows = basis.shape[0] if end >= basis.shape[0] else end
            sub = basis[basis.shape[0] - rows :]
            c0, c1 = int(sub.indices.min()), int(sub.indices.max()) + 1
            w = sub[:, c0:c1].toarray().astype(np.complex128) * scale / self.sqrt_lengths[end - rows : end]
            # sparse (no BLAS: a threaded BLAS's spinning threads would take the core from the FFTs between calls)
            self.fast.append(
                (scipy.sparse.csr_matrix(w.astype(np.complex64)), c0, c1, n_fft, hop, halve, end - rows, end)
            )
            end -= rows
            if halve:
                scale *= np.sqrt(2.0)
        self.bins = [slice(b0, b1) for *_, b0, b1 in self.fast]
        self.shared = all(hop % 2 == 0 for _, _, hop, _ in self.octaves)

    # -- librosa.cqt, bit for bit -------------------------------------------------------------------
    def exact(self, y: np.ndarray) -> np.ndarray:
        """The complex CQT of ``y`` [shape=(n,)], exactly as ``librosa.cqt`` returns it [shape=(n_bins, t)]."""
        if y.dtype != np.float32:
            raise ValueError(f"this plan is for float32 signals, not {y.dtype}")
        if self.early > 1:
            y = _resample_down(y, self.early)
        responses = []
        for fft_basis, n_fft, hop, halve in self.octaves:
            responses.append(fft_basis.dot(_stft_ones(y, n_fft=n_fft, hop_length=hop, dtype=np.complex64)))
            if halve:
                y = _resample_down(y, 2)
        # Stack the octaves, lowest bins first, trimmed to the shortest response.
        cols = min(r.shape[-1] for r in responses)
        out = np.empty((self.n_bins, cols), dtype=np.complex64, order="F")
        end = self.n_bins
        for r in responses:
            n_oct = r.shape[-2]
            if end < n_oct:
                out[:end, :] = r[-end:, :cols]
            else:
                out[end - n_oct : end, :] = r[:, :cols]
            end -= n_oct
        out /= self.sqrt_lengths
        return out

    # -- both streams in float32 ----------------------------------------------------------------------
    def frames_available(self, n: int) -> int:
        """Frames ``librosa.cqt`` gives for a signal of ``n`` samples (the shortest octave's)."""
        n = -(-n // self.early)
        got = []
        for _, _, hop, halve in self.octaves:
            got.append(1 + n // hop)
            n = -(-n // 2) if halve else n
        return min(got)

    def _chain(self, y: np.ndarray, step_of, count: int, write) -> None:
        """Downsample ``y`` octave by octave; at each, the STFT of ``count`` frames ``step_of(hop)`` apart, its
        response ``write(i, R)`` [shape=(count, bins of octave i)], complex64."""
        import scipy.fft

        x = _down_unscaled(y, self.early) if self.early > 1 else y
        for i, (w, c0, c1, n_fft, hop, halve, _, _) in enumerate(self.fast):
            pad = n_fft // 2
            padded = np.zeros(x.shape[-1] + 2 * pad, dtype=np.float32)
            padded[pad : pad + x.shape[-1]] = x
            # transformed along the first axis of the frames' transpose: the bins come out as rows, so the bins
            # the filters touch are one contiguous block for the sparse product (the same bits as axis=-1)
            D = scipy.fft.rfft(_frames(padded, n_fft, step_of(hop), count).T, axis=0)
            write(i, (w @ D[c0:c1]).T)
            if halve:
                x = _down_unscaled(x, 2)

    def streams(self, y: np.ndarray, *, na: int, nframes: int, out: np.ndarray | None = None) -> np.ndarray:
        """``|cqt|`` of both streams (``y`` and ``y[na // 2:]``) as [shape=(nframes, 2, n_bins)], float32."""
        y = np.asarray(y, dtype=np.float32)
        F = nframes
        if out is None:
            out = np.empty((F, 2, self.n_bins), dtype=np.float32)
        shift = na // 2
        if self.frames_available(y.shape[-1] - shift) < F + 1:
            raise ValueError(
                f"CQT gave {self.frames_available(y.shape[-1] - shift)} frames, needs at least nframes+1={F + 1}"
            )
        if not self.shared or self.patch_frames < 0 or self.octaves[0][2] * self.early != na:
            for s, ys in enumerate((y, y[shift:])):  # each stream on its own
                self._chain(ys, lambda hop: hop, F, lambda i, R, s=s: np.abs(R, out=out[:, s, self.bins[i]]))
            return out
        # Frames half a hop apart: even ones the first stream's, odd ones the second's, i.e. (frames, 2, bins).
        self._chain(
            y,
            lambda hop: hop // 2,
            2 * F,
            lambda i, R: np.abs(R.reshape(F, 2, R.shape[-1]), out=out[:, :, self.bins[i]]),
        )
        K = min(self.patch_frames, F)
        if K:  # the second stream's first frames, from its own start: a prefix long enough for them
            self._chain(
                y[shift : shift + self.patch_len],
                lambda hop: hop,
                K,
                lambda i, R: np.abs(R, out=out[:K, 1, self.bins[i]]),
            )
        return out

    def _reach(self) -> list:
        """Per octave: how many of its samples at a signal's start (or end) differ from a longer signal's:
        the early resampler's and each halving's reach (soxr's impulse responses, to 1e-7 of their peak)."""

        def reach(factor: int) -> int:
            imp = np.zeros(8192 * factor, dtype=np.float32)
            imp[4096 * factor] = 1.0
            h = np.abs(_down_unscaled(imp, factor))
            return int(np.flatnonzero(h > 1e-7 * h.max()).max()) - 4096 + 1

        t, half, out = (reach(self.early) if self.early > 1 else 0), reach(2), []
        for _, _, _, halve in self.octaves:
            out.append(t)
            if halve:
                t = -(-t // 2) + half
        return out

    def patch_samples(self, frames: int, reach: list) -> int:
        """Samples of the second stream from which its first ``frames`` frames are computed exactly: at each
        octave the frames' span and the resamplers' reach beyond it, in input samples, and 2 hops more."""
        need, factor = 0, self.early
        for (_, n_fft, hop, halve), t in zip(self.octaves, reach):
            need = max(need, factor * ((frames + 1) * hop + n_fft // 2 + t))
            factor *= 2 if halve else 1
        return need

    def find_patch(self, na: int) -> tuple:
        """``(frames, samples)``: the second stream's first frames the shared chain gets wrong (those whose
        window reaches its zero-padded start or the resamplers' start-up there), from a prefix of how many
        samples; ``(-1, 0)`` where the chain cannot be shared.  Checked on noise against the stream's own
        chain (within 1e-6 of the maximum on every frame), else not shared either."""
        if not self.shared or self.octaves[0][2] * self.early != na:
            return -1, 0
        reach = self._reach()
        frames = 2 + max(-(-(t + n_fft // 2) // hop) for (_, n_fft, hop, _), t in zip(self.octaves, reach))
        self.patch_frames, self.patch_len = frames, self.patch_samples(frames, reach)
        n = 2 * self.patch_len + 8 * na
        y = np.random.default_rng(0).standard_normal(n).astype(np.float32)
        F = self.frames_available(n - na // 2) - 1
        got = self.streams(y, na=na, nframes=F)
        self.shared = False
        want = self.streams(y, na=na, nframes=F)
        self.shared = True
        if np.abs(got - want).max() > 1e-6 * np.abs(want).max():
            return -1, 0
        return frames, self.patch_len
