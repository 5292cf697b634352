"""Reading outputs: ``open_dataset`` (xarray, lazy), ``to_matrix`` (training matrix), ``FrameBlocks``;
``describe`` (:mod:`.info`).

Both ``audio.hdf5`` and ``audio.zarr`` are read the same way; nothing is
loaded until asked for.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..arrays import DATASETS
from ..exceptions import PipelineError, StoreError
from ..inputs import label
from . import hdf5, layout, zarr_store


def output_in(path) -> Path:
    """``path``, or the output an output folder holds: its ``audio.hdf5``, else its ``audio.zarr`` (a folder
    that is itself a Zarr store is taken as it is)."""
    path = Path(path)
    if path.is_dir() and not (path / "zarr.json").exists():
        for name in (layout.HDF5_NAME, layout.ZARR_NAME):
            if (path / name).exists():
                return path / name
    return path


class OutputReader:
    """Read access to the arrays and attributes of an ``audio.hdf5`` or ``audio.zarr``, the same way.

    Use it as a context manager, or call :meth:`close`: it holds the HDF5 file open.

    >>> with OutputReader("data/audio.hdf5") as r:
    ...     first = r.array("Xs")[0, 0]
    """

    def __init__(self, path):
        self.path = output_in(path)
        if not self.path.exists():
            raise StoreError(f"{self.path}: no such file or folder; give an audio.hdf5 or audio.zarr")
        self.kind = "zarr" if self.path.is_dir() else "hdf5"
        if self.kind == "zarr":
            self._root = zarr_store.open_store(self.path)
            self.attrs = dict(self._root.attrs)
        else:
            import h5py

            try:
                self._root = h5py.File(self.path, "r")
            except OSError as e:
                raise StoreError(f"{self.path}: not a readable HDF5 file ({e})") from None
            self.attrs = {k: hdf5.decode_attr(k, v) for k, v in self._root.attrs.items()}
        self.names = [n for n in (*DATASETS, "valid") if n in self._root]
        self.layout = layout.kind(self.attrs)  # "grid", or "clips": one row a clip
        self.k = len(layout.SLOT_DIMS[self.layout])  # the slot dimensions: (genre, clip), or (clip,)
        if "labels" not in self.attrs or not any(n in self.names for n in DATASETS):
            self.close()
            raise StoreError(
                f"{self.path}: not an audioprep output (no labels or no Xa/Xs/Xn); "
                "for a gtzan.hdf5 use 'audioprep info'"
            )
        if self.kind == "zarr" and "done" in self._root:
            self._warn_unfinished()

    def _warn_unfinished(self) -> None:
        """Warn when a store's clips are not all done (a run interrupted, or writing into it now): its readers
        then see the unfinished clips as invalid, and a run for an input that grew may be laying it out anew."""
        import warnings

        done = zarr_store.done_mask(self._root)
        if not done.all():
            warnings.warn(
                f"{self.path} is not finished: {int(done.sum())} of {done.size} clips are done (a run was "
                "interrupted, or is writing into it); the others read as invalid. Run the same command again "
                "to finish it, then read it",
                UserWarning,
                stacklevel=3,
            )

    def array(self, name):
        """The stored array ``name`` (h5py or zarr; indexing reads only what it selects)."""
        if name not in self.names and not (self.kind == "zarr" and name == "done"):
            raise PipelineError(f"{self.path} holds no dataset {name!r}; it holds {', '.join(self.names)}")
        return self._root[name]

    def sources(self) -> np.ndarray:
        """Each slot's file relative to the input (``source``) as str [shape=(genres, clips), or (clips,)]."""
        if layout.SOURCE not in self._root:
            return np.full(self.array(self.names[0]).shape[: self.k], "", dtype=object)
        return self.text(layout.SOURCE)

    def text(self, name: str) -> np.ndarray:
        """A stored array of strings (``source``, ``split``, ``tag``) as str."""
        a = self._root[name]
        values = a.asstr()[...] if self.kind == "hdf5" else a[...]
        return np.asarray(values, dtype=object)

    def clip_labels(self) -> np.ndarray:
        """Each slot's label index [shape=(genres, clips), or (clips,)]: the genre in the grid, ``label`` (-1 for
        none) in the clip layout."""
        if self.layout == "clips":
            return np.asarray(self._root[layout.LABEL][...], dtype=np.int64)
        G, C = self.array(self.names[0]).shape[:2]
        return np.repeat(np.arange(G, dtype=np.int64)[:, None], C, axis=1)

    def samples(self) -> np.ndarray:
        """Each slot's own samples (``samples``; the rest is zero padding) [shape=(genres, clips)]."""
        if layout.SAMPLES not in self._root:  # an output of before --pad-short: every clip filled its slot
            return np.full(self.array(self.names[0]).shape[: self.k], int(self.attrs["Nsamples"]), dtype=np.int64)
        return np.asarray(self._root[layout.SAMPLES][...], dtype=np.int64)

    def dask_array(self, name):
        import dask.array as da

        a = self.array(name)
        chunks = a.chunks if a.chunks else a.shape
        return da.from_array(
            a, chunks=chunks, name=f"{name}-{self.path.name}-{abs(hash(str(self.path)))}", lock=self.kind == "hdf5"
        )

    def close(self) -> None:
        if self.kind == "hdf5":
            self._root.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_dataset(path):
    """Open ``audio.hdf5`` or ``audio.zarr`` as an :class:`xarray.Dataset`, lazily (dask-backed).

    Dimensions ``genre, clip, frame, overlap`` and ``sample`` (``Xa``) or
    ``bin`` (``Xs``, ``Xn``). Coordinates: ``genre`` (labels), ``clip``,
    ``frame``, ``time`` (frame start in seconds, per frame and overlap),
    ``overlap`` (0 aligned, 1 shifted by ``na // 2``), ``frequency`` (bin centres
    in Hz) and ``note`` (bin note names), ``sample``, ``source`` (each
    slot's file relative to the input, ``""`` for a missing slot) and
    ``samples`` (a slot's own samples; the rest is ``--pad-short``'s zeros), ``start`` (seconds into the
    file where they begin).  ``valid`` flags the clips.  ``time``: an ``Xa`` frame's start, an ``Xs``/``Xn``
    frame's centre (the CQT is centred).

    Examples
    --------
    >>> ds = open_dataset("data/audio.hdf5")
    >>> ds.Xs.sel(genre="jazz").isel(clip=0, overlap=0).mean("frame").compute()
    """
    try:
        import xarray as xr
    except ImportError:
        raise PipelineError("open_dataset needs xarray; install it with: pip install xarray") from None
    src = OutputReader(path)  # stays open while the dataset lives: ds.close() closes it
    a, kind = src.attrs, src.layout
    data = {name: (layout.dims(name, kind), src.dask_array(name)) for name in src.names}
    coords = {k: xr.Variable(d, v, attrs=at) for k, (d, v, at) in layout.coordinates(a, src.names).items()}
    coords[layout.SOURCE] = xr.Variable(layout.dims(layout.SOURCE, kind), src.sources())
    coords[layout.SAMPLES] = xr.Variable(
        layout.dims(layout.SAMPLES, kind), src.samples(), attrs={"long_name": layout.SAMPLES_DOC}
    )
    if layout.START in src._root:  # outputs of before --offset have none
        coords[layout.START] = xr.Variable(layout.dims(layout.START, kind), src._root[layout.START][...])
    for name, doc in ((layout.LABEL, layout.LABEL_DOC), (layout.SPLIT, layout.SPLIT_DOC), (layout.TAG, "")):
        if kind == "clips" and name in src._root:  # the clip layout's per-clip label, split, tag names
            values = src.clip_labels() if name == layout.LABEL else src.text(name)
            coords[name] = xr.Variable(layout.dims(name, kind), values, attrs={"long_name": doc} if doc else {})
    if kind == "clips" and layout.TAGS in src._root:
        data[layout.TAGS] = (layout.dims(layout.TAGS, kind), np.asarray(src._root[layout.TAGS][...], dtype=bool))
    # The grid's labels are its genre coordinate; the clip layout's stay an attribute, naming each label index.
    ds = xr.Dataset(data, coords=coords, attrs={k: v for k, v in a.items() if k != "labels" or kind == "clips"})
    ds.set_close(src.close)
    return ds


