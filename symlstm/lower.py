"""Lowering: a derivation becomes the statements of a fused, cached NumPy step.

No strings here: every statement is a ``(lhs, rhs)`` pair of SymPy objects.  What
lowering decides:

- matrix products on the same vector are fused: all ``W_g x_t`` become one GEMM over
  every time step before the loop, all ``R_g h_{t-1}`` one GEMM per step, and their
  adjoints one GEMM each (``Proj`` names a slice of such a fused product);
- each weight gradient is one large GEMM after the loop (``Group``);
- element-wise functions the backward pass needs (``tanh(c_t)``) are computed once in
  the forward pass and cached with the values the backward pass reads;
- each equation's statements go through SymPy's CSE.
"""
from __future__ import annotations

from typing import NamedTuple

import sympy as sp

from . import naming
from .bptt import Derivation
from .ops import DERIVATIVES, Concat, MatTVec, MatVec, Outer, Transposed, matrix_param


class Proj(sp.Function):
    """Rows ``start:stop`` of the fused product of group ``name`` at the current step."""

    nargs = 4   # name, start, stop, whole-sequence flag (1: indexed by t)


class GroupAdjoint(sp.Function):
    """``Wᵀ δ(W u)`` summed over a group's products: one GEMM with the fused matrices."""

    nargs = 2   # adjoint buffer, group name


class Group(NamedTuple):
    """Matrix products sharing one vector ``operand``, fused into one stacked matrix."""
    operand: sp.Symbol
    kind: str                       # "input" (all steps at once), "state" (u = s_{t-1}), "step"
    matrices: tuple[sp.Expr, ...]   # W or Wᵀ
    rows: tuple[str, ...]
    deltas: tuple[sp.Expr, ...]     # δ(W u) of each product, at step t
    adjoint_buffer: str             # shared by groups whose deltas are the same

    @property
    def name(self) -> str:
        return naming.code(self.operand)

    def offsets(self) -> list[sp.Expr]:
        out = [sp.S.Zero]
        for r in self.rows:
            out.append(out[-1] + sp.Symbol(r))
        return out


class Stmt(NamedTuple):
    lhs: sp.Symbol
    rhs: sp.Expr


class Block(NamedTuple):
    """The statements that implement one labelled equation; ``source`` is that equation."""
    label: str
    source: sp.Eq
    stmts: tuple[Stmt, ...]


class Plan(NamedTuple):
    derivation: Derivation
    groups: tuple[Group, ...]
    forward: tuple[Block, ...]          # one step, in order; group GEMMs placed by the template
    cached: tuple[tuple[sp.Symbol, str], ...]   # (value, size) the backward pass reads per step
    backward: tuple[Block, ...]         # one step, in sweep order
    carries: tuple[Block, ...]          # δs_{t-1} for every state, sent to the step before
    vector_grads: tuple[Stmt, ...]      # per-step contributions to vector parameters
    input_grads: tuple[Stmt, ...]       # per-step element-wise contributions to inputs

    @property
    def cell(self):
        return self.derivation.cell


