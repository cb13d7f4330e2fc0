"""How the math shows an expression without depending on a printer.

A cell's error messages show the expressions they are about, and a derived gradient shows
itself as LaTeX in a notebook (``_repr_latex_``).  The printers live downstream of the math,
so they register here when they are imported (the package's face imports them with the first
name it loads); until then SymPy's own ``str`` and ``latex`` stand in.
"""
from __future__ import annotations

from typing import Callable

import sympy as sp


_printers: dict[str, Callable] = {}


def register_text(printer: Callable) -> None:
    """Set the plain-text printer (one line, as in the generated code's comments)."""
    _printers["text"] = printer


def register_latex(printer: Callable) -> None:
    """Set the printer of a derived gradient as LaTeX."""
    _printers["latex"] = printer


def text(e) -> str:
    """``e`` as plain text on one line: ``W x[t] + b``, not ``MatVec(W, x[t])``."""
    try:
        return _printers.get("text", str)(e)
    except Exception:   # an expression the printer cannot handle is shown as SymPy has it
        return str(e)


def latex(gradient) -> str:
    """A gradient's ``lhs = rhs`` as LaTeX."""
    printer = _printers.get("latex")
    return printer(gradient) if printer is not None else sp.latex(gradient.eq)
