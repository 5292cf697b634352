"""The task graph: lazy, one task per clip or per small batch of one genre, keys that name their clips."""

import dask
import numpy as np
from dask.utils import key_split

from pipeline.graph import ClipTask, build_graph, clip_token, plan_tasks, run_task
from pipeline.inputs import ClipRef, open_index
from pipeline.output.layout import make_attrs
from pipeline.output.store import store_writer
from pipeline.output.zarr_store import create_store, done_mask, read_clip


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
        tasks = build_graph(idx.clips, small_params, "/nonexistent/audio.zarr", idx.labels)
    assert counter.n == 0
    assert len(tasks) == 6  # one task a clip by default


def test_one_task_a_clip_runs_every_stage_inside_it(tiny_dataset, small_params):
    idx = open_index(tiny_dataset)
    tasks = build_graph(idx.clips, small_params, "/x/audio.zarr", idx.labels)
    graph = dict(tasks["clips-classical.00000"].__dask_graph__())
    assert list(graph) == ["clips-classical.00000"]  # no task of its own per stage
    assert key_split("clips-classical.00000") == "clips"


def test_batches_hold_clips_of_one_genre_and_keys_name_them():
    labels = ("blues", "jazz")
    refs = [ClipRef(0, c, "blues", f"b{c}") for c in range(5)] + [ClipRef(1, c, "jazz", f"j{c}") for c in range(3)]
    tasks = list(plan_tasks(refs, labels, per_task=2))
    assert [t.key for t in tasks] == [
        "clips-blues.00000-00001",
        "clips-blues.00002-00003",
        "clips-blues.00004",
        "clips-jazz.00000-00001",
        "clips-jazz.00002",
    ]
    assert [len({r.g for r in t.refs}) for t in tasks] == [1] * 5
    assert [r for t in tasks for r in t.refs] == refs  # every clip once, in order
    assert {key_split(t.key) for t in tasks} == {"clips"}
    assert [t.key for t in plan_tasks(refs[:3], labels, per_task=8, kind="copy")] == ["copy-blues.00000-00002"]
    # a run's token ends every key: two runs on one scheduler never share a task; the group stays the kind
    keys = [t.key for t in plan_tasks(refs, labels, per_task=2, run="3f9a2c1d")]
    assert keys[0] == "clips-blues.00000-00001-3f9a2c1d" and keys[2] == "clips-blues.00004-3f9a2c1d"
    assert {key_split(k) for k in keys} == {"clips"}


def test_a_bad_clip_is_reported_and_costs_its_batch_nothing(tiny_dataset, small_params, tmp_path):
    idx = open_index(tiny_dataset)
    store = tmp_path / "audio.zarr"
    create_store(store, idx, small_params, make_attrs(idx, small_params, created="x"))
    good = [r for r in idx.clips if r.g == 0]
    broken = ClipRef(0, 1, "blues", str(tmp_path / "missing.au"))
    written, failures = run_task(
        ClipTask("clips-blues.00000-00001", "clips", (good[0], broken)), small_params, store_writer(store)
    )
    assert written == [(0, 0)]
    assert len(failures) == 1 and failures[0][:2] == (0, 1) and "cannot be read" in failures[0][2]
    import zarr

    done = done_mask(zarr.open_group(str(store), mode="r"))
    assert done[0, 0] and not done[0, 1]
    Xs = read_clip(store, 0, 0, ["Xs"])["Xs"]
    assert Xs.shape == (small_params.nframes, 2, small_params.ns) and np.abs(Xs).max() > 0


def test_clip_token_groups_well_for_awkward_genre_names():
    labels = ("hip-hop", "hip_hop", "r&b")
    tok = clip_token(ClipRef(0, 7, "hip-hop", "x"), labels)
    assert key_split(f"clips-{tok}") == "clips"
    assert tok != clip_token(ClipRef(1, 7, "hip_hop", "y"), labels)
    assert key_split(f"clips-{clip_token(ClipRef(2, 0, 'r&b', 'z'), labels)}-00003") == "clips"
