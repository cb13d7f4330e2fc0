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
from symlstm.backends.numba import SPELLINGS as NUMBA_SPELLINGS, ElementPrinter, numba_module
from symlstm.ops import OPS, relu, step
from symlstm.printers import pycode
from symlstm.render import numpy_module
from symlstm.verification import load_module

torch = pytest.importorskip("torch", reason="torch is installed by the README's test command")
numba = pytest.importorskip("numba", reason="numba is installed by the README's test command")

mpmath.mp.dps = 50

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


def test_every_operation_has_an_exact_reference_here():
    assert set(EXACT) == set(OPS)


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
