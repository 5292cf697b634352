"""Runtime configuration through ``dask.config``, run configuration files, and settings precedence.

The packaged ``audioprep.yaml`` gives the runtime defaults (each key
commented); a user's ``~/.config/dask/*.yaml`` and ``DASK_AUDIOPREP__*``
environment variables override them.  :func:`resolve_settings` is the one
place where a run's settings are put together, highest first: a command-line
option, a ``--config`` file, the dask config, the default.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import dask.config
import yaml

from . import checks
from .exceptions import ParameterError
from .inputs import FORMATS as INPUT_FORMATS
from .inputs.fma import CHOICES as FMA_SUBSETS
from .output.store import DEFAULT_FINAL, FINALS
from .params import Params

_YAML = Path(__file__).with_name("audioprep.yaml")

with open(_YAML) as _f:
    DEFAULTS = yaml.safe_load(_f)

dask.config.update_defaults(DEFAULTS)

#: The per-job settings audioprep passes to every batch scheduler (each a --option too); their defaults and
#: help are the ``audioprep.jobqueue`` section of the packaged audioprep.yaml, their rules in RUNTIME_RULES.
JOBQUEUE_KEYS = ("cores", "processes", "memory", "walltime", "queue", "account", "interface")
#: Run options that are runtime settings (keys of the ``audioprep`` namespace).
RUN_SETTINGS = ("cluster", "workers", "tls", "dashboard-address", "jobs", "adapt-min", "adapt-max")


def cluster_kinds() -> tuple:
    """The cluster kinds ``audioprep.cluster`` takes besides a scheduler address (:data:`cluster.kinds.KINDS`)."""
    from .cluster.kinds import KINDS

    return tuple(KINDS)


machine_memory, machine_cores, WORKER_BYTES = checks.machine_memory, checks.machine_cores, checks.WORKER_BYTES


def _max_workers() -> int:
    return max(1, machine_memory() // WORKER_BYTES)


#: The most batch jobs a run submits or keeps (far above any batch system's per-user limit).
MAX_JOBS = 10000
#: The most cores and worker processes of one batch job (one node).
MAX_JOB_CORES = 4096

#: The rule of every runtime setting (keys of the ``audioprep`` namespace, jobqueue ones dotted).  Every
#: value passes through its rule once, however it was given, before anything is created; each has an upper
#: bound, and says where it comes from.
RUNTIME_RULES = {
    "cluster": checks.choice_or_address(cluster_kinds),
    "workers": checks.whole(
        1,
        _max_workers,
        optional=True,
        why=lambda: (
            f"a local worker holds about {WORKER_BYTES // 2**20} MB before its first "
            f"clip, and this machine has {machine_memory() / 2**30:.1f} GiB"
        ),
    ),
    "threads-per-worker": checks.whole(1, machine_cores, why=lambda: f"this machine's {machine_cores()} cores"),
    "memory-limit": checks.size(minimum=100 * 2**20, maximum=machine_memory, auto=True, why="this machine's memory"),
    "tls": checks.flag(),
    "warm-start": checks.flag(),
    "dashboard-address": checks.host_port(),
    "connect-timeout": checks.duration(),
    "worker-timeout": checks.duration(),
    "clips-in-flight": checks.whole(1, 10**6, why="the driver and the scheduler hold every clip in flight"),
    "clips-per-task": checks.whole(1, 10000, why="a task's clips are one task's memory"),
    "allowed-failures": checks.whole(0, 1000, why="each failure costs a worker's restart"),
    "jobs": checks.whole(1, MAX_JOBS, why="more jobs than a batch system lets one user queue"),
    "adapt-min": checks.whole(0, MAX_JOBS, optional=True, why="batch jobs at once"),
    "adapt-max": checks.whole(1, MAX_JOBS, optional=True, why="batch jobs at once"),
    "jobqueue.cores": checks.whole(1, MAX_JOB_CORES, why="the cores of one node"),
    "jobqueue.processes": checks.whole(1, MAX_JOB_CORES, why="a process a core of one node"),
    "jobqueue.memory": checks.size(minimum=100 * 2**20, maximum=2**50, why="the memory of one node"),
    "jobqueue.walltime": checks.walltime(),
    "jobqueue.queue": checks.text(optional=True, why="a queue's name"),
    "jobqueue.account": checks.text(optional=True, why="an account's name"),
    "jobqueue.interface": checks.text(optional=True, why="a network interface's name"),
    "jobqueue.lifetime": checks.duration(optional=True),
    "jobqueue.lifetime-stagger": checks.duration(optional=True),
}


@dataclass(frozen=True)
class RunOption:
    """A run option that is not a numerical parameter nor a runtime setting: everything written about it.

    ``key`` is its run-configuration key and its ``--key``; ``help`` its
    one-line help (option and commented YAML); ``rule`` its check;
    ``shown`` its default as ``--help`` shows it; ``short`` a short option;
    ``path`` whether a command-line value is made absolute; ``argument``
    whether the command line takes it as an argument instead of an option.
    """

    key: str
    help: str
    rule: checks.Rule
    shown: str | None = None
    short: str | None = None
    path: bool = False
    argument: bool = False

    @property
    def dest(self) -> str:
        """Its name as a Python keyword (click's and :func:`pipeline.run.run`'s)."""
        return self.key.replace("-", "_")

    @property
    def flag(self) -> bool:
        return self.rule.metavar == "BOOLEAN"


#: The longest path a file system call takes (Linux's PATH_MAX).
PATH_MAX = 4096

#: The run options, in the order 'audioprep config' writes them.
RUN_OPTIONS = (
    RunOption(
        "input",
        "a genres folder ROOT/<genre>/<file>, a gtzan.hdf5 or a manifest .csv",
        checks.text(optional=True, most=PATH_MAX, why="PATH_MAX"),
        path=True,
        argument=True,
    ),
    RunOption(
        "outdir",
        "folder for audio.zarr, audio.hdf5 and the run summary; not inside INPUT",
        checks.text(optional=True, most=PATH_MAX, why="PATH_MAX"),
        shown="data",
        short="-o",
        path=True,
    ),
    RunOption("skip-bad", "go on without bad clips: zero them, flag them invalid, list them", checks.flag()),
    RunOption(
        "pad",
        "grid layout: allow genres with different numbers of clips, the shorter genres' last slots "
        "missing (zero, flagged invalid, listed); --layout clips needs no padding",
        checks.flag(),
    ),
    RunOption(
        "path-column",
        "a manifest's column of clip paths, relative to the manifest's folder",
        checks.text(optional=True),
        shown="the first of path, filepath, filename, file, ...",
    ),
    RunOption(
        "label-column",
        "a manifest's column of labels",
        checks.text(optional=True),
        shown="the first of label, genre, genre_top, class, category",
    ),
    RunOption(
        "format",
        f"the input's format, one of {', '.join(INPUT_FORMATS)}, where its content should not decide it",
        checks.text(optional=True),
        shown="the input's content decides",
    ),
    RunOption(
        "audio",
        "an MTG-Jamendo .tsv's audio folder, which its PATH column is relative to",
        checks.text(optional=True),
        shown="the .tsv's folder",
    ),
    RunOption(
        "output-format",
        "the finished output: hdf5 = audio.hdf5 beside audio.zarr (then needed only to resume); zarr = audio.zarr "
        "alone, consolidated and marked complete: no second copy of the arrays, one chunk a clip",
        checks.choice(tuple(FINALS), optional=True),
        shown=DEFAULT_FINAL,
    ),
    RunOption(
        "metadata",
        "FMA's tracks.csv, where it is not fma_metadata/tracks.csv beside the audio folder",
        checks.text(optional=True, most=PATH_MAX, why="PATH_MAX"),
        shown="fma_metadata/tracks.csv beside the folder",
    ),
    RunOption(
        "subset",
        f"the FMA subset to take ({', '.join(FMA_SUBSETS)}), one the folder holds",
        checks.choice(FMA_SUBSETS, optional=True),
        shown="the folder's (fma_medium: medium)",
    ),
    RunOption(
        "verify",
        "check each clip's sha1 against its FMA folder's checksums file, in the task that loads it; a "
        "mismatch makes it a bad clip",
        checks.flag(),
    ),
)


def setting(key: str, given=None):
    """The runtime setting ``audioprep.<key>``: ``given`` if it is not None, else dask.config's value."""
    if given is not None:
        return given
    return dask.config.get(f"audioprep.{key}")