class FrameBlocks:
    """``(block, genre)`` training pairs of one array, read block by block, never the whole file.

    In the clip layout item ``i`` is ``(X[row, f:f + frames], label)``; clips without a label (-1) give none.

    Item ``i`` is ``(X[g, c, f:f + frames], g)``: a float32 block of shape
    ``(frames, 2, n)`` of a valid clip and the index of its genre (``labels[g]``
    names it).  Blocks do not overlap; a clip's last frames that do not fill
    a block are left out, and so are the frames of the zero padding of a clip
    shorter than ``Nsamples`` (``--pad-short``: its ``samples``), unless
    ``padding=True``: a model never learns that silence means a genre of
    short clips.  It has a length and an index, so a
    ``torch.utils.data.DataLoader`` wraps it as it is (with ``shuffle=True``,
    ``num_workers=...``), and it iterates in file order; torch is not needed.

    >>> blocks = FrameBlocks("data/audio.hdf5", "Xn", frames=64)
    >>> loader = torch.utils.data.DataLoader(blocks, batch_size=32, shuffle=True)  # doctest: +SKIP
    """

    _reader: OutputReader | None
    _fd: int | None
    _pid: int | None

    def __init__(self, path, name: str = "Xn", *, frames: int = 64, padding: bool = False):
        self.path, self.name, self.frames = Path(path), name, int(frames)
        with OutputReader(path) as r:
            array = r.array(name)
            shape = array.shape
            valid, own = _valid_and_own_frames(r, shape)
            self.labels = list(r.attrs["labels"])
            self.k, names = r.k, r.clip_labels()
            self._offset = _contiguous_offset(array) if r.kind == "hdf5" else None
        nframes = shape[self.k]
        if not 0 < self.frames <= nframes:
            raise PipelineError(f"frames={frames} must be between 1 and the {nframes} frames of a clip")
        self.shape = tuple(int(n) for n in shape)
        last = np.full(shape[: self.k], nframes) if padding else own  # blocks end at or before this frame
        valid = valid & (names >= 0)  # (the clip layout's clips without a label give no pairs)
        # (g, c, f) in the grid; (label, row, f) in the clip layout
        self.index = [
            (int(names[at]), int(at[-1]), f)
            for at in zip(*np.nonzero(valid))
            for f in range(0, int(last[at]) - self.frames + 1, self.frames)
        ]
        self._reader, self._fd, self._pid = None, None, None

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int):
        g, c, f = self.index[i]
        at = (g, c) if self.k == 2 else (c,)
        if self._pid != os.getpid():  # one open file per process (DataLoader workers)
            self._open()
        if self._fd is not None:
            # A contiguous float32 array: the block is one byte range, read straight into the array handed out
            # (one pread, no HDF5 selection machinery: twice plain h5py's rate, benchmarks/RESULTS.md).
            block = np.empty((self.frames, *self.shape[-2:]), dtype=np.float32)
            row = self.shape[-2] * self.shape[-1] * 4
            flat = int(np.ravel_multi_index(at, self.shape[: self.k]))
            start = self._offset + (flat * self.shape[self.k] + f) * row
            if os.preadv(self._fd, [block.data], start) != block.nbytes:
                raise StoreError(f"{self.path} is shorter than its {self.name} array; was it truncated?")
            return block, g
        assert self._reader is not None  # opened above for this process, as no file descriptor was
        where = (*at, slice(f, f + self.frames))
        return np.asarray(self._reader.array(self.name)[where], dtype=np.float32), g

    def _open(self) -> None:
        self._reader = self._fd = None
        if self._offset is not None:
            self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        else:
            self._reader = OutputReader(self.path)
        self._pid = os.getpid()

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __getstate__(self):
        return {**self.__dict__, "_reader": None, "_fd": None, "_pid": None}

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = self._pid = None


