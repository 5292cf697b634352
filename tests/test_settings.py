"""Every setting passes one check however it is given: an option, a --config file, the dask config, the environment.

A refused value gives one line, the same line from every source, exit 1, and
nothing is created.  The command line runs in this process (click's runner) for
the matrix of sources; the environment is also tried in a real process, where
dask itself reads ``DASK_AUDIOPREP__*``.
"""

import os
import subprocess
import sys

import dask
import pytest
import yaml
from click.testing import CliRunner

from pipeline import ParameterError
from pipeline.cli import main
from pipeline.params import Params


def cli(*args, cfg=None, tmp_path=None):
    """Run the command line in this process; return (exit code, stderr lines)."""
    args = [str(a) for a in args]
    if cfg is not None:
        f = tmp_path / "run.yaml"
        f.write_text(yaml.safe_dump(cfg))
        args += ["--config", str(f)]
    r = CliRunner().invoke(main, args)
    return r.exit_code, [ln for ln in r.stderr.splitlines() if ln.strip()]


# (option args, the same value as a config file's entry, the dask-config key or None, what the line says)
CASES = [
    (["--workers", "-3"], {"audioprep": {"workers": -3}}, "audioprep.workers", "workers=-3 must be a whole number"),
    (["--workers", "abc"], {"audioprep": {"workers": "abc"}}, "audioprep.workers", "workers=abc must be"),
    (
        ["--cluster", "banana"],
        {"audioprep": {"cluster": "banana"}},
        "audioprep.cluster",
        "cluster=banana must be one of local, slurm",
    ),
    (
        ["--dashboard-address", "banana"],
        {"audioprep": {"dashboard-address": "banana"}},
        "audioprep.dashboard-address",
        "dashboard-address=banana must be HOST:PORT",
    ),
    (
        ["--memory", "banana"],
        {"audioprep": {"jobqueue": {"memory": "banana"}}},
        "audioprep.jobqueue.memory",
        "memory=banana must be a size",
    ),
    (
        ["--walltime", "banana"],
        {"audioprep": {"jobqueue": {"walltime": "banana"}}},
        "audioprep.jobqueue.walltime",
        "walltime=banana must be a walltime",
    ),
    (["--jobs", "0"], {"audioprep": {"jobs": 0}}, "audioprep.jobs", "jobs=0 must be a whole number from 1 to 10000"),
    (["--lcn-sigma", "abc"], {"params": {"lcn_sigma": "abc"}}, None, "lcn_sigma=abc must be a number > 0"),
    (["--nsamples", "1.5"], {"params": {"nsamples": 1.5}}, None, "nsamples=1.5 must be a whole number"),
    (["--subset", "tiny"], {"subset": "tiny"}, None, "subset=tiny must be one of small, medium, large, full"),
]


@pytest.mark.parametrize("option, entry, key, says", CASES, ids=[c[3].split(" ")[0] for c in CASES])
def test_a_bad_value_gives_the_same_line_from_every_source(option, entry, key, says, tmp_path):
    out = tmp_path / "out"
    got = {
        "option": cli("run", tmp_path, "-o", out, *option),
        "config file": cli("run", tmp_path, "-o", out, cfg=entry, tmp_path=tmp_path),
    }
    if key is not None:
        value = option[1]
        with dask.config.set({key: int(value) if value.lstrip("-").isdigit() else value}):
            got["dask config"] = cli("run", tmp_path, "-o", out)
    for source, (code, lines) in got.items():
        assert code == 1, (source, lines)
        assert len(lines) == 1 and says in lines[0], (source, lines)
    assert len({tuple(lines) for _, lines in got.values()}) == 1, got
    assert not out.exists()  # nothing created before the settings pass


