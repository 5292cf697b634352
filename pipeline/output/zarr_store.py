"""``audio.zarr``: the store the workers write into, one whole chunk per clip and array.

It holds ``Xa``, ``Xs``, ``Xn`` (5-D, one chunk per clip) and ``valid`` (genre x
clip) like ``audio.hdf5``, plus ``done`` (genre x clip, one chunk per clip), the
record that a clip's chunks are all written.  A clip's ``done`` chunk is written
last, so after any crash a clip either is complete or is computed again; no two
tasks write the same chunk, so no lock is needed.

Attributes are written only by the driver process, never by a task.
"""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import numpy as np

from ..exceptions import StoreError
from ..params import DATASETS, Params
from . import layout
from .files import atomic_path


def _codec():
    # Samples come from 16-bit PCM, so their float32 bytes shuffle and compress
    # well (5.3 MB -> 1.8 MB a clip of Xa). Measured per clip: lz4 level 1 writes
    # in 15 ms, level 5 in 19 ms, zstd in 20-28 ms, no codec in 36 ms (the
    # disk writes dominate), so lz4 level 1 it is (benchmarks/RESULTS.md).
    from zarr.codecs import BloscCodec

    return BloscCodec(cname="lz4", clevel=1, shuffle="shuffle")


def create_store(path, index, params: Params, attrs: dict):
    """Create ``audio.zarr`` (replacing any store at ``path``) and return its group."""
    import zarr

    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    G, C = index.ngenres, index.nclips
    # The store appears under its final name only once its metadata is complete.
    with atomic_path(path, directory=True) as tmp:
        root = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        for name in params.datasets:
            shape = params.shape(name, G, C)
            root.create_array(name, shape=shape, chunks=(1, 1) + shape[2:], dtype="float32",
                              fill_value=0.0, compressors=[_codec()], dimension_names=layout.dims(name))
        for name in layout.FLAGS:
            root.create_array(name, shape=(G, C), chunks=(1, 1), dtype="bool", fill_value=False,
                              compressors=None, dimension_names=layout.dims(name))
        root.attrs.update(attrs)
    return zarr.open_group(str(path), mode="r+")


def open_store(path, mode="r"):
    """Open an existing store's group; :class:`StoreError` if it is not one."""
    import zarr

    try:
        return zarr.open_group(str(path), mode=mode)
    except Exception as e:
        raise StoreError(f"{path}: not an audioprep Zarr store ({type(e).__name__}: {e})") from None


def attrs(path) -> dict:
    """The store's attributes as they are on disk now (a group caches what it read when opened)."""
    return dict(open_store(path).attrs)


@functools.lru_cache(maxsize=4)
def _arrays(path: str, token: str) -> dict:
    # Opening the group reads its metadata; a worker does it once per store,
    # not once per clip (about 5 ms a clip).
    import zarr

    root = zarr.open_group(path, mode="r+")
    return {name: root[name] for name in (*DATASETS, *layout.FLAGS) if name in root}


def write_clip(path, g: int, c: int, arrays: dict, token: str = "") -> int:
    """Write one clip's arrays into their chunks, then mark the clip done.

    Runs on a worker.  ``token`` (:func:`layout.store_token`) names the store's
    creation, so a store made again under the same path is opened afresh.
    Returns the bytes of array data written.
    """
    store = _arrays(str(path), token)
    nbytes = 0
    for name, a in arrays.items():
        store[name][g, c] = a
        nbytes += a.nbytes
    store["valid"][g, c] = True
    store["done"][g, c] = True  # last: the clip counts as finished only now
    return nbytes


def mark_bad(root, g: int, c: int, path: str, reason: str) -> None:
    """Zero a clip's slots, flag it invalid and record why (driver only)."""
    for name in DATASETS:
        if name in root:
            root[name][g, c] = 0.0  # also clears chunks a killed attempt left
    root["valid"][g, c] = False
    bad = [b for b in json.loads(root.attrs.get("bad_clips", "[]")) if (b["genre"], b["clip"]) != (g, c)]
    bad.append({"genre": g, "clip": c, "path": path, "reason": reason})
    bad.sort(key=lambda b: (b["genre"], b["clip"]))
    root.attrs["bad_clips"] = json.dumps(bad)
    root["done"][g, c] = True


def done_mask(root) -> np.ndarray:
    """``done`` as a bool array [shape=(genres, clips)]."""
    return np.asarray(root["done"][...], dtype=bool)
