"""Sphinx configuration of dhis2maint's documentation.

Build (what the tox ``docs`` env runs; warnings are errors)::

    sphinx-build -W --keep-going -b html docs docs/_build/html
"""
import os
import sys

# The package from this checkout (tox installs it too; this makes a plain
# `sphinx-build` from a clone document the code beside it).
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

import dhis2maint  # noqa: E402

project = "dhis2maint"
author = "the dhis2maint developers"
copyright = "the dhis2maint developers"
version = release = dhis2maint.__version__

extensions = ["sphinx.ext.autodoc"]

# API reference: members in the order of the source, signatures with their
# annotations, the class docstring only (the constructors' parameters are
# described there).
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_class_signature = "mixed"
autoclass_content = "class"
autodoc_default_options = {"show-inheritance": True}

exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path = []
html_static_path = []
html_theme = "alabaster"
html_title = "dhis2maint {}".format(release)
html_theme_options = {
    "description": "Keep a DHIS2 server healthy from Python or from cron",
    "page_width": "1100px",
    "sidebar_width": "240px",
}
# The guides' tables are wide; the text is what people read, not the source.
html_show_sourcelink = False