ENV_CASES = [
    ({"DASK_AUDIOPREP__WORKERS": "-3"}, ["--workers", "-3"]),
    ({"DASK_AUDIOPREP__MEMORY_LIMIT": "1kB"}, None),
    ({"DASK_AUDIOPREP__CLIPS_IN_FLIGHT": "abc"}, None),
    ({"DASK_AUDIOPREP__ALLOWED_FAILURES": "abc"}, None),
    ({"DASK_AUDIOPREP__CLUSTERR": "slurm"}, None),
    ({"DASK_AUDIOPREP__TLS": "maybe"}, ["--tls"]),
    ({"DASK_AUDIOPREP__JOBQUEUE__LIFETIME": "abc"}, None),  # was exit 70: parse_timedelta's KeyError
    ({"DASK_AUDIOPREP__CONNECT_TIMEOUT": "abc"}, None),
    ({"DASK_AUDIOPREP__PARAMS__NSAMPLES": "100"}, None),
]


@pytest.mark.parametrize("env, option", ENV_CASES, ids=[next(iter(e)) for e, _ in ENV_CASES])
def test_environment_settings_are_checked_before_anything_is_created(env, option, tmp_path):
    """Before: a hang (workers -3, memory-limit 1kB), a traceback (exit 70), or a misspelt key ignored."""
    out = tmp_path / "out"
    p = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", str(tmp_path), "-o", str(out)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    assert not out.exists()
    if option == ["--workers", "-3"]:  # the same line as the option
        assert cli("run", tmp_path, "-o", out, *option)[1] == lines


def _nested(key: str, value) -> dict:
    head, _, rest = key.partition(".")
    return {head: _nested(rest, value) if rest else value}


DURATION_OR_SIZE = [
    k
    for k, rule in __import__("pipeline.config", fromlist=["RUNTIME_RULES"]).RUNTIME_RULES.items()
    if rule.metavar in ("DURATION", "SIZE")
]


@pytest.mark.parametrize("key", DURATION_OR_SIZE)
@pytest.mark.parametrize("value", ["abc", "10 parsecs", "-5s"])
def test_every_duration_and_size_setting_refuses_words_in_one_line(key, value, tmp_path):
    """Before: audioprep.jobqueue.lifetime: abc gave 'unexpected KeyError' and exit 70."""
    assert {"connect-timeout", "worker-timeout", "jobqueue.lifetime", "memory-limit"} <= set(DURATION_OR_SIZE)
    code, lines = cli("run", tmp_path, "-o", tmp_path / "o", cfg={"audioprep": _nested(key, value)}, tmp_path=tmp_path)
    leaf = key.rsplit(".", 1)[-1]
    assert code == 1 and len(lines) == 1 and lines[0].startswith(f"error: {leaf}={value} must be "), lines
    assert not (tmp_path / "o").exists()


