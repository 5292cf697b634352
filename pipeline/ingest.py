"""``audioprep ingest``: a genres folder -> ``gtzan.hdf5`` (the original conversion's layout)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .exceptions import BadInputError, Problem, StoreError
from .inputs import gtzan, load_clip, open_index, preflight
from .inputs.report import refuse
from .output.files import commit, discard, new_partial
from .params import Params


def ingest(
    genres_dir,
    out_path,
    params: Params | None = None,
    *,
    overwrite: bool = False,
    skip_bad: bool = False,
    progress: bool = False,
    echo=None,
) -> Path:
    """Write one float32 dataset per genre, shape ``(Nsamples, Nclips)``, one column a clip.

    Attributes ``Ngenres``, ``Nclips``, ``sr``, ``Nsamples``.  Each dataset is
    chunked one column a chunk, so reading one clip reads one chunk.  The file
    is written under a temporary name and renamed when complete.

    The same checks as a run: ``params.pad_short`` zero-pads short clips,
    ``skip_bad`` leaves bad clips as zero columns; both are recorded per clip
    (:data:`gtzan.CLIPS`), so a run on the file knows each clip's own length and
    reports the bad ones again.  ``echo`` gets one line per bad clip left out.
    """
    import h5py

    from .progress import bar

    params = params or Params()
    echo = echo or (lambda line: None)
    out = Path(out_path)
    if out.exists() and not overwrite:
        raise StoreError(f"{out} exists; use --overwrite to replace it")
    index = open_index(genres_dir)
    if index.kind == gtzan.NAME:
        raise BadInputError(
            [], f"{genres_dir} is already a gtzan.hdf5; ingest reads ROOT/<genre>/<file> or a manifest .csv"
        )
    problems = preflight(index, params, progress=progress)
    refuse(
        problems,
        index,
        skip_bad=skip_bad,
        verb="ingest",
        where=False,
        written=out.name,
        skip="ingest with --skip-bad to leave them out (zero columns, recorded as bad)",
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = new_partial(out)
    n, C = params.nsamples, index.nclips
    bad = {p.path: p.reason for p in problems}
    samples = np.zeros((index.ngenres, C), dtype=np.int64)
    reasons = np.full((index.ngenres, C), "", dtype=object)
    try:
        with h5py.File(tmp, "w") as f:
            dsets = gtzan.create(f, index.labels, n, C, params.sr)
            for ref in bar(index.clips, desc="ingesting", enabled=progress):
                why = bad.get(ref.where)
                if why is None:
                    try:
                        dsets[ref.genre][:, ref.c] = load_clip(ref, params)
                        samples[ref.g, ref.c] = problems.samples[ref.g, ref.c]
                        continue
                    except BadInputError as e:
                        if not skip_bad:
                            raise
                        why = e.problems[0].reason if e.problems else str(e)
                reasons[ref.g, ref.c] = f"{ref.rel}: {why}"  # a run on the file names the clip it came from
                echo(f"  {Problem(ref.where, why)}")
            gtzan.write_records(f, samples, reasons)
        commit(tmp, out)
    except BaseException:
        discard(tmp)
        raise
    return out
