"""Derived expressions evaluated on numbers: vectors and matrices as NumPy arrays.

:func:`evaluate` computes any expression of a derivation (element-wise operations by their
definitions in ``ops``, matrix products, concatenations and their parts) from the values
of its symbols.  The claim checker and the worked example use it; the generated code never
does.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import sympy as sp

from .ops import OPS, REDUCTIONS, Concat, MatTVec, MatVec, Outer, Part, Transposed


class EvaluationError(ValueError):
    """An expression with a function :func:`evaluate` does not know."""


class _NumPyFunctions:
    """What the operations' definitions need, element-wise in NumPy."""
    exp, log, tanh = np.exp, np.log, np.tanh

    @staticmethod
    def Piecewise(*pairs):
        out = np.asarray(pairs[-1][0], float) * 1.0
        for value, condition in reversed(pairs[:-1]):
            out = np.where(condition, value, out)
        return out


_ELEMENTARY = {sp.sech: lambda a: 1 / np.cosh(a), sp.cosh: np.cosh, sp.sinh: np.sinh,
               sp.exp: np.exp, sp.log: np.log, sp.tanh: np.tanh}
_REDUCE = {"total": lambda a: np.sum(a, axis=-1, keepdims=True),
           "lse": lambda a: np.max(a, -1, keepdims=True) + np.log(
               np.sum(np.exp(a - np.max(a, -1, keepdims=True)), -1, keepdims=True))}


def evaluate(e: sp.Expr, lookup: Callable[[sp.Symbol], np.ndarray], sizes: dict[str, int]):
    """The value of ``e``: each symbol's from ``lookup``, sizes (D, H in a ``Part``'s bounds)
    from ``sizes``."""
    if isinstance(e, sp.Symbol):
        return lookup(e)
    if e.is_Number or e.is_NumberSymbol:
        return float(e)
    if isinstance(e, Transposed):
        return evaluate(e.args[0], lookup, sizes).T
    if isinstance(e, Part):   # rows start:stop, the bounds sizes such as D or D + H
        start, stop = (int(b.subs({sp.Symbol(n): v for n, v in sizes.items()}))
                       for b in e.args[1:])
        return evaluate(e.args[0], lookup, sizes)[..., start:stop]
    args = [evaluate(a, lookup, sizes) for a in e.args]
    if isinstance(e, Concat):
        return np.concatenate([np.atleast_1d(a) for a in args], axis=-1)
    if e.is_Add:
        return sum(args[1:], args[0])
    if e.is_Mul:
        out = args[0]
        for a in args[1:]:
            out = out * a
        return out
    if e.is_Pow:
        return args[0] ** args[1]
    if isinstance(e, MatVec):
        return args[0] @ args[1]
    if isinstance(e, MatTVec):
        return args[0].T @ args[1]
    if isinstance(e, Outer):
        return np.outer(args[0], args[1])
    if e.func in OPS:
        return OPS[e.func].definition(args[0], _NumPyFunctions)
    if e.func in REDUCTIONS:
        return _REDUCE[e.func.__name__](args[0])
    if e.func in _ELEMENTARY:
        return _ELEMENTARY[e.func](*args)
    raise EvaluationError(f"cannot evaluate {e.func.__name__}")
