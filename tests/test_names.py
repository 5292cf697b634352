"""Inputs as users have them: spreadsheet manifests, odd file and genre names, broken MP3s, changed files,
a genre left with no valid clip.  Real files, real runs on the session's LocalCluster."""

import os
import shutil
import struct
import subprocess
import unicodedata

import h5py
import numpy as np
import pytest
import soundfile as sf
from support.cli import audioprep
from support.data import SMALL, SMALL_SECONDS

from pipeline import BadInputError, StoreError
from pipeline.inputs import open_index, preflight
from pipeline.output import to_matrix
from pipeline.params import Params
from pipeline.run import run
from pipeline.synth import synth_dataset

SR = 22050
NFC, NFD = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
TINY = Params(nsamples=2048, datasets=("Xa",))


def _errors(p):
    return [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]


def _clip(path, seed, seconds=0.2):
    rng = np.random.default_rng(seed)
    sf.write(path, (0.1 * rng.standard_normal(int(SR * seconds))).astype(np.float32), SR, subtype="PCM_16")


# -- manifests from spreadsheets ---------------------------------------------------------------------------


def test_semicolon_manifest_with_spreadsheet_headers_is_read(tmp_path):
    """Before: 'has no path column ... its columns: file_path;category' (Excel's CSV in much of Europe)."""
    for c in range(3):
        _clip(tmp_path / f"t{c}.wav", c)
    m = tmp_path / "m.csv"
    m.write_text("File Path;Category\nt0.wav;rock\nt1.wav;jazz\nt2.wav;rock\n", encoding="utf-8")
    index = open_index(m, pad=True)
    assert index.labels == ("jazz", "rock") and [r.rel for r in index.clips] == ["t1.wav", "t0.wav", "t2.wav"]
    # a column named as the user sees it, in any case, with spaces or underscores
    m.write_text("ID;File Path;Genre Top\n1;t0.wav;rock\n2;t1.wav;jazz\n", encoding="utf-8")
    for given in ("file_path", "FILE PATH", "File-Path"):
        index = open_index(m, pad=True, path_column=given, label_column="genre_top")
        assert [r.rel for r in index.clips] == ["t1.wav", "t0.wav"]
    tab = tmp_path / "t.tsv.csv"
    tab.write_text("path\tlabel\nt0.wav\trock\n", encoding="utf-8")
    assert [r.rel for r in open_index(tab).clips] == ["t0.wav"]


def test_a_manifest_failure_is_one_error_line(tmp_path):
    m = tmp_path / "m.csv"
    m.write_text("track;duration;style\nt0.wav;30;rock\n", encoding="utf-8")
    p = audioprep("run", m, "-o", tmp_path / "o", check=False, cwd=tmp_path)
    assert p.returncode == 3
    assert _errors(p) == [
        f"error: {m}: has no path column (looked for path, filepath, file_path, filename, file, "
        "audio, audio_path); its columns: track, duration, style; name the path column with "
        "--path-column"
    ]
    assert p.stderr.count("\n") == 1


def test_a_windows_1252_manifest_is_named_as_such_and_the_fix_it_gives_works(tmp_path):
    """Before: 'not UTF-8 text (invalid start byte at byte 23)' with a hint about header rows."""
    (tmp_path / "café").mkdir()
    for c in range(2):
        _clip(tmp_path / "café" / f"t{c}.wav", c)
    m = tmp_path / "tracks.csv"
    m.write_bytes("path,genre\ncafé/t0.wav,électro\ncafé/t1.wav,électro\n".encode("cp1252"))
    p = audioprep("run", m, "-o", tmp_path / "o", "--nsamples", "2048", check=False, cwd=tmp_path)
    assert p.returncode == 3
    fixed = tmp_path / "tracks-utf8.csv"
    assert _errors(p) == [
        f"error: {m}: not UTF-8 text: byte 0xe9 at byte 14, line 2 ('café/t0.wav,électro'); it "
        "looks like Windows-1252 text (Excel's 'CSV' on Windows); save it as UTF-8 (Excel: 'CSV "
        f"UTF-8'), or convert it: iconv -f WINDOWS-1252 -t UTF-8 {m} > {fixed}"
    ]
    command = p.stderr.split("convert it: ", 1)[1].strip()
    subprocess.run(["bash", "-c", command], check=True)  # the fix, as the line gives it
    index = open_index(fixed)
    assert index.labels == ("électro",) and [r.rel for r in index.clips] == ["café/t0.wav", "café/t1.wav"]


# -- names ----------------------------------------------------------------------------------------------------


def test_a_newline_in_a_file_name_prints_as_one_line(tmp_path):
    root = tmp_path / "in"
    (root / "rock").mkdir(parents=True)
    (root / "rock" / "bad\nname.wav").write_bytes(b"")
    p = audioprep("run", root, "-o", tmp_path / "o", "--nsamples", "2048", check=False, cwd=tmp_path)
    assert p.returncode == 3
    assert _errors(p) == [
        f"error: {root}/rock/bad\\nname.wav: empty file (0 bytes); 1 problem(s) in {root}; fix "
        "or remove the bad clips, or run with --skip-bad to go on without them"
    ]
    assert p.stderr.count("\n") == 1


