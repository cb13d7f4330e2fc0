"""Write the generated files: NumPy modules, LaTeX sources, figures and PDFs.

    python -m symlstm.build                 # regenerate generated/: code, .tex, figures, PDFs
    python -m symlstm.build lstm gru        # only these cells
    python -m symlstm.build --out DIR       # the same files under DIR (any install)
    python -m symlstm.build mine.py:mgu --out DIR   # a cell of your own, into DIR
    python -m symlstm.build --no-pdf        # code, .tex and figures only
    python -m symlstm.build --check         # exit 1, with a diff, if generated/ is stale

A CELL is a name from ``symlstm list``, or ``FILE.py:NAME`` for a cell of your own (NAME in
that file is a Cell, a CellBuilder or a function returning one), built into ``--out DIR``.
A folder of outputs holds ``<cell>.py``, ``torch/<cell>.py``, ``numba/<cell>.py``,
``tex/<cell>.tex`` with the figures it includes in ``tex/fig/``, and ``pdf/<cell>.pdf``;
each text file's header names the command that regenerates it.  LaTeX runs only for a
document whose inputs (its .tex, the figures, the TeX version) changed since it was last
built into that folder, or whose PDF is not the one that build wrote; ``--force`` rebuilds
every PDF.

This is the only package that writes files or runs LaTeX: :mod:`.sources` renders
every file in memory, :mod:`.files` writes and compares them, :mod:`.latex` runs LaTeX, and
:mod:`.command` is the command line.
"""
from .command import add_arguments, load_cell, main, run, UsageError
from .files import GENERATED, STAMPS, stale, write
from .latex import SOURCE_DATE_EPOCH, Built, LatexError, pdf, pdfs, stale_pdfs
from .sources import (BACKENDS, DOCUMENTS, MISTAKES, NETWORK_DOCUMENTS, NETWORKS, OTHERS,
                      OVERVIEW, WORKED, documents, figure_files, render, sources)

__all__ = ["BACKENDS", "DOCUMENTS", "GENERATED", "MISTAKES", "NETWORKS", "NETWORK_DOCUMENTS",
           "OTHERS", "OVERVIEW", "SOURCE_DATE_EPOCH", "STAMPS", "WORKED", "Built", "LatexError",
           "UsageError", "add_arguments", "documents", "figure_files", "load_cell", "main", "pdf",
           "pdfs", "render", "run", "sources", "stale", "stale_pdfs", "write"]
