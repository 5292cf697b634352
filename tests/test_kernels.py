"""The pure kernels on synthetic signals, against the formulas of docs/numerics.md written out here."""

import numpy as np
import pytest
from support.reference import reference_lcn

from pipeline import cqt, kernels

SR = 22050
C2 = 65.40639132514966


def sine(freq, seconds=2.0, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_nframes_matches_spec():
    assert kernels.nframes_for(660000, 1024) == 644
    # frac(N/na) < 0.5: the overlapped stream has one frame fewer, so both get that many
    assert kernels.nframes_for(1024 * 10 + 100, 1024) == 9
    assert kernels.nframes_for(1024 * 10 + 600, 1024) == 10


def test_frame_streams_is_the_two_reshapes():
    y = np.arange(10 * 8 + 5, dtype=np.float32)
    Xa = kernels.frame_streams(y, na=8, nframes=10)
    assert Xa.shape == (10, 2, 8) and Xa.dtype == np.float32
    assert np.array_equal(Xa[3, 0], np.arange(24, 32))
    assert np.array_equal(Xa[3, 1], np.arange(28, 36))  # starts na // 2 later


def test_sine_440_peaks_in_bin_66():
    X = kernels.cqt_streams(sine(440.0), sr=SR, na=1024, fmin=C2, ns=96, n_octaves=4, nframes=40)
    assert X.shape == (40, 2, 96) and X.dtype == np.float32
    expected = round(24 * np.log2(440 / C2))
    assert expected == 66
    mid = X[10:30]  # away from the edges
    assert np.all(np.argmax(mid, axis=-1) == expected)


def test_cqt_matches_librosa_definition():
    import librosa

    y = sine(220.0, 3.0) + sine(330.0, 3.0)
    F = kernels.nframes_for(len(y), 1024)
    X = kernels.cqt_streams(y, sr=SR, na=1024, fmin=C2, ns=96, n_octaves=4, nframes=F)
    ref = np.abs(librosa.cqt(y[512:], sr=SR, hop_length=1024, fmin=C2, n_bins=96, bins_per_octave=24))
    assert np.allclose(X[:, 1, :], ref[:, :F].T, rtol=0, atol=1e-5 * np.abs(y).max())


def _signals():
    rng = np.random.default_rng(7)
    noise = (0.1 * rng.standard_normal(SR * 3)).astype(np.float32)
    chirp = (0.3 * np.sin(2 * np.pi * np.cumsum(np.linspace(60, 2000, SR * 3)) / SR)).astype(np.float32)
    return {
        "chord": sine(220.0, 3.0) + sine(277.2, 3.0) + sine(329.6, 3.0),
        "noise": noise,
        "chirp": chirp,
        "silence": np.zeros(SR * 3, np.float32),
        "odd length": noise[: SR * 3 - 333],
    }


@pytest.mark.parametrize("name", list(_signals()))
@pytest.mark.parametrize(
    "cfg",
    [
        dict(na=1024, ns=96, n_octaves=4, fmin=C2),
        dict(na=2048, ns=48, n_octaves=2, fmin=110.0),
        dict(na=512, ns=36, n_octaves=3, fmin=C2),
    ],
)
def test_cqt_plan_is_bit_identical_to_librosa_cqt(name, cfg):
    """The process's plan (from the disk cache, or built) follows librosa.cqt's algorithm: same bits, complex
    values and all; its float32 pass is within 1e-6 of the signal's maximum on every frame of both streams."""
    import librosa

    y = _signals()[name]
    kw = dict(
        sr=SR, hop_length=cfg["na"], fmin=cfg["fmin"], n_bins=cfg["ns"], bins_per_octave=cfg["ns"] // cfg["n_octaves"]
    )
    plan = kernels.cqt_plan(**kw)
    for _ in range(2):  # a plan used twice gives the same bits (nothing is rescaled in place)
        got = plan.exact(y)
        want = librosa.cqt(y, **kw)
        assert got.dtype == want.dtype and got.shape == want.shape
        assert np.array_equal(got, want)
    F = kernels.nframes_for(len(y), cfg["na"])
    fast = kernels.cqt_streams(y, sr=SR, nframes=F, precision="float32", **cfg)
    for s, ys in enumerate((y, y[cfg["na"] // 2 :])):
        want = np.abs(librosa.cqt(ys, **kw))[:, :F].T
        assert np.abs(fast[:, s] - want).max() <= 1e-6 * max(np.abs(want).max(), 1e-30), s


def test_a_plan_whose_hops_cannot_be_halved_computes_each_stream_on_its_own():
    """na=96 over 3 octaves: hops 12, 6, 3 after the early downsampling by 8; the second stream's shift of 48
    samples is not whole at the last octave's rate, so the streams are not shared (and still within 1e-6)."""
    import librosa

    y = _signals()["chord"]
    kw = dict(sr=SR, hop_length=96, fmin=C2, n_bins=72, bins_per_octave=24)
    plan = kernels.cqt_plan(**kw)
    assert not plan.shared and [h for _, _, h, _ in plan.octaves] == [12, 6, 3]
    F = kernels.nframes_for(len(y), 96)
    fast = plan.streams(y, na=96, nframes=F)
    for s, ys in enumerate((y, y[48:])):
        want = np.abs(librosa.cqt(ys, **kw))[:, :F].T
        assert np.abs(fast[:, s] - want).max() <= 1e-6 * np.abs(want).max()


def test_cqt_streams_equal_plain_librosa_cqt_bit_for_bit():
    import librosa

    y = _signals()["chirp"]
    F = kernels.nframes_for(len(y), 1024)
    X = kernels.cqt_streams(y, sr=SR, na=1024, fmin=C2, ns=96, n_octaves=4, nframes=F)
    for s, ys in enumerate((y, y[512:])):
        C = np.abs(librosa.cqt(ys, sr=SR, hop_length=1024, fmin=C2, n_bins=96, bins_per_octave=24))
        assert np.array_equal(X[:, s, :], C[:, :-1].T)


def test_gaussian_window_sums_to_one_and_is_symmetric():
    w = kernels.gaussian_window(9, 2.0)
    assert w.shape == (9, 9)
    assert np.isclose(w.sum(), 1.0)
    assert np.allclose(w, w.T) and np.allclose(w, w[::-1, ::-1])
    assert np.unravel_index(np.argmax(w), w.shape) == (4, 4)


@pytest.mark.parametrize("size,sigma,log", [(9, 2.0, False), (5, 1.0, False), (9, 2.0, True), (3, 3.0, False)])
def test_lcn_matches_direct_2d_formula(size, sigma, log):
    rng = np.random.default_rng(0)
    S = rng.gamma(2.0, 1.0, size=(50, 24)) * np.linspace(1, 5, 24)
    out = kernels.lcn(S, size=size, sigma=sigma, log=log)
    assert out.dtype == np.float32 and out.shape == S.shape
    assert np.allclose(out, reference_lcn(S, size, sigma, log), atol=1e-5)


def test_lcn_is_locally_zero_mean():
    rng = np.random.default_rng(1)
    S = rng.gamma(2.0, 1.0, size=(80, 48)) + 10 * np.outer(np.ones(80), np.hanning(48))
    out = kernels.lcn(S).astype(np.float64)
    w = kernels.gaussian_window(9, 2.0)
    from scipy.signal import correlate2d

    local_mean = correlate2d(out, w, mode="same") / correlate2d(np.ones_like(out), w, mode="same")
    # the local mean of the output is small next to its spread
    assert np.abs(local_mean[10:-10, 10:-10]).mean() < 0.1 * out.std()


def test_lcn_removes_the_level():
    rng = np.random.default_rng(2)
    S = rng.gamma(2.0, 1.0, size=(40, 24))
    assert np.allclose(kernels.lcn(S), kernels.lcn(S * 1000 + 0), atol=1e-5)  # scale invariance
    assert np.allclose(kernels.lcn(S), kernels.lcn(S + 7.0), atol=1e-4)  # offset removed


def test_lcn_silence_gives_zeros_not_nan():
    out = kernels.lcn(np.zeros((30, 24)))
    assert np.array_equal(out, np.zeros((30, 24), dtype=np.float32))
    out = kernels.lcn_streams(np.zeros((30, 2, 24), dtype=np.float32))
    assert np.isfinite(out).all() and not out.any()


def test_lcn_borders_are_weighted_means_of_the_inside():
    # A constant spectrogram has a local mean equal to the constant everywhere,
    # borders included, only if the borders divide by (w * 1): v must be 0.
    S = np.full((20, 12), 3.0)
    out = kernels.lcn(S)
    assert np.allclose(out, 0.0, atol=1e-6)
    # Zero-padding without the division would make the borders negative.
    x = S - __import__("scipy").signal.correlate2d(S, kernels.gaussian_window(9, 2.0), mode="same")
    assert x[0, 0] > 0.5


def test_lcn_streams_normalizes_each_stream_separately():
    rng = np.random.default_rng(3)
    Xs = rng.gamma(2.0, 1.0, size=(30, 2, 24)).astype(np.float32)
    Xs[:, 1] *= 50
    out = kernels.lcn_streams(Xs)
    for s in range(2):
        assert np.allclose(out[:, s], reference_lcn(Xs[:, s]), atol=1e-5)


@pytest.mark.parametrize("length,n_fft,hop", [(66150, 1024, 256), (16537, 2048, 64), (5000, 512, 512), (777, 256, 8)])
def test_stft_of_the_plan_is_librosa_stft_bit_for_bit(length, n_fft, hop):
    import librosa

    y = (0.1 * np.random.default_rng(length).standard_normal(length)).astype(np.float32)
    want = librosa.stft(y, n_fft=n_fft, hop_length=hop, window="ones", pad_mode="constant", dtype=np.complex64)
    got = cqt._stft_ones(y, n_fft=n_fft, hop_length=hop, dtype=np.complex64)
    assert got.shape == want.shape and np.array_equal(got, want)


def _real_length_clips():
    """30-s clips (GTZAN's 660000 samples): a sweep over the whole range, noise, sparse clicks, a clipped
    full-scale signal; every frame of them is compared, the boundary frames included."""
    n = 660000
    rng = np.random.default_rng(11)
    return {
        "sweep": (0.3 * np.sin(2 * np.pi * np.cumsum(np.linspace(40, 3000, n)) / SR)).astype(np.float32),
        "noise": (0.2 * rng.standard_normal(n)).astype(np.float32),
        "clicks": np.where(rng.random(n) < 1e-3, 0.9, 0.0).astype(np.float32),
        "full scale": np.clip(rng.standard_normal(n), -1, 1).astype(np.float32),
    }


@pytest.fixture(scope="module")
def real_length():
    """Each clip with plain librosa.cqt of both streams (frames x bins, last frame dropped: docs/numerics.md)."""
    import librosa

    out = {}
    for name, y in _real_length_clips().items():
        ref = [
            np.abs(librosa.cqt(ys, sr=SR, hop_length=1024, fmin=C2, n_bins=96, bins_per_octave=24))[:, :-1].T
            for ys in (y, y[512:])
        ]
        out[name] = (y, np.stack(ref, axis=1))
    return out


@pytest.mark.parametrize("name", list(_real_length_clips()))
def test_both_cqt_paths_against_plain_librosa_on_every_frame(real_length, name):
    """exact: librosa.cqt's bits; float32 (the default of Params): within 1e-6 of the clip's maximum on every
    frame of both streams (docs/numerics.md allows 1e-6 for the float32 default)."""
    y, want = real_length[name]
    F = want.shape[0]
    assert F == 644
    kw = dict(sr=SR, na=1024, fmin=C2, ns=96, n_octaves=4, nframes=F)
    exact = kernels.cqt_streams(y, precision="exact", **kw)
    assert np.array_equal(exact, want)
    fast = kernels.cqt_streams(y, precision="float32", **kw)
    assert fast.dtype == np.float32 and fast.shape == want.shape
    err = np.abs(fast.astype(np.float64) - want).max(axis=(1, 2))  # per frame
    assert err.max() <= 1e-6 * np.abs(want).max(), (err.argmax(), err.max() / np.abs(want).max())
    assert not np.array_equal(fast, exact)  # it is another computation, not the exact one under a new name
    out = np.full((F, 2, 96), np.nan, dtype=np.float32)
    assert kernels.cqt_streams(y, precision="float32", out=out, **kw) is out and np.array_equal(out, fast)


def test_the_frame_check_catches_a_second_stream_without_its_own_start(real_length):
    """The shared chain gets the second stream's first frames wrong (its zero-padded start, its resamplers'
    start-up), which the plan recomputes from the stream's own prefix: without that, the check of the test above
    fails on those frames and only those."""
    import copy

    y, want = real_length["noise"]
    plan = copy.copy(kernels.cqt_plan(sr=SR, hop_length=1024, fmin=C2, n_bins=96, bins_per_octave=24))
    assert plan.shared and 8 <= plan.patch_frames <= 32
    plan.patch_frames = 0
    got = plan.streams(y, na=1024, nframes=644)
    err = np.abs(got.astype(np.float64) - want).max(axis=2) / np.abs(want).max()  # (frame, stream)
    bad = np.flatnonzero(err.max(axis=1) > 1e-6)
    assert bad.size and bad.max() < 16 and err[:, 0].max() <= 1e-6


@pytest.mark.parametrize("name", list(_real_length_clips()))
@pytest.mark.parametrize("log", [False, True])
def test_float32_lcn_within_1e5_of_the_float64_formula(real_length, name, log):
    _, Xs = real_length[name]
    Xs = Xs.astype(np.float32)
    for precision in ("float32", "exact"):
        got = kernels.lcn_streams(Xs, log=log, precision=precision)
        for s in range(2):
            assert np.abs(got[:, s] - reference_lcn(Xs[:, s], log=log)).max() <= 1e-5, (precision, s)


def test_an_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision='float16' must be one of float32, exact"):
        kernels.lcn(np.ones((10, 10)), precision="float16")


def test_float32_stft_within_float32_rounding_of_librosa_stft():
    import librosa

    y = (0.1 * np.random.default_rng(5).standard_normal(66150)).astype(np.float32)
    want = librosa.stft(y, n_fft=2048, hop_length=256, window="ones", pad_mode="constant", dtype=np.complex64)
    got = cqt._stft_ones(y, n_fft=2048, hop_length=256, dtype=np.complex64, exact=False)
    assert got.dtype == np.complex64 and got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-6 * np.abs(want).max()
