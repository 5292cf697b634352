"""A deterministic synthetic dataset in GTZAN's layout.

Each genre has its own tempo, register, chord progression, timbre and amount of
percussive noise, so the spectrograms of different genres differ visibly; each
clip draws its key, tempo jitter and length from a generator seeded by
``(seed, genre, clip)``, so any clip can be regenerated alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .output.files import atomic_path

GTZAN_GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")

#: GTZAN clips hold 660000 to 675808 samples at 22050 Hz.
GTZAN_MIN_SAMPLES, GTZAN_MAX_SAMPLES = 660000, 675808


@dataclass(frozen=True)
class Style:
    bpm: float  # beats per minute
    root_midi: int  # lowest note of the register
    chords: tuple  # progression, semitone offsets of chord roots
    harmonics: int  # brightness of the timbre
    drums: float  # 0 (none) to 1 (loud noise bursts)
    swing: float  # 0 straight, > 0 delays every other beat


_CHORD_SETS = ((0, 5, 0, 7), (0, 7, 9, 5), (0, 5, 7, 0), (0, 9, 5, 7), (0, 3, 10, 5))


def style_for(genre: str, g: int) -> Style:
    """The style of genre number ``g`` (GTZAN's genres get hand-picked ones)."""
    table = {
        "blues": Style(84, 40, (0, 5, 0, 7), 6, 0.3, 0.3),
        "classical": Style(66, 48, (0, 7, 9, 5), 3, 0.0, 0.0),
        "country": Style(112, 45, (0, 5, 7, 0), 5, 0.35, 0.1),
        "disco": Style(122, 43, (0, 9, 5, 7), 8, 0.6, 0.0),
        "hiphop": Style(92, 36, (0, 3, 10, 5), 4, 0.8, 0.2),
        "jazz": Style(136, 47, (2, 7, 0, 9), 7, 0.25, 0.4),
        "metal": Style(168, 38, (0, 1, 5, 3), 14, 0.9, 0.0),
        "pop": Style(116, 50, (0, 7, 9, 5), 6, 0.5, 0.0),
        "reggae": Style(76, 42, (0, 5, 7, 5), 5, 0.45, 0.25),
        "rock": Style(138, 40, (0, 5, 7, 5), 10, 0.7, 0.0),
    }
    if genre in table:
        return table[genre]
    return Style(70 + 9 * g % 100, 36 + 3 * g % 18, _CHORD_SETS[g % len(_CHORD_SETS)], 3 + g % 10, (g % 5) / 5, 0.0)


_TABLE = 4096
_PHASE = np.arange(_TABLE) / _TABLE


def _midi_hz(m):
    return 440.0 * 2.0 ** ((np.asarray(m, dtype=float) - 69) / 12)


def synth_clip(
    genre: str, g: int, c: int, *, seed: int = 0, sr: int = 22050, nsamples: int | None = None
) -> np.ndarray:
    """One clip as float32 in [-1, 1), deterministic in ``(seed, g, c)``.

    ``nsamples=None`` draws the length from GTZAN's range.
    """
    rng = np.random.default_rng([seed, g, c])
    st = style_for(genre, g)
    n = int(rng.integers(GTZAN_MIN_SAMPLES, GTZAN_MAX_SAMPLES + 1)) if nsamples is None else nsamples
    bpm = st.bpm * rng.uniform(0.95, 1.05)
    beat = 60.0 / bpm
    key = int(rng.integers(0, 12))
    y = np.zeros(n)
    nbeats = int(n / sr / beat) + 1
    for b in range(nbeats):
        start = (b + (st.swing * 0.33 if b % 2 else 0.0)) * beat
        i0 = int(start * sr)
        if i0 >= n:
            break
        length = min(int(beat * sr * 1.5), n - i0)
        t = np.arange(length) / sr
        chord_root = st.root_midi + key + st.chords[(b // 4) % len(st.chords)]
        # a triad in the register plus a melody note an octave up
        notes = [
            chord_root,
            chord_root + 4 + (b // 16) % 2 * -1,
            chord_root + 7,
            chord_root + 12 + int(rng.choice([0, 2, 4, 7, 9])),
        ]
        env = np.exp(-t / (beat * 0.6)) * (1 - np.exp(-t * 200))
        seg = np.zeros(length)
        for k, f0 in enumerate(_midi_hz(notes)):
            # One cycle of the timbre in a table, read at the note's rate: one
            # lookup a sample instead of one sine a harmonic.
            nh = max(1, min(st.harmonics, int((sr / 2 - 1) // f0)))
            h = np.arange(1, nh + 1)[:, None]
            cycle = (np.sin(2 * np.pi * h * _PHASE + rng.uniform(0, 2 * np.pi, (nh, 1))) / h**1.2).sum(0)
            idx = (np.arange(length) * (f0 * _TABLE / sr)).astype(np.int64) % _TABLE
            seg += cycle[idx] / (1 + 0.5 * k)
        seg *= env
        if st.drums > 0:
            hit = rng.standard_normal(length) * np.exp(-t * (30 if b % 2 else 12))
            kick = np.sin(2 * np.pi * 55 * t * np.exp(-t * 4)) * np.exp(-t * 15) * (b % 2 == 0)
            seg += st.drums * (0.6 * hit + 1.2 * kick)
        y[i0 : i0 + length] += seg
    y += 0.003 * rng.standard_normal(n)  # a noise floor, as in real recordings
    y *= 0.7 / max(np.max(np.abs(y)), 1e-9)
    return y.astype(np.float32)


def synth_dataset(
    out_dir,
    *,
    genres: int = 10,
    clips: int = 100,
    seconds: float | None = None,
    seed: int = 0,
    sr: int = 22050,
    progress: bool = False,
) -> Path:
    """Write ``out_dir/genres/<genre>/<genre>.000NN.au`` (16-bit PCM); return the genres folder.

    ``seconds=None`` draws each length from GTZAN's 660000 to 675808 samples;
    otherwise every clip holds ``round(seconds * sr)`` samples.
    Existing files are kept, so an interrupted call can be repeated.
    """
    import soundfile as sf

    from .progress import bar

    names = list(GTZAN_GENRES[:genres]) + [f"genre{g:02d}" for g in range(len(GTZAN_GENRES), genres)]
    root = Path(out_dir) / "genres"
    nsamples = None if seconds is None else int(round(seconds * sr))
    jobs = [(g, genre, c) for g, genre in enumerate(names) for c in range(clips)]
    for g, genre, c in bar(jobs, desc="synthesizing", enabled=progress):
        path = root / genre / f"{genre}.{c:05d}.au"
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        y = synth_clip(genre, g, c, seed=seed, sr=sr, nsamples=nsamples)
        with atomic_path(path) as tmp:
            sf.write(tmp, y, sr, format="AU", subtype="PCM_16")
    return root
