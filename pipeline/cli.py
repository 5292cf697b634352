"""The ``audioprep`` command line: each command parses, then calls the library."""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import signal
import sys
from pathlib import Path

import click
import dask.config

from . import __version__, config
from ._entry import quiet_exit
from .cluster import ClusterSpec, batch_kinds
from .cluster import job_script as make_job_script
from .config import JOBQUEUE_KEYS
from .exceptions import BadInputError, IncompleteError, PipelineError, Terminated, escaped
from .ingest import ingest as ingest_folder
from .output import OutputFolder, describe
from .output.files import is_storage_error
from .output.reader import slot_ranges
from .params import Params, choice_values, option_name
from .plot import show_clip, show_summary
from .synth import synth_dataset

#: Said in the script 'cluster job-script' prints: its scheduler address and credentials are this preview's.
JOB_SCRIPT_NOTE = (
    "# audioprep: a preview. The scheduler address (tls://...:PORT) and the credential files below are "
    "placeholders;\n# a run starts its own scheduler and writes its own address and credentials "
    "into the scripts it submits."
)


def _fail(exc: BaseException) -> None:
    for line in str(exc).splitlines() or [type(exc).__name__]:
        click.echo(f"error: {line}", err=True)
    sys.exit(4 if isinstance(exc, IncompleteError) else 3 if isinstance(exc, BadInputError) else 1)


def _terminate(signum, frame):
    raise Terminated()


def handle_errors(fn):
    """Turn the project's errors into one line each and a non-zero exit, never a traceback.

    SIGTERM is raised as :class:`Terminated` in the main thread, so that a run
    stops as cleanly on ``kill`` (or a batch system's notice) as on Ctrl-C.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        previous = signal.signal(signal.SIGTERM, _terminate)
        try:
            return fn(*args, **kwargs)
        except PipelineError as e:
            _fail(e)
        except (KeyboardInterrupt, Terminated) as e:
            finished = getattr(e, "finished", None)
            kept = f"{finished} clips finished and kept" if finished is not None else "finished clips are kept"
            click.echo(f"interrupted: {kept}; run the same command again to resume", err=True)
            quiet_exit(143 if isinstance(e, Terminated) else 130)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except OSError as e:
            if not is_storage_error(e):
                _bug(e)
            click.echo(
                f"error: {e.filename or 'the output'}: {e.strerror}; free space or fix permissions, then run "
                "the same command again",
                err=True,
            )
            sys.exit(1)
        except Exception as e:
            _bug(e)
        finally:
            signal.signal(signal.SIGTERM, previous)

    return wrapper


def _bug(e: Exception):
    if os.environ.get("AUDIOPREP_DEBUG") == "1":
        raise e
    click.echo(
        f"error: unexpected {type(e).__name__}: {e}; this is a bug in audioprep: please report it "
        "with the traceback that AUDIOPREP_DEBUG=1 shows",
        err=True,
    )
    sys.exit(70)


def _shown(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return "none" if value is None else str(value)


def _add(fn, options):
    for opt in reversed(options):
        fn = opt(fn)
    return fn


def _param_option(f):
    """The click option of one :class:`Params` field, from the field's metadata."""
    meta = f.metadata
    name = option_name(f)
    help = f"{meta['help'][0].upper()}{meta['help'][1:]}  [default: {meta['shown'] or _shown(f.default)}]"
    if isinstance(f.default, bool):
        return click.option(f"{name}/--no-{name[2:]}", f.name, default=None, help=help)
    # Values are read as text and checked by Params itself, so an option and a config key are refused alike.
    metavar = {int: "INTEGER", float: "FLOAT"}.get(type(f.default), "TEXT")
    if choice_values(f):  # a choice: its values, as click shows a choice's
        metavar = "[" + "|".join(choice_values(f)) + "]"
    return click.option(name, f.name, type=str, metavar=metavar, help=help)


def param_options(fn=None, *, ingest_only: bool = False):
    """The numerical parameters (:class:`Params` fields) as options; ``ingest_only``: those ingest takes."""

    def deco(fn):
        return _add(
            fn, [_param_option(f) for f in dataclasses.fields(Params) if f.metadata["ingest"] or not ingest_only]
        )

    return deco(fn) if fn is not None else deco


