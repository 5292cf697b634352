"""The ``audioprep`` command line: each command parses, then calls the library."""

from __future__ import annotations

import functools
import logging
import sys
from pathlib import Path

import click

from . import __version__
from .exceptions import BadInputError, PipelineError
from .params import Params

DEFAULT_DATA = Path("data")
_P = Params()


def _fail(exc: BaseException) -> None:
    for line in str(exc).splitlines() or [type(exc).__name__]:
        click.echo(f"error: {line}", err=True)
    sys.exit(3 if isinstance(exc, BadInputError) else 1)


def handle_errors(fn):
    """Turn the project's errors into one line each and a non-zero exit, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except PipelineError as e:
            _fail(e)
        except KeyboardInterrupt:
            click.echo("interrupted: finished clips are kept; run the same command again to resume", err=True)
            sys.exit(130)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as e:
            import os

            if os.environ.get("AUDIOPREP_DEBUG") == "1":
                raise
            click.echo(f"error: unexpected {type(e).__name__}: {e}; this is a bug in audioprep: please report it "
                       "with the traceback that AUDIOPREP_DEBUG=1 shows", err=True)
            sys.exit(70)

    return wrapper


def param_options(fn):
    """The numerical parameters of SPEC sections 1 to 4 as options (default: the SPEC's)."""
    opts = [
        click.option("--sr", type=click.IntRange(min=1), help=f"Sample rate in Hz  [default: {_P.sr}]"),
        click.option("--nsamples", type=click.IntRange(min=1),
                     help=f"Samples kept per clip (longer clips are truncated)  [default: {_P.nsamples}]"),
        click.option("--na", type=int, help=f"Samples per frame, also the CQT hop  [default: {_P.na}]"),
        click.option("--ns", type=int, help=f"CQT bins  [default: {_P.ns}]"),
        click.option("--octaves", "n_octaves", type=int, help=f"Octaves the CQT bins span  [default: {_P.n_octaves}]"),
        click.option("--fmin", help="Lowest CQT bin, in Hz or as a note name  [default: C2 = 65.406 Hz]"),
        click.option("--lcn-size", type=int, help=f"LCN window taps (odd)  [default: {_P.lcn_size}]"),
        click.option("--lcn-sigma", type=float, help=f"LCN window standard deviation in taps  [default: {_P.lcn_sigma}]"),
        click.option("--lcn-log/--no-lcn-log", default=None, help="Normalize log(1 + S) instead of S  [default: off]"),
        click.option("--resample/--no-resample", default=None,
                     help="Resample clips at another rate to --sr instead of rejecting them  [default: off]"),
        click.option("--mono/--no-mono", default=None,
                     help="Down-mix multi-channel clips instead of rejecting them  [default: off]"),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


JOBQUEUE_OPTIONS = ("cores", "processes", "memory", "walltime", "queue", "account", "interface")


def jobqueue_options(fn):
    """Per-job settings of batch-job clusters (override dask.config's jobqueue settings)."""
    opts = [
        click.option("--cores", type=click.IntRange(min=1), help="Cores per batch job  [default: 1]"),
        click.option("--processes", type=click.IntRange(min=1), help="Worker processes per batch job  [default: 1]"),
        click.option("--memory", help="Memory per batch job, e.g. 4GiB  [default: 2GiB]"),
        click.option("--walltime", help="Walltime per batch job, e.g. 02:00:00  [default: 01:00:00]"),
        click.option("--queue", help="Queue or partition  [default: the scheduler's]"),
        click.option("--account", help="Account or project to charge  [default: none]"),
        click.option("--interface", help="Network interface for workers and scheduler, e.g. ib0  [default: default route]"),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


PARAM_KEYS = ("sr", "nsamples", "na", "ns", "n_octaves", "fmin", "lcn_size", "lcn_sigma", "lcn_log",
              "resample", "mono", "datasets")


def params_from(kwargs: dict, base: dict | None = None) -> Params:
    values = dict(base or {})
    for key in PARAM_KEYS:
        if kwargs.get(key) is not None:
            values[key] = kwargs[key]
    return Params.from_dict(values)


def _setup_logging(verbose: int, quiet: bool) -> None:
    """audioprep's own messages at INFO; Dask's only with -v (workers inherit the setting)."""
    import os

    dask_level = ["error", "info", "debug"][min(verbose, 2)]
    # Set before distributed is imported so the spawned worker processes inherit it.
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", dask_level)
    import dask.config

    dask.config.set({"logging.distributed": dask_level})
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("distributed").setLevel(level if verbose else logging.ERROR)


def _progress_enabled(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True,
                             "max_content_width": 100})
@click.version_option(__version__, prog_name="audioprep")
def main():
    """audioprep: turn a music-audio dataset (GTZAN-style) into training arrays.

    Frames, constant-Q spectrograms and their local contrast normalization,
    computed by a Dask graph (locally or on SLURM/PBS/SGE/...) into audio.zarr,
    then consolidated into audio.hdf5.  Start with 'audioprep run' (no
    arguments): it synthesizes a small dataset under data/ and processes it.
    """


@main.command()
@click.argument("input", required=False, type=click.Path(path_type=Path))
@click.option("-o", "--outdir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_DATA,
              help="Folder for audio.zarr, audio.hdf5 and the run summary")
@click.option("--datasets", help="Datasets to write, comma-separated  [default: Xa,Xs,Xn]")
@param_options
@click.option("--cluster", help="local, slurm, pbs, sge, lsf, htcondor, or tcp://HOST:PORT of a running "
                                "scheduler  [default: local, or audioprep.cluster in dask config]")
@click.option("--workers", type=click.IntRange(min=1), help="Local worker processes  [default: one per core]")
@click.option("--dashboard-address", help="Where the dashboard listens  [default: 127.0.0.1:8787]")
@jobqueue_options
@click.option("--jobs", type=click.IntRange(min=1), help="Batch jobs to start (jobqueue clusters)  [default: 2]")
@click.option("--adapt-min", type=click.IntRange(min=0), help="Adaptive scaling: fewest jobs (with --adapt-max)")
@click.option("--adapt-max", type=click.IntRange(min=1), help="Adaptive scaling: most jobs")
@click.option("--skip-bad", is_flag=True, help="Go on without bad clips: zero them, flag them invalid, list them")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs made from other parameters or input")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Run configuration file (as 'audioprep config' prints, or OUTDIR/audio.config.yaml of an "
                   "earlier run); options given here override it")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or status lines")
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug)")
@click.pass_context
@handle_errors
def run(ctx, input, outdir, quiet, verbose, config_file, **kw):
    """Process INPUT (a genres folder or a gtzan.hdf5) into OUTDIR/audio.hdf5.

    With no INPUT, a synthetic 10 genres x 10 clips dataset is written to
    data/genres (once) and processed.  A run interrupted at any point resumes
    where it stopped when the same command is run again.  The run's
    configuration is saved as OUTDIR/audio.config.yaml; '--config' repeats it.
    """
    import dask.config

    from .cluster import ClusterSpec
    from .config import dump_run_config, load_run_config, make_run_config, runtime_overrides
    from .run import run as run_pipeline

    _setup_logging(verbose, quiet)
    cfg = load_run_config(config_file) if config_file else {}
    params = params_from(kw, cfg.get("params"))
    if input is None and cfg.get("input"):
        input = Path(cfg["input"])
    if ctx.get_parameter_source("outdir") == click.core.ParameterSource.DEFAULT and cfg.get("outdir"):
        outdir = Path(cfg["outdir"])
    kw["skip_bad"] = kw["skip_bad"] or bool(cfg.get("skip-bad", False))
    progress = _progress_enabled(quiet)
    say = (lambda m: None) if quiet else (lambda m: click.echo(m, err=True))
    if input is None:
        from .synth import synth_dataset

        genres = DEFAULT_DATA / "genres"
        if not genres.exists():
            say(f"no INPUT given: synthesizing 10 genres x 10 clips into {genres}")
            synth_dataset(DEFAULT_DATA, genres=10, clips=10, progress=progress)
        input = genres
    # A --config file's runtime settings apply for this run only, under the options given here.
    with dask.config.set(runtime_overrides(cfg)):
        spec = ClusterSpec(kind=kw["cluster"], workers=kw["workers"], dashboard_address=kw["dashboard_address"],
                           jobs=kw["jobs"], adapt_min=kw["adapt_min"], adapt_max=kw["adapt_max"],
                           jobqueue={k: kw[k] for k in JOBQUEUE_OPTIONS})
        config_text = dump_run_config(make_run_config(params, input=input, outdir=outdir, skip_bad=kw["skip_bad"],
                                                      runtime=_runtime_settings(spec)))
        res = run_pipeline(input, outdir, params, spec=spec, skip_bad=kw["skip_bad"], overwrite=kw["overwrite"],
                           progress=progress, echo=say, config_text=config_text)
    _print_summary(res, quiet)


