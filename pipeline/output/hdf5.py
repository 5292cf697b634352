"""``audio.hdf5``: laid out up front, filled by the workers, finished by the driver.

The driver creates the file under a temporary name before any clip is
computed (:func:`create`): one **contiguous** dataset per array, allocated at
once and never filled, so each clip's bytes have a fixed place,
``offset + (g * Nclips + c) * clip_bytes``.  Each worker writes the clips it
computes (or, for clips an earlier run finished, copies them from the Zarr
store) straight into their places with ``os.pwrite`` (:class:`Slots`): no
process but the workers touches array bytes, so consolidation grows with the
cluster.  At the end the driver adds ``valid``, ``source``, the coordinates and
the attributes, fsyncs and renames the file into place (:func:`finish`): a
reader never sees a half-written ``audio.hdf5``.  Slots never written (bad
clips, missing slots) read as zeros.

Workers on several nodes write disjoint byte ranges of the one file, which
Lustre, GPFS and local disks allow; see docs/output.md for NFS.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..arrays import DATASETS
from ..exceptions import StorageError, StoreError
from . import layout, zarr_store
from .files import commit, discard, is_storage_error, new_partial, open_to_write, storage_errors


def write_attr(attrs, key, value) -> None:
    """Write one attribute as ``audio.hdf5`` stores it.

    ``labels`` is a fixed-length byte string per genre (``S<longest>``, the
    type docs/output.md documents) holding UTF-8, and typed as UTF-8 in the file, so HDF5 tools
    show ``musique électronique`` as it is: ``[s.decode() for s in
    f.attrs["labels"]]`` reads it with plain h5py.  Other strings are
    variable-length UTF-8; numbers and booleans are stored as they are.
    """
    import h5py

    if key == "labels":
        data = [s.encode("utf-8") for s in value]
        width = max([len(b) for b in data] + [1])
        attrs.create(key, np.array(data, dtype=f"S{width}"), dtype=h5py.string_dtype("utf-8", width))
    else:
        attrs[key] = value


def decode_attr(key, value):
    """An attribute as :func:`write_attr` stored it, in plain Python types."""
    if key == "labels":
        return [s.decode("utf-8") if isinstance(s, bytes) else str(s) for s in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode()
    return value


def write_coordinates(f, coords: dict) -> dict:
    """The coordinates (:func:`layout.coordinates`) as datasets, the dimension ones as scales.

    With them netCDF readers (xarray's h5netcdf engine, ncdump) and HDF5 tools
    see named dimensions (``genre``, ``clip``, ``frame``, ``overlap``,
    ``sample``/``bin``) with their labels instead of anonymous ``phony_dim_*``.
    Returns the dimension scales by name.
    """
    import h5py

    scales = {}
    for name, (dims, values, extra) in coords.items():
        if values.dtype == object:
            d = f.create_dataset(name, data=values.astype(str).tolist(), dtype=h5py.string_dtype("utf-8"))
        else:
            d = f.create_dataset(name, data=values)
        d.attrs.update(extra)
        if dims == (name,):
            d.make_scale(name)
            scales[name] = d
    for name, (dims, _, _) in coords.items():
        if dims != (name,):
            for i, dim in enumerate(dims):
                f[name].dims[i].attach_scale(scales[dim])
    return scales


def label(dset, name: str, scales: dict, coords: dict, kind: str = "grid", extra=()) -> None:
    """Attach the dimension scales of array ``name``, and name its other coordinates (the CF convention)."""
    for i, dim in enumerate(layout.dims(name, kind)):
        dset.dims[i].attach_scale(scales[dim])
    dset.attrs["coordinates"] = layout.auxiliary(name, coords, kind, extra)


def read_attrs(path) -> dict:
    """The attributes of an ``audio.hdf5``, in plain Python types."""
    import h5py

    with h5py.File(path, "r") as f:
        return {k: decode_attr(k, v) for k, v in f.attrs.items()}


@dataclass(frozen=True)
class Slots:
    """Where each clip's bytes go in a temporary ``audio.hdf5`` (small and picklable: it travels with the tasks);
    a :class:`~pipeline.output.store.ClipStore`.

    ``offsets`` and ``clip_shapes`` map each array to its contiguous dataset's
    byte offset in the file and to the shape of one clip (frames, 2, n); ``k``
    is the number of slot dimensions (2: genre, clip; 1: the clip layout's row,
    where ``c`` is the row and ``g`` is not used).
    """

    path: str
    nclips: int
    offsets: dict
    clip_shapes: dict
    k: int = 2

    def position(self, name: str, g: int, c: int) -> int:
        """The byte offset of clip ``(g, c)`` of array ``name``."""
        row = g * self.nclips + c if self.k == 2 else c
        return self.offsets[name] + row * 4 * int(np.prod(self.clip_shapes[name]))

    def write(self, g: int, c: int, arrays: dict) -> None:
        """Write clip ``(g, c)`` of each array in ``arrays`` into its place (float32, little-endian)."""
        try:
            fd = open_to_write(self.path, create=False)  # never created here, never through a link
        except FileNotFoundError:
            raise StoreError(f"{self.path}: the run's temporary audio.hdf5 is gone (the run ended)") from None
        try:
            for name in self.offsets:
                a = np.ascontiguousarray(arrays[name], dtype="<f4")
                if a.shape != tuple(self.clip_shapes[name]):
                    raise ValueError(f"{name}[{g}, {c}] must have shape {self.clip_shapes[name]}, not {a.shape}")
                _pwrite_all(fd, a.data.cast("B"), self.position(name, g, c))
        finally:
            os.close(fd)  # on NFS, close is what sends the bytes to the server

    def zero(self, g: int, c: int) -> None:
        """Zero clip ``(g, c)`` (a slot a failed attempt may have written)."""
        self.write(g, c, {n: np.zeros(s, dtype="<f4") for n, s in self.clip_shapes.items()})

    def write_clip(self, g: int, c: int, arrays: dict) -> None:
        with storage_errors(self.path):
            self.write(g, c, arrays)

    def zero_clip(self, g: int, c: int) -> None:
        with storage_errors(self.path):
            self.zero(g, c)

    def read_clip(self, g: int, c: int, names) -> dict:
        """Clip ``(g, c)`` of the arrays ``names`` as written (zeros where nothing was)."""
        out = {}
        with open(self.path, "rb") as f:
            for name in names:
                shape = tuple(self.clip_shapes[name])
                f.seek(self.position(name, g, c))
                out[name] = np.frombuffer(f.read(4 * int(np.prod(shape))), dtype="<f4").reshape(shape)
        return out


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    while len(data):
        n = os.pwrite(fd, data, offset)
        data, offset = data[n:], offset + n


def create(hdf5_path, shapes: dict, k: int = 2) -> Slots:
    """Create the temporary ``audio.hdf5`` beside ``hdf5_path`` with a contiguous dataset per array (driver).

    ``shapes`` maps array names to their shapes, ``k`` slot dimensions (5-D in the grid, 4-D in the clip
    layout) then one clip's.  The datasets are
    allocated at creation (``ALLOC_TIME_EARLY``) and never filled
    (``FILL_TIME_NEVER``): the file is sparse until the workers write, and a
    slot nobody writes reads as zeros.
    """
    import h5py

    tmp = new_partial(hdf5_path)
    offsets, clip_shapes, nclips = {}, {}, 0
    try:
        with h5py.File(tmp, "w") as f:
            for name, shape in shapes.items():
                dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
                dcpl.set_layout(h5py.h5d.CONTIGUOUS)
                dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
                dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
                dset = h5py.h5d.create(
                    f.id, name.encode(), h5py.h5t.IEEE_F32LE, h5py.h5s.create_simple(tuple(shape)), dcpl=dcpl
                )
                offsets[name] = int(dset.get_offset())
                clip_shapes[name] = tuple(int(n) for n in shape[k:])
                nclips = int(shape[k - 1])
    except BaseException:
        discard(tmp)
        raise
    return Slots(str(tmp), nclips, offsets, clip_shapes, k)


def finish(slots: Slots, zarr_path, hdf5_path) -> int:
    """Add ``valid``, ``source``, the coordinates and the attributes as the store holds them, fsync, and
    rename the file into place (driver); return its size in bytes.  Array bytes are not touched."""
    import h5py

    root = zarr_store.open_store(zarr_path)
    attrs = dict(root.attrs)
    kind = layout.kind(attrs)
    valid = np.asarray(root["valid"][...], dtype=bool)
    per_clip = [  # (name, values, doc): the slots' files, lengths and starts; the clip layout's label, split, tags
        (name, np.asarray(root[name][...]), root[name].attrs.get("long_name", ""))
        for name in (*layout.SLOT_COORDS, *layout.CLIP_COORDS)
        if name in root
    ]
    extra = [n for n in layout.CLIP_COORDS if n in root]
    try:
        with h5py.File(slots.path, "r+") as f:
            names = [n for n in slots.offsets]
            coords = layout.coordinates(attrs, [*names, "valid"])
            if layout.TAG in root:
                coords[layout.TAG] = ((layout.TAG,), np.asarray(root[layout.TAG][...]).astype(object), {})
            scales = write_coordinates(f, coords)
            coords.pop(layout.TAG, None)
            for name, data, doc in per_clip:
                text = data.dtype.kind in "UOT"
                d = f.create_dataset(
                    name,
                    data=data.astype(object) if text else data,
                    dtype=h5py.string_dtype("utf-8") if text else data.dtype,
                )
                d.attrs["long_name"] = doc
                for i, dim in enumerate(layout.dims(name, kind)):
                    d.dims[i].attach_scale(scales[dim])
            for n in names:
                label(f[n], n, scales, coords, kind, extra)
            label(f.create_dataset("valid", data=valid), "valid", scales, coords, kind, extra)
            for k, v in attrs.items():
                write_attr(f.attrs, k, v)
            f.flush()
            os.fsync(f.id.get_vfd_handle())
        commit(slots.path, hdf5_path)
    except OSError as e:
        discard(slots.path)
        if is_storage_error(e) or _storage(e):
            raise StorageError(describe_error(e), str(hdf5_path)) from None
        raise
    return Path(hdf5_path).stat().st_size


class HDF5Output:
    """``audio.hdf5`` as the run's :class:`~pipeline.output.store.FinalOutput`: laid out before the first
    clip (:func:`create`), filled by the workers, finished from the Zarr store (:func:`finish`)."""

    name = "hdf5"

    def __init__(self, folder):
        self.path = Path(folder) / layout.HDF5_NAME
        self.notes: list = []

    def complete(self) -> bool:
        return self.path.exists()  # only ever renamed into place complete

    def lay_out(self, shapes: dict, k: int = 2) -> Slots:
        return create(self.path, shapes, k)

    def finish(self, store: Slots, resume_path) -> int:
        return finish(store, resume_path, self.path)

    def discard(self, store: Slots) -> None:
        discard(store.path)

    def read_attrs(self) -> dict:
        return read_attrs(self.path)

    def hint(self, resume_path) -> str:
        return (
            f"{resume_path} is needed only to resume this run or, when files are added to the input, to keep "
            f"the finished clips: deleting it costs nothing otherwise (the same command still finds "
            f"{self.path.name} up to date)"
        )


def _storage(error) -> bool:
    """Whether an HDF5 error is the storage's doing (h5py wraps the system's words in its own text)."""
    from .files import STORAGE_ERRNOS

    return any(os.strerror(code) in str(error) for code in STORAGE_ERRNOS)


def describe_error(e: BaseException) -> str:
    """The reason of a failed write in a few words (HDF5 wraps the OS's in a long text)."""
    found = re.search(r"error message = '([^']+)'", str(e))
    if found:
        return found.group(1)
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def consolidate(zarr_path, hdf5_path) -> int:
    """Write ``audio.hdf5`` from a finished Zarr store in this process; return its size in bytes.

    A run spreads the same work over its workers; this is for a store on its own.
    """
    root = zarr_store.open_store(zarr_path)
    names = [n for n in DATASETS if n in root]
    k = root["done"].ndim
    slots = create(hdf5_path, {n: root[n].shape for n in names}, k)
    try:
        token = layout.store_token(dict(root.attrs))
        for at in zip(*np.nonzero(zarr_store.valid_mask(root))):
            g, c = (0, *at) if k == 1 else at
            slots.write(int(g), int(c), zarr_store.read_clip(zarr_path, int(g), int(c), names, token))
    except BaseException:
        discard(slots.path)
        raise
    return finish(slots, zarr_path, hdf5_path)