def lower(d: Derivation) -> Plan:
    """Turn the derivation of one cell into the statements of its generated step."""
    cell = d.cell
    groups = _groups(d)
    products = {MatVec(W, g.operand): Proj(sp.Symbol(f"proj_{g.name}"), a, b,
                                           int(g.kind == "input"))
                for g in groups for W, a, b in zip(g.matrices, g.offsets(), g.offsets()[1:])}
    back_terms = {v: _fuse(v, ts, groups) for v, ts in d.sweep.terms.items()}
    hoisted = _hoist([*(e for es in back_terms.values() for e in es),
                      *(e for g in groups for e in g.deltas)])
    forward = _forward_blocks(cell, hoisted, products)
    backward = tuple(_block(g.label, g.eq, [(g.lhs, _sum(back_terms[naming.adjoint_of(g.lhs)],
                                                          hoisted))]) for g in d.step)
    backward = _place_stores(backward, _stores(groups, hoisted), groups)
    carries = tuple(_carry(d, p, back_terms, hoisted) for p in cell.prev_states)
    needed = set().union(*(s.rhs.free_symbols for b in backward + carries for s in b.stmts))
    needed -= {s.lhs for b in backward + carries for s in b.stmts}   # the step's own temporaries
    needed |= {g.operand for g in groups if g.kind == "step"}
    dims = {sym: _dim(cell, f) for f, sym in hoisted.items()}
    cached = tuple((s.lhs, dims.get(s.lhs) or cell.dim(s.lhs)) for b in forward for s in b.stmts
                   if s.lhs in needed and s.lhs not in cell.new_states)
    vector_grads = tuple(Stmt(naming.adjoint(p.symbol),
                              _sum([t.expr for t in d.sweep.terms[p.symbol]], hoisted))
                         for p in cell.params if not p.is_matrix)
    input_grads = tuple(Stmt(naming.adjoint(x), _sum(back_terms[x], hoisted))
                        for x in cell.input_symbols
                        if any(not isinstance(e, GroupAdjoint) for e in back_terms[x]))
    return Plan(d, groups, forward, cached, backward, carries, vector_grads, input_grads)


def _groups(d: Derivation) -> tuple[Group, ...]:
    """One group per vector that matrix products use, in the order the forward step meets them."""
    cell, found = d.cell, {}
    for eq in cell.equations:
        for m in sorted(eq.rhs.atoms(MatVec), key=sp.default_sort_key):
            W, u = m.args
            found.setdefault(u, {})[W] = None
    deltas = {}   # (W, u) -> δ(W u), read off the sweep's MatTVec terms
    for v, terms in d.sweep.terms.items():
        for t in terms:
            if isinstance(t.expr, MatTVec):
                key = (t.expr.args[0], v)   # the same W u may be used twice: add up
                deltas[key] = deltas.get(key, sp.S.Zero) + t.expr.args[1]
    groups, buffers = [], {}
    for u, mats in found.items():
        kind = ("input" if u in cell.input_symbols else
                "state" if u in cell.prev_states else "step")
        ds = tuple(deltas[(W, u)] for W in mats)
        buf = buffers.setdefault(ds, f"dproj_{naming.code(u)}")
        groups.append(Group(u, kind, tuple(mats), tuple(cell.matrix_shape(W)[0] for W in mats),
                            ds, buf))
    return tuple(groups)


def _fuse(v, terms, groups) -> tuple[sp.Expr, ...]:
    """v's terms, its matrix-product terms replaced by one fused GroupAdjoint."""
    out = [t.expr for t in terms if not isinstance(t.expr, (MatTVec, Outer))]
    if any(isinstance(t.expr, MatTVec) for t in terms):
        g = next(g for g in groups if g.operand == v)
        out.append(GroupAdjoint(sp.Symbol(g.adjoint_buffer), sp.Symbol(g.name)))
    return tuple(out)


def _hoist(exprs) -> dict[sp.Expr, sp.Symbol]:
    """Forward values the backward pass reads but no equation names, to compute once in the
    forward pass and cache: f(...) as ``tanh_c`` (f of one vector) or ``sigma_0`` (f of a
    sum), then the remaining matrix products as ``R_n_h_prev``."""
    found = set().union(*(e.atoms(*DERIVATIVES) for e in exprs)) if exprs else set()
    out = {}
    for f in sorted(found, key=sp.default_sort_key):
        parts = [naming.parse(s) for s in f.free_symbols]
        if any(p is not None and p.kind for p in parts):
            continue    # depends on an adjoint: not a forward value
        arg = f.args[0]
        p = naming.parse(arg) if isinstance(arg, sp.Symbol) else None
        name = f"{f.func.__name__}_{p.base}" if p and p.shift == 0 else f"{f.func.__name__}_{len(out)}"
        out[f] = naming.timed(name)
    rest = set().union(*(e.xreplace(out).atoms(MatVec) for e in exprs)) if exprs else set()
    for m in sorted(rest, key=sp.default_sort_key):
        W = m.args[0]
        name = matrix_param(W).name + ("T" if isinstance(W, Transposed) else "")
        out[m] = naming.timed(f"{name}_{naming.code(m.args[1])}")
    return out


