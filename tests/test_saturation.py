"""Saturation: every operation of ``ops.OPS``, in every backend, keeps its relative accuracy
over the whole float64 and float32 range wherever the exact value is a normal number; and
cells that divide by gates or take their logs stay right when the gates saturate.

The exact values are mpmath's at 50 digits.  An operation's result is within ``ULPS`` units
in the last place of the exact value where that value is a normal number, exactly 0 where it
is 0, at most the smallest normal number where it is subnormal, an infinity of the right
sign where it is beyond the largest number, and never NaN where it is a number.
"""
import importlib.util
import sys

import mpmath
import numpy as np
import pytest
import sympy as sp

import symlstm
from symlstm import CellBuilder, exp, log, logsigmoid, matvec, sigma, softplus, tanh
from symlstm.backends import torch as torch_backend
from symlstm.backends.code import numpy_module
from symlstm.backends.numba import SPELLINGS as NUMBA_SPELLINGS
from symlstm.backends.numba import ElementPrinter, numba_module
from symlstm.backends.numpy import pycode
from symlstm.cell.ops import OPS, relu, step
from symlstm.checks.verification import load_module
from symlstm.documents.latex import latex
from symlstm.printers.comment import comment


torch = pytest.importorskip("torch", reason="torch is installed by the README's test command")
numba = pytest.importorskip("numba", reason="numba is installed by the README's test command")



@pytest.fixture(autouse=True)
def _precision():
    """This module's mpmath precision, for its tests alone (other modules set their own)."""
    with mpmath.workdps(50):
        yield

#: The bound on every operation's error, in units in the last place of the exact value.
ULPS = 4

#: Each operation and its derivative at 50 digits, written without the forms under test.
EXACT = {
    sigma: (lambda a: 1 / (1 + mpmath.exp(-a)), lambda a: 1 / (4 * mpmath.cosh(a / 2) ** 2)),
    tanh: (mpmath.tanh, lambda a: mpmath.sech(a) ** 2),
    exp: (mpmath.exp, mpmath.exp),
    log: (mpmath.log, lambda a: 1 / a),
    softplus: (lambda a: mpmath.log1p(mpmath.exp(a)), lambda a: 1 / (1 + mpmath.exp(-a))),
    logsigmoid: (lambda a: -mpmath.log1p(mpmath.exp(-a)), lambda a: 1 / (1 + mpmath.exp(a))),
    relu: (lambda a: max(a, 0), lambda a: mpmath.mpf(a > 0)),
    step: (lambda a: mpmath.mpf(a > 0), lambda a: mpmath.mpf(0)),
}


#: Operations that every library computes to the correctly rounded result or exactly (a square
#: root, a sign, an absolute value, a choice): tests/test_ops.py checks them through verify().
ALGEBRAIC = {"sqrt", "Abs", "sign", "halfstep", "Max", "Min"}


def test_every_operation_has_an_exact_reference_here():
    """Each transcendental operation, where the libraries' approximations can lose digits."""
    assert set(EXACT) == {f for f in OPS if f.__name__ not in ALGEBRAIC}
    assert ALGEBRAIC <= {f.__name__ for f in OPS}


def _grid(dtype) -> np.ndarray:
    """Arguments across the whole range: both ends of exp's, tiny ones, ±0, the knees."""
    fi = np.finfo(dtype)
    top = float(np.log(fi.max))   # 709.78 in float64, 88.72 in float32
    tiny = np.geomspace(float(fi.tiny), 40.0, 1500)
    special = [0.0, 1e-300, 1e-30, 1e-8, 0.5, 0.625, 1.0, 19.9, 20.0, 20.1, 36.0, 37.0, 38.0,
               87.0, 87.4, 88.0, 88.5, 88.72, 100.0, 103.9, 104.0, 700.0, 708.3, 708.4, 709.5,
               709.78, 710.0, 744.0, 745.2, 746.0, 1e30, 1e300]
    a = np.concatenate([np.linspace(-top - 40, top + 40, 3001), tiny, -tiny, special,
                        np.negative(special)])
    with np.errstate(over="ignore"):
        a = a.astype(dtype)
    return np.unique(a[np.isfinite(a)])