def defaults_text() -> str:
    """The packaged YAML, comments included (the cluster kinds listed from their records)."""
    return _YAML.read_text().replace("{cluster kinds}", ", ".join(cluster_kinds()))


def comments() -> dict:
    """Comments of the packaged YAML, by dotted key (``audioprep.jobqueue.cores`` -> ``cores per job``)."""
    stack: list[tuple[int, str]]  # (indent, key) of the enclosing keys
    out, stack = {}, []
    for line in defaults_text().splitlines():
        if not line.strip() or line.strip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        key = line.strip().split(":", 1)[0]
        stack = [(i, k) for i, k in stack if i < indent] + [(indent, key)]
        if "#" in line:
            out[".".join(k for _, k in stack)] = line.split("#", 1)[1].strip()
    return out


# ----------------------------------------------------------------------------
# Settings precedence


@dataclass
class RunSettings:
    """A run's settings with precedence applied (see :func:`resolve_settings`).

    ``options`` holds the :data:`RUN_OPTIONS` by key; ``settings.skip_bad`` reads ``options["skip-bad"]``.
    """

    params: Params
    options: dict = field(default_factory=dict)
    runtime: dict = field(default_factory=dict)  # dotted audioprep.* keys for dask.config.set
    jobqueue: dict = field(default_factory=dict)  # explicit per-job settings (over jobqueue.<kind>.*)

    def __getattr__(self, name):
        options = self.__dict__.get("options", {})
        if name.replace("_", "-") in options:
            return options[name.replace("_", "-")]
        raise AttributeError(name)

    def run_kwargs(self) -> dict:
        """The options :func:`pipeline.run.run` takes as keywords (all but the input and the output folder)."""
        return {o.dest: self.options[o.key] for o in RUN_OPTIONS if not o.path}

    def effective_runtime(self) -> dict:
        """The whole ``audioprep`` namespace as this run sees it (for the saved configuration)."""
        with dask.config.set(self.runtime):
            out = copy.deepcopy(dict(dask.config.get("audioprep")))
        out.setdefault("jobqueue", {}).update(self.jobqueue)
        return out


