"""The NumPy and PyTorch modules of a cell with matrices per channel (Mamba's selective
scan), printed from its derivation by the passes of :mod:`.heads` in a layout of their own.

An H-vector is a column (B, H, 1), an N-vector a row (B, 1, N), one number per sample
(B, 1, 1) and a matrix per channel (B, H, N), so that NumPy's broadcasting does what the
grammar says: an H-vector scales each row of a matrix (Δ ⊙ A), u bᵀ is the broadcast product
of a column and a row, and h c, hᵀ u are batched matrix products by the vector turned
round.  Nothing larger than the state is formed; the forward pass caches one state per step
where the backward pass reads it.
"""
from __future__ import annotations

from sympy.printing.precedence import PRECEDENCE

from ..cell.ops import Transposed, mean
from ..cell.parts import CHANNEL_MATRIX, CellError
from ..derivation.bptt import Derivation
from ..printers.templates import environment
from .heads import HeadsPrinter, Layout, heads_context

TEMPLATE = "numpy/heads.py.jinja"   # the heads' module, in the channels' layout
#: The arrays' shapes after (B,) by the vector's size.
LAYOUT = {"H": "(H, 1)", "N": "(1, N)", "1": "(1, 1)", CHANNEL_MATRIX: "(H, N)"}
#: The shape of a state as ``forward`` takes and returns it, after (B,).
SHAPES = {"H": ("H",), "N": ("N",), CHANNEL_MATRIX: ("H", "N")}
CHANNELS = Layout(LAYOUT, SHAPES, "H, N", "(B, H, 1)", ".reshape(B, -1, 1)", "H")


class ChannelsPrinter(HeadsPrinter):
    """NumPy code of one step on arrays in the channels' layout (see the module's docstring)."""

    def _reduce(self, expr):
        """Σ over every entry of a sample (total, mean), keeping the axes: (B, 1, 1)."""
        how = "mean" if expr.func is mean else "sum"
        return f"{self._lib}.{how}({self._print(expr.args[0])}, {self._axis}=(-2, -1), " \
            f"{self._keep}=True)"

    def _print_RowSum(self, expr):   # Σ_s M[:, s], a column
        return f"{self._lib}.sum({self._print(expr.args[0])}, {self._axis}=-1, {self._keep}=True)"

    def _print_HeadOuter(self, expr):   # a column times a row: u bᵀ
        u, b = (self.parenthesize(a, PRECEDENCE["Atom"], strict=True) for a in expr.args)
        return f"{u} * {b}"

    def _turned(self, u) -> str:
        return f"{self.parenthesize(u, PRECEDENCE['Atom'], strict=True)}.swapaxes(-1, -2)"

    def _product(self, W, u, transposed: bool) -> str:
        """h c (a column) or hᵀ u (a row) for a matrix per channel h, the vector turned round."""
        h = self.parenthesize(W.args[0] if isinstance(W, Transposed) else W, PRECEDENCE["Atom"],
                              strict=True)
        return f"({self._turned(u)} @ {h})" if transposed else f"({h} @ {self._turned(u)})"

    def _print_MatVec(self, expr):
        W, u = expr.args
        if self._is_head_matrix(W):
            return self._product(W, u, transposed=isinstance(W, Transposed))
        return super()._print_MatVec(expr)

    def _print_MatTVec(self, expr):
        W, u = expr.args
        if self._is_head_matrix(W):
            return self._product(W, u, transposed=not isinstance(W, Transposed))
        return super()._print_MatTVec(expr)

    def _heads(self, text: str, rows: str) -> str:
        return {"H": f"({text}).reshape(B, -1, 1)", "N": f"({text}).reshape(B, 1, -1)"}.get(
            rows, text)


def channels_context(d: Derivation, printer_class) -> dict:
    """What the templates of a cell with matrices per channel are rendered with."""
    _check_layout(d.cell)
    return heads_context(d, printer_class, CHANNELS)


def channels_module(d: Derivation, rebuild: str | None = None) -> str:
    """The NumPy module of a cell with matrices per channel (see the module's docstring)."""
    return environment().get_template(TEMPLATE).render(
        **channels_context(d, ChannelsPrinter), template=TEMPLATE, rebuild=rebuild)


def _check_layout(cell) -> None:
    first = next(iter(cell.inputs))
    if len(cell.inputs) > 1 or cell.inputs[first] != "H":
        raise CellError(f"cell {cell.name!r}: the NumPy module of a cell with matrices per "
                        "channel takes one input, of size H")
    for v, dim in cell._vector_dims.items():
        if dim not in LAYOUT:
            raise CellError(f"cell {cell.name!r}: {v} has size {dim}; in a cell with matrices "
                            f"per channel the modules take vectors of the sizes "
                            f"{', '.join(LAYOUT)} only")
    for s, dim in cell.states.items():
        if dim not in SHAPES:
            raise CellError(f"cell {cell.name!r}: state {s} has size {dim}; the modules take "
                            "states of the sizes H, N and a matrix per channel only")
    if cell.output_dim != "H":
        raise CellError(f"cell {cell.name!r}: the output must be an H-vector")
    scalars = [p.name for p in cell.params if not p.shape]
    if scalars:
        raise CellError(f"cell {cell.name!r}: {', '.join(scalars)} is a learnable scalar "
                        "(shape ()); the modules of a cell with matrices per channel take "
                        "parameters with sizes only: give it one number per channel, "
                        "param(name, 'H')")


def has_channels(cell) -> bool:
    """Whether ``cell`` declares the state size N, and so gets the modules of this one."""
    return "N" in cell.dims

