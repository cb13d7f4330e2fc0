"""How one step changes when a matrix per head changes: the differential of each equation,
``dS_t = α_t dS_{t-1} - …``, which writes a Jacobian between matrices as a textbook does
(no diag(a) M holds a map from matrices to matrices)."""
from __future__ import annotations

import sympy as sp

from .. import naming
from ..cell.ops import (OPS, Concat, HeadOuter, MatTVec, MatVec, Part, Place, Transposed,
                        headsum, mean, total)
from .latex import latex
from .lines import latex_lines
from .tex import eqref, matrix_states


class Change(sp.Function):
    """d v: the change of the variable v (printed \\mathrm{d} v)."""

    nargs = 1


def differential(e: sp.Expr, changes: dict) -> sp.Expr:
    """The change of ``e`` when each variable v of ``changes`` changes by changes[v], to first
    order: linear maps (products, v kᵀ, C q, sums within a head) applied to the changes, an
    element-wise function's derivative from the table times the change of its argument."""
    if e in changes:
        return changes[e]
    if not (e.free_symbols & set(changes)):
        return sp.S.Zero
    if isinstance(e, sp.Add):
        return sp.Add(*(differential(a, changes) for a in e.args))
    if isinstance(e, sp.Mul):
        return sp.Add(*(sp.Mul(*e.args[:k], differential(a, changes), *e.args[k + 1:])
                        for k, a in enumerate(e.args)))
    if isinstance(e, (HeadOuter, MatVec, MatTVec)):   # bilinear
        a, b = e.args
        da, db = differential(a, changes), differential(b, changes)
        return (e.func(da, b) if da != 0 else 0) + (e.func(a, db) if db != 0 else 0)
    if isinstance(e, (Transposed, headsum, total, mean, Part, Place)):   # linear in the first
        return e.func(differential(e.args[0], changes), *e.args[1:])
    if isinstance(e, Concat):
        return Concat(*(differential(a, changes) for a in e.args))
    if isinstance(e, sp.Pow) and e.exp.is_number:
        return e.exp * e.base ** (e.exp - 1) * differential(e.base, changes)
    op = OPS.get(e.func)
    if op is None:
        raise ValueError(f"no rule for the change of {e.func.__name__}")
    slopes = op.derivative(e, *e.args)
    slopes = slopes if isinstance(slopes, tuple) else (slopes,)
    return sp.Add(*(s * differential(a, changes) for s, a in zip(slopes, e.args)))


def step_differentials(cell, prev: sp.Symbol) -> list[tuple[sp.Symbol, sp.Expr, str]]:
    """(y, dy, label) for every equation of one step that depends on the state ``prev``, in
    forward order, each dy written through the changes of what the equation reads."""
    changes, out = {prev: Change(prev)}, []
    forward = {eq.rhs: eq.lhs for eq in cell.equations}
    for eq in cell.equations:
        if not eq.rhs.free_symbols & set(changes):
            continue
        dy = differential(eq.rhs, changes).xreplace(forward)
        changes[eq.lhs] = Change(eq.lhs)
        out.append((eq.lhs, dy, eq.label))
    return out


def differential_flow(d) -> dict | None:
    """The flow section's content for a cell with a matrix per head as a state (None for
    others): those states with their recurrences, and from each state at t-1 the change of
    every equation it reaches, as LaTeX."""
    cell = d.cell
    if not matrix_states(cell):
        return None
    states = [dict(state=latex(s), rec=eqref(g.label)) for s in matrix_states(cell)
              for g in d.through_time if naming.adjoint_of(g.lhs) == s]
    try:
        chains = [dict(wrt=latex(prev), lines=[
            dict(lhs=latex(Change(y)), terms=latex_lines(latex(dy)),
                 ref=eqref(naming.label(naming.FORWARD, label)))
            for y, dy, label in step_differentials(cell, prev)]) for prev in cell.prev_states]
    except ValueError:   # a function without a rule: the recurrences alone say it
        chains = []
    return dict(states=states, chains=chains)
