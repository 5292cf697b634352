"""The rules of audio files, shared by every input format made of them (a genres folder, a manifest).

Which names are audio (the extensions the installed libsndfile reads), what
makes a file unusable before it is opened (a folder, a FIFO, a broken link),
a clip's format rules from its header (channels, rate, length) with the options
that fix each, and decoding exactly the span a clip keeps.
"""

from __future__ import annotations

import errno
import functools
import os
import stat
from pathlib import Path

import numpy as np

from ..exceptions import BadInputError, Problem, flags
from ..params import Params
from . import ffmpeg, headers
from .base import InputFormat, Verdict
from .index import ClipRef, shown

#: File extensions of the libsndfile formats, where they are not the format's name in lower case.
_EXTENSIONS = {
    "AIFF": ("aif", "aiff", "aifc"),
    "AU": ("au", "snd"),
    "IRCAM": ("sf", "ircam"),
    "NIST": ("nist", "sph"),
    "OGG": ("ogg", "oga", "opus"),
    "SVX": ("svx", "iff", "8svx"),
    "WAVEX": ("wav",),
    "MPC2K": ("mpc2k",),
}
#: libsndfile formats that are not taken as clips: headerless bytes, and MATLAB/Octave data files
#: (a collection's .mat feature files are not recordings).
_NOT_CLIPS = ("RAW", "MAT4", "MAT5")

#: Input samples decoded beyond what the kept span needs when a clip is resampled: soxr's
#: filter and block processing (librosa's default 'soxr_hq') need at most 7,000 extra samples
#: at 192 kHz and 0.12 s at 8 kHz in measurements; one second plus 16,384 samples is kept.
RESAMPLE_MARGIN_SECONDS = 1.0
RESAMPLE_MARGIN_SAMPLES = 16384


@functools.lru_cache(maxsize=1)
def sndfile_extensions() -> frozenset:
    """The file extensions (lower case, no dot) of the audio formats the installed libsndfile reads."""
    import soundfile as sf

    exts: set[str] = set()
    for fmt in sf.available_formats():
        if fmt not in _NOT_CLIPS:
            exts.update(_EXTENSIONS.get(fmt, (fmt.lower(),)))
    return frozenset(exts)


def audio_extensions() -> frozenset:
    """The extensions taken as clips: libsndfile's, and ffmpeg's (:mod:`.ffmpeg`) where PyAV is installed."""
    return sndfile_extensions() | (ffmpeg.EXTENSIONS if ffmpeg.available() else frozenset())


def _via_ffmpeg(path: str) -> bool:
    ext = Path(path).suffix[1:].lower()
    return ext in ffmpeg.EXTENSIONS and ext not in sndfile_extensions()


#: Audio that no installed decoder reads, by extension: what it is, and what would read it.
_TRACKER = ("mod", "it", "s3m", "xm", "mptm", "mtm", "669")
_UNREADABLE = {
    **{
        e: "tracker modules (note data and samples, not a recording): render them to .wav first, "
        "e.g. openmpt123 --render"
        for e in _TRACKER
    },
    "mid": "MIDI (notes, not a recording): render it to .wav first, e.g. fluidsynth -F",
    "midi": "MIDI (notes, not a recording): render it to .wav first, e.g. fluidsynth -F",
}


def unreadable(names) -> str | None:
    """``names`` (ignored entries) that are audio no installed decoder reads, grouped by what would read
    them, in one clause; None if there are none."""
    groups: dict[str, list[str]] = {}
    for name in names:
        ext = Path(name).suffix[1:].lower()
        why = _UNREADABLE.get(ext) or (ffmpeg.INSTALL if ext in ffmpeg.EXTENSIONS and not ffmpeg.available() else None)
        if why and not Path(name).name.startswith("."):
            groups.setdefault(why, []).append(name)
    if not groups:
        return None
    return "; ".join(
        f"{len(v)} audio file(s) no installed decoder reads ({', '.join(shown(n) for n in v[:5])}"
        f"{', ...' if len(v) > 5 else ''}): {why}"
        for why, v in groups.items()
    )


def is_audio_name(name: str) -> bool:
    """True for a visible file name with an audio extension (case-insensitive)."""
    return not name.startswith(".") and Path(name).suffix[1:].lower() in audio_extensions()


