"""The Python entry point: :func:`preprocess`, what ``audioprep run`` runs, for notebooks and scripts.

``audioprep run`` is a thin layer over it (parse the command line, call
:func:`preprocess`, print the summary), so the two cannot drift apart.
"""

from __future__ import annotations

import sys
from pathlib import Path

from . import config
from .cluster import ClusterSpec
from .run import RunResult, run

#: Where a run with no input synthesizes its dataset and writes its output (relative to the current folder).
DEFAULT_DATA = Path("data")


def preprocess(input=None, outdir=None, *, client=None, config_file=None, overwrite: bool = False,
               progress: bool | None = None, echo=None, **options) -> RunResult:
    """Turn a dataset into ``outdir/audio.hdf5`` (and ``audio.zarr``): exactly what ``audioprep run`` does.

    Parameters
    ----------
    input : str or Path, optional
        A genres folder ``ROOT/<genre>/<file>``, a ``gtzan.hdf5`` or a manifest
        ``.csv``.  None: a synthetic 10 genres x 10 clips dataset is written to
        ``data/genres`` once, and processed.
    outdir : str or Path, optional
        The output folder (default ``data``); not inside ``input``.
    client : distributed.Client, optional
        Your own client (a ``LocalCluster``, a dask-jobqueue cluster, a remote
        scheduler).  It is used as it is and left open, with no work of this
        run left on it, when the run ends or is interrupted.  None: audioprep
        starts the cluster its settings name (a local one by default) and
        closes it at the end.
    config_file : str or Path, optional
        A run configuration, as ``audioprep config`` prints it (``--config``).
    overwrite : bool
        Replace an output made from other parameters or input.
    progress : bool, optional
        Show a progress bar (tqdm's notebook bar in Jupyter) and the status
        lines (the dashboard's link, ...); default: on in a notebook or on a
        terminal.
    echo : callable, optional
        Where status lines go (default: standard error, when ``progress``).
    **options
        Everything ``audioprep run --help`` lists, by its Python name: the
        numerical parameters (``nsamples=330000``, ``precision="exact"``,
        ``datasets="Xs,Xn"``, ``mono=True``, ...), ``skip_bad``, ``pad``,
        ``path_column``, ``label_column``, and the settings ``cluster``,
        ``workers``, ``tls``, ``dashboard_address``, ``jobs``, ``cores``,
        ``memory``, ...  Each is checked by the same rule as its option.

    Returns
    -------
    RunResult
        The numbers of ``audio.summary.json`` (``computed``, ``resumed``,
        ``bad``, ``missing``, ``seconds``, ...) and the outputs' paths
        (``hdf5_path``, ``zarr_path``); ``to_json()`` gives the summary.

    Raises
    ------
    PipelineError
        :class:`ParameterError` for a refused setting (nothing is created),
        :class:`BadInputError` for bad clips or a bad input,
        :class:`IncompleteError` for clips the run could not compute,
        :class:`StoreError` and :class:`ClusterError` for the output and the cluster.
    """
    import dask

    known = _known_options()
    unknown = sorted(set(options) - known)
    if unknown:
        import difflib

        near = {k: difflib.get_close_matches(k, sorted(known), n=1) for k in unknown}
        hints = "; ".join(f"{k}: did you mean {near[k][0]}?" if near[k] else k for k in unknown)
        raise TypeError(f"preprocess() got unknown keyword argument(s) ({hints}); 'audioprep run --help' lists "
                        "the options, by their Python names")
    file = config.load_run_config(config_file) if config_file else None
    settings = config.resolve_settings({**options, "input": input, "outdir": outdir}, file)
    if progress is None:
        progress = _interactive()
    if echo is None:
        echo = (lambda msg: print(msg, file=sys.stderr)) if progress else (lambda msg: None)
    if settings.input is None:
        genres = DEFAULT_DATA / "genres"
        if not genres.exists():
            from .synth import synth_dataset

            echo(f"no input given: synthesizing 10 genres x 10 clips into {genres}")
            synth_dataset(DEFAULT_DATA, genres=10, clips=10, progress=progress)
        settings.options["input"] = str(genres.resolve())
    settings.options["outdir"] = settings.outdir or str(DEFAULT_DATA.resolve())
    with dask.config.set(settings.runtime):  # the file's and the given settings, for this run only
        return run(settings.input, settings.outdir, settings.params, spec=ClusterSpec(jobqueue=settings.jobqueue),
                   client=client, **settings.run_kwargs(), overwrite=overwrite, progress=progress, echo=echo,
                   config_text=config.dump_run_config(settings))


def _known_options() -> set:
    import dataclasses

    from .params import Params

    return ({f.name for f in dataclasses.fields(Params)} | {o.dest for o in config.RUN_OPTIONS if not o.path}
            | {k.replace("-", "_") for k in config.RUN_SETTINGS} | set(config.JOBQUEUE_KEYS))


def _interactive() -> bool:
    """In a Jupyter kernel, or on a terminal."""
    if "ipykernel" in sys.modules:
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