def _setting_option(key: str, type=str, *, name: str | None = None, dest: str | None = None):
    """The option of runtime setting ``audioprep.<key>``: help and default from the packaged YAML.

    Its value is read as text and checked by :func:`config.check_runtime` with the config's and the
    environment's values, so each is refused with the same line.
    """
    help = config.comments().get(f"audioprep.{key}", "")
    value = dask.config.get(f"audioprep.{key}", None)
    default = _shown(value)
    if value is None and "; null = " in help:  # "...; null = one per core": the default is what null means
        help, default = help.split("; null = ", 1)
    if key.startswith("jobqueue.") and not help.lower().startswith("jobqueue"):
        help = f"jobqueue: {help}"  # only batch-job clusters (slurm, pbs, ...) read it
    leaf = key.rsplit(".", 1)[-1]
    text = f"{help[0].upper()}{help[1:]}  [default: {default}]"
    if type is bool:
        return click.option(f"--{leaf}/--no-{leaf}", leaf.replace("-", "_"), default=None, help=text)
    metavar = config.RUNTIME_RULES[key].metavar
    return click.option(name or f"--{leaf}", dest or leaf.replace("-", "_"), type=type, metavar=metavar, help=text)


def run_options(fn):
    """The run options (:data:`config.RUN_OPTIONS`, the input aside: it is the argument) as click options."""
    opts = []
    for o in config.RUN_OPTIONS:
        if o.argument:
            continue
        names = [o.short, f"--{o.key}"] if o.short else [f"--{o.key}"]
        help = f"{o.help[0].upper()}{o.help[1:]}" + (f"  [default: {o.shown}]" if o.shown else "")
        if o.flag:
            opts.append(click.option(*names, o.dest, is_flag=True, default=None, help=help))
        else:
            opts.append(click.option(*names, o.dest, metavar="DIRECTORY" if o.path else o.rule.metavar, help=help))
    return _add(fn, opts)


def jobqueue_options(fn):
    """Per-job settings of batch-job clusters (override the user's jobqueue.<kind> config)."""
    return _add(fn, [_setting_option(f"jobqueue.{key}") for key in JOBQUEUE_KEYS])


def _setup_logging(verbose: int) -> None:
    """audioprep's own messages at INFO; Dask's logging and Python's warnings only with -v.

    The spawned worker processes inherit the environment variables set here.
    """
    # Without -v, Dask's own error lines stay out too: audioprep says what failed in its own words, and a
    # request from anyone to the dashboard (a bad URL) must not write tornado's traceback into the run's log.
    dask_level = ["critical", "info", "debug"][min(verbose, 2)]
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", dask_level)
    os.environ["AUDIOPREP_VERBOSE"] = str(verbose)
    quiet = dask_level if verbose else "critical"
    # Read as distributed is imported (after this): its defaults would let tornado.application's errors through.
    dask.config.set(
        {
            "logging": {
                "distributed": dask_level,
                "tornado": "critical",
                "tornado.application": quiet,
                "bokeh": quiet,
                "asyncio": quiet,
            }
        }
    )
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)
    # asyncio: a connection the closing cluster cut ("Future exception was never retrieved ... CommClosedError")
    # while a SIGTERM ends the run is no news; the run's own line says how it ended.
    for name in ("distributed", "tornado", "bokeh", "asyncio"):
        logging.getLogger(name).setLevel(level if verbose else logging.CRITICAL)
    # Warnings (a busy dashboard port, ...) go to logging, shown with -v.
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").setLevel(logging.WARNING if verbose else logging.ERROR)
    if not verbose:
        # multiprocessing's resource tracker (its own process) counts the semaphores of worker
        # processes a signal ended; it cleans them up, and need not say so.
        os.environ.setdefault("PYTHONWARNINGS", "ignore:resource_tracker:UserWarning")


def _progress_enabled(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True, "max_content_width": 100})
@click.version_option(__version__, prog_name="audioprep")
def main():
    """audioprep: turn a music-audio dataset (GTZAN-style) into training arrays.

    Frames, constant-Q spectrograms and their local contrast normalization,
    computed by a Dask graph (locally or on SLURM/PBS/SGE/...) into audio.zarr,
    then finished into the output --output-format names (audio.hdf5 by
    default).  Start with 'audioprep run' (no
    arguments): it synthesizes a small dataset under data/ and processes it.
    """
    _setup_logging(0)  # 'run' sets it again from its -v