def _contiguous_offset(dataset) -> int | None:
    """The file offset of an h5py dataset stored as one contiguous little-endian float32 block, else None."""
    import h5py

    try:
        contiguous = dataset.id.get_create_plist().get_layout() == h5py.h5d.CONTIGUOUS
        offset = dataset.id.get_offset()
    except Exception:
        return None
    if not contiguous or offset is None or dataset.dtype != np.dtype("<f4") or dataset.compression:
        return None
    return int(offset)


def _select(n_or_sel, size, names=None, what="genres"):
    """An index selection from a count, a sequence of indices or (genres) names."""
    if n_or_sel is None:
        return slice(0, size)
    if isinstance(n_or_sel, (int, np.integer)):
        if not 0 < n_or_sel <= size:
            raise PipelineError(f"{what}={n_or_sel} must be between 1 and {size}")
        return slice(0, int(n_or_sel))
    out = []
    keys = [label(n) for n in names or []]  # 'café' typed finds a genre of any Unicode form
    for v in n_or_sel:
        if isinstance(v, str):
            if label(v) not in keys:
                raise PipelineError(f"{what}: unknown name {v!r}; known: {', '.join(names or [])}")
            out.append(keys.index(label(v)))
        else:
            if not 0 <= int(v) < size:
                raise PipelineError(f"{what}: index {v} out of range 0..{size - 1}")
            out.append(int(v))
    return sorted(set(out))


