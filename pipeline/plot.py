"""``audioprep show``: look at one clip (waveform, CQT, LCN) or each genre's mean spectrum.

matplotlib is an optional extra (``pip install matplotlib``, or the ``plot`` extra of a checkout).
"""

from __future__ import annotations

import numpy as np

from .arrays import ARRAYS
from .exceptions import PipelineError
from .inputs import label
from .output import OutputReader
from .output.reader import own_frames


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PipelineError("'audioprep show' needs matplotlib; install it with: pip install matplotlib") from None
    return plt


def _octave_ticks(attrs):
    """Bin positions and labels of each octave's C: 'C2\\n65.4 Hz' ... 'C6\\n1046.5 Hz'."""
    from .pitch import note_name

    bpo, ns, fmin = int(attrs["bins_per_octave"]), int(attrs["ns"]), float(attrs["fmin"])
    pos = np.arange(0, ns + 1, bpo)
    freqs = fmin * 2.0 ** (pos / bpo)
    labels = [f"{note_name(f)}\n{f:.1f} Hz" for f in freqs]
    return pos - 0.5, labels


def show_clip(
    path,
    *,
    genre: str | None = None,
    clip: int = 0,
    stream: int = 0,
    seconds: float = 2.0,
    out=None,
    source: str | None = None,
):
    """Figure of one clip: a stretch of waveform (``Xa``), the CQT in dB (``Xs``), the LCN (``Xn``).

    In the clip layout ``clip`` is the row (``genre`` None), or the ``clip``-th row labelled ``genre``; in
    either layout ``source`` names the clip by its file (its ``source`` entry, or that entry's last parts)."""
    plt = _pyplot()
    with OutputReader(path) as src:
        return _finish(_clip_figure(plt, src, path, genre, clip, stream, seconds, source), out)


def _clip_figure(plt, src, path, genre, clip, stream, seconds, source=None):
    a = src.attrs
    labels = list(a["labels"])
    keys = [label(x) for x in labels]  # a genre typed in any Unicode form
    if source is not None:
        at, title = _source_at(src, path, source)
    else:
        if genre is None and src.layout == "grid":
            raise PipelineError(f"{path} is a genres x clips grid: give --genre NAME with --clip N, or --source FILE")
        if genre is not None and label(genre) not in keys:
            raise PipelineError(f"--genre {genre!r} is not in {path}; choose one of {', '.join(labels)}")
        g = None if genre is None else keys.index(label(genre))
        at, title = _clip_at(src, path, g, clip, labels)
    if stream not in (0, 1):
        raise PipelineError(f"--stream {stream} must be 0 (aligned frames) or 1 (overlapped frames)")
    sr, na = int(a["sr"]), int(a["na"])
    hop_s = na / sr
    offset = stream * na / 2 / sr
    panels = [n for n in ARRAYS if n in src.names]  # one panel an array, drawn as its record says
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 3.2 * len(panels)), squeeze=False)
    axes = axes[:, 0]
    valid = bool(np.asarray(src.array("valid")[at])) if "valid" in src.names else True
    own = int(src.samples()[at])  # where the clip's own samples end: --pad-short's zeros follow
    padded = valid and own < int(a["Nsamples"])
    fig.suptitle(
        f"{title}, {'aligned' if stream == 0 else 'overlapped'} stream"
        + ("" if valid else "  (INVALID: zero-filled bad clip)" if src.sources()[at] else "  (MISSING: no clip, --pad)")
        + (f"  (its own samples end at {own / sr:.2f} s: zero padding after, --pad-short)" if padded else ""),
        fontsize=13,
    )
    ticks, ticklabels = _octave_ticks(a)
    for ax, name in zip(axes, panels):
        style = ARRAYS[name].panel
        if style == "waveform":
            nfr = max(1, min(int(a["Nframes"]), int(np.ceil(seconds * sr / na))))
            where = (*at, slice(0, nfr), stream)
            y = np.asarray(src.array(name)[where]).ravel()
            t = offset + np.arange(y.size) / sr
            ax.plot(t, y, lw=0.5, color="tab:blue")
            ax.set_xlim(t[0], t[-1])
            ax.set_ylabel("amplitude")
            ax.set_title(f"waveform ({name}), first {y.size / sr:.2f} s")
            continue
        where = (*at, slice(None), stream)
        S = np.asarray(src.array(name)[where], dtype=np.float64).T  # bins x frames
        extent = (offset, offset + S.shape[1] * hop_s, -0.5, S.shape[0] - 0.5)
        if style == "spectrogram":
            ref = S.max() if S.max() > 0 else 1.0
            img = 20 * np.log10(np.maximum(S, ref * 1e-5) / ref)
            im = ax.imshow(img, origin="lower", aspect="auto", extent=extent, cmap="magma", vmin=-80, vmax=0)
            fig.colorbar(im, ax=ax, pad=0.01, label="dB (re max)")
            ax.set_title(f"{ARRAYS[name].doc} ({name}), dB")
        else:
            lim = float(np.percentile(np.abs(S), 99.5)) or 1.0
            im = ax.imshow(S, origin="lower", aspect="auto", extent=extent, cmap="RdBu_r", vmin=-lim, vmax=lim)
            fig.colorbar(im, ax=ax, pad=0.01, label="normalized (0 = local mean)")
            ax.set_title(f"{ARRAYS[name].doc} ({name})")
        ax.set_yticks(ticks)
        ax.set_yticklabels(ticklabels, fontsize=8)
        ax.set_ylabel("pitch")
    if padded:
        # Marked on each panel whose time span holds it (the waveform shows only its first seconds); the legend
        # goes on the first of them, so it never names a line that is out of view.
        marked = [ax for ax in axes if min(ax.get_xlim()) <= own / sr <= max(ax.get_xlim())]
        for ax in marked:
            ax.axvline(own / sr, color="tab:green", ls="--", lw=1.5, label="end of the clip's own samples")
        if marked:
            marked[0].legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("time (s)")
    for ax in axes[:-1]:
        if ax.get_xlabel() == "":
            ax.set_xlabel("time (s)")
    fig.tight_layout()
    return fig


