"""The derivation, checked against brute force at tiny sizes.

The cell is unrolled over T steps into nested scalar expressions (symengine), the
total loss is differentiated directly with respect to every scalar parameter,
input and initial state, and the results are compared with the derived
equations (``rec:``, ``adj:``, ``grad:``, ``init:``), evaluated element by element
in 200-bit arithmetic at the same random rational point.  Agreement to 50 digits
leaves no room for a wrong term.
"""
import dataclasses
import random

import mpmath
import numpy as np
import pytest
import sympy as sp

import symlstm
from symlstm import naming
from symlstm.cell.ops import (OPS, REDUCTIONS, Concat, MatTVec, MatVec, Outer, Part, Place,
                              Transposed, elementary)
from symlstm.cell.parts import size_value
from symlstm.cell.shipped import MATRIX_CELLS


se = pytest.importorskip("symengine")


@pytest.fixture(autouse=True)
def _precision():
    """This module's mpmath precision, for its tests alone (other modules set their own)."""
    with mpmath.workprec(200):
        yield
SIZES = {"D": 2, "H": 2, "P": 3, "NH": 1}
CODE_SIZES = {**SIZES, "HS": SIZES["H"] // SIZES["NH"]}   # the head size, H/NH


def n(dim):
    """The number a size such as "H" or "D + H" (or an offset D + H) stands for here."""
    if isinstance(dim, str):
        return size_value(dim, **SIZES)
    return int(sp.sympify(dim).subs(CODE_SIZES))
#: Three steps for the headline cells (the recurrence then feeds itself); two, which already
#: exercise every term at t+1, for the rest, whose unrolled losses grow fast.
#: The cells with matrices per head are held against brute force of their unrolled loss by
#: tests/test_matrix_states.py (symlstm.checks.bruteforce, which multiplies matrices per head);
#: the scalar expressions here write out vectors only.
STEPS = {name: 3 if name in ("lstm", "peephole_lstm", "gru") else 2 for name in symlstm.CELLS
         if name not in MATRIX_CELLS}
#: layernorm_lstm normalises whole 4H vectors: its unrolled loss grows past minutes at two
#: steps, so one (brute force at 400 digits, in verify, runs it over three)
STEPS["layernorm_lstm"] = 1


# ------------------------------------------------------------ the point -----

def random_point(cell, rng, T):
    """Rational values for every parameter, input, initial state and loss weight."""
    def r():
        return sp.Rational(rng.randint(-9, 9), rng.randint(5, 12))
    val = {}
    for p in cell.params:
        if not p.shape:   # a learnable scalar
            val[p.name] = np.array(r(), dtype=object)
            continue
        val[p.name] = np.array([[r() for _ in range(n(p.shape[-1]))]   # NH = 1: per-head
                                for _ in range(n(p.shape[-2]))] if p.is_matrix   # is one block
                               else [r() for _ in range(n(p.shape[0]))], dtype=object)
    for name, dim in cell.inputs.items():
        val[name] = [np.array([r() for _ in range(n(dim))], dtype=object) for _ in range(T)]
    for name, dim in cell.states.items():
        val[name + "0"] = np.array([r() for _ in range(n(dim))], dtype=object)
        val["final:" + name] = np.array([r() for _ in range(n(dim))], dtype=object)
    out_dim = n(cell.output_dim)
    val["loss"] = [np.array([r() for _ in range(out_dim)], dtype=object) for _ in range(T)]
    return val


# ---------------------------------------------------- brute force (symengine) -----

def brute_force_gradients(cell, val, T):
    """d(loss)/d(every scalar) of the unrolled cell, by symengine, as mpmath numbers."""
    leaves, subs = {}, {}

    def leaf(key, shape, values):
        arr = np.empty(shape, dtype=object)
        for idx in np.ndindex(*shape):
            s = se.Symbol(f"{key}_{'_'.join(map(str, idx))}")
            arr[idx] = s
            subs[s] = se.Rational(int(values[idx].p), int(values[idx].q))
        leaves[key] = arr
        return arr

    params = {p.symbol: leaf(p.name, val[p.name].shape, val[p.name]) for p in cell.params}
    states = {n: leaf(n + "0", val[n + "0"].shape, val[n + "0"]) for n in cell.states}
    xs = {n: [leaf(f"{n}@{t}", val[n][t].shape, val[n][t]) for t in range(T)]
          for n in cell.inputs}
    loss = se.Integer(0)
    for t in range(T):
        env = dict(params)
        env.update({naming.timed(n, -1): v for n, v in states.items()})
        env.update({naming.timed(n): xs[n][t] for n in cell.inputs})
        for eq in cell.equations:
            rhs = eq.rhs.xreplace(constants(cell))
            env[eq.lhs] = np.array([scalar(rhs, j, env, _AtPoint(subs))
                                    for j in range(len_of(cell, eq, env))],
                                   dtype=object)
        states = {n: env[naming.timed(n)] for n in cell.states}
        out = env[naming.timed(cell.output)]   # a state, or an equation's result
        loss += sum(se_rat(g) * h for g, h in zip(val["loss"][t], out))
    for n in cell.states:
        loss += sum(se_rat(g) * s for g, s in zip(val["final:" + n], states[n]))
    grads = {}
    for key, arr in leaves.items():
        grads[key] = np.array([mpmath.mpf(str(loss.diff(s).subs(subs).n(200, real=True)))
                               for s in arr.flat], dtype=object).reshape(arr.shape)
    return grads


def constants(cell):
    """Each named constant as the exact rational its float stands for."""
    return {sp.Symbol(k): sp.Rational(v) for k, v in cell.constants.items()}


def len_of(cell, eq, env):
    return n(cell.dim(eq.lhs))


def se_rat(q):
    return se.Rational(int(q.p), int(q.q))


class _AtPoint:
    """symengine, with a Piecewise (max, min, relu) that is the piece chosen at the point
    ``subs``: where no two pieces tie, the derivative there is that piece's."""

    def __init__(self, subs):
        self.subs = subs

    def __getattr__(self, name):
        return getattr(se, name)

    def Piecewise(self, *pieces):
        for value, cond in pieces:
            if cond is True or self._holds(cond):
                return value
        raise ValueError("no piece holds")

    def _holds(self, cond):
        lhs, rhs = cond.args   # StrictLessThan(a, b): a < b
        gap = (lhs - rhs).subs(self.subs).n(200, real=True)
        return gap < 0 if isinstance(cond, se.StrictLessThan) else gap <= 0


def scalar(e, j, env, m=se):
    """Element j of the element-wise expression ``e`` as a symengine expression; every function
    by its definition in ``ops.OPS`` written with ``m``."""
    if isinstance(e, Concat):
        return np.concatenate([env[v] for v in e.args])[j]

    def leaf(a):
        if a.func in REDUCTIONS:   # the same for every entry: the sum written out
            parts = a.args[0].atoms(Part)
            size = max([n(r.args[2] - r.args[1]) for r in parts] + [
                len(env[s]) for s in a.args[0].xreplace({r: sp.S.Zero for r in parts}).free_symbols
                if np.ndim(env[s])])
            out = sum(scalar(a.args[0], k, env, m) for k in range(size))
            return out / size if a.func.__name__ == "mean" else out
        if isinstance(a, Part):
            return scalar(a.args[0], j + n(a.args[1]), env, m)
        if a.is_Number:
            return se_rat(sp.Rational(a))
        if isinstance(a, MatVec):
            W, v = a.args
            W = env[W.args[0]].T if isinstance(W, Transposed) else env[W]
            return sum(W[j, k] * env[v][k] for k in range(len(env[v])))
        value = env[a]
        if np.ndim(value) == 0:
            return value[()]
        return value[j] if len(value) > 1 else value[0]   # one number per sample: any entry
    return elementary(e, m, leaf)


# -------------------------------------------- the derived equations (mpmath) -----

class _Elementwise:
    """The elementary functions of ``ops.OPS`` definitions, on object arrays of mpmath numbers."""
    exp = staticmethod(np.vectorize(mpmath.exp, otypes=[object]))
    log = staticmethod(np.vectorize(mpmath.log, otypes=[object]))
    tanh = staticmethod(np.vectorize(mpmath.tanh, otypes=[object]))
    sqrt = staticmethod(np.vectorize(mpmath.sqrt, otypes=[object]))

    @staticmethod
    def Piecewise(*pieces):
        *first, (out, _) = pieces   # the last piece holds where no other does
        for value, cond in reversed(first):
            out = np.where(np.asarray(cond, dtype=bool), value, out)
        return out


def evaluate(e, lookup):
    """Evaluate a derived expression element-wise on object arrays of mpmath numbers."""
    if e.is_Number:
        return mpmath.mpf(int(e.p)) / int(e.q) if e.is_Rational else mpmath.mpf(str(e))
    if isinstance(e, sp.Symbol):
        return lookup(e)
    if isinstance(e, Part):
        return evaluate(e.args[0], lookup)[n(e.args[1]):n(e.args[2])]
    if isinstance(e, Place):   # zeros around rows start:stop
        inner = np.broadcast_to(evaluate(e.args[0], lookup), (n(e.args[2]) - n(e.args[1]),))
        out = np.array([mpmath.mpf(0)] * n(e.args[3]), dtype=object)
        out[n(e.args[1]):n(e.args[2])] = inner
        return out
    if e.func in REDUCTIONS:
        total = np.sum(evaluate(e.args[0], lookup))
        size = len(np.atleast_1d(evaluate(e.args[0], lookup)))
        return np.array([total / size if e.func.__name__ == "mean" else total], dtype=object)
    if isinstance(e, Transposed):
        return lookup(e.args[0]).T
    if isinstance(e, Concat):
        return np.concatenate([evaluate(a, lookup) for a in e.args])
    if e.func in OPS:
        return OPS[e.func].definition(*(evaluate(a, lookup) for a in e.args), _Elementwise)
    args = [evaluate(a, lookup) for a in e.args]
    if isinstance(e, sp.Add):
        return sum(args[1:], args[0])
    if isinstance(e, sp.Mul):
        return np.prod(np.array(args, dtype=object), axis=0) if len(args) > 1 else args[0]
    if isinstance(e, sp.Pow):
        return args[0] ** int(e.exp)
    if isinstance(e, MatVec):
        return args[0].dot(args[1])
    if isinstance(e, MatTVec):
        return args[0].T.dot(args[1])
    if isinstance(e, Outer):
        return np.outer(args[0], args[1])
    raise TypeError(f"cannot evaluate {e.func}")


def derived_gradients(d, val, T):
    """Run the derived recurrences: forward by the cell's equations, backward by d's equations."""
    cell = d.cell
    mp = {k: (np.vectorize(lambda q: mpmath.mpf(int(q.p)) / int(q.q), otypes=[object])(v)
              if isinstance(v, np.ndarray) else v) for k, v in val.items()}
    store = {}   # (kind, base, time) -> value

    fixed = {**{k: mpmath.mpf(v) for k, v in SIZES.items()},
             **{k: mpmath.mpf(sp.Rational(v).p) / sp.Rational(v).q
                for k, v in cell.constants.items()}}

    def at(t):
        def lookup(s):
            p = naming.parse(s)
            if p is None and s.name in fixed:   # a size or a named constant
                return fixed[s.name]
            return mp[s.name] if p is None else store[(p.kind, p.base, t + p.shift)]
        return lookup

    for n in cell.states:
        store[("", n, 0)] = mp[n + "0"]
    for t in range(1, T + 1):
        for n in cell.inputs:
            store[("", n, t)] = np.vectorize(lambda q: mpmath.mpf(int(q.p)) / int(q.q),
                                             otypes=[object])(val[n][t - 1])
        for g in d.forward:
            store[("", naming.parse(g.lhs).base, t)] = evaluate(g.rhs, at(t))
    rec = {naming.parse(g.lhs).base: g for g in d.through_time}
    for t in range(T, 0, -1):
        store[(naming.EXTERNAL, cell.output, t)] = mp["loss"][t - 1]
        for n in cell.states:
            store[(naming.CARRY, n, t)] = mp["final:" + n]     # used at t = T only
        for g in d.step:
            base = naming.parse(g.lhs).base
            use = rec[base] if base in rec and t < T else g
            store[(naming.ADJOINT, base, t)] = evaluate(use.rhs, at(t))
    grads = {}
    for g in d.params:
        grads[g.lhs.name[1:]] = sum(evaluate(g.rhs.args[0], at(t)) for t in range(1, T + 1))
    for g in d.inputs:
        for t in range(1, T + 1):
            grads[f"{naming.grad_key(naming.adjoint_of(g.lhs))}@{t - 1}"] = evaluate(g.rhs, at(t))
    for g in d.initial:
        grads[naming.grad_key(naming.adjoint_of(g.lhs))] = evaluate(g.rhs, at(1))
    return grads


@pytest.mark.parametrize("name", list(STEPS))
def test_derived_gradients_equal_brute_force(name):
    d, T = symlstm.derive(name), STEPS[name]
    val = random_point(d.cell, random.Random(name), T)
    brute = brute_force_gradients(d.cell, val, T)
    derived = derived_gradients(d, val, T)
    assert set(derived) == set(brute)
    for key, want in brute.items():
        err = max(abs(a - b) for a, b in zip(np.ravel(derived[key]), np.ravel(want)))
        assert err < mpmath.mpf(10) ** -50, f"{name}: d loss / d {key} differs by {err}"


def test_the_check_catches_a_wrong_term():
    """Drop the cell-state path δc_{t+1} ⊙ f_{t+1} and the comparison must fail."""
    d = symlstm.derive("lstm")
    rec = d["rec:c"]
    broken = rec._replace(terms=tuple(t for t in rec.terms if (t.via, t.later) != ("c", 1)))
    assert len(broken.terms) == len(rec.terms) - 1
    d = dataclasses.replace(d, through_time=tuple(broken if g is rec else g for g in d.through_time))
    val = random_point(d.cell, random.Random(0), 3)
    brute, derived = brute_force_gradients(d.cell, val, 3), derived_gradients(d, val, 3)
    worst = max(abs(a - b) for k in brute for a, b in zip(np.ravel(derived[k]), np.ravel(brute[k])))
    assert worst > 1e-6
