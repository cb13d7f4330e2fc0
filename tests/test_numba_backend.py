"""The Numba backend, symlstm.generated.numba.<cell>: the NumPy module's plan with each time
loop compiled whole, a drop-in replacement for the NumPy module."""
import importlib
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from cellgen import cells, note_replay, slow
from hypothesis import HealthCheck, given, settings

import symlstm
from symlstm.backends.code import numpy_module
from symlstm.backends.numba import numba_module
from symlstm.checks.verification import load_module, problem, run


numba = pytest.importorskip("numba", reason="numba is installed by the README's test command")


def _compare(ref, mod, *, D=3, H=4, tol=1e-12, dtype=np.float64):
    params, x, state0, dhs, dstate = problem(ref, T=4, B=3, D=D, H=H, dtype=dtype)
    want_hs, want_state, cache = run(ref, params, x, state0)
    want = ref.backward(params, cache, dhs, dstate)
    kept = {s: v.copy() for s, v in dstate.items()}
    hs, state, cache = run(mod, params, x, state0)
    got = mod.backward(params, cache, dhs, dstate)
    assert all(np.array_equal(dstate[s], kept[s]) for s in dstate), "backward wrote into dstate"
    for name, a, b in [("hs", hs, want_hs), *((s, state[s], want_state[s]) for s in state),
                       *((k, got[k], want[k]) for k in want)]:
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert np.abs(a - b).max() <= tol * max(1.0, np.abs(b).max()), name
    assert set(got) == set(want)


