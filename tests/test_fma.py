"""FMA as downloaded: fma_<subset>/<3 digits>/<6-digit id>.mp3 read with fma_metadata/tracks.csv.

The fixture follows the collection's description: tracks.csv with its two header rows and the track_id row,
quoted text holding commas, quotes and newlines (an artist's HTML bio), ordered subsets, root genres with a
slash and spaces; short synthetic 44.1-kHz stereo MP3s written by libsndfile (LAME)."""

import csv
import hashlib
import shutil

import h5py
import numpy as np
import pytest
import soundfile as sf

from pipeline import BadInputError, ParameterError
from pipeline.inputs import open_index, preflight
from pipeline.output import describe
from pipeline.params import Params

SR = 22050
#: track id: (subset, split, genre_top); 'large' ids without a genre, as most of large is
TRACKS = {
    2: ("small", "training", "Old-Time / Historic"),
    5: ("small", "test", "Old-Time / Historic"),
    10: ("small", "validation", "Soul-RnB"),
    140: ("small", "training", "Soul-RnB"),
    1482: ("medium", "training", "Soul-RnB"),
    1666: ("medium", "test", "Easy Listening"),
    20011: ("large", "training", ""),
}
GROUPS = ["", "album", "artist", "set", "set", "track", "track", "track", "track"]
FIELDS = ["", "title", "bio", "split", "subset", "genre_top", "genres", "genres_all", "title"]


def _tracks_csv(path, tracks=TRACKS):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(GROUPS)
        w.writerow(FIELDS)
        w.writerow(["track_id"] + [""] * (len(FIELDS) - 1))
        for tid, (subset, split, genre) in tracks.items():
            bio = f'<p>Born in "Nowhere", 19{tid % 100:02d},\nplays <b>everything</b>, loudly.</p>\n'
            w.writerow(
                [tid, f"Album, vol. {tid}", bio, split, subset, genre, "[21, 811]", "[21, 811, 1]", f'Track "{tid}"']
            )


def _mp3(path, seed, seconds=0.6):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 44100)) / 44100
    y = 0.2 * np.sin(2 * np.pi * (200 + 30 * seed) * t)[:, None] + 0.02 * rng.standard_normal((t.size, 2))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y.astype(np.float32), 44100, format="MP3")


@pytest.fixture(scope="module")
def fma(tmp_path_factory):
    root = tmp_path_factory.mktemp("fma")
    (root / "fma_metadata").mkdir()
    _tracks_csv(root / "fma_metadata" / "tracks.csv")
    order = ("small", "medium", "large")
    for subset in order:
        folder = root / f"fma_{subset}"
        folder.mkdir()
        (folder / "README.txt").write_text("FMA: A Dataset For Music Analysis\n")
        for tid, (s, _, _) in TRACKS.items():
            if order.index(s) <= order.index(subset):
                _mp3(folder / f"{tid:06d}"[:3] / f"{tid:06d}.mp3", tid)
        audio = sorted(folder.glob("*/*.mp3"))
        (folder / "checksums").write_text("".join(f"{_sha1(p)}  {p.relative_to(folder).as_posix()}\n" for p in audio))
    return root


def _sha1(path):
    return hashlib.sha1(path.read_bytes()).hexdigest()


def _copy(fma, tmp_path, subset, *, metadata=True):
    """A copy of ``fma_<subset>`` (and of fma_metadata beside it) under ``tmp_path / "fma"``."""
    folder = shutil.copytree(fma / f"fma_{subset}", tmp_path / "fma" / f"fma_{subset}")
    if metadata:
        shutil.copytree(fma / "fma_metadata", tmp_path / "fma" / "fma_metadata")
    return folder


def _rel(tid):
    return f"{tid:06d}"[:3] + f"/{tid:06d}.mp3"


