"""Audio formats libsndfile does not read (``.m4a``/AAC, ``.wma``, ...), decoded through ffmpeg's libraries.

PyAV (``pip install av``) is the decoder: an optional extra,
so these extensions are clips only where it is installed, and named with that
fix where it is not.  The rules are those of every clip (:mod:`.audio`): the
header's rate, channels and length are checked first, only the kept span is
decoded, and a clip at another rate is resampled by the same code.

A lossy container states its length to within a codec frame (AAC's priming and
padding, WMA's packets): the decode is trimmed, or zero-filled by at most
:data:`LENGTH_TOLERANCE_SECONDS`, to the length the header states, so that the
length pre-flight recorded is the truth.
"""

from __future__ import annotations

import functools
import importlib.util

import numpy as np

#: Extensions decoded through ffmpeg (when PyAV is installed): containers of AAC, ALAC, WMA, AC-3, ...
EXTENSIONS = frozenset(
    {"m4a", "m4b", "mp4", "aac", "alac", "wma", "asf", "ape", "webm", "mka", "ac3", "amr", "3gp", "dts"}
)
#: How much shorter than its header states a decode may be before the clip is bad (codec frames).
LENGTH_TOLERANCE_SECONDS = 0.1
#: Named in the ignored line when PyAV is missing.
INSTALL = "pip install av (PyAV) to decode them through ffmpeg"


@functools.lru_cache(maxsize=1)
def available() -> bool:
    """Whether PyAV is installed (nothing is imported)."""
    return importlib.util.find_spec("av") is not None


def info(path: str) -> tuple:
    """``(rate, channels, frames)`` of the first audio stream, from the container's header."""
    import av

    with av.open(path) as c:
        if not c.streams.audio:
            raise ValueError("no audio stream in the file")
        s = c.streams.audio[0]
        rate = int(s.rate or s.codec_context.sample_rate)
        if s.duration is not None and s.time_base is not None:
            seconds = float(s.duration * s.time_base)
        elif c.duration is not None:
            seconds = c.duration / 1_000_000  # AV_TIME_BASE
        else:
            raise ValueError("the container states no duration")
        return rate, int(s.codec_context.channels), int(round(seconds * rate))


def read(path: str, nframes: int, frames: int, start: int = 0) -> np.ndarray:
    """Decode ``min(nframes, frames - start)`` samples of every channel from sample ``start`` on, as float32,
    shape ``(channels, n)``.

    Frames are decoded one by one and only the part of each inside the span is
    kept, so memory holds the span, not the file (a 1-hour track with
    ``--crop center`` holds what a 30-s one does).  The samples before
    ``start`` are decoded and dropped rather than sought past: a seek restarts
    AAC's noise substitution from another state, which changes the samples of
    noisy passages (measured up to 0.3), so a kept span would depend on the
    seek.  Decoding stops once the span is there.  A decode short of it by at
    most :data:`LENGTH_TOLERANCE_SECONDS` is zero-filled (the container's stated
    length is pre-flight's); a shorter one is returned as it is, and the caller
    says the file is truncated.
    """
    import av

    want = max(0, min(nframes, frames - start))
    pos = kept = 0  # samples decoded so far; of them, inside the span (copied into y)
    with av.open(path) as c:
        s = c.streams.audio[0]
        rate = int(s.rate or s.codec_context.sample_rate)
        y = np.zeros((int(s.codec_context.channels), want), dtype=np.float32)  # the span, and nothing more
        to_float = av.AudioResampler(format="fltp", layout=s.layout, rate=rate)
        for packet in c.demux(s):
            for frame in packet.decode():
                for out in to_float.resample(frame):
                    lo, hi = max(0, start - pos), min(out.samples, start + want - pos)
                    if hi > lo:
                        y[:, kept : kept + hi - lo] = out.to_ndarray()[:, lo:hi]
                        kept += hi - lo
                    pos += out.samples
            if kept >= want:
                break
    if want - kept > LENGTH_TOLERANCE_SECONDS * rate:
        return y[:, :kept]  # truncated: the caller says so
    return y  # complete, or zero-filled by at most the tolerance