def _runtime_settings(spec) -> dict:
    """The effective 'audioprep' runtime settings, command-line overrides applied."""
    import copy

    import dask.config

    runtime = copy.deepcopy(dict(dask.config.get("audioprep")))
    for key, value in (("cluster", spec.kind), ("workers", spec.workers),
                       ("dashboard-address", spec.dashboard_address), ("jobs", spec.jobs),
                       ("adapt-min", spec.adapt_min), ("adapt-max", spec.adapt_max)):
        if value is not None:
            runtime[key] = value
    for key, value in spec.jobqueue.items():
        if value is not None:
            runtime.setdefault("jobqueue", {})[key] = value
    return runtime


def _print_summary(res, quiet: bool) -> None:
    if res.up_to_date:
        click.echo(f"{res.hdf5_path} is up to date (same input and parameters): nothing to do")
        return
    if res.bad:
        click.echo(f"{len(res.bad)} bad clip(s), zero-filled and flagged invalid:", err=True)
        for line in res.bad:
            click.echo(f"  {line}", err=True)
    if quiet:
        return
    mb = res.bytes_written / 1e6
    click.echo(f"{res.computed} clips computed ({res.resumed} resumed, {len(res.bad)} bad) of {res.clips} "
               f"in {res.seconds:.1f} s ({res.clips_per_second:.2f} clips/s); {mb:.1f} MB of arrays written; "
               f"{res.hdf5_path}: {res.hdf5_bytes / 1e6:.1f} MB")


