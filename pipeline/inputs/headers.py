"""What an audio file's own header states about its length, read without a decoder.

libsndfile reads a truncated WAV, AU or AIFF as the samples its bytes still
hold (and says nothing), so a file cut in half would pass as a shorter clip.
Their headers state the data's size: :func:`truncation` compares it with the
bytes the file holds.  A FLAC's STREAMINFO states its samples, but its frames
are compressed: :func:`truncation` seeks to its last sample instead (libFLAC
fails to find it in a cut file).  Other formats are not checked here; their
decode (:mod:`.audio`) says when it gives fewer samples than stated.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

#: A data size a streaming writer leaves when it cannot seek back to fill it in: no length stated.
_UNKNOWN = (0, 0xFFFFFFFF)
#: WAV format tags whose block is one frame: PCM, IEEE float, A-law, u-law.
_WAV_PLAIN = (1, 3, 6, 7)
#: AU encodings: bytes a sample (others are compressed, counted in proportion to the bytes).
_AU_BYTES = {1: 1, 2: 1, 3: 2, 4: 3, 5: 4, 6: 4, 7: 8, 27: 1}
#: AIFC compression types of uncompressed samples (the sample size says the bytes), and of 1-byte logs.
_AIFC_PCM = (b"NONE", b"sowt", b"twos", b"raw ", b"in24", b"in32", b"fl32", b"FL32", b"fl64", b"FL64")
_AIFC_LOG = (b"ulaw", b"ULAW", b"alaw", b"ALAW")


@dataclass(frozen=True)
class Truncation:
    """A file holding fewer samples than its header states."""

    stated: int  # samples (a channel) the header states
    held: int | None  # samples the file's bytes hold (None where only the decoder can tell: FLAC)
    missing: int  # bytes missing (0 where not known)

    @property
    def reason(self) -> str:
        held = f"the file holds {self.held}" if self.held is not None else "its end cannot be decoded"
        lost = f" ({self.missing} bytes missing)" if self.missing else ""
        return (
            f"truncated: its header states {self.stated} samples but {held}{lost}; a cut or partly copied "
            "file stays bad (copy or download it again)"
        )


def truncation(path: str, frames: int | None = None) -> Truncation | None:
    """The :class:`Truncation` of the WAV, AU, AIFF or FLAC file ``path``, None if it holds what its header
    states (or it is another format).  ``frames``: libsndfile's count, used for a compressed WAV or AU."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
            size = os.fstat(f.fileno()).st_size
    except OSError:
        return None
    if head[:4] in (b"RIFF", b"RIFX") and head[8:12] == b"WAVE":
        return _wav(path, head, size, frames)
    if head[:4] in (b".snd", b"dns."):
        return _au(head, size, frames)
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return _aiff(path, size)
    if head[:4] == b"fLaC":
        return _flac(path, head)
    return None


def _chunks(path: str, start: int, size: int, big: bool):
    """``(id, data offset, stated size, the open file there)`` of each chunk of a RIFF or IFF file from ``start`` on."""
    fmt = ">I" if big else "<I"
    with open(path, "rb") as f:
        pos = start
        while pos + 8 <= size:
            f.seek(pos)
            head = f.read(8)
            cid, n = head[:4], struct.unpack(fmt, head[4:8])[0]
            yield cid, pos + 8, n, f
            pos += 8 + n + (n & 1)


def _verdict(stated_bytes: int, held_bytes: int, frame_bytes: int | None, frames: int | None) -> Truncation | None:
    if held_bytes >= stated_bytes or (frame_bytes and stated_bytes - held_bytes < frame_bytes):
        return None
    if frame_bytes:
        stated, held = stated_bytes // frame_bytes, held_bytes // frame_bytes
    elif frames and held_bytes > 0:  # compressed: the frames libsndfile found, in proportion
        stated, held = round(frames * stated_bytes / held_bytes), frames
    else:
        return None
    return Truncation(stated, held, stated_bytes - held_bytes)


def _wav(path: str, head: bytes, size: int, frames: int | None) -> Truncation | None:
    big = head[:4] == b"RIFX"
    tag = align = None
    for cid, at, n, f in _chunks(path, 12, size, big):
        if cid == b"fmt " and n >= 14:
            body = f.read(min(n, 40))
            tag, align = (
                struct.unpack(">H" if big else "<H", body[:2])[0],
                struct.unpack(">H" if big else "<H", body[12:14])[0],
            )
            if tag == 0xFFFE and len(body) >= 26:  # WAVE_FORMAT_EXTENSIBLE: the sub-format's tag
                tag = struct.unpack(">H" if big else "<H", body[24:26])[0]
        elif cid == b"data":
            if n in _UNKNOWN or align is None:
                return None
            # PCM, float, A-law, u-law: a frame is a block; a compressed block (ADPCM, ...) holds many frames
            return _verdict(n, size - at, align if tag in _WAV_PLAIN else None, frames)
    return None


def _au(head: bytes, size: int, frames: int | None) -> Truncation | None:
    fmt = ">5I" if head[:4] == b".snd" else "<5I"
    if len(head) < 24:
        return None
    offset, n, encoding, _rate, channels = struct.unpack(fmt, head[4:24])
    if n in _UNKNOWN or offset > size or not channels:
        return None
    width = _AU_BYTES.get(encoding)
    return _verdict(n, size - offset, width * channels if width else None, frames)


def _aiff(path: str, size: int) -> Truncation | None:
    stated = frame_bytes = data = None
    for cid, at, n, f in _chunks(path, 12, size, True):
        if cid == b"COMM" and n >= 18:
            body = f.read(min(n, 22))
            channels, stated, bits = struct.unpack(">hIh", body[:8])
            kind = body[18:22] if n >= 22 else b"NONE"  # AIFC's compression type follows the 80-bit rate
            frame_bytes = channels * ((bits + 7) // 8) if kind in _AIFC_PCM else channels if kind in _AIFC_LOG else None
        elif cid == b"SSND" and n >= 8:
            offset = struct.unpack(">I", f.read(4))[0]
            data = at + 8 + offset
    if stated is None or data is None or not frame_bytes:
        return None
    return _verdict(stated * frame_bytes, size - data, frame_bytes, None)


def _flac(path: str, head: bytes) -> Truncation | None:
    """A FLAC whose last sample libFLAC cannot reach (STREAMINFO states the samples; a seek checks them)."""
    if len(head) < 26 or head[4] & 0x7F != 0:  # STREAMINFO is always the first metadata block
        return None
    stated = int.from_bytes(head[21:26], "big") & ((1 << 36) - 1)
    if stated == 0:  # not stated (a stream written without seeking back)
        return None
    import soundfile as sf

    try:
        with sf.SoundFile(path) as f:
            f.seek(max(0, f.frames - 1))
            if f.read(1, dtype="float32").shape[0] == 1:
                return None
    except Exception:
        pass
    return Truncation(stated, None, 0)
