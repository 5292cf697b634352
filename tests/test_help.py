"""The texts a new user reads first: --help, 'audioprep config', the job-script preview, the progress bar.

Each is checked against its exact words, so a change to them is a decision, not an accident.
"""

import io

import yaml
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.progress import bar


def helptext(*args) -> str:
    r = CliRunner().invoke(main, [*args, "--help"], terminal_width=100)
    assert r.exit_code == 0, r.output
    return r.output


def test_top_level_help_gives_each_command_its_whole_summary():
    """Before: 'run  Process INPUT (a genres folder, a gtzan.hdf5 or a manifest...' was cut short."""
    commands = helptext().split("Commands:\n", 1)[1].splitlines()
    assert commands == [
        "  cluster  Inspect cluster settings (the batch job script).",
        "  config   Print the effective configuration as commented YAML.",
        "  info     Describe an audio.hdf5, audio.zarr or gtzan.hdf5.",
        "  ingest   Convert a genres folder into a gtzan.hdf5.",
        "  run      Process a dataset into OUTDIR/audio.hdf5 (the main command).",
        "  show     Plot one clip, or each genre's mean spectrum.",
        "  synth    Write a deterministic synthetic dataset.",
    ]


def _option_help(command, name) -> str:
    params = {p.name: p for p in main.commands[command].params}
    return params[name].help


def test_run_help_says_defaults_one_way_and_marks_the_jobqueue_options():
    """Before: 'null = one per core  [default: none]', and --cores, --memory, ... looked like local options."""
    text = helptext("run")
    assert "null" not in text
    assert _option_help("run", "workers") == "Local worker processes  [default: one per core]"
    assert _option_help("run", "queue") == "Jobqueue: queue / partition  [default: the scheduler's default]"
    assert _option_help("run", "adapt_max") == "... and this many  [default: a fixed number of jobs]"
    for name in ("cores", "processes", "memory", "walltime", "queue", "account", "interface", "jobs", "adapt_min"):
        assert _option_help("run", name).startswith("Jobqueue: "), name
    for name in ("workers", "cluster", "tls", "dashboard_address", "skip_bad", "pad_short"):
        assert not _option_help("run", name).startswith("Jobqueue"), name
    flat = " ".join(text.split())
    assert "--workers INTEGER" in flat and "--memory SIZE" in flat and "--walltime HH:MM:SS" in flat
    assert "--cluster KIND|ADDRESS" in flat and "--dashboard-address HOST:PORT" in flat
    assert "--layout [grid|clips]" in flat and "--precision [float32|exact]" in flat  # a choice shows its values
    assert "--crop [start|center]" in flat


def test_config_names_no_file_the_user_lacks():
    """Before: 'params: # numerical parameters (SPEC.md)'; users have no SPEC.md."""
    r = CliRunner().invoke(main, ["config"])
    line = next(ln for ln in r.output.splitlines() if ln.startswith("params:"))
    assert line == (
        "params:                                   # numerical parameters: these decide the output "
        "('audioprep run --help' explains each)"
    )
    assert "SPEC" not in r.output
    assert yaml.safe_load(r.output)["params"]["pad_short"] is False


def test_job_script_says_its_scheduler_address_is_a_placeholder():
    r = CliRunner().invoke(main, ["cluster", "job-script", "--cluster", "slurm"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    assert lines[1:3] == [
        "# audioprep: a preview. The scheduler address (tls://...:PORT) and the credential files below are "
        "placeholders;",
        "# a run starts its own scheduler and writes its own address and credentials into the scripts it submits.",
    ]
    assert any("--scheduler-file" in ln or "tls://" in ln for ln in lines[3:])


class Clock:
    """The time a tqdm bar reads (its ``_time``), set by the test: clips take as long as the test says, no sleep."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_progress_rate_is_always_clips_per_second():
    """Before: tqdm wrote '1.20s/clip' for slow clips and '100.00clip/s' for fast ones."""
    for seconds_a_clip, rate in ((0.01, "100.00clip/s"), (1.2, "0.83clip/s"), (40.0, "0.03clip/s")):
        out, clock = io.StringIO(), Clock()
        with bar(desc="clips", enabled=True, total=3, file=out, mininterval=0, smoothing=0) as b:
            b._time, b.start_t, b.last_print_t = clock, clock.now, clock.now
            for _ in range(2):
                clock.now += seconds_a_clip
                b.update(1)
        text = out.getvalue()
        assert rate in text and "s/clip" not in text, text
        assert "clips:  67%" in text and "| 2/3 [" in text, text
