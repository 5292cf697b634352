"""Formats libsndfile does not read, decoded through ffmpeg (PyAV), and audio no installed decoder reads.

The .m4a files are made by Debian's ffmpeg command; the reference decodes them
with the same command (float samples), then down-mixes and resamples as
librosa.load does, and computes plain librosa.cqt.
"""

import json
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
from support.cli import audioprep
from support.reference import reference_clip

SR = 22050
NSAMPLES = 1024 * 43 + 600  # 2 s kept of 3.5-s tracks: the resampler's margin lies inside the track
REQUIRE = os.environ.get("AUDIOPREP_REQUIRE_TOOLS") == "1"


def _need_ffmpeg():
    have = shutil.which("ffmpeg") is not None
    try:
        import av  # noqa: F401
    except ImportError:
        have = False
    if have:
        return
    if REQUIRE:
        pytest.fail("ffmpeg or PyAV is missing but AUDIOPREP_REQUIRE_TOOLS=1 (.ci/run installs both)")
    pytest.skip("needs Debian's ffmpeg and PyAV (pip install av)")


def _m4a(path, seconds: float, seed: int, rate: int = 44100, channels: int = 2):
    """An AAC .m4a encoded by the ffmpeg command from a noise-and-tone WAV."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    y = 0.2 * np.sin(2 * np.pi * (220 + 110 * seed) * t)[:, None] + 0.05 * rng.standard_normal((t.size, channels))
    wav = path.with_suffix(".wav.tmp")
    sf.write(wav, y.astype(np.float32), rate, format="WAV")
    subprocess.run(
        ["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-i", str(wav), "-c:a", "aac", "-b:a", "160k", str(path)],
        check=True,
    )
    wav.unlink()


def _ffmpeg_decode(path) -> tuple:
    """The ffmpeg command's float decode: ``(samples (n, channels), rate)``."""
    probe = (
        subprocess.run(
            [
                "ffprobe",
                "-v",
                "error",
                "-select_streams",
                "a:0",
                "-show_entries",
                "stream=sample_rate,channels",
                "-of",
                "csv=p=0",
                str(path),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .split(",")
    )
    rate, channels = int(probe[0]), int(probe[1])
    raw = subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(path), "-f", "f32le", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, dtype="<f4").reshape(-1, channels), rate


@pytest.mark.slow
def test_m4a_from_debians_ffmpeg_is_decoded_down_mixed_and_resampled_like_plain_librosa(tmp_path):
    _need_ffmpeg()
    import librosa

    root = tmp_path / "genres"
    for g, genre in enumerate(("jazz", "pop")):
        (root / genre).mkdir(parents=True)
        for c in range(2):
            _m4a(root / genre / f"{genre}{c}.m4a", 3.5, seed=2 * g + c)
    refused = audioprep("run", root, "-o", tmp_path / "o", "--nsamples", NSAMPLES, cwd=tmp_path, check=False)
    assert refused.returncode == 3  # the same checks as any clip, from the container's header
    assert (
        f"{root / 'jazz' / 'jazz0.m4a'}: 2 channels and sample rate 44100 Hz; needs mono and sr=22050 "
        "(use --mono --resample)" in refused.stderr
    )
    audioprep("run", root, "-o", tmp_path / "o", "--nsamples", NSAMPLES, "--mono", "--resample", cwd=tmp_path)
    with h5py.File(tmp_path / "o" / "audio.hdf5") as f:
        assert f["valid"][...].all()
        assert f["source"].asstr()[0, 1] == "jazz/jazz1.m4a"
        for g, genre in enumerate(("jazz", "pop")):
            for c in range(2):
                y, rate = _ffmpeg_decode(root / genre / f"{genre}{c}.m4a")
                y = librosa.resample(y.mean(axis=1), orig_sr=rate, target_sr=SR)
                xa, xs, _ = reference_clip(y, Nsamples=NSAMPLES)
                assert np.abs(f["Xa"][g, c] - xa).max() <= 1e-6, (genre, c)
                assert np.abs(f["Xs"][g, c] - xs).max() <= 1e-5 * np.abs(xs).max(), (genre, c)


def test_a_short_m4a_is_padded_to_the_length_its_container_states(tmp_path):
    _need_ffmpeg()
    import av

    root = tmp_path / "genres"
    (root / "a").mkdir(parents=True)
    _m4a(root / "a" / "short.m4a", 1.3, seed=1, rate=SR, channels=1)
    with av.open(str(root / "a" / "short.m4a")) as c:
        s = c.streams.audio[0]
        stated = int(round(float(s.duration * s.time_base) * SR))
    p = audioprep("run", root, "-o", tmp_path / "o", "--nsamples", NSAMPLES, cwd=tmp_path, check=False)
    assert p.returncode == 3 and "1.30 s long" in p.stderr and "--pad-short" in p.stderr
    audioprep("run", root, "-o", tmp_path / "o", "--nsamples", NSAMPLES, "--pad-short", cwd=tmp_path)
    with h5py.File(tmp_path / "o" / "audio.hdf5") as f:
        assert int(f["samples"][0, 0]) == stated
        y, _ = _ffmpeg_decode(root / "a" / "short.m4a")
        n = min(stated, y.shape[0])
        kept = f["Xa"][0, 0, :, 0, :].reshape(-1)  # the first stream's frames, hop Na: the clip's samples
        assert np.abs(kept[:n] - y[:n, 0]).max() <= 1e-6
        assert not kept[stated:].any()


def test_audio_no_installed_decoder_reads_is_named_with_what_would_read_it(tmp_path):
    """Tracker modules always; .m4a where PyAV is missing (hidden here from the run's process)."""
    import soundfile as sf

    root = tmp_path / "genres"
    for genre in ("rock", "chiptune"):
        (root / genre).mkdir(parents=True)
    sf.write(root / "rock" / "r.wav", np.zeros(SR, np.float32), SR)
    for name in ("intro.mod", "level1.it", "boss.xm"):
        (root / "chiptune" / name).write_bytes(b"M.K." * 400)
    p = audioprep("run", root, "-o", tmp_path / "o", "--nsamples", SR, cwd=tmp_path, check=False)
    assert p.returncode == 3
    assert (
        f"error: {root / 'chiptune'}: holds no audio files it can read: 3 audio file(s) no installed decoder "
        "reads (chiptune/boss.xm, chiptune/intro.mod, chiptune/level1.it): tracker modules (note data and "
        "samples, not a recording): render them to .wav first, e.g. openmpt123 --render"
    ) in p.stderr

    (root / "chiptune" / "intro.mod").rename(root / "rock" / "intro.mod")
    shutil.rmtree(root / "chiptune")
    (root / "rock" / "song.m4a").write_bytes(b"\0" * 64)
    (root / "rock" / "notes.txt").write_text("x")
    hide_av = "import sys; sys.modules['av'] = None; from pipeline.cli import main; main()"
    p = subprocess.run(
        [sys.executable, "-c", hide_av, "run", str(root), "-o", str(tmp_path / "o"), "--nsamples", str(SR)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "DASK_TEMPORARY_DIRECTORY": str(tmp_path)},
    )
    assert p.returncode == 0, p.stderr
    assert (
        "ignored 1 audio file(s) no installed decoder reads (rock/intro.mod): tracker modules (note data and "
        "samples, not a recording): render them to .wav first, e.g. openmpt123 --render; 1 audio file(s) no "
        "installed decoder reads (rock/song.m4a): pip install av (PyAV) to decode them "
        "through ffmpeg; ignored 1 non-audio file(s): rock/notes.txt"
    ) in p.stderr


_SPAN_PEAK = """
import json, sys, tracemalloc
import av, numpy as np, soundfile  # imported before the measure: it counts the decode, not the imports
from pipeline.inputs import ClipRef, load_clip
from pipeline.params import Params

path, out, kw = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
ref, params = ClipRef(0, 0, "a", path, rel="a/long.m4a"), Params(**kw)
tracemalloc.start()
y = load_clip(ref, params)
peak = tracemalloc.get_traced_memory()[1]
np.save(out, y)
print(peak)
"""


@pytest.mark.parametrize("how", [{"crop": "center"}, {"offset": 400.0}])
def test_a_span_of_a_long_m4a_is_decoded_holding_the_span_not_the_file(tmp_path, how):
    """Before: the whole decode up to the span's end was kept (a 1-hour 48-kHz stereo track: 1.5 GiB in a
    worker).  A 10-minute track, a 10-s span: the decoding process's Python and numpy memory (tracemalloc, in a
    process of its own) stays within twice the span's bytes, where the file's decode is 60 times them."""
    _need_ffmpeg()
    path = tmp_path / "long.m4a"
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-y",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=330:sample_rate={SR}:duration=600",
            "-f",
            "lavfi",
            "-i",
            f"anoisesrc=color=pink:sample_rate={SR}:duration=600:amplitude=0.05:seed=4",
            "-filter_complex",
            "amix=inputs=2",
            "-ac",
            "1",
            "-c:a",
            "aac",
            "-b:a",
            "64k",
            str(path),
        ],
        check=True,
    )
    nsamples = 10 * SR
    kw = {"nsamples": nsamples, **how}
    p = subprocess.run(
        [sys.executable, "-c", _SPAN_PEAK, str(path), str(tmp_path / "y.npy"), json.dumps(kw)],
        capture_output=True,
        text=True,
        check=True,
    )
    peak = int(p.stdout.split()[-1])
    span_bytes = nsamples * 4
    assert peak <= 2 * span_bytes, (peak, span_bytes)
    # the span is the samples the ffmpeg command decodes there
    import av

    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        frames = int(round(float(s.duration * s.time_base) * SR))
    start = (frames - nsamples) // 2 if "crop" in how else int(how["offset"] * SR)
    whole, _ = _ffmpeg_decode(path)
    assert whole.shape[0] >= 600 * SR
    assert np.abs(np.load(tmp_path / "y.npy") - whole[start : start + nsamples, 0]).max() <= 1e-6
