"""The task graph: one chain load -> frame -> cqt -> lcn -> write per clip.

Each stage wraps one pure kernel.  Items travel between stages as a dict of
arrays, and every key names its stage and its clip (``cqt-blues.00003``), so
the Dask dashboard groups tasks by stage.  :func:`build_graph` only builds
the graph; the caller hands it to a client.
"""

from __future__ import annotations

import re

from . import kernels
from .dataset import ClipRef, load_clip
from .params import Params
from .output.zarr_store import write_clip

STAGES = ("load", "frame", "cqt", "lcn", "write")


def load(ref: ClipRef, params: Params) -> dict:
    """Stage 1: decode the clip (float32, ``Nsamples`` samples)."""
    return {"y": load_clip(ref, params)}


def frame(item: dict, params: Params) -> dict:
    """Stage 2: add ``Xa`` [shape=(Nframes, 2, na)]."""
    return {**item, "Xa": kernels.frame_streams(item["y"], na=params.na, nframes=params.nframes)}


def cqt(item: dict, params: Params) -> dict:
    """Stage 3: add ``Xs`` [shape=(Nframes, 2, ns)]."""
    Xs = kernels.cqt_streams(item["y"], sr=params.sr, na=params.na, fmin=params.fmin, ns=params.ns,
                             n_octaves=params.n_octaves, nframes=params.nframes)
    return {**item, "Xs": Xs}


def lcn(item: dict, params: Params) -> dict:
    """Stage 4: add ``Xn`` [shape=(Nframes, 2, ns)]."""
    Xn = kernels.lcn_streams(item["Xs"], size=params.lcn_size, sigma=params.lcn_sigma, log=params.lcn_log)
    return {**item, "Xn": Xn}


def write(item: dict, params: Params, store: str, token: str, g: int, c: int) -> int:
    """Stage 5: write the requested arrays into the clip's chunks; return the bytes written."""
    return write_clip(store, g, c, {name: item[name] for name in params.datasets}, token)


def stages_for(params: Params) -> list:
    """The stages the requested datasets need, in order."""
    need = {"load", "write"}
    if "Xa" in params.datasets:
        need.add("frame")
    if {"Xs", "Xn"} & set(params.datasets):
        need.add("cqt")
    if "Xn" in params.datasets:
        need.add("lcn")
    return [s for s in STAGES if s in need]


def clip_token(ref: ClipRef, labels) -> str:
    """The clip part of a task key, e.g. ``blues.00003``.

    Only letters, digits and ``_`` stand before the dot, so Dask's key_split
    takes everything up to the first ``-`` as the group (the stage name).
    """
    genre = re.sub(r"[^A-Za-z0-9_]", "_", ref.genre)
    if sum(re.sub(r"[^A-Za-z0-9_]", "_", lb) == genre for lb in labels) > 1:
        genre = f"{genre}_{ref.g}"  # two labels that differ only in punctuation
    return f"{genre}.{ref.c:05d}"


def build_graph(clips, params: Params, store: str, labels, token: str = "") -> dict:
    """Build (do not run) the chains for ``clips``.

    ``token`` identifies this creation of the store (:func:`pipeline.output.layout.store_token`).

    Returns
    -------
    dict
        ``(g, c) -> dask.delayed`` of the clip's write task, whose value is the
        bytes written.
    """
    import dask

    fns = {"load": load, "frame": frame, "cqt": cqt, "lcn": lcn}
    stages = stages_for(params)
    out = {}
    for ref in clips:
        clip = clip_token(ref, labels)
        node = dask.delayed(load, pure=True)(ref, params, dask_key_name=f"load-{clip}")
        for stage in stages[1:-1]:
            node = dask.delayed(fns[stage], pure=True)(node, params, dask_key_name=f"{stage}-{clip}")
        out[(ref.g, ref.c)] = dask.delayed(write, pure=True)(
            node, params, store, token, ref.g, ref.c, dask_key_name=f"write-{clip}")
    return out
