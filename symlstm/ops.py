"""The operations cells are written with, and what the engine knows of their derivatives.

Vectors are plain commutative SymPy symbols, read element-wise: ``i*z`` is the
Hadamard product i ⊙ z and ``tanh(c)`` is applied to every element.  The only
operations that mix elements are the matrix products below; the engine keeps
them as opaque atoms so SymPy never has to do matrix calculus.
"""
from __future__ import annotations

import sympy as sp


class sigma(sp.Function):
    """The logistic sigmoid σ(a) = 1 / (1 + e^{-a}), element-wise."""

    nargs = 1

    def fdiff(self, argindex=1):
        return DERIVATIVES[sigma](self)

    def _eval_rewrite_as_exp(self, a, **kwargs):
        return 1 / (1 + sp.exp(-a))


#: The derivative table: for each element-wise function, f'(a) written through
#: its output y = f(a).  SymPy differentiates everything else; a function not in
#: this table is refused when a cell is built.
DERIVATIVES = {
    sigma: lambda y: y * (1 - y),
    sp.tanh: lambda y: 1 - y**2,
    sp.exp: lambda y: y,
}


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


def matvec(W, v: sp.Symbol) -> sp.Expr:
    """``W v`` for use in a cell's equations (W a matrix parameter or ``transpose(W)``)."""
    return MatVec(W, v)


def transpose(W: sp.Symbol) -> sp.Expr:
    """``Wᵀ``, for a parameter stored the other way round (row-major cells: x W = Wᵀ x)."""
    return Transposed(W)


def concat(*vectors: sp.Symbol) -> sp.Expr:
    """``[u; v; …]``, the vectors stacked; the size is the sum of theirs."""
    return Concat(*vectors)


def matrix_param(W: sp.Expr) -> sp.Symbol:
    """The parameter behind ``W`` or ``Wᵀ``."""
    return W.args[0] if isinstance(W, Transposed) else W
