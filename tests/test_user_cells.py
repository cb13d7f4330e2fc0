"""Cells users write: a minimal gated unit goes through the same engine, and bad cells are refused."""
import types

import numpy as np
import pytest
import sympy as sp
from conftest import problem
from test_generated_numpy import total_loss

import symlstm
from symlstm import CellBuilder, CellError, concat, matvec, sigma, tanh, transpose
from symlstm.backends.code import numpy_module
from symlstm.checks.gradcheck import check_grads
from symlstm.documents.document import latex_document


def mgu():
    b = CellBuilder("mgu", "Minimal gated unit")
    x, h = b.input("x"), b.state("h")
    W_f, R_f, b_f = b.param("W_f", "H", "D"), b.param("R_f", "H", "H"), b.param("b_f", "H")
    W_n, R_n, b_n = b.param("W_n", "H", "D"), b.param("R_n", "H", "H"), b.param("b_n", "H")
    f = b.let("f", sigma(b.let("fbar", matvec(W_f, x) + matvec(R_f, h) + b_f)))
    u = b.let("u", f * h)
    n = b.let("n", tanh(matvec(W_n, x) + matvec(R_n, u) + b_n))
    b.let("h", (1 - f) * h + f * n)
    return b.build()


def load(source, name):
    mod = types.ModuleType(name)
    exec(compile(source, f"<generated {name}>", "exec"), mod.__dict__)
    return mod


def test_user_cell_derives_generates_and_checks():
    d = symlstm.derive(mgu())
    rec = d["rec:h"]
    assert any((t.via, t.later) == ("h", 1) for t in rec.terms)     # (1 - f_{t+1}) ⊙ δh_{t+1}
    mod = load(numpy_module(d), "mgu")
    params, x, state0, dhs, dstate = problem(mod)
    _, _, cache = mod.forward(params, x, state0)
    grads = mod.backward(params, cache, dhs, dstate)
    args = {**params, "x": x, "h0": state0["h"]}
    check_grads(total_loss(mod, dhs, dstate), args, grads, rtol=1e-6)
    assert r"\delta h_{t}" in latex_document(d)


def _cell(build):
    b = CellBuilder("bad", "Bad")
    x, h = b.input("x"), b.state("h")
    W, R = b.param("W", "H", "D"), b.param("R", "H", "H")
    build(b, x, h, W, R)
    return b.build()


@pytest.mark.parametrize("build, message", [
    (lambda b, x, h, W, R: b.let("h", tanh(matvec(W, x) + matvec(R, h) + sp.Symbol("q"))),
     r"equation 'h' uses q, which is not an input"),
    (lambda b, x, h, W, R: b.let("h", tanh(matvec(R, x) + matvec(W, h))),
     r"R is H×H but x\[t\] has size D: the matrix is applied to the wrong vector"),
    (lambda b, x, h, W, R: (b.let("a", matvec(R, h) + sp.Symbol("g[t]")),
                            b.let("g", tanh(matvec(W, x))), b.let("h", sp.Symbol("a[t]"))),
     r"uses g\[t\] before equation 'g' computes it: a cycle"),
    (lambda b, x, h, W, R: b.let("h", sp.sin(matvec(W, x) + matvec(R, h))),
     r"applies sin, which has no derivative rule"),
    (lambda b, x, h, W, R: b.let("h", W * h + matvec(R, h) + matvec(W, x)),
     r"uses the matrix W element-wise"),
    (lambda b, x, h, W, R: b.let("h", tanh(matvec(W, x) + matvec(R, h) + x)),
     r"combines vectors of sizes \['D', 'H'\]"),
    (lambda b, x, h, W, R: b.let("g", tanh(matvec(W, x) + matvec(R, h))),
     r"state 'h' has no equation"),
    (lambda b, x, h, W, R: (b.let("a_b", matvec(W, x)), b.let("h", matvec(R, h))),
     r"'a_b' is not allowed"),
    (lambda b, x, h, W, R: (b.let("a\\x", matvec(W, x)), b.let("h", matvec(R, h))),
     r"is not allowed: use letters and digits"),
    (lambda b, x, h, W, R: (b.let("g", tanh(matvec(W, x))), b.let("h", matvec(R, h))),
     r"equation 'g': g\[t\] is computed but nothing reads it"),
    (lambda b, x, h, W, R: b.let("h", "tanh(x + h)"),
     r"not as a string"),
    (lambda b, x, h, W, R: (b.let("a", matvec(W, x), label="L"), b.let("h", matvec(R, h) + sp.Symbol("a[t]"), label="L")),
     r"the label 'L' is used by two equations"),
    (lambda b, x, h, W, R: b.let("h", tanh(matvec(W, x)) + matvec(R, h) * transpose(R)),
     r"transpose\(\.\.\.\) is for the matrix"),
    (lambda b, x, h, W, R: b.param("W", "H", "D"),
     r"parameter 'W' is declared twice"),
    (lambda b, x, h, W, R: b.input("h"),
     r"'h' is declared twice"),
    (lambda b, x, h, W, R: b.param("tanh_0", "H"),
     r"starts like one of the generated module's own arrays or cached values"),
    (lambda b, x, h, W, R: b.param("V", "H", "H", "H", "H"),
     r"give no size for a scalar, one for a vector, two for a matrix or \('NH', 'H/NH', 'H/NH'\) "
     r"for per-head"),
    (lambda b, x, h, W, R: b.param("V", "H", "H", "H"),
     r"a parameter with three sizes holds per-head blocks, of the shape \('NH', 'H/NH'"),
])
def test_bad_cells_are_refused_with_the_equation_named(build, message):
    with pytest.raises(CellError, match=message):
        _cell(build)