@main.command()
@click.argument("genres_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("gtzan.hdf5"),
              help="The gtzan.hdf5 to write")
@click.option("--sr", type=click.IntRange(min=1), help=f"Sample rate in Hz  [default: {_P.sr}]")
@click.option("--nsamples", type=click.IntRange(min=1), help=f"Samples kept per clip  [default: {_P.nsamples}]")
@click.option("--resample/--no-resample", default=None, help="Resample clips at another rate  [default: off]")
@click.option("--mono/--no-mono", default=None, help="Down-mix multi-channel clips  [default: off]")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar")
@handle_errors
def ingest(genres_dir, output, overwrite, quiet, **kw):
    """Convert GENRES_DIR (GENRES_DIR/<genre>/<file>) into a gtzan.hdf5.

    One float32 dataset per genre of shape (Nsamples, Nclips), one column per
    clip, with attributes Ngenres, Nclips, sr and Nsamples.
    """
    from .ingest import ingest as do_ingest

    out = do_ingest(genres_dir, output, params_from(kw), overwrite=overwrite,
                    progress=_progress_enabled(quiet))
    if not quiet:
        click.echo(f"wrote {out}")


@main.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--genres", type=click.IntRange(1, 1000), default=10, help="Number of genres")
@click.option("--clips", type=click.IntRange(1, 100000), default=100, help="Clips per genre")
@click.option("--seconds", type=click.FloatRange(min=0.1), default=None,
              help="Length of every clip  [default: drawn from GTZAN's 660000 to 675808 samples]")
