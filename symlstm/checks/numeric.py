"""Derived expressions evaluated on numbers: vectors and matrices as NumPy arrays.

:func:`evaluate` computes any expression of a derivation (element-wise operations by their
definitions in ``ops``, matrix products, concatenations and their parts) from the values
of its symbols, and :func:`unroll` runs a cell's equations forward and its adjoints backward
over a few steps, keeping every value.  The claim checker and the worked example use them;
the generated code never does.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import sympy as sp

from .. import naming
from ..cell.ops import (OPS, REDUCTIONS, Concat, HeadOuter, MatTVec, MatVec, Outer, Part, Place,
                        RowSum, Transposed, softplus)


class EvaluationError(ValueError):
    """An expression with a function :func:`evaluate` does not know."""


class _NumPyFunctions:
    """What the operations' definitions need, element-wise in NumPy."""
    exp, log, tanh, sqrt = np.exp, np.log, np.tanh, np.sqrt

    @staticmethod
    def Piecewise(*pairs):
        out = np.asarray(pairs[-1][0], float) * 1.0
        for value, condition in reversed(pairs[:-1]):
            out = np.where(condition, value, out)
        return out


_ELEMENTARY = {sp.sech: lambda a: 1 / np.cosh(a), sp.cosh: np.cosh, sp.sinh: np.sinh,
               sp.exp: np.exp, sp.log: np.log, sp.tanh: np.tanh}
#: Operations whose definition loses digits in float64 where the exact value does not:
#: log(1 + e^a) keeps only e^a's first digits below a ≈ -20 (1 + e^a rounds), logaddexp all.
_ACCURATE = {softplus: lambda a: np.logaddexp(0, a)}
_REDUCE = {"total": lambda a: np.sum(a, axis=-1, keepdims=True) if np.ndim(a) < 3 else
           np.sum(a).reshape(1),
           "mean": lambda a: np.mean(a, axis=-1, keepdims=True),
           "lse": lambda a: np.max(a, -1, keepdims=True) + np.log(
               np.sum(np.exp(a - np.max(a, -1, keepdims=True)), -1, keepdims=True))}


def evaluate(e: sp.Expr, lookup: Callable[[sp.Symbol], np.ndarray], sizes: dict[str, int]):
    """The value of ``e``: each symbol's from ``lookup``, sizes (D, H in a ``Part``'s bounds)
    from ``sizes``.  A matrix per head is an array (NH, H/NH, H/NH), one number per head an
    array (NH,), which goes element-wise with an H-vector head by head; a matrix per channel
    is an array (H, N), with which an H-vector goes row by row."""
    if isinstance(e, sp.Symbol):
        return sizes[e.name] if e.name in sizes else lookup(e)
    if e.is_Number or e.is_NumberSymbol:
        return float(e)
    if isinstance(e, Transposed):
        return np.swapaxes(evaluate(e.args[0], lookup, sizes), -1, -2)
    if isinstance(e, Part):   # rows start:stop, the bounds sizes such as D or D + H
        start, stop = (int(b.subs({sp.Symbol(n): v for n, v in sizes.items()}))
                       for b in e.args[1:])
        return evaluate(e.args[0], lookup, sizes)[..., start:stop]
    if isinstance(e, Place):   # zeros around rows start:stop
        start, stop, n = (int(b.subs({sp.Symbol(k): v for k, v in sizes.items()}))
                          for b in e.args[1:])
        inner = np.asarray(evaluate(e.args[0], lookup, sizes), float)
        return np.pad(inner, [(0, 0)] * (inner.ndim - 1) + [(start, n - stop)])
    args = [evaluate(a, lookup, sizes) for a in e.args]
    if isinstance(e, Concat):
        return np.concatenate([np.atleast_1d(a) for a in args], axis=-1)
    if (e.is_Add or e.is_Mul) and len(args) > 1 and "NH" in sizes:
        args = _per_head(args, sizes["NH"])
    if (e.is_Add or e.is_Mul) and "N" in sizes and any(np.ndim(a) == 2 for a in args):
        args = [np.reshape(a, (-1, 1)) if np.ndim(a) == 1 else a for a in args]
    if e.is_Add:
        return sum(args[1:], args[0])
    if e.is_Mul:
        out = args[0]
        for a in args[1:]:
            out = out * a
        return out
    if e.is_Pow:
        return args[0] ** args[1]
    if isinstance(e, (MatVec, MatTVec)) and np.ndim(args[0]) == 3:   # per-head blocks
        blocks, v = args
        heads = np.reshape(v, (blocks.shape[0], -1))
        if isinstance(e, MatTVec):
            blocks = blocks.swapaxes(1, 2)
        return np.einsum("njk,nk->nj", blocks, heads).reshape(-1)
    if isinstance(e, MatVec):
        return args[0] @ args[1]
    if isinstance(e, MatTVec):
        return args[0].T @ args[1]
    if isinstance(e, Outer):
        return np.outer(args[0], args[1])
    if isinstance(e, HeadOuter) and "NH" not in sizes:   # u bᵀ, a matrix per channel
        return np.outer(args[0], args[1])
    if isinstance(e, RowSum):
        return np.sum(args[0], axis=-1)
    if isinstance(e, HeadOuter):   # the diagonal blocks of u vᵀ
        u, v = (np.reshape(a, (sizes["NH"], -1)) for a in args)
        return np.einsum("na,nb->nab", u, v)
    if e.func.__name__ == "headsum":
        return np.sum(np.reshape(args[0], (sizes["NH"], -1)), axis=-1)
    if e.func in _ACCURATE:
        return _ACCURATE[e.func](*args)
    if e.func in OPS:
        return OPS[e.func].definition(*args, _NumPyFunctions)
    if e.func in REDUCTIONS and "N" in sizes and np.ndim(args[0]) == 2:   # a matrix per channel
        return np.sum(args[0]).reshape(1)
    if e.func in REDUCTIONS:
        return _REDUCE[e.func.__name__](args[0])
    if e.func in _ELEMENTARY:
        return _ELEMENTARY[e.func](*args)
    raise EvaluationError(f"cannot evaluate {e.func.__name__}")