@main.command(short_help="Process a dataset into OUTDIR/audio.hdf5 (the main command).")
@click.argument("input", required=False, type=click.Path(path_type=Path))
@run_options
@param_options
@_setting_option("cluster")
@_setting_option("workers")
@_setting_option("tls", bool)
@_setting_option("dashboard-address")
@jobqueue_options
@_setting_option("jobs")
@_setting_option("adapt-min")
@_setting_option("adapt-max")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs made from other parameters or input")
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Run configuration file (as 'audioprep config' prints, or OUTDIR/audio.config.yaml of an "
    "earlier run); options given here override it",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or status lines")
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug)")
@handle_errors
def run(quiet, verbose, config_file, overwrite, **options):
    """Process INPUT (a genres folder, a gtzan.hdf5 or a manifest .csv) into OUTDIR.

    A genres folder is INPUT/<genre>/<file>: files with an audio extension are
    the clips (sorted by name), anything else is ignored and named.  A
    manifest .csv has a header row and one row per clip: its path (relative to
    the manifest's folder) and its label.

    With no INPUT, a synthetic 10 genres x 10 clips dataset is written to
    data/genres (once) and processed.  A run interrupted at any point resumes
    where it stopped when the same command is run again.  The run's
    configuration is saved as OUTDIR/audio.config.yaml; '--config' repeats it.
    '--output-format zarr' leaves OUTDIR/audio.zarr alone as the output, with
    no audio.hdf5.
    """
    _setup_logging(verbose)
    from .api import command_line_run

    progress = _progress_enabled(quiet)
    say = (lambda m: None) if quiet else (lambda m: click.echo(m, err=True))
    res = command_line_run(
        options.pop("input"),
        options.pop("outdir"),
        config_file=config_file,
        overwrite=overwrite,
        progress=progress,
        echo=say,
        **options,
    )
    _print_summary(res, quiet)


def _print_summary(res, quiet: bool) -> None:
    if res.up_to_date:
        click.echo(f"{res.output_path} is up to date (same input and parameters): nothing to do")
        return
    if res.bad:
        click.echo(f"{len(res.bad)} bad clip(s), zero-filled and flagged invalid:", err=True)
        for line in res.bad:
            click.echo(f"  {escaped(line)}", err=True)
    if res.empty_genres:
        click.echo(
            f"no valid clip in {len(res.empty_genres)} genre(s): {', '.join(res.empty_genres)} (every slot "
            "bad or missing: zero and flagged invalid)",
            err=True,
        )
    if res.missing and not quiet:
        click.echo(
            f"{len(res.missing)} missing slot(s) of genres with fewer clips (--pad), zero-filled and "
            f"flagged invalid: {slot_ranges(res.missing)}",
            err=True,
        )
    if quiet:
        return
    mb = res.bytes_written / 1e6
    click.echo(
        f"{res.computed} clips computed ({res.resumed} resumed, {len(res.bad)} bad, {len(res.missing)} "
        f"missing) of {res.clips} in {res.seconds:.1f} s ({res.clips_per_second:.2f} clips/s); "
        f"{mb:.1f} MB of arrays written; {res.output_path}: {res.output_bytes / 1e6:.1f} MB"
    )
    hint = OutputFolder(Path(res.output_path).parent, final=res.output_format).final.hint(res.zarr_path)
    if hint:  # the output's own words about itself and the store
        click.echo(hint, err=True)


@main.command(short_help="Convert a genres folder into a gtzan.hdf5.")
@click.argument("genres_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("gtzan.hdf5"),
    help="The gtzan.hdf5 to write",
)
@param_options(ingest_only=True)
@click.option(
    "--skip-bad",
    is_flag=True,
    help="Go on without bad clips: zero columns, recorded as bad in the file (a run on it reports them again)",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing output file")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar")
@handle_errors
def ingest(genres_dir, output, skip_bad, overwrite, quiet, **kw):
    """Convert GENRES_DIR (GENRES_DIR/<genre>/<file>) into a gtzan.hdf5.

    One float32 dataset per genre of shape (Nsamples, Nclips), one column per
    clip, with attributes Ngenres, Nclips, sr and Nsamples.  The checks are
    those of run; what --pad-short and --skip-bad did is recorded per clip
    (its own length, why it is bad) and a run on the file uses it.
    """
    bad = []
    out = ingest_folder(
        genres_dir,
        output,
        config.resolve_settings(kw).params,
        overwrite=overwrite,
        skip_bad=skip_bad,
        progress=_progress_enabled(quiet),
        echo=bad.append,
    )
    if bad:
        click.echo(f"{len(bad)} bad clip(s) left out as zero columns, recorded as bad in {out}:", err=True)
        for line in bad:
            click.echo(line, err=True)
    if not quiet:
        click.echo(f"wrote {out}")


@main.command(short_help="Write a deterministic synthetic dataset.")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--genres", type=click.IntRange(1, 1000), default=10, help="Number of genres")
@click.option("--clips", type=click.IntRange(1, 100000), default=100, help="Clips per genre")
@click.option(
    "--seconds",
    type=click.FloatRange(min=0.1),
    default=None,
    help="Length of every clip  [default: drawn from GTZAN's 660000 to 675808 samples]",
)
@click.option("--seed", type=int, default=0, help="Random seed; the same seed gives the same files")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar")
@handle_errors
def synth(out_dir, genres, clips, seconds, seed, quiet):
    """Write a deterministic synthetic dataset to OUT_DIR/genres/<genre>/<genre>.000NN.au.

    16-bit PCM at 22050 Hz; each genre has its own tempo, register, harmony and
    percussion.  Existing files are kept.
    """
    root = synth_dataset(
        out_dir, genres=genres, clips=clips, seconds=seconds, seed=seed, progress=_progress_enabled(quiet)
    )
    if not quiet:
        click.echo(f"wrote {genres} genres x {clips} clips under {root}")


