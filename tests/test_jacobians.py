"""The symbolic one-step Jacobians against central differences of the cell's own equations."""
import random

import mpmath
import numpy as np
import pytest
import sympy as sp

import symlstm
from symlstm import naming
from symlstm.jacobians import jacobians

from test_derivation_exact import evaluate, random_point

mpmath.mp.prec = 200
CELLS = ["rnn", "lstm", "peephole_lstm", "gru", "lstm_fgr", "lstm_cifg"]


def step(cell, values, prev):
    """One step of the cell's equations in mpmath: every variable, from the states at t-1."""
    store = {**{naming.timed(n, -1): v for n, v in prev.items()},
             **{naming.timed(n): values[n][0] for n in cell.inputs}}

    def lookup(s):
        return values[s.name] if naming.parse(s) is None else store[s]
    for eq in cell.equations:
        store[eq.lhs] = evaluate(eq.rhs, lookup)
    return store


def to_mp(a):
    return np.vectorize(lambda q: mpmath.mpf(int(q.p)) / int(q.q), otypes=[object])(a)


@pytest.mark.parametrize("name", CELLS)
def test_jacobians_match_central_differences(name):
    d = symlstm.derive(name)
    cell = d.cell
    val = random_point(cell, random.Random(name), 1)
    values = {k: (to_mp(v) if isinstance(v, np.ndarray) else [to_mp(a) for a in v])
              for k, v in val.items()}
    prev = {n: values[n + "0"] for n in cell.states}
    store = step(cell, values, prev)
    found = jacobians(d)
    assert any(j.terms is not None for j in found)
    for j in found:
        if j.terms is None:
            continue
        lookup = (lambda s: values[s.name] if naming.parse(s) is None else store[s])
        J = sum((np.diag(evaluate(a, lookup) * np.ones(len(store[j.of]), dtype=object))
                 @ (np.eye(len(store[j.of]), dtype=object) if M is None else evaluate(M, lookup))
                 for a, M in j.terms), np.zeros((len(store[j.of]), len(prev[_base(j.wrt)])),
                                                dtype=object))
        eps = mpmath.mpf(10) ** -30
        for k in range(len(prev[_base(j.wrt)])):
            up, down = dict(prev), dict(prev)
            e = np.zeros(len(prev[_base(j.wrt)]), dtype=object) + mpmath.mpf(0)
            e[k] = eps
            up[_base(j.wrt)] = prev[_base(j.wrt)] + e
            down[_base(j.wrt)] = prev[_base(j.wrt)] - e
            column = (step(cell, values, up)[j.of] - step(cell, values, down)[j.of]) / (2 * eps)
            err = max(abs(a - b) for a, b in zip(column, J[:, k]))
            assert err < mpmath.mpf(10) ** -25, f"{name}: ∂{j.of}/∂{j.wrt} column {k} off by {err}"


def _base(s):
    return naming.parse(s).base


def test_the_lstm_cell_state_path_is_the_forget_gate():
    [j] = [j for j in jacobians(symlstm.derive("lstm")) if str(j.of) == "c[t]" and str(j.wrt) == "c[t-1]"]
    assert j.terms == ((naming.timed("f"), None),)
    [r] = jacobians(symlstm.derive("rnn"))
    assert r.terms == ((1 - naming.timed("h") ** 2, sp.Symbol("R")),)
