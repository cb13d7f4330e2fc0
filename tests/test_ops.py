"""The operations, reductions, constants, scalar parameters and parts of vectors, and the
cell that ships with them, layernorm_lstm: every backend against autodiff of the same
equations written here, and each construct's misuse refused with a clear message."""
import importlib
import re
import time

import numpy as np
import pytest
import sympy as sp
from sympy import tanh

import symlstm
from symlstm.backends.code import numpy_module
from symlstm.cell.model import CellBuilder
from symlstm.cell.ops import (H, Abs, Max, Min, concat, lse, matvec, mean, part, sigma, sqrt,
                              total)
from symlstm.cell.parts import CellError
from symlstm.checks.bruteforce import loss_gradients
from symlstm.checks.verification import load_module, problem

torch = pytest.importorskip("torch", reason="torch is installed by the README's test command")

GATES = "zifo"


def torch_layernorm_lstm(p, x, h, c):
    """The layer-normalised LSTM as the issue writes it, in torch: LN over each whole 4H
    vector, the gates cut from it in the order z, i, f, o."""
    def ln(v, gamma, beta):
        mu = v.mean(-1, keepdim=True)
        var = ((v - mu) ** 2).mean(-1, keepdim=True)
        return gamma * (v - mu) / torch.sqrt(var + 1e-5) + beta

    W = torch.cat([p[f"W_{g}"] for g in GATES])
    R = torch.cat([p[f"R_{g}"] for g in GATES])
    b = torch.cat([p[f"b_{g}"] for g in GATES])
    hs = []
    for t in range(x.shape[0]):
        pre = ln(x[t] @ W.T, p["gamma_x"], 0) + ln(h @ R.T, p["gamma_h"], 0) + b
        zbar, ibar, fbar, obar = pre.chunk(4, dim=-1)
        z, i, f, o = torch.tanh(zbar), torch.sigmoid(ibar), torch.sigmoid(fbar), torch.sigmoid(obar)
        c = f * c + i * z
        h = o * torch.tanh(ln(c, p["gamma_c"], p["beta_c"]))
        hs.append(h)
    return torch.stack(hs), {"h": h, "c": c}


def _autograd(params, x, state0, dhs, dstate):
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    tx = torch.tensor(x, requires_grad=True)
    ts = {k: torch.tensor(v, requires_grad=True) for k, v in state0.items()}
    hs, state = torch_layernorm_lstm(tp, tx, ts["h"], ts["c"])
    loss = (hs * torch.tensor(dhs)).sum() + sum((state[s] * torch.tensor(dstate[s])).sum()
                                                for s in state)
    loss.backward()
    grads = {**{k: v.grad.numpy() for k, v in tp.items()}, "x": tx.grad.numpy(),
             **{f"{k}0": v.grad.numpy() for k, v in ts.items()}}
    return hs.detach().numpy(), grads


def _close(got, want, tol=1e-10):
    assert set(got) == set(want)
    for k, ref in want.items():
        g = np.asarray(got[k].detach() if hasattr(got[k], "detach") else got[k])
        assert g.shape == ref.shape, k
        assert np.abs(g - ref).max() <= tol * max(1.0, np.abs(ref).max()), k


@pytest.mark.parametrize("backend", ["numpy", "numba", "torch"])
def test_layernorm_lstm_matches_autograd_of_its_equations(backend):
    ref = importlib.import_module("symlstm.generated.layernorm_lstm")
    params, x, state0, dhs, dstate = problem(ref, T=4, B=3, D=3, H=5, seed=1)
    want_hs, want = _autograd(params, x, state0, dhs, dstate)
    if backend == "torch":
        mod = importlib.import_module("symlstm.generated.torch.layernorm_lstm")
        tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
        tx = torch.tensor(x, requires_grad=True)
        ts = {k: torch.tensor(v, requires_grad=True) for k, v in state0.items()}
        hs, state = mod.forward(tp, tx, ts)
        loss = (hs * torch.tensor(dhs)).sum() + sum((state[s] * torch.tensor(dstate[s])).sum()
                                                    for s in state)
        loss.backward()
        hs = hs.detach().numpy()
        got = {**{k: v.grad for k, v in tp.items()}, "x": tx.grad,
               **{f"{k}0": v.grad for k, v in ts.items()}}
    else:
        if backend == "numba":
            pytest.importorskip("numba")
        mod = ref if backend == "numpy" else \
            importlib.import_module("symlstm.generated.numba.layernorm_lstm")
        hs, _, cache = mod.forward(params, x, state0)
        got = mod.backward(params, cache, dhs, dstate)
    assert np.abs(hs - want_hs).max() <= 1e-10
    _close(got, want)