def test_info_prints_names_holding_a_newline_or_a_direction_override_as_one_line_each(tmp_path, client):
    """Before: 'audioprep info' printed the labels and sources raw, a newline splitting a line in two and U+202E
    turning the rest of the line around, where the error lines escape them."""
    root = tmp_path / "in"
    genres = ("new\nline", "evil\u202eavw.exe")
    for g, name in enumerate(genres):
        (root / name).mkdir(parents=True)
        _clip(root / name / f"t{g}\n.wav", g)
    run(root, tmp_path / "o", TINY, client=client)
    for target in ("audio.hdf5", "audio.zarr"):
        text = audioprep("info", tmp_path / "o" / target).stdout
        assert "\u202e" not in text and "new\nline" not in text
        assert "labels: evil\\u202eavw.exe, new\\nline" in text.splitlines()
        assert (
            "source: evil\\u202eavw.exe/t1\\n.wav ... new\\nline/t0\\n.wav (each slot's file, in the 'source' "
            "array)" in text.splitlines()
        )


def test_a_manifest_column_given_with_a_folder_is_refused(tmp_path):
    """Before: --path-column with a genres folder was ignored without a word."""
    root = tmp_path / "in"
    (root / "rock").mkdir(parents=True)
    _clip(root / "rock" / "a.wav", 0)
    p = audioprep("run", root, "-o", tmp_path / "o", "--path-column", "file", check=False, cwd=tmp_path)
    assert p.returncode == 1
    assert _errors(p) == [
        f"error: --path-column name(s) a manifest's column, but {root} is a genres folder: leave "
        "--path-column out, or give a manifest .csv"
    ]
    assert not (tmp_path / "o").exists()
    from pipeline import ParameterError, preprocess

    with pytest.raises(
        ParameterError,
        match=r"^path_column and label_column name\(s\) a manifest's column, but .* "
        r"is a genres folder: leave path_column and label_column out",
    ):
        preprocess(root, tmp_path / "o", path_column="file", label_column="genre", progress=False)


def test_nfc_and_nfd_folders_of_one_name_are_refused(tmp_path):
    root = tmp_path / "in"
    for name in (NFC, NFD):
        (root / name).mkdir(parents=True)
        _clip(root / name / "a.wav", 1)
    with pytest.raises(BadInputError, match=r"genre folders .* have the same name 'café' once Unicode-normalized"):
        index = open_index(root)
        raise BadInputError(preflight(index, TINY))


def test_an_nfd_genre_is_found_by_its_typed_name(tmp_path, client):
    """Before: a folder named on macOS (NFD) was a genre that 'café' typed (NFC) did not find."""
    root = tmp_path / "in"
    for name in (NFD, "rock"):
        (root / name).mkdir(parents=True)
        _clip(root / name / "a.wav", len(name))
    res = run(root, tmp_path / "o", TINY, client=client)
    assert res.computed == 2
    with h5py.File(tmp_path / "o" / "audio.hdf5") as f:
        labels = [x.decode() for x in f.attrs["labels"]]
        assert labels == [NFC, "rock"]  # stored in NFC
        assert f["source"].asstr()[0, 0] == f"{NFD}/a.wav"  # the file is named as it is on disk
    got = to_matrix(tmp_path / "o" / "audio.hdf5", "Xa", genres=[NFC])
    want = to_matrix(tmp_path / "o" / "audio.hdf5", "Xa", genres=[0])
    assert got.shape[0] > 0 and np.array_equal(got, want)
    assert np.array_equal(to_matrix(tmp_path / "o" / "audio.hdf5", "Xa", genres=[NFD]), want)


# -- messages -------------------------------------------------------------------------------------------------


def _id3_tag() -> bytes:
    text = b"Only a title"
    frame = b"TIT2" + struct.pack(">I", len(text) + 1) + b"\x00\x00\x00" + text
    n = len(frame)
    return b"ID3\x03\x00\x00" + bytes([(n >> 21) & 0x7F, (n >> 14) & 0x7F, (n >> 7) & 0x7F, n & 0x7F]) + frame


def test_an_mp3_holding_only_an_id3_tag_says_so(tmp_path):
    """Before: 'File does not exist or is not a regular file (possibly a pipe?)'."""
    root = tmp_path / "in"
    (root / "rock").mkdir(parents=True)
    (root / "rock" / "tag.mp3").write_bytes(_id3_tag())
    (root / "rock" / "junk.mp3").write_bytes(b"not audio at all " * 40)
    problems = {os.path.basename(p.path): p.reason for p in preflight(open_index(root), TINY)}
    assert problems["tag.mp3"] == "holds an ID3 tag (33 bytes) but no audio: an MP3 without MPEG frames"
    assert "does not exist" not in problems["junk.mp3"] and problems["junk.mp3"].startswith("not a decodable")


