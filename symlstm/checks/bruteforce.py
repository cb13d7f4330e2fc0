"""Brute force: the cell unrolled over T steps into scalar operations, differentiated directly.

This is independent of the derivation.  It reads only the cell's forward equations and
each operation's definition in elementary functions (``ops.OPS[f].definition``), runs the
unrolled steps entry by entry on 400-digit numbers (mpmath), recording every scalar
operation on a tape, and computes the total loss

    L = Σ_t Σ_b ⟨Δh_t, h_t⟩ + Σ_s Σ_b ⟨δs_T, s_T⟩

and its gradient with respect to every scalar parameter, input and initial state by one
reverse pass over the tape.  The only derivative knowledge here is that of +, ×, integer
powers, exp, log, tanh and a branch (``_Tape``; any other mpmath function is differentiated
numerically at extra precision): none of the derivation's rules, none of its paths.

The definitions are written as the textbook writes them, softplus(a) = log(1 + e^a), and
at a = -700 the sum 1 + e^a keeps e^a's digits only if the arithmetic carries 300 digits
more than the 50 it is asked for.  So it works at ``DIGITS`` = 400: every value whose
exact result float64 can hold, however saturated the gates, comes out right to 50 digits,
and the reference can judge the generated code anywhere in the float64 range.
"""
from __future__ import annotations

from typing import NamedTuple

import mpmath
import numpy as np
import sympy as sp

from .. import naming
from ..cell.model import Cell
from ..cell.ops import (REDUCTIONS, Concat, HeadOuter, MatVec, Part, Transposed, elementary,
                        matrix_param)
from ..cell.parts import size_value


#: Significant digits of the reference arithmetic: 50, and 350 more to carry e^a beside 1
#: down to a = -800, past which float64 holds nothing.
DIGITS = 400


class Reference(NamedTuple):
    """What brute force computed: ``grads`` keyed as ``backward`` keys its gradients (the
    input's gradient by the input's name), ``outputs`` the output at every step
    (T, B, n) and ``final`` each state at step T, (B, n); all float64, rounded from ``DIGITS``
    digits."""
    grads: dict[str, np.ndarray]
    outputs: np.ndarray
    final: dict[str, np.ndarray]


def loss_gradients(cell: Cell, params: dict, x, state0: dict, dhs, dstate: dict,
                   D: int, H: int, **extra: int) -> dict[str, np.ndarray]:
    """dL/d(every parameter, the input, every initial state) by differentiating the unrolled
    loss.

    The arrays are as the generated modules take them: ``params`` each parameter by name,
    ``x`` the input sequence (T, B, n) (for a cell with extra per-step inputs, a dict of
    every input's sequence by name), ``state0`` and ``dstate`` dicts of (B, size) arrays
    and ``dhs`` (T, B, size of the output).  Returns arrays keyed as ``backward`` keys its
    gradients: each input's under its name.  ``extra`` holds the sizes the cell declares
    beyond D and H (``P=``, ``NH=``)."""
    return unroll(cell, params, x, state0, dhs, dstate, D, H, **extra).grads


def unroll(cell: Cell, params: dict, x, state0: dict, dhs, dstate: dict, D: int, H: int,
           digits: int = DIGITS, **extra: int) -> Reference:
    """The unrolled cell's outputs and the loss's gradients (see :func:`loss_gradients`),
    computed at ``digits`` significant digits, one sample at a time."""
    xs = {n: np.asarray(a) for n, a in _inputs(cell, x).items()}
    dhs = np.asarray(dhs)
    samples = []
    with mpmath.workdps(digits):
        for b in range(dhs.shape[1]):
            samples.append(_sample(cell, params, {n: a[:, b] for n, a in xs.items()}, {s: np.asarray(v)[b] for s, v in
                                                          state0.items()},
                                   dhs[:, b], {s: np.asarray(v)[b] for s, v in dstate.items()},
                                   dict(D=D, H=H, **extra)))
    per_sample = {*(f"{s}0" for s in cell.states)}
    grads = {}
    for key in samples[0][0]:
        parts = [g[key] for g, _, _ in samples]
        if key in cell.inputs:
            grads[key] = np.stack(parts, axis=1)
        elif key in per_sample:
            grads[key] = np.stack(parts)
        else:
            grads[key] = np.sum(parts, axis=0)
    outputs = np.stack([o for _, o, _ in samples], axis=1)
    final = {s: np.stack([f[s] for _, _, f in samples]) for s in cell.states}
    return Reference(grads, outputs, final)


