"""Dataset index, loading and ingest, on real files."""

import h5py
import numpy as np
import pytest
import soundfile as sf

from pipeline.ingest import ingest
from pipeline.inputs import load_clip, open_index, preflight
from pipeline.params import Params
from pipeline.synth import GTZAN_GENRES, synth_clip


def test_folder_index_orders_genres_and_clips(tiny_dataset):
    idx = open_index(tiny_dataset)
    assert idx.kind == "folder"
    assert idx.labels == ("blues", "classical", "country")
    assert idx.nclips == 2 and len(idx.clips) == 6
    assert [r.source.split("/")[-1] for r in idx.clips[:2]] == ["blues.00000.au", "blues.00001.au"]
    assert (idx.clips[3].g, idx.clips[3].c) == (1, 1)


def test_load_clip_is_decoder_output_truncated(tiny_dataset, small_params):
    ref = open_index(tiny_dataset).clips[0]
    y = load_clip(ref, small_params)
    raw, sr = sf.read(ref.source, dtype="float32")
    assert sr == 22050 and y.dtype == np.float32
    assert np.array_equal(y, raw[: small_params.nsamples])
    # 16-bit PCM / 32768, not rescaled
    assert np.allclose(y * 32768, np.round(y * 32768))


def test_preflight_passes_good_input(tiny_dataset, small_params):
    assert preflight(open_index(tiny_dataset), small_params) == []


def test_fingerprint_changes_with_the_files(tiny_dataset, tmp_path):
    from support.data import copy_tree

    copy = copy_tree(tiny_dataset, tmp_path / "g")
    before = open_index(copy).fingerprint()
    assert open_index(copy).fingerprint() == before
    sf.write(copy / "blues" / "blues.00000.au", np.zeros(70000, dtype=np.float32), 22050, format="AU", subtype="PCM_16")
    assert open_index(copy).fingerprint() != before


def test_synth_is_deterministic_and_gtzan_shaped(tmp_path):
    a = synth_clip("jazz", 5, 3, seed=0)
    b = synth_clip("jazz", 5, 3, seed=0)
    assert np.array_equal(a, b)
    assert 660000 <= len(a) <= 675808
    assert not np.array_equal(a[:1000], synth_clip("jazz", 5, 3, seed=1)[:1000])
    assert np.abs(a).max() < 1.0


def test_synth_genres_differ_in_spectrum():
    """Different genres put their energy at different pitches (non-trivial spectrograms)."""
    import librosa

    cents = []
    for g, genre in enumerate(GTZAN_GENRES[:4]):
        y = synth_clip(genre, g, 0, nsamples=22050 * 3)
        cents.append(librosa.feature.spectral_centroid(y=y, sr=22050).mean())
    assert len({round(c, -1) for c in cents}) == 4


def test_ingest_writes_the_original_layout(tiny_dataset, small_params, tmp_path):
    out = ingest(tiny_dataset, tmp_path / "gtzan.hdf5", small_params)
    with h5py.File(out) as f:
        assert sorted(f.keys()) == ["blues", "classical", "country"]
        assert int(f.attrs["Ngenres"]) == 3 and int(f.attrs["Nclips"]) == 2
        assert int(f.attrs["sr"]) == 22050 and int(f.attrs["Nsamples"]) == small_params.nsamples
        d = f["classical"]
        assert d.shape == (small_params.nsamples, 2) and d.dtype == np.float32
        assert d.chunks == (small_params.nsamples, 1)  # one clip = one chunk
        raw, _ = sf.read(tiny_dataset / "classical" / "classical.00001.au", dtype="float32")
        assert np.array_equal(d[:, 1], raw[: small_params.nsamples])
    # round trip: the hdf5 input gives the same clips as the folder
    idx = open_index(out)
    assert idx.kind == "hdf5" and idx.labels == ("blues", "classical", "country")
    folder = open_index(tiny_dataset)
    for a, b in zip(idx.clips, folder.clips):
        assert np.array_equal(load_clip(a, small_params), load_clip(b, small_params))


