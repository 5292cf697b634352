"""Real collections as users download them: stray files, corrupt clips, stereo 44.1 kHz tracks of
unequal genres, manifests, odd folder entries, non-finite samples.  Each case ends in its one line
and its exit code, checked here on data the tests make.
"""

import json
import os
import re
import subprocess
import sys

import h5py
import numpy as np
import pytest
import soundfile as sf
from support.cli import audioprep
from support.data import genre_folder
from support.reference import reference_clip

SR = 22050
ONE_S = ["--nsamples", str(SR)]  # 1-s clips: 21 frames, enough for every check here


def _errors(p) -> list:
    return [ln for ln in p.stderr.splitlines() if ln.startswith("error: ")]


def _tone(seed: int, seconds: float, rate: int = SR, channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    y = 0.3 * np.sin(2 * np.pi * (110 + 7 * seed) * t) + 0.05 * rng.standard_normal(n)
    if channels == 1:
        return y.astype(np.float32)
    return np.stack([y, 0.5 * y + 0.05 * rng.standard_normal(n)], axis=1).astype(np.float32)


def _frames(y: np.ndarray, na: int = 1024) -> np.ndarray:
    """The aligned stream of Xa, written out for the test: consecutive na-sample rows."""
    nframes = min(len(y) // na, int(np.floor(len(y) / na - 0.5)))
    return y[: na * nframes].reshape(nframes, na)


# ---------------------------------------------------------------------------
# A Kaggle-style GTZAN download


@pytest.fixture(scope="module")
def kaggle(tmp_path_factory):
    """Data/genres_original/<genre>/<genre>.000NN.wav (55 each), stray files, a corrupt jazz.00054.wav."""
    data = tmp_path_factory.mktemp("kaggle") / "Data"
    genres = data / "genres_original"
    genre_folder(genres, {"blues": 55, "jazz": 55}, lambda g, c: _tone(100 * g + c, 1.1), subtype="PCM_16")
    (genres / "jazz" / "jazz.00054.wav").write_bytes(b"RIFF" + np.random.default_rng(0).bytes(30000))
    (genres / ".DS_Store").write_bytes(b"\0\0\0\1Bud1" * 50)
    (genres / "jazz" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1" * 50)
    (genres / "jazz" / "._jazz.00001.wav").write_bytes(b"\0\5\26\7" + b"\0" * 4000)  # AppleDouble
    (genres / "blues" / "README.txt").write_text("GTZAN, downloaded from Kaggle\n")
    (genres / "blues" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0" * 100)
    (data / "features_30_sec.csv").write_text("filename,length,label\nblues.00000.wav,661794,blues\n")
    (data / "images_original" / "blues").mkdir(parents=True)
    (data / "images_original" / "blues" / "blues00000.png").write_bytes(b"\x89PNG" + b"\0" * 100)
    return data


IGNORED = (
    "ignored 5 non-audio file(s): .DS_Store, blues/README.txt, blues/Thumbs.db, jazz/.DS_Store, jazz/._jazz.00001.wav"
)


@pytest.mark.slow
def test_kaggle_download_with_skip_bad_puts_every_clip_in_its_numbered_slot(kaggle, tmp_path):
    genres = kaggle / "genres_original"
    out = tmp_path / "out"
    p = audioprep("run", genres, "-o", out, "--skip-bad", "--workers", 2, *ONE_S, cwd=tmp_path)
    assert IGNORED in p.stderr.splitlines()
    assert "Traceback" not in p.stderr
    assert re.search(r"^  \S+/jazz/jazz\.00054\.wav: not a decodable audio file", p.stderr, re.M)
    assert "109 clips computed (0 resumed, 1 bad, 0 missing) of 110" in p.stdout

    with h5py.File(out / "audio.hdf5") as f:
        assert [s.decode() for s in f.attrs["labels"]] == ["blues", "jazz"]
        assert f["Xa"].shape[:2] == (2, 55)
        expected_valid = np.ones((2, 55), bool)
        expected_valid[1, 54] = False
        assert np.array_equal(f["valid"][...], expected_valid)
        source = f["source"].asstr()[...]
        for g, genre in enumerate(("blues", "jazz")):
            for c in range(55):
                assert source[g, c] == f"{genre}/{genre}.{c:05d}.wav"
                if (g, c) == (1, 54):
                    assert not f["Xa"][g, c].any()
                    continue
                y, _ = sf.read(genres / genre / f"{genre}.{c:05d}.wav", dtype="float32")
                assert np.array_equal(f["Xa"][g, c, :, 0, :], _frames(y[:SR])), (genre, c)
    summary = json.loads((out / "audio.summary.json").read_text())
    assert [b.split(": ")[0] for b in summary["bad"]] == [str(genres / "jazz" / "jazz.00054.wav")]
    assert summary["missing"] == [] and len(summary["ignored"]) == 5
    assert summary["computed"] + summary["resumed"] + len(summary["bad"]) + len(summary["missing"]) == 110


def test_kaggle_bad_clip_without_skip_bad_is_one_line_and_nothing_is_created(kaggle, tmp_path):
    out = tmp_path / "out"
    p = audioprep("run", kaggle / "genres_original", "-o", out, *ONE_S, check=False, cwd=tmp_path)
    assert p.returncode == 3, p.stderr
    (line,) = [ln for ln in _errors(p) if ".wav" in ln]
    assert line.startswith(
        f"error: {kaggle / 'genres_original' / 'jazz' / 'jazz.00054.wav'}: not a decodable audio file ("
    )
    assert "--skip-bad" in p.stderr and IGNORED in p.stderr.splitlines()
    assert not out.exists()


def test_parent_of_genres_original_gets_a_did_you_mean_and_nothing_is_created(kaggle, tmp_path):
    out = tmp_path / "out"
    for extra in ([], ["--skip-bad", "--pad"]):
        p = audioprep("run", kaggle, "-o", out, *extra, check=False, cwd=tmp_path)
        assert p.returncode == 3 and "Traceback" not in p.stderr
        assert _errors(p) == [
            f"error: {kaggle}: holds no audio files in its sub-folder(s) genres_original, images_original; "
            f"expected ROOT/<genre>/<file>; did you mean {kaggle / 'genres_original'}?"
        ]
        assert not out.exists()


def test_a_grandparent_and_a_flat_folder_get_hints(kaggle, tmp_path):
    p = audioprep("run", kaggle.parent, "-o", tmp_path / "o", check=False, cwd=tmp_path)
    assert p.returncode == 3
    assert _errors(p) == [
        f"error: {kaggle.parent}: holds no audio files in its sub-folder(s) {kaggle.name}; "
        f"expected ROOT/<genre>/<file>; did you mean {kaggle / 'genres_original'}?"
    ]

    flat = tmp_path / "flat"
    flat.mkdir()
    for c in range(3):
        sf.write(flat / f"track{c}.flac", _tone(c, 1.1), SR)
    p = audioprep("run", flat, "-o", tmp_path / "o", check=False, cwd=tmp_path)
    assert p.returncode == 3
    assert _errors(p) == [
        f"error: {flat}: holds 3 audio file(s) but no genre sub-folders; "
        "expected ROOT/<genre>/<file>: put each genre's files in a folder of its own, "
        "or list the files with their labels in a manifest .csv (a path column and a label "
        "column) and run that"
    ]
    assert not (tmp_path / "o").exists()


def test_output_inside_the_input_is_refused(kaggle, tmp_path):
    genres = kaggle / "genres_original"
    p = audioprep("run", genres, "-o", genres / "out", *ONE_S, check=False, cwd=tmp_path)
    assert p.returncode == 1
    assert _errors(p) == [
        f"error: -o {genres / 'out'} is inside the input folder {genres}, where the next run "
        f"would read it as a genre; choose an output folder outside {genres} "
        f"(e.g. -o {kaggle / 'out'})"
    ]
    assert not (genres / "out").exists()


# ---------------------------------------------------------------------------
# Someone's own collection: stereo 44.1 kHz Vorbis and FLAC, genres of different sizes


LABELS = ["ambient", "musique électronique"]


@pytest.fixture(scope="module")
def own_collection(tmp_path_factory):
    root = tmp_path_factory.mktemp("own") / "music"
    files = {
        LABELS[0]: [("a0.ogg", 1.6), ("a1.ogg", 2.5)],
        LABELS[1]: [("e0.flac", 1.3), ("e1.flac", 2.0), ("e2.flac", 4.0)],
    }
    for g, (genre, tracks) in enumerate(files.items()):
        (root / genre).mkdir(parents=True)
        for c, (name, seconds) in enumerate(tracks):
            y = _tone(10 * g + c, seconds, rate=44100, channels=2)
            fmt = "OGG" if name.endswith(".ogg") else "FLAC"
            sf.write(root / genre / name, y, 44100, format=fmt, subtype="VORBIS" if fmt == "OGG" else "PCM_16")
    return root, files


def test_stereo_44k_without_options_says_every_problem_in_one_line(own_collection, tmp_path):
    root, files = own_collection
    p = audioprep("run", root, "-o", tmp_path / "o", *ONE_S, check=False, cwd=tmp_path)
    assert p.returncode == 3 and "Traceback" not in p.stderr
    lines = _errors(p)
    for genre, tracks in files.items():
        for name, _ in tracks:
            assert (
                f"error: {root / genre / name}: 2 channels and sample rate 44100 Hz; needs mono and sr=22050 "
                "(use --mono --resample)" in lines
            )
    assert (
        f"error: {root}: genres hold unequal numbers of clips (ambient=2, musique électronique=3); use --layout "
        "clips to store one row a clip, or --pad to allow it (the missing slots are flagged invalid)"
    ) in lines
    assert len(lines) == 5 + 1 + 1  # five files, the sizes, the hint
    # --skip-bad does not stand in for --pad
    p = audioprep(
        "run", root, "-o", tmp_path / "o", "--mono", "--resample", "--skip-bad", *ONE_S, check=False, cwd=tmp_path
    )
    assert p.returncode == 3 and "unequal numbers of clips" in p.stderr
    assert not (tmp_path / "o").exists()


def test_a_mixed_collection_is_refused_with_the_one_command_that_passes_it(own_collection, tmp_path):
    """Before: the refusal ended 'fix them, or give the options they name, and run again', leaving the user to
    gather --pad from one line and --mono --resample from five others."""
    root, _ = own_collection
    p = audioprep("run", root, "-o", tmp_path / "o", *ONE_S, check=False, cwd=tmp_path)
    assert _errors(p)[-1] == f"error: 6 problem(s) in {root}; all 6 pass with --pad --mono --resample"
    from pipeline import BadInputError, preprocess

    with pytest.raises(BadInputError) as e:
        preprocess(root, tmp_path / "o", nsamples=SR, progress=False)
    assert (
        str(e.value).splitlines()[-1] == f"6 problem(s) in {root}; all 6 pass with pad=True, mono=True, resample=True"
    )
    # a problem no option fixes leaves the closing line as it was: nothing claims to pass
    (root / LABELS[1] / "zz.ogg").write_bytes(b"not audio")
    try:
        p = audioprep("run", root, "-o", tmp_path / "o", *ONE_S, check=False, cwd=tmp_path)
    finally:
        (root / LABELS[1] / "zz.ogg").unlink()
    assert _errors(p)[-1] == f"error: 7 problem(s) in {root}: fix them, or give the options they name, and run again"
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_stereo_44k_vorbis_flac_unequal_genres_match_librosa_load_and_cqt(own_collection, tmp_path):
    import librosa

    root, files = own_collection
    out = tmp_path / "o"
    p = audioprep("run", root, "-o", out, "--mono", "--resample", "--pad", "--workers", 2, *ONE_S, cwd=tmp_path)
    assert (
        "1 missing slot(s) of genres with fewer clips (--pad), zero-filled and flagged invalid: ambient[2]"
        in p.stderr.splitlines()
    )
    assert "5 clips computed (0 resumed, 0 bad, 1 missing) of 6" in p.stdout
    with h5py.File(out / "audio.hdf5") as f:
        labels = f.attrs["labels"]
        assert labels.dtype.kind == "S" and [s.decode("utf-8") for s in labels] == LABELS
        assert f.attrs.get_id("labels").get_type().get_cset() == h5py.h5t.CSET_UTF8
        assert f["genre"].asstr()[...].tolist() == LABELS
        assert f["valid"][...].tolist() == [[True, True, False], [True, True, True]]
        assert f["source"].asstr()[...].tolist() == [
            ["ambient/a0.ogg", "ambient/a1.ogg", ""],
            [f"{LABELS[1]}/e0.flac", f"{LABELS[1]}/e1.flac", f"{LABELS[1]}/e2.flac"],
        ]
        assert not f["Xa"][0, 2].any() and not f["Xs"][0, 2].any()
        for g, (genre, tracks) in enumerate(files.items()):
            for c, (name, _) in enumerate(tracks):
                y, _ = librosa.load(root / genre / name, sr=SR, mono=True)
                xa, xs, xn = reference_clip(y, Nsamples=SR)
                assert np.array_equal(f["Xa"][g, c], xa), name
                # the default float32 path: within 1e-6 of the clip's maximum of plain librosa.cqt
                assert np.abs(f["Xs"][g, c] - xs).max() <= 1e-6 * np.abs(xs).max(), name
                assert np.abs(f["Xn"][g, c] - xn).max() <= 1e-4, name
    summary = json.loads((out / "audio.summary.json").read_text())
    assert summary["missing"] == ["ambient[2]"] and summary["bad"] == []
    assert summary["computed"] == 5 and summary["resumed"] == 0 and summary["clips"] == 6

    info = audioprep("info", out / "audio.hdf5").stdout
    assert f"labels: ambient, {LABELS[1]}" in info
    assert f"source: ambient/a0.ogg ... {LABELS[1]}/e2.flac" in info
    assert "missing (genres with fewer clips): ambient[2]" in info

    from pipeline import open_dataset

    with open_dataset(out / "audio.zarr") as ds:
        assert ds.source.sel(genre="ambient").values.tolist() == ["ambient/a0.ogg", "ambient/a1.ogg", ""]
        assert ds.genre.values.tolist() == LABELS

    again = audioprep("run", root, "-o", out, "--mono", "--resample", "--pad", *ONE_S, cwd=tmp_path)
    assert "is up to date" in again.stdout
    assert json.loads((out / "audio.summary.json").read_text())["missing"] == ["ambient[2]"]


def test_a_resumed_run_accounts_for_every_slot(tmp_path, client):
    """computed + resumed + bad + missing = clips, in the result and the summary, after a resume too."""
    import zarr

    from pipeline.params import Params
    from pipeline.run import run

    root = genre_folder(tmp_path / "g", {"blues": 4, "jazz": 2}, lambda g, c: _tone(c, 1.1), subtype="PCM_16")
    (root / "blues" / "blues.00002.wav").write_bytes(b"RIFF junk")
    params = Params(nsamples=SR, datasets=("Xa",))
    out = tmp_path / "o"
    first = run(root, out, params, client=client, skip_bad=True, pad=True)
    assert (first.clips, first.computed, first.resumed, len(first.bad), first.missing) == (
        8,
        5,
        0,
        1,
        ["jazz[2]", "jazz[3]"],
    )
    # Undo two finished clips, as a run killed before finishing them would have left the store.
    done = zarr.open_group(str(out / "audio.zarr"), mode="r+")["done"]
    done[0, 0] = done[1, 1] = False
    (out / "audio.hdf5").unlink()
    (out / "audio.zarr" / "Xa" / "c.0.0.0.0.0").unlink()
    again = run(root, out, params, client=client, skip_bad=True, pad=True)
    assert (again.computed, again.resumed, len(again.bad), len(again.missing)) == (2, 3, 1, 2)
    summary = json.loads((out / "audio.summary.json").read_text())
    assert summary["computed"] + summary["resumed"] + len(summary["bad"]) + len(summary["missing"]) == 8
    assert summary["bad"][0].startswith(f"{root}/blues/blues.00002.wav: not a decodable audio file")
    with h5py.File(out / "audio.hdf5") as f:
        assert f["valid"][...].tolist() == [[True, True, False, True], [True, True, False, False]]
        y, _ = sf.read(root / "blues" / "blues.00000.wav", dtype="float32")
        assert np.array_equal(f["Xa"][0, 0, :, 0], _frames(y[:SR]))


def test_a_name_that_cannot_be_stored_is_refused_before_any_work(tmp_path):
    root = tmp_path / "g"
    for name in (b"caf\xe9", b"rock"):  # a Latin-1 folder name: not UTF-8
        d = os.path.join(os.fsencode(root), name)
        os.makedirs(d)
        sf.write(os.path.join(d, b"x.wav"), _tone(1, 1.1), SR)
    p = audioprep("run", root, "-o", tmp_path / "o", *ONE_S, check=False, cwd=tmp_path)
    assert p.returncode == 3 and "Traceback" not in p.stderr
    assert (
        f"error: {root}/caf\\xe9: genre name is not valid UTF-8 text, which the outputs store names as; "
        "rename it" in _errors(p)
    )
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------------------
# A manifest


def _manifest(path, rows, header="filename,duration,label"):
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


@pytest.mark.slow
def test_manifest_run_equals_the_folder_run(tiny_dataset, tiny_output, small_params, client, tmp_path):
    from support.compare import read_hdf5

    from pipeline.run import run

    rows = []
    for c in range(2):  # rows interleave the labels; label order is sorted, clip order is row order
        for genre in ("country", "blues", "classical"):
            rel = os.path.relpath(tiny_dataset / genre / f"{genre}.{c:05d}.au", tmp_path)
            rows.append(f"{rel},30.0,{genre}")
    manifest = _manifest(tmp_path / "tracks.csv", rows)
    res = run(manifest, tmp_path / "out", small_params, client=client)
    assert res.computed == 6 and not res.bad and not res.missing
    got, got_attrs = read_hdf5(tmp_path / "out" / "audio.hdf5")
    want, want_attrs = read_hdf5(tiny_output / "audio.hdf5")
    for name in ("Xa", "Xs", "Xn", "valid", "genre"):
        assert np.array_equal(got[name], want[name]), name
    assert got_attrs["labels"] == want_attrs["labels"]
    assert got_attrs["input_kind"] == "manifest" and got_attrs["input_path"] == str(manifest)
    assert got["source"][0].tolist() == [
        os.path.relpath(tiny_dataset / "blues" / f"blues.{c:05d}.au", tmp_path) for c in range(2)
    ]


def test_manifest_problems_are_one_line_each(tiny_dataset, tmp_path):
    rel = os.path.relpath(tiny_dataset / "blues" / "blues.00000.au", tmp_path)
    m = _manifest(tmp_path / "m.csv", [f"{rel},1,blues"], header="track_id,duration,genre_name")
    p = audioprep("run", m, "-o", tmp_path / "o", check=False, cwd=tmp_path)
    assert p.returncode == 3
    assert _errors(p) == [
        f"error: {m}: has no path column (looked for path, filepath, file_path, filename, file, "
        "audio, audio_path); its columns: track_id, duration, genre_name; name the path column "
        "with --path-column"
    ]
    p = audioprep(
        "run",
        m,
        "-o",
        tmp_path / "o",
        "--path-column",
        "track_id",
        "--label-column",
        "genre_name",
        "--nsamples",
        "2048",
        "--datasets",
        "Xa",
        check=False,
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stderr

    m2 = _manifest(tmp_path / "m2.csv", [f"{rel},1,blues", ",1,jazz", f"{rel},1,blues", "nowhere.wav,1,jazz"])
    p = audioprep("run", m2, "-o", tmp_path / "o2", check=False, cwd=tmp_path)
    assert p.returncode == 3
    assert _errors(p)[:2] == [f"error: {m2}:3: empty path", f"error: {m2}:4: {rel} is listed twice (rows 2 and 4)"]

    m3 = _manifest(tmp_path / "m3.csv", [f"{rel},1,blues", "nowhere.wav,1,jazz"])
    p = audioprep("run", m3, "-o", tmp_path / "o3", "--nsamples", "2048", check=False, cwd=tmp_path)
    assert p.returncode == 3
    assert _errors(p)[0].startswith(f"error: {tmp_path / 'nowhere.wav'}: cannot be read (No such file or directory)")


def test_kaggle_features_csv_as_a_manifest_says_where_the_files_are(kaggle, tmp_path):
    csv = kaggle / "features_30_sec.csv"  # its filename column names files two folders down
    p = audioprep("run", csv, "-o", tmp_path / "o", check=False, cwd=tmp_path)
    assert p.returncode == 3
    assert _errors(p) == [
        f"error: {csv}: none of the 1 paths it lists exists relative to its folder {kaggle} "
        "(e.g. blues.00000.wav); paths are read relative to the manifest's folder; "
        "blues.00000.wav is at "
        "genres_original/blues/blues.00000.wav: write the paths that way (or move the manifest)"
    ]
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------------------
# Folder entries that are not files, and samples that are not numbers


def test_entries_that_are_not_files_are_named_not_hung_on(tmp_path):
    root = genre_folder(
        tmp_path / "g", {"blues": 2, "classical": 2}, lambda g, c: _tone(c, 1.1), ext=".au", format="AU"
    )
    os.mkfifo(root / "blues" / "blues.00002.au")
    (root / "blues" / "x.au").mkdir()
    (root / "classical" / "classical.00002.au").symlink_to("nowhere.au")
    (root / "classical" / "classical.00003.au").symlink_to("classical.00003.au")
    (root / "classical" / "notes").mkdir()  # not audio by name: ignored
    p = audioprep("run", root, "-o", tmp_path / "o", *ONE_S, check=False, cwd=tmp_path, timeout=120)
    assert p.returncode == 3 and "Traceback" not in p.stderr
    assert "ignored 1 non-audio file(s): classical/notes/" in p.stderr.splitlines()
    lines = _errors(p)
    for expected in (
        f"{root}/blues/blues.00002.au: is a FIFO, not a regular file",
        f"{root}/blues/x.au: is a folder, not an audio file",
        f"{root}/classical/classical.00002.au: broken symbolic link (to nowhere.au)",
        f"{root}/classical/classical.00003.au: symbolic link loop (a link that leads back to itself)",
    ):
        assert f"error: {expected}" in lines
    assert len(lines) == 5


def test_unreadable_genre_folder_and_file_are_named(tmp_path):
    """Permissions as a user meets them: run without root's power to read anything (setpriv drops it)."""
    import shutil

    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to drop the capability of reading everything")
    root = genre_folder(
        tmp_path / "g", {"blues": 1, "jazz": 1, "rock": 1}, lambda g, c: _tone(1, 1.1), subtype="PCM_16"
    )
    (root / "jazz").chmod(0)
    (root / "rock" / "rock.00000.wav").chmod(0)
    try:
        p = subprocess.run(
            [
                "setpriv",
                "--bounding-set=-dac_override,-dac_read_search",
                sys.executable,
                "-m",
                "pipeline",
                "run",
                str(root),
                "-o",
                str(tmp_path / "o"),
                *ONE_S,
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=120,
        )
    finally:
        (root / "jazz").chmod(0o755)
    assert p.returncode == 3 and "Traceback" not in p.stderr
    assert _errors(p) == [
        f"error: {root}/jazz: cannot be read (Permission denied)",
        f"error: {root}/rock/rock.00000.wav: cannot be read (Permission denied)",
        f"error: 2 problem(s) in {root}: fix them, or give the options they name, and run again",
    ]


@pytest.mark.slow
def test_non_finite_samples_are_bad_input_found_at_decode(tmp_path):
    def clip(g, c):
        y = _tone(c, 1.1)
        if (g, c) == (1, 1):  # jazz.00001
            y[5000] = np.inf
            y[9000] = np.nan
        return y

    root = genre_folder(tmp_path / "g", {"blues": 2, "jazz": 2}, clip, subtype="FLOAT")
    for datasets in ("Xa", "Xa,Xs,Xn"):
        out = tmp_path / datasets
        p = audioprep(
            "run", root, "-o", out, "--skip-bad", "--datasets", datasets, "--workers", 2, *ONE_S, cwd=tmp_path
        )
        assert "Traceback" not in p.stderr and "Compute Failed" not in p.stderr
        assert (
            f"  {root}/jazz/jazz.00001.wav: holds 2 non-finite sample(s) (NaN or Inf), the first at 0.227 s; "
            "fix or remove the file" in p.stderr.splitlines()
        )
        with h5py.File(out / "audio.hdf5") as f:
            assert f["valid"][...].tolist() == [[True, True], [True, False]]
            assert np.isfinite(f["Xa"][...]).all() and not f["Xa"][1, 1].any()
    p = audioprep("run", root, "-o", tmp_path / "strict", *ONE_S, check=False, cwd=tmp_path)
    assert p.returncode == 3 and "Traceback" not in p.stderr
    assert [ln for ln in _errors(p) if "jazz.00001.wav" in ln] == [
        f"error: {root}/jazz/jazz.00001.wav: holds 2 non-finite sample(s) (NaN or Inf), the first at 0.227 s; "
        f"fix or remove the file; 1 clip(s) failed; the other clips are saved in {tmp_path}/strict/audio.zarr: fix "
        "the bad clips and run again, or add --skip-bad"
    ]


def test_non_finite_column_of_a_gtzan_hdf5_is_a_bad_slot(tmp_path, client):
    from pipeline.params import Params
    from pipeline.run import run

    path = tmp_path / "gtzan.hdf5"
    data = np.stack([_tone(c, 1.1)[: SR + 100] for c in range(2)], axis=1)
    data[10, 1] = np.nan
    with h5py.File(path, "w") as f:
        f.create_dataset("jazz", data=data)
        f.attrs.update({"Ngenres": 1, "Nclips": 2, "sr": SR, "Nsamples": SR + 100})
    res = run(path, tmp_path / "o", Params(nsamples=SR, datasets=("Xa",)), client=client, skip_bad=True)
    assert res.bad == [
        f"{path}[jazz][:, 1]: holds 1 non-finite sample(s) (NaN or Inf), the first at 0.000 s; fix or remove the file"
    ]
    with h5py.File(tmp_path / "o" / "audio.hdf5") as f:
        assert f["valid"][...].tolist() == [[True, False]]
        assert f["source"].asstr()[...].tolist() == [["jazz[:, 0]", "jazz[:, 1]"]]
