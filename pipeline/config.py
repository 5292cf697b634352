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
from .params import Params

_YAML = Path(__file__).with_name("audioprep.yaml")

with open(_YAML) as _f:
    DEFAULTS = yaml.safe_load(_f)

dask.config.update_defaults(DEFAULTS)

#: The per-job settings audioprep sets for every batch scheduler, with their types; their
#: defaults and help are the ``audioprep.jobqueue`` section of the packaged audioprep.yaml.
JOBQUEUE_KEYS = {"cores": int, "processes": int, "memory": str, "walltime": str, "queue": str, "account": str,
                 "interface": str}
#: Run options that are runtime settings (keys of the ``audioprep`` namespace).
RUN_SETTINGS = ("cluster", "workers", "tls", "dashboard-address", "jobs", "adapt-min", "adapt-max")


def cluster_kinds() -> tuple:
    """The cluster kinds ``audioprep.cluster`` takes besides a scheduler address (:data:`cluster.kinds.KINDS`)."""
    from .cluster.kinds import KINDS

    return tuple(KINDS)


#: The rule of every runtime setting (keys of the ``audioprep`` namespace, jobqueue ones dotted).  Every
#: value passes through its rule once, however it was given, before anything is created.
RUNTIME_RULES = {
    "cluster": checks.choice_or_address(cluster_kinds),
    "workers": checks.whole(1, optional=True),
    "threads-per-worker": checks.whole(1),
    "memory-limit": checks.size(minimum=100 * 2**20, auto=True),
    "tls": checks.flag(),
    "dashboard-address": checks.host_port(),
    "connect-timeout": checks.duration(),
    "worker-timeout": checks.duration(),
    "clips-in-flight": checks.whole(1),
    "clips-per-task": checks.whole(1, 10000),
    "allowed-failures": checks.whole(0, 1000),
    "jobs": checks.whole(1),
    "adapt-min": checks.whole(0, optional=True),
    "adapt-max": checks.whole(1, optional=True),
    "jobqueue.cores": checks.whole(1),
    "jobqueue.processes": checks.whole(1),
    "jobqueue.memory": checks.size(minimum=100 * 2**20),
    "jobqueue.walltime": checks.walltime(),
    "jobqueue.queue": checks.text(optional=True),
    "jobqueue.account": checks.text(optional=True),
    "jobqueue.interface": checks.text(optional=True),
    "jobqueue.lifetime": checks.duration(optional=True),
    "jobqueue.lifetime-stagger": checks.duration(optional=True),
}
#: The top-level keys of a run configuration file, with their comments.
RUN_HELP = {
    "input": "a genres folder ROOT/<genre>/<file>, a gtzan.hdf5 or a manifest .csv",
    "outdir": "folder of audio.zarr, audio.hdf5 and the run summary",
    "skip-bad": "go on without bad clips (zero-filled, flagged invalid)",
    "pad": "allow genres of different sizes (the missing slots are flagged invalid)",
    "path-column": "a manifest's column of clip paths (null = path, filename, file, ...)",
    "label-column": "a manifest's column of labels (null = label, genre, ...)",
}
#: The run options that are top-level keys of a run configuration (RunSettings fields).
RUN_KEYS = tuple(RUN_HELP)
#: The rules of the top-level keys of a run configuration.
RUN_RULES = {"input": checks.text(optional=True), "outdir": checks.text(optional=True), "skip-bad": checks.flag(),
             "pad": checks.flag(), "path-column": checks.text(optional=True),
             "label-column": checks.text(optional=True)}


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
    """A run's settings with precedence applied (see :func:`resolve_settings`)."""

    params: Params
    input: str | None = None
    outdir: str | None = None
    skip_bad: bool = False
    pad: bool = False
    path_column: str | None = None
    label_column: str | None = None
    runtime: dict = field(default_factory=dict)   # dotted audioprep.* keys for dask.config.set
    jobqueue: dict = field(default_factory=dict)  # explicit per-job settings (over jobqueue.<kind>.*)

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
    runtime.update(_dotted({k: v for k, v in (file_runtime.get("jobqueue") or {}).items()
                            if k not in JOBQUEUE_KEYS}, "audioprep.jobqueue"))
    for key in RUN_SETTINGS:
        if options.get(key.replace("-", "_")) is not None:
            runtime[f"audioprep.{key}"] = options[key.replace("-", "_")]
    for key in JOBQUEUE_KEYS:
        if options.get(key) is not None:
            jobqueue[key] = options[key]
    runtime, jobqueue = check_runtime(runtime, jobqueue)
    given = options.get("input")
    return RunSettings(
        params=Params.from_dict(values),
        input=str(Path(given).resolve()) if given is not None else file.get("input"),
        outdir=str(Path(options["outdir"]).resolve()) if options.get("outdir") is not None else file.get("outdir"),
        skip_bad=bool(options.get("skip_bad") or file.get("skip-bad", False)),
        pad=bool(options.get("pad") or file.get("pad", False)),
        path_column=options.get("path_column") or file.get("path-column"),
        label_column=options.get("label_column") or file.get("label-column"),
        runtime=runtime, jobqueue={k: v for k, v in jobqueue.items() if k in JOBQUEUE_KEYS})


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

    with dask.config.set(runtime):
        ns = copy.deepcopy(dict(dask.config.get("audioprep")))
    nested = ns.pop("jobqueue", None) or {}
    if not isinstance(nested, dict):
        raise ParameterError(f"audioprep.jobqueue={nested!r} must be a mapping of per-job settings "
                             f"({', '.join(JOBQUEUE_KEYS)}, ...)")
    given = {k.replace("_", "-"): v for k, v in ns.items()}
    given.update({f"jobqueue.{k.replace('_', '-')}": v for k, v in nested.items()})
    given.update({f"jobqueue.{k}": v for k, v in jobqueue.items()})
    for key in given:
        if key not in RUNTIME_RULES:
            near = difflib.get_close_matches(key, list(RUNTIME_RULES), n=1)
            hint = f"did you mean audioprep.{near[0]}? " if near else ""
            raise ParameterError(f"audioprep.{key} is not a setting; {hint}the settings are listed by "
                                 "'audioprep config'")
    checked = {key: rule(key.rsplit(".", 1)[-1], given.get(key), _where(key)) for key, rule in RUNTIME_RULES.items()}
    lo, hi = checked["adapt-min"], checked["adapt-max"]
    if lo is not None and hi is not None and lo > hi:
        raise ParameterError(f"adapt-min={lo} must not exceed adapt-max={hi} (--adapt-min, --adapt-max)")
    runtime = {f"audioprep.{key}": value for key, value in checked.items()}
    jobqueue = {k: checked[f"jobqueue.{k}"] for k in jobqueue}
    return runtime, jobqueue


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
    lines = ["# audioprep run configuration. 'audioprep run --config FILE' repeats the run;",
             "# command-line options override what is written here."]

    def emit(key, value, comment, indent):
        pad = " " * indent
        text = f"{pad}{key}:" if isinstance(value, dict) else f"{pad}{key}: {_scalar(value)}"
        lines.append(text.ljust(40) + (f"  # {comment}" if comment else ""))
        return isinstance(value, dict)

    for key in RUN_KEYS:
        emit(key, getattr(settings, key.replace("-", "_")), RUN_HELP[key], 0)
    lines.append("params:".ljust(40) + "  # numerical parameters: these decide the output ('audioprep run "
                 "--help' explains each)")
    for key, value in settings.params.to_dict().items():
        emit(key, value, param_help[key], 2)
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
    except yaml.YAMLError as e:
        raise ParameterError(f"--config {path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(cfg, dict):
        raise ParameterError(f"--config {path}: must be a mapping of keys to values, as 'audioprep config' prints")
    known = (*RUN_HELP, "params", "audioprep")
    unknown = sorted(set(cfg) - set(known))
    if unknown:
        raise ParameterError(f"--config {path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(known)}")
    for key in ("params", "audioprep"):
        if cfg.get(key) is not None and not isinstance(cfg[key], dict):
            raise ParameterError(f"--config {path}: {key}={checks.shown(cfg[key])} must be a mapping of keys to values, "
                                 "as 'audioprep config' prints")
    for key, rule in RUN_RULES.items():
        if key in cfg:
            cfg[key] = rule(key, cfg[key], f"--{key}" if key != "input" else "INPUT")
    return cfg
