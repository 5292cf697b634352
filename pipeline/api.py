"""The Python entry point: :func:`preprocess`, what ``audioprep run`` runs, for notebooks and scripts.

``audioprep run`` is a thin layer over it (parse the command line, call
:func:`preprocess`, print the summary), so the two cannot drift apart.
"""

from __future__ import annotations

import functools
import re
import sys
from pathlib import Path

from . import config
from .cluster import ClusterSpec
from .exceptions import BadInputError, PipelineError, Problem
from .run import RunResult, run

#: Where a run with no input synthesizes its dataset and writes its output (relative to the current folder).
DEFAULT_DATA = Path("data")


def preprocess(
    input=None,
    outdir=None,
    *,
    client=None,
    config_file=None,
    overwrite: bool = False,
    progress: bool | None = None,
    echo=None,
    **options,
) -> RunResult:
    """Turn a dataset into ``outdir/audio.hdf5`` and ``audio.zarr`` (or, with ``output_format="zarr"``, into
    ``audio.zarr`` alone): exactly what ``audioprep run`` does.

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
        ``path_column``, ``label_column``, ``format`` (``"fma"``,
        ``"folder"``, ``"jamendo"``, ``"manifest"`` or ``"hdf5"``: the
        input's format, which its content decides otherwise), ``audio``
        (MTG-Jamendo's audio folder), ``metadata`` (FMA's ``tracks.csv``),
        ``subset`` (the FMA subset to take), ``verify`` (check each clip's
        sha1 against FMA's ``checksums``, in the workers), ``output_format``
        (``"hdf5"``, the default, or ``"zarr"``: the Zarr store alone is the
        output, no ``audio.hdf5``), and the settings ``cluster``,
        ``workers``, ``tls``, ``dashboard_address``, ``jobs``, ``cores``,
        ``memory``, ...  Each is checked by the same rule as its option.

    Returns
    -------
    RunResult
        The numbers of ``audio.summary.json`` (``computed``, ``resumed``,
        ``bad``, ``missing``, ``seconds``, ...) and the outputs' paths
        (``output_path``: ``audio.hdf5``, or ``audio.zarr`` with ``output_format="zarr"``; ``zarr_path``);
        ``to_json()`` gives the summary.

    Raises
    ------
    PipelineError
        :class:`ParameterError` for a refused setting (nothing is created),
        :class:`BadInputError` for bad clips or a bad input,
        :class:`IncompleteError` for clips the run could not compute,
        :class:`StoreError` and :class:`ClusterError` for the output and the cluster.
        Their messages name keyword arguments (``pad_short=True``) where the
        command line's name options (``--pad-short``).
    """
    try:
        return command_line_run(
            input,
            outdir,
            client=client,
            config_file=config_file,
            overwrite=overwrite,
            progress=progress,
            echo=echo,
            **options,
        )
    except PipelineError as e:
        raise _in_python_words(e) from None  # the same error, naming keyword arguments where the CLI names --flags


def command_line_run(
    input=None,
    outdir=None,
    *,
    client=None,
    config_file=None,
    overwrite: bool = False,
    progress: bool | None = None,
    echo=None,
    **options,
) -> RunResult:
    """What :func:`preprocess` runs, its messages in the command line's words (``--pad-short``): ``audioprep
    run`` calls it."""
    import dask

    known = _known_options()
    unknown = sorted(set(options) - known)
    if unknown:
        import difflib

        near = {k: difflib.get_close_matches(k, sorted(known), n=1) for k in unknown}
        hints = "; ".join(f"{k}: did you mean {near[k][0]}?" if near[k] else k for k in unknown)
        raise TypeError(
            f"preprocess() got unknown keyword argument(s) ({hints}); 'audioprep run --help' lists "
            "the options, by their Python names"
        )
    if client is not None:
        cluster_settings = sorted(
            k for k in (*config.RUN_SETTINGS, *config.JOBQUEUE_KEYS) if options.get(k.replace("-", "_")) is not None
        )
        if cluster_settings:
            from .exceptions import ParameterError

            given = ", ".join(f"{k}={options[k.replace('-', '_')]!r}" for k in cluster_settings)
            raise ParameterError(
                f"{given} with client=: the run uses the workers of the client given, and these "
                "settings are for a cluster audioprep starts; leave them out, or the client"
            )
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
        return run(
            settings.input,
            settings.outdir,
            settings.params,
            spec=ClusterSpec(jobqueue=settings.jobqueue),
            client=client,
            **settings.run_kwargs(),
            overwrite=overwrite,
            progress=progress,
            echo=echo,
            config_text=config.dump_run_config(settings),
        )