def _load(source: str, name: str, folder):
    """Import generated source from a file, as a module numba can import again when it
    loads the compiled loops from its cache."""
    path = folder / f"{name}.py"
    path.write_text(source)
    name = f"numba_{folder.name}_{name}"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = sys.modules[name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("name", list(symlstm.CELLS))
def test_every_shipped_cell_matches_its_numpy_module(name):
    ref = importlib.import_module(f"symlstm.generated.{name}")
    mod = importlib.import_module(f"symlstm.generated.numba.{name}")
    D = 4 if ref.INPUT_SIZE == "H" else 3
    _compare(ref, mod, D=D)
    _compare(ref, mod, D=D, dtype=np.float32, tol=1e-5)


@settings(max_examples=6, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(cells())
def test_random_cells_match_their_numpy_module(tmp_path_factory, cell):
    """Random cells from the whole grammar (six: compiling a cell takes seconds; the slow run
    takes many more)."""
    _compare_random(cell, tmp_path_factory.mktemp("numba"))


@pytest.mark.slow
@slow(150)
@given(cells(max_intermediates=6, max_depth=4))
def test_many_random_cells_match_their_numpy_module(tmp_path_factory, cell):
    """Many more (replayed as tests/test_random_cells.py says)."""
    note_replay("test_many_random_cells_match_their_numpy_module")
    _compare_random(cell, tmp_path_factory.mktemp("numba"))


def _compare_random(cell, folder):
    d = symlstm.derive(cell)
    ref = load_module(numpy_module(d), cell.name)
    _compare(ref, _load(numba_module(d), cell.name, folder),
             D=4 if ref.INPUT_SIZE == "H" else 3)


def _kernel(mod, fname):
    """A compiled loop applying ``mod.<fname>`` to every entry of an array."""
    f = getattr(mod, fname)

    @numba.njit(error_model="numpy")
    def apply(a, out):
        for j in range(a.shape[0]):
            out[j] = f(a[j])
    return apply


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("fname, ref, ulps", [
    ("_exp", np.exp, 2), ("_tanh", np.tanh, 3), ("_sigmoid", lambda a: 1 / (1 + np.exp(-a)), 4),
    ("_softplus", lambda a: np.logaddexp(0, a), 4),
    ("_logsigmoid", lambda a: -np.logaddexp(0, -a), 4)])
def test_the_arithmetic_functions_are_within_a_few_ulps(fname, ref, ulps, dtype):
    from symlstm.generated.numba import lstm as mod
    limit = {np.float64: 709.78, np.float32: 88.72}[dtype]   # e^limit: just below the largest
    grid = np.concatenate([np.linspace(-limit, limit, 200_001), np.geomspace(1e-30, 30, 20_001),
                           -np.geomspace(1e-30, 30, 20_001), [0.0, 0.625, -0.625]]).astype(dtype)
    out = np.empty_like(grid)
    _kernel(mod, fname)(grid, out)
    want = ref(grid.astype(np.longdouble))
    tiny = np.finfo(dtype).tiny
    ok = np.isfinite(want) & (np.abs(want) > tiny)
    err = np.abs(out[ok] - want[ok]) / (np.abs(want[ok]) * np.finfo(dtype).eps)
    assert err.max() <= ulps, f"{fname}: {err.max():.2f} ulps at {grid[ok][err.argmax()]}"


@pytest.mark.parametrize("fname, special", [
    ("_exp", {np.inf: np.inf, -np.inf: 0.0, 1000.0: np.inf, -1000.0: 0.0}),
    ("_tanh", {np.inf: 1.0, -np.inf: -1.0, 1000.0: 1.0, -1000.0: -1.0}),
    ("_sigmoid", {np.inf: 1.0, -np.inf: 0.0, 1000.0: 1.0, -1000.0: 0.0}),
    ("_softplus", {-np.inf: 0.0, -1000.0: 0.0, 1000.0: 1000.0}),
    ("_logsigmoid", {-np.inf: -np.inf, np.inf: 0.0, -1000.0: -1000.0, 1000.0: 0.0})])
def test_the_arithmetic_functions_at_the_ends_and_nan(fname, special):
    from symlstm.generated.numba import lstm as mod
    f = _kernel(mod, fname)
    for dtype in (np.float64, np.float32):
        a = np.array([*special, np.nan], dtype)
        out = np.empty_like(a)
        f(a, out)
        assert np.array_equal(out[:-1], np.array(list(special.values()), dtype)), (fname, out)
        assert np.isnan(out[-1]), fname


def test_a_second_process_loads_the_compiled_loops_from_the_cache(tmp_path):
    """``cache=True``: the first import compiles and writes numba's cache, the next loads it."""
    d = symlstm.derive("rnn")
    (tmp_path / "rnn_numba.py").write_text(numba_module(d))
    script = textwrap.dedent("""
        import numpy as np, rnn_numba as m
        p = m.init_params(3, 4, rng=0)
        hs, state, cache = m.forward(p, np.ones((2, 1, 3)))
        m.backward(p, cache, np.ones_like(hs))
        passes = [f.stats for f in (m._forward_pass, m._backward_pass)]
        loops = [f.stats for f in (m._forward_steps, m._backward_steps)]
        print(sum(len(s.cache_hits) for s in passes), sum(len(s.cache_misses) for s in passes),
              sum(len(s.cache_misses) for s in loops))
    """)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    runs = [subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                           text=True, check=True).stdout.split() for _ in range(2)]
    assert runs[0][:2] == ["0", "2"], runs    # compiled, both passes with their loops
    assert runs[1] == ["2", "0", "0"], runs    # loaded, nothing compiled


def test_without_numba_the_import_names_the_extra():
    script = ("import sys; sys.modules['numba'] = None\n"
              "import symlstm.generated.numba.lstm")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode != 0
    assert "ImportError" in out.stderr and "pip install 'symlstm[numba]'" in out.stderr, out.stderr


def test_it_takes_arrays_in_any_layout_and_checks_them_as_the_numpy_module():
    from symlstm.generated import peephole_lstm as ref
    from symlstm.generated.numba import peephole_lstm as mod
    params, x, state0, dhs, dstate = problem(ref, T=3, B=2, D=3, H=4)
    xf = np.asfortranarray(x)
    params = {k: np.asfortranarray(v) for k, v in params.items()}
    hs, _, cache = mod.forward(params, xf, state0)
    want, _, _ = ref.forward(params, x, state0)
    assert np.abs(hs - want).max() <= 1e-12
    g = mod.backward(params, cache, dhs[:, :, ::-1].copy()[:, :, ::-1], dstate)
    assert set(g) == set(ref.PARAMS) | {"x", "h0", "c0"}
    bad = {**params, "p_i": params["p_i"][:-1]}
    with pytest.raises(ValueError, match=r"params\['p_i'\] must be a float64 array of shape \(4,\)"):
        mod.forward(bad, x)
    with pytest.raises(ValueError, match="cache must be the third value"):
        mod.backward(params, {"cell": "lstm"}, dhs)


_BLAS_SCRIPT = textwrap.dedent("""
    import importlib, json
    import numpy as np
    from symlstm.checks.verification import problem, run
    errors, blas = {}, set()
    # lstm and peephole_lstm; slstm's per-head blocks, whose weight gradients are one GEMM per
    # block; lstm_zoneout's extra inputs; sru's output that is no state; the products around
    # the loops of the cells with a matrix per head (mlstm, gated_delta_net) or channel (s6)
    for name in ("lstm", "peephole_lstm", "slstm", "lstm_zoneout", "sru", "mlstm",
                 "gated_delta_net", "s6"):
        ref = importlib.import_module("symlstm.generated." + name)
        mod = importlib.import_module("symlstm.generated.numba." + name)
        D = 12 if ref.INPUT_SIZE == "H" else 9
        params, x, state0, dhs, dstate = problem(ref, T=5, B=7, D=D, H=12, dtype=np.float64)
        # every layout the products meet: F-ordered matrices, a strided input
        params = {k: np.asfortranarray(v) for k, v in params.items()}
        if isinstance(x, dict):
            x = {k: np.concatenate([v, v], axis=2)[:, :, ::2] for k, v in x.items()}
        else:
            x = np.concatenate([x, x], axis=2)[:, :, ::2]
        want_hs, _, cache = run(ref, params, x, state0)
        want = ref.backward(params, cache, dhs, dstate)
        hs, _, cache = run(mod, params, x, state0)
        got = mod.backward(params, cache, dhs, dstate)
        assert got.keys() == want.keys(), (name, got.keys(), want.keys())
        errors[name] = max(float(np.abs(a - b).max() / max(1.0, np.abs(b).max()))
                           for a, b in [(hs, want_hs), *((got[k], want[k]) for k in want)])
        blas.add(mod.BLAS)
    print(json.dumps({"blas": sorted(blas), "errors": errors}))
""")


@pytest.fixture(scope="module")
def blas_cache(tmp_path_factory):
    """One numba cache for every BLAS: what one compiled, the others load."""
    return tmp_path_factory.mktemp("blas_cache")


def _run_with_blas(blas, cache):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "MKL_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1"}
    env.pop("SYMLSTM_BLAS", None)
    if blas:
        env["SYMLSTM_BLAS"] = blas
    return subprocess.run([sys.executable, "-c", _BLAS_SCRIPT], env=env, capture_output=True,
                          text=True)