def test_layernorm_lstm_has_the_issues_parameters():
    mod = importlib.import_module("symlstm.generated.layernorm_lstm")
    assert mod.SHAPES == {**{f"W_{g}": ("H", "D") for g in GATES},
                          **{f"R_{g}": ("H", "H") for g in GATES},
                          **{f"b_{g}": ("H",) for g in GATES},
                          "gamma_x": ("4*H",), "gamma_h": ("4*H",), "gamma_c": ("H",),
                          "beta_c": ("H",)}
    assert symlstm.get_cell("layernorm_lstm").constants == {"eps": 1e-5}


def test_layernorm_lstm_verifies_within_30_seconds():
    start = time.perf_counter()
    symlstm.verify("layernorm_lstm")
    assert time.perf_counter() - start <= 30


# ------------------------------------------------------- a cell with all of it -----

def every_construct():
    """A cell with each new construct: sqrt, abs, max, min, sum, mean, a constant, a scalar
    parameter, and parts of a vector and of a parameter."""
    b = CellBuilder("every_construct", "Every construct")
    x, h = b.input("x"), b.state("h")
    eps = b.constant("eps", 1e-3)
    W, R = b.param("W", "2*H", "D"), b.param("R", "2*H", "H")
    g, alpha = b.param("g", "2*H"), b.param("alpha")
    a = b.let("a", matvec(W, x) + matvec(R, h))
    m = b.let("m", mean(a))
    s = b.let("s", sqrt(total((a - m) ** 2) + eps))
    u = b.let("u", part(g, 0, H) * part(a, 0, H) / s)
    v = b.let("v", part(a, H, 2 * H) + alpha * h)
    b.let("h", tanh(Max(u, v) + Min(u, -v) * Abs(v) + alpha))
    return b.build()


def test_every_construct_verifies_against_brute_force():
    report = symlstm.verify(every_construct())
    assert "alpha" in str(report)


def test_a_scalar_parameter_has_shape_nothing_and_sums_over_time_batch_and_entries():
    mod = load_module(numpy_module(symlstm.derive(every_construct())), "every_construct")
    params = mod.init_params(2, 3, rng=0)
    assert params["alpha"].shape == ()
    x = np.random.default_rng(0).standard_normal((4, 2, 2))
    hs, _, cache = mod.forward(params, x)
    grads = mod.backward(params, cache, np.ones_like(hs))
    assert grads["alpha"].shape == ()
    step = 1e-6
    plus, minus = dict(params), dict(params)
    plus["alpha"], minus["alpha"] = params["alpha"] + step, params["alpha"] - step
    central = (mod.forward(plus, x)[0].sum() - mod.forward(minus, x)[0].sum()) / (2 * step)
    assert abs(grads["alpha"] - central) <= 1e-6 * max(1.0, abs(central))


def test_a_constant_is_its_name_in_documents_and_its_value_in_code():
    d = symlstm.derive(every_construct())
    code = numpy_module(d)
    assert "0.001" in code and "eps" not in code.replace("every_construct", "")
    from symlstm.documents.latex import latex
    assert r"\varepsilon" in latex(d["fwd:s"].rhs)


