"""The symbolic one-step Jacobians, multiplied out and as chains of local Jacobians, against
central differences of the cell's own equations."""
import importlib.util
import random
from pathlib import Path

import mpmath
import numpy as np
import pytest
import sympy as sp
from test_derivation_exact import evaluate, random_point

import symlstm
from symlstm import naming
from symlstm.derivation.jacobians import MAX_PATHS, jacobians


@pytest.fixture(autouse=True)
def _precision():
    """This module's mpmath precision, for its tests alone (other modules set their own)."""
    with mpmath.workprec(200):
        yield
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


def scaling():
    """benchmarks/scaling.py, whose cell builders the tests share."""
    path = Path(__file__).parent.parent / "benchmarks" / "scaling.py"
    spec = importlib.util.spec_from_file_location("scaling", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def at_random_point(cell, seed):
    """Every value of one step at a random point, and the states at t-1 it started from."""
    val = random_point(cell, random.Random(seed), 1)
    values = {k: (to_mp(v) if isinstance(v, np.ndarray) else [to_mp(a) for a in v])
              for k, v in val.items()}
    prev = {n: values[n + "0"] for n in cell.states}
    return values, prev, step(cell, values, prev)


def multiplied_out(j, lookup, store, prev):
    rows, cols = len(store[j.of]), len(prev[_base(j.wrt)])
    return sum((np.diag(evaluate(a, lookup) * np.ones(rows, dtype=object))
                @ (np.eye(rows, dtype=object) if M is None else evaluate(M, lookup))
                for a, M in j.terms), np.zeros((rows, cols), dtype=object))


def chained(j, lookup, store, prev):
    """∂of/∂wrt by running the chain: each link's local Jacobians times what it reads."""
    n = len(prev[_base(j.wrt)])
    J = {j.wrt: np.eye(n, dtype=object) + mpmath.mpf(0)}
    for link in j.chain:
        if link.blocks is not None:
            J[link.of] = np.vstack([J[w] if depends else
                                    np.zeros((len(lookup(w)), n), dtype=object)
                                    for w, depends in link.blocks])
            continue
        rows = len(store[link.of])
        J[link.of] = sum((np.diag(evaluate(a, lookup) * np.ones(rows, dtype=object))
                          @ (np.eye(rows, dtype=object) if M is None else evaluate(M, lookup))
                          @ J[w] for a, M, w in link.terms),
                         np.zeros((rows, n), dtype=object))
    return J[j.of]


def check(cell, name, forms):
    values, prev, store = at_random_point(cell, name)
    lookup = (lambda s: values[s.name] if naming.parse(s) is None else store[s])
    found = jacobians(symlstm.derive(cell))
    checked = 0
    for j in found:
        for form in forms:
            if form is multiplied_out and j.terms is None:
                continue
            J = form(j, lookup, store, prev)
            _against_differences(cell, values, prev, j, J, name)
            checked += 1
    return found, checked


def _against_differences(cell, values, prev, j, J, name):
    eps = mpmath.mpf(10) ** -30
    base = _base(j.wrt)
    for k in range(len(prev[base])):
        up, down = dict(prev), dict(prev)
        e = np.zeros(len(prev[base]), dtype=object) + mpmath.mpf(0)
        e[k] = eps
        up[base] = prev[base] + e
        down[base] = prev[base] - e
        column = (step(cell, values, up)[j.of] - step(cell, values, down)[j.of]) / (2 * eps)
        err = max(abs(a - b) for a, b in zip(column, J[:, k]))
        assert err < mpmath.mpf(10) ** -25, f"{name}: ∂{j.of}/∂{j.wrt} column {k} off by {err}"


@pytest.mark.parametrize("name", CELLS)
def test_jacobians_match_central_differences(name):
    found, _ = check(symlstm.CELLS[name](), name, [multiplied_out, chained])
    assert any(j.terms is not None for j in found)


def test_a_concatenating_cells_chain_stacks_its_blocks():
    found, checked = check(symlstm.CELLS["lstm_concat"](), "lstm_concat", [chained])
    assert checked == len(found) == 4
    assert any(link.blocks is not None and not all(d for _, d in link.blocks)
               for j in found for link in j.chain)   # a zero block beside the state's


def test_past_max_paths_only_the_chain_is_formed_and_it_stays_right():
    """Each equation reads the two before it: the paths double every two equations, the
    chain grows by one link per equation."""
    cell = scaling().fan_out(12)
    found, checked = check(cell, "fan", [multiplied_out, chained])
    [j] = found
    paths = [1, 1]              # to h_{t-1} itself and to a0; then each adds the two before
    for _ in range(11):
        paths.append(paths[-1] + paths[-2])
    assert j.paths == paths[-1] > MAX_PATHS and j.terms is None and j.vjp is None
    assert len(j.chain) == 12 and checked == 1


def test_a_small_fan_out_is_also_multiplied_out():
    found, checked = check(scaling().fan_out(5), "fan5", [multiplied_out, chained])
    [j] = found
    assert j.paths <= MAX_PATHS and j.terms is not None and checked == 2


def test_the_chain_of_forty_equations_fanning_out_is_formed_at_once():
    [j] = jacobians(symlstm.derive(scaling().fan_out(40)))
    assert len(j.chain) == 40 and j.paths > 10 ** 8
    assert all(len(link.terms) <= 2 for link in j.chain)


def _base(s):
    return naming.parse(s).base


def test_the_lstm_cell_state_path_is_the_forget_gate():
    [j] = [j for j in jacobians(symlstm.derive("lstm")) if str(j.of) == "c[t]" and str(j.wrt) == "c[t-1]"]
    assert j.terms == ((naming.timed("f"), None),)
    [r] = jacobians(symlstm.derive("rnn"))
    assert r.terms == ((1 - naming.timed("h") ** 2, sp.Symbol("R")),)