def test_fma_small_is_read_with_its_tracks_csv(fma):
    """Before: its folders 000, 001, ... were taken for genres."""
    index = open_index(fma / "fma_small")
    assert index.kind == "fma" and index.subset == "small" and index.ignored == [] and index.problems == []
    assert index.labels == ("Old-Time / Historic", "Soul-RnB")
    got = [(r.genre, r.rel, r.split) for r in index.clips]
    assert got == [
        ("Old-Time / Historic", "000/000002.mp3", "training"),
        ("Old-Time / Historic", "000/000005.mp3", "test"),
        ("Soul-RnB", "000/000010.mp3", "validation"),
        ("Soul-RnB", "000/000140.mp3", "training"),
    ]
    for ref in index.clips:
        tid = int(ref.rel[4:10])
        assert (ref.genre, ref.split) == (TRACKS[tid][2], TRACKS[tid][1])
    params = Params(nsamples=SR // 4, mono=True, resample=True, datasets=("Xa",))
    assert preflight(index, params) == []


def test_fma_medium_holds_small_and_medium_and_says_its_genres_are_unequal(fma):
    index = open_index(fma / "fma_medium", pad=True)
    assert index.subset == "medium" and index.labels == ("Easy Listening", "Old-Time / Historic", "Soul-RnB")
    assert sorted(r.rel for r in index.clips) == sorted(
        f"{t:06d}"[:3] + f"/{t:06d}.mp3" for t, v in TRACKS.items() if v[0] != "large"
    )
    grid = open_index(fma / "fma_medium")
    assert any(
        "genres hold unequal numbers of clips (Easy Listening=1, Old-Time / Historic=2, Soul-RnB=3)" in p.reason
        for p in grid.problems
    )


def test_fma_large_names_the_tracks_without_a_genre(fma):
    index = open_index(fma / "fma_large", pad=True)
    (p,) = index.problems
    assert p.path == str(fma / "fma_large")
    assert p.reason == (
        "1 track(s) have no genre_top, so no label in the grid (020011); use --layout clips (they get label -1)"
    )
    assert "020/020011.mp3" not in [r.rel for r in index.clips]


def test_audio_missing_or_not_listed_is_named_in_one_line_each(fma, tmp_path):
    folder = shutil.copytree(fma / "fma_small", tmp_path / "fma" / "fma_small")
    shutil.copytree(fma / "fma_metadata", tmp_path / "fma" / "fma_metadata")
    (folder / "000" / "000005.mp3").unlink()
    shutil.copy(fma / "fma_medium" / "001" / "001482.mp3", folder / "001482.mp3.tmp")
    (folder / "001").mkdir()
    (folder / "001482.mp3.tmp").rename(folder / "001" / "001482.mp3")
    index = open_index(folder, pad=True)
    reasons = [p.reason for p in index.problems]
    assert (
        f"1 track(s) of subset small in {tmp_path / 'fma' / 'fma_metadata' / 'tracks.csv'} have no audio file "
        "here (000/000005.mp3); download or unzip them again" in reasons
    )
    assert (
        f"1 audio file(s) here are not tracks of subset small in "
        f"{tmp_path / 'fma' / 'fma_metadata' / 'tracks.csv'} (001/001482.mp3); remove them, or give the folder "
        "of their subset" in reasons
    )


def test_fma_small_runs_in_the_grid_with_labels_and_sources_from_tracks_csv(fma, tmp_path, client):
    import librosa
    from support.reference import reference_clip

    from pipeline.run import run

    nsamples = 1024 * 8 + 600  # both streams give 8 frames, as reference_clip needs
    params = Params(nsamples=nsamples, mono=True, resample=True)
    res = run(fma / "fma_small", tmp_path / "o", params, client=client)
    assert res.computed == 4 and not res.bad
    with h5py.File(tmp_path / "o" / "audio.hdf5") as f:
        assert [x.decode() if isinstance(x, bytes) else x for x in f.attrs["labels"]] == [
            "Old-Time / Historic",
            "Soul-RnB",
        ]
        assert f["source"].asstr()[1, 1] == "000/000140.mp3"
        y, _ = librosa.load(fma / "fma_small" / "000" / "000140.mp3", sr=SR, mono=True)
        xa, xs, _ = reference_clip(y[:nsamples], Nsamples=nsamples)
        assert np.abs(f["Xs"][1, 1] - xs).max() <= 1e-5 * np.abs(xs).max()
    text = describe(tmp_path / "o" / "audio.hdf5")
    assert (
        f"subset: small (labels from {fma / 'fma_metadata' / 'tracks.csv'}); clips a label: Old-Time / Historic=2, "
        "Soul-RnB=2; split: test=1, training=2, validation=1" in text.splitlines()
    )


def test_a_tracks_csv_that_is_not_fmas_is_refused_in_one_line(fma, tmp_path):
    shutil.copytree(fma / "fma_small", tmp_path / "fma" / "fma_small")
    (tmp_path / "fma" / "fma_metadata").mkdir()
    (tmp_path / "fma" / "fma_metadata" / "tracks.csv").write_text(",set\n,subset\ntrack_id\n")
    with pytest.raises(
        BadInputError,
        match=r"tracks.csv: has no column set.split, track.genre_top: not FMA's "
        r"tracks.csv; give the tracks.csv of fma_metadata.zip",
    ):
        open_index(tmp_path / "fma" / "fma_small", format="fma")


def test_a_renamed_fma_folder_given_as_fma_is_refused_in_one_line(fma, tmp_path):
    """Its name says the subset it holds: --format fma on another name is the user's to fix, not a traceback."""
    shutil.copytree(fma / "fma_small", tmp_path / "fma" / "small")
    shutil.copytree(fma / "fma_metadata", tmp_path / "fma" / "fma_metadata")
    with pytest.raises(
        BadInputError,
        match=r"small: is not named fma_small, fma_medium, fma_large or fma_full \(its subset\); "
        r"give the audio folder under its name as it unzips",
    ):
        open_index(tmp_path / "fma" / "small", format="fma")


def test_fma_large_runs_in_the_clip_layout_with_splits_and_its_unlabelled_tracks(fma, tmp_path, client):
    """Before: the grid was all there was, refusing FMA's unequal genres and leaving out the tracks without a
    genre_top."""
    import librosa
    from support.reference import reference_clip

    from pipeline.output.reader import to_matrix
    from pipeline.run import run

    nsamples = 1024 * 8 + 600
    params = Params(nsamples=nsamples, mono=True, resample=True, layout="clips")
    res = run(fma / "fma_large", tmp_path / "o", params, client=client)
    assert res.computed == 7 and not res.bad and not res.missing
    rows = [1666, 2, 5, 10, 140, 1482, 20011]  # by label, then track id; the track without a label last
    with h5py.File(tmp_path / "o" / "audio.hdf5") as f:
        assert [x.decode() for x in f.attrs["labels"]] == ["Easy Listening", "Old-Time / Historic", "Soul-RnB"]
        assert f["label"][...].tolist() == [0, 1, 1, 2, 2, 2, -1]
        assert f["split"].asstr()[...].tolist() == [TRACKS[t][1] for t in rows]
        assert f["source"].asstr()[...].tolist() == [f"{t:06d}"[:3] + f"/{t:06d}.mp3" for t in rows]
        assert "tags" not in f and f["Xs"].shape == (7, 8, 2, 96)
        for row, tid in enumerate(rows):
            y, _ = librosa.load(fma / "fma_large" / f"{tid:06d}"[:3] / f"{tid:06d}.mp3", sr=SR, mono=True)
            xs = reference_clip(y[:nsamples], Nsamples=nsamples)[1]
            assert np.abs(f["Xs"][row] - xs).max() <= 1e-5 * np.abs(xs).max(), tid
        Xs = f["Xs"][...]
    X, y = to_matrix(tmp_path / "o" / "audio.zarr", "Xs", split="training", labels=True)
    training = [r for r, t in enumerate(rows) if TRACKS[t][1] == "training"]
    assert np.array_equal(X, Xs[training].reshape(-1, 96))
    assert y.tolist() == [[0, 1, 1, 2, 2, 2, -1][r] for r in training for _ in range(16)]


def test_subset_takes_fewer_tracks_than_the_folder_holds_and_leaves_the_others_out_quietly(fma, tmp_path):
    """Before: the folder's name was the only subset there was (fma_large could not be run as small)."""
    index = open_index(fma / "fma_large", subset="medium", pad=True)
    assert index.subset == "medium" and index.problems == [] and index.ignored == []
    assert sorted(r.rel for r in index.clips) == sorted(_rel(t) for t, v in TRACKS.items() if v[0] != "large")
    small = open_index(fma / "fma_large", subset="small")  # balanced again: the grid takes it
    assert small.problems == [] and [r.rel for r in small.clips] == [_rel(t) for t in (2, 5, 10, 140)]
    # audio of a subset the folder itself does not hold is still named, with the folder's subset
    folder = _copy(fma, tmp_path, "medium")
    (folder / "020").mkdir()
    shutil.copy(fma / "fma_large" / "020" / "020011.mp3", folder / "020" / "020011.mp3")
    (p,) = open_index(folder, subset="small").problems
    assert p.reason == (
        f"1 audio file(s) here are not tracks of subset medium in {tmp_path / 'fma' / 'fma_metadata' / 'tracks.csv'}"
        " (020/020011.mp3); remove them, or give the folder of their subset"
    )
    with pytest.raises(
        ParameterError,
        match=r"^--subset large holds more tracks than .*fma_small \(fma_small holds "
        r"small\); give the fma_large folder, or a --subset up to small$",
    ):
        open_index(fma / "fma_small", subset="large")
    with pytest.raises(ParameterError, match=r"^--subset full is fma_full's untrimmed audio, but .*fma_large holds"):
        open_index(fma / "fma_large", subset="full")  # the same tracks, but not the audio fma_full holds


def test_metadata_gives_tracks_csv_from_wherever_it_lies(fma, tmp_path):
    """Before: only ../fma_metadata/tracks.csv was looked for; without it the folder 000, 001, ... were genres."""
    folder = _copy(fma, tmp_path, "small", metadata=False)
    meta = tmp_path / "elsewhere" / "fma-tracks.csv"
    meta.parent.mkdir()
    shutil.copy(fma / "fma_metadata" / "tracks.csv", meta)
    assert open_index(folder, pad=True).kind == "folder"  # nothing beside it says FMA
    index = open_index(folder, metadata=str(meta))
    assert index.kind == "fma" and index.metadata == str(meta) and index.problems == []
    assert [(r.genre, r.rel, r.split) for r in index.clips] == [
        (TRACKS[t][2], _rel(t), TRACKS[t][1]) for t in (2, 5, 10, 140)
    ]


def test_fma_options_are_refused_in_one_line_before_anything_is_created(fma, tmp_path):
    """--metadata missing or not a tracks.csv, --subset not one or larger than the folder's, --verify without
    a checksums file or on an input that lists none, FMA's options on another input: exit 1, one line."""
    from click.testing import CliRunner

    from pipeline.cli import main

    folder = _copy(fma, tmp_path, "small")
    (folder / "checksums").unlink()
    other = tmp_path / "other.csv"
    other.write_text("path,label\na.wav,x\n")
    genres = tmp_path / "genres"
    (genres / "rock").mkdir(parents=True)
    shutil.copy(fma / "fma_small" / "000" / "000002.mp3", genres / "rock" / "rock.00000.mp3")
    cases = [
        (
            folder,
            ["--verify"],
            f"--verify checks each clip against its folder's checksums file, but {folder} has no "
            "checksums; leave --verify out, or unzip the folder again with its checksums",
        ),
        (
            genres,
            ["--verify"],
            f"--verify checks each clip against the checksums its input lists, but {genres} is "
            "a genres folder ROOT/<genre>/<file>, which lists none: leave --verify out",
        ),
        (
            folder,
            ["--metadata", tmp_path / "nope.csv"],
            f"--metadata {tmp_path / 'nope.csv'}: no such file; give FMA's tracks.csv (fma_metadata/tracks.csv)",
        ),
        (
            folder,
            ["--metadata", other],
            f"--metadata {other} is not FMA's tracks.csv (its first two rows do not "
            "name set.subset, set.split and track.genre_top); give fma_metadata/tracks.csv as fma_metadata.zip unzips",
        ),
        (folder, ["--subset", "tiny"], "subset=tiny must be one of small, medium, large, full or null (--subset)"),
        (folder, ["--subset", "medium"], "--subset medium holds more tracks than"),
        (
            genres,
            ["--subset", "small"],
            f"--subset name(s) FMA's tracks.csv or subset, but {genres} is a genres "
            "folder ROOT/<genre>/<file>: leave --subset out",
        ),
    ]
    for given, args, says in cases:
        out = tmp_path / "out"
        r = CliRunner().invoke(main, ["run", str(given), "-o", str(out), *map(str, args)])
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.exit_code == 1 and len(lines) == 1 and says in lines[0], (args, r.stderr)
        assert not out.exists(), args


def test_verify_checks_each_clips_sha1_in_the_task_that_loads_it(fma, tmp_path, client):
    """Before: no --verify; a damaged download went through whenever it still decoded.  The digest travels with
    the clip's reference: pre-flight (the driver) reads headers only, the worker's task says the clip is bad."""
    from pipeline.run import run

    folder = _copy(fma, tmp_path, "small")
    listing = folder / "checksums"
    damaged = folder / "000" / "000010.mp3"
    good, wrong = _sha1(damaged), _sha1(folder / "000" / "000002.mp3")
    listing.write_text(listing.read_text().replace(f"{good}  000/000010.mp3", f"{wrong}  000/000010.mp3"))
    index = open_index(folder, verify=True)
    assert {r.rel: r.digest for r in index.clips} == {
        _rel(t): ("sha1", wrong if t == 10 else _sha1(folder / _rel(t)), str(listing)) for t in (2, 5, 10, 140)
    }
    nsamples = 1024 * 8 + 600
    params = Params(nsamples=nsamples, mono=True, resample=True)
    assert preflight(index, params) == []
    res = run(folder, tmp_path / "o", params, client=client, verify=True, skip_bad=True)
    assert res.computed == 3 and res.bad == [
        f"{damaged}: sha1 {good} does not match checksums' {wrong} ({listing}): the file is damaged or changed "
        "since; download it again"
    ]
    with h5py.File(tmp_path / "o" / "audio.hdf5") as f:
        assert f["valid"][...].tolist() == [[True, True], [False, True]]
    with pytest.raises(BadInputError, match=r"1 clip\(s\) failed; the other clips are saved"):
        run(folder, tmp_path / "o2", params, client=client, verify=True)


def test_verify_names_the_audio_its_checksums_do_not_list(fma, tmp_path):
    folder = _copy(fma, tmp_path, "small")
    lines = (folder / "checksums").read_text().splitlines()
    (folder / "checksums").write_text("\n".join([*lines[1:], "not a checksum line"]) + "\n")
    reasons = [p.reason for p in open_index(folder, verify=True).problems]
    assert reasons == [
        "1 line(s) are not sha1sum's '<40 hex digits>  <path>' (4); leave --verify out, or unzip the folder again",
        "1 audio file(s) here have no line in it, so --verify cannot check them (000/000002.mp3); leave --verify "
        "out, or unzip the folder again",
    ]


def test_fma_large_run_as_medium_with_its_tracks_csv_given_and_info_says_so(fma, tmp_path, client):
    from pipeline.run import run

    folder = _copy(fma, tmp_path, "large", metadata=False)
    meta = shutil.copy(fma / "fma_metadata" / "tracks.csv", tmp_path / "tracks.csv")
    params = Params(nsamples=1024 * 8 + 600, mono=True, resample=True, layout="clips", datasets=("Xs",))
    res = run(folder, tmp_path / "o", params, client=client, metadata=str(meta), subset="medium")
    rows = [1666, 2, 5, 10, 140, 1482]
    assert res.computed == 6 and not res.bad
    with h5py.File(tmp_path / "o" / "audio.hdf5") as f:
        assert f["source"].asstr()[...].tolist() == [_rel(t) for t in rows]
        assert f["split"].asstr()[...].tolist() == [TRACKS[t][1] for t in rows]
        assert f.attrs["input_subset"] == "medium"
    lines = describe(tmp_path / "o" / "audio.hdf5").splitlines()
    assert (
        "layout: clips, one row a clip (6 clips: Easy Listening=1, Old-Time / Historic=2, Soul-RnB=3); "
        "split: test=2, training=3, validation=1" in lines
    )
    assert f"subset: medium (labels from {meta})" in lines


def test_preflight_reads_the_headers_of_many_clips_in_threads_each_into_its_own_slot(tmp_path):
    """Pre-flight reads headers in threads, a batch of HEADER_BATCH clips each: every slot still gets its own
    clip's length (three lengths, interleaved), and the bad clips are named in the index's order."""
    import math

    from pipeline.inputs.base import HEADER_BATCH

    n = 2 * HEADER_BATCH + 50
    templates = []
    for k, seconds in enumerate((0.3, 0.5, 0.7)):
        _mp3(tmp_path / f"t{k}.mp3", k, seconds)
        templates.append((tmp_path / f"t{k}.mp3").read_bytes())
    folder, tracks, empty = tmp_path / "fma" / "fma_small", {}, {7 + 1000, HEADER_BATCH + 3 + 1000}
    for i in range(n):
        tid = 1000 + i
        (folder / _rel(tid)).parent.mkdir(parents=True, exist_ok=True)
        (folder / _rel(tid)).write_bytes(b"" if tid in empty else templates[i * 7 % 3])
        tracks[tid] = ("small", "training", ("Jazz", "Rock")[i % 2])
    (tmp_path / "fma" / "fma_metadata").mkdir()
    _tracks_csv(tmp_path / "fma" / "fma_metadata" / "tracks.csv", tracks)
    index = open_index(folder)
    assert len(index.clips) == n and index.problems == []
    got = preflight(index, Params(nsamples=SR, mono=True, resample=True, pad_short=True))
    want = np.zeros((2, n // 2), dtype=np.int64)
    for ref in index.clips:
        if int(ref.rel[4:10]) not in empty:
            want[ref.g, ref.c] = min(SR, math.ceil(sf.info(ref.source).frames * SR / 44100))
    assert len(set(want.ravel())) == 4 and np.array_equal(got.samples, want)
    assert [(p.path, p.reason) for p in got] == [
        (ref.where, "empty file (0 bytes)") for ref in index.clips if int(ref.rel[4:10]) in empty
    ]
