"""Cells that once got wrong or broken code, each kept as a test (the shrunk form where the
random-cell tests found it), and the operation table's promises."""
import numpy as np
import pytest
import sympy as sp
from test_random_cells import check_cell

import symlstm
from symlstm import (CellBuilder, CellError, concat, exp, log, matvec, relu, sigma, softplus, tanh,
                     transpose)
from symlstm.backends.code import numpy_module
from symlstm.backends.numpy import pycode
from symlstm.cell.ops import BINARY, OPS, diff, elementary, step
from symlstm.checks.verification import VerifyError, load_module
from symlstm.documents.document import latex_document
from symlstm.documents.latex import latex


def build(make, states=("h",), input_size="D", state_sizes=None):
    b = CellBuilder("regression", "Regression")
    x = b.input("x", input_size)
    prev = {s: b.state(s, (state_sizes or {}).get(s, "H")) for s in states}
    make(b, x, prev)
    return b.build()


def W(b, name, rows="H", cols="H"):
    return b.param(name, rows, cols)


CASES = {
    # a function nested in a sub-expression of another: the inner value must be computed
    "nested in a product": lambda b, x, p: b.let("h", p["h"] * tanh(tanh(matvec(W(b, "W", "H", "D"), x)))),
    "nested in a gate": lambda b, x, p: b.let("h", sigma(tanh(matvec(W(b, "W", "H", "D"), x))) * p["h"]),
    "nested three deep": lambda b, x, p: b.let("h", tanh(tanh(tanh(matvec(W(b, "W", "H", "D"), x) + matvec(W(b, "R"), p["h"]))))),
    # a matrix applied to a state's new value, and states that feed each other
    "product on a new state": lambda b, x, p: (b.let("a", tanh(matvec(W(b, "W", "H", "D"), x) + p["a"])),
                                               b.let("h", tanh(matvec(W(b, "V"), sp.Symbol("a[t]")) + p["h"]))),
    "states feeding each other": lambda b, x, p: (b.let("a", tanh(matvec(W(b, "W", "H", "D"), x) + matvec(W(b, "R"), p["h"]))),
                                                  b.let("h", sigma(matvec(W(b, "V"), p["a"])) * sp.Symbol("a[t]"))),
    # division and integer powers
    "division": lambda b, x, p: b.let("h", matvec(W(b, "W", "H", "D"), x) / (1 + p["h"]**2)),
    "powers": lambda b, x, p: b.let("h", tanh(matvec(W(b, "W", "H", "D"), x))**3 + p["h"]**2 / 2),
    # the added operations, nested
    "relu, softplus, log": lambda b, x, p: b.let("h", relu(matvec(W(b, "W", "H", "D"), x)) + log(1 + softplus(p["h"]))),
    # softplus' derivative σ(a) of a product computed by a per-step GEMM
    "softplus of a step product": lambda b, x, p: (b.let("a", x), b.let("h", softplus(matvec(W(b, "V", "H", "D"), sp.Symbol("a[t]"))) + p["h"])),
    # a CSE temporary that reads a cached product
    "temporary after its inputs": lambda b, x, p: b.let("h", softplus(b.param("c", "H") * matvec(W(b, "R"), p["h"])) + matvec(W(b, "W", "H", "D"), x)),
    # relu of an exact zero: relu'(0) = 0
    "relu at zero": lambda b, x, p: (b.let("u", relu(p["h"])), b.let("h", 2 * sp.Symbol("u[t]") + p["u"] + matvec(W(b, "W", "H", "D"), x))),
    # vectors that read parameters only, concatenated and multiplied by matrices
    "parameter-only vectors": lambda b, x, p: (b.let("a", b.param("c", "H")), b.let("g", sigma(b.param("d", "H"))),
                                               b.let("X", concat(sp.Symbol("a[t]"), p["h"])),
                                               b.let("h", matvec(W(b, "W", "H", "2*H"), sp.Symbol("X[t]")) + sp.Symbol("g[t]") * matvec(W(b, "V", "H", "D"), x))),
    # a number symbol such as π, which build() accepts as a real number
    "number symbol": lambda b, x, p: b.let("h", tanh(matvec(W(b, "W", "H", "D"), x)) * sp.pi + p["h"] / 2),
    "number symbol in a cached value": lambda b, x, p: b.let("h", sigma(sp.pi * p["h"]) + matvec(W(b, "W", "H", "D"), x)),
    "constant in a derivative": lambda b, x, p: b.let("h", p["h"] + matvec(W(b, "W", "H", "D"), x) / (sigma(0) + 1) + matvec(W(b, "R"), p["h"])**2 / (sigma(0) + 1)),
    # a constant function application
    "constant": lambda b, x, p: b.let("h", p["h"] / (2 + matvec(W(b, "W", "H", "D"), x)**2) + sigma(sigma(0))),
    # an element-wise gradient of x only (δx = δs ⊙ [s > 0])
    "input read element-wise only": lambda b, x, p: (b.let("s", relu(x)), b.let("h", p["h"] + matvec(W(b, "W", "H", "D"), p["s"])**3)),
    # the transpose of a power printed in LaTeX: (b²)ᵀ
    "power in a weight gradient": lambda b, x, p: b.let("h", b.param("c", "H")**2 * matvec(transpose(W(b, "V", "D", "H")), x) + p["h"]),
}
STATES = {"product on a new state": ("h", "a"), "states feeding each other": ("h", "a"),
          "relu at zero": ("h", "u"), "input read element-wise only": ("h", "s")}
