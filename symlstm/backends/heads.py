"""The NumPy and PyTorch modules of a cell with matrices per head (mLSTM, the delta rules),
printed straight from its derivation, one statement per equation (the torch spelling is
``backends.torch.HeadsTorchPrinter``; both share ``templates/python/_heads.py.jinja``).

Arrays are kept in the heads' layout, so that NumPy's broadcasting does what the grammar
says: an H-vector is (B, NH, H/NH), one number per head (B, NH, 1), one number per sample
(B, 1, 1), a matrix per head (B, NH, H/NH, H/NH); a number per head or per sample scales a
matrix through a trailing axis (``f[..., None]``).  A matrix per head meets a vector only
through batched matrix products (C q, Cᵀ q) and a broadcast product (v kᵀ), so nothing
larger than a state is formed.  The forward pass caches, for every step, the values the backward pass
reads (a matrix state among them where it does); the backward pass computes each adjoint
of the derivation in sweep order and adds each step's share to every parameter gradient.

Every division is computed numerator first (``lower.division``), but unlike the vector
cells' lowering (``symlstm.lower.plan``) nothing is fused: each matrix product of the input
is its own GEMM per step.  It takes cells of one input of size D whose other vectors are
H-vectors, numbers per head or per sample and matrices per head, and refuses any other.
"""
from __future__ import annotations

from typing import NamedTuple

import sympy as sp
from sympy.printing.precedence import PRECEDENCE

from .. import naming
from ..cell.matrices import per_head_parts
from ..cell.ops import (MatTVec, MatVec, Outer, Transposed, headsum, matrix_param, mean, sqrt,
                        total)
from ..cell.parts import HEAD_MATRIX, SIZE_SYMBOLS, CellError
from ..derivation.bptt import Derivation
from ..derivation.sweep import size_of
from ..lower.division import quotients
from ..lower.values import with_values
from ..printers.templates import environment
from ..printers.text import python_string
from .numpy import CellNumPyPrinter
from .sizes import sizes_context

TEMPLATE = "numpy/heads.py.jinja"
#: The sizes a vector of a cell with heads may have, and its array's shape after (B,).
LAYOUT = {"H": "(NH, HS)", "NH": "(NH, 1)", "1": "(1, 1)", HEAD_MATRIX: "(NH, HS, HS)"}
#: The shape of a state as ``forward`` takes and returns it, after (B,).
SHAPES = {"H": ("NH", "H/NH"), "NH": ("NH",), HEAD_MATRIX: ("NH", "H/NH", "H/NH")}


class Layout(NamedTuple):
    """How a kind of matrix cell lays its arrays out: each vector's shape after (B,) by its
    size (``vectors``), each state's shape in the sizes (``shapes``), the names the module
    reads its sizes into, the shape of a step's output gradient, how a step reads its input
    (a suffix to ``seq[t]``) and the input's size."""
    vectors: dict
    shapes: dict
    size_names: str
    dout: str
    input: str
    input_size: str


HEADS = Layout(LAYOUT, SHAPES, "H, NH, HS", "(B, NH, HS)", "", "D")


class Expand(sp.Function):
    """One number per head or per sample, given a trailing axis to scale a matrix per head."""

    nargs = 1


