"""How gradients flow back through time: the one-step Jacobians ∂s_t/∂s'_{t-1} between
recurrent states.

Two forms, both read off the derivation:

- the chain: the equations of one step in forward order, each contributing its local
  Jacobians (the sweep's terms, one per variable it reads) times the Jacobians already
  found, ``∂v/∂s' = Σ diag(a) M ∂w/∂s'``.  Its size is the size of the sweep, so it grows
  gently with the cell;
- the compact form ``Σ diag(a) M``: the chain multiplied out, one factor ``a`` per matrix.
  Multiplied out, the factors hold one term per path from s'_{t-1} to s_t, and the paths
  can double with every equation, so it is formed only for at most :data:`MAX_PATHS` paths.

The compact form comes from the derivation itself: seed the one-step sweep with
δ⁺s_t = u (and nothing from the loss), and what it sends back to s'_{t-1} is
(∂s_t/∂s'_{t-1})ᵀ u.  The terms without a matrix are the paths along which a gradient is
not multiplied by weights (for the LSTM, ∂c_t/∂c_{t-1} = diag(f_t)).
"""
from __future__ import annotations

from collections import defaultdict
from typing import NamedTuple

import sympy as sp

from .. import naming
from ..cell.ops import Concat, MatTVec, Part
from .bptt import Derivation


#: The most paths from s'_{t-1} to s_t for which the Jacobian is also multiplied out.
MAX_PATHS = 16


class Link(NamedTuple):
    """One equation's step of a chain: ∂``of``/∂``wrt`` = Σ diag(a) M ∂w/∂``wrt`` over
    ``terms`` (a, M, w), M None for the identity (and ∂w/∂wrt = I when w is ``wrt``).

    An equation that stacks vectors, ``of = [u; v; …]``, has no terms but ``blocks``: one
    (piece, depends) per piece, its Jacobian that block, zero when it does not depend on
    ``wrt``.
    """
    of: sp.Symbol
    wrt: sp.Symbol
    via: str
    terms: tuple[tuple[sp.Expr, sp.Expr | None, sp.Symbol], ...]
    blocks: tuple[tuple[sp.Symbol, bool], ...] | None = None

    def reads(self) -> list[sp.Symbol]:
        """The variables whose Jacobians this link uses."""
        if self.blocks is not None:
            return [w for w, depends in self.blocks if depends]
        return [w for _, _, w in self.terms]


class Jacobian(NamedTuple):
    """∂``of``/∂``wrt``: the ``chain`` of local Jacobians that gives it, always; and, for
    at most :data:`MAX_PATHS` paths, the compact form Σ diag(a) M over ``terms`` (a, M),
    M None for the identity.

    ``vjp`` is (∂of/∂wrt)ᵀ u, u = ``seed``, the form the terms are read from; it is None
    past :data:`MAX_PATHS` paths.  ``terms`` is None when ``vjp`` is, or when the Jacobian
    is not of that shape.  ``paths`` counts the paths from ``wrt`` to ``of``.
    """
    of: sp.Symbol
    wrt: sp.Symbol
    seed: sp.Symbol
    vjp: sp.Expr | None
    terms: tuple[tuple[sp.Expr, sp.Expr | None], ...] | None
    chain: tuple[Link, ...] = ()
    paths: int = 0


def jacobians(d: Derivation) -> tuple[Jacobian, ...]:
    """Every nonzero one-step Jacobian between the cell's states."""
    cell, out = d.cell, []
    seeds = {s: naming.timed(naming.parse(s).base, 0, naming.CARRY) for s in cell.new_states}
    chains = {prev: chain(d, prev) for prev in cell.prev_states}
    for s, u in seeds.items():
        counts = {prev: _paths(chains[prev], prev).get(s, 0) for prev in cell.prev_states}
        vjps = _step_vjp(d, {v: (sp.S.Zero if v != u else v) for v in seeds.values()}) \
            if any(0 < n <= MAX_PATHS for n in counts.values()) else {}
        for prev in cell.prev_states:
            if counts[prev] == 0:
                continue
            vjp = vjps.get(prev) if counts[prev] <= MAX_PATHS else None
            out.append(Jacobian(s, prev, u, vjp, None if vjp is None else _diag_terms(vjp, u),
                                _needed(chains[prev], s), counts[prev]))
    return tuple(out)


def chain(d: Derivation, wrt: sp.Symbol) -> tuple[Link, ...]:
    """The local Jacobians of every equation of one step that depends on ``wrt``, in forward
    order: the Jacobian of each variable with respect to ``wrt``, one link each."""
    uses = defaultdict(list)     # an equation's label -> (variable it reads, that path's term)
    for w, terms in d.sweep.terms.items():
        for t in terms:
            uses[t.via].append((w, t))
    reached, links = {wrt}, []
    for eq in d.cell.equations:
        if isinstance(eq.rhs, Concat):
            blocks = tuple((v, v in reached) for v in eq.rhs.args)
            link = Link(eq.lhs, wrt, eq.label, (), blocks) if any(r for _, r in blocks) else None
        else:
            terms = tuple(_local(eq.lhs, w, t) for w, t in uses[eq.label] if w in reached)
            link = Link(eq.lhs, wrt, eq.label, terms) if terms else None
        if link is not None:
            links.append(link)
            reached.add(eq.lhs)
    return tuple(links)


def _local(y: sp.Symbol, w: sp.Symbol, term) -> tuple[sp.Expr, sp.Expr | None, sp.Symbol]:
    """The local Jacobian of y with respect to w as (a, M, w): diag(a) M.  A path through a
    matrix product sends back Mᵀ(δy ⊙ a); an element-wise one δy ⊙ a, a its local derivative."""
    if isinstance(term.expr, MatTVec):
        M, inner = term.expr.args
        return inner.xreplace({naming.adjoint(y): sp.S.One}), M, w
    return term.local, None, w


def _paths(links: tuple[Link, ...], wrt: sp.Symbol) -> dict[sp.Symbol, int]:
    """How many paths lead from ``wrt`` to each variable of the chain."""
    count = {wrt: 1}
    for link in links:
        count[link.of] = sum(count.get(w, 0) for w in link.reads())
    return count


def _needed(links: tuple[Link, ...], of: sp.Symbol) -> tuple[Link, ...]:
    """The links ``of`` depends on, in forward order."""
    wanted, out = {of}, []
    for link in reversed(links):
        if link.of in wanted:
            out.append(link)
            wanted.update(link.reads())
    return tuple(reversed(out))


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