def test_a_changed_input_file_is_named(tmp_path, client):
    root = synth_dataset(tmp_path / "in", genres=2, clips=2, seconds=SMALL_SECONDS, seed=3)
    params = Params(**SMALL, datasets=("Xa",))
    run(root, tmp_path / "o", params, client=client)
    changed = root / "blues" / "blues.00001.au"
    y, _ = sf.read(changed, dtype="float32")
    sf.write(changed, y * 0.5, SR, format="AU", subtype="PCM_16")
    os.utime(changed, ns=(1, 1))
    shutil.copy(root / "blues" / "blues.00000.au", root / "classical" / "classical.00002.au")
    # Only the files changed: the run keeps the unchanged files' clips (tests/test_regrow.py).  With other
    # parameters too, the refusal names the files that changed since.
    with pytest.raises(
        StoreError,
        match=r"made with other parameters \(lcn_sigma: 2.0 -> 3.0\): changed blues/blues.00001.au; added "
        r"classical/classical.00002.au; use --overwrite to replace it \(it "
        r"computes all 5 clips again, those of the 3 unchanged file\(s\) too\)",
    ):
        run(root, tmp_path / "o", Params(**SMALL, datasets=("Xa",), lcn_sigma=3.0), client=client, pad=True)


# -- a genre with no valid clip --------------------------------------------------------------------------------


def test_a_genre_left_without_valid_clips_is_said_and_drawn_empty(tmp_path):
    pytest.importorskip("matplotlib")
    from pipeline.plot import show_summary

    root = synth_dataset(tmp_path / "in", genres=3, clips=2, seconds=SMALL_SECONDS, seed=8)
    for f in (root / "classical").iterdir():
        f.write_bytes(b"")  # every clip of one genre is bad
    p = audioprep(
        "run",
        root,
        "-o",
        tmp_path / "o",
        "--skip-bad",
        "--nsamples",
        SMALL["nsamples"],
        "--datasets",
        "Xs",
        "--workers",
        "1",
        cwd=tmp_path,
    )
    assert (
        "no valid clip in 1 genre(s): classical (every slot bad or missing: zero and flagged invalid)"
        in p.stderr.splitlines()
    )
    fig = show_summary(tmp_path / "o" / "audio.hdf5")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["blues", "classical\n(no valid clip)", "country"]
    image = ax.get_images()[0].get_array()
    assert image.mask[:, 1].all() and not image.mask[:, [0, 2]].any()  # the column is left empty
    assert image.max() == 0.0 and image.min() > -101  # the other genres keep the scale to themselves


# -- short clips ----------------------------------------------------------------------------------------------


def test_short_clips_kept_zero_padded_with_their_true_length(tmp_path, client):
    """Before: a short clip could only be rejected, and once --mono --resample was given its message named
    no way out.  --pad-short keeps it, zero-padded; ``samples`` records each slot's own length."""
    import librosa
    from support.reference import reference_clip

    root = tmp_path / "in"
    rng = np.random.default_rng(4)
    lengths = {
        ("jazz", "a.wav"): 44100 * 1,
        ("jazz", "b.wav"): 44100 * 5,
        ("rock", "c.wav"): 12345,
        ("rock", "d.wav"): 44100 * 6,
    }
    for (genre, name), n in lengths.items():
        (root / genre).mkdir(parents=True, exist_ok=True)
        sf.write(root / genre / name, 0.1 * rng.standard_normal((n, 2)), 44100, subtype="PCM_16")
    nsamples = SMALL["nsamples"]  # the frame counts the original slicing assumes
    params = Params(nsamples=nsamples, mono=True, resample=True)
    problems = preflight(open_index(root), params)
    assert [os.path.basename(p.path) for p in problems] == ["a.wav", "c.wav"]
    assert problems[0].reason.endswith("(use --pad-short to keep it zero-padded, or a smaller --nsamples)")

    run(root, tmp_path / "o", params.replace(pad_short=True), client=client)
    with h5py.File(tmp_path / "o" / "audio.hdf5") as f:
        assert f["samples"][...].tolist() == [[22050, nsamples], [6173, nsamples]]
        assert f["valid"][...].all()
        for g, genre in enumerate(("jazz", "rock")):
            for c, name in enumerate(sorted(n for gg, n in lengths if gg == genre)):
                y, rate = sf.read(root / genre / name, dtype="float32")  # the plain way: read, mix, resample, pad
                y = librosa.resample(y.mean(axis=1), orig_sr=rate, target_sr=SR)[:nsamples]
                y = np.concatenate([y, np.zeros(nsamples - len(y), np.float32)])
                xa, xs, _ = reference_clip(y, Nsamples=nsamples)
                assert np.array_equal(f["Xa"][g, c], xa), (genre, name)
                assert np.abs(f["Xs"][g, c] - xs).max() <= 1e-5 * np.abs(xs).max(), (genre, name)