def _per_head(args: list, heads: int) -> list:
    """Operands of + or ×, with one number per head (NH,) spread over each head's entries
    where another operand is an H-vector (H,) or a matrix per head (NH, H/NH, H/NH)."""
    big = max(args, key=np.size)
    if np.ndim(big) not in (1, 3) or np.shape(big) == (heads,):   # 2-D: a weight's gradient
        return args
    out = []
    for a in args:
        if np.shape(a) == (heads,):
            a = a.reshape(-1, 1, 1) if np.ndim(big) == 3 else np.repeat(a, np.size(big) // heads)
        out.append(a)
    return out


class Run:
    """The values of one forward and backward run of a cell over steps 1..T.

    ``values[(kind, base)][k]`` is the vector ``base`` (``kind`` "" for a forward value, δ,
    Δ or δ⁺ for an adjoint) at step k; the states' forward values start at step 0, the
    initial state.  :meth:`at` gives a lookup for :func:`evaluate` with t at a given step.
    """

    def __init__(self, T: int, values: dict, params: dict):
        self.T, self.values, self.params = T, values, params

    def value(self, s: sp.Symbol, t: int):
        """The value of ``s`` (such as ``δc[t+1]`` or ``W_z``) with t at step ``t``."""
        p = naming.parse(s)
        if p is None:
            return self.params[s.name]
        series = self.values.get((p.kind, p.base))
        k = t + p.shift
        if series is None or not 0 <= k < len(series) or series[k] is None:
            raise KeyError(s)
        return series[k]

    def at(self, t: int) -> Callable[[sp.Symbol], np.ndarray]:
        return lambda s: self.value(s, t)


def unroll(T: int, forward, backward, carries: dict, leaf: Callable, sizes: dict,
           final: dict | None = None) -> Run:
    """Run a cell forward over steps 1..T and its backward pass from T down to 1.

    ``forward`` and ``backward`` are ``(lhs, rhs)`` pairs at step t in the order they are
    computed; ``carries`` gives each state's δ⁺s[t] (the symbol at t) by what step t+1
    sends back, an expression read at t+1 (zero after the last step).  ``leaf(s, k)``
    draws what no equation gives: a parameter (k is None), an input, a target, a state at
    step 0, the gradient Δh that the loss sends in where no head computes it.  ``final``
    gives δ⁺s at step T by the state's name, where the loss reads the final state.
    """
    values: dict = {}
    params: dict = {}
    run = Run(T, values, params)

    def series(s):
        p = naming.parse(s)
        return values.setdefault((p.kind, p.base), [None] * (T + 1))

    def lookup(t):
        def get(s):
            try:
                return run.value(s, t)
            except KeyError:
                p = naming.parse(s)
                if p is None:
                    params[s.name] = leaf(s, None)
                    return params[s.name]
                series(s)[t + p.shift] = leaf(s, t + p.shift)
                return series(s)[t + p.shift]
        return get

    for t in range(1, T + 1):
        for lhs, rhs in forward:
            series(lhs)[t] = evaluate(rhs, lookup(t), sizes)
    for t in range(T, 0, -1):
        for carry, rhs in carries.items():   # the state's shape, even where rhs is 0
            last = (final or {}).get(naming.parse(carry).base, 0)
            sent = evaluate(rhs, run.at(t + 1), sizes) if t < T else last
            series(carry)[t] = _shaped(sent, run, carry, t)
        for lhs, rhs in backward:   # the vector's shape: δX of X's mean is one number per X
            series(lhs)[t] = _shaped(evaluate(rhs, lookup(t), sizes), run, lhs, t)
    return run


def _shaped(value, run: Run, lhs: sp.Symbol, t: int):
    """``value`` spread over the entries of the vector that ``lhs`` is the gradient of."""
    try:
        like = run.value(naming.timed(naming.parse(lhs).base), t)
    except KeyError:
        return value
    return np.zeros(np.shape(like)) + value
