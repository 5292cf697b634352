"""audioprep: music-audio datasets to training arrays, on a laptop or an HPC cluster.

The public names below are imported when first used (PEP 562), so ``import pipeline.params`` or
``import pipeline.kernels`` needs numpy alone, and ``import pipeline`` no dask: only ``preprocess`` and the
loaders bring in the rest of the stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .exceptions import BadInputError, ClusterError, IncompleteError, ParameterError, PipelineError, StoreError

__version__ = "0.1.0"

#: Each public name that is not imported above, and the module that defines it.
_LAZY = {
    "Params": ".params",
    "preprocess": ".api",
    "OutputReader": ".output",
    "FrameBlocks": ".output",
    "open_dataset": ".output",
    "to_matrix": ".output",
    "describe": ".output",
}

if TYPE_CHECKING:  # type checkers and readers of the code see the names where they are defined
    from .api import preprocess
    from .output import FrameBlocks, OutputReader, describe, open_dataset, to_matrix
    from .params import Params

__all__ = [
    "preprocess",
    "Params",
    "PipelineError",
    "ParameterError",
    "BadInputError",
    "IncompleteError",
    "StoreError",
    "ClusterError",
    "OutputReader",
    "FrameBlocks",
    "open_dataset",
    "to_matrix",
    "describe",
    "__version__",
]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # the next look-up is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