def test_every_construct_in_torch_and_numba_matches_numpy(tmp_path):
    from symlstm.backends.torch import torch_module
    d = symlstm.derive(every_construct())
    ref = load_module(numpy_module(d), "every_construct")
    tmod = load_module(torch_module(d), "every_construct_torch")
    params, x, state0, dhs, dstate = problem(ref, T=3, B=2, D=2, H=3, seed=3)
    hs, _, cache = ref.forward(params, x, state0)
    want = ref.backward(params, cache, dhs, dstate)
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    tx = torch.tensor(x, requires_grad=True)
    ts = {k: torch.tensor(v, requires_grad=True) for k, v in state0.items()}
    ths, tstate = tmod.forward(tp, tx, ts)
    ((ths * torch.tensor(dhs)).sum() + (tstate["h"] * torch.tensor(dstate["h"])).sum()).backward()
    assert np.abs(ths.detach().numpy() - hs).max() <= 1e-12
    _close({**{k: v.grad for k, v in tp.items()}, "x": tx.grad, "h0": ts["h"].grad}, want, 1e-12)


# ------------------------------------------------------------------ ties -----

def tie(op):
    """h = tanh(op(u, v) + R h) with u = A x and v = B x: at A = B the two sides tie."""
    b = CellBuilder("tie", "Tie")
    x, h = b.input("x"), b.state("h")
    A, B, R = b.param("A", "H", "D"), b.param("B", "H", "D"), b.param("R", "H", "H")
    u, v = b.let("u", matvec(A, x)), b.let("v", matvec(B, x))
    b.let("h", tanh(op(u, v) + matvec(R, h)))
    return b.build()


@pytest.mark.parametrize("op", [Max, Min, lambda u, v: Abs(u - v)], ids=["max", "min", "abs"])
def test_at_a_tie_each_side_gets_half_and_abs_gets_zero_in_every_backend(op):
    """max and min send half the gradient to each side at a tie (as torch.maximum), abs'(0)
    is 0 (as torch.abs): the generated code, torch's autograd and brute force agree."""
    from symlstm.backends.torch import torch_module
    cell = tie(op)
    d = symlstm.derive(cell)
    mod = load_module(numpy_module(d), "tie")
    params = mod.init_params(2, 3, rng=1)
    params["B"] = params["A"].copy()
    x = np.random.default_rng(2).standard_normal((2, 1, 2))
    state0 = {"h": np.zeros((1, 3))}
    dhs, dstate = np.ones((2, 1, 3)), {"h": np.zeros((1, 3))}
    hs, _, cache = mod.forward(params, x, state0)
    grads = mod.backward(params, cache, dhs, dstate)
    brute = loss_gradients(cell, params, x, state0, dhs, dstate, 2, 3)
    tmod = load_module(torch_module(d), "tie_torch")
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    ths, _ = tmod.forward(tp, torch.tensor(x), {"h": torch.tensor(state0["h"])})
    ths.sum().backward()
    # autograd of the same steps, by torch's own rules for maximum, minimum and abs
    tA, tB = tp["A"].detach().clone().requires_grad_(), tp["B"].detach().clone().requires_grad_()
    hh = torch.zeros(1, 3, dtype=torch.float64)
    total_h = 0
    for t in range(2):
        ua, vb = torch.tensor(x[t]) @ tA.T, torch.tensor(x[t]) @ tB.T
        both = {Max: torch.maximum(ua, vb), Min: torch.minimum(ua, vb)}.get(op, None)
        pre = both if both is not None else torch.abs(ua - vb)
        hh = torch.tanh(pre + hh @ tp["R"].detach().T)
        total_h = total_h + hh.sum()
    total_h.backward()
    for name, ref in (("A", tA.grad.numpy()), ("B", tB.grad.numpy())):
        for got in (grads[name], brute[name], tp[name].grad.numpy()):
            assert np.abs(got - ref).max() <= 1e-12, name
    if op is not Max and op is not Min:   # abs: nothing reaches A or B through a tie
        assert np.abs(grads["A"]).max() == 0
    else:
        assert np.allclose(grads["A"], grads["B"]) and np.abs(grads["A"]).max() > 0


# -------------------------------------------------------------- misuse -----

def _cell(rhs_of):
    b = CellBuilder("misuse", "Misuse")
    x, h = b.input("x"), b.state("h")
    W = b.param("W", "H", "D")
    a = b.let("a", matvec(W, x))
    b.let("h", rhs_of(a, h, b))
    return b.build()


