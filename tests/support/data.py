"""Test data sizes and small file helpers."""

from __future__ import annotations

import shutil
from pathlib import Path

SR = 22050
# Small clips: 3 s at 22050 Hz; Nsamples = 64.6 frames of 1024, so both streams
# give 64 frames and the original [:, :-1] slicing applies unchanged.
SMALL = dict(nsamples=1024 * 64 + 600)
SMALL_SECONDS = 3.0
SMALL_ARGS = ["--nsamples", str(SMALL["nsamples"])]


def copy_tree(src, dst) -> Path:
    shutil.copytree(src, dst)
    return Path(dst)


def genre_folder(root, sizes: dict, clip, *, ext: str = ".wav", **write) -> Path:
    """``root/<genre>/<genre>.<NNNNN><ext>``: ``sizes[genre]`` clips a genre, clip ``c`` of genre ``g`` (both
    counted from 0) holding ``clip(g, c)`` written by ``soundfile.write`` at ``SR`` with ``write``'s options."""
    import soundfile as sf

    root = Path(root)
    for g, (genre, n) in enumerate(sizes.items()):
        (root / genre).mkdir(parents=True)
        for c in range(n):
            sf.write(root / genre / f"{genre}.{c:05d}{ext}", clip(g, c), SR, **write)
    return root
