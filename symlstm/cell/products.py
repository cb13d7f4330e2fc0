"""The structural functions of a cell's equations: matrix products, outer products, stacking
and parts of vectors.  They are not element-wise: the engine keeps them as opaque atoms, and
the sweep sends each its adjoint itself (``derivation.sweep``).  ``ops`` re-exports them."""
from __future__ import annotations

import sympy as sp


class MatVec(sp.Function):
    """The matrix–vector product ``W v`` (W a matrix parameter, v a vector)."""

    nargs = 2


class MatTVec(sp.Function):
    """``Wᵀ u``: how a matrix product sends an adjoint back to its vector."""

    nargs = 2

    @classmethod
    def eval(cls, W, u):
        if u.is_zero:
            return sp.S.Zero


class Outer(sp.Function):
    """The outer product ``u vᵀ``: one step's contribution to a weight gradient."""

    nargs = 2


class HeadOuter(sp.Function):
    """``v kᵀ`` per head: for H-vectors v and k, the NH diagonal blocks of their outer product,
    one H/NH × H/NH matrix per head (C[a, b] = v_a k_b within each head).  In a cell it makes
    a matrix per head; in a derivation it is what a product ``C q`` sends back to C.  Of an
    H-vector u and an N-vector b it is the matrix per channel u bᵀ (H × N)."""

    nargs = 2

    @classmethod
    def eval(cls, u, v):
        if u.is_zero or v.is_zero:
            return sp.S.Zero


class RowSum(sp.Function):
    """Σ_s a[:, s]: a matrix per channel summed over each row, an H-vector.  It is what an
    H-vector broadcast over the columns of a matrix per channel (Δ ⊙ A) gets back."""

    nargs = 1

    @classmethod
    def eval(cls, a):
        if a.is_zero:
            return sp.S.Zero


class TimeSum(sp.Function):
    """Σ_t over all time steps (and, in code, over the batch)."""

    nargs = 1


class Transposed(sp.Function):
    """``Wᵀ`` of a matrix parameter: cells written with rows, ``x W``, use ``Wᵀ x``."""

    nargs = 1


class Concat(sp.Function):
    """``[u; v; …]``: vectors stacked into one (the whole right side of an equation)."""


class Part(sp.Function):
    """Rows ``start:stop`` of a vector: what a concatenation sends back to each piece."""

    nargs = 3

    @classmethod
    def eval(cls, e, start, stop):
        if e.is_zero:
            return sp.S.Zero


class Place(sp.Function):
    """A vector of ``size`` entries, zero but for rows ``start:stop``, which hold ``e``: how
    ``part(v, start, stop)`` sends its adjoint back to v."""

    nargs = 4   # e, start, stop, size

    @classmethod
    def eval(cls, e, start, stop, size):
        if e.is_zero:
            return sp.S.Zero


#: The sizes, for the bounds of ``part``: the input size D and the hidden size H.
D, H = sp.Symbol("D"), sp.Symbol("H")
#: The head size H/NH as a number in a cell's equations (mLSTM's k = W_k x / √HS), where the
#: cell declares the number of heads NH.
HS = sp.Symbol("HS")


def part(v: sp.Symbol, start, stop) -> sp.Expr:
    """Entries ``start:stop`` of the vector ``v`` (a named vector or a vector parameter),
    the bounds counted from 0 in the sizes ``D`` and ``H`` of this module: the second of
    four H-blocks of a 4H vector is ``part(v, H, 2*H)``."""
    return Part(v, sp.sympify(start), sp.sympify(stop))


#: The structural functions: not element-wise, handled by the sweep itself.
STRUCTURE = (MatVec, Transposed, Concat, HeadOuter)


def matvec(W, v: sp.Symbol) -> sp.Expr:
    """``W v`` for use in a cell's equations: W a matrix parameter, or a matrix per head (a
    state at t-1 or an earlier result, such as mLSTM's C), or ``transpose(W)`` of either;
    a matrix per head is applied to the H-vector v head by head, a matrix per channel h
    (H × N) to an N-vector c (Σ_s h[:, s] c[s], an H-vector)."""
    return MatVec(W, v)


def outer(v: sp.Symbol, k: sp.Symbol) -> sp.Expr:
    """``v kᵀ`` per head, of two named H-vectors: a matrix per head (NH × H/NH × H/NH) with
    entries v_a k_b within each head; of a named H-vector u and N-vector b, the matrix per
    channel u bᵀ (H × N)."""
    return HeadOuter(v, k)


def transpose(W: sp.Symbol) -> sp.Expr:
    """``Wᵀ``, for a parameter stored the other way round (row-major cells: x W = Wᵀ x)."""
    return Transposed(W)


def concat(*vectors: sp.Symbol) -> sp.Expr:
    """``[u; v; …]``, the vectors stacked; the size is the sum of theirs."""
    return Concat(*vectors)


def matrix_param(W: sp.Expr) -> sp.Symbol:
    """The parameter behind ``W`` or ``Wᵀ``."""
    return W.args[0] if isinstance(W, Transposed) else W