def _mkl_installed():
    try:
        return any(f.name.startswith("libmkl_rt.so") for f in importlib.metadata.files("mkl"))
    except importlib.metadata.PackageNotFoundError:
        return False


@pytest.mark.parametrize("blas", ["openblas", "mkl", None])
def test_either_blas_matches_the_numpy_module(blas, blas_cache):
    """SYMLSTM_BLAS picks the BLAS of the compiled products (unset: MKL where the mkl package
    is installed); with either the gradients match NumPy's to 1e-12 in float64, from loops
    compiled once and loaded from numba's cache for the other BLAS."""
    if blas == "mkl" and not _mkl_installed():
        pytest.skip("the mkl package has no wheel for this platform")
    run = _run_with_blas(blas, blas_cache)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["blas"] == [blas or ("mkl" if _mkl_installed() else "openblas")]
    assert max(out["errors"].values()) <= 1e-12, out


_MATRIX_GEMMS_SCRIPT = textwrap.dedent("""
    import importlib, inspect
    from symlstm.checks.verification import problem
    for name in ("mlstm", "gated_delta_net", "s6"):
        ref = importlib.import_module("symlstm.generated." + name)
        mod = importlib.import_module("symlstm.generated.numba." + name)
        parts = [inspect.getsource(f) for f in (mod._arrays, mod._backward)]
        assert not any(" @ " in p or "np.dot" in p for p in parts), name
        params, x, state0, dhs, dstate = problem(ref, T=3, B=2, D=4, H=4)
        _, _, cache = mod.forward(params, x, state0)
        mod.backward(params, cache, dhs, dstate)
        print("products", name, mod.BLAS, sum(p.count("_matmul(") for p in parts), flush=True)
""")


