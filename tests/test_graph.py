"""The task graph: lazy, one chain per clip, keys named by stage and clip."""

import dask
import pytest
from dask.utils import key_split

from pipeline.dataset import open_index
from pipeline.graph import build_graph, clip_token, stages_for


class CountComputes:
    """A scheduler that counts how often anything is computed (it must be never)."""

    def __init__(self):
        self.n = 0

    def __call__(self, dsk, keys, **kwargs):
        self.n += 1
        raise RuntimeError("the graph was computed while it was being built")


def test_build_graph_is_lazy(tiny_dataset, small_params):
    idx = open_index(tiny_dataset)
    counter = CountComputes()
    with dask.config.set(scheduler=counter):
        writes = build_graph(idx.clips, small_params, "/nonexistent/audio.zarr", idx.labels)
    assert counter.n == 0
    assert len(writes) == 6


def test_keys_name_stage_and_clip_and_group_by_stage(tiny_dataset, small_params):
    idx = open_index(tiny_dataset)
    writes = build_graph(idx.clips, small_params, "/x/audio.zarr", idx.labels)
    graph = dict(writes[(1, 0)].__dask_graph__())
    assert sorted(graph) == sorted(f"{s}-classical.00000" for s in ("load", "frame", "cqt", "lcn", "write"))
    assert {key_split(k) for k in graph} == {"load", "frame", "cqt", "lcn", "write"}
    # a chain: each stage depends on exactly the previous one
    deps = {k: {d for d in dask.core.get_dependencies(graph, k)} for k in graph}
    assert deps["write-classical.00000"] == {"lcn-classical.00000"}
    assert deps["lcn-classical.00000"] == {"cqt-classical.00000"}
    assert deps["frame-classical.00000"] == {"load-classical.00000"}


@pytest.mark.parametrize("datasets,stages", [
    ("Xa", ["load", "frame", "write"]),
    ("Xs", ["load", "cqt", "write"]),
    ("Xs,Xn", ["load", "cqt", "lcn", "write"]),
    ("Xa,Xs,Xn", ["load", "frame", "cqt", "lcn", "write"]),
])
def test_only_needed_stages_run(small_params, datasets, stages):
    assert stages_for(small_params.replace(datasets=datasets)) == stages


def test_clip_token_groups_well_for_awkward_genre_names():
    from pipeline.dataset import ClipRef

    labels = ("hip-hop", "hip_hop", "r&b")
    tok = clip_token(ClipRef(0, 7, "hip-hop", "x"), labels)
    assert key_split(f"cqt-{tok}") == "cqt"
    assert tok != clip_token(ClipRef(1, 7, "hip_hop", "y"), labels)
    assert key_split(f"load-{clip_token(ClipRef(2, 0, 'r&b', 'z'), labels)}") == "load"
