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