def test_parameters_in_the_environment_are_told_where_they_go(tmp_path):
    p = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", str(tmp_path), "-o", str(tmp_path / "o")],
        env={**os.environ, "DASK_AUDIOPREP__PARAMS__NSAMPLES": "100"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 1 and p.stderr.splitlines() == [
        "error: audioprep.params is not a setting: the numerical parameters (nsamples, sr, ...) are given as options "
        "(--nsamples 100) or in the params: section of a --config file (as 'audioprep config' prints), not in the "
        "dask config or DASK_AUDIOPREP__* variables"
    ]


def test_a_config_file_that_is_not_text_is_one_line(tmp_path):
    """Before: 300 random bytes gave 'unexpected UnicodeDecodeError' and exit 70."""
    f = tmp_path / "noise.yaml"
    f.write_bytes(bytes(__import__("random").Random(3).randrange(128, 256) for _ in range(300)))
    r = CliRunner().invoke(main, ["run", str(tmp_path), "-o", str(tmp_path / "o"), "--config", str(f)])
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.exit_code == 1 and lines == [
        f"error: --config {f}: not a text file (byte 0 is not UTF-8); give a YAML file as 'audioprep config' prints"
    ]
    assert not (tmp_path / "o").exists()


def test_misspelt_key_names_the_setting_it_resembles(tmp_path):
    code, lines = cli(
        "run", tmp_path, "-o", tmp_path / "o", cfg={"audioprep": {"clusterr": "slurm"}}, tmp_path=tmp_path
    )
    assert code == 1 and lines == [
        "error: audioprep.clusterr is not a setting; did you mean audioprep.cluster? "
        "the settings are listed by 'audioprep config'"
    ]


@pytest.mark.parametrize(
    "text, value", [("false", False), ("False", False), ("no", False), ("true", True), ("on", True), (0, False)]
)
def test_a_quoted_boolean_means_what_it_says(text, value):
    """Before: lcn_log: "false" ran with log compression on."""
    assert Params(lcn_log=text).lcn_log is value
    assert Params.from_dict({"mono": text}).mono is value


@pytest.mark.parametrize("field", ["lcn_log", "resample", "mono"])
def test_a_boolean_that_is_not_one_is_refused(field):
    with pytest.raises(ParameterError, match=rf"^{field}=maybe must be true or false"):
        Params(**{field: "maybe"})


def test_config_file_with_quoted_false_is_read_as_false(tmp_path):
    f = tmp_path / "run.yaml"
    f.write_text('params: {lcn_log: "false"}\naudioprep: {tls: "no"}\n')
    r = CliRunner().invoke(main, ["config", "--config", str(f)])
    cfg = yaml.safe_load(r.stdout)
    assert r.exit_code == 0 and cfg["params"]["lcn_log"] is False and cfg["audioprep"]["tls"] is False


@pytest.mark.parametrize(
    "cfg, says",
    [
        ({"params": [1, 2]}, "params=[1, 2] must be a mapping"),
        ({"audioprep": "slurm"}, "audioprep=slurm must be a mapping"),
        ({"skip-bad": "perhaps"}, "skip-bad=perhaps must be true or false"),
        ({"audioprep": {"adapt-min": 5, "adapt-max": 2}}, "adapt-min=5 must not exceed adapt-max=2"),
    ],
)
def test_malformed_config_files_are_one_line(cfg, says, tmp_path):
    code, lines = cli("run", tmp_path, "-o", tmp_path / "o", cfg=cfg, tmp_path=tmp_path)
    assert code == 1 and len(lines) == 1 and says in lines[0], lines
    assert not (tmp_path / "o").exists()


def test_job_script_with_a_bad_memory_is_one_line():
    """Before: the script's temporary credential files printed three 'Exception ignored' tracebacks."""
    p = subprocess.run(
        [sys.executable, "-m", "pipeline", "cluster", "job-script", "--cluster", "slurm", "--memory", "banana"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 1
    assert p.stderr.splitlines() == [
        "error: memory=banana must be a size of at least 100 MiB and at most 1.00 PiB "
        "(the memory of one node) (e.g. 2GiB, 500MB) (--memory or "
        "audioprep.jobqueue.memory)"
    ]


def test_good_values_are_normalized_for_the_run():
    from pipeline.config import resolve_settings

    s = resolve_settings(
        {"workers": "2", "cluster": "SLURM", "cores": "4"},
        {"audioprep": {"tls": "false", "jobqueue": {"walltime": "90"}}},
    )
    assert s.runtime["audioprep.workers"] == 2 and s.runtime["audioprep.cluster"] == "slurm"
    assert s.runtime["audioprep.tls"] is False and s.runtime["audioprep.jobqueue.walltime"] == "90"
    assert s.jobqueue == {"cores": 4, "walltime": "90"}


# Settings that passed their check and then killed the run: the kernel's OOM killer (ns: the check itself built
# the bins), a hang (workers), exit 70 (islice), "raise audioprep.memory-limit" (sr).
FATAL = [
    (["--ns", "1000000000"], {}, "one clip would need about "),
    (["--workers", "1000000"], {}, "workers=1000000 must be a whole number from 1 to "),
    (["--lcn-size", "1000000001"], {}, "lcn_size=1000000001 is wider than the spectrogram"),
    (["--nsamples", "1000000000000", "--pad-short"], {}, "one clip would need about "),
    (
        ["--sr", "99999999999999999999", "--resample"],
        {},
        "sr=99999999999999999999 must be a whole number from 1 to 768000",
    ),
    (
        [],
        {"DASK_AUDIOPREP__CLIPS_IN_FLIGHT": "99999999999999999999999999"},
        "clips-in-flight=99999999999999999999999999 must be a whole number from 1 to 1000000",
    ),
]


@pytest.mark.parametrize(
    "args, env, says", FATAL, ids=[c[2].split("=")[0].split(" ")[0] + "-" + (c[0] or ["env"])[0] for c in FATAL]
)
def test_a_setting_beyond_its_upper_bound_is_refused_before_anything_is_created(
    args, env, says, tiny_dataset, tmp_path
):
    """A real process, as a user runs it: one line within seconds, exit 1, no output folder, no scratch folder."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / "out"
    p = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", str(tiny_dataset), "-o", str(out), *args],
        env={**os.environ, "TMPDIR": str(tmp), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [ln for ln in (p.stdout + p.stderr).splitlines() if ln.strip()]
    assert p.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: " + says), p.stdout + p.stderr
    assert not out.exists() and not list(tmp.iterdir())


def _huge(rule):
    """A value far beyond any sensible bound, as the rule's kind of value takes it (None: the kind is bounded by
    what it is: a flag, a choice, a port)."""
    return {
        "INTEGER": 10**30,
        "SIZE": "1000000PiB",
        "DURATION": "100000000d",
        "HH:MM:SS": "99999999:00:00",
        "TEXT": "x" * 300,
        "FLOAT": 1e300,
    }.get(rule.metavar)


def test_every_setting_has_an_upper_bound_that_says_why():
    """Each runtime setting and each numerical parameter refuses a huge value in one line, with its bound."""
    import dataclasses

    from pipeline import config

    for key, rule in config.RUNTIME_RULES.items():
        value = _huge(rule)
        if value is None:
            assert rule.metavar in ("BOOLEAN", "HOST:PORT") or rule.metavar.startswith("[") or key == "cluster", key
            continue
        with pytest.raises(ParameterError) as e:
            rule(key, value)
        assert "must be" in str(e.value) and ("at most" in str(e.value) or " to " in str(e.value)), (key, e.value)
    # lcn_sigma: any finite value is safe (a wider Gaussian is only flatter); the booleans and choices are bounded.
    for f in dataclasses.fields(Params):
        if f.name == "lcn_sigma" or type(f.default) not in (int, float):
            continue
        value = 10**30 if type(f.default) is int else 1e300
        with pytest.raises(ParameterError) as e:
            Params(**{f.name: value})
        assert f.name in str(e.value) and "\n" not in str(e.value), (f.name, e.value)


def test_minus_zero_is_zero():
    """Before: --offset -0 stored -0.0, and the next run without it refused the output as 'made with other
    parameters ()'."""
    assert Params(offset="-0") == Params() and Params(offset=-0.0).to_dict() == Params().to_dict()
    assert str(Params(offset="-0").offset) == "0.0"


@pytest.mark.parametrize(
    "env, says",
    [
        ({"DASK_AUDIOPREP": "5"}, "error: DASK_AUDIOPREP=5 is not a setting: audioprep holds settings by name"),
        (
            {"DASK_AUDIOPREP__JOBQUEUE": "7"},
            "error: DASK_AUDIOPREP__JOBQUEUE=7 is not a setting: audioprep.jobqueue holds settings by name",
        ),
    ],
    ids=["namespace", "jobqueue"],
)
def test_a_namespace_given_a_value_is_refused(env, says, tiny_dataset, tmp_path):
    """Before: dask.config dropped it under the packaged defaults, and the run went on without a word."""
    from support.data import SMALL_ARGS

    out = tmp_path / "out"
    p = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", str(tiny_dataset), "-o", str(out), *SMALL_ARGS],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 1 and len(lines) == 1 and lines[0].startswith(says), p.stderr
    assert not out.exists()


def test_a_long_path_is_not_a_long_name():
    """The 255-character bound is for names (a queue, an account); paths go to PATH_MAX."""
    from pipeline import config

    long = "/tmp/" + "a" * 300
    assert config.resolve_settings({"outdir": long}).outdir == long
    with pytest.raises(ParameterError, match=r"queue=q+ must be a non-empty text of at most 255 characters"):
        config.resolve_settings({"queue": "q" * 300})
