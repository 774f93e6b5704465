"""Sphinx configuration of descend's API reference (autodoc + numpydoc).

Build it with ``python -m sphinx -W -b html docs docs/_build/html``; the test
suite does the same (tests/test_docs.py) and fails on any warning. descend is
imported as installed, or from src/ with PYTHONPATH=src (the compiled modules
must be built in place then).
"""
import os
import sys

# a source checkout without an installed descend: use src/ (built in place)
_SRC = os.path.join(os.path.dirname(__file__), "..", "src")
try:
    import descend  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.abspath(_SRC))
    import descend  # noqa: F401

project = "descend"
author = "the descend developers"
copyright = "the descend developers"
release = descend.__version__
version = release

extensions = ["sphinx.ext.autodoc", "numpydoc"]

root_doc = "index"
source_suffix = {".rst": "restructuredtext"}
exclude_patterns = ["_build", "*.md", "*.png"]

# numpydoc renders the Parameters / Returns / Raises / Examples sections; the
# member tables it would add to each class duplicate the :members: listings.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

autodoc_default_options = {"members": True, "undoc-members": False,
                           "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "none"

html_theme = "alabaster"
html_static_path = []