def resolve_settings(options: dict | None = None, file: dict | None = None) -> RunSettings:
    """Put a run's settings together: option > ``--config`` file > dask config > default.

    Parameters
    ----------
    options : dict
        Command-line values by the names click gives them (``lcn_sigma``,
        ``dashboard_address``, ``cores``, ``input``, ``skip_bad`` ...); None
        means "not given".
    file : dict
        A run configuration as :func:`load_run_config` returns it.
    """
    options, file = options or {}, file or {}
    values = dict(file.get("params") or {})
    for f in dataclasses.fields(Params):
        if options.get(f.name) is not None:
            values[f.name] = options[f.name]
    file_runtime = file.get("audioprep") or {}
    runtime = _dotted({k: v for k, v in file_runtime.items() if k != "jobqueue"}, "audioprep")
    jobqueue = {k: v for k, v in (file_runtime.get("jobqueue") or {}).items() if v is not None}
    runtime.update(
        _dotted(
            {k: v for k, v in (file_runtime.get("jobqueue") or {}).items() if k not in JOBQUEUE_KEYS},
            "audioprep.jobqueue",
        )
    )
    for key in RUN_SETTINGS:
        if options.get(key.replace("-", "_")) is not None:
            runtime[f"audioprep.{key}"] = options[key.replace("-", "_")]
    for key in JOBQUEUE_KEYS:
        if options.get(key) is not None:
            jobqueue[key] = options[key]
    runtime, jobqueue = check_runtime(runtime, jobqueue)
    run = {}
    for o in RUN_OPTIONS:
        given = options.get(o.dest)
        given = str(given) if isinstance(given, Path) else given
        if given is not None:
            value = o.rule(o.key, given, f"--{o.key}" if not o.argument else o.key.upper())
            run[o.key] = str(Path(value).resolve()) if o.path else value
        else:
            run[o.key] = file.get(o.key, False if o.flag else None)
    return RunSettings(
        params=Params.from_dict(values),
        options=run,
        runtime=runtime,
        jobqueue={k: v for k, v in jobqueue.items() if k in JOBQUEUE_KEYS},
    )


