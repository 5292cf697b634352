"""An independent, plain serial reference: the original notebook's loop plus the LCN of docs/numerics.md.

Written for the tests only, directly from docs/numerics.md, sharing no code with the
package: a 2-D window and a 2-D correlation (the package uses two 1-D passes),
two ``librosa.cqt`` calls per clip, plain reshapes.
"""

from __future__ import annotations

import os

import librosa
import numpy as np
import soundfile as sf
from scipy.signal import correlate2d


def reference_lcn(S, size=9, sigma=2.0, log=False):
    S = np.asarray(S, dtype=np.float64)
    if log:
        S = np.log(1.0 + S)
    r = np.arange(size) - size // 2
    w = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2.0 * sigma**2))
    w = w / w.sum()

    def corr(X):
        return correlate2d(X, w, mode="same", boundary="fill", fillvalue=0.0)

    ones = corr(np.ones_like(S))
    m = corr(S) / ones
    v = S - m
    sd = np.sqrt(corr(v**2) / ones)
    c = sd.mean()
    if c == 0:
        return np.zeros_like(S, dtype=np.float32)
    return (v / np.maximum(sd, c)).astype(np.float32)


def reference_clip(y, *, sr=22050, Nsamples=660000, na=1024, ns=96, No=4, fmin=65.40639132514966):
    """Xa, Xs, Xn of one clip as the original loop computes them (shapes (F, 2, n))."""
    Nframes = min(int(np.floor(Nsamples / na)), int(np.floor(Nsamples / na - 0.5)))
    y1 = y[:Nsamples]
    y2 = y1[na // 2 :]
    xa = np.stack([y1[: na * Nframes].reshape(Nframes, na), y2[: na * Nframes].reshape(Nframes, na)], axis=1)
    C1 = np.abs(librosa.cqt(y1, sr=sr, hop_length=na, fmin=fmin, n_bins=ns, bins_per_octave=ns // No))
    C2 = np.abs(librosa.cqt(y2, sr=sr, hop_length=na, fmin=fmin, n_bins=ns, bins_per_octave=ns // No))
    xs = np.stack([C1[:, :-1].T, C2[:, :-1].T], axis=1).astype(np.float32)
    xn = np.stack([reference_lcn(xs[:, 0, :]), reference_lcn(xs[:, 1, :])], axis=1)
    return xa, xs, xn


def reference_folder(root, **kw):
    """The three 5-D arrays and the labels for a GTZAN-style folder."""
    genres = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    out = {"Xa": [], "Xs": [], "Xn": []}
    for genre in genres:
        rows = {"Xa": [], "Xs": [], "Xn": []}
        for name in sorted(os.listdir(os.path.join(root, genre))):
            y, _ = sf.read(os.path.join(root, genre, name), dtype="float32")
            for key, arr in zip(("Xa", "Xs", "Xn"), reference_clip(y, **kw)):
                rows[key].append(arr)
        for key in out:
            out[key].append(np.stack(rows[key]))
    return {k: np.stack(v) for k, v in out.items()}, genres


def reference_rows(root, *, Nsamples):
    """The clip layout's arrays for a folder of genres: one row a clip in (genre, file) order, each clip as
    :func:`reference_clip` computes it; returns ``(arrays, genres, labels, sources)``."""
    from pathlib import Path

    rows, labels, sources = {"Xa": [], "Xs": [], "Xn": []}, [], []
    genres = sorted(p.name for p in Path(root).iterdir() if p.is_dir())
    for g, genre in enumerate(genres):
        for f in sorted((Path(root) / genre).iterdir()):
            y, _ = sf.read(f, dtype="float32")
            for name, a in zip(("Xa", "Xs", "Xn"), reference_clip(y, Nsamples=Nsamples)):
                rows[name].append(a)
            labels.append(g)
            sources.append(f"{genre}/{f.name}")
    return {k: np.stack(v) for k, v in rows.items()}, genres, labels, sources
