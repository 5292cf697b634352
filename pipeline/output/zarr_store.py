"""``audio.zarr``: the store the workers write into, one whole chunk per clip and array.

It holds ``Xa``, ``Xs``, ``Xn`` (5-D, one chunk per clip) and ``valid`` (genre x
clip, one chunk) like ``audio.hdf5``, plus ``done`` (genre x clip, one chunk per
clip), the record that a clip's chunks are all written.  A clip's ``done`` chunk
is written last, so after any crash a clip either is complete or is computed
again; no two tasks write the same chunk, so no lock is needed.

Chunk keys are flat (``Xa/c.3.17.0.0.0``, Zarr v3's default encoding with the
``.`` separator), so a clip costs four files and no folder: a store of
FMA-large's 106,574 clips stays within the inode quotas of HPC scratch file
systems.  ``valid`` (``done`` and not a bad clip) is written by the driver at
the end of every run, in one chunk.

In the clip layout (``layout="clips"``) the slot dimensions ``(genre, clip)``
are one, ``clip`` (a row a clip): the arrays are 4-D, ``done`` and ``valid``
1-D, chunk keys ``Xa/c.17.0.0.0``, and the per-clip ``label`` (``split``,
``tags``) sit beside ``source``; :class:`ClipChunks` tells them apart by the
dimensions of ``done``.

Attributes are written only by the driver process, never by a task.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..arrays import DATASETS
from ..exceptions import StoreError
from ..params import Params
from . import layout
from .files import atomic_path, storage_errors, write_bytes

if TYPE_CHECKING:
    from zarr.core.chunk_key_encodings import ChunkKeyEncodingParams

#: The chunk codec of the datasets, chosen by measurement (20 GTZAN-shaped 30-s
#: clips, all three arrays, one blosc thread, CPU a clip; 6.26 MB raw): lz4
#: level 9 with bit-shuffle 2.24 MB in 5.5 ms; lz4 level 1 2.69 MB in 4.6 ms
#: (byte shuffle 2.64 MB, 4.4 ms; no shuffle 4.36 MB, 2.1 ms); blosclz level 5
#: 2.29 MB in 8.4 ms; zstd level 1 2.25 MB in 14.2 ms, level 3 2.11 MB in
#: 21.5 ms.  A run writes audio.hdf5's 6.26 MB a clip besides, so past the page
#: cache's dirty limit the disk (200 to 400 MB/s here: 22 ms a clip) is the
#: limit, not the encoding: the smallest store at little CPU wins.
CODEC: dict[str, Any] = {"cname": "lz4", "clevel": 9, "shuffle": "bitshuffle"}


def _codec():
    from zarr.codecs import BloscCodec

    return BloscCodec(**CODEC)


def create_store(path, index, params: Params, attrs: dict):
    """Create ``audio.zarr`` (replacing any store at ``path``) and return its group."""
    import zarr

    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    # The store appears under its final name only once its metadata is complete.
    with atomic_path(path, directory=True) as tmp:
        build_store(tmp, index, params, attrs)
    return zarr.open_group(str(path), mode="r+")


def build_store(tmp, index, params: Params, attrs: dict) -> None:
    """Lay out a new store in the empty temporary folder ``tmp`` (:func:`create_store` puts it in place)."""
    import zarr

    slots, kind = index.slot_shape, index.layout
    flat: ChunkKeyEncodingParams = {"name": "default", "separator": "."}
    root = zarr.open_group(str(tmp), mode="w", zarr_format=3)

    def column(name, values, doc, chunks=None, fill=None):
        a = root.create_array(
            name,
            shape=values.shape,
            dtype=str if values.dtype == object else values.dtype,
            chunks=chunks or values.shape,
            fill_value=fill,
            dimension_names=layout.dims(name, kind),
            chunk_key_encoding=flat,
        )
        a[...] = values.astype(str) if values.dtype == object else values
        if doc:
            a.attrs["long_name"] = doc

    for name in params.datasets:
        shape = slots + params.clip_shape(name)
        root.create_array(
            name,
            shape=shape,
            chunks=(1,) * len(slots) + shape[len(slots) :],
            dtype="float32",
            fill_value=0.0,
            compressors=[_codec()],
            dimension_names=layout.dims(name, kind),
            chunk_key_encoding=flat,
        )
    for name, chunks in (("done", (1,) * len(slots)), ("valid", slots)):
        root.create_array(
            name,
            shape=slots,
            chunks=chunks,
            dtype="bool",
            fill_value=False,
            compressors=None,
            dimension_names=layout.dims(name, kind),
            chunk_key_encoding=flat,
        )
    column(layout.SOURCE, index.sources(), layout.SOURCE_DOC)
    column(layout.SAMPLES, slot_samples(index, params), layout.SAMPLES_DOC, fill=0)
    starts = index.starts if index.starts is not None else np.full(slots, params.offset)
    column(layout.START, np.asarray(starts, dtype=np.float64), layout.START_DOC, fill=0.0)
    extra = layout.clip_columns(index) if kind == "clips" else {}
    for name, (values, doc) in extra.items():
        column(name, values, doc)
    coords = layout.coordinates(attrs, [*params.datasets, "valid"])
    for name, (dims, values, more) in coords.items():
        a = root.create_array(
            name,
            shape=values.shape,
            dtype=str if values.dtype == object else values.dtype,
            chunks=values.shape,
            dimension_names=dims,
            chunk_key_encoding=flat,
        )
        a[...] = values.astype(str) if values.dtype == object else values
        a.attrs.update(more)
    shown = [n for n in layout.CLIP_COORDS if n in extra]
    for name in (*params.datasets, "valid"):
        root[name].attrs["coordinates"] = layout.auxiliary(name, coords, kind, shown)
    root.attrs.update(attrs)
    (Path(tmp) / layout.INPUTS_NAME).write_text(json.dumps(index.stamps()))


def slot_samples(index, params: Params) -> np.ndarray:
    """Each slot's own samples as pre-flight found them (Nsamples for a clip it did not look at)."""
    if index.samples is not None:
        return np.asarray(index.samples, dtype=np.int64)
    out = np.zeros(index.slot_shape, dtype=np.int64)
    for ref in index.clips:
        out[index.slot(ref)] = params.nsamples
    return out


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