def test_bad_parameter_name_and_unused_parameter():
    b = CellBuilder("bad", "Bad")
    with pytest.raises(CellError, match=r"parameter name 'W\$' is not allowed"):
        b.param("W$", "H", "D")
    with pytest.raises(CellError, match="starts like one of the generated module's own arrays"):
        b.param("seq_h", "H")
    x, h = b.input("x"), b.state("h")
    W, R, _ = b.param("W", "H", "D"), b.param("R", "H", "H"), b.param("b", "H")
    b.let("h", tanh(matvec(W, x) + matvec(R, h)))
    with pytest.raises(CellError, match="parameter b is declared but no equation uses it"):
        b.build()


def test_shared_weights_accumulate_every_use():
    """W x_t used by two equations and R applied to two vectors: every use adds to the gradient."""
    b = CellBuilder("tied", "Tied weights")
    x, h = b.input("x"), b.state("h")
    W, R, c = b.param("W", "H", "D"), b.param("R", "H", "H"), b.param("c", "H")
    a = b.let("a", tanh(matvec(W, x) + matvec(R, h)))
    b.let("h", sigma(matvec(W, x) + matvec(R, a) + c) * a)
    mod = load(numpy_module(symlstm.derive(b.build())), "tied")
    params, x, state0, dhs, dstate = problem(mod)
    _, _, cache = mod.forward(params, x, state0)
    grads = mod.backward(params, cache, dhs, dstate)
    args = {**params, "x": x, "h0": state0["h"]}
    check_grads(total_loss(mod, dhs, dstate), args, grads, rtol=1e-6)


def test_derive_wants_a_built_cell():
    b = CellBuilder("mine", "Mine")
    with pytest.raises(TypeError, match=r"call its \.build\(\)"):
        symlstm.derive(b)
    with pytest.raises(TypeError, match="expected a cell name or a Cell, got list"):
        symlstm.derive(["lstm"])


def test_cell_without_parameters_or_hidden_size_is_refused():
    b = CellBuilder("still", "Still")
    x, h = b.input("x"), b.state("h")
    b.let("h", tanh(h))
    with pytest.raises(CellError, match="reads it|no parameters"):
        b.build()


def test_one_parameter_and_a_concatenation():
    """A single weight on [x; h]: the smallest cell, through the whole pipeline."""
    b = CellBuilder("tiny", "Tiny")
    x, h = b.input("x"), b.state("h")
    W = b.param("W", "H", "D + H")
    xh = b.let("xh", concat(x, h))
    b.let("h", tanh(matvec(W, xh)))
    mod = load(numpy_module(symlstm.derive(b.build())), "tiny")
    assert mod.PARAMS == ("W",)
    params, x, state0, dhs, dstate = problem(mod)
    _, _, cache = mod.forward(params, x, state0)
    grads = mod.backward(params, cache, dhs, dstate)
    check_grads(total_loss(mod, dhs, dstate), {**params, "x": x, "h0": state0["h"]}, grads,
                rtol=1e-6)


def test_row_major_weights_without_bias():
    """Weights stored input-by-output, (D + H) x H, and no parameter of shape (H, ...)."""
    b = CellBuilder("rows", "Rows")
    x, h = b.input("x"), b.state("h")
    W = b.param("W", "D + H", "H")
    xh = b.let("xh", concat(x, h))
    b.let("h", tanh(matvec(transpose(W), xh)))
    mod = load(numpy_module(symlstm.derive(b.build())), "rows")
    params, x, state0, dhs, dstate = problem(mod)
    _, _, cache = mod.forward(params, x, state0)
    grads = mod.backward(params, cache, dhs, dstate)
    check_grads(total_loss(mod, dhs, dstate), {**params, "x": x, "h0": state0["h"]}, grads,
                rtol=1e-6)