class HeadsPrinter(CellNumPyPrinter):
    """NumPy code of one step on arrays in the heads' layout (see the module's docstring)."""

    _default_settings = {**CellNumPyPrinter._default_settings, "cell": None}
    _lib, _axis, _keep = "np", "axis", "keepdims"

    def _size(self, e) -> str:
        return size_of(self._settings["cell"], e)

    def _print(self, expr, **kwargs):
        if isinstance(expr, sp.Expr) and expr.func in (total, mean, headsum):
            return self._reduce(expr)
        if isinstance(expr, sqrt) and expr.free_symbols <= set(SIZE_SYMBOLS):   # √HS
            return f"math.sqrt({self._print(expr.args[0])})"
        return super()._print(expr, **kwargs)

    def _reduce(self, expr):
        """Σ within each head (headsum) or over every entry (total, mean), keeping the axes
        so that the result is one number per head (B, NH, 1) or per sample (B, 1, 1)."""
        a = expr.args[0]
        matrix = self._size(a) == HEAD_MATRIX
        per_head = expr.func is headsum
        axes = ("(-2, -1)" if matrix else "-1") if per_head else \
            ("(-3, -2, -1)" if matrix else "(-2, -1)")
        how = "mean" if expr.func is mean else "sum"
        out = f"{self._lib}.{how}({self._print(a)}, {self._axis}={axes}, {self._keep}=True)"
        return out + ("[..., 0]" if matrix else "")

    def _einsum(self, spec: str, *operands) -> str:
        return f"{self._lib}.einsum('{spec}', {', '.join(operands)})"

    def _print_Expand(self, expr):
        return f"{self.parenthesize(expr.args[0], PRECEDENCE['Atom'], strict=True)}[..., None]"

    def _print_HeadOuter(self, expr):
        u, v = (self.parenthesize(a, PRECEDENCE["Atom"], strict=True) for a in expr.args)
        return f"{u}[..., :, None] * {v}[..., None, :]"

    def _flat(self, u) -> str:
        text = self.parenthesize(u, PRECEDENCE["Atom"], strict=True)
        return text if self._size(u) == "D" else f"{text}.reshape(B, -1)"

    def _heads(self, text: str, rows: str) -> str:
        return f"({text}).reshape(B, NH, -1)" if rows in ("H", "NH") else text

    def _print_MatVec(self, expr):
        W, u = expr.args
        cell = self._settings["cell"]
        if self._is_head_matrix(W):
            return self._apply(W, u, transposed=isinstance(W, Transposed))
        if cell.param(matrix_param(W).name).is_heads:
            return self._einsum("nij,bnj->bni", self._print(W), self._print(u))
        rows = cell.matrix_shape(W)[0]
        M = f"{self._print(W.args[0])}" if isinstance(W, Transposed) else f"{self._print(W)}.T"
        return self._heads(f"{self._flat(u)} @ {M}", rows)

    def _print_MatTVec(self, expr):
        W, u = expr.args
        cell = self._settings["cell"]
        if self._is_head_matrix(W):   # (Cᵀ)ᵀ u = C u
            return self._apply(W, u, transposed=not isinstance(W, Transposed))
        if cell.param(matrix_param(W).name).is_heads:
            return self._einsum("nij,bni->bnj", self._print(W), self._print(u))
        cols = cell.matrix_shape(W)[1]
        M = f"{self._print(W.args[0])}.T" if isinstance(W, Transposed) else self._print(W)
        return self._heads(f"{self._flat(u)} @ {M}", cols)

    def _print_Outer(self, expr):   # a weight's gradient, summed over the batch
        u, v = expr.args
        return f"{self._flat(u)}.T @ {self._flat(v)}"

    def _apply(self, W, u, transposed: bool) -> str:
        """C u or Cᵀ u head by head, as batched matrix products (B, NH, HS, HS) by a column
        (u[..., None]) or a row (u[..., None, :]) of the vector: nothing larger than C."""
        C, v = self._matrix(W), self.parenthesize(u, PRECEDENCE["Atom"], strict=True)
        if transposed:
            return f"({v}[..., None, :] @ {C})[..., 0, :]"
        return f"({C} @ {v}[..., None])[..., 0]"

    def _matrix(self, W) -> str:
        """A matrix per head (the one behind Cᵀ, which ``_apply`` transposes)."""
        return self.parenthesize(W.args[0] if isinstance(W, Transposed) else W,
                                 PRECEDENCE["Atom"], strict=True)

    def _is_head_matrix(self, W) -> bool:
        P = matrix_param(W)
        return not isinstance(P, sp.Symbol) or naming.parse(P) is not None


def expand(cell, e: sp.Expr) -> sp.Expr:
    """``e`` with each number per head or per sample inside a sum or product that makes a
    matrix per head given its trailing axis (``Expand``)."""
    if not isinstance(e, sp.Expr) or not e.args or isinstance(e, (MatVec, MatTVec, Outer)):
        return e.func(*(expand(cell, a) for a in e.args)) if isinstance(e, (MatVec, MatTVec)) \
            else e
    args = [expand(cell, a) for a in e.args]
    if (e.is_Add or e.is_Mul) and size_of(cell, e) == HEAD_MATRIX:
        args = [Expand(a) if not a.is_number and size_of(cell, a) in ("NH", "1") else a
                for a in args]
    return e.func(*args)


def heads_module(d: Derivation, rebuild: str | None = None) -> str:
    """The NumPy module of a cell with matrices per head (see the module's docstring)."""
    return environment().get_template(TEMPLATE).render(**heads_context(d, HeadsPrinter),
                                                       template=TEMPLATE, rebuild=rebuild)


