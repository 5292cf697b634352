"""Bad input (docs/reliability.md, "Bad input"): one clear line per bad clip, never a traceback."""

import json
import re
import shutil

import h5py
import numpy as np
import pytest
import soundfile as sf
from support.cli import audioprep
from support.data import SMALL, SMALL_ARGS, SMALL_SECONDS, genre_folder

from pipeline import BadInputError
from pipeline.inputs import open_index, preflight
from pipeline.params import Params
from pipeline.synth import synth_dataset

SR = 22050


def _rewrite(clip, ext: str, change, **write):
    """The clip ``clip`` replaced by ``change(samples)`` in another file format (``ext``); its new path."""
    y, sr = sf.read(clip, dtype="float32")
    clip.unlink()
    new = clip.with_suffix(ext)
    sf.write(new, change(y), sr, **write)
    return new


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory):
    """3 genres x 4 clips; four of them bad: corrupt, 44.1 kHz, short, stereo."""
    root = synth_dataset(tmp_path_factory.mktemp("bad"), genres=3, clips=4, seconds=SMALL_SECONDS, seed=2)
    rng = np.random.default_rng(0)
    y = rng.uniform(-0.5, 0.5, int(SMALL_SECONDS * 44100)).astype(np.float32)
    bad = {
        "corrupt": root / "blues" / "blues.00001.au",
        "rate": root / "classical" / "classical.00002.au",
        "short": root / "country" / "country.00000.au",
        "stereo": root / "country" / "country.00003.au",
    }
    bad["corrupt"].write_bytes(rng.bytes(40000))
    sf.write(bad["rate"], y, 44100, format="AU", subtype="PCM_16")
    sf.write(bad["short"], y[:SR], SR, format="AU", subtype="PCM_16")
    sf.write(bad["stereo"], np.stack([y[: len(y) // 2]] * 2, axis=1), SR, format="AU", subtype="PCM_16")
    return root, bad


REASONS = {
    "corrupt": r"not a decodable audio file",
    "rate": r"^sample rate 44100 Hz; needs sr=22050 \(use --resample\)$",
    "short": rf"^1.00 s long \(22050 samples at 22050 Hz\); needs at least Nsamples={SMALL['nsamples']} samples "
    rf"at 22050 Hz \(3.00 s\) \(use --pad-short to keep it zero-padded, or a smaller --nsamples\)$",
    "stereo": r"^2 channels; needs mono \(use --mono\)$",
}


def test_preflight_lists_each_bad_clip_with_its_reason(bad_folder, small_params):
    root, bad = bad_folder
    problems = preflight(open_index(root), small_params)
    assert sorted(p.path for p in problems) == sorted(str(p) for p in bad.values())
    import re

    for kind, path in bad.items():
        (p,) = [p for p in problems if p.path == str(path)]
        assert re.search(REASONS[kind], p.reason), (kind, p.reason)


@pytest.mark.slow
def test_bad_folder_fails_with_one_line_per_file(bad_folder, tmp_path):
    root, bad = bad_folder
    p = audioprep("run", root, "-o", tmp_path, *SMALL_ARGS, check=False, cwd=tmp_path)
    assert p.returncode == 3
    assert "Traceback" not in p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("error: /")]
    assert len(lines) == 4
    for path in bad.values():
        assert sum(str(path) in ln for ln in lines) == 1
    assert "--skip-bad" in p.stderr
    assert not (tmp_path / "audio.hdf5").exists() and not (tmp_path / "audio.zarr").exists()


@pytest.mark.slow
def test_skip_bad_completes_and_flags_exactly_the_bad_clips(bad_folder, tmp_path):
    root, bad = bad_folder
    p = audioprep("run", root, "-o", tmp_path, "--skip-bad", *SMALL_ARGS, cwd=tmp_path)
    assert "4 bad clip(s)" in p.stderr
    with h5py.File(tmp_path / "audio.hdf5") as f:
        valid = f["valid"][...]
        expected = np.ones((3, 4), bool)
        for g, c in [(0, 1), (1, 2), (2, 0), (2, 3)]:
            expected[g, c] = False
        assert np.array_equal(valid, expected)
        assert not f["Xs"][0, 1].any() and not f["Xa"][2, 3].any()
        assert f["Xs"][0, 0].any()
        reasons = json.loads(f.attrs["bad_clips"])
        assert sorted(r["path"] for r in reasons) == sorted(str(p) for p in bad.values())
    import zarr

    assert np.array_equal(zarr.open_group(str(tmp_path / "audio.zarr"), mode="r")["valid"][...], expected)


@pytest.mark.slow
def test_clip_failing_only_in_full_decode_does_not_end_the_run(tmp_path, client, small_params):
    """A FLAC whose header and last frame are fine but whose middle frames are zeroed passes pre-flight, fails to
    decode.  (A FLAC cut short no longer passes: pre-flight seeks to its last sample.)"""
    from pipeline.run import run

    root = synth_dataset(tmp_path / "in", genres=2, clips=2, seconds=SMALL_SECONDS, seed=3)
    flac = _rewrite(root / "blues" / "blues.00001.au", ".flac", lambda y: y, format="FLAC")
    data = flac.read_bytes()
    n = len(data)
    flac.write_bytes(data[: n // 3] + bytes(n // 6) + data[n // 3 + n // 6 :])
    assert preflight(open_index(root), small_params) == []  # the header alone looks fine

    with pytest.raises(
        BadInputError, match=r"blues.00001.flac: decod.*; 1 clip\(s\) failed; the other clips are saved"
    ):
        run(root, tmp_path / "out", small_params, client=client)
    assert not (tmp_path / "out" / "audio.hdf5").exists()
    import zarr

    done = zarr.open_group(str(tmp_path / "out" / "audio.zarr"), mode="r")["done"][...]
    assert done.sum() == 3 and not done[0, 1]  # the other clips' work is kept

    res = run(root, tmp_path / "out", small_params, client=client, skip_bad=True)
    assert res.resumed == 3 and res.computed == 0 and len(res.bad) == 1
    with h5py.File(tmp_path / "out" / "audio.hdf5") as f:
        assert f["valid"][...].tolist() == [[True, False], [True, True]]


@pytest.mark.parametrize(
    "setup,pattern",
    [
        ("empty_genre", r"empty genre folder: holds no audio files"),
        ("unequal", r"genres hold unequal numbers of clips \(blues=2, classical=1\); use --layout clips .*, or --pad"),
        ("empty_file", r"empty file \(0 bytes\)"),
        ("text_file", r"not a decodable audio file"),
        ("no_genres", r"holds no genre sub-folders"),
    ],
)
def test_folder_layout_problems(tmp_path, setup, pattern):
    root = genre_folder(
        tmp_path / "genres",
        {"blues": 2, "classical": 2},
        lambda g, c: np.zeros(SR * 4, np.float32),
        ext=".au",
        format="AU",
    )
    if setup == "empty_genre":
        (root / "jazz").mkdir()
    elif setup == "unequal":
        (root / "classical" / "classical.00001.au").unlink()
    elif setup == "empty_file":
        (root / "blues" / "blues.00000.au").write_bytes(b"")
    elif setup == "text_file":
        (root / "blues" / "blues.00000.au").write_text("this is not audio\n" * 100)
    elif setup == "no_genres":
        shutil.rmtree(root)
        root.mkdir()
    params = Params(nsamples=SR * 3)
    try:
        problems = preflight(open_index(root), params)
    except BadInputError as e:
        problems = e.problems
    import re

    assert any(re.search(pattern, p.reason) for p in problems), problems


@pytest.mark.parametrize(
    "damage,pattern",
    [
        ("drop_attr", r"lacks the attribute\(s\) Nsamples"),
        ("wrong_ngenres", r"attribute Ngenres=5 but the file holds 2 datasets"),
        ("wrong_shape", r"shape \(100, 2\) differs from \(Nsamples, Nclips\)"),
        ("not_hdf5", r"not a folder, a manifest .csv or a readable HDF5 file"),
    ],
)
def test_bad_gtzan_hdf5(tmp_path, damage, pattern):
    path = tmp_path / "gtzan.hdf5"
    if damage == "not_hdf5":
        path.write_text("hello")
    else:
        with h5py.File(path, "w") as f:
            for genre in ("blues", "jazz"):
                f.create_dataset(
                    genre, data=np.zeros((1000 if damage != "wrong_shape" or genre == "blues" else 100, 2), np.float32)
                )
            f.attrs.update({"Ngenres": 2, "Nclips": 2, "sr": SR, "Nsamples": 1000})
            if damage == "drop_attr":
                del f.attrs["Nsamples"]
            if damage == "wrong_ngenres":
                f.attrs["Ngenres"] = 5
    with pytest.raises(BadInputError, match=pattern):
        open_index(path)


def test_resample_and_mono_make_bad_clips_good(bad_folder, small_params):
    root, bad = bad_folder
    params = small_params.replace(resample=True, mono=True)
    problems = preflight(open_index(root), params)
    # only the corrupt and the short file stay bad
    assert sorted(p.path for p in problems) == sorted([str(bad["corrupt"]), str(bad["short"])])
    from pipeline.inputs import load_clip

    refs = {r.source: r for r in open_index(root).clips}
    y = load_clip(refs[str(bad["rate"])], params)
    assert y.shape == (params.nsamples,) and y.dtype == np.float32


@pytest.mark.slow
def test_clip_failing_mid_run_is_listed_in_both_stores(tmp_path, client, small_params):
    """bad_clips of audio.hdf5 is the store's final list, not the one the HDF5 writer saw when it started."""
    import zarr

    from pipeline.run import run

    def with_nan(y):
        y[1000] = np.nan  # a float WAV holding NaN: the header is fine, the computation is not
        return y

    root = synth_dataset(tmp_path / "in", genres=2, clips=2, seed=7, seconds=SMALL_SECONDS)
    _rewrite(root / "classical" / "classical.00000.au", ".wav", with_nan, subtype="FLOAT")
    res = run(root, tmp_path / "out", small_params, client=client, skip_bad=True)
    assert len(res.bad) == 1 and "classical.00000.wav" in res.bad[0]
    with h5py.File(tmp_path / "out" / "audio.hdf5") as f:
        in_hdf5 = json.loads(f.attrs["bad_clips"])
        assert f["valid"][...].tolist() == [[True, True], [False, True]]
    in_zarr = json.loads(zarr.open_group(str(tmp_path / "out" / "audio.zarr"), mode="r").attrs["bad_clips"])
    assert in_hdf5 == in_zarr and [(b["genre"], b["clip"]) for b in in_hdf5] == [(1, 0)]
    assert in_hdf5[0]["path"].endswith("classical.00000.wav")


@pytest.fixture(scope="module")
def all_fixable(tmp_path_factory):
    """2 genres x 2 clips, every one bad but fixable: stereo 44.1 kHz, two of them also short."""
    root = tmp_path_factory.mktemp("fixable") / "genres"
    rng = np.random.default_rng(5)
    for g in ("jazz", "rock"):
        (root / g).mkdir(parents=True)
        for c, seconds in enumerate((SMALL_SECONDS + 1, 1.0)):
            y = rng.uniform(-0.3, 0.3, (int(seconds * 44100), 2)).astype(np.float32)
            sf.write(root / g / f"{g}.{c}.wav", y, 44100, subtype="PCM_16")
    return root


def test_when_the_same_options_fix_every_clip_the_closing_line_names_them(all_fixable, tmp_path):
    """Before: the closing line said '... or run with --skip-bad', which then gave exit 0 and a file of zeros."""
    p = audioprep("run", all_fixable, "-o", tmp_path / "o", *SMALL_ARGS, cwd=tmp_path, check=False)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 3 and len(lines) == 5, p.stderr
    assert lines[-1] == f"error: 4 problem(s) in {all_fixable}; all 4 pass with --mono --resample --pad-short"
    ok = audioprep(
        "run", all_fixable, "-o", tmp_path / "o", *SMALL_ARGS, "--mono", "--resample", "--pad-short", cwd=tmp_path
    )
    assert "4 clips computed" in ok.stdout


def test_a_run_left_with_no_valid_clip_fails_and_writes_no_hdf5(all_fixable, tmp_path):
    p = audioprep("run", all_fixable, "-o", tmp_path / "o", *SMALL_ARGS, "--skip-bad", cwd=tmp_path, check=False)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 3, p.stderr
    assert lines[-1] == (
        "error: no valid clip is left: all 4 clip(s) are bad, so no audio.hdf5 is written; all 4 "
        "pass with --mono --resample --pad-short"
    )
    assert not (tmp_path / "o" / "audio.hdf5").exists()


def _cut(path, keep_bytes: int):
    """``path`` cut after ``keep_bytes`` bytes, as an interrupted copy or download leaves it."""
    data = path.read_bytes()
    path.write_bytes(data[:keep_bytes])


@pytest.fixture(scope="module")
def truncated(tmp_path_factory):
    """One genre: a whole WAV, and a WAV (672,000 samples stated, 335,989 held), an AU, an AIFF and a FLAC each
    cut near its middle."""
    root = tmp_path_factory.mktemp("cut") / "genres"
    (root / "rock").mkdir(parents=True)
    y = np.random.default_rng(3).uniform(-0.3, 0.3, 672000).astype(np.float32)
    sf.write(root / "rock" / "a_whole.wav", y, SR, subtype="PCM_16")
    for fmt in ("wav", "au", "aiff", "flac"):
        sf.write(root / "rock" / f"cut.{fmt}", y, SR, subtype="PCM_16")
    _cut(root / "rock" / "cut.wav", 44 + 335989 * 2)  # a 44-byte header, then 2 bytes a sample
    for fmt in ("au", "aiff", "flac"):
        _cut(root / "rock" / f"cut.{fmt}", (root / "rock" / f"cut.{fmt}").stat().st_size // 2)
    return root


def test_a_truncated_file_is_bad_at_preflight_even_with_pad_short(truncated):
    """Before: libsndfile read the cut WAV and AU as shorter clips, '15.24 s long ... all pass with --pad-short',
    and with --pad-short they were stored as valid."""
    problems = {
        p.path.rsplit("/", 1)[-1]: p.reason
        for p in preflight(open_index(truncated), Params(nsamples=700000, pad_short=True))
    }
    assert sorted(problems) == ["cut.aiff", "cut.au", "cut.flac", "cut.wav"], problems
    assert problems["cut.wav"].startswith(
        "truncated: its header states 672000 samples but the file holds 335989 (672022 bytes missing)"
    )
    for name in ("cut.au", "cut.aiff"):
        assert re.match(r"truncated: its header states 672000 samples but the file holds 33\d{4} ", problems[name])
    assert problems["cut.flac"].startswith("truncated: its header states 672000 samples but its end cannot be decoded")


def test_a_truncated_file_is_one_line_and_no_option_claims_to_fix_it(truncated, tmp_path):
    p = audioprep("run", truncated, "-o", tmp_path / "o", "--nsamples", 700000, cwd=tmp_path, check=False)
    assert p.returncode == 3 and "Traceback" not in p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("error: ")]
    assert (
        f"error: {truncated / 'rock' / 'cut.wav'}: truncated: its header states 672000 samples but the file "
        "holds 335989 (672022 bytes missing); a cut or partly copied file stays bad (copy or download it "
        "again)" in lines
    )
    assert "pass with" not in lines[-1] and "--skip-bad" in lines[-1], lines[-1]
    assert not (tmp_path / "o").exists()


def test_a_truncated_file_is_bad_at_decode_even_with_pad_short(truncated):
    """The decode checks it again (a file cut after pre-flight): before, the cut WAV came back zero-padded."""
    from pipeline.inputs import load_clip

    params = Params(nsamples=700000, pad_short=True)
    for ref in open_index(truncated).clips:
        if ref.source.endswith("a_whole.wav"):
            assert load_clip(ref, params).shape == (700000,)
            continue
        with pytest.raises(
            BadInputError,
            match=rf"^{re.escape(ref.source)}: (truncated: its header states "
            r"672000 samples|decoding failed)",
        ):
            load_clip(ref, params)