@main.command(short_help="Describe an audio.hdf5, audio.zarr or gtzan.hdf5.")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@handle_errors
def info(path):
    """Describe an audio.hdf5, audio.zarr or gtzan.hdf5.

    Arrays with shapes, dtypes, chunking, codec and size on disk; labels;
    sample rate; valid and missing clips; provenance (parameters, input,
    software versions, when it was made).
    """
    click.echo(describe(path))


@main.command(short_help="Plot one clip, or each genre's mean spectrum.")
@click.argument("output", type=click.Path(exists=True, path_type=Path))
@click.option("--genre", help="Genre name of the clip to show (in the clip layout: optional, a label)")
@click.option(
    "--clip", type=click.IntRange(min=0), help="Clip number within the genre (from 0); in the clip layout, its row"
)
@click.option(
    "--source",
    metavar="FILE",
    help="The clip by its file, as the output's source array names it (or its last parts: 'blues.00003.au')",
)
@click.option("--stream", type=click.IntRange(0, 1), default=0, help="0 = aligned frames, 1 = overlapped frames")
@click.option("--seconds", type=click.FloatRange(min=0.05), default=2.0, help="Length of the waveform stretch")
@click.option("--summary", is_flag=True, help="Instead of one clip: the mean CQT spectrum of each genre")
@click.option(
    "-o",
    "--output-png",
    "png",
    type=click.Path(dir_okay=False, path_type=Path),
    help="PNG file to write  [default: <genre>-<clip>.png or summary.png]",
)
@handle_errors
def show(output, genre, clip, source, stream, seconds, summary, png):
    """Plot one clip of OUTPUT (audio.hdf5 or audio.zarr): waveform, CQT (dB) and LCN.

    With --summary, plot each genre's mean CQT spectrum side by side.
    Needs matplotlib (pip install matplotlib).
    """
    if summary:
        png = png or Path("summary.png")
        show_summary(output, out=png)
    elif source is not None:
        if clip is not None or genre is not None:
            raise click.UsageError("give --source FILE, or --genre NAME and --clip N, not both")
        png = png or Path(f"{Path(source).stem}.png")
        show_clip(output, source=source, stream=stream, seconds=seconds, out=png)
    else:
        if clip is None:
            raise click.UsageError(
                "give --genre NAME and --clip N (in the clip layout --clip N alone), --source FILE, or --summary"
            )
        png = png or Path(f"{genre}-{clip}.png" if genre is not None else f"clip-{clip}.png")
        show_clip(output, genre=genre, clip=clip, stream=stream, seconds=seconds, out=png)
    click.echo(f"wrote {png}")


@main.command("config", short_help="Print the effective configuration as commented YAML.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Start from this run configuration file",
)
@param_options
@handle_errors
def config_cmd(config_file, **options):
    """Print the effective configuration as YAML with comments.

    Numerical parameters (defaults, then --config FILE, then options), the
    dataset selection, and the runtime and cluster settings from dask.config
    (packaged defaults, ~/.config/dask/*.yaml, DASK_AUDIOPREP__* variables).
    Save it, edit it, and run it with 'audioprep run --config FILE'.
    """
    settings = config.resolve_settings(options, config.load_run_config(config_file) if config_file else None)
    click.echo(config.dump_run_config(settings), nl=False)


@main.group(short_help="Inspect cluster settings (the batch job script).")
def cluster():
    """Inspect cluster settings."""


@cluster.command("job-script")
@click.option("--cluster", "kind", required=True, metavar="KIND", help=f"One of {', '.join(batch_kinds())}")
@jobqueue_options
@handle_errors
def job_script(kind, **jobqueue):
    """Print the batch script a worker job would be submitted with (nothing is submitted)."""
    settings = config.resolve_settings({**jobqueue, "cluster": kind})
    with dask.config.set(settings.runtime):
        script = make_job_script(ClusterSpec(jobqueue=settings.jobqueue))
    first, _, rest = script.partition("\n")
    click.echo(f"{first}\n{JOB_SCRIPT_NOTE}\n{rest}" if first.startswith("#!") else f"{JOB_SCRIPT_NOTE}\n{script}")


if __name__ == "__main__":  # pragma: no cover
    main()
