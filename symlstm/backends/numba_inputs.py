"""The input's products by the parameters in the Numba modules of cells with matrices per
head or per channel: one GEMM over all steps before the compiled loop (X_W = X Wᵀ, read by
the loop as ``X_W[t]``), and the gradients through them one GEMM each after it
(δW += Σ_t δa_t x_tᵀ, δx += Σ_t δa_t W) from the adjoints δa_t the loop stores per step.
"""
from __future__ import annotations

from typing import NamedTuple

import sympy as sp

from ..cell.ops import MatTVec, MatVec, Transposed
from ..cell.parts import CellError


class Place(NamedTuple):
    """Where a value of the step lives: ``array`` indexed by ``prefix`` (the step, or
    nothing), then the sample (unless a parameter) and the entry."""
    array: str
    size: str
    prefix: str = ""
    batched: bool = True


def projections(cell, x, shared: dict) -> dict:
    """Each parameter W that multiplies the input ``x`` → the size of W x; each product
    W x gets its place ``X_W[t]`` in ``shared``."""
    found = {}
    for eq in cell.equations:
        for m in eq.rhs.atoms(MatVec):
            if m.args[1] == x:
                W = m.args[0]
                if not isinstance(W, sp.Symbol) or cell.param(W.name).is_heads:
                    raise CellError(f"cell {cell.name!r}: the Numba module takes the input "
                                    f"through products by a dense parameter only, got {m}")
                found[W.name] = cell.param(W.name).shape[0]
                shared[m] = Place(f"X_{W.name}", found[W.name], "t")
    return found


def reread(d, x) -> set:
    """The arrays X_W that the backward loop reads (the others leave the cache)."""
    return {f"X_{m.args[0]}" for g in (*d.step, *d.inputs, *d.initial, *d.params)
            for m in g.rhs.atoms(MatVec) if m.args[1] == x}


def input_terms(rhs, through: dict) -> tuple[list, list]:
    """δx split into the terms Wᵀ u of the parameters in ``through`` (as (u, W name), for a
    GEMM after the loop) and the rest (computed in the loop)."""
    gemm, rest = [], []
    for term in sp.Add.make_args(rhs):
        W, u = term.args if isinstance(term, (MatTVec, MatVec)) else (None, None)
        W = W.args[0] if isinstance(term, MatVec) and isinstance(W, Transposed) else \
            W if isinstance(term, MatTVec) else None
        if isinstance(W, sp.Symbol) and W.name in through:
            gemm.append((u, W.name))
        else:
            rest.append(term)
    return gemm, rest


class Buffers:
    """The adjoints δa_t that the GEMMs after the loop read: each stored by the loop once per
    step, into an array G_i (T, B, ...) of the size of W x."""

    def __init__(self, step, target):
        self.step, self.target = step, target   # the backward Step; Place → entry text
        self.users: dict = {}
        self.arrays: dict = {}   # δa_t → (array, size)

    def need(self, u, user: str) -> None:
        self.users.setdefault(u, set()).add(user)

    def array(self, u, size: str) -> str:
        """The array holding ``u`` per step, stored by the loop the first time it is asked."""
        if u not in self.arrays:
            self.arrays[u] = (f"G_{len(self.arrays)}", size)
            self.step.lines.append(f"# δa_t for {', '.join(sorted(self.users[u]))}")
            self.step.statement(self.target(Place(self.arrays[u][0], size, "t")), u, size)
        return self.arrays[u][0]

    def shapes(self, shape: dict) -> list:
        """(array, shape text) of each buffer, ``shape`` giving one step's array of a size."""
        return [(name, f"(T, {shape[size][1:]}") for name, size in self.arrays.values()]