_EXACT_CACHE = {}


def _exact(f, which: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """f (which=0) or f' (which=1) at every argument of the grid, at 50 digits, as the float64
    pair hi + lo (NaN where it is not a real number: log of a <= 0)."""
    key = (f, which, np.dtype(dtype).name)
    if key not in _EXACT_CACHE:
        g = EXACT[f][which]
        values = [None if f is log and a <= 0 else g(mpmath.mpf(float(a))) for a in _grid(dtype)]
        hi = np.array([np.nan if v is None else float(v) for v in values])
        lo = np.array([0.0 if v is None or not np.isfinite(h) else float(v - mpmath.mpf(h))
                       for v, h in zip(values, hi)])
        _EXACT_CACHE[key] = hi, lo
    return _EXACT_CACHE[key]


def _ulps(got: np.ndarray, exact, dtype, floor: np.ndarray | None = None) -> np.ndarray:
    """Each result's error in ulps of the exact value (of ``floor`` where that is larger);
    0 where there is nothing to compare, inf where a result is wrong outright."""
    fi = np.finfo(dtype)
    hi, lo = exact
    y = got.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        diff = np.abs((y - hi) - lo)   # y - hi is exact wherever y is near hi
        scale = np.maximum(np.abs(hi), 0.0 if floor is None else floor)
        err = diff / (scale * float(fi.eps))
        beyond = np.abs(hi) > float(fi.max)      # an infinity of the exact value's sign
        err = np.where(beyond, np.where(y == np.sign(hi) * np.inf, 0.0, np.inf), err)
        small = ~beyond & (np.abs(hi) < float(fi.tiny))   # 0 exactly; subnormal up to tiny
        err = np.where(small, np.where(diff <= (hi != 0) * float(fi.tiny), 0.0, np.inf), err)
        err = np.where(~beyond & ~np.isfinite(y), np.inf, err)   # never NaN or inf for a number
    return np.where(np.isnan(hi), 0.0, err)


def _report(f, err, dtype) -> str:
    k = int(np.argmax(err))
    return f"{f.__name__}: {err[k]:.2f} ulps at a = {_grid(dtype)[k]!r} ({np.dtype(dtype).name})"


# ------------------------------------------------------------------ backends -----
# Each backend evaluates an expression in the symbols a (and y) over the whole grid, printed
# exactly as its generated modules print it.

A, Y = sp.Symbol("a"), sp.Symbol("y")


@pytest.fixture(scope="module")
def modules(tmp_path_factory):
    """The NumPy and Numba modules of a cell that uses every operation (their helpers are
    what the spellings call)."""
    b = CellBuilder("every_op", "Every operation")
    x, h = b.input("x"), b.state("h")
    W = b.param("W", "H", "D")
    a = b.let("a", matvec(W, x))
    b.let("h", sigma(a) + tanh(a) + exp(tanh(a)) + log(sigma(a)) + softplus(a)
          + logsigmoid(a) + relu(a) + h)
    d = symlstm.derive(b.build())
    folder = tmp_path_factory.mktemp("saturation")
    return load_module(numpy_module(d), "every_op"), _load_file(numba_module(d), "every_op",
                                                                     folder)


def _load_file(source: str, name: str, folder):
    """Generated source imported from a file (numba compiles and caches from files)."""
    path = folder / f"{name}.py"
    path.write_text(source)
    name = f"saturation_{folder.name}_{name}"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = sys.modules[name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _numpy(modules, exprs, a):
    """Each expression, the NumPy printer's code run in the NumPy module (it spells a symbol
    without a time by its name)."""
    out = []
    for e in exprs:
        y = out[-1] if Y in e.free_symbols else None   # a derivative reads the value before
        value = eval(pycode(e), dict(vars(modules[0]), a=a, y=y))
        out.append(value if np.ndim(value) else np.full_like(a, value))   # step' = 0
    return out


def _numba(modules, exprs, a):
    """Each expression, printed for the compiled loops, in one loop over the grid."""
    body = []
    for k, e in enumerate(exprs):
        text = ElementPrinter({"where": {A: "a[j]", Y: f"v{k - 1}"}, "rows": {}}).doprint(e)
        body += [f"v{k} = {text}", f"out[{k}, j] = v{k}"]
    source = ("def apply(a, out):\n    F = a.dtype.type\n    for j in range(a.shape[0]):\n"
              + "".join(f"        {line}\n" for line in body))
    namespace = dict(vars(modules[1]))
    exec(source, namespace)
    out = np.empty((len(exprs), len(a)), a.dtype)
    numba.njit(error_model="numpy")(namespace["apply"])(a, out)
    return list(out)


def _torch(modules, exprs, a):
    out = []
    for e in exprs:
        y = torch.from_numpy(out[-1]) if Y in e.free_symbols else None
        value = eval(torch_backend.code(e), dict(torch=torch, a=torch.from_numpy(a), y=y))
        out.append(value.numpy() if torch.is_tensor(value) else np.full_like(a, value))
    return out


BACKENDS = {"numpy": _numpy, "numba": _numba, "torch": _torch}
DTYPES = [np.float64, np.float32]
_RESULTS = {}


def _results(modules, backend: str, dtype) -> dict:
    """Every operation f and its derivative rule, with y = f(a) as the backend computes it,
    over the grid: {(f, 0): f(a), (f, 1): f'(a)}."""
    key = (backend, np.dtype(dtype).name)
    if key not in _RESULTS:
        exprs = [e for f in EXACT for e in (f(A), OPS[f].derivative(Y, A))]
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):   # exp(710), log(0)
            values = BACKENDS[backend](modules, exprs, _grid(dtype))
        _RESULTS[key] = {(f, k): np.asarray(values[2 * n + k])
                         for n, f in enumerate(EXACT) for k in (0, 1)}
    return _RESULTS[key]


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("f", list(EXACT), ids=lambda f: f.__name__)
def test_every_operation_is_within_a_few_ulps_over_the_whole_range(modules, f, backend, dtype):
    got = _results(modules, backend, dtype)[f, 0]
    assert got.dtype == dtype, f"{backend} {f.__name__}: {got.dtype} from {np.dtype(dtype)}"
    err = _ulps(got, _exact(f, 0, dtype), dtype)
    assert err.max() <= ULPS, f"{backend} " + _report(f, err, dtype)


#: The rules written through the output that subtract it from 1 (σ' = σ(1 - σ), tanh' =
#: 1 - tanh²): where the output is near 1 its last digit limits them, so their error is
#: measured in ulps of 1 there (σ's for a > 0, tanh's everywhere).
NEAR_ONE = {sigma: lambda a: a > 0, tanh: lambda a: np.ones(a.shape, bool)}


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("f", list(EXACT), ids=lambda f: f.__name__)
def test_every_derivative_rule_is_within_a_few_ulps(modules, f, backend, dtype):
    """Each rule f'(a) = OPS[f].derivative(y, a), with y = f(a) computed by the backend."""
    got = _results(modules, backend, dtype)[f, 1]
    assert got.dtype == dtype
    floor = np.where(NEAR_ONE[f](_grid(dtype)), 1.0, 0.0) if f in NEAR_ONE else None
    err = _ulps(got, _exact(f, 1, dtype), dtype, floor)
    assert err.max() <= ULPS, f"{backend} d/da " + _report(f, err, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("name", ["sigmoid", "logsigmoid"])
def test_the_numpy_helpers_compute_in_place_without_warnings(modules, name, dtype):
    """The modules call ``sigmoid(a, out=x)``; out may be a itself.  No overflow warning
    anywhere, though e^|a| overflows for |a| > 709."""
    f = {"sigmoid": sigma, "logsigmoid": logsigmoid}[name]
    helper = getattr(modules[0], name)
    a = _grid(dtype)
    with np.errstate(all="raise", under="ignore"):
        want = helper(a)
        out = np.empty_like(a)
        assert helper(a, out=out) is out
        same = a.copy()
        helper(same, out=same)
    assert want.dtype == dtype
    assert np.array_equal(out, want) and np.array_equal(same, want)
    assert _ulps(want, _exact(f, 0, dtype), dtype).max() <= ULPS
    assert np.isnan(helper(np.array([np.nan], dtype))).all()
    assert helper(np.array([-np.inf, np.inf], dtype)).tolist() == \
        ([0.0, 1.0] if name == "sigmoid" else [-np.inf, 0.0])


def test_the_issues_numbers(modules):
    """σ(-36) is 2.32e-16, not 2.22e-16, and σ(-700) about 1e-304, not 0."""
    sigmoid = modules[0].sigmoid
    for a in (-36.0, -37.0, -38.0, -700.0):
        want = EXACT[sigma][0](mpmath.mpf(a))
        assert abs(sigmoid(np.array([a]))[0] / want - 1) < 1e-15, a


def test_logsigmoid_is_one_entry_of_the_table():
    """log σ: exported, its derivative σ(-a) (accurate where σ(a) is near 1), its spellings,
    and its definition in elementary functions equal to log σ."""
    a = sp.Symbol("fbar[t]")
    assert symlstm.logsigmoid is logsigmoid and "logsigmoid" in symlstm.__all__
    assert sp.diff(logsigmoid(a), a) == sigma(-a)
    assert latex(logsigmoid(a)) == r"\log\sigma\left(\bar{f}_{t}\right)"
    assert latex(logsigmoid(a) ** 2) == \
        r"\left(\log\sigma\left(\bar{f}_{t}\right)\right)^{2}"
    assert comment(logsigmoid(a)) == "logσ(fbar[t])"
    assert pycode(logsigmoid(a)) == "logsigmoid(fbar)"
    assert torch_backend.code(logsigmoid(a)) == "torch.nn.functional.logsigmoid(fbar)"
    assert NUMBA_SPELLINGS[logsigmoid] == "_logsigmoid({a})"
    u = sp.Symbol("u")
    exact = OPS[logsigmoid].definition(u, sp)
    for value in (-30, -1, 0, 2, 30):
        want = EXACT[logsigmoid][0](mpmath.mpf(value))
        assert abs(exact.subs(u, value).evalf(60) - sp.Float(str(want), 60)) < 1e-45


# --------------------------------------------------------------- saturated cells -----
# Cells that divide by gates or take their logs, with their gates far in saturation.  Each
# module's forward outputs and every gradient are compared with the same equations written
# here once more, evaluated in mpmath at 50 digits and differentiated by central differences
# of step 1e-20 (whose error is far below 1e-30): within 1e-9 of each array's largest value.

def minlstm_log():
    """minLSTM (Feng et al., "Were RNNs all we needed?") with its gates normalised in log
    space, σ(log σ(f̄) - log σ(ī)) for f/(f + i), which stays finite however far both
    saturate.  The paper's form, f/(f + i), is the shipped ``minlstm``."""
    b = CellBuilder("minlstm_log", "minLSTM")
    x, h = b.input("x"), b.state("h")
    W_f, b_f = b.param("W_f", "H", "D"), b.param("b_f", "H")
    W_i, b_i = b.param("W_i", "H", "D"), b.param("b_i", "H")
    W_h, b_h = b.param("W_h", "H", "D"), b.param("b_h", "H")
    fbar = b.let("fbar", matvec(W_f, x) + b_f)
    ibar = b.let("ibar", matvec(W_i, x) + b_i)
    htilde = b.let("htilde", matvec(W_h, x) + b_h)
    lf, li = b.let("lf", logsigmoid(fbar)), b.let("li", logsigmoid(ibar))
    fp, ip = b.let("fp", sigma(lf - li)), b.let("ip", sigma(li - lf))
    b.let("h", fp * h + ip * htilde)
    return b.build()


def minlstm():
    """The shipped minLSTM, f/(f + i) ⊙ h + i/(f + i) ⊙ h̃ as the paper writes it."""
    return symlstm.CELLS["minlstm"]()


def minlstm_reference(log_space: bool):
    def run(M, p, x, state0):
        h, hs = state0["h"], []
        for x_t in x:
            fbar, ibar = x_t @ p["W_f"].T + p["b_f"], x_t @ p["W_i"].T + p["b_i"]
            if log_space:
                lf, li = M.logsigmoid(fbar), M.logsigmoid(ibar)
                fp, ip = M.sigma(lf - li), M.sigma(li - lf)
            else:
                f, i = M.sigma(fbar), M.sigma(ibar)
                fp, ip = f / (f + i), i / (f + i)
            h = fp * h + ip * (x_t @ p["W_h"].T + p["b_h"])
            hs.append(h)
        return np.array(hs), {"h": h}
    return run


def slstm(gate):
    """An sLSTM with one head (Beck et al., "xLSTM"): exponential input gate, sigmoid forget
    gate taken in log space, normaliser n and stabiliser m.  The grammar has no max, so m is
    the smooth maximum log(e^{log f + m_{t-1}} + e^{ī}) = l - log σ(l - ī) with
    l = log f + m_{t-1}; then f' + i' = 1.  ``gate`` spells log f: ``logsigmoid(fbar)`` or
    ``log(sigma(fbar))``."""
    b = CellBuilder(f"slstm_{gate.__name__}", "sLSTM, one head")
    x = b.input("x")
    h, c, n, m = (b.state(s) for s in "hcnm")
    bar = {}
    for g in "zifo":
        W, R = b.param(f"W_{g}", "H", "D"), b.param(f"R_{g}", "H", "H")
        bar[g] = b.let(f"{g}bar", matvec(W, x) + matvec(R, h) + b.param(f"b_{g}", "H"))
    z, o = b.let("z", tanh(bar["z"])), b.let("o", sigma(bar["o"]))
    lf = b.let("lf", gate(bar["f"]) + m)
    m_t = b.let("m", lf - logsigmoid(lf - bar["i"]))
    ip, fp = b.let("ip", exp(bar["i"] - m_t)), b.let("fp", exp(lf - m_t))
    c_t = b.let("c", fp * c + ip * z)
    n_t = b.let("n", fp * n + ip)
    b.let("h", o * c_t / n_t)
    return b.build()


def _log_sigma(a):
    return log(sigma(a))


def slstm_reference(M, p, x, state0):
    h, c, n, m = (state0[s] for s in "hcnm")
    hs = []
    for x_t in x:
        bar = {g: x_t @ p[f"W_{g}"].T + h @ p[f"R_{g}"].T + p[f"b_{g}"] for g in "zifo"}
        lf = M.logsigmoid(bar["f"]) + m
        m = lf - M.logsigmoid(lf - bar["i"])
        ip, fp = M.exp(bar["i"] - m), M.exp(lf - m)
        c = fp * c + ip * M.tanh(bar["z"])
        n = fp * n + ip
        h = M.sigma(bar["o"]) * c / n
        hs.append(h)
    return np.array(hs), {"h": h, "c": c, "n": n, "m": m}


class MP:
    """The element-wise functions at 50 digits, on object arrays of mpmath numbers."""
    exp = staticmethod(np.frompyfunc(mpmath.exp, 1, 1))
    tanh = staticmethod(np.frompyfunc(mpmath.tanh, 1, 1))
    sigma = staticmethod(np.frompyfunc(lambda a: 1 / (1 + mpmath.exp(-a)), 1, 1))
    logsigmoid = staticmethod(np.frompyfunc(lambda a: -mpmath.log1p(mpmath.exp(-a)), 1, 1))


def _mp(a):
    return np.frompyfunc(mpmath.mpf, 1, 1)(np.asarray(a, np.float64))


def _reference(run, params, x, state0, dhs, dstate):
    """Forward outputs at 50 digits, and the gradient of L = Σ dhs ⊙ hs + Σ_s dstate_s ⊙ s_T
    for every parameter, x and every initial state, by central differences at 50 digits."""
    args = {**{k: _mp(v) for k, v in params.items()}, "x": _mp(x),
            **{f"{s}0": _mp(v) for s, v in state0.items()}}
    states = list(state0)

    def forward(a):
        return run(MP, {k: a[k] for k in params}, a["x"], {s: a[f"{s}0"] for s in states})

    def loss(a):
        hs, state = forward(a)
        return np.sum(hs * _mp(dhs)) + sum(np.sum(state[s] * _mp(dstate[s])) for s in states)
    step = mpmath.mpf(10) ** -20
    grads = {}
    for key, value in args.items():
        g = np.empty(value.shape, object)
        for k in np.ndindex(value.shape):
            keep = value[k]
            value[k] = keep + step
            up = loss(args)
            value[k] = keep - step
            g[k] = (up - loss(args)) / (2 * step)
            value[k] = keep
        grads[key] = g.astype(np.float64)
    hs, state = forward(args)
    return hs.astype(np.float64), {s: v.astype(np.float64) for s, v in state.items()}, grads


def _run_numpy_like(mod, params, x, state0, dhs, dstate):
    hs, state, cache = mod.forward(params, x, state0)
    return hs, state, mod.backward(params, cache, dhs, dstate)


def _run_torch(mod, params, x, state0, dhs, dstate):
    leaves = {k: torch.tensor(v, requires_grad=True) for k, v in
              [*params.items(), ("x", x), *((f"{s}0", v) for s, v in state0.items())]}
    hs, state = mod.forward({k: leaves[k] for k in params}, leaves["x"],
                            {s: leaves[f"{s}0"] for s in state0})
    loss = (hs * torch.from_numpy(dhs)).sum() + sum(
        (state[s] * torch.from_numpy(dstate[s])).sum() for s in state0)
    loss.backward()
    return (hs.detach().numpy(), {s: v.detach().numpy() for s, v in state.items()},
            {k: v.grad.numpy() for k, v in leaves.items()})


_BACKENDS = {}


def _backends(cell, folder) -> dict:
    """The cell's NumPy, Numba and torch modules, made once per cell (Numba compiles each)."""
    if cell.name not in _BACKENDS:
        _BACKENDS[cell.name] = _modules(cell, folder)
    return _BACKENDS[cell.name]


def _modules(cell, folder) -> dict:
    d = symlstm.derive(cell)
    return {"numpy": (_run_numpy_like, load_module(numpy_module(d), cell.name)),
            "numba": (_run_numpy_like, _load_file(numba_module(d), cell.name, folder)),
            "torch": (_run_torch, load_module(torch_backend.torch_module(d), cell.name))}


def _close(name, got, want, rtol, scale=None):
    """|got - want| <= rtol times the largest |want| (or ``scale``)."""
    got = np.asarray(got, np.float64)
    assert got.shape == want.shape, name
    scale = np.abs(want).max() if scale is None else scale
    err = np.abs(got - want).max() / scale
    assert err <= rtol, f"{name}: off by {err:.1e} of {scale:.2e}"


def _check(cell, run, problem, folder, rtol=1e-9, each=True):
    """Every backend's forward outputs and gradients against the 50-digit reference: each
    array within ``rtol`` of its own largest value, or (``each`` False) each gradient within
    ``rtol`` of the largest value of any gradient."""
    want_hs, want_state, want = _reference(run, *problem)
    largest = None if each else max(np.abs(g).max() for g in want.values())
    dtype = problem[1].dtype
    for backend, (call, mod) in _backends(cell, folder).items():
        hs, state, grads = call(mod, *problem)
        assert hs.dtype == dtype and all(g.dtype == dtype for g in grads.values()), backend
        _close(f"{backend} hs", hs, want_hs, rtol)
        for s in want_state:
            _close(f"{backend} state {s}", state[s], want_state[s], rtol)
        assert set(grads) == set(want), backend
        for k in want:
            _close(f"{backend} grad {k}", grads[k], want[k], rtol, largest)


#: Pre-activations of f and of i, one pair per unit.
SATURATED = {"-36, -37, -38": ([-36.0, -37.0, -38.0, -37.0], [-37.0, -38.0, -36.0, -36.0]),
             "-300": ([-300.0, -301.0, -36.0, -300.0], [-301.0, -300.0, -300.0, -299.0]),
             "-360": ([-360.0, -361.0, -36.0, -360.0], [-361.0, -360.0, -360.0, -359.0]),
             "-700": ([-700.0, -699.0, -38.0, -708.0], [-701.0, -700.0, -700.0, -707.0])}

#: The same in float32, whose σ is 0 below about -104 (where f/(f + i) is 0/0 as the cell is
#: written): each unit at -360 or -700 has its other gate in float32's range, and the
#: others have both gates where (f + i)² underflows in float32 (below about -44).
SATURATED_32 = {"-360": ([-360.0, -60.0, -45.0, -30.0], [-40.0, -61.0, -360.0, -360.0]),
                "-700": ([-700.0, -80.0, -50.0, -700.0], [-42.0, -81.0, -700.0, -36.0])}


def _minlstm_problem(fbar, ibar, T=3, B=2, D=2, seed=0):
    """Weights near 0 and biases at the given pre-activations (W x moves them by about 0.01)."""
    rng = np.random.default_rng(seed)
    H = len(fbar)
    params = {"W_f": 0.01 * rng.standard_normal((H, D)), "b_f": np.array(fbar),
              "W_i": 0.01 * rng.standard_normal((H, D)), "b_i": np.array(ibar),
              "W_h": rng.standard_normal((H, D)), "b_h": rng.standard_normal(H)}
    return (params, rng.standard_normal((T, B, D)), {"h": rng.standard_normal((B, H))},
            rng.standard_normal((T, B, H)), {"h": rng.standard_normal((B, H))})


def test_the_issues_minlstm_unit():
    """One unit, pre-activations -36 and -37, h_0 = 0, h̃ = 1: h_1 = σ(-37)/(σ(-36) + σ(-37)),
    0.2689 (the NumPy module once gave 0.2000, and NaN at -38)."""
    mod = load_module(numpy_module(symlstm.derive(minlstm())), "minlstm")
    for fbar, ibar in [(-36.0, -37.0), (-37.0, -38.0), (-38.0, -39.0), (-700.0, -701.0)]:
        params = {"W_f": np.zeros((1, 1)), "b_f": np.array([fbar]), "W_i": np.zeros((1, 1)),
                  "b_i": np.array([ibar]), "W_h": np.zeros((1, 1)), "b_h": np.ones(1)}
        hs, _, _ = mod.forward(params, np.zeros((1, 1, 1)))
        want = 1 / (1 + mpmath.e)   # σ(ī)/(σ(f̄) + σ(ī)) with ī = f̄ - 1
        assert abs(hs[0, 0, 0] - want) < 1e-15, (fbar, hs[0, 0, 0])


@pytest.mark.parametrize("where", list(SATURATED))
def test_minlstm_as_written_in_the_paper_at_saturated_gates(tmp_path, where):
    """f/(f + i): right to 1e-9 down to pre-activations of -700, though (f + i)² is
    subnormal at -360 and 0 at -700 (the generated code once formed 1/(f + i)² and gave
    NaN gradients below about -354; it divides f by f + i first)."""
    problem = _minlstm_problem(*SATURATED[where])
    _check(minlstm(), minlstm_reference(False), problem, tmp_path)


@pytest.mark.parametrize("where", list(SATURATED))
def test_minlstm_in_log_space_at_saturated_gates(tmp_path, where):
    problem = _minlstm_problem(*SATURATED[where])
    _check(minlstm_log(), minlstm_reference(True), problem, tmp_path)


def test_minlstm_forward_in_float32_at_saturated_gates(tmp_path):
    """σ(-38) = 3e-17 is a normal float32: the forward pass keeps its digits there too."""
    params, x, state0, _, _ = _minlstm_problem(*SATURATED["-36, -37, -38"])
    params, x, h0 = ({k: v.astype(np.float32) for k, v in params.items()},
                     x.astype(np.float32), state0["h"].astype(np.float32))
    want_hs, _ = minlstm_reference(False)(MP, {k: _mp(v) for k, v in params.items()}, _mp(x),
                                          {"h": _mp(h0)})
    want_hs = want_hs.astype(np.float64)
    for backend, (call, mod) in _backends(minlstm(), tmp_path).items():
        if backend == "torch":
            hs, _ = mod.forward({k: torch.from_numpy(v) for k, v in params.items()},
                                torch.from_numpy(x), {"h": torch.from_numpy(h0)})
            hs = hs.numpy()
        else:
            hs, _, _ = mod.forward(params, x, {"h": h0})
        assert hs.dtype == np.float32, backend
        _close(f"{backend} float32 hs", hs, want_hs, 1e-5)


@pytest.mark.parametrize("where", list(SATURATED_32))
def test_minlstm_in_float32_at_saturated_gates(tmp_path, where):
    """Forward outputs and every gradient in float32, within 1e-5 of each array's largest
    value, where (f + i)² is 0 in float32 (it was inf/0 and NaN)."""
    params, *rest = _minlstm_problem(*SATURATED_32[where])
    problem = [{k: v.astype(np.float32) for k, v in params.items()}]
    problem += [{k: v.astype(np.float32) for k, v in a.items()} if isinstance(a, dict)
                else a.astype(np.float32) for a in rest]
    _check(minlstm(), minlstm_reference(False), tuple(problem), tmp_path, rtol=1e-5)


def _slstm_problem(cell, scale: float, x_scale: float, T=3, B=2, D=2, H=3, seed=1):
    """Parameters at ``scale`` times torch's initialisation (uniform on ±1/√H), inputs at
    ``x_scale`` times a standard normal."""
    rng = np.random.default_rng(seed)
    k = scale / np.sqrt(H)
    params = {}
    for g in "zifo":
        params |= {f"W_{g}": rng.uniform(-k, k, (H, D)), f"R_{g}": rng.uniform(-k, k, (H, H)),
                   f"b_{g}": rng.uniform(-k, k, H)}
    params = {p.name: params[p.name] for p in cell.params}
    state0 = {"h": rng.uniform(-1, 1, (B, H)), "c": rng.uniform(-1, 1, (B, H)),
              "n": 1 + rng.uniform(0, 1, (B, H)), "m": rng.uniform(-5, 5, (B, H))}
    dstate = {s: rng.standard_normal((B, H)) for s in state0}
    return (params, x_scale * rng.standard_normal((T, B, D)), state0,
            rng.standard_normal((T, B, H)), dstate)


GATES = pytest.mark.parametrize("gate", [logsigmoid, _log_sigma], ids=["logsigmoid", "log_sigma"])


@GATES
@pytest.mark.parametrize("scale", [8, 20])
def test_slstm_with_large_weights(tmp_path_factory, gate, scale):
    """Weights at 8 and 20 times their initialisation: every gradient within 1e-9 of its own
    largest value."""
    cell = slstm(gate)
    problem = _slstm_problem(cell, scale, 1)
    _check(cell, slstm_reference, problem, tmp_path_factory.mktemp("slstm"))


@GATES
def test_slstm_with_large_weights_and_inputs(tmp_path_factory, gate):
    """Weights and inputs both at 10 times their usual size: pre-activations reach ±100,
    where every gate saturates.  The gradients of W_z and m_0 are then 1e-12 where others are
    20: they flow only through 1 - tanh² of saturated z and through sums such as
    1 - σ(-u) (the derivative of l - m, m = l - log σ(u)), which keep the absolute accuracy
    of the output they are written through, not its relative one.  So each gradient is
    held within 1e-9 of the largest gradient."""
    cell = slstm(gate)
    problem = _slstm_problem(cell, 10, 10)
    _check(cell, slstm_reference, problem, tmp_path_factory.mktemp("slstm"), each=False)


def test_every_division_divides_the_numerator_first():
    """Lowering writes f h/(f + i)² as h (f/(f + i))/(f + i) and f i/(f + i)² as
    (f/(f + i)) (i/(f + i)): no power of a denominator, no product of two small numbers."""
    from symlstm.lower.division import Quotient, quotients
    f, i, h = sp.symbols("f[t] i[t] h[t-1]")
    s = f + i
    assert quotients(f * h / s**2) == h * Quotient(Quotient(f, s), s)
    assert quotients(f * i / s**2) == Quotient(f, s) * Quotient(i, s)
    assert quotients(-2 * h / s) == -2 * Quotient(h, s)
    assert quotients(1 / s) == Quotient(1, s)
    assert quotients(f**2 / s**2) == Quotient(f, s) ** 2
    assert pycode(quotients(f * h / s**2)) == "h_prev*(f/(f + i)/(f + i))"
    assert torch_backend.code(quotients(h / (s * f))) in ("h_prev/(f + i)/f", "h_prev/f/(f + i)")
