"""audioprep: music-audio datasets to training arrays, on a laptop or an HPC cluster."""

__version__ = "0.1.0"

from .exceptions import (BadInputError, ClusterError, IncompleteError, ParameterError, PipelineError,  # noqa: E402
                         StoreError)

#: The names imported when first used (``pipeline.preprocess``, ``from pipeline import Params``), so that
#: importing the package is quick: the command line handles a Ctrl-C from its first moment (pipeline._entry).
_LAZY = {"Params": "params", "preprocess": "api", "OutputReader": "output", "FrameBlocks": "output",
         "open_dataset": "output", "to_matrix": "output", "describe": "output"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["preprocess", "Params", "PipelineError", "ParameterError", "BadInputError", "IncompleteError", "StoreError",
           "ClusterError",
           "OutputReader", "FrameBlocks", "open_dataset", "to_matrix", "describe", "__version__"]
