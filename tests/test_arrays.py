"""The output-array registry: the graph, the layout, the CLI and 'show' all derive from it."""

import numpy as np
from click.testing import CliRunner

from pipeline.arrays import ARRAYS, DATASETS, needed
from pipeline.cli import main
from pipeline.graph import STAGES, compute, stages_for
from pipeline.output import layout
from pipeline.params import Params


def test_every_array_is_computed_in_its_shape_with_its_own_stage():
    p = Params(nsamples=8192)
    y = np.random.default_rng(0).standard_normal(p.nsamples).astype(np.float32)
    got = compute(y, p, stages_for(p))
    assert list(got) == list(DATASETS) == list(ARRAYS)
    for name, a in ARRAYS.items():
        assert got[name].shape == p.shape(name, 1, 1)[2:] and got[name].dtype == np.float32, name
        assert a.stage in STAGES and layout.dims(name)[-1] == a.last
    assert stages_for(p) == ["load", *(a.stage for a in ARRAYS.values()), "write"]


def test_an_array_brings_what_it_needs_and_nothing_else():
    assert [a.name for a in needed(["Xn"])] == ["Xs", "Xn"]
    assert stages_for(Params(datasets="Xn")) == ["load", "cqt", "lcn", "write"]
    assert stages_for(Params(datasets="Xa")) == ["load", "frame", "write"]
    assert stages_for(Params(datasets="Xs")) == ["load", "cqt", "write"]
    assert stages_for(Params(datasets="Xs,Xn")) == ["load", "cqt", "lcn", "write"]
    assert stages_for(Params(datasets="Xa,Xs,Xn")) == ["load", "frame", "cqt", "lcn", "write"]


def test_the_cli_offers_exactly_the_registered_arrays():
    params = {p.name: p for p in main.commands["run"].params}
    assert f"any of {', '.join(ARRAYS)}" in params["datasets"].help
    assert f"[default: {','.join(ARRAYS)}]" in params["datasets"].help
    r = CliRunner().invoke(main, ["run", ".", "-o", "/nonexistent/o", "--datasets", "Xs,Xq"])
    assert r.exit_code == 1 and f"must be a non-empty list without repeats of {', '.join(ARRAYS)}" in r.stderr