class AudioFiles(InputFormat):
    """A format whose clips are audio files (a folder's, a manifest's): their header checks and their decode."""

    def inspect(self, ref: ClipRef, params: Params) -> Verdict:
        return inspect(ref, params)

    def load(self, ref: ClipRef, params: Params) -> np.ndarray:
        return load(ref, params)


def inspect(ref: ClipRef, params: Params) -> Verdict:
    """The :class:`Verdict` of an audio file from its header alone: why it is a bad clip (None if it looks
    fine), how many of its ``Nsamples`` slot samples are its own (:func:`clip_samples`), where its span starts,
    and the flags that fix it."""
    import soundfile as sf

    why = _not_a_file(ref.source)
    if why:
        return Verdict(why)
    if os.path.getsize(ref.source) == 0:
        return Verdict("empty file (0 bytes)")
    if _via_ffmpeg(ref.source):
        try:
            rate, channels, frames = ffmpeg.info(ref.source)
        except Exception as e:
            return Verdict(f"not a decodable audio file (ffmpeg: {error_text(e)})")
    else:
        try:
            info = sf.info(ref.source)
        except Exception as e:  # libsndfile says why in its own words, when it says anything useful
            return Verdict(undecodable(ref.source, e))
        if info.format == "RAW":
            return Verdict(_NO_HEADER)
        rate, channels, frames = info.samplerate, info.channels, info.frames
        cut = headers.truncation(ref.source, frames)  # libsndfile reads a cut file as a shorter one
        if cut:
            return Verdict(cut.reason)
    return header_verdict(rate, channels, frames, params)


def header_verdict(rate: int, channels: int, frames: int, params: Params) -> Verdict:
    """The :class:`Verdict` of a clip from its header's rate, channels and length."""
    reason, fixes = format_problem(rate, channels, frames, params)
    if reason:
        return Verdict(reason, fixes=fixes)
    return Verdict(None, clip_samples(frames, rate, params), span_start(frames, rate, params) / rate)


