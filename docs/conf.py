"""Sphinx configuration: Markdown pages (MyST) and an API reference from the package's numpydoc docstrings.

Build: ``pip install -e ".[docs]" && sphinx-build -W -b html docs docs/_build/html`` (warnings are errors).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the package of this checkout, whatever is installed

import pipeline  # noqa: E402

project = "audioprep"
author = "the audioprep authors"
copyright = "the audioprep authors, BSD-3-Clause"
version = release = pipeline.__version__

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.intersphinx", "numpydoc"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
myst_heading_anchors = 3

# The API reference: members in source order, type hints in the signature (the docstrings say the shapes).
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
# Cross-references to the libraries the docstrings name resolve without a network: none are fetched at build time.
intersphinx_mapping: dict = {}
nitpicky = False

html_theme = "alabaster"
html_title = f"audioprep {release}"
html_theme_options = {"description": "music-audio datasets to training arrays, on a laptop or an HPC cluster"}
