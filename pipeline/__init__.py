"""audioprep: music-audio datasets to training arrays, on a laptop or an HPC cluster."""

__version__ = "0.1.0"

from .exceptions import (BadInputError, ClusterError, IncompleteError, ParameterError, PipelineError,  # noqa: E402
                         StoreError)
from .params import Params  # noqa: E402
from .output import FrameBlocks, OutputReader, describe, open_dataset, to_matrix  # noqa: E402
from .api import preprocess  # noqa: E402

__all__ = ["preprocess", "Params", "PipelineError", "ParameterError", "BadInputError", "IncompleteError", "StoreError",
           "ClusterError",
           "OutputReader", "FrameBlocks", "open_dataset", "to_matrix", "describe", "__version__"]