class _Tape:
    """Scalar reverse mode: every operation appends its node with the local derivatives
    towards its operands; :meth:`gradient` walks the nodes backwards, accumulating with +=."""

    def __init__(self):
        self.parents: list[tuple] = []

    def leaf(self, value) -> "_Node":
        return self.node(mpmath.mpf(value), ())

    def node(self, value, parents) -> "_Node":
        self.parents.append(parents)
        return _Node(self, len(self.parents) - 1, value)

    def gradient(self, out: "_Node") -> list:
        adj = [mpmath.mpf(0)] * len(self.parents)
        adj[out.index] = mpmath.mpf(1)
        for k in range(out.index, -1, -1):
            a = adj[k]
            if a:
                for j, local in self.parents[k]:
                    adj[j] += a * local
        return adj

    # the elementary functions that ``ops.OPS[f].definition(a, m)`` calls on ``m``
    def exp(self, a):
        if not isinstance(a, _Node):
            return mpmath.exp(a)
        y = mpmath.exp(a.value)
        return self.node(y, ((a.index, y),))

    def log(self, a):
        if not isinstance(a, _Node):
            return mpmath.log(a)
        return self.node(mpmath.log(a.value), ((a.index, 1 / a.value),))

    def tanh(self, a):
        if not isinstance(a, _Node):
            return mpmath.tanh(a)
        y = mpmath.tanh(a.value)
        return self.node(y, ((a.index, 1 - y * y),))

    def __getattr__(self, name):
        """Any other function of mpmath's (``m.atan``, ``m.sqrt``, ...), for a definition a new
        table entry writes with it: its derivative is mpmath's numerical one, which works at
        extra precision and keeps the working digits."""
        fn = getattr(mpmath, name, None)
        if name.startswith("_") or not callable(fn):
            raise AttributeError(f"brute force knows no elementary function {name!r}")

        def apply(a):
            if not isinstance(a, _Node):
                return fn(a)
            return self.node(fn(a.value), ((a.index, mpmath.diff(fn, a.value)),))
        return apply

    @staticmethod
    def Piecewise(*pieces):
        """The first piece whose condition holds, differentiated as that piece alone."""
        for value, condition in pieces:
            if condition is True or (condition is not False and bool(condition)):
                return value
        raise ValueError("no piece of a Piecewise applies")


class _Node:
    """One scalar on a tape: its value to ``DIGITS`` digits and its place."""

    __slots__ = ("tape", "index", "value")

    def __init__(self, tape, index, value):
        self.tape, self.index, self.value = tape, index, value

    def _binary(self, other, value, d_self, d_other):
        if isinstance(other, _Node):
            return self.tape.node(value, ((self.index, d_self), (other.index, d_other)))
        return self.tape.node(value, ((self.index, d_self),))

    @staticmethod
    def _value(other):
        return other.value if isinstance(other, _Node) else other

    def __add__(self, other):
        return self._binary(other, self.value + self._value(other), 1, 1)

    __radd__ = __add__

    def __sub__(self, other):
        return self._binary(other, self.value - self._value(other), 1, -1)

    def __rsub__(self, other):
        return self.tape.node(other - self.value, ((self.index, -1),))

    def __neg__(self):
        return self.tape.node(-self.value, ((self.index, -1),))

    def __mul__(self, other):
        o = self._value(other)
        return self._binary(other, self.value * o, o, self.value)

    __rmul__ = __mul__

    def __truediv__(self, other):
        o = self._value(other)
        return self._binary(other, self.value / o, 1 / o, -self.value / (o * o))

    def __rtruediv__(self, other):
        y = other / self.value
        return self.tape.node(y, ((self.index, -y / self.value),))

    def __pow__(self, n):
        if not isinstance(n, int):
            raise TypeError(f"brute force takes integer powers only, got {n!r}")
        return self.tape.node(self.value ** n, ((self.index, n * self.value ** (n - 1)),))

    def __gt__(self, other):
        return self.value > self._value(other)

    def __lt__(self, other):
        return self.value < self._value(other)

    def __ge__(self, other):
        return self.value >= self._value(other)

    def __le__(self, other):
        return self.value <= self._value(other)


