"""The input formats' interface (pipeline/inputs): a format is chosen from the input's content or named with
--format, a clip's checks come back as a record with its fixes as data, and pre-flight returns the lengths."""

import shutil

import h5py
import numpy as np
import pytest
import soundfile as sf
from support.cli import audioprep

from pipeline import BadInputError
from pipeline.exceptions import Problem
from pipeline.inputs import FORMATS, InputFormat, Verdict, inspect_clip, open_index, preflight
from pipeline.inputs.report import common_fix
from pipeline.params import Params

SR = 22050
TINY = Params(nsamples=2048, datasets=("Xa",))


def _folder(root, lengths=(4096, 4096)):
    for g, genre in enumerate(("jazz", "rock")):
        (root / genre).mkdir(parents=True)
        rng = np.random.default_rng(g)
        sf.write(root / genre / "a.wav", (0.1 * rng.standard_normal(lengths[g])).astype(np.float32), SR)
    return root


def _gtzan(path):
    with h5py.File(path, "w") as f:
        for genre in ("jazz", "rock"):
            f.create_dataset(genre, data=np.zeros((2048, 1), np.float32))
        f.attrs.update({"Ngenres": 2, "Nclips": 1, "sr": SR, "Nsamples": 2048})
    return path


def test_every_format_implements_the_interface():
    assert list(FORMATS) == ["fma", "folder", "jamendo", "manifest", "hdf5"]
    for name, fmt in FORMATS.items():
        assert isinstance(fmt, InputFormat) and fmt.name == name and fmt.description


def test_the_format_is_guessed_from_content_not_only_from_the_name(tmp_path):
    """Before: a manifest was a file ending in .csv and any other file was taken for a gtzan.hdf5, so a
    manifest saved as clips.txt was refused as 'not ... a readable HDF5 file'."""
    root = _folder(tmp_path / "in")
    listing = tmp_path / "clips.txt"
    listing.write_text("file\tgenre\nin/jazz/a.wav\tjazz\nin/rock/a.wav\trock\n")
    index = open_index(listing)
    assert index.kind == "manifest" and index.labels == ("jazz", "rock")
    assert [r.source for r in index.clips] == [str(root / "jazz" / "a.wav"), str(root / "rock" / "a.wav")]
    blob = _gtzan(tmp_path / "gtzan.data")
    assert open_index(blob).kind == "hdf5"
    misnamed = tmp_path / "gtzan.csv"  # an HDF5 file named .csv is still HDF5
    shutil.copy(blob, misnamed)
    assert open_index(misnamed).kind == "hdf5"
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    with pytest.raises(
        BadInputError,
        match=r"notes.txt: not a folder, a manifest .csv or a readable HDF5 file .*"
        r"name its format with --format \(fma, folder, jamendo, manifest, hdf5\)",
    ):
        open_index(text)


def test_format_overrides_the_guess_and_an_unknown_one_is_refused(tmp_path):
    listing = tmp_path / "clips.csv"
    listing.write_text("path,label\nx.wav,a\n")
    with pytest.raises(BadInputError, match=r"clips.csv: not a folder, a manifest .csv or a readable HDF5 file"):
        open_index(listing, format="hdf5")  # read as what it was named, not as what it holds
    p = audioprep("run", listing, "-o", tmp_path / "o", "--format", "wav", check=False, cwd=tmp_path)
    assert p.returncode == 1
    assert p.stderr.strip() == (
        "error: --format wav is not an input format; give one of fma, folder, jamendo, "
        "manifest, hdf5 (or leave it out: the input's content says its format)"
    )
    p = audioprep("run", listing, "-o", tmp_path / "o", "--format", "hdf5", check=False, cwd=tmp_path)
    assert p.returncode == 3 and "not a folder, a manifest .csv or a readable HDF5 file" in p.stderr
    assert not (tmp_path / "o").exists()


def test_inspect_returns_a_record_with_the_fixes_as_data(tmp_path):
    path = tmp_path / "in" / "jazz" / "s.wav"
    path.parent.mkdir(parents=True)
    sf.write(path, np.zeros((1000, 2), np.float32), 44100)
    (ref,) = open_index(tmp_path / "in").clips
    v = inspect_clip(ref, TINY)
    assert isinstance(v, Verdict)
    assert v.fixes == ("mono", "resample", "pad_short") and v.samples == 0
    assert v.reason.startswith("2 channels, sample rate 44100 Hz and 0.02 s long")
    ok = inspect_clip(ref, Params(nsamples=2048, mono=True, resample=True, pad_short=True, datasets=("Xa",)))
    assert ok == Verdict(None, samples=-(-1000 * SR // 44100), start=0.0)
    past = inspect_clip(ref, Params(nsamples=2048, offset=5.0, datasets=("Xa",)))
    assert "use a smaller --offset" in past.reason and past.fixes == ()  # no flag makes it pass


def test_the_closing_line_comes_from_the_fixes_not_from_the_text():
    """Before: common_fix parsed '(use --mono ...)' back out of each reason."""
    assert common_fix([Problem("a", "says (use --mono) but no flag fixes it")]) is None
    assert common_fix([Problem("a", "x", ("pad_short", "mono")), Problem("b", "y", ("pad",))]) == (
        "pad",
        "mono",
        "pad_short",
    )


def test_preflight_returns_the_lengths_and_leaves_the_index_as_it_was(tmp_path):
    """Before: pre-flight wrote each slot's samples into the index it was given."""
    root = _folder(tmp_path / "in", lengths=(4096, 1500))
    index = open_index(root)
    checked = preflight(index, Params(nsamples=2048, pad_short=True, datasets=("Xa",)))
    assert checked == [] and index.samples is None and index.starts is None
    assert checked.samples.tolist() == [[2048], [1500]] and checked.starts.tolist() == [[0.0], [0.0]]
    measured = index.measured(checked)
    assert measured.samples.tolist() == [[2048], [1500]] and measured.clips == index.clips


@pytest.mark.parametrize("rate, n", [(44100, 1_323_000), (48000, 100_001), (16000, 12_345), (8000, 7)])
def test_resampling_equals_librosa_bit_for_bit_without_importing_it(rate, n, tmp_path):
    import subprocess
    import sys

    import librosa

    from pipeline.inputs.audio import resample

    y = np.random.default_rng(rate).standard_normal(n).astype(np.float32)
    got = resample(y, rate, 22050)
    want = librosa.resample(y, orig_sr=rate, target_sr=22050)
    assert got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want)
    # A worker loading a 44.1 kHz file imports no librosa (nor numba) to resample it.
    import soundfile as sf

    sf.write(tmp_path / "a.wav", y[: rate // 10], rate)
    code = (
        "import sys; from pipeline.inputs.audio import resample; import soundfile as sf; "
        f"y, r = sf.read({str(tmp_path / 'a.wav')!r}, dtype='float32'); resample(y, r, 22050); "
        "print('librosa' in sys.modules, 'numba' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
