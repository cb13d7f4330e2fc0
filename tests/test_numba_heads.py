"""The Numba module of a cell with matrices per head (``symlstm.backends.numba_heads``) against
its NumPy module (``symlstm.backends.heads``), itself held against brute force and torch
autograd in test_matrix_states.py: the same API, parameters and state layouts, the same
outputs, final states and gradients to 1e-12 in float64 and 1e-5 in float32, with moderate
and saturated parameters (saturated float32: as close to float64 as the NumPy module); for
mLSTM, the gated delta rule and random cells with heads."""
import importlib.util
import inspect
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest

numba = pytest.importorskip("numba")
hypothesis = pytest.importorskip("hypothesis")
from headcellgen import cells  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402

import symlstm  # noqa: E402
from symlstm.backends.code import numpy_module  # noqa: E402
from symlstm.backends.numba import numba_module  # noqa: E402

TOL = {np.float64: 1e-12, np.float32: 1e-5}


def load(source: str, folder: Path, name: str):
    path = folder / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def modules(tmp_path_factory):
    """Each shipped cell's NumPy and Numba modules, compiled once for the whole file."""
    folder, made = tmp_path_factory.mktemp("numba_heads"), {}

    def get(name):
        if name not in made:
            d = symlstm.derive(name)
            made[name] = (load(numpy_module(d), folder, f"{name}_numpy"),
                          load(numba_module(d), folder, f"{name}_numba"))
        return made[name]
    return get


def problem(mod, dtype, scale, T=4, B=3, D=5, H=8, NH=2, seed=0):
    """Parameters (``scale`` times PyTorch's initialisation), input, initial states and the
    gradients of a loss with respect to the outputs and the final states."""
    rng = np.random.default_rng(seed)
    params = {k: np.asarray(scale * v, dtype)   # a scalar parameter as a 0-d array
              for k, v in mod.init_params(D, H, rng=seed, num_heads=NH).items()}
    sizes = {"NH": NH, "H/NH": H // NH}
    state0 = {s: rng.standard_normal((B, *(sizes[d] for d in shape))).astype(dtype)
              for s, shape in mod.STATE_SHAPES.items()}
    x = rng.standard_normal((T, B, D)).astype(dtype)
    dhs = rng.standard_normal((T, B, H)).astype(dtype)
    dstate = {s: rng.standard_normal(v.shape).astype(dtype) for s, v in state0.items()}
    return params, x, state0, dhs, dstate


def rel(a, b):
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)


def results(mod, params, x, state0, dhs, dstate) -> dict:
    """Outputs, final states and gradients of ``mod``, by name."""
    hs, final, cache = mod.forward(params, x, state0)
    return {"hs": hs, **{f"final {s}": v for s, v in final.items()},
            **mod.backward(params, cache, dhs, dstate)}


def compare(ref, mine, params, x, state0, dhs, dstate, tol):
    """Outputs, final states and gradients of ``mine`` against ``ref``: shapes, dtypes and
    values to ``tol``; everything finite."""
    want = results(ref, params, x, state0, dhs, dstate)
    got = results(mine, params, x, state0, dhs, dstate)
    assert set(got) == set(want)
    for key in want:
        assert np.all(np.isfinite(want[key])), key
        assert got[key].shape == want[key].shape and got[key].dtype == want[key].dtype, key
        assert rel(got[key], want[key]) < tol, (key, rel(got[key], want[key]))


@pytest.mark.parametrize("name", ["mlstm", "gated_delta_net"])
@pytest.mark.parametrize("dtype, scale",
                         [(np.float64, 1.0), (np.float32, 1.0), (np.float64, 30.0)],
                         ids=["moderate-float64", "moderate-float32", "saturated-float64"])
def test_numba_module_matches_the_numpy_module(modules, name, dtype, scale):
    """At scale 30 the pre-activations reach hundreds: σ and exp saturate, and mLSTM's
    stabiliser m keeps C and n finite."""
    ref, mine = modules(name)
    compare(ref, mine, *problem(ref, dtype, scale), TOL[dtype])


@pytest.mark.parametrize("name", ["mlstm", "gated_delta_net"])
def test_saturated_float32_is_as_accurate_as_the_numpy_module(modules, name):
    """At scale 30 a float32 pre-activation in the hundreds is off by its rounding, about
    1e-5 of it, and exp carries that into the results: two float32 modules whose GEMMs add
    in different orders (MKL's, NumPy's OpenBLAS) differ by as much.  So both are held
    against the float64 results: the Numba module's largest error at most four times the
    NumPy module's own, or 1e-5."""
    ref, mine = modules(name)
    exact = results(ref, *problem(ref, np.float64, 30.0))
    compare(ref, mine, *problem(ref, np.float32, 30.0), tol=np.inf)   # shapes, dtypes, finite
    error = {}
    for role, mod in (("numpy", ref), ("numba", mine)):
        got = results(mod, *problem(ref, np.float32, 30.0))
        error[role] = max(rel(v, exact[k]) for k, v in got.items())
    assert error["numba"] <= max(TOL[np.float32], 4 * error["numpy"]), error