SIZES = {"input read element-wise only": {"s": "D"}}


@pytest.mark.parametrize("name", list(CASES))
def test_regression_cell(name):
    cell = build(CASES[name], STATES.get(name, ("h",)), state_sizes=SIZES.get(name))
    check_cell(cell)


def test_an_input_of_the_hidden_size():
    cell = build(lambda b, x, p: b.let("h", tanh(x + matvec(W(b, "R"), p["h"]))), input_size="H")
    check_cell(cell)
    mod = load_module(numpy_module(symlstm.derive(cell)), "regression")
    with pytest.raises(ValueError, match="input_size must equal hidden_size"):
        mod.init_params(3, 4)
    params = mod.init_params(4, 4, rng=0)
    with pytest.raises(ValueError, match="hidden size H=4"):
        mod.forward(params, np.zeros((2, 1, 3)))


def test_no_size_d_without_an_input_of_size_d():
    with pytest.raises(CellError, match="no input size D"):
        build(lambda b, x, p: b.let("h", tanh(x + matvec(W(b, "R", "H", "D"), x))), input_size="H")


@pytest.mark.parametrize("func, message", [
    (sp.sin, "applies sin, which has no derivative rule"),
    (lambda a: sp.Max(0, a, 2 * a), "max takes two arguments"),
    (sp.sign, "applies sign, which has no derivative rule"),
    (sp.sqrt, "needs an integer exponent .for a square root write sqrt"),
    (lambda a: a * sp.I, "not a vector, a parameter or a real number"),
    (lambda a: a * sp.zoo, "not a finite real number"),
])
def test_an_operation_without_an_entry_is_refused_at_build(func, message):
    with pytest.raises(CellError, match=message):
        build(lambda b, x, p: b.let("h", func(matvec(W(b, "W", "H", "D"), x)) + p["h"]))


def test_each_rule_is_the_derivative_of_its_definition():
    a, b = sp.Symbol("a", real=True), sp.Symbol("b", real=True)
    for f, op in OPS.items():
        if f in BINARY:   # max, min: each partial, away from the tie
            for k, rule in enumerate(op.derivative(f(a, b), a, b)):
                rule = elementary(rule, sp, lambda e: e)
                truth = sp.diff(op.definition(a, b, sp), (a, b)[k])
                for u, v in ((0.4, -1.3), (-1.3, 0.4), (2.1, 2.0)):
                    assert abs(float((rule - truth).subs({a: u, b: v}))) < 1e-12, f.__name__
            continue
        rule = elementary(op.derivative(f(a), a), sp, lambda e: e)   # σ, step... by definition
        truth = sp.diff(op.definition(a, sp), a)
        for value in (0.4, 2.1) if f is sp.log else (-1.3, -0.2, 0.4, 2.1):
            assert abs(float((rule - truth).subs(a, value))) < 1e-12, f.__name__


def test_relu_derivative_is_zero_at_zero():
    a = sp.Symbol("a[t]")
    d = diff(relu(a), a)
    assert d == step(relu(a))
    assert "np.heaviside" in pycode(d) and np.heaviside(0.0, 0) == 0


def test_softplus_is_stable_for_large_arguments():
    assert pycode(softplus(sp.Symbol("a[t]"))) == "np.logaddexp(0, a)"
    assert np.logaddexp(0, 1000.0) == 1000.0 and np.isfinite(np.logaddexp(0, -1000.0))


def test_division_and_powers_print_everywhere():
    a, b = sp.Symbol("a[t]"), sp.Symbol("b[t]")
    e = a / (1 + b**2) - exp(a)**3 / tanh(b)**2
    assert latex(e) == r"\frac{a_{t}}{1 + b_{t}^{2}} - \frac{e^{3 a_{t}}}{\tanh^{2}\left(b_{t}\right)}"
    assert pycode(e) == "a/(b_**2 + 1) - np.exp(3*a)/np.tanh(b_)**2"   # b is the module's
    cell = build(CASES["division"])
    assert r"\frac" in latex_document(symlstm.derive(cell))


