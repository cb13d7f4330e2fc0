"""Why gradients survive: the one-step Jacobians ∂s_t/∂s'_{t-1} between recurrent states.

They come from the derivation itself: seed the one-step sweep with δ⁺s_t = u (and
nothing from the loss), and what it sends back to s'_{t-1} is (∂s_t/∂s'_{t-1})ᵀ u.
Read off as a sum of ``diag(a) M`` (M a weight matrix, or the identity), the terms
without a matrix are the paths along which a gradient is not multiplied by weights.
"""
from __future__ import annotations

from typing import NamedTuple

import sympy as sp

from . import naming
from .bptt import Derivation
from .ops import MatTVec, Part


class Jacobian(NamedTuple):
    """∂``of``/∂``wrt`` = Σ diag(a) M over ``terms`` (a, M); M None is the identity.

    ``vjp`` is (∂of/∂wrt)ᵀ u, the form the terms are read from; ``terms`` is None when
    the Jacobian is not of that shape (then only ``vjp`` is shown).
    """
    of: sp.Symbol
    wrt: sp.Symbol
    seed: sp.Symbol
    vjp: sp.Expr
    terms: tuple[tuple[sp.Expr, sp.Expr | None], ...] | None


def jacobians(d: Derivation) -> tuple[Jacobian, ...]:
    """Every nonzero one-step Jacobian between the cell's states."""
    cell, out = d.cell, []
    seeds = {s: naming.timed(naming.parse(s).base, 0, naming.CARRY) for s in cell.new_states}
    for s, u in seeds.items():
        only = {v: (sp.S.Zero if v != u else v) for v in seeds.values()}
        vjps = _step_vjp(d, only)
        for prev in cell.prev_states:
            vjp = vjps[prev]
            if vjp != 0:
                out.append(Jacobian(s, prev, u, vjp, _diag_terms(vjp, u)))
    return tuple(out)


def _step_vjp(d: Derivation, seeds: dict) -> dict[sp.Symbol, sp.Expr]:
    """What one step sends back to each s_{t-1}, with δ⁺ seeded and no loss."""
    external = naming.timed(d.cell.output, 0, naming.EXTERNAL)
    env = {external: sp.S.Zero, **seeds}
    for g in d.step:
        env[g.lhs] = g.rhs.xreplace(env)
    return {p: d.sweep.adjoint(p).xreplace(env) for p in d.cell.prev_states}


def _diag_terms(vjp: sp.Expr, u: sp.Symbol):
    """Split Jᵀu = Σ Mᵀ(a ⊙ u) + a ⊙ u, so J = Σ diag(a) M; None if it is not of that form.

    Jᵀu is linear in u, so each coefficient a is its term at u = 1, kept factored."""
    terms: dict = {}
    for term in sp.Add.make_args(vjp):
        M, inner = term.args if isinstance(term, MatTVec) else (None, term)
        if inner.atoms(MatTVec, Part) or u not in inner.free_symbols:
            return None
        terms[M] = terms.get(M, sp.S.Zero) + inner.xreplace({u: sp.S.One})
    return tuple((a, M) for M, a in terms.items() if a != 0)