def _where(key: str) -> str:
    """How a runtime setting is given, for its messages: the option (if any) and the config key."""
    leaf = key.rsplit(".", 1)[-1]
    option = f"--{leaf} or " if leaf in RUN_SETTINGS or leaf in JOBQUEUE_KEYS else ""
    return f"{option}audioprep.{key}"


def check_runtime(runtime: dict, jobqueue: dict) -> tuple:
    """Check every runtime setting as the run will see it (dask config, ``runtime`` over it, ``jobqueue``
    over both); return ``(runtime, jobqueue)`` holding the normalized values.

    Raises :class:`ParameterError` for an unknown key of the ``audioprep``
    namespace (with the nearest known one) and for a value its rule refuses.
    """
    import difflib

    _check_namespace()
    with dask.config.set(runtime):
        ns = copy.deepcopy(dict(dask.config.get("audioprep")))
    nested = ns.pop("jobqueue", None) or {}
    if not isinstance(nested, dict):
        raise ParameterError(
            f"audioprep.jobqueue={nested!r} must be a mapping of per-job settings ({', '.join(JOBQUEUE_KEYS)}, ...)"
        )
    given = {k.replace("_", "-"): v for k, v in ns.items()}
    given.update({f"jobqueue.{k.replace('_', '-')}": v for k, v in nested.items()})
    given.update({f"jobqueue.{k}": v for k, v in jobqueue.items()})
    for key in given:
        if key == "params" or key.startswith("params."):
            raise ParameterError(
                "audioprep.params is not a setting: the numerical parameters (nsamples, sr, ...) are "
                "given as options (--nsamples 100) or in the params: section of a --config file "
                "(as 'audioprep config' prints), not in the dask config or DASK_AUDIOPREP__* "
                "variables"
            )
        if key not in RUNTIME_RULES:
            near = difflib.get_close_matches(key, list(RUNTIME_RULES), n=1)
            hint = f"did you mean audioprep.{near[0]}? " if near else ""
            raise ParameterError(
                f"audioprep.{key} is not a setting; {hint}the settings are listed by 'audioprep config'"
            )
    checked = {key: rule(key.rsplit(".", 1)[-1], given.get(key), _where(key)) for key, rule in RUNTIME_RULES.items()}
    lo, hi = checked["adapt-min"], checked["adapt-max"]
    if lo is not None and hi is not None and lo > hi:
        raise ParameterError(f"adapt-min={lo} must not exceed adapt-max={hi} (--adapt-min, --adapt-max)")
    runtime = {f"audioprep.{key}": value for key, value in checked.items()}
    jobqueue = {k: checked[f"jobqueue.{k}"] for k in jobqueue}
    return runtime, jobqueue


def _check_namespace() -> None:
    """Refuse a ``DASK_AUDIOPREP=5`` (or ``audioprep: 5`` in a dask config file), and the same of its
    ``jobqueue`` section: dask.config would drop it without a word, under the packaged defaults."""
    sources = [("the environment", dask.config.collect_env())]
    sources += [
        ("a dask config file in " + str(path), found)
        for path in dask.config.paths
        for found in dask.config.collect_yaml(paths=[path])
        if isinstance(found, dict)
    ]
    for where, found in sources:
        ns = found.get("audioprep", {})
        jobqueue = ns.get("jobqueue", {}) if isinstance(ns, dict) else {}
        bad = (
            ("audioprep", ns, "WORKERS=4")
            if not isinstance(ns, dict)
            else ("audioprep.jobqueue", jobqueue, "JOBQUEUE__CORES=4")
            if not isinstance(jobqueue, dict)
            else None
        )
        if bad is None:
            continue
        key, value, example = bad
        given = (
            f"DASK_{key.upper().replace('.', '__')}={checks.shown(value)}"
            if where == "the environment"
            else f"{key}: {checks.shown(value)} in {where}"
        )
        raise ParameterError(
            f"{given} is not a setting: {key} holds settings by name (e.g. DASK_AUDIOPREP__"
            f"{example}, or a mapping in a dask config file), as 'audioprep config' lists them"
        )


