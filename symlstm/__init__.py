"""symlstm: recurrent-cell equations in SymPy, turned into verified gradients.

>>> import symlstm
>>> d = symlstm.derive("peephole_lstm")
>>> print(d["rec:c"])            # doctest: +SKIP
"""
from __future__ import annotations

from sympy import exp, tanh

from .bptt import Derivation, Gradient
from .bptt import derive as _derive
from .cell import Cell, CellBuilder, CellError
from .cells import CELLS
from .ops import matvec, sigma

__all__ = ["CELLS", "Cell", "CellBuilder", "CellError", "Derivation", "Gradient", "derive",
           "exp", "get_cell", "matvec", "sigma", "tanh"]


def get_cell(cell: str | Cell) -> Cell:
    """A shipped cell by name (see ``CELLS``), or ``cell`` itself when it is already a Cell."""
    if isinstance(cell, Cell):
        return cell
    if cell not in CELLS:
        raise KeyError(f"unknown cell {cell!r}; available: {', '.join(CELLS)}")
    return CELLS[cell]()


def derive(cell: str | Cell) -> Derivation:
    """Derive every gradient of ``cell`` (a name from ``CELLS`` or a :class:`Cell`)."""
    return _derive(get_cell(cell))