class ClipChunks:
    """Whole-clip chunks of one store, written and read as files, without zarr-python's per-call work.

    The datasets and ``done`` are chunked one chunk per clip (``(1, 1, ...)``),
    so a clip's chunk is one file, ``<array>/c.<g>.<c>.0.0.0`` (flat keys),
    holding the array's bytes (little-endian) through Blosc for the datasets
    and raw for ``done``.  Encoding and writing that file directly takes 4 ms
    a clip where zarr-python's indexing takes 16 ms (its asyncio machinery and
    thread hand-offs); the files are the same standard Zarr that any reader
    opens.

    The direct path is used only when the store's metadata is exactly the
    layout :func:`create_store` writes; anything else goes through zarr-python.
    """

    def __init__(self, path):
        self.path = Path(path)
        root = open_store(path, mode="r+")
        self.arrays = {name: root[name] for name in (*DATASETS, "done") if name in root}
        self.k = root["done"].ndim if "done" in root else 2  # slot dimensions: 2 in the grid, 1 in the clip layout
        self.direct = all(self._is_ours(a) for a in self.arrays.values())

    def _is_ours(self, a) -> bool:
        md = a.metadata.to_dict()
        codecs = [c["name"] for c in md.get("codecs", ())]
        expected = ["bytes", "blosc"] if a.dtype == np.float32 else ["bytes"]
        return (
            md.get("zarr_format") == 3
            and tuple(a.chunks) == (1,) * self.k + tuple(a.shape[self.k :])
            and md["chunk_key_encoding"] == {"name": "default", "configuration": {"separator": "."}}
            and codecs == expected
            and all(c.get("configuration", {}).get("endian", "little") == "little" for c in md["codecs"])
        )

    def _file(self, name: str, g: int, c: int) -> Path:
        at = layout.slot(self.k, g, c)
        return self.path / name / ".".join(["c", *map(str, at), *["0"] * (self.arrays[name].ndim - self.k)])

    def write(self, name: str, g: int, c: int, value) -> None:
        """Write the clip ``(g, c)`` of array ``name`` (its whole chunk)."""
        if not self.direct:
            self.arrays[name][layout.slot(self.k, g, c)] = value
            return
        from numcodecs import blosc

        a = np.require(np.asarray(value, dtype=self.arrays[name].dtype), requirements="C")
        if a.shape != self.arrays[name].shape[self.k :]:
            raise ValueError(f"{name}[{g}, {c}] must have shape {self.arrays[name].shape[self.k :]}, not {a.shape}")
        data = (
            blosc.compress(a, CODEC["cname"].encode(), CODEC["clevel"], blosc.BITSHUFFLE, typesize=4)
            if a.dtype == np.float32
            else a.tobytes()
        )
        write_bytes(self._file(name, g, c), data)  # never through a link planted in its place

    def read(self, name: str, g: int, c: int) -> np.ndarray:
        """The clip ``(g, c)`` of array ``name`` (the fill value where nothing was written)."""
        arr = self.arrays[name]
        if not self.direct:
            return np.asarray(arr[layout.slot(self.k, g, c)])
        from numcodecs import blosc

        try:
            data = self._file(name, g, c).read_bytes()
        except FileNotFoundError:
            return np.zeros(arr.shape[self.k :], dtype=arr.dtype)
        raw = blosc.decompress(data) if arr.dtype == np.float32 else data
        return np.frombuffer(raw, dtype=arr.dtype).reshape(arr.shape[self.k :])


