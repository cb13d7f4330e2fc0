"""Brute force: the cell unrolled over T steps into scalar expressions, differentiated directly.

This is independent of the derivation.  It reads only the cell's forward equations and
each operation's definition in elementary functions (``ops.OPS[f].definition``), builds
the total loss

    L = Σ_t Σ_b ⟨Δh_t, h_t⟩ + Σ_s Σ_b ⟨δs_T, s_T⟩

as one symengine expression of every scalar parameter, input and initial state, and
differentiates it with respect to each of them.  The sizes must be small: the unrolled
expression grows with T and with the cell.
"""
from __future__ import annotations

import numpy as np
import symengine as se

from . import naming
from .cell import Cell, size_value
from .ops import Concat, MatVec, Transposed, elementary


def loss_gradients(cell: Cell, values: dict, D: int, H: int) -> dict[str, np.ndarray]:
    """dL/d(every parameter, the input, every initial state) by differentiating the unrolled
    loss.

    ``values`` holds NumPy arrays as the generated modules take them: each parameter and the
    input (T, B, n) by name, ``state0`` and ``dstate`` (dicts of (B, size) arrays) and ``dhs``
    (T, B, size of the output).  Returns arrays keyed as ``backward`` keys its gradients.
    Each sample is unrolled on its own (the loss is a sum over them), which keeps every
    expression the size of one sequence.
    """
    (x,) = cell.inputs
    B = np.shape(values[x])[1]
    per_sample = {x, *(f"{s}0" for s in cell.states)}   # the rest sum over the samples
    out = {}
    for b in range(B):
        one = {**values, x: values[x][:, b:b + 1], "dhs": values["dhs"][:, b:b + 1],
               **{k: {s: v[b:b + 1] for s, v in values[k].items()} for k in ("state0", "dstate")}}
        for key, g in _sample_gradients(cell, one, D, H).items():
            if key in per_sample:
                out.setdefault(key, []).append(g)
            else:
                out[key] = out.get(key, 0) + g
    return {k: np.concatenate(v, axis=1 if k == x else 0) if isinstance(v, list) else v
            for k, v in out.items()}


def _sample_gradients(cell: Cell, values: dict, D: int, H: int) -> dict[str, np.ndarray]:
    """:func:`loss_gradients` for a batch of one."""
    leaves: dict[str, np.ndarray] = {}
    point = {}

    def leaf(key, array):
        array = np.asarray(array, dtype=np.float64)
        syms = np.empty(array.shape, dtype=object)
        for idx in np.ndindex(*array.shape):
            s = se.Symbol(f"{key}:{'_'.join(map(str, idx))}")
            syms[idx] = s
            point[s] = float(array[idx])
        leaves[key] = syms
        return syms

    params = {p.symbol: leaf(p.name, values[p.name]) for p in cell.params}
    (input_name,) = cell.inputs
    xs = leaf(input_name, values[input_name])
    T, B = xs.shape[:2]
    states = {s: leaf(f"{s}0", values["state0"][s]) for s in cell.states}
    loss = se.Integer(0)
    for t in range(T):
        env = dict(params)
        env[naming.timed(input_name)] = xs[t]
        env.update({naming.timed(s, -1): v for s, v in states.items()})
        for eq in cell.equations:
            n = size_value(cell.dim(eq.lhs), D, H)
            env[eq.lhs] = _vector(eq.rhs, env, n, B)
        states = {s: env[naming.timed(s)] for s in cell.states}
        loss += _dot(values["dhs"][t], states[cell.output])
    for s in cell.states:
        loss += _dot(values["dstate"][s], states[s])
    keys = [(key, idx) for key, syms in leaves.items() for idx in np.ndindex(*syms.shape)]
    symbols = [leaves[key][idx] for key, idx in keys]
    derivatives = [loss.diff(s) for s in symbols]
    f = se.Lambdify(symbols, derivatives, backend="lambda", cse=True)
    flat = np.asarray(f([point[s] for s in symbols]), dtype=np.float64).ravel()
    out = {key: np.empty(syms.shape) for key, syms in leaves.items()}
    for (key, idx), value in zip(keys, flat):
        out[key][idx] = value
    return out


def _dot(weights, vectors):
    """Σ_b ⟨w_b, v_b⟩ over a batch of vectors (object arrays of symengine expressions)."""
    total = 0
    for w, v in zip(np.asarray(weights, dtype=np.float64), vectors):
        total += sum(float(a) * b for a, b in zip(w, v))
    return total


def _vector(rhs, env, n: int, B: int) -> np.ndarray:
    """The right side ``rhs`` for every sample and element, as symengine expressions."""
    out = np.empty((B, n), dtype=object)
    if isinstance(rhs, Concat):
        for b in range(B):
            out[b] = np.concatenate([env[v][b] for v in rhs.args])
        return out
    for b in range(B):
        for j in range(n):
            out[b, j] = elementary(rhs, se, lambda e, b=b, j=j: _leaf(e, env, b, j))
    return out


def _leaf(e, env, b: int, j: int):
    """Element j of sample b of a symbol or matrix product; a number as itself."""
    if e.is_number:
        return se.sympify(e)
    if isinstance(e, MatVec):
        W, v = e.args
        M = env[W.args[0]].T if isinstance(W, Transposed) else env[W]
        return sum((M[j, k] * env[v][b][k] for k in range(M.shape[1])), se.Integer(0))
    value = env[e]
    if naming.parse(e) is None:        # a vector parameter: the same for every sample
        return value[j]
    return value[b][j]
