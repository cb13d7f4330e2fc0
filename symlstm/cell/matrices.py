"""The sizes of heads, and the checks of what a cell does with matrices per head.

A cell that declares the number of heads NH (``CellBuilder.size("NH")``) may hold, besides
H-vectors (NH heads of H/NH entries, in order):

- one number per head, a vector of size ``"NH"`` (mLSTM's gates ĩ, f̃ and stabiliser m;
  parameters ``("NH", "D")`` and ``("NH",)``); element-wise it goes with an H-vector (each
  head's number with that head's entries) and with a matrix per head;
- a matrix per head, of size ``HEAD_MATRIX`` (one H/NH × H/NH matrix per head, a state
  declared ``state("C", "NH", "H/NH", "H/NH")`` or an equation's result): made by
  ``outer(v, k)``, scaled and added element-wise, applied to an H-vector by
  ``matvec(C, q)`` or ``matvec(transpose(C), q)``, head by head;
- ``headsum(a)``, an H-vector or a matrix per head summed within each head.

A cell that declares the state size N (``CellBuilder.size("N")``, never with NH) may hold a
matrix per channel, of size ``CHANNEL_MATRIX`` (H × N, a state declared ``state("h", "H",
"N")``, an equation's result or a parameter ``("H", "N")`` used element-wise): made by
``outer(u, b)`` of an H-vector u and an N-vector b, combined element-wise with H-vectors
(each channel's number with its whole row), applied to an N-vector by ``matvec(h, c)``
(an H-vector) and to an H-vector by ``matvec(transpose(h), u)`` (an N-vector).

Each check raises a :class:`CellError` that names the equation and says what was expected.
"""
from __future__ import annotations

import sympy as sp

from .. import naming
from . import display
from .ops import HS, HeadOuter, Transposed, headsum, matrix_param
from .ops import MatVec
from .parts import (CHANNEL_MATRIX, CHANNEL_SHAPE, HEAD_MATRIX, HEADS_SHAPE, MATRICES, CellError,
                    combine, sizes_used)


def check_head_shapes(what: str, shape) -> None:
    """NH and H/NH appear only as per-head blocks (HEADS_SHAPE), as a whole size NH (one
    number per head, or the rows of a matrix parameter) or, for a state, as a matrix per
    head (declared with HEADS_SHAPE)."""
    shape = HEADS_SHAPE if tuple(shape) == (HEAD_MATRIX,) else tuple(shape)
    if shape == HEADS_SHAPE:
        return
    if len(shape) == 3:
        raise CellError(f"{what} has the shape {shape}; a parameter with three sizes holds "
                        f"per-head blocks, of the shape {HEADS_SHAPE} (a state of that shape "
                        "is a matrix per head)")
    if all(d == "NH" for d in shape if set(sizes_used((d,))) & {"NH", "H/NH"}):
        return
    raise CellError(f"{what} has the shape {shape}: NH and H/NH are for per-head blocks "
                    f"{HEADS_SHAPE} (a parameter) or a matrix per head (a state), one number "
                    "per head ('NH',) or a matrix with NH rows ('NH', 'D'); the head size H/NH "
                    "is never a size of its own")


def is_matrix_variable(cell, W, dims) -> bool:
    """Whether ``W`` (or the P of ``Wᵀ = transpose(P)``) is a named matrix per head or per
    channel."""
    P = matrix_param(W)
    p = naming.parse(P) if isinstance(P, sp.Symbol) else None
    return p is not None and dims.get(p.base) in MATRICES


def matrix_param_dim(cell, eq, e) -> str:
    """The size of the parameter ``e`` used element-wise: a matrix ("H", "N") is a matrix
    per channel there, any other matrix is refused."""
    param = cell.param(e.name)
    if param.shape == CHANNEL_SHAPE:
        _refuse_both_uses(cell, e)
        return CHANNEL_MATRIX
    if param.is_matrix:
        raise CellError(f"equation {eq.label!r} uses the matrix {e} element-wise; "
                        f"write matvec({e}, v) for the product with a vector v")
    return param.shape[0] if param.shape else "1"