@functools.lru_cache(maxsize=4)
def clip_chunks(path: str, token: str) -> ClipChunks:
    """The :class:`ClipChunks` of a store, opened once per process (opening reads its metadata).

    ``token`` (:func:`layout.store_token`) names the store's creation, so a
    store made again under the same path is opened afresh.
    """
    return ClipChunks(path)


@dataclass(frozen=True)
class ZarrClips:
    """The store's :class:`~pipeline.output.store.ResumeStore`: what a task writes a clip into (small and
    picklable: it travels with the tasks).  ``token`` (:func:`layout.store_token`) names the store's creation.

    A clip's ``done`` chunk is written last (:meth:`mark_done`), after its
    chunks here and its places in every other store.
    """

    path: str
    token: str = ""

    def _chunks(self) -> ClipChunks:
        return clip_chunks(str(self.path), self.token)

    def write_clip(self, g: int, c: int, arrays: dict) -> None:
        with storage_errors(self.path):
            store = self._chunks()
            for name, a in arrays.items():
                store.write(name, g, c, a)

    def mark_done(self, g: int, c: int) -> None:
        with storage_errors(self.path):
            self._chunks().write("done", g, c, np.True_)

    def read_clip(self, g: int, c: int, names) -> dict:
        store = self._chunks()
        return {name: store.read(name, g, c) for name in names}

    def zero_clip(self, g: int, c: int) -> None:
        """Nothing: a clip's chunks are cleared by :func:`mark_bad`, on the driver."""


def write_clip(path, g: int, c: int, arrays: dict, token: str = "", slots=None) -> int:
    """Write one clip's arrays into their chunks (and ``slots``, the HDF5 file's), then mark the clip done;
    return the bytes of array data written (a :class:`~pipeline.output.store.ClipWriter` of the store)."""
    from .store import ClipWriter

    ClipWriter(ZarrClips(str(path), token), (slots,) if slots is not None else ()).write(g, c, arrays)
    return sum(a.nbytes for a in arrays.values())