def test_ingest_refuses_to_overwrite(tiny_dataset, small_params, tmp_path):
    from pipeline import StoreError

    out = tmp_path / "gtzan.hdf5"
    out.write_bytes(b"x")
    with pytest.raises(StoreError, match="exists; use --overwrite"):
        ingest(tiny_dataset, out, small_params)


def test_hdf5_clip_at_another_rate_is_resampled_then_truncated(tmp_path, small_params):
    import librosa

    y44 = np.sin(np.arange(44100 * 4) * 0.05).astype(np.float32) * 0.3
    path = tmp_path / "gtzan.hdf5"
    with h5py.File(path, "w") as f:
        f.create_dataset("jazz", data=y44[:, None])
        f.attrs.update({"Ngenres": 1, "Nclips": 1, "sr": 44100, "Nsamples": len(y44)})
    params = small_params.replace(resample=True)
    y = load_clip(open_index(path).clips[0], params)
    expected = librosa.resample(y44, orig_sr=44100, target_sr=22050)[: params.nsamples]
    assert y.shape == (params.nsamples,) and np.array_equal(y, expected)


@pytest.mark.parametrize("rate", [44100, 48000, 8000, 96000])
def test_resampling_decodes_only_the_kept_span_with_the_same_bits(tmp_path, rate):
    """load_clip decodes Nsamples' worth of input plus a margin; the clip equals resampling the whole file."""
    import librosa

    from pipeline.inputs import decode_frames

    params = Params(nsamples=22050 * 3, resample=True, mono=True)
    rng = np.random.default_rng(rate)
    n = rate * 30
    y = (0.3 * np.sin(np.arange(n) * 2 * np.pi * 220 / rate) + 0.1 * rng.standard_normal(n)).astype(np.float32)
    stereo = np.stack([y, y[::-1]], axis=1)
    for fmt, subtype in (("WAV", "PCM_16"), ("FLAC", "PCM_16"), ("OGG", "VORBIS")):
        if rate > 48000 and fmt == "OGG":
            continue
        path = tmp_path / f"x{rate}.{fmt.lower()}"
        sf.write(path, stereo, rate, format=fmt, subtype=subtype)
        whole, _ = sf.read(path, dtype="float32", always_2d=True)
        expected = librosa.resample(whole.T.mean(axis=0), orig_sr=rate, target_sr=22050)[: params.nsamples]
        got = load_clip(open_index_one(path), params)
        assert np.array_equal(got, expected), (rate, fmt)
    assert decode_frames(rate, params) < n / 3  # a third of the file is decoded, not all of it


def open_index_one(path):
    from pipeline.inputs import ClipRef

    return ClipRef(0, 0, "g", str(path))