def _refuse_both_uses(cell, P) -> None:
    """A parameter ("H", "N") is a matrix for matvec or a matrix per channel element-wise:
    the two would give its gradient two meanings."""
    products = [eq.label for eq in cell.equations for m in eq.rhs.atoms(MatVec)
                if matrix_param(m.args[0]) == P]
    elementwise = [eq.label for eq in cell.equations if P in eq.rhs.xreplace(
        {m: sp.S.One for m in eq.rhs.atoms(MatVec)}).free_symbols]
    if products and elementwise:
        raise CellError(f"parameter {P} {CHANNEL_SHAPE} is used both in a matrix product "
                        f"(equation {products[0]!r}) and element-wise as a matrix per channel "
                        f"(equation {elementwise[0]!r}); use it one way only, or declare two "
                        "parameters")


def matvec_dim(cell, eq, e, dims) -> str:
    """The size of ``matvec(W, v)``: W a matrix parameter or a matrix per head, or the
    transpose of either, and v a named vector of W's column size."""
    W, v = e.args
    P = matrix_param(W)
    where = f"equation {eq.label!r}: in {display.text(e)}"
    if not (isinstance(v, sp.Symbol) and naming.parse(v) is not None):
        raise CellError(f"{where} the vector must be a named variable; give the expression its "
                        "own equation first")
    if is_matrix_variable(cell, W, dims) and dims[naming.parse(P).base] == CHANNEL_MATRIX:
        rows, cols = CHANNEL_SHAPE[::-1] if isinstance(W, Transposed) else CHANNEL_SHAPE
        if dims[naming.parse(v).base] != cols:
            raise CellError(f"{where} {display.text(W)} is a matrix per channel, {rows} × "
                            f"{cols}, applied to a vector of size {cols}, but {v} has size "
                            f"{dims[naming.parse(v).base]}")
        return rows
    if is_matrix_variable(cell, W, dims):
        if dims[naming.parse(v).base] != "H":
            raise CellError(f"{where} {P} is a matrix per head, applied head by head to an "
                            f"H-vector, but {v} has size {dims[naming.parse(v).base]}")
        return "H"
    if not (isinstance(P, sp.Symbol) and naming.parse(P) is None
            and any(p.name == P.name and p.is_matrix for p in cell.params)):
        raise CellError(f"{where} the first factor must be a matrix parameter, a matrix per "
                        "head (a state or an earlier result) or the transpose of either")
    if isinstance(W, Transposed) and cell.param(P.name).is_heads:
        raise CellError(f"equation {eq.label!r}: {display.text(e)} transposes the per-head blocks "
                        f"{P}; declare the blocks the other way round and write matvec({P}, v)")
    if cell.param(P.name).shape == CHANNEL_SHAPE:
        _refuse_both_uses(cell, P)
    rows, cols = cell.matrix_shape(W)
    if dims[naming.parse(v).base] != cols:
        shape = "×".join(f"({d})" if "+" in d else d for d in (rows, cols))
        raise CellError(f"equation {eq.label!r}: {display.text(W)} is {shape} but {v} has size "
                        f"{dims[naming.parse(v).base]}: the matrix is applied to the wrong vector")
    return rows


def outer_dim(cell, eq, e, dims) -> str:
    """``outer(v, k)`` of two named H-vectors, in a cell with heads: a matrix per head; of
    an H-vector and an N-vector, in a cell with the state size N: a matrix per channel."""
    where = f"equation {eq.label!r}: in {display.text(e)}"
    for u in e.args:
        if not (isinstance(u, sp.Symbol) and naming.parse(u) is not None):
            raise CellError(f"{where} the factors must be named vectors; give {display.text(u)} "
                            "its own equation first")
    sizes = tuple(dims[naming.parse(u).base] for u in e.args)
    if "N" in cell.dims:
        if sizes != ("H", "N"):
            raise CellError(f"{where} the factors have the sizes {sizes}; outer(u, b) makes a "
                            "matrix per channel (H × N) of an H-vector u and an N-vector b")
        return CHANNEL_MATRIX
    if "NH" not in cell.dims:
        raise CellError(f"{where}: outer(v, k) makes a matrix per head; declare the number of "
                        "heads first with size('NH') (NH = 1 for one matrix of H × H), or the "
                        "state size with size('N') for a matrix per channel (H × N)")
    for u, dim in zip(e.args, sizes):
        if dim != "H":
            raise CellError(f"{where} {u} has size {dim}; outer(v, k) takes two H-vectors (NH "
                            "heads of H/NH entries)")
    return HEAD_MATRIX


