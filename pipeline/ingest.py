"""``audioprep ingest``: a genres folder -> ``gtzan.hdf5`` (the original conversion's layout)."""

from __future__ import annotations

from pathlib import Path

from .inputs import gtzan, load_clip, open_index, preflight
from .exceptions import BadInputError, StoreError
from .output.files import commit, discard, new_partial
from .params import Params


def ingest(genres_dir, out_path, params: Params | None = None, *, overwrite: bool = False,
           progress: bool = False) -> Path:
    """Write one float32 dataset per genre, shape ``(Nsamples, Nclips)``, one column a clip.

    Attributes ``Ngenres``, ``Nclips``, ``sr``, ``Nsamples``.  Each dataset is
    chunked one column a chunk, so reading one clip reads one chunk.  The file
    is written under a temporary name and renamed when complete.
    """
    import h5py
    from .progress import bar

    params = params or Params()
    out = Path(out_path)
    if out.exists() and not overwrite:
        raise StoreError(f"{out} exists; use --overwrite to replace it")
    index = open_index(genres_dir)
    if index.kind == gtzan.NAME:
        raise BadInputError([], f"{genres_dir} is already a gtzan.hdf5; ingest reads ROOT/<genre>/<file> or a "
                                "manifest .csv")
    problems = preflight(index, params, progress=progress)
    if problems:
        raise BadInputError(problems, f"{len(problems)} problem(s); fix or remove the bad clips before ingesting")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = new_partial(out)
    n, C = params.nsamples, index.nclips
    try:
        with h5py.File(tmp, "w") as f:
            dsets = gtzan.create(f, index.labels, n, C, params.sr)
            for ref in bar(index.clips, desc="ingesting", enabled=progress):
                dsets[ref.genre][:, ref.c] = load_clip(ref, params)
        commit(tmp, out)
    except BaseException:
        discard(tmp)
        raise
    return out