def _clip_at(src, path, g, clip, labels) -> tuple:
    """``(where the clip is in the arrays, the figure's title)``: ``(g, clip)`` in the grid; in the clip layout
    the row ``clip``, or the ``clip``-th row labelled ``g``."""
    if src.layout == "grid":
        nclips = int(src.attrs["Nclips"])
        if not 0 <= clip < nclips:
            raise PipelineError(f"--clip {clip} is out of range; {path} holds clips 0 to {nclips - 1}")
        return (g, clip), f"{labels[g]} clip {clip}"
    lab = src.clip_labels()
    rows = np.arange(lab.size) if g is None else np.nonzero(lab == g)[0]
    if not 0 <= clip < rows.size:
        which = f"clips labelled {labels[g]}" if g is not None else "clips"
        raise PipelineError(f"--clip {clip} is out of range; {path} holds {rows.size} {which} (0 to {rows.size - 1})")
    row = int(rows[clip])
    name = labels[lab[row]] if lab[row] >= 0 else "no label"
    return (row,), f"clip {row} ({name}: {src.sources()[row]})"


def _source_at(src, path, source: str) -> tuple:
    """``(where, title)`` of the clip whose ``source`` is ``source``, or ends with it after a ``/``."""
    sources = src.sources()
    want = str(source).replace("\\", "/").strip("/")
    hits = [i for i, s in np.ndenumerate(sources) if s == want]
    hits = hits or [i for i, s in np.ndenumerate(sources) if s.endswith("/" + want)]
    if not hits:
        raise PipelineError(
            f"--source {source!r} names no clip of {path}; give a file as its source array has it "
            "(relative to the input: 'audioprep info' shows the input, open_dataset(...).source lists them)"
        )
    if len(hits) > 1:
        shown = ", ".join(str(sources[i]) for i in hits[:3])
        raise PipelineError(
            f"--source {source!r} names {len(hits)} clips of {path} ({shown}); give more of its path to choose one"
        )
    at = tuple(int(i) for i in hits[0])
    where = f"genre {src.attrs['labels'][at[0]]} clip {at[1]}" if len(at) == 2 else f"clip {at[0]}"
    return at, f"{sources[at]} ({where})"


def show_summary(path, *, out=None):
    """Each genre's mean CQT spectrum (valid clips, each over its own frames and both streams), side by side."""
    plt = _pyplot()
    with OutputReader(path) as src:
        return _finish(_summary_figure(plt, src, path), out)


def _summary_figure(plt, src, path):
    a = src.attrs
    if "Xs" not in src.names:
        raise PipelineError(f"{path} holds no Xs; the summary plots the mean CQT spectrum")
    labels = list(a["labels"])
    arr = src.array("Xs")
    slots = arr.shape[: src.k]  # (genres, clips), or (clips,) in the clip layout (each clip's label: clip_labels)
    valid = np.asarray(src.array("valid")[...], bool) if "valid" in src.names else np.ones(slots, bool)
    # A clip --pad-short zero-padded counts only its own frames: its padding would make its genre look quieter.
    own = own_frames(src.samples(), na=int(a["na"]), nframes=arr.shape[src.k])
    ns, lab = arr.shape[-1], src.clip_labels()
    mean = np.full((ns, len(labels)), np.nan)  # a genre with no valid clip stays empty (NaN: not drawn)
    for g in range(len(labels)):
        acc, n = np.zeros(ns), 0
        for at in zip(*np.nonzero(valid & (lab == g) & (own > 0))):
            acc += np.asarray(arr[at][: own[at]], dtype=np.float64).mean(axis=(0, 1))
            n += 1
        if n:
            mean[:, g] = acc / n
    top = np.nanmax(mean) if np.isfinite(mean).any() and np.nanmax(mean) > 0 else 1.0
    db = 20 * np.log10(np.maximum(mean, top * 1e-5) / top)
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(labels) + 2), 6))
    im = ax.imshow(np.ma.masked_invalid(db), origin="lower", aspect="auto", cmap="magma", interpolation="nearest")
    fig.colorbar(im, ax=ax, label="mean level, dB (re max)")
    ax.set_xticks(range(len(labels)))
    empty = [g for g in range(len(labels)) if not np.isfinite(mean[:, g]).any()]
    ax.set_xticklabels(
        [f"{x}\n(no valid clip)" if g in empty else x for g, x in enumerate(labels)], rotation=45, ha="right"
    )
    for g in empty:
        ax.text(g, ns / 2, "no valid clip", rotation=90, ha="center", va="center", color="0.4")
    ticks, ticklabels = _octave_ticks(a)
    ax.set_yticks(ticks)
    ax.set_yticklabels(ticklabels, fontsize=8)
    ax.set_ylabel("pitch")
    # Two lines: one would be wider than the figure of 2 or 3 genres, and cut on both sides.
    ax.set_title("mean CQT spectrum per genre\n(valid clips, each over its own frames: no padding)", fontsize=11)
    fig.tight_layout()
    return fig


def _finish(fig, out):
    if out is not None:
        fig.savefig(out, dpi=100)
        import matplotlib.pyplot as plt

        plt.close(fig)
    return fig
