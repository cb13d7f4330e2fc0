"""One step's reverse sweep: the adjoint of every variable as a sum of one term per path.

Walk the equations backwards; for each use of a variable v in ``y = rhs``, the
path through y contributes ``δy ⊙ ∂rhs/∂v`` to δv (or ``Wᵀ δ(Wv)`` through a matrix
product).  Fan-out needs no special case: the terms simply accumulate.
"""
from __future__ import annotations

from collections import defaultdict
from typing import NamedTuple

import sympy as sp

from .. import naming
from ..cell.model import Cell
from ..cell.ops import (Concat, HeadOuter, MatTVec, MatVec, Outer, Part, Place, RowSum, Transposed,
                        diff, expand_means, headsum, matrix_param, total)
from ..cell.parts import (CHANNEL_MATRIX, HEAD_MATRIX, Equation, combine, reduces_to, size_expr,
                          spell_size_expr)


LOSS = "loss"     # the path from the loss straight to the output h_t
CARRY = "carry"   # the path to a state s_t through step t+1


class Term(NamedTuple):
    """One path by which v reaches the loss: through the equation labelled ``via``, read
    ``later`` steps after t (1 for the paths a state takes through step t+1).

    ``local`` is ∂(via's left side)/∂v element-wise, written through the forward outputs
    (for a matrix product ``W v`` it is W, for ``W`` itself it is v); ``raw`` is the same
    derivative as SymPy returns it, before that rewriting (element-wise paths only);
    ``expr`` is the term's contribution to δv.
    """
    via: str
    local: sp.Expr
    expr: sp.Expr
    raw: sp.Expr | None = None
    later: int = 0


class Sweep(NamedTuple):
    """The one-step adjoints: for each variable, its terms, in the order the sweep completes them."""
    terms: dict[sp.Symbol, tuple[Term, ...]]

    def adjoint(self, v: sp.Symbol) -> sp.Expr:
        """δv as the sum of its terms."""
        return sp.Add(*(t.expr for t in self.terms.get(v, ())))


def sweep(cell: Cell) -> Sweep:
    """Differentiate one step of ``cell`` in reverse, accumulating one term per path."""
    terms: dict[sp.Symbol, list[Term]] = defaultdict(list)
    out = naming.timed(cell.output)
    terms[out].append(Term(LOSS, sp.S.One, naming.timed(cell.output, 0, naming.EXTERNAL)))
    for s in cell.new_states:
        carried = naming.timed(naming.parse(s).base, 0, naming.CARRY)
        terms[s].append(Term(CARRY, sp.S.One, carried))
    outputs = _named_outputs(cell)
    outputs.update({expand_means(rhs, lambda a: size_expr(size_of(cell, a))): y
                    for rhs, y in outputs.items()})
    for eq in reversed(cell.equations):
        paths = _split(eq, cell) if isinstance(eq.rhs, Concat) else _paths(eq, outputs, cell)
        for v, term in paths:
            terms[v].append(term)
    return Sweep({v: tuple(ts) for v, ts in terms.items()})


def _named_outputs(cell: Cell) -> dict[sp.Expr, sp.Symbol]:
    """Map f(a) -> y for every equation y = f(a), to write derivatives through forward outputs."""
    return {eq.rhs: eq.lhs for eq in cell.equations if isinstance(eq.rhs, sp.Function)
            and not isinstance(eq.rhs, (MatVec, Concat))}


def _paths(eq: Equation, outputs, cell: Cell | None = None) -> list[tuple[sp.Symbol, Term]]:
    """The terms one equation ``y = rhs`` sends back to each variable it uses.  In a cell, a
    variable that is one number per sample (a reduction's result, a scalar parameter) used in
    a vector equation gets the sum of the entries' terms.  (A head's equations, without
    ``cell``, reduce only in their loss, which is one number.)"""
    if cell is None:
        return _head_paths(eq, outputs)
    delta = naming.adjoint(eq.lhs)
    products = {m: sp.Dummy(f"m{k}") for k, m in enumerate(sorted(eq.rhs.atoms(MatVec), key=str))}
    parts = {r: sp.Dummy(f"r{k}") for k, r in enumerate(sorted(eq.rhs.atoms(Part), key=str))}
    outers = {o: sp.Dummy(f"o{k}") for k, o in enumerate(sorted(eq.rhs.atoms(HeadOuter), key=str))}
    # means are written out before parts and products become dummies, which have no size
    body = expand_means(eq.rhs, lambda a: size_expr(size_of(cell, a))).xreplace(
        {**products, **parts, **outers})
    atoms, paths = {**products, **parts, **outers}, []
    for r, dummy in parts.items():   # rows start:stop of v: δv is zero but for those rows
        v, start, stop = r.args
        raw, local = local_derivative(body, dummy, atoms, outputs)
        paths.append((v, Term(eq.label, local, Place(delta * local, start, stop,
                                                      size_expr(cell.dim(v))), raw)))
    for v in sorted(body.free_symbols - set(atoms.values()), key=sp.default_sort_key):
        if not _is_variable(cell, v):
            continue   # a size (D, H) or a named constant: nothing to differentiate
        raw, local = local_derivative(body, v, atoms, outputs)
        term = delta * local
        small = cell.dim(v)
        if small in ("1", "NH", "H") and reduces_to(small, size_of(cell, term)):
            # the sum over v's uses: of every entry, of each head's, of each channel's row
            term = {"1": total, "NH": headsum, "H": RowSum}[small](term)
        paths.append((v, Term(eq.label, local, term, raw)))
    for o, dummy in outers.items():   # v kᵀ sends (δ of it) k to v and (δ of it)ᵀ v to k
        v, k = o.args
        do = delta * local_derivative(body, dummy, atoms, outputs)[1]
        paths += [(v, Term(eq.label, k, MatVec(do, k))), (k, Term(eq.label, v, MatTVec(do, v)))]
    return paths + _product_paths(eq, body, products, outputs, delta, atoms)