def span_start(frames: int, rate: int, params: Params) -> int:
    """The first sample (at ``rate``) of the span a clip of ``frames`` samples keeps: ``offset`` seconds in,
    or, with ``crop="center"``, the middle ``Nsamples`` (the whole clip if it is shorter)."""
    if params.crop == "center":
        need = params.nsamples if rate == params.sr else -(-params.nsamples * rate // params.sr)
        return max(0, (frames - need) // 2)
    return int(round(params.offset * rate))


def clip_samples(frames: int, rate: int, params: Params) -> int:
    """How many samples of an ``Nsamples`` slot a clip of ``frames`` samples at ``rate`` fills (the rest is
    zero with ``pad_short``): its samples from :func:`span_start` on, or as many as resampling them to ``sr``
    gives (librosa: the ceiling of ``frames * sr / rate``), at most ``Nsamples``."""
    frames = max(0, frames - span_start(frames, rate, params))
    n = frames if rate == params.sr else -(-frames * params.sr // rate)
    return int(min(n, params.nsamples))


def _not_a_file(path: str) -> str | None:
    """Why ``path`` cannot be opened as a clip (a folder, a FIFO, a broken link, ...); None for a regular file.

    Checked before any open: opening a FIFO would wait for a writer forever.
    """
    try:
        st = os.stat(path)
    except OSError as e:
        if os.path.islink(path) and not os.path.exists(path) and e.errno != errno.ELOOP:
            return f"broken symbolic link (to {shown(os.readlink(path))})"
        if e.errno == errno.ELOOP:
            return "symbolic link loop (a link that leads back to itself)"
        return f"cannot be read ({e.strerror})"
    if stat.S_ISDIR(st.st_mode):
        return "is a folder, not an audio file"
    if not stat.S_ISREG(st.st_mode):
        kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode) else "a device"
        return f"is {kind}, not a regular file"
    if not os.access(path, os.R_OK):
        return "cannot be read (Permission denied)"
    return None


# libsndfile reads any headerless file ending in .au as raw 8 kHz u-law, so
# garbage would pass as audio; a usable clip always has a header.
_NO_HEADER = "not a decodable audio file (no audio header found)"


def check_format(rate: int, channels: int, frames: int, params: Params) -> str | None:
    """Every way a clip's format breaks the rules, in one line, with the options that fix it."""
    return format_problem(rate, channels, frames, params)[0]


def format_problem(rate: int, channels: int, frames: int, params: Params) -> tuple:
    """``(reason, fixes)``: :func:`check_format`'s line, and the flags (Python names) that together make the
    clip pass (empty when none does: no samples, or an offset past its end)."""
    found, needs, fixes = [], [], []
    if channels != 1 and not params.mono:
        found.append(f"{channels} channels")
        needs.append("mono")
        fixes.append("mono")
    if rate != params.sr and not params.resample:
        found.append(f"sample rate {rate} Hz")
        needs.append(f"sr={params.sr}")
        fixes.append("resample")
    seconds = frames / rate if rate else 0.0
    start = span_start(frames, rate, params) if rate else 0
    short = (int((frames - start) * params.sr / rate) if rate else 0) < params.nsamples
    past = frames > 0 and start >= frames  # an offset past the end: only a smaller one makes it pass
    if frames <= 0:
        found.append("no samples (an empty recording)")
        needs.append("at least one sample")
    elif past:
        found.append(f"{seconds:.2f} s long, not longer than offset={params.offset:g} s")
        needs.append("samples after the offset")
    elif short and not params.pad_short:
        if start:
            found.append(
                f"{(frames - start) / rate:.2f} s long after offset={params.offset:g} s "
                f"({frames - start} samples at {rate} Hz)"
            )
        else:
            found.append(f"{seconds:.2f} s long ({frames} samples at {rate} Hz)")
        needs.append(
            f"at least Nsamples={params.nsamples} samples at {params.sr} Hz ({params.nsamples / params.sr:.2f} s)"
        )
        fixes.append("pad_short")
    if not found:
        return None, ()
    text = f"{_and(found)}; needs {_and(needs)}"
    if not fixes and not past:
        return text, ()
    shorter = " to keep it zero-padded, or a smaller --nsamples" if "pad_short" in fixes else ""
    tail = ([f"use {flags(fixes)}{shorter}"] if fixes else []) + (["use a smaller --offset"] if past else [])
    return text + f" ({'; '.join(tail)})", tuple(fixes) if frames > 0 and not past else ()


def _and(items: list) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def undecodable(path: str, e: Exception) -> str:
    """Why libsndfile could not open the regular file ``path``, in words about the file.

    libsndfile's own text is kept when it names the problem; it is dropped when
    it is empty or says the file does not exist (it does: it was checked).
    """
    text = error_text(e)
    empty = text.endswith(":") or "does not exist or is not a regular file" in text
    try:
        with open(path, "rb") as f:
            head = f.read(10)
        size = os.path.getsize(path)
    except OSError:
        head, size = b"", 0
    if head[:3] == b"ID3" and len(head) == 10:
        tag = 10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(head[6:10]))
        if size - tag < 128:  # nothing but the tag (and at most an ID3v1 trailer)
            return f"holds an ID3 tag ({tag} bytes) but no audio: an MP3 without MPEG frames"
        return f"an MP3 whose audio cannot be decoded ({'no MPEG frame found' if empty else text})"
    if empty:
        return "not a decodable audio file (its content is no audio format libsndfile reads)"
    return f"not a decodable audio file ({text})"


def error_text(e: Exception) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text.replace(" : ", ": ")


def load(ref: ClipRef, params: Params) -> np.ndarray:
    """Read an audio file's clip as float32 of exactly ``params.nsamples`` samples.

    Samples are as the decoder returns them (16-bit PCM / 32768), never
    rescaled.  Only the kept span is decoded: ``Nsamples`` samples, or when
    resampling the input samples they come from plus the resampler's margin
    (:func:`decode_frames`), which gives the same bits as decoding the whole
    file.  Raises :class:`BadInputError` naming the file when it cannot be
    used, non-finite samples (NaN, Inf) included.
    """
    import soundfile as sf

    why = _not_a_file(ref.source)
    if why:
        raise BadInputError([Problem(shown(ref.source), why)])
    try:
        if _via_ffmpeg(ref.source):
            rate, channels, frames = ffmpeg.info(ref.source)
            reason = check_format(rate, channels, frames, params)
            if reason:
                raise BadInputError([Problem(shown(ref.source), reason)])
            y = ffmpeg.read(
                ref.source, decode_frames(rate, params), frames, span_start(frames, rate, params)
            )  # (channels, samples)
        else:
            with sf.SoundFile(ref.source) as f:
                rate, channels, frames = f.samplerate, f.channels, f.frames
                cut = headers.truncation(ref.source, frames)
                reason = (
                    _NO_HEADER
                    if f.format == "RAW"
                    else cut.reason
                    if cut
                    else check_format(rate, channels, frames, params)
                )
                if reason:
                    raise BadInputError([Problem(shown(ref.source), reason)])
                f.seek(span_start(frames, rate, params))  # span decode: the samples before are not decoded
                y = f.read(frames=decode_frames(rate, params), dtype="float32", always_2d=True).T
    except BadInputError:
        raise
    except Exception as e:
        raise BadInputError([Problem(shown(ref.source), f"decoding failed ({error_text(e)})")]) from None
    if channels > 1:
        y = y.mean(axis=0, keepdims=True)
    return to_nsamples(y[0], rate, params, shown(ref.source), "(the file is truncated or corrupt)", frames=frames)


def decode_frames(rate: int, params: Params) -> int:
    """How many samples at ``rate`` to decode for a clip of ``Nsamples`` samples at ``sr``.

    ``Nsamples`` at the target rate; when resampling, the input span those
    samples come from plus :data:`RESAMPLE_MARGIN_SECONDS` and
    :data:`RESAMPLE_MARGIN_SAMPLES`, beyond which the resampler's output
    over the kept span no longer changes (tested bit for bit).
    """
    if rate == params.sr:
        return params.nsamples
    span = -(-params.nsamples * rate // params.sr)  # ceil
    return span + int(RESAMPLE_MARGIN_SECONDS * rate) + RESAMPLE_MARGIN_SAMPLES


def to_nsamples(y: np.ndarray, rate: int, params: Params, name: str, why: str = "", *, frames: int) -> np.ndarray:
    """Resample a mono clip decoded at ``rate`` to ``params.sr`` if needed, then keep ``Nsamples`` samples
    (zero-padded to them with ``pad_short`` if the clip, ``frames`` long by its header, is shorter)."""
    y = np.asarray(y, dtype=np.float32)
    finite = np.isfinite(y[: decode_frames(rate, params)])
    if not finite.all():
        first = int(np.argmin(finite))
        raise BadInputError(
            [
                Problem(
                    name,
                    f"holds {int((~finite).sum())} non-finite sample(s) (NaN or Inf), "
                    f"the first at {first / rate:.3f} s; fix or remove the file",
                )
            ]
        )
    if rate != params.sr:
        y = resample(y, rate, params.sr)
    if params.pad_short and y.shape[0] < params.nsamples:
        expected = clip_samples(frames, rate, params)
        if y.shape[0] < expected:  # the slot's recorded length (its header's) must be the truth
            raise BadInputError(
                [Problem(name, f"decoded {y.shape[0]} samples where its header promises {expected} {why}".rstrip())]
            )
        y = np.concatenate([y[:expected], np.zeros(params.nsamples - expected, dtype=y.dtype)])
    if y.shape[0] < params.nsamples:
        raise BadInputError(
            [Problem(name, f"decoded {y.shape[0]} samples, needs at least Nsamples={params.nsamples} {why}".rstrip())]
        )
    return np.ascontiguousarray(y[: params.nsamples], dtype=np.float32)


def resample(y: np.ndarray, rate: int, sr: int) -> np.ndarray:
    """``librosa.resample(y, orig_sr=rate, target_sr=sr)`` (its default, soxr's "HQ", unscaled), bit for bit,
    without importing librosa (and numba) into a worker: soxr, then the length librosa fixes."""
    import soxr

    n = int(np.ceil(y.shape[-1] * (float(sr) / rate)))
    out = soxr.resample(y, rate, sr, quality="soxr_hq")
    out = out[:n] if out.shape[-1] >= n else np.pad(out, (0, n - out.shape[-1]))
    return np.asarray(out, dtype=y.dtype)