def own_frames(samples, *, na: int, nframes: int) -> np.ndarray:
    """Frames of both streams that lie wholly inside a clip's own ``samples`` (the rest is zero padding).

    Frame ``f`` of the overlapped stream ends at sample ``(f + 1) * na + na // 2``; a full-length clip
    (``Nsamples``) keeps all ``nframes``.
    """
    s = np.asarray(samples, dtype=np.int64)
    return np.clip((s - na // 2) // na, 0, nframes)


def _valid_and_own_frames(reader, shape) -> tuple:
    """``valid`` [shape=(G, C), or (clips,)] and each slot's own frames (:func:`own_frames` of
    :meth:`OutputReader.samples`, full length for outputs made before ``samples`` existed)."""
    slots, F = shape[: reader.k], shape[reader.k]
    valid = np.asarray(reader.array("valid")[...], dtype=bool) if "valid" in reader.names else np.ones(slots, bool)
    return valid, own_frames(reader.samples(), na=int(reader.attrs["na"]), nframes=F)


def to_matrix(
    path,
    name: str = "Xs",
    genres=None,
    clips=None,
    frames=None,
    *,
    padding: bool = False,
    invalid: bool = False,
    labels: bool = False,
    split: str | None = None,
):
    """The ``(N, n)`` float32 training matrix of ``X[:G, :C, :F, ...]``, rows in C order.

    Parameters
    ----------
    path : str or Path
        ``audio.hdf5`` or ``audio.zarr``.
    name : {"Xa", "Xs", "Xn"}
    genres, clips, frames : int, sequence or None
        A count (the first G genres, C clips, F frames), a list of indices
        (genres also by name) or None for all.
    padding : bool
        Keep the frames of a short clip's zero padding (``--pad-short``); by
        default only the frames inside its own ``samples`` are rows.
    invalid : bool
        Keep the slots flagged invalid (bad clips, ``--pad``'s missing
        slots: zeros); by default they give no rows.
    labels : bool
        Also return each row's genre index.
    split : str or None
        Only the clips of this split (``"training"``): outputs holding a ``split`` array (the clip layout of
        an input with splits, FMA).

    In the clip layout (``layout="clips"``) the rows are ``X[clips, :F, ...]``
    in row order: ``clips`` selects rows, ``genres`` the rows whose ``label``
    is one of them (by index or name), and ``y`` is each row's ``label``
    (-1 for a clip without one).

    Returns
    -------
    X : np.ndarray [shape=(N, n)], float32
        ``N = G * C * F * 2`` when every selected slot is valid and full
        length.  Only the selected part of the file is read.
    y : np.ndarray [shape=(N,)], int64
        With ``labels``: the genre index of each row (``attrs["labels"][y]`` names it).
    """
    with OutputReader(path) as src:
        if src.layout == "clips" or split is not None:
            return _clip_matrix(src, name, genres, clips, frames, padding, invalid, labels, split)
        arr = src.array(name)
        G, C, F = arr.shape[:3]
        sel = (
            _select(genres, G, list(src.attrs["labels"]), "genres"),
            _select(clips, C, None, "clips"),
            _select(frames, F, None, "frames"),
        )
        if all(isinstance(s, slice) for s in sel):
            x = arr[sel[0], sel[1], sel[2]]
        else:
            # read clip by clip so only the selected chunks are touched
            gi = range(G)[sel[0]] if isinstance(sel[0], slice) else sel[0]
            ci = range(C)[sel[1]] if isinstance(sel[1], slice) else sel[1]
            x = np.stack([np.stack([np.asarray(arr[g, c])[sel[2]] for c in ci]) for g in gi])
        x = np.asarray(x, dtype=np.float32)
        valid, own = _valid_and_own_frames(src, arr.shape)
    gi = np.arange(G)[sel[0]]
    ci = np.arange(C)[sel[1]]
    fi = np.arange(F)[sel[2]]
    keep = np.ones(x.shape[:3], dtype=bool)  # (genre, clip, frame) of the selection
    if not invalid:
        keep &= valid[np.ix_(gi, ci)][:, :, None]
    if not padding:
        keep &= fi[None, None, :] < own[np.ix_(gi, ci)][:, :, None]
    rows = x[keep].reshape(-1, x.shape[-1])  # (kept frames * 2, n): genre, clip, frame, overlap in C order
    if not labels:
        return rows
    y = np.repeat(np.broadcast_to(gi[:, None, None], keep.shape)[keep], x.shape[3])
    return rows, y.astype(np.int64)


def _clip_matrix(src, name, genres, clips, frames, padding, invalid, labels, split):
    """:func:`to_matrix` of an output in the clip layout (one row a clip)."""
    if src.layout != "clips" or (split is not None and layout.SPLIT not in src._root):
        raise PipelineError(
            f"split={split!r}: {src.path} holds no split array; splits are stored in the clip layout "
            "(--layout clips) of an input that has them (FMA)"
        )
    arr = src.array(name)
    N, F = arr.shape[:2]
    names, lab = list(src.attrs["labels"]), src.clip_labels()
    rows = np.arange(N)[_select(clips, N, None, "clips")]
    if genres is not None:
        rows = rows[np.isin(lab[rows], np.arange(len(names))[_select(genres, len(names), names, "genres")])]
    if split is not None:
        rows = rows[src.text(layout.SPLIT)[rows] == split]
    fi = np.arange(F)[_select(frames, F, None, "frames")]
    fs = _select(frames, F, None, "frames")
    x = np.zeros((0, len(fi), *arr.shape[2:]), dtype=np.float32)
    if len(rows) and np.array_equal(rows, np.arange(rows[0], rows[0] + len(rows))):
        x = np.asarray(arr[int(rows[0]) : int(rows[0]) + len(rows)], dtype=np.float32)[:, fs]
    elif len(rows):  # clip by clip, so only the selected chunks are touched
        x = np.stack([np.asarray(arr[int(r)], dtype=np.float32)[fs] for r in rows])
    valid, own = _valid_and_own_frames(src, arr.shape)
    keep = np.ones(x.shape[:2], dtype=bool)  # (row, frame) of the selection
    if not invalid:
        keep &= valid[rows][:, None]
    if not padding:
        keep &= fi[None, :] < own[rows][:, None]
    out = x[keep].reshape(-1, x.shape[-1])
    if not labels:
        return out
    return out, np.repeat(np.broadcast_to(lab[rows][:, None], keep.shape)[keep], x.shape[2]).astype(np.int64)


from .info import describe, slot_ranges  # noqa: E402,F401  (``audioprep info``: its own module)
