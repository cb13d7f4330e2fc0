"""The matrix products of a step, fused: all products on one vector become one GEMM
(``Group``), its slices named by ``Proj``; biases beside an input product fold into its
projection; a state group whose products meet the input group's in the same sums adds that
projection in; and each weight gradient is one GEMM over the group's adjoint buffer."""
from __future__ import annotations

from typing import NamedTuple

import sympy as sp

from .. import naming
from ..cell.ops import MatTVec, MatVec, Outer, matrix_param
from ..cell.parts import size_expr
from ..derivation.bptt import Derivation


class Proj(sp.Function):
    """Rows ``start:stop`` of the fused product of group ``name`` at the current step."""

    nargs = 4   # name, start, stop, whole-sequence flag (1: indexed by t)


class GroupAdjoint(sp.Function):
    """``Wᵀ δ(W u)`` summed over a group's products: one GEMM with the fused matrices."""

    nargs = 2   # adjoint buffer, group name


class HeadsAdjoint(GroupAdjoint):
    """``Wᵀ δ(W u)`` summed over a group of per-head (block-diagonal) products, head by head."""


class Group(NamedTuple):
    """Matrix products sharing one vector ``operand``, fused into one stacked matrix."""
    operand: sp.Symbol
    kind: str                       # "input" (all steps at once), "state" (u = s_{t-1}), "step"
    matrices: tuple[sp.Expr, ...]   # W or Wᵀ
    rows: tuple[str, ...]
    deltas: tuple[sp.Expr, ...]     # δ(W u) of each product, at step t
    adjoint_buffer: str             # shared by groups whose deltas are the same
    adds: str = ""                  # (state) an input group whose projection this one adds in
    biases: tuple[str, ...] = ()    # (input) bias vectors folded into the projection
    heads: bool = False             # per-head blocks, applied head by head (not one GEMM)

    @property
    def name(self) -> str:
        return naming.code(self.operand) + ("_heads" if self.heads else "")

    def adjoint(self) -> GroupAdjoint:
        """Wᵀ δ(W u) summed over the group's products, as the backward step reads it."""
        return (HeadsAdjoint if self.heads else GroupAdjoint)(sp.Symbol(self.adjoint_buffer),
                                                              sp.Symbol(self.name))

    def offsets(self) -> list[sp.Expr]:
        out = [sp.S.Zero]
        for r in self.rows:
            out.append(out[-1] + size_expr(r))
        return out


def _groups(d: Derivation) -> tuple[Group, ...]:
    """One group per vector that matrix products use, in the order the forward step meets them."""
    cell, found = d.cell, {}
    for eq in cell.equations:   # dense and per-head products on one vector: two groups
        for m in sorted(eq.rhs.atoms(MatVec), key=sp.default_sort_key):
            W, u = m.args
            found.setdefault((u, cell.param(matrix_param(W).name).is_heads), {})[W] = None
    deltas = {}   # (W, u) -> δ(W u), read off the sweep's MatTVec terms
    for v, terms in d.sweep.terms.items():
        for t in terms:
            if isinstance(t.expr, MatTVec):
                key = (t.expr.args[0], v)   # the same W u may be used twice: add up
                deltas[key] = deltas.get(key, sp.S.Zero) + t.expr.args[1]
    groups, buffers = [], {}
    for (u, heads), mats in found.items():
        kind = ("input" if u in cell.input_symbols else
                "state" if u in cell.prev_states else "step")
        ds = tuple(deltas[(W, u)] for W in mats)
        group = Group(u, kind, tuple(mats), tuple(cell.matrix_shape(W)[0] for W in mats),
                      ds, "", heads=heads)
        groups.append(group._replace(adjoint_buffer=buffers.setdefault(
            (ds, heads), f"dproj_{group.name}")))
    return tuple(groups)