def _product_paths(eq, body, products, outputs, delta, atoms=None) -> list[tuple[sp.Symbol, Term]]:
    """What each matrix product ``W u`` sends back: Wᵀ δ(W u) to u, an outer product to W."""
    paths = []
    for m, dummy in products.items():
        W, u = m.args
        dm = delta * local_derivative(body, dummy, atoms or products, outputs)[1]
        paths.append((u, Term(eq.label, W, MatTVec(W, dm))))
        # the gradient of W v is δ vᵀ; of Wᵀ v, stored as W, it is v δᵀ; of a matrix per head
        # C (a variable, not a parameter) the same, head by head
        outer = HeadOuter if naming.parse(matrix_param(W)) is not None else Outer
        grad = outer(u, dm) if isinstance(W, Transposed) else outer(dm, u)
        paths.append((matrix_param(W), Term(eq.label, u, grad)))
    return paths


def _head_paths(eq: Equation, outputs) -> list[tuple[sp.Symbol, Term]]:
    delta = naming.adjoint(eq.lhs)
    products = {m: sp.Dummy(f"m{k}") for k, m in enumerate(sorted(eq.rhs.atoms(MatVec), key=str))}
    body = eq.rhs.xreplace(products)
    paths = []
    for v in sorted(body.free_symbols - set(products.values()), key=sp.default_sort_key):
        raw, local = local_derivative(body, v, products, outputs)
        paths.append((v, Term(eq.label, local, delta * local, raw)))
    return paths + _product_paths(eq, body, products, outputs, delta)


def _is_variable(cell: Cell, v: sp.Symbol) -> bool:
    return naming.parse(v) is not None or any(p.name == v.name for p in cell.params)


def size_of(cell: Cell, e: sp.Expr) -> str:
    """The size of the vector an element-wise expression makes (a reduction in it is one
    number per sample, or per head; v kᵀ is a matrix per head, u bᵀ of an N-vector b a
    matrix per channel)."""
    found = {"NH" for _ in e.atoms(headsum)} | {"H" for _ in e.atoms(RowSum)}
    e = e.xreplace({r: sp.S.One for r in e.atoms(total, Place, headsum, RowSum)})   # what
    found |= {CHANNEL_MATRIX if size_of(cell, o.args[1]) == "N" else HEAD_MATRIX   # they sum
              for o in e.atoms(HeadOuter)}                                         # does not
    e = e.xreplace({r: sp.S.One for r in e.atoms(HeadOuter)})                      # count
    found |= {spell_size_expr(r.args[2] - r.args[1]) for r in e.atoms(Part)}
    e = e.xreplace({r: sp.S.One for r in e.atoms(Part)})
    for m in e.atoms(MatVec, MatTVec):   # W u has W's rows, Wᵀ u its columns
        W = m.args[0]
        if isinstance(W, (sp.Symbol, Transposed)):
            found.add(cell.matrix_shape(W)[0 if isinstance(m, MatVec) else 1])
        elif size_of(cell, W) == CHANNEL_MATRIX:   # an expression (δh) applied to a vector
            found.add("H" if isinstance(m, MatVec) else "N")
        else:   # a matrix per head that is an expression (i ⊙ δC) applied to an H-vector
            found.add("H")
    e = e.xreplace({m: sp.S.One for m in e.atoms(MatVec, MatTVec)})
    for s in e.free_symbols:
        if _is_variable(cell, s):
            found.add(cell.dim(s))
    size, clash = combine(found)
    return size or next(iter(clash), "1")


def _split(eq: Equation, cell: Cell) -> list[tuple[sp.Symbol, Term]]:
    """``X = [u; v]`` sends each piece its own rows of δX."""
    delta, start, paths = naming.adjoint(eq.lhs), sp.S.Zero, []
    for v in eq.rhs.args:
        stop = start + size_expr(cell.dim(v))
        paths.append((v, Term(eq.label, Part(sp.S.One, start, stop), Part(delta, start, stop))))
        start = stop
    return paths


def local_derivative(body: sp.Expr, v: sp.Symbol, products, outputs):
    """∂body/∂v by the rules of ``ops.OPS``, and the same rewritten through the named forward
    outputs (σ'(ī) = σ(ī)(1 - σ(ī)) becomes i(1 - i))."""
    back = {d: m for m, d in products.items()}
    raw = diff(body, v).xreplace(back)
    return raw, raw.xreplace(outputs)