def reduction_dim(eq, e, inner: str | None) -> str | None:
    """The size of a reduction of an operand of size ``inner``: one number per sample (None
    for a number), one per head for ``headsum``, which takes an H-vector or a matrix per head;
    a matrix per head has no mean (its size is no size of the grammar)."""
    if e.func is headsum:
        if inner not in ("H", HEAD_MATRIX):
            raise CellError(f"equation {eq.label!r}: {display.text(e)} sums within each head, "
                            "so it takes an H-vector or a matrix per head, not one of size "
                            f"{inner}")
        return "NH"
    if inner in MATRICES and e.func.__name__ == "mean":
        raise CellError(f"equation {eq.label!r}: {display.text(e)} takes the mean of a matrix "
                        "per head; sum it with total(...) or headsum(...)")
    return "1" if inner is not None else None


def elementwise_dim(eq, e, dims) -> str | None:
    """The size of an element-wise combination of operands of the sizes ``dims``."""
    size, clash = combine(dims)
    if not clash:
        return size
    if CHANNEL_MATRIX in clash:
        raise CellError(f"equation {eq.label!r}: {display.text(e)} combines a matrix per "
                        f"channel (H × N) with a vector of size "
                        f"{[d for d in clash if d != CHANNEL_MATRIX][0]} element-wise; it goes "
                        "element-wise only with matrices per channel, H-vectors (one number "
                        "per row) and numbers; for the product with an N-vector write "
                        "matvec(h, c), for a matrix from two vectors outer(u, b)")
    if HEAD_MATRIX in clash:
        raise CellError(f"equation {eq.label!r}: {display.text(e)} combines a matrix per head "
                        f"with a vector of size {[d for d in clash if d != HEAD_MATRIX][0]} "
                        "element-wise; a matrix per head goes element-wise only with matrices "
                        "per head and one number per head (NH) or per sample; for the product "
                        "with a vector write matvec(C, v), for a matrix from two vectors "
                        "outer(v, k)")
    raise CellError(f"equation {eq.label!r}: {display.text(e)} combines vectors of sizes "
                    f"{list(clash)} element-wise; they must have the same size (one number per "
                    "head, size NH, goes with an H-vector)")


def per_head_parts(cell) -> list[str]:
    """What in ``cell`` is a matrix per head or per channel, one number per head, a sum
    within each head or the head size as a number, each named (empty for a cell of vectors
    only)."""
    found = [f"{n} (size {d})" for n, d in {**cell.states, **cell._vector_dims}.items()
             if d in (*MATRICES, "NH")]
    found += [f"parameter {p.name} {p.shape}" for p in cell.params
              if "NH" in p.shape and not p.is_heads or p.shape == CHANNEL_SHAPE]
    for eq in cell.equations:
        if eq.rhs.atoms(HeadOuter, headsum) or HS in eq.rhs.free_symbols:
            found.append(f"equation {eq.label!r}")
    return list(dict.fromkeys(found))


def refuse_per_head(cell, stage: str) -> None:
    """Refuse, naming what, a cell that ``stage`` cannot yet turn into code or a document."""
    found = per_head_parts(cell)
    kind = "matrices per channel" if "N" in cell.dims else "matrices or numbers per head"
    if found:
        raise CellError(
            f"cell {cell.name!r} has {kind} ({', '.join(found[:6])}); the "
            f"{stage} does not handle them yet; the NumPy, Numba and PyTorch modules do "
            "(symlstm.backends.code.numpy_module, symlstm.backends.numba.numba_module, "
            "symlstm.backends.torch.torch_module), and symlstm.verify checks the first")
