"""Rendering: the derivation and its lowered plan, printed to strings, poured into the Jinja2
templates; one module per responsibility:

- :mod:`.code`: code modules, the same plan for every backend (``code_context``), each
  backend printing its statements with its own ``Spelling``;
- :mod:`.document`: a cell's derivation document and the worked example;
- :mod:`.mistakes`: the mistakes checked;
- :mod:`.overview`: the overview of every cell;
- :mod:`.graph`: the step's picture;
- :mod:`.tex`: the LaTeX pieces they share.

Returns text and never writes a file (that is :mod:`symlstm.build`'s job).  The templates
receive only pre-printed strings and loops.
"""
from .base import REBUILD, TEMPLATES, environment
from .code import NUMPY, Spelling, code_context, network_module, numpy_module
from .document import latex_document, worked_document
from .mistakes import mistakes_document
from .overview import overview_document
from .tex import FIGURE_DIR, anchor, eqref, tex_about, tex_label

__all__ = ["FIGURE_DIR", "NUMPY", "REBUILD", "TEMPLATES", "Spelling", "anchor", "code_context",
           "environment", "eqref", "latex_document", "mistakes_document", "network_module",
           "numpy_module", "overview_document", "tex_about", "tex_label", "worked_document"]