def _forward_blocks(cell, hoisted, products) -> tuple[Block, ...]:
    """The step's equations; a cached f(v_t) is computed in the first block that uses it."""
    pending, blocks = dict(hoisted), []
    for eq in cell.equations:
        rhs = eq.rhs.xreplace(hoisted).xreplace(products)
        first = [(s, f.xreplace(products)) for f, s in pending.items() if s in rhs.free_symbols]
        for s, _ in first:
            del pending[next(f for f, v in pending.items() if v == s)]
        blocks.append(_block(f"fwd:{eq.label}", sp.Eq(eq.lhs, eq.rhs, evaluate=False),
                             [*first, (eq.lhs, rhs)]))
    return tuple(blocks)


def _block(label: str, source: sp.Eq, pairs) -> Block:
    """Statements through CSE; temporaries are named _tmp0, _tmp1, ... within the block."""
    keep = [sp.Symbol(n) for n in ("t", "D", "H")]
    temps, reduced = sp.cse([r for _, r in pairs], symbols=sp.numbered_symbols("_tmp"),
                            ignore=keep)
    stmts = [Stmt(t, e) for t, e in temps] + [Stmt(l, r) for (l, _), r in zip(pairs, reduced)]
    return Block(label, source, tuple(stmts))


def _carry(d: Derivation, prev: sp.Symbol, back_terms, hoisted) -> Block:
    """δs_{t-1}: what this step sends back to the one before (δs_0 after the last)."""
    label = f"init:{naming.grad_key(prev)}"
    source = d[label].eq if any(g.label == label for g in d.initial) else None
    carry = naming.timed(naming.parse(prev).base, 0, naming.CARRY)
    return _block(label, source, [(carry, _sum(back_terms.get(prev, ()), hoisted))])


def _dim(cell, e: sp.Expr) -> str:
    """The size of an element-wise expression: that of any vector in it."""
    if isinstance(e, MatVec):
        return cell.matrix_shape(e.args[0])[0]
    if isinstance(e, Concat):
        return str(sum((sp.sympify(cell.dim(v)) for v in e.args), sp.S.Zero))
    if isinstance(e, sp.Symbol) and (naming.parse(e) or not cell.param(e.name).is_matrix):
        return cell.dim(e)
    return next(d for d in (_dim(cell, a) for a in e.args if not a.is_Number) if d)


def _sum(exprs, hoisted) -> sp.Expr:
    return sp.Add(*exprs).xreplace(hoisted)


def _stores(groups, hoisted) -> tuple[Block, ...]:
    """Write each group's product adjoints δ(W u) into its (possibly shared) fused buffer."""
    blocks, done = [], set()
    for g in groups:
        if g.adjoint_buffer in done:
            continue
        done.add(g.adjoint_buffer)
        buf = sp.Symbol(g.adjoint_buffer)
        stmts = tuple(Stmt(Proj(buf, a, b, 1), delta.xreplace(hoisted))
                      for a, b, delta in zip(g.offsets(), g.offsets()[1:], g.deltas))
        blocks.append(Block(f"store:{g.name}", None, stmts))
    return tuple(blocks)


def _place_stores(backward, stores, groups) -> tuple[Block, ...]:
    """Each store goes right before the first block that reads its buffer, else at the end."""
    out = list(backward)
    for store in stores:
        buf = store.stmts[0].lhs.args[0]
        k = next((k for k, b in enumerate(out) if any(
            a.args[0] == buf for s in b.stmts for a in s.rhs.atoms(GroupAdjoint))), len(out))
        out.insert(k, store)
    return tuple(out)