def _known_options() -> set:
    import dataclasses

    from .params import Params

    return (
        {f.name for f in dataclasses.fields(Params)}
        | {o.dest for o in config.RUN_OPTIONS if not o.path}
        | {k.replace("-", "_") for k in config.RUN_SETTINGS}
        | set(config.JOBQUEUE_KEYS)
    )


_FLAG = re.compile(r"(?<![\w-])--(no-)?([a-z][a-z0-9-]*)")
#: An option's value as a message gives it: a number (``--fmin 65.406``) or a note name (``--fmin C2``).
_VALUE = re.compile(r"(?<![\w-])--([a-z][a-z0-9-]*) (-?\d+(?:\.\d+)?(?:e[+-]?\d+)?|[A-G][#b]?-?\d)(?=[\s,;).]|$)")


@functools.lru_cache(maxsize=1)
def _keywords() -> dict:
    """``{option: (keyword, is_flag)}`` for every option ``audioprep run`` has: ``"pad-short": ("pad_short",
    True)``."""
    import dataclasses

    from .params import Params, option_name

    names = {"overwrite": ("overwrite", True), "config": ("config_file", False)}
    for f in dataclasses.fields(Params):
        names[option_name(f)[2:]] = (f.name, isinstance(f.default, bool))
    for o in config.RUN_OPTIONS:
        names[o.key] = (o.dest, o.flag)
    for key, rule in config.RUNTIME_RULES.items():
        leaf = key.rsplit(".", 1)[-1]
        names.setdefault(leaf, (leaf.replace("-", "_"), rule.metavar == "BOOLEAN"))
    return names


@functools.lru_cache(maxsize=1)
def _choices() -> tuple:
    """A pattern of a choice option followed by one of its values (``--layout clips``), and ``{"layout clips":
    "layout='clips'", ...}``: the same in Python."""
    import dataclasses

    from .params import Params, choice_values, option_name

    fields = dataclasses.fields(Params)
    words = {f"{option_name(f)[2:]} {v}": f"{f.name}={v!r}" for f in fields for v in choice_values(f)}
    return re.compile(r"(?<![\w-])--(" + "|".join(map(re.escape, words)) + r")(?![\w-])"), words


def python_words(text: str) -> str:
    """A message of the command line in Python's words: ``use --mono --pad-short`` -> ``use mono=True,
    pad_short=True``; ``a smaller --nsamples`` -> ``a smaller nsamples``; ``-o DIR`` -> ``outdir=DIR``."""
    names = _keywords()

    def keyword(m):
        if m.group(2) not in names:
            return m.group(0)
        dest, flag = names[m.group(2)]
        return f"{dest}={m.group(1) is None}" if flag else dest

    def valued(m):
        if m.group(1) not in names or names[m.group(1)][1]:
            return m.group(0)
        value = m.group(2)
        return f"{names[m.group(1)][0]}={value if value[0] in '-0123456789' else repr(value)}"

    text = _VALUE.sub(valued, text)  # --fmin 65.406 -> fmin=65.406, --fmin C2 -> fmin='C2'
    choice, words = _choices()
    text = choice.sub(lambda m: words[m.group(1)], text)  # --layout clips -> layout='clips'
    text = _FLAG.sub(keyword, text)
    text = re.sub(r"(=True|=False) (?=\w+=(?:True|False))", r"\1, ", text)
    text = text.replace("or -o another folder", "or another outdir")
    return re.sub(r"(?<![\w-])-o (?=\S)", "outdir=", text)


def _in_python_words(e: PipelineError) -> PipelineError:
    """``e`` itself, its message (and a :class:`BadInputError`'s problems and hint) in :func:`python_words`."""
    if isinstance(e, BadInputError):
        problems = [Problem(p.path, python_words(p.reason), p.fixes) for p in e.problems]
        BadInputError.__init__(e, problems, python_words(e.template), fixes=e.fixes, python=True)  # from data
    else:
        e.args = tuple(python_words(a) if isinstance(a, str) else a for a in e.args)
    return e


def _interactive() -> bool:
    """In a Jupyter kernel, or on a terminal."""
    if "ipykernel" in sys.modules:
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
