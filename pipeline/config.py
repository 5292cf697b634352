"""Runtime configuration through ``dask.config``.

The packaged ``audioprep.yaml`` gives the defaults (each key commented); a
user's ``~/.config/dask/*.yaml`` and ``DASK_AUDIOPREP__*`` environment
variables override them, and command-line options override those.
"""

from __future__ import annotations

from pathlib import Path

import dask.config
import yaml

_YAML = Path(__file__).with_name("audioprep.yaml")

with open(_YAML) as _f:
    DEFAULTS = yaml.safe_load(_f)

dask.config.update_defaults(DEFAULTS)


def get(key: str, override=None):
    """``override`` when given, else ``audioprep.<key>`` from dask.config."""
    if override is not None:
        return override
    return dask.config.get(f"audioprep.{key}")


def defaults_text() -> str:
    """The packaged YAML, comments included."""
    return _YAML.read_text()


# ----------------------------------------------------------------------------
# Run configuration files ('audioprep config', 'audioprep run --config')

PARAM_HELP = {
    "sr": "sample rate in Hz every clip must have",
    "nsamples": "samples kept per clip; longer clips are truncated",
    "na": "samples per frame, also the CQT hop; even, a multiple of 2**(n_octaves-1)",
    "ns": "CQT bins",
    "n_octaves": "octaves the CQT bins span (ns // n_octaves bins per octave)",
    "fmin": "lowest CQT bin in Hz (C2 = 65.406 Hz)",
    "lcn_size": "LCN Gaussian window taps, time and frequency (odd)",
    "lcn_sigma": "LCN window standard deviation in taps",
    "lcn_log": "normalize log(1 + S) instead of S",
    "datasets": "arrays to write: any of Xa, Xs, Xn",
    "resample": "resample clips at another rate to sr instead of rejecting them",
    "mono": "down-mix multi-channel clips instead of rejecting them",
}
RUN_HELP = {
    "input": "a genres folder ROOT/<genre>/<file> or a gtzan.hdf5",
    "outdir": "folder of audio.zarr, audio.hdf5 and the run summary",
    "skip-bad": "go on without bad clips (zero-filled, flagged invalid)",
}


def _runtime_comments() -> dict:
    """Comments of the packaged YAML, by dotted key (for printing them again)."""
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


def _scalar(v) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(str(x) for x in v) + "]"
    return yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip()


def dump_run_config(cfg: dict) -> str:
    """A run configuration as YAML, with a comment on every key."""
    comments = _runtime_comments()
    lines = ["# audioprep run configuration. 'audioprep run --config FILE' repeats the run;",
             "# command-line options override what is written here."]

    def emit(key, value, comment, indent):
        pad = " " * indent
        if isinstance(value, dict):
            lines.append(f"{pad}{key}:".ljust(40) + (f"  # {comment}" if comment else ""))
            return True
        lines.append(f"{pad}{key}: {_scalar(value)}".ljust(40) + (f"  # {comment}" if comment else ""))
        return False

    for key in ("input", "outdir", "skip-bad"):
        if key in cfg:
            emit(key, cfg[key], RUN_HELP[key], 0)
    lines.append("params:".ljust(40) + "  # numerical parameters (SPEC.md): these decide the output")
    for key, value in cfg["params"].items():
        emit(key, value, PARAM_HELP.get(key, ""), 2)
    lines.append("audioprep:".ljust(40) + "  # runtime and cluster settings (dask.config namespace 'audioprep')")

    def walk(d, prefix, indent):
        for key, value in d.items():
            dotted = f"{prefix}.{key}"
            if emit(key, value, comments.get(dotted, ""), indent):
                walk(value, dotted, indent + 2)

    walk(cfg.get("audioprep", {}), "audioprep", 2)
    return "\n".join(lines) + "\n"


def make_run_config(params, *, input=None, outdir=None, skip_bad=False, runtime: dict | None = None) -> dict:
    cfg = {}
    if input is not None:
        cfg["input"] = str(Path(input).resolve())
    if outdir is not None:
        cfg["outdir"] = str(outdir)
    cfg["skip-bad"] = bool(skip_bad)
    cfg["params"] = params.to_dict()
    runtime = dict(dask.config.get("audioprep")) if runtime is None else runtime
    cfg["audioprep"] = runtime
    return cfg


def load_run_config(path) -> dict:
    """Read a run configuration file; raise ParameterError naming what is wrong."""
    from .exceptions import ParameterError

    try:
        with open(path) as f:
            cfg = yaml.safe_load(f) or {}
    except OSError as e:
        raise ParameterError(f"--config {path}: cannot be read ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise ParameterError(f"--config {path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(cfg, dict):
        raise ParameterError(f"--config {path}: must be a mapping of keys to values, as 'audioprep config' prints")
    unknown = sorted(set(cfg) - {"input", "outdir", "skip-bad", "params", "audioprep"})
    if unknown:
        raise ParameterError(f"--config {path}: unknown key(s) {', '.join(unknown)}; "
                             "known: input, outdir, skip-bad, params, audioprep")
    return cfg


def runtime_overrides(cfg: dict) -> dict:
    """A run configuration's ``audioprep`` section as dotted keys for ``dask.config.set``.

    Dotted keys merge into the defaults; a nested dict would replace the whole
    ``audioprep`` namespace and lose the keys the file leaves out.
    """
    out = {}

    def walk(d, prefix):
        for key, value in d.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}.{key}")
            else:
                out[f"{prefix}.{key}"] = value

    walk(cfg.get("audioprep") or {}, "audioprep")
    return out