def _dotted(d: dict, prefix: str) -> dict:
    """A nested mapping as dotted keys: dotted keys merge into dask.config, a dict would replace a namespace."""
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(_dotted(value, f"{prefix}.{key}"))
        else:
            out[f"{prefix}.{key}"] = value
    return out


# ----------------------------------------------------------------------------
# Run configuration files ('audioprep config', 'audioprep run --config')


def _scalar(v) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(str(x) for x in v) + "]"
    return yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip()


def dump_run_config(settings: RunSettings) -> str:
    """A run configuration as YAML, with a comment on every key."""
    notes = comments()
    param_help = {f.name: f.metadata["help"] for f in dataclasses.fields(Params)}
    lines = [
        "# audioprep run configuration. 'audioprep run --config FILE' repeats the run;",
        "# command-line options override what is written here.",
    ]

    def emit(key, value, comment, indent):
        pad = " " * indent
        text = f"{pad}{key}:" if isinstance(value, dict) else f"{pad}{key}: {_scalar(value)}"
        lines.append(text.ljust(40) + (f"  # {comment}" if comment else ""))
        return isinstance(value, dict)

    for o in RUN_OPTIONS:
        emit(o.key, settings.options[o.key], o.help, 0)
    lines.append(
        "params:".ljust(40) + "  # numerical parameters: these decide the output ('audioprep run --help' explains each)"
    )
    given = settings.params.to_dict()  # (the grid's records omit layout, to keep its outputs' identity)
    for key in param_help:
        if key in given or key == "layout":
            emit(key, given.get(key, getattr(settings.params, key)), param_help[key], 2)
    lines.append("audioprep:".ljust(40) + "  # runtime and cluster settings (dask.config namespace 'audioprep')")

    def walk(d, prefix, indent):
        for key, value in d.items():
            dotted = f"{prefix}.{key}"
            if emit(key, value, notes.get(dotted, ""), indent):
                walk(value, dotted, indent + 2)

    walk(settings.effective_runtime(), "audioprep", 2)
    return "\n".join(lines) + "\n"


def load_run_config(path) -> dict:
    """Read a run configuration file; raise ParameterError naming what is wrong."""
    try:
        with open(path) as f:
            cfg = yaml.safe_load(f) or {}
    except OSError as e:
        raise ParameterError(f"--config {path}: cannot be read ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise ParameterError(
            f"--config {path}: not a text file (byte {e.start} is not UTF-8); give a YAML file "
            "as 'audioprep config' prints"
        ) from None
    except yaml.YAMLError as e:
        raise ParameterError(f"--config {path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(cfg, dict):
        raise ParameterError(f"--config {path}: must be a mapping of keys to values, as 'audioprep config' prints")
    known = (*(o.key for o in RUN_OPTIONS), "params", "audioprep")
    unknown = sorted(set(cfg) - set(known))
    if unknown:
        raise ParameterError(f"--config {path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(known)}")
    for key in ("params", "audioprep"):
        if cfg.get(key) is not None and not isinstance(cfg[key], dict):
            raise ParameterError(
                f"--config {path}: {key}={checks.shown(cfg[key])} must be a mapping of keys to "
                "values, "
                "as 'audioprep config' prints"
            )
    for o in RUN_OPTIONS:
        if o.key in cfg:
            cfg[o.key] = o.rule(o.key, cfg[o.key], f"--{o.key}" if not o.argument else o.key.upper())
    return cfg
