"""Everything about the output folder: its layout, the Zarr store, the HDF5 file, reading them back.

Modules, one concern each:

- :mod:`~pipeline.output.store`: the store interface (``ClipStore``, ``FinalOutput``, ``ClipWriter``);
- :mod:`~pipeline.output.layout`: file and dimension names, attributes, provenance, mismatch rules;
- :mod:`~pipeline.output.files`: atomic writes, the lock, the write probe, the space check;
- :mod:`~pipeline.output.zarr_store`: the store the workers write, one chunk per clip;
- :mod:`~pipeline.output.hdf5`: the writer process that consolidates it into ``audio.hdf5``;
- :mod:`~pipeline.output.folder`: :class:`OutputFolder`, what a run uses, its one door to the stores;
- :mod:`~pipeline.output.reader`: :class:`OutputReader`, ``open_dataset``, ``to_matrix``, :class:`FrameBlocks`,
  ``describe``.
"""

from .folder import OutputFolder
from .reader import FrameBlocks, OutputReader, describe, open_dataset, to_matrix

__all__ = ["OutputFolder", "OutputReader", "FrameBlocks", "open_dataset", "to_matrix", "describe"]