@pytest.mark.parametrize("name", ["mlstm", "gated_delta_net"])
def test_numba_module_has_the_numpy_module_api(modules, name):
    ref, mine = modules(name)
    for attr in ("CELL", "PARAMS", "STATES", "STATE_SHAPES", "STATE_SIZES", "INPUT", "OUTPUT",
                 "EXTRA_SIZES"):
        assert getattr(mine, attr) == getattr(ref, attr), attr
    params, x, state0, dhs, _ = problem(ref, np.float64, 1.0)
    hs, final, cache = mine.forward(params, x)          # states start at zero, none given
    hs_ref, final_ref, _ = ref.forward(params, x)
    assert rel(hs, hs_ref) < 1e-12
    grads = mine.backward(params, cache, dhs)           # no gradient of the final states
    assert set(grads) == {*params, "x", *(f"{s}0" for s in ref.STATES)}
    bad = {**params, next(iter(params)): params[next(iter(params))].astype(np.float32)}
    with pytest.raises(ValueError, match="must be a float64 array of shape"):
        mine.forward(bad, x)
    with pytest.raises(KeyError, match=re.escape(f"state0 must be a dict with the keys {ref.STATES}")):
        mine.forward(params, x, {**state0, "nope": None})


def test_compiled_loops_make_no_arrays_and_call_no_einsum(modules):
    """Inside the time loop every value is written into an array made before it, of one
    step's size at most: no allocation, no einsum, no matrix product of NumPy."""
    _, mine = modules("mlstm")
    for kernel in (mine._forward_steps, mine._backward_steps):
        source = inspect.getsource(kernel.py_func)
        assert "np." not in source and "einsum" not in source and " @ " not in source


@settings(max_examples=3, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
])
@given(cells())
def test_random_cells_with_heads_get_the_numpy_modules_results(cell):
    """Random cells (headcellgen): recurrent parameter matrices, per-head and total sums,
    C q and Cᵀ q, delta-rule corrections, H-vector states, through the Numba module."""
    d, folder = symlstm.derive(cell), Path(tempfile.mkdtemp())   # a fresh file: a fresh cache
    ref = load(numpy_module(d), folder, "headcell_numpy")
    mine = load(numba_module(d), folder, "headcell_numba")
    compare(ref, mine, *problem(ref, np.float64, 1.0, seed=1), 1e-12)


def test_a_mean_over_every_entry_reads_the_sizes(tmp_path):
    """mean(r ⊙ r) sends δs/H back to r: the compiled loops know H (and D), not only NH
    and the head size."""
    from symlstm import CellBuilder, matvec
    from symlstm.cell.ops import mean, outer, sigma, tanh
    b = CellBuilder("meancell", "A mean over every entry")
    NH = b.size("NH")
    x, C = b.input("x"), b.state("C", NH, "H/NH", "H/NH")
    a = b.param("a", NH)
    v = b.let("v", matvec(b.param("W_v", "H", "D"), x))
    k = b.let("k", tanh(matvec(b.param("W_k", "H", "D"), x)))
    f = b.let("f", sigma(matvec(b.param("w_f", NH, "D"), x) + a))
    r = b.let("r", matvec(b.let("C", f * C + outer(v, k)), k))
    s = b.let("s", mean(r * r))
    b.let("h", r / (1 + s) + a * k)
    d = symlstm.derive(b.build(output="h"))
    ref = load(numpy_module(d), tmp_path, "meancell_numpy")
    mine = load(numba_module(d), tmp_path, "meancell_numba")
    compare(ref, mine, *problem(ref, np.float64, 1.0), 1e-12)


def test_without_numba_the_import_names_the_extra(tmp_path):
    import subprocess
    import sys
    (tmp_path / "mlstm_numba.py").write_text(numba_module(symlstm.derive("mlstm")))
    script = (f"import sys; sys.modules['numba'] = None; sys.path.insert(0, {str(tmp_path)!r})\n"
              "import mlstm_numba")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode != 0
    assert "ImportError" in out.stderr and "pip install 'symlstm[numba]'" in out.stderr, out.stderr