def read_clip(path, g: int, c: int, names, token: str = "") -> dict:
    """One finished clip's arrays, as :func:`write_clip` stored them (runs on a worker)."""
    return ZarrClips(str(path), token).read_clip(g, c, names)


def bad_entries(attrs: dict) -> list:
    """The ``bad_clips`` attribute as a list of dicts (:func:`layout.bad_entry`)."""
    return layout.bad_and_missing(attrs)[2]


def mark_bad(root, entries) -> None:
    """Zero clips' slots, record them as bad and why, and mark them done (driver only).

    ``entries``: dicts with ``genre``, ``clip`` (the slot), ``path`` and
    ``reason``, and ``missing: True`` for a slot no clip fills (``--pad``).
    They are recorded in the ``bad_clips`` attribute (JSON), one rewrite for
    all of them; ``valid`` follows from it (:func:`write_valid`).
    """
    entries = list(entries)
    if not entries:
        return
    k = root["done"].ndim
    for e in entries:
        at = layout.slot(k, e["genre"], e["clip"])
        for name in DATASETS:
            if name in root:
                root[name][at] = 0.0  # also clears chunks a killed attempt left
    slots = {(e["genre"], e["clip"]) for e in entries}
    bad = [b for b in bad_entries(root.attrs) if (b["genre"], b["clip"]) not in slots]
    bad.extend(entries)
    bad.sort(key=lambda b: (b["genre"], b["clip"]))
    root.attrs["bad_clips"] = json.dumps(bad, ensure_ascii=False)
    for e in entries:
        root["done"][layout.slot(k, e["genre"], e["clip"])] = True


def valid_mask(root, done=None) -> np.ndarray:
    """Clips finished and not bad [shape=(genres, clips)], from ``done`` (read now unless given) and
    ``bad_clips`` as they are now."""
    valid = done_mask(root) if done is None else done.copy()
    for b in bad_entries(attrs(root.store.root)):  # from disk: a group caches the attributes it opened with
        valid[layout.slot(valid.ndim, b["genre"], b["clip"])] = False
    return valid


def write_valid(root) -> np.ndarray:
    """Write ``valid`` (one chunk) from ``done`` and ``bad_clips``; return it (driver only)."""
    valid = valid_mask(root)
    root["valid"][...] = valid
    return valid


_WARNINGS = threading.Lock()


def consolidate_metadata(path) -> None:
    """Write the store's consolidated metadata (once, at the end of a run), so readers open it in one read.

    zarr-python warns, each time, that consolidated metadata is not yet part of the Zarr v3 specification;
    audioprep writes it knowingly (xarray and tensorstore read it, tested), so the warning is not the user's news.
    Two runs in one process (two notebook cells) take turns: ``catch_warnings`` is not thread-safe.
    """
    import warnings

    import zarr

    with _WARNINGS, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        zarr.consolidate_metadata(str(path))


def done_mask(root) -> np.ndarray:
    """``done`` as a bool array [shape=(genres, clips)].

    With the layout :func:`create_store` writes, from one listing of the
    ``done`` folder: a clip's chunk file exists only once it is done (workers
    write ``True``; Zarr stores no chunk equal to the fill value, ``False``).
    Reading the chunks through zarr-python instead costs the driver about a
    millisecond a clip, the largest per-clip cost it had.
    """
    arr = root["done"]
    md = arr.metadata.to_dict()
    folder = Path(str(root.store.root)) / "done"
    if (
        tuple(arr.chunks) != (1,) * arr.ndim
        or not folder.is_dir()
        or md.get("chunk_key_encoding") != {"name": "default", "configuration": {"separator": "."}}
    ):
        return np.asarray(arr[...], dtype=bool)
    mask = np.zeros(arr.shape, dtype=bool)
    with os.scandir(folder) as entries:
        for e in entries:
            parts = e.name.split(".")
            if len(parts) == 1 + arr.ndim and parts[0] == "c" and e.stat().st_size == 1:
                mask[tuple(int(p) for p in parts[1:])] = True
    return mask