def test_a_long_file_is_not_decoded_whole(tmp_path):
    """A 10-minute 44.1 kHz file: loading its 30-s clip allocates a few MB, not the file's 100 MB of float32."""
    import tracemalloc

    rate, seconds = 44100, 600
    path = tmp_path / "long.wav"
    with sf.SoundFile(path, "w", rate, 1, subtype="PCM_16") as f:
        block = (0.1 * np.sin(np.arange(rate * 10) * 0.01)).astype(np.float32)
        for _ in range(seconds // 10):
            f.write(block)
    params = Params(resample=True)  # Nsamples = 660000 at 22050 Hz: 30 s
    load_clip(open_index_one(path), params)  # warm-up: imports, resampler set-up
    tracemalloc.start()
    y = load_clip(open_index_one(path), params)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert y.shape == (660000,)
    whole = rate * seconds * 4
    assert peak < 40e6 < whole, f"peak {peak / 1e6:.1f} MB"


def test_ingest_takes_pad_short_and_skip_bad_and_a_run_on_its_file_gives_the_folders_output(padded_output, tmp_path):
    """ingest has run's options for the same checks; what they did is kept per clip, so a run on the gtzan.hdf5
    gives what a run on the folder gave (the padded clip's own length, the bad clip invalid)."""
    from support.cli import audioprep
    from support.data import SMALL, SMALL_ARGS

    genres = padded_output.parent.parent / "genres"
    n = SMALL["nsamples"]
    refused = audioprep(
        "ingest", genres, "-o", tmp_path / "gtzan.hdf5", *SMALL_ARGS, "--pad-short", cwd=tmp_path, check=False
    )
    assert refused.returncode == 3 and "No such option" not in refused.stderr
    assert "rock/b.wav" in refused.stderr and "--skip-bad" in refused.stderr
    assert not (tmp_path / "gtzan.hdf5").exists()
    done = audioprep(
        "ingest", genres, "-o", tmp_path / "gtzan.hdf5", *SMALL_ARGS, "--pad-short", "--skip-bad", cwd=tmp_path
    )
    assert "1 bad clip(s)" in done.stderr and "rock/b.wav" in done.stderr
    with h5py.File(tmp_path / "gtzan.hdf5") as f:  # a plain reading of the file against the audio files
        own, _ = sf.read(genres / "blues" / "b.wav", dtype="float32")
        assert np.array_equal(f["blues"][:, 1], np.concatenate([own, np.zeros(n - own.size, np.float32)]))
        full, _ = sf.read(genres / "rock" / "a.wav", dtype="float32")
        assert np.array_equal(f["rock"][:, 0], full[:n])
        assert not f["rock"][:, 1].any()
        assert f[".clips/samples"][...].tolist() == [[n, own.size], [n, 0]]
        bad = [[b.decode() for b in row] for row in f[".clips/bad"][...]]
        assert bad[0] == ["", ""] and bad[1][0] == "" and bad[1][1].startswith("rock/b.wav: ")
    assert "padded: 1 clip(s)" in audioprep("info", tmp_path / "gtzan.hdf5", cwd=tmp_path).stdout

    again = audioprep("run", tmp_path / "gtzan.hdf5", "-o", tmp_path / "out", *SMALL_ARGS, cwd=tmp_path, check=False)
    assert again.returncode == 3  # the run on the file finds both clips again, each named
    assert "[blues][:, 1]: 1.00 s long" in again.stderr and "[rock][:, 1]: left as zeros by" in again.stderr
    audioprep(
        "run", tmp_path / "gtzan.hdf5", "-o", tmp_path / "out", *SMALL_ARGS, "--pad-short", "--skip-bad", cwd=tmp_path
    )
    with h5py.File(tmp_path / "out" / "audio.hdf5") as a, h5py.File(padded_output) as b:
        for name in ("Xa", "Xs", "Xn", "valid", "samples"):
            assert np.array_equal(a[name][...], b[name][...]), name


def test_genre_album_track_folders_are_indexed_below_the_genre_in_sorted_path_order(tmp_path):
    """A library's Genre/Album/track layout: every audio file below a genre folder is a clip of it, in sorted
    path order, named by its path in 'source'; non-audio files below are named as ignored."""
    from support.cli import audioprep
    from support.data import SMALL, SMALL_ARGS

    root = tmp_path / "library"
    files = {
        "Jazz": ["Artist X/Live/01 Intro.flac", "Artist X/Live/02 Blue.flac", "solo.wav"],
        "Rock": ["Album A/01.wav", "Album A/02.wav", "Album B/01.wav"],
    }
    rng = np.random.default_rng(5)
    for genre, names in files.items():
        for name in names:
            (root / genre / name).parent.mkdir(parents=True, exist_ok=True)
            sf.write(root / genre / name, rng.uniform(-0.3, 0.3, SMALL["nsamples"]), 22050, subtype="PCM_16")
    (root / "Rock" / "Album A" / "cover.jpg").write_bytes(b"\xff\xd8")
    (root / "Rock" / "Album B" / ".hidden").mkdir()

    idx = open_index(root)
    assert idx.labels == ("Jazz", "Rock") and idx.nclips == 3
    assert [r.rel for r in idx.clips] == [f"{g}/{n}" for g in ("Jazz", "Rock") for n in sorted(files[g])]
    assert sorted(idx.ignored) == ["Rock/Album A/cover.jpg", "Rock/Album B/.hidden/"]

    p = audioprep("run", root, "-o", tmp_path / "out", *SMALL_ARGS, cwd=tmp_path)
    assert "ignored 2 non-audio file(s): Rock/Album A/cover.jpg, Rock/Album B/.hidden/" in p.stderr
    with h5py.File(tmp_path / "out" / "audio.hdf5") as f:
        assert f["source"].asstr()[...].tolist() == [sorted(f"{g}/{n}" for n in files[g]) for g in ("Jazz", "Rock")]
        for g, genre in enumerate(("Jazz", "Rock")):
            for c, name in enumerate(sorted(files[genre])):
                y, _ = sf.read(root / genre / name, dtype="float32")
                assert np.array_equal(f["Xa"][g, c, :, 0, :].ravel(), y[: f["Xa"].shape[2] * 1024]), name


def test_offset_and_centre_crop_keep_the_span_plain_slicing_and_librosa_load_give(tmp_path):
    """--offset: librosa.load(offset=...) then the first Nsamples (stereo 44.1 kHz, down-mixed and resampled);
    --crop center: the middle Nsamples of each file by plain slicing.  Both are recorded per slot (start) and in
    the attributes."""
    import json

    import librosa
    from support.cli import audioprep
    from support.data import SMALL, SMALL_ARGS

    n = SMALL["nsamples"]
    rng = np.random.default_rng(11)
    lengths = {"a.wav": 2 * n + 5001, "b.wav": n + 6001}  # at 22050 Hz
    root = tmp_path / "genres"
    (root / "x").mkdir(parents=True)
    for name, size in lengths.items():
        sf.write(root / "x" / name, rng.uniform(-0.3, 0.3, size).astype(np.float32), 22050, subtype="FLOAT")
    (root / "st").mkdir()
    sf.write(
        root / "st" / "s.wav",
        rng.uniform(-0.3, 0.3, (int(2.5 * 44100 * n / 22050), 2)).astype(np.float32),
        44100,
        subtype="FLOAT",
    )
    sf.write(
        root / "st" / "t.wav",
        rng.uniform(-0.3, 0.3, (3 * 44100 * n // 22050, 2)).astype(np.float32),
        44100,
        subtype="FLOAT",
    )

    audioprep(
        "run", root, "-o", tmp_path / "off", *SMALL_ARGS, "--offset", "0.25", "--mono", "--resample", cwd=tmp_path
    )
    with h5py.File(tmp_path / "off" / "audio.hdf5") as f:
        assert json.loads(f.attrs["params"])["offset"] == 0.25
        assert np.allclose(f["start"][...], 0.25, atol=1 / 22050, rtol=0)  # the first kept sample, in seconds
        for g, genre in enumerate(("st", "x")):
            for c, name in enumerate(sorted(p.name for p in (root / genre).iterdir())):
                y, _ = librosa.load(root / genre / name, sr=22050, mono=True, offset=0.25)
                frames = f["Xa"].shape[2]
                assert np.array_equal(f["Xa"][g, c, :, 0, :].ravel(), y[: frames * 1024]), name

    audioprep(
        "run", root, "-o", tmp_path / "mid", *SMALL_ARGS, "--crop", "center", "--mono", "--resample", cwd=tmp_path
    )
    with h5py.File(tmp_path / "mid" / "audio.hdf5") as f:
        assert json.loads(f.attrs["params"])["crop"] == "center"
        for c, (name, size) in enumerate(sorted(lengths.items())):
            y, _ = sf.read(root / "x" / name, dtype="float32")
            start = (size - n) // 2
            assert f["start"][1, c] == start / 22050
            frames = f["Xa"].shape[2]
            assert np.array_equal(f["Xa"][1, c, :, 0, :].ravel(), y[start : start + frames * 1024]), name

    p = audioprep(
        "run", root, "-o", tmp_path / "bad", *SMALL_ARGS, "--offset", "1", "--crop", "center", cwd=tmp_path, check=False
    )
    assert p.returncode == 1 and "give --offset SECONDS or --crop center, not both" in p.stderr
    assert not (tmp_path / "bad").exists()