def test_the_matrix_cells_multiply_on_mkl(blas_cache):
    """The Numba modules of mlstm, gated_delta_net and s6 multiply outside their loops only
    through ``_matmul``, and each call is one DGEMM of MKL's (MKL_VERBOSE logs every call)."""
    if not _mkl_installed():
        pytest.skip("the mkl package has no wheel for this platform")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(blas_cache), "MKL_NUM_THREADS": "1",
           "SYMLSTM_BLAS": "mkl", "MKL_VERBOSE": "1"}
    run = subprocess.run([sys.executable, "-c", _MATRIX_GEMMS_SCRIPT], env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    calls = 0
    for line in run.stdout.splitlines():
        calls += line.startswith("MKL_VERBOSE DGEMM(")
        if line.startswith("products"):
            _, name, blas, products = line.split()
            assert (blas, calls) == ("mkl", int(products)) and calls >= 3, (name, calls, line)
            calls = 0


@pytest.mark.parametrize("name", ["lstm", "mlstm", "s6"])
def test_an_unknown_blas_is_refused(name):
    env = {**os.environ, "SYMLSTM_BLAS": "atlas"}
    run = subprocess.run([sys.executable, "-c", f"import symlstm.generated.numba.{name}"],
                         env=env, capture_output=True, text=True)
    assert run.returncode != 0
    assert "SYMLSTM_BLAS must be 'mkl', 'openblas' or unset, got 'atlas'" in run.stderr


@pytest.mark.parametrize("threads", ["1", "2"])
def test_mkl_runs_as_many_threads_as_mkl_num_threads_says(threads):
    """The modules leave MKL's threads to the environment: MKL_NUM_THREADS=1 is one thread."""
    if not _mkl_installed():
        pytest.skip("the mkl package has no wheel for this platform")
    script = textwrap.dedent("""
        import ctypes, importlib.metadata
        from symlstm.generated.numba import rnn
        path = next(f.locate() for f in importlib.metadata.files("mkl")
                    if f.name.startswith("libmkl_rt.so"))
        print(rnn.BLAS, ctypes.CDLL(str(path)).MKL_Get_Max_Threads())
    """)
    env = {**os.environ, "MKL_NUM_THREADS": threads}
    env.pop("SYMLSTM_BLAS", None)
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["mkl", threads]


def test_per_head_blocks_on_the_input_run_in_the_compiled_passes(tmp_path):
    """Per-head blocks applied to the input: their products over all steps at once in the
    forward pass, and the input's gradient through them in the backward pass."""
    from sympy import tanh

    from symlstm.cell.model import CellBuilder
    from symlstm.cell.ops import matvec, sigma
    b = CellBuilder("headsin", "Heads on the input")
    NH = b.size("NH")
    x, h = b.input("x", "H"), b.state("h")
    U, V = b.param("U", NH, "H/NH", "H/NH"), b.param("V", NH, "H/NH", "H/NH")
    a = b.let("a", tanh(matvec(U, x) + matvec(b.param("R", "H", "H"), h) + b.param("b_a", "H")))
    b.let("h", sigma(matvec(V, x)) * a)
    d = symlstm.derive(b.build())
    source = numba_module(d)
    assert "_heads_into(x.reshape(T * B, D)" in source
    assert "_heads_T_into(dproj_x_heads.reshape(T * B, 2*H)" in source
    _compare(load_module(numpy_module(d), "headsin_np"), _load(source, "headsin", tmp_path),
             D=4, H=4)


def test_a_weight_in_two_fused_groups_sums_both_blocks(tmp_path):
    """M multiplies two step values, so its gradient is a block of each group's GEMM, summed;
    the compiled pass must return both arrays (the slow random-cell run found a cell that
    returned only the first)."""
    from symlstm.cell.model import CellBuilder
    from symlstm.cell.ops import matvec, sigma, tanh
    b = CellBuilder("twogroups", "A weight in two fused groups")
    x, h = b.input("x", "H"), b.state("h", "H")
    u = b.let("u", tanh(matvec(b.param("W_u", "H", "H"), x) + matvec(b.param("R_u", "H", "H"), h)))
    v = b.let("v", sigma(matvec(b.param("R_v", "H", "H"), h)))
    M = b.param("M", "H", "H")
    b.let("h", tanh(matvec(M, u) + matvec(M, v)))
    cell = b.build()
    assert " + dstack_" in numba_module(symlstm.derive(cell))
    _compare_random(cell, tmp_path)
