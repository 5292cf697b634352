"""Configuration: dask.config defaults, 'audioprep config', run --config reproduces a run."""

from pathlib import Path

import dask
import pytest
import yaml
from support.cli import audioprep
from support.compare import assert_same_output
from support.data import SMALL

from pipeline import config
from pipeline.config import dump_run_config, load_run_config, resolve_settings
from pipeline.params import Params


def test_packaged_yaml_has_a_comment_on_every_key():
    for line in config.defaults_text().splitlines():
        if line.strip() and not line.strip().startswith("#") and line.strip() != "audioprep:":
            assert "#" in line, line


def test_environment_overrides_packaged_default(monkeypatch):
    assert config.setting("threads-per-worker") == 1
    with dask.config.set({"audioprep.threads-per-worker": 3}):
        assert config.setting("threads-per-worker") == 3
        assert config.setting("threads-per-worker", 5) == 5  # explicit argument wins


def test_run_config_round_trips(tmp_path):
    settings = resolve_settings(
        {"lcn_sigma": 1.5, "datasets": "Xs", "input": ".", "outdir": "o", "skip_bad": True, "workers": 3, "cores": 4}
    )
    back = yaml.safe_load(dump_run_config(settings))
    assert back["params"] == {**Params(lcn_sigma=1.5, datasets="Xs").to_dict(), "layout": "grid"}
    assert back["input"] == str(Path(".").resolve()) and back["outdir"] == str(Path("o").resolve())
    assert back["skip-bad"] is True
    assert back["audioprep"]["workers"] == 3 and back["audioprep"]["jobqueue"]["cores"] == 4
    assert back["audioprep"]["threads-per-worker"] == 1  # the keys no option gave are there too
    again = resolve_settings({}, back)
    assert again.params == settings.params and again.input == settings.input and again.outdir == settings.outdir
    assert again.skip_bad and again.jobqueue["cores"] == 4
    assert yaml.safe_load(dump_run_config(again)) == back


def test_precedence_option_over_file_over_dask_config_over_default():
    file = {
        "params": {"lcn_size": 7, "ns": 48, "n_octaves": 2},
        "audioprep": {"workers": 5, "jobs": 4, "jobqueue": {"memory": "3GiB", "queue": "q1"}},
    }
    with dask.config.set({"audioprep.workers": 9, "audioprep.jobs": 8, "audioprep.adapt-max": 6}):
        s = resolve_settings({"ns": 24, "n_octaves": 1, "workers": 2, "queue": "q2"}, file)
        with dask.config.set(s.runtime):
            assert config.setting("workers") == 2  # option over file
            assert config.setting("jobs") == 4  # file over dask config
            assert config.setting("adapt-max") == 6  # dask config over default
            assert config.setting("threads-per-worker") == 1  # default
    assert s.params.ns == 24 and s.params.lcn_size == 7 and s.params.na == 1024
    assert s.jobqueue == {"memory": "3GiB", "queue": "q2"}


def test_bad_config_files_are_clear(tmp_path):
    from pipeline import ParameterError

    bad = tmp_path / "c.yaml"
    bad.write_text("params: [1, 2\n")
    with pytest.raises(ParameterError, match="not valid YAML"):
        load_run_config(bad)
    bad.write_text("parms: {}\n")
    with pytest.raises(ParameterError, match=r"unknown key\(s\) parms"):
        load_run_config(bad)
    p = audioprep("config", "--config", bad, check=False)
    assert p.returncode == 1 and "unknown key(s) parms" in p.stderr and "Traceback" not in p.stderr


def test_config_command_prints_effective_settings(tmp_path):
    out = audioprep("config", "--lcn-size", "7", env={"DASK_AUDIOPREP__DASHBOARD_ADDRESS": None}).stdout
    cfg = yaml.safe_load(out)
    assert cfg["params"]["lcn_size"] == 7 and cfg["params"]["na"] == 1024
    assert cfg["params"]["layout"] == "grid"  # every parameter, the default layout too
    assert cfg["audioprep"]["dashboard-address"] == "127.0.0.1:8787"
    assert "# LCN Gaussian window taps" in out
    # a config file, then an option on top of it
    f = tmp_path / "c.yaml"
    f.write_text(out)
    again = yaml.safe_load(audioprep("config", "--config", f, "--ns", "48", "--octaves", "2").stdout)
    assert again["params"]["lcn_size"] == 7 and again["params"]["ns"] == 48


@pytest.mark.slow
def test_run_from_saved_config_reproduces_the_output(tiny_dataset, tmp_path):
    audioprep(
        "run",
        tiny_dataset,
        "-o",
        tmp_path / "a",
        "--nsamples",
        SMALL["nsamples"],
        "--lcn-sigma",
        "1.5",
        "--lcn-log",
        "--datasets",
        "Xs,Xn",
        "--workers",
        "2",
        cwd=tmp_path,
    )
    saved = tmp_path / "a" / "audio.config.yaml"
    cfg = yaml.safe_load(saved.read_text())
    assert cfg["params"]["lcn_sigma"] == 1.5 and cfg["input"] == str(tiny_dataset)
    audioprep("run", "--config", saved, "-o", tmp_path / "b", cwd=tmp_path)
    assert_same_output(tmp_path / "a" / "audio.hdf5", tmp_path / "b" / "audio.hdf5")


def test_what_happens_to_a_clip_that_keeps_killing_workers_is_said_one_way():
    """Before: audioprep.yaml said such a clip is 'reported as bad'; the docs say it is not stored as bad."""
    from pathlib import Path

    from pipeline import config

    assert config.comments()["audioprep.allowed-failures"] == (
        "times a clip may kill a worker before the run gives up on it (exit 4; it is not stored as bad, the next run "
        "computes it)"
    )
    page = (Path(__file__).resolve().parents[1] / "docs" / "reliability.md").read_text()
    assert "It is **not** stored as bad" in " ".join(page.split())
