"""Named constants become numbers before code is written: ε is printed as 1e-05."""
from __future__ import annotations

import dataclasses

import sympy as sp

from ..derivation.bptt import Derivation
from ..derivation.sweep import Sweep


def with_values(d: Derivation) -> Derivation:
    """``d`` with every named constant replaced by its value: code writes ε as 1e-05."""
    values = {sp.Symbol(n): sp.Float(v) for n, v in d.cell.constants.items()}
    if not values:
        return d

    def term(t):
        return t._replace(local=t.local.xreplace(values), expr=t.expr.xreplace(values),
                          raw=None if t.raw is None else t.raw.xreplace(values))

    def grads(gs):
        return tuple(g._replace(terms=tuple(map(term, g.terms))) for g in gs)
    cell = dataclasses.replace(d.cell, constants={}, equations=tuple(
        eq._replace(rhs=eq.rhs.xreplace(values)) for eq in d.cell.equations))
    return dataclasses.replace(
        d, cell=cell, forward=grads(d.forward), step=grads(d.step),
        through_time=grads(d.through_time), inputs=grads(d.inputs), initial=grads(d.initial),
        params=grads(d.params),
        sweep=Sweep({v: tuple(map(term, ts)) for v, ts in d.sweep.terms.items()}))