def heads_context(d: Derivation, printer_class, layout: Layout = HEADS) -> dict:
    """What the templates of a cell with matrices per head (or, with the layout of
    :mod:`.channels`, per channel) are rendered with, every statement printed by
    ``printer_class``."""
    d = with_values(d)
    cell = d.cell
    if not per_head_parts(cell):
        raise CellError(f"cell {cell.name!r} has no matrices or numbers per head; its modules "
                        "are symlstm.backends.code.numpy_module and the others")
    if layout is HEADS:
        _check_layout(cell)
    printer = printer_class({"cell": cell})

    def code(e):   # every division numerator first, as in the vector cells' modules
        return printer.doprint(quotients(expand(cell, e)))

    forward = [(naming.code(eq.lhs), code(eq.rhs), eq.label) for eq in cell.equations]
    backward = [(naming.code(g.lhs), code(g.rhs), g.label) for g in (*d.step, *d.inputs)]
    carries = [(naming.code(naming.timed(naming.parse(g.lhs).base, 0, naming.CARRY)),
                code(g.rhs), g.label) for g in d.initial]
    carried = {naming.parse(g.lhs).base for g in d.initial}
    params = []
    for g in d.params:
        p = cell.param(g.name)
        inner = sp.Add(*(t.expr for t in g.terms))
        # a matrix of matvec gets Σ over the batch from its outer product; one used
        # element-wise (a matrix per channel) a share per sample, as a vector does
        params.append(dict(name=g.name, local=naming.identifier(g.name), shape=p.shape,
                           matrix=p.is_matrix and not elementwise(cell, p.symbol),
                           expr=code(inner), label=g.label))
    read = set().union(*(g.rhs.free_symbols
                         for g in (*d.step, *d.inputs, *d.initial, *d.params)))
    cached = [naming.code(eq.lhs) for eq in cell.equations if eq.lhs in read]
    cached += [naming.code(s) for s in cell.prev_states if s in read]
    first = next(iter(cell.inputs))
    return dict(
        name=cell.name, title=python_string(cell.title),
        input=naming.identifier(first), dinput=naming.code(naming.adjoint(naming.timed(first))),
        states=[dict(name=s, local=naming.code(naming.timed(s)),
                     prev=naming.code(naming.timed(s, -1)),
                     carry=naming.code(naming.timed(s, 0, naming.CARRY)),
                     layout=layout.vectors[dim], carried=s in carried,
                     squeeze=_squeeze(layout.vectors[dim]))
                for s, dim in cell.states.items()],
        output=naming.code(naming.timed(cell.output)),
        dout=naming.code(naming.timed(cell.output, 0, naming.EXTERNAL)),
        params=params, forward=forward, backward=backward, carries=carries, cached=cached,
        param_names=repr(tuple(p.name for p in cell.params)),
        param_shapes={p.name: p.shape for p in cell.params},
        **sizes_context(cell), extras=[], output_size="OUTPUT_SIZE",
        state_names=repr(tuple(cell.states)), input_name=first, output_name=cell.output,
        state_shapes=repr({s: layout.shapes[dim] for s, dim in cell.states.items()}),
        state_sizes=repr(dict(cell.states)), size_names=layout.size_names,
        dout_layout=layout.dout, input_layout=layout.input, input_size=layout.input_size,
        channels="N" in cell.dims)


def _squeeze(layout: str) -> str:
    """What gives a state of the step's layout its shape in ``forward``'s: (B, NH, 1) and
    (B, H, 1) lose their last axis, (B, 1, N) its middle one."""
    return "[..., 0]" if layout.endswith(", 1)") else "[..., 0, :]" if \
        layout.startswith("(1, ") else ""


def elementwise(cell, P: sp.Symbol) -> bool:
    """Whether the parameter ``P`` is used element-wise (outside every matrix product)."""
    return any(P in eq.rhs.xreplace({m: sp.S.One for m in eq.rhs.atoms(MatVec)}).free_symbols
               for eq in cell.equations)


def _check_layout(cell) -> None:
    first = next(iter(cell.inputs))
    if len(cell.inputs) > 1 or cell.inputs[first] != "D":
        raise CellError(f"cell {cell.name!r}: the NumPy module of a cell with heads takes one "
                        "input, of size D")
    for v, dim in cell._vector_dims.items():
        if v != first and dim not in LAYOUT:
            raise CellError(f"cell {cell.name!r}: {v} has size {dim}; in a cell with heads the "
                            f"NumPy module takes vectors of the sizes {', '.join(LAYOUT)} only")
    for s, dim in cell.states.items():
        if dim not in SHAPES:
            raise CellError(f"cell {cell.name!r}: state {s} has size {dim}; in a cell with heads "
                            "the NumPy module takes states of the sizes H, NH and a matrix per "
                            "head only")
    if cell.output_dim != "H":
        raise CellError(f"cell {cell.name!r}: the output must be an H-vector")
    scalars = [p.name for p in cell.params if not p.shape]
    if scalars:   # its gradient sums every entry of every sample, which no helper here does
        raise CellError(f"cell {cell.name!r}: {', '.join(scalars)} is a learnable scalar "
                        "(shape ()); the modules of a cell with heads take parameters with "
                        "sizes only: give it one number per head, param(name, 'NH')")