@pytest.mark.parametrize("rhs_of, message", [
    (lambda a, h, b: a - mean(a) + h, "one number per sample, but the right side is a vector"),
    (lambda a, h, b: h * total(a * total(h)), "a reduction inside a reduction"),
    (lambda a, h, b: h + Max(a, h, 2 * a), "max takes two arguments"),
    (lambda a, h, b: h + sp.sqrt(a), "write sqrt(a)"),
    (lambda a, h, b: h + lse(a), "a reduction for the losses of output heads"),
    (lambda a, h, b: h + part(a, H, 2 * H), "are not within a[t]"),
    (lambda a, h, b: h + part(a + h, 0, H), "must be a named vector or a vector parameter"),
    (lambda a, h, b: h + part(a, 0, sp.Rational(1, 2) * H), "is not a size"),
])
def test_misuse_is_refused_with_what_was_expected(rhs_of, message):
    with pytest.raises(CellError, match=re.escape(message)):
        _cell(rhs_of)


def test_a_constant_must_be_a_finite_number_and_declared_once():
    b = CellBuilder("c", "C")
    with pytest.raises(CellError, match="finite real number"):
        b.constant("eps", float("inf"))
    with pytest.raises(CellError, match="finite real number"):
        b.constant("eps", "1e-5")
    b.constant("eps", 1e-5)
    with pytest.raises(CellError, match="declared twice"):
        b.constant("eps", 1e-3)
    with pytest.raises(CellError, match="declared twice"):
        b.param("eps", "H")


def test_the_tie_rule_is_documented_in_the_table():
    from symlstm.cell.ops import OPS
    assert "half" in OPS[Max].about and "half" in OPS[Min].about
    assert "0 at a = 0" in OPS[Abs].about
    assert sigma in OPS and sqrt in OPS


# -------------------------------------------------------------- regressions -----

def test_a_vector_read_only_through_a_mean_gets_its_adjoint_on_every_entry():
    """δa3 = δa5/(2D) is one number per sample; a3's parts need it on every entry."""
    b = CellBuilder("spread", "Spread")
    x, h = b.input("x"), b.state("h")
    b1, W2 = b.param("b1", "D"), b.param("W2", "H", "D")
    a1 = b.let("a1", b1)
    a3 = b.let("a3", concat(x, a1))
    a5 = b.let("a5", mean(a3))
    b.let("h", a5 + h + matvec(W2, x))
    symlstm.verify(b.build())


def test_a_sum_over_a_part_counts_the_parts_rows_and_spreads_its_adjoint_over_them():
    b = CellBuilder("part_sum", "Part sum")
    x, h, s = b.input("x", "H"), b.state("h"), b.state("s")
    b1, W2 = b.param("b1", "H"), b.param("W2", "H", "2*H")
    k = b.let("k", concat(s, h))
    dev = b.let("dev", total(part(k, 0, H)))
    b.let("h", part(k, 0, H) * b1)
    b.let("s", dev + x + matvec(W2, k))
    symlstm.verify(b.build())


def test_every_construct_in_numba_matches_numpy(tmp_path):
    """One compile: max, min, abs, sqrt, a mean and a sum, a scalar parameter and parts in the
    loops over entries (a reduction is a loop of its own, one number per sample read at 0)."""
    pytest.importorskip("numba")
    from test_numba_backend import _compare_random
    _compare_random(every_construct(), tmp_path)


def test_the_mean_of_a_part_divides_by_the_parts_size():
    """mean(part([x; s], 0, D)) sends δ/D to each of x's entries (a random cell found the
    1/D lost when the part had been set aside before the mean was written out)."""
    from symlstm.cell.ops import D, mean, part
    b = symlstm.CellBuilder("mean_of_part", "The mean of a part")
    x, s = b.input("x"), b.state("s")
    W = b.param("W", "H", "H")
    a = b.let("a", mean(part(b.let("X", symlstm.concat(x, s)), 0, D)))
    b.let("h", s)
    b.let("s", a + s + symlstm.matvec(W, s))
    assert symlstm.verify(b.build(output="h")).ok