def _fusions(cell, groups, hoisted) -> tuple[Group, ...]:
    """Fold each input group's biases into its projection, and let a state group whose
    products meet the input group's, slice by slice, in the same sums add that projection in:
    then ``W_z x_t + R_z h_{t-1} + b_z`` is one slice of one per-step buffer."""
    out, taken = list(groups), set()   # a bias folds into one projection only
    for k, gx in enumerate(out):
        if gx.kind != "input" or any(_uses(cell, MatVec(W, gx.operand)) != 1
                                     or MatVec(W, gx.operand) in hoisted for W in gx.matrices):
            continue
        sums = [_container(cell, MatVec(W, gx.operand)) for W in gx.matrices]
        biases = [next((a for a in (s.args if s is not None else ()) if _is_bias(cell, a)), None)
                  for s in sums]
        # a bias is folded into one projection only: two inputs' products may share its sum
        if all(biases) and len(set(biases)) == len(biases) and not taken & set(biases):
            out[k] = gx = gx._replace(biases=tuple(b.name for b in biases))
            taken |= set(biases)
        for j, gs in enumerate(out):
            if gs.kind == "state" and not gs.adds and gs.rows == gx.rows and all(
                    MatVec(Ws, gs.operand) not in hoisted and s is not None
                    and _uses(cell, MatVec(Ws, gs.operand)) == 1
                    and MatVec(Ws, gs.operand) in s.args for Ws, s in zip(gs.matrices, sums)):
                out[j] = gs._replace(adds=gx.name)
                break
    return tuple(out)


def _uses(cell, m) -> int:
    """How many times the product m occurs in the step's equations."""
    return sum(1 for eq in cell.equations for e in sp.preorder_traversal(eq.rhs) if e == m)


def _container(cell, m):
    """The sum, in some equation, that has the product m as a term."""
    for eq in cell.equations:
        for e in sp.preorder_traversal(eq.rhs):
            if isinstance(e, sp.Add) and m in e.args:
                return e
    return None


def _is_bias(cell, a) -> bool:
    return isinstance(a, sp.Symbol) and naming.parse(a) is None and \
        not cell.param(a.name).is_matrix


def _rewrite(cell, groups):
    """A function from an equation's right side to the one the generated step computes:
    matrix products (with folded biases) become slices of the fused per-step buffers."""
    rules = []   # (terms to take out of one sum, the slice that replaces them)
    for g in groups:
        for k, (W, a, b) in enumerate(zip(g.matrices, g.offsets(), g.offsets()[1:])):
            taken = [MatVec(W, g.operand)]
            if g.kind == "input":
                merged = next((s for s in groups if s.adds == g.name), None)
                taken += [sp.Symbol(g.biases[k])] if g.biases else []
                if merged is not None:
                    taken.append(MatVec(merged.matrices[k], merged.operand))
                    rules.append((taken, Proj(sp.Symbol(f"proj_{merged.name}"), a, b, 0)))
                    continue
                rules.append((taken, Proj(sp.Symbol(f"proj_{g.name}"), a, b, 1)))
            elif not g.adds:    # a merged state group's products go with the input group's
                rules.append((taken, Proj(sp.Symbol(f"proj_{g.name}"), a, b, 0)))

    def rewrite(rhs):
        for taken, slot in rules:
            rhs = rhs.replace(lambda e: isinstance(e, sp.Add) and all(t in e.args for t in taken),
                              lambda e: e - sp.Add(*taken) + slot)
            rhs = rhs.xreplace({taken[0]: slot}) if len(taken) == 1 else rhs
        assert not rhs.atoms(MatVec), f"a fused product was used outside its sum: {rhs}"
        return rhs
    return rewrite


def _fuse(v, terms, groups) -> tuple[sp.Expr, ...]:
    """v's terms, its matrix-product terms replaced by one fused GroupAdjoint."""
    out = [t.expr for t in terms if not isinstance(t.expr, (MatTVec, Outer))]
    if any(isinstance(t.expr, MatTVec) for t in terms):
        out += [g.adjoint() for g in groups if g.operand == v]
    return tuple(out)
