"""Lowering: a derivation becomes the statements of a fused, cached NumPy step.

No strings here: every statement is a ``(lhs, rhs)`` pair of SymPy objects.  What
lowering decides:

- matrix products on the same vector are fused: all ``W_g x_t`` become one GEMM over
  every time step before the loop, all ``R_g h_{t-1}`` one GEMM per step, and their
  adjoints one GEMM each (``Proj`` names a slice of such a fused product);
- biases that stand beside an input product are folded into its projection, and a state
  group whose products meet the input group's in the same sums adds that projection in,
  so ``W_z x_t + R_z h_{t-1} + b_z`` is one slice of one per-step buffer;
- each weight gradient is one large GEMM after the loop (``Group``), and a bias gradient
  that is a product adjoint is one sum over that buffer;
- element-wise functions the backward pass needs (``tanh(c_t)``) are computed once in
  the forward pass and cached with the values the backward pass reads; those, the states
  and the product adjoints are computed straight into their array slots (``Stmt.into``);
- every division is a ``Quotient``, numerator first: ``f/s/s``, not ``f*(1/s**2)`` (division.py);
- each equation's statements go through SymPy's CSE.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import sympy as sp

from .. import naming
from ..cell.matrices import refuse_per_head
from ..cell.ops import OPS, REDUCTIONS, Concat, MatVec, Part, Place, Transposed, matrix_param
from ..cell.parts import add_sizes, size_expr, spell_size_expr
from ..derivation.bptt import Derivation
from ..derivation.sweep import Sweep
from .division import quotients
from .gemms import Group, GroupAdjoint, Proj, _fuse, _fusions, _groups, _rewrite
from .values import with_values
class Stmt(NamedTuple):
    """``lhs = rhs``; with ``into``, lhs is a view of that array slot, computed in place."""
    lhs: sp.Symbol
    rhs: sp.Expr
    into: sp.Expr | None = None


class Broadcast(sp.Function):
    """A value that is the same for every sample (it reads parameters only), spread over the
    batch so that every vector of the step has one row per sample (value, size)."""

    nargs = 2


class Slot(sp.Function):
    """Row t of a per-step array: ``cache_z[t]``, ``seq_c[t + 1]`` (name, offset from t)."""

    nargs = 2


class Block(NamedTuple):
    """The statements that implement the equation labelled ``kind:name``, which is ``source``
    (None for a store into a fused GEMM's buffer, which is no equation of the document)."""
    kind: str
    name: str
    source: sp.Eq | None
    stmts: tuple[Stmt, ...]

    @property
    def label(self) -> str:
        return naming.label(self.kind, self.name)


class Plan(NamedTuple):
    derivation: Derivation
    groups: tuple[Group, ...]
    forward: tuple[Block, ...]          # one step, in order; group GEMMs placed by the template
    cached: tuple[tuple[sp.Symbol, str], ...]   # (value, size) the backward pass reads per step
    backward: tuple[Block, ...]         # one step, in sweep order
    carries: tuple[Block, ...]          # δs_{t-1} for every state, sent to the step before
    vector_grads: tuple[Stmt, ...]      # per-step contributions to vector parameters
    input_grads: tuple[Stmt, ...]       # per-step element-wise contributions to inputs
    summed_grads: tuple[tuple[str, str, sp.Expr, sp.Expr], ...]   # (param, buffer, a, b):
    # vector parameters whose gradient is a slice of an adjoint buffer summed after the loop

    @property
    def cell(self):
        return self.derivation.cell


def lower(d: Derivation) -> Plan:
    """Turn the derivation of one cell into the statements of its generated step."""
    last, plan = _last[0]    # one read: another thread may replace the pair meanwhile
    if last is d:            # the NumPy, Numba and torch modules of a build lower the same d
        return plan
    plan = _lower(d)
    _last[0] = d, plan
    return plan


#: (the derivation lowered last, its plan): both immutable.
_last: list = [(None, None)]


def _lower(d: Derivation) -> Plan:
    refuse_per_head(d.cell, "fused lowering of the vector cells (symlstm.lower.plan)")
    d = _spread_places(with_values(d))
    cell, plain = d.cell, _groups(d)
    back_terms = {v: _fuse(v, ts, plain) for v, ts in d.sweep.terms.items()}
    hoisted = _hoist([*(e for es in back_terms.values() for e in es),
                      *(e for g in plain for e in g.deltas)])
    groups = _fusions(cell, plain, hoisted)
    buffers = tuple({g.adjoint_buffer: g for g in groups}.values())
    slots = _adjoint_slots(buffers)
    backward = tuple(_block(g.kind, g.name, g.eq, [(g.lhs, _spread(
        cell, g.lhs, back_terms[naming.adjoint_of(g.lhs)], hoisted))], slots)
                     for g in d.step)
    backward = _place_stores(backward, _stores(buffers, hoisted, slots))
    summed = tuple((p.name, *slot.args[:3]) for p in cell.params if not p.is_matrix
                   for slot in [slots.get(_single(d.sweep.terms[p.symbol]))] if slot is not None)
    summed_params = {name for name, *_ in summed}
    carries = tuple(_carry(d, p, back_terms, hoisted) for p in cell.prev_states)
    vector_grads, input_grads = _vector_grads(d, hoisted, summed_params), \
        _input_grads(cell, back_terms, hoisted)
    cached = _cached(cell, groups, hoisted, backward + carries, vector_grads + input_grads)
    places = {v: Slot(sp.Symbol(naming.cached(naming.code(v))), 0) for v, _ in cached}
    places.update({s: Slot(sp.Symbol(naming.sequence(naming.parse(s).base)), 1)
                   for s in cell.new_states})
    forward = _forward_blocks(cell, hoisted, _rewrite(cell, groups), places)
    return Plan(d, groups, forward, cached, backward, carries, vector_grads, input_grads, summed)


def _spread_places(d: Derivation) -> Derivation:
    """A part's adjoint that is one number per sample, spread over the part's rows before it
    is placed among the vector's."""
    def spread(e):
        return e.replace(
            lambda u: isinstance(u, Place) and _dim(d.cell, u.args[0]) == "1"
            and sp.expand(u.args[2] - u.args[1]) != 1,
            lambda u: Place(Broadcast(u.args[0], u.args[2] - u.args[1]), *u.args[1:]))
    terms = {v: tuple(t._replace(expr=spread(t.expr)) for t in ts)
             for v, ts in d.sweep.terms.items()}
    return dataclasses.replace(d, sweep=Sweep(terms))


def _vector_grads(d, hoisted, summed_params) -> tuple[Stmt, ...]:
    """Per-step contributions to the vector parameters not summed from a buffer."""
    return tuple(Stmt(naming.adjoint(p.symbol),
                      _sum([t.expr for t in d.sweep.terms[p.symbol]], hoisted))
                 for p in d.cell.params if not p.is_matrix and p.name not in summed_params)


def _input_grads(cell, back_terms, hoisted) -> tuple[Stmt, ...]:
    """Per-step element-wise contributions to the inputs (matrix paths go through a GEMM)."""
    return tuple(Stmt(naming.adjoint(x), _spread(cell, x, back_terms[x], hoisted))
                 for x in cell.input_symbols
                 if any(not isinstance(e, GroupAdjoint) for e in back_terms[x]))


def _adjoint_slots(buffers) -> dict[sp.Symbol, "Proj"]:
    """Each product adjoint δ(W u) that is a single variable is computed straight into its
    slice of the adjoint buffer (the first buffer that holds it)."""
    slots = {}
    for g in buffers:
        for delta, a, b in zip(g.deltas, g.offsets(), g.offsets()[1:]):
            if isinstance(delta, sp.Symbol):
                slots.setdefault(delta, Proj(sp.Symbol(g.adjoint_buffer), a, b, 1))
    return slots


def _cached(cell, groups, hoisted, blocks, grads) -> tuple[tuple[sp.Symbol, str], ...]:
    """The forward values, with their sizes, that the backward pass reads (states aside:
    they are kept as whole sequences), and the output where it is not a state."""
    needed = set().union(*(s.rhs.free_symbols for s in grads))
    for b in blocks:   # less each block's own temporaries
        needed |= set().union(*(s.rhs.free_symbols for s in b.stmts)) - {s.lhs for s in b.stmts}
    needed |= {g.operand for g in groups if g.kind == "step"}
    if not cell.output_is_state:   # an output that is no state is returned from its cache
        needed.add(naming.timed(cell.output))
    dims = {sym: _dim(cell, f) for f, sym in hoisted.items()}
    return tuple((v, dims.get(v) or cell.dim(v)) for v in
                 [*hoisted.values(), *(eq.lhs for eq in cell.equations)]
                 if v in needed and v not in cell.new_states)


def _single(terms):
    """The one term of a sum over paths, when there is exactly one."""
    return terms[0].expr if len(terms) == 1 else None


def _hoist(exprs) -> dict[sp.Expr, sp.Symbol]:
    """Forward values the backward pass reads but no equation names, to compute once in the
    forward pass and cache: f(...) as ``tanh_c`` (f of one vector) or ``sigma_0`` (f of a
    sum), then the remaining matrix products as ``R_n_h_prev``."""
    found = set().union(*(e.atoms(*OPS) for e in exprs)) if exprs else set()
    out = {}
    for f in sorted(found, key=sp.default_sort_key):
        parts = [naming.parse(s) for s in f.free_symbols]
        if any(p is not None and p.kind for p in parts):
            continue    # depends on an adjoint: not a forward value
        if not f.free_symbols:
            continue    # a constant such as σ(0): computed where it is used, never cached
        arg = f.args[0]
        p = naming.parse(arg) if isinstance(arg, sp.Symbol) else None
        op = f.func.__name__.lower()
        name = f"{op}_{p.base}" if p and p.shift == 0 else f"{op}_{len(out)}"
        out[f] = naming.timed(name)
    rest = set().union(*(e.xreplace(out).atoms(MatVec) for e in exprs)) if exprs else set()
    for m in sorted(rest, key=sp.default_sort_key):
        W = m.args[0]
        name = matrix_param(W).name + ("T" if isinstance(W, Transposed) else "")
        out[m] = naming.timed(f"prod_{name}_{naming.code(m.args[1])}")
    return out


def _forward_blocks(cell, hoisted, rewrite, places) -> tuple[Block, ...]:
    """The step's equations with the hoisted values computed among them; every value the
    backward pass reads is computed straight into its cache slot."""
    where = _placement(cell, hoisted)
    definitions = {s: rewrite(_definition(f, hoisted)) for f, s in hoisted.items()}
    order = sorted(hoisted.items(), key=lambda fs: (where[fs[1]], _tree_size(fs[0])))
    blocks, per_sample = [], {*cell.input_symbols, *cell.prev_states}
    for k, eq in enumerate(cell.equations):
        before = [(s, definitions[s]) for _, s in order if where[s] == (k, 0)]
        after = [(s, definitions[s]) for _, s in order if where[s] == (k, 1)]
        rhs = rewrite(eq.rhs.xreplace(hoisted))
        if eq.rhs.free_symbols & per_sample:
            per_sample.add(eq.lhs)
        else:
            rhs = Broadcast(rhs, size_expr(cell.dim(eq.lhs)))
        blocks.append(_block(naming.FORWARD, eq.label, sp.Eq(eq.lhs, eq.rhs, evaluate=False),
                             [*before, (eq.lhs, rhs), *after], places))
    return tuple(blocks)


def _placement(cell, hoisted) -> dict[sp.Symbol, tuple[int, int]]:
    """Where each hoisted value is computed, as (equation, 0 before it or 1 after it): in the
    first equation that reads it, else as soon as what it reads is known (a product on a
    vector the step computes is known once that vector's GEMM has run, at the start of the
    next equation); a value that another one is computed from goes no later than that one."""
    index = {eq.lhs: k for k, eq in enumerate(cell.equations)}

    def ready(f):
        after = [(index[v], 1) for v in f.free_symbols if v in index]
        after += [(index[m.args[1]] + 1, 0) for m in f.atoms(MatVec) if m.args[1] in index]
        return max(after, default=(0, 0))

    where = {}
    for f, s in hoisted.items():
        use = next((k for k, eq in enumerate(cell.equations) if eq.rhs.has(f)), None)
        where[s] = (use, 0) if use is not None else ready(f)
    for f, s in sorted(hoisted.items(), key=lambda fs: -_tree_size(fs[0])):
        for g, u in hoisted.items():
            if g != f and f.has(g):
                where[u] = min(where[u], where[s])
    return where


def _definition(f, hoisted) -> sp.Expr:
    """A hoisted value computed from the hoisted values inside it."""
    return f.func(*(a.xreplace(hoisted) for a in f.args))


def _tree_size(e) -> int:
    return sum(1 for _ in sp.preorder_traversal(e))


def _block(kind: str, name: str, source: sp.Eq, pairs, places=None) -> Block:
    """Statements through CSE; temporaries are named _tmp0, _tmp1, ... within the block, each
    computed right before the first statement that reads it (which may follow statements
    that compute what the temporary reads).  A left side found in ``places`` is computed
    into that array slot."""
    keep = [sp.Symbol(n) for n in ("t", *naming.SIZES)]
    temps, reduced = sp.cse([quotients(r) for _, r in pairs], symbols=sp.numbered_symbols("_tmp"),
                            ignore=keep)
    places, pending, stmts = places or {}, dict(temps), []

    def emit_temps(e):
        for t in sorted(e.free_symbols & set(pending), key=lambda s: s.name):
            value = pending.pop(t)
            emit_temps(value)
            stmts.append(Stmt(t, value))

    for (lhs, _), rhs in zip(pairs, reduced):
        emit_temps(rhs)
        stmts.append(Stmt(lhs, rhs, places.get(lhs)))
    return Block(kind, name, source, tuple(stmts))


def _carry(d: Derivation, prev: sp.Symbol, back_terms, hoisted) -> Block:
    """Step t's share of δs_{t-1}: the terms of (rec:s) at step t+1 seen from step t, and
    δs_0 after the last step (init:s0)."""
    base = naming.parse(prev).base
    source = sp.Eq(naming.adjoint(prev), d.sweep.adjoint(prev), evaluate=False)
    carry = naming.timed(base, 0, naming.CARRY)
    return _block(naming.RECURRENCE, base, source,
                  [(carry, _spread(d.cell, carry, back_terms.get(prev, ()), hoisted))])


def _dim(cell, e: sp.Expr) -> str | None:
    """The size of an element-wise expression: that of any vector in it ("1" for a reduction
    or a scalar; a vector of another size in it wins, as it broadcasts them)."""
    if isinstance(e, MatVec):
        return cell.matrix_shape(e.args[0])[0]
    if isinstance(e, Concat):
        return add_sizes(cell.dim(v) for v in e.args)
    if e.func in REDUCTIONS:
        return "1"
    if isinstance(e, (Part, Place)):
        return spell_size_expr(e.args[3] if isinstance(e, Place) else e.args[2] - e.args[1])
    if isinstance(e, sp.Symbol):
        if naming.parse(e) or any(p.name == e.name and not p.is_matrix for p in cell.params):
            return cell.dim(e)
        return None   # a size, D or H
    found = {d for d in (_dim(cell, a) for a in e.args if not a.is_number) if d}
    return next(iter(found - {"1"}), "1" if found else None)


def _spread(cell, v: sp.Symbol, exprs, hoisted) -> sp.Expr:
    """The sum of a vector's adjoint terms; where every term is one number per sample (the
    vector reached the loss only through a mean or a sum), spread over its entries."""
    rhs, dim = sp.Add(*exprs), cell.dim(v)
    if dim != "1" and _dim(cell, rhs) == "1":
        rhs = Broadcast(rhs, size_expr(dim))
    return rhs.xreplace(hoisted)


def _sum(exprs, hoisted) -> sp.Expr:
    return quotients(sp.Add(*exprs).xreplace(hoisted))


def _stores(groups, hoisted, slots) -> tuple[Block, ...]:
    """Write each buffer's product adjoints δ(W u) that were not computed in place."""
    blocks = []
    for g in groups:
        buf = sp.Symbol(g.adjoint_buffer)
        stmts = tuple(Stmt(Proj(buf, a, b, 1), quotients(delta.xreplace(hoisted)))
                      for a, b, delta in zip(g.offsets(), g.offsets()[1:], g.deltas)
                      if slots.get(delta) != Proj(buf, a, b, 1))
        if stmts:
            blocks.append(Block(naming.STORE, g.name, None, stmts))
    return tuple(blocks)


def _place_stores(backward, stores) -> tuple[Block, ...]:
    """Each store goes right before the first block that reads its buffer, else at the end."""
    out = list(backward)
    for store in stores:
        buf = store.stmts[0].lhs.args[0]
        k = next((k for k, b in enumerate(out) if any(
            a.args[0] == buf for s in b.stmts for a in s.rhs.atoms(GroupAdjoint))), len(out))
        out.insert(k, store)
    return tuple(out)