# ------------------------------------------------------------------ names -----

def every_name():
    """A cell whose names are every generated module's own: the Numba loops' b, j and F,
    torch and device, np, T and B, a keyword and built-ins, x as a parameter beside the
    input u, and a parameter whose gradient would be called dhs."""
    b = CellBuilder("names", "Names")
    u, h, np_ = b.input("u"), b.state("h"), b.state("np")
    x, j, bias = b.param("x", "H", "D"), b.param("j", "H", "H"), b.param("b", "H")
    F, device, torch_ = b.param("F", "H"), b.param("device", "H"), b.param("torch", "H", "H")
    T, lam, hs = b.param("T", "H"), b.param("lambda", "H"), b.param("hs", "H")
    B = b.let("B", sigma(matvec(x, u) + matvec(j, h) + bias))
    t = b.let("t", tanh(matvec(torch_, np_) + F))
    inside = b.let("in", B * t + device * hs)
    b.let("h", tanh(inside) * T + lam * h)
    b.let("np", B * np_ + (1 - B) * b.let("range", sigma(inside)))
    return b.build()


def test_every_name_works_in_the_numpy_module_and_keys_stay_the_names():
    report = symlstm.verify(every_name())
    keys = {r.key for r in report.rows}
    assert keys == {"x", "j", "b", "F", "device", "torch", "T", "lambda", "hs", "u", "h0", "np0",
                    "forward"}
    mod = load(numpy_module(symlstm.derive(every_name())), "names")
    assert mod.INPUT == "u" and mod.PARAMS[:3] == ("x", "j", "b")
    params = mod.init_params(2, 3, rng=0)
    hs, state, cache = mod.forward(params, np.ones((4, 2, 2)))
    grads = mod.backward(params, cache, np.ones_like(hs))
    assert grads["u"].shape == (4, 2, 2) and grads["x"].shape == params["x"].shape == (3, 2)
    assert set(state) == {"h", "np"}


def test_every_name_works_in_the_torch_module():
    torch = pytest.importorskip("torch")
    from test_torch_backend import _compare

    from symlstm.backends.torch import torch_module
    d = symlstm.derive(every_name())
    _compare(load(numpy_module(d), "names"), load(torch_module(d), "torch_names"), D=3, H=4)
    net = load(torch_module(d), "torch_names").Cell(3, 4, dtype=torch.float64)
    assert [n for n, _ in net.named_parameters()][:3] == ["x", "j", "b"]


def test_every_name_works_in_the_numba_module(tmp_path):
    pytest.importorskip("numba")
    from test_numba_backend import _compare, _load

    from symlstm.backends.numba import numba_module
    d = symlstm.derive(every_name())
    _compare(load(numpy_module(d), "names"), _load(numba_module(d), "names", tmp_path))


#: The generated modules' functions that hold a cell's names (and methods of those names).
HOLDERS = {"forward", "backward", "_forward", "_backward", "_forward_steps", "_backward_steps",
           "_forward_pass", "_backward_pass"}


def _function_names(source):
    """For each function of a module's source that holds a cell's names: every name it reads,
    binds or takes."""
    import ast
    out = []
    for f in ast.walk(ast.parse(source)):
        if isinstance(f, ast.FunctionDef) and f.name in HOLDERS:
            out.append({n.id if isinstance(n, ast.Name) else n.arg for n in ast.walk(f)
                        if isinstance(n, (ast.Name, ast.arg))})
    return out


@pytest.mark.parametrize("name", ["peephole_lstm", "gru", "lstm_concat", "lstm_rowmajor"])
def test_the_modules_own_names_are_all_in_naming(name):
    """Where a function of a generated module holds a cell's names, every other name it uses
    is one that ``naming.identifier`` spells the cell's names apart from (or starts with _,
    or holds __, which no cell's name does): the rule lives in one place."""
    from symlstm import naming
    from symlstm.backends.numba import numba_module
    from symlstm.backends.torch import torch_module
    d = symlstm.derive(name)
    cell = d.cell
    vectors = [*cell.input_symbols, *cell.prev_states, *(eq.lhs for eq in cell.equations)]
    mine = {naming.code(s) for v in vectors for s in (v, naming.adjoint(v))}
    mine |= {naming.code(naming.timed(s, 0, naming.CARRY)) for s in cell.states}
    mine |= {naming.code(s) for p in cell.params for s in (p.symbol, naming.adjoint(p.symbol))}
    for source in (numpy_module(d), torch_module(d), numba_module(d)):
        for names in _function_names(source):
            own = {n for n in names - mine if not n.startswith("_") and "__" not in n}
            assert {n for n in own if naming.identifier(n) == n} == set(), name