@click.option("--seed", type=int, default=0, help="Random seed; the same seed gives the same files")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar")
@handle_errors
def synth(out_dir, genres, clips, seconds, seed, quiet):
    """Write a deterministic synthetic dataset to OUT_DIR/genres/<genre>/<genre>.000NN.au.

    16-bit PCM at 22050 Hz; each genre has its own tempo, register, harmony and
    percussion.  Existing files are kept.
    """
    from .synth import synth_dataset

    root = synth_dataset(out_dir, genres=genres, clips=clips, seconds=seconds, seed=seed,
                         progress=_progress_enabled(quiet))
    if not quiet:
        click.echo(f"wrote {genres} genres x {clips} clips under {root}")


@main.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@handle_errors
def info(path):
    """Describe an audio.hdf5, audio.zarr or gtzan.hdf5.

    Arrays with shapes, dtypes, chunking, codec and size on disk; labels;
    sample rate; valid and missing clips; provenance (parameters, input,
    software versions, when it was made).
    """
    from .io import describe

    click.echo(describe(path))


@main.command()
@click.argument("output", type=click.Path(exists=True, path_type=Path))
@click.option("--genre", help="Genre name of the clip to show")
@click.option("--clip", type=click.IntRange(min=0), help="Clip number within the genre (from 0)")
@click.option("--stream", type=click.IntRange(0, 1), default=0, help="0 = aligned frames, 1 = overlapped frames")
@click.option("--seconds", type=click.FloatRange(min=0.05), default=2.0, help="Length of the waveform stretch")
@click.option("--summary", is_flag=True, help="Instead of one clip: the mean CQT spectrum of each genre")
@click.option("-o", "--output-png", "png", type=click.Path(dir_okay=False, path_type=Path),
              help="PNG file to write  [default: <genre>-<clip>.png or summary.png]")
@handle_errors
def show(output, genre, clip, stream, seconds, summary, png):
    """Plot one clip of OUTPUT (audio.hdf5 or audio.zarr): waveform, CQT (dB) and LCN.

    With --summary, plot each genre's mean CQT spectrum side by side.
    Needs matplotlib (pip install 'audioprep[plot]').
    """
    from .plot import show_clip, show_summary

    if summary:
        png = png or Path("summary.png")
        show_summary(output, out=png)
    else:
        if genre is None or clip is None:
            raise click.UsageError("give --genre NAME and --clip N, or --summary")
        png = png or Path(f"{genre}-{clip}.png")
        show_clip(output, genre=genre, clip=clip, stream=stream, seconds=seconds, out=png)
    click.echo(f"wrote {png}")


@main.command("config")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Start from this run configuration file")
@click.option("--datasets", help="Datasets to write, comma-separated  [default: Xa,Xs,Xn]")
@param_options
@handle_errors
def config_cmd(config_file, **kw):
    """Print the effective configuration as YAML with comments.

    Numerical parameters (defaults, then --config FILE, then options), the
    dataset selection, and the runtime and cluster settings from dask.config
    (packaged defaults, ~/.config/dask/*.yaml, DASK_AUDIOPREP__* variables).
    Save it, edit it, and run it with 'audioprep run --config FILE'.
    """
    import dask.config

    from .config import dump_run_config, load_run_config, make_run_config, runtime_overrides

    cfg = load_run_config(config_file) if config_file else {}
    params = params_from(kw, cfg.get("params"))
    with dask.config.set(runtime_overrides(cfg)):
        text = dump_run_config(make_run_config(params, input=cfg.get("input"), outdir=cfg.get("outdir"),
                                               skip_bad=cfg.get("skip-bad", False)))
    click.echo(text, nl=False)


@main.group()
def cluster():
    """Inspect cluster settings."""


@cluster.command("job-script")
@click.option("--cluster", "kind", required=True, help="slurm, pbs, sge, lsf or htcondor")
@jobqueue_options
@handle_errors
def job_script(kind, **jobqueue):
    """Print the batch script a worker job would be submitted with (nothing is submitted)."""
    from .cluster import ClusterSpec, job_script as make_script

    click.echo(make_script(ClusterSpec(kind=kind, jobqueue=jobqueue)))


if __name__ == "__main__":  # pragma: no cover
    main()
