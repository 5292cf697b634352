"""The driver's pitch arithmetic (pipeline.pitch) against librosa's own functions, which it must equal."""

import librosa
import numpy as np
import pytest

from pipeline import pitch

CONFIGS = [
    (96, 65.40639132514966, 24),
    (48, 110.0, 24),
    (36, 65.40639132514966, 12),
    (84, 32.7, 12),
    (2, 1000.0, 1),
    (120, 27.5, 36),
]


@pytest.mark.parametrize("n_bins,fmin,bpo", CONFIGS)
def test_frequencies_cutoff_and_notes_equal_librosa(n_bins, fmin, bpo):
    freqs = pitch.cqt_frequencies(n_bins, fmin=fmin, bins_per_octave=bpo)
    want = librosa.cqt_frequencies(n_bins, fmin=fmin, bins_per_octave=bpo)
    assert np.array_equal(freqs, want)
    alpha = librosa.filters._relative_bandwidth(freqs=want)
    _, cutoff = librosa.filters.wavelet_lengths(
        freqs=want, sr=44100, window="hann", filter_scale=1, gamma=0, alpha=alpha
    )
    assert pitch.cqt_cutoff(freqs) == pytest.approx(cutoff, rel=1e-12)
    assert [pitch.note_name(f, cents=True) for f in freqs] == list(librosa.hz_to_note(want, cents=True, unicode=False))
    assert [pitch.note_name(f) for f in freqs] == list(librosa.hz_to_note(want, unicode=False))


def test_the_nyquist_check_refuses_what_librosa_cqt_refuses():
    from pipeline.exceptions import ParameterError
    from pipeline.params import Params

    with pytest.raises(
        ParameterError,
        match=r"the top CQT bin \(4066.8 Hz, filter reaching 4154.9 Hz\) "
        r"exceeds the Nyquist frequency sr/2=4000 Hz",
    ):
        Params(sr=8000, ns=144, n_octaves=6)
    with pytest.raises(librosa.ParameterError, match="exceed the Nyquist"):
        librosa.cqt(np.zeros(8000 * 3, np.float32), sr=8000, hop_length=64, fmin=65.406, n_bins=144, bins_per_octave=24)
    Params(sr=22050)  # GTZAN's: C2 to C6 is far below 11025 Hz


def test_the_driver_side_imports_no_librosa_numba_or_scipy_signal():
    """Parameters, their checks and the coordinates cost the driver no librosa import (about 1 s of CPU)."""
    import subprocess
    import sys

    code = (
        "import sys; import pipeline.cli, pipeline.run; from pipeline.params import Params; "
        "from pipeline.output import layout; p = Params(); "
        "layout.coordinates({'na': 1024, 'sr': 22050, 'ns': 96, 'Nframes': 644, 'Nclips': 2, 'fmin': p.fmin, "
        "'bins_per_octave': 24, 'labels': ['a']}, ['Xs']); layout.software_versions(); "
        "print(sorted(m for m in ('librosa', 'numba', 'scipy.signal', 'scipy.ndimage') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