def test_verify_raises_on_a_wrong_gradient(monkeypatch):
    import symlstm.backends.code as render
    real = render.numpy_module
    monkeypatch.setattr(render, "numpy_module",
                        lambda d: real(d).replace("dh_next = ", "dh_next = 0.99 * "))
    with pytest.raises(VerifyError, match="wrong"):
        symlstm.verify("rnn")
    report = symlstm.verify("rnn", raises=False)
    assert not report.ok and "<-- wrong" in str(report)


@pytest.mark.parametrize("param, input_name, message", [
    ("dq", "x", "parameter dq and the gradient of parameter q would both be called 'dq'"),
    ("dh_next", "x", "would both be called 'dh_next'"),
    ("h_next", "x", "the gradient of parameter h_next and δ⁺h"),
    ("h0", "x", "initial state h and parameter h0 would both have the gradient grads\\['h0'\\]"),
    ("g", "h0", "initial state h and input h0 would both have the gradient"),
])
def test_names_that_would_become_one_identifier_are_refused(param, input_name, message):
    b = CellBuilder("clash", "Clash")
    x, h = b.input(input_name), b.state("h")
    q, extra = b.param("q", "H"), b.param(param, "H")
    with pytest.raises(CellError, match=message):
        b.let("h", tanh(matvec(W(b, "W", "H", "D"), x) + matvec(W(b, "R"), h)) * q + extra * h)
        b.build()


def test_sums_inside_sums_take_their_own_index():
    """δR_jk = Σ_t Σ_b δh_{t,j} (1 - tanh²(Σ_l R_jl h_{t-1,l})) h_{t-1,k}: never R_jj."""
    cell = build(lambda b, x, p: b.let("h", tanh(matvec(W(b, "R"), p["h"])) + matvec(W(b, "W", "H", "D"), x)))
    tex = latex_document(symlstm.derive(cell))
    assert r"\sum_{l} R_{jl} h_{t-1,l}" in tex
    assert "R_{jj}" not in tex


def test_verify_wants_positive_integer_sizes():
    with pytest.raises(ValueError, match="positive integers, got {'T': 0}"):
        symlstm.verify("rnn", T=0)
    with pytest.raises(TypeError, match="takes the sizes"):
        symlstm.verify("rnn", K=2)


def test_a_new_operation_is_one_table_entry(monkeypatch):
    """arctan, added as one entry of OPS: refused before, then derived, generated, checked
    against both references and printed in LaTeX, with no other change."""
    from symlstm.cell.ops import Op
    make = lambda b, x, p: b.let("h", sp.atan(matvec(W(b, "W", "H", "D"), x)) * p["h"])  # noqa: E731
    with pytest.raises(CellError, match="applies atan"):
        build(make)
    monkeypatch.setitem(OPS, sp.atan, Op(sp.atan, lambda y, a: 1 / (1 + a**2), "np.arctan({a})",
                                         r"\arctan\left({a}\right)", "atan({a})",
                                         lambda a, m: m.atan(a), "np.arctan"))
    d, tex = check_cell(build(make))
    assert r"\arctan\left(" in tex and "np.arctan(" in numpy_module(d)


def test_verify_fails_a_module_that_leaves_a_gradient_out(monkeypatch):
    import symlstm.backends.code as render
    real = render.numpy_module
    monkeypatch.setattr(render, "numpy_module",
                        lambda d: real(d).replace('grads["h0"] = dh_next', "pass"))
    report = symlstm.verify("rnn", raises=False)
    assert not report.ok
    assert [r.key for r in report.rows if not report.within(r)] == ["h0"]


def pi_squared_cell():
    """The random cell that crashed the Numba backend: CSE took π² out as a temporary of
    its own, a number with no size."""
    b = CellBuilder("pi_squared", "π²")
    x, h, s = b.input("x"), b.state("h", "H"), b.state("s", "D")
    b1, V2, W3 = b.param("b1", "H"), b.param("V2", "H", "D"), b.param("W3", "D", "H")
    h_t = b.let("h", h / 2)
    a3 = b.let("a3", log(sp.pi**2 * h_t**2 + 1))
    a4 = b.let("a4", b.let("a2", b1 * h_t)**2)
    b.let("s", s + x + matvec(transpose(V2), a3) + matvec(W3, a4))
    return b.build()


def test_a_constant_temporary_such_as_pi_squared_in_every_backend(tmp_path):
    cell = pi_squared_cell()
    check_cell(cell)
    d = symlstm.derive(cell)
    ref = load_module(numpy_module(d), cell.name)
    torch = pytest.importorskip("torch")   # noqa: F841
    from test_torch_backend import _compare as compare_torch

    from symlstm.backends.torch import torch_module
    compare_torch(ref, load_module(torch_module(d), "torch_pi"), tol=1e-9)
    pytest.importorskip("numba")
    from test_numba_backend import _compare, _load

    from symlstm.backends.numba import numba_module
    source = numba_module(d)
    assert "F(3.141592653589793)" in source   # π written where it is read
    _compare(ref, _load(source, cell.name, tmp_path))