def _sample(cell: Cell, params: dict, x, state0: dict, dhs, dstate: dict, sizes: dict):
    """Gradients, outputs and final states of one sample (the arrays without a batch axis)."""
    tape = _Tape()
    leaves: dict[str, np.ndarray] = {}

    def leaf(key, array):
        array = np.asarray(array, dtype=np.float64)
        nodes = np.empty(array.shape, dtype=object)
        for idx in np.ndindex(*array.shape):
            nodes[idx] = tape.leaf(float(array[idx]))
        leaves[key] = nodes
        return nodes

    weights = {p.symbol: leaf(p.name, params[p.name]) for p in cell.params}
    xs = {n: leaf(n, x[n]) for n in cell.inputs}
    # every vector flat; a matrix per head (NH, S, S) too, head by head and row by row
    states = {s: leaf(f"{s}0", state0[s]).ravel() for s in cell.states}
    shapes = {s: np.shape(state0[s]) for s in cell.states}
    heads = _Heads(sizes.get("NH"), sizes["H"] // sizes["NH"] if "NH" in sizes else None)
    numbers: dict[sp.Expr, mpmath.mpf] = {}
    # sizes (in a mean's 1/n, the head size in √HS) and named constants are numbers: a
    # constant as the float it is
    values = {**{sp.Symbol(n): sp.Integer(v) for n, v in sizes.items()},
              **({sp.Symbol("HS"): sp.Integer(heads.size)} if heads.count else {}),
              **{sp.Symbol(n): sp.Float(v) for n, v in cell.constants.items()}}
    loss, outputs = 0, []
    for t in range(len(dhs)):
        env = dict(weights)
        env.update({naming.timed(n): a[t] for n, a in xs.items()})
        env.update({naming.timed(s, -1): v for s, v in states.items()})
        for eq in cell.equations:
            n = size_value(cell.dim(eq.lhs), **sizes)
            env[eq.lhs] = _vector(eq.rhs.xreplace(values), env, n, tape, (numbers, heads))
        states = {s: env[naming.timed(s)] for s in cell.states}
        out = env[naming.timed(cell.output)]   # a state, or an equation's result
        outputs.append(out)
        loss = loss + _dot(dhs[t], out)
    for s in cell.states:
        loss = loss + _dot(np.ravel(dstate[s]), states[s])
    grads = {}
    if isinstance(loss, _Node):
        adj = tape.gradient(loss)
        for key, nodes in leaves.items():
            grads[key] = np.array([float(adj[n.index]) for n in nodes.ravel()]).reshape(nodes.shape)
    else:   # the loss reads nothing: every gradient is zero
        grads = {key: np.zeros(nodes.shape) for key, nodes in leaves.items()}
    return grads, _floats(np.array(outputs, dtype=object)), \
        {s: _floats(v).reshape(shapes[s]) for s, v in states.items()}


def _inputs(cell: Cell, x) -> dict:
    """The input sequences by name: ``x`` is the first input's array, or a dict of every
    input's (a cell with extra per-step inputs)."""
    if isinstance(x, dict):
        if set(x) != set(cell.inputs):
            raise KeyError(f"the inputs must be given for exactly {sorted(cell.inputs)}, got "
                           f"{sorted(x)}")
        return x
    if len(cell.inputs) != 1:
        raise TypeError(f"cell {cell.name!r} has the inputs {sorted(cell.inputs)}: give them as "
                        "a dict of arrays by name")
    return {next(iter(cell.inputs)): x}


def _floats(nodes: np.ndarray) -> np.ndarray:
    return np.array([float(_Node._value(n)) for n in nodes.ravel()]).reshape(nodes.shape)


def _dot(weights, vector):
    """⟨w, v⟩ for one sample's vector v of tape nodes."""
    total = 0
    for w, v in zip(np.asarray(weights, dtype=np.float64), vector):
        total = total + v * mpmath.mpf(float(w))
    return total


class _Heads(NamedTuple):
    """The number of heads and the head size, where the cell declares heads (else None)."""
    count: int | None
    size: int | None


def _vector(rhs, env, n: int, tape: _Tape, context) -> np.ndarray:
    """The right side ``rhs`` for every entry, as tape nodes (or numbers where constant);
    ``context`` is the numbers already converted and the heads."""
    if isinstance(rhs, Concat):
        return np.concatenate([env[v] for v in rhs.args])
    out = np.empty(n, dtype=object)
    for j in range(n):
        out[j] = elementary(rhs, tape, lambda e, j=j: _leaf(e, env, j, n, context, tape))
    return out


def _leaf(e, env, j: int, n: int, context, tape: _Tape):
    """Entry j (of n) of a symbol or matrix product; a reduction, which is the same for every
    entry (of each head, for headsum), as its sum written out; a number to the working
    digits.  A vector of fewer entries (one per head, one per sample) is spread over n."""
    numbers, heads = context
    if e.func in REDUCTIONS:
        arg = e.args[0]
        parts = arg.atoms(Part)   # a part's rows count, not its vector's
        m = max([int(r.args[2] - r.args[1]) for r in parts] + [
            len(env[s]) for s in arg.xreplace({r: sp.S.Zero for r in parts}).free_symbols
            if np.ndim(env[s])] + [heads.count * heads.size ** 2 for _ in arg.atoms(HeadOuter)])
        entries = range(m)
        if e.func.__name__ == "headsum":   # entry j is head j: that head's entries of arg
            entries = range(j * m // heads.count, (j + 1) * m // heads.count)
        total = 0
        for k in entries:
            total = total + elementary(arg, tape,
                                       lambda u, k=k: _leaf(u, env, k, m, context, tape))
        return total / m if e.func.__name__ == "mean" else total
    if isinstance(e, Part):   # rows start:stop of a vector, the sizes already numbers
        inner = e.args[0]
        return _leaf(inner, env, j + int(e.args[1]), len(env[inner]), context, tape)
    if isinstance(e, HeadOuter) and heads.count is None:   # entry (c, s) of u bᵀ: u_c b_s
        c, s = divmod(j, len(env[e.args[1]]))
        return env[e.args[0]][c] * env[e.args[1]][s]
    if isinstance(e, HeadOuter):   # entry (head, a, b) of a matrix per head: v_a k_b
        S = heads.size
        head, a, b = j // (S * S), (j // S) % S, j % S
        return env[e.args[0]][head * S + a] * env[e.args[1]][head * S + b]
    if e.is_number:
        if e not in numbers:
            numbers[e] = mpmath.mpf(str(sp.N(e, mpmath.mp.dps + 10)))
        return numbers[e]
    if isinstance(e, MatVec):
        W, v = e.args
        M = env[W.args[0]].T if isinstance(W, Transposed) else env[W]
        if naming.parse(matrix_param(W)) is not None and heads.count is None:   # per channel
            M = env[matrix_param(W)].reshape(
                (len(env[v]), -1) if isinstance(W, Transposed) else (-1, len(env[v])))
            M = M.T if isinstance(W, Transposed) else M
        elif naming.parse(matrix_param(W)) is not None:   # a matrix per head, kept flat
            M = env[matrix_param(W)].reshape(heads.count, heads.size, heads.size)
            M = M.swapaxes(1, 2) if isinstance(W, Transposed) else M
        total = 0
        if M.ndim == 3:   # per-head blocks: entry j is in head j // S, and reads that head only
            S = M.shape[1]
            for k in range(S):
                total = total + M[j // S, j % S, k] * env[v][(j // S) * S + k]
            return total
        for k in range(M.shape[1]):
            total = total + M[j, k] * env[v][k]
        return total
    value = env[e]
    if np.ndim(value) == 0:   # a scalar parameter
        return value[()]
    value = np.ravel(value)   # a parameter (H, N) used element-wise, row by row
    # one number per sample goes with any entry, one per head with each of its head's
    return value[j * len(value) // n]
