"""Pure numpy pitch arithmetic of the constant-Q bins: their frequencies, the top filter's reach, note names.

The driver needs these (the parameters' Nyquist check, the ``frequency`` and
``note`` coordinates) but not the CQT itself; computing them here keeps
librosa, numba and scipy.signal (about 1 s of CPU) out of the driver.  Each
follows librosa's definition (``cqt_frequencies``, ``filters.wavelet_lengths``
with the CQT's ``gamma=0`` and Hann window, ``hz_to_note``) and the tests compare
them with librosa.
"""

from __future__ import annotations

import numpy as np

#: The equivalent noise bandwidth of a Hann window in FFT bins (librosa.filters.window_bandwidth("hann")).
HANN_BANDWIDTH = 1.50018310546875
_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def cqt_frequencies(n_bins: int, *, fmin: float, bins_per_octave: int) -> np.ndarray:
    """Centre frequencies of the bins in Hz [shape=(n_bins,)]: ``fmin * 2**(k / bins_per_octave)``."""
    return fmin * 2.0 ** (np.arange(0, n_bins, dtype=float) / bins_per_octave)


def cqt_cutoff(freqs: np.ndarray) -> float:
    """The highest frequency in Hz that the CQT's filters reach (it must not exceed ``sr / 2``).

    Each filter's relative bandwidth ``alpha`` comes from the spacing of the
    bins around it (log2 differences, reflected at the ends), ``Q = 1 / alpha``,
    and a Hann-windowed filter reaches ``f * (1 + HANN_BANDWIDTH / (2 Q))``.
    """
    freqs = np.asarray(freqs, dtype=float)
    if len(freqs) < 2:
        raise ValueError("the cut-off of a CQT needs at least 2 bins")
    logf = np.log2(freqs)
    bpo = np.empty_like(freqs)
    bpo[0] = 1 / (logf[1] - logf[0])
    bpo[-1] = 1 / (logf[-1] - logf[-2])
    bpo[1:-1] = 2 / (logf[2:] - logf[:-2])
    alpha = (2.0 ** (2 / bpo) - 1) / (2.0 ** (2 / bpo) + 1)
    return float(np.max(freqs * (1 + 0.5 * HANN_BANDWIDTH * alpha)))


def note_name(freq: float, *, cents: bool = False) -> str:
    """The nearest note in scientific pitch notation (A4 = 440 Hz), e.g. ``C2``; with ``cents`` its offset as
    well, e.g. ``C2+50`` (``C2+0`` for no offset, as librosa writes it)."""
    midi = 12 * (np.log2(freq) - np.log2(440.0)) + 69
    num = int(np.round(midi))
    name = f"{_NAMES[num % 12]}{int(num / 12) - 1}"
    return f"{name}{int(100 * np.around(midi - num, 2)):+02d}" if cents else name
