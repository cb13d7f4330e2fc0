"""Matrices per channel: Mamba's selective scan (s6) derived through the one generic sweep,
its derivation evaluated as written and held against brute force of the unrolled loss and
central differences at tiny sizes; the grammar's errors for matrices per channel."""
import numpy as np
import pytest
import sympy as sp

import symlstm
from symlstm import CellError, naming
from symlstm.cell.ops import matvec, mean, outer, transpose
from symlstm.cell.parts import CHANNEL_MATRIX, size_value
from symlstm.checks import bruteforce, evaluated
from symlstm.checks.numeric import unroll


def draw(cell, H, N, T=3, B=2, seed=0, scale=1.0, xscale=1.0):
    """Parameters, input (T, B, H), initial states and their gradients and dhs for ``cell``
    at H channels of N states: a matrix per channel is (B, H, N)."""
    rng = np.random.default_rng(seed)
    sizes = dict(D=H, H=H, N=N)

    def shape(dim):
        return (H, N) if dim == CHANNEL_MATRIX else (size_value(dim, **sizes),)
    params = {p.name: scale * 0.5 * rng.standard_normal(
        tuple(size_value(d, **sizes) for d in p.shape)) for p in cell.params}
    x = xscale * rng.standard_normal((T, B, H))
    state0 = {s: 0.5 * rng.standard_normal((B, *shape(d))) for s, d in cell.states.items()}
    dstate = {s: rng.standard_normal(v.shape) for s, v in state0.items()}
    dhs = rng.standard_normal((T, B, size_value(cell.output_dim, **sizes)))
    return params, x, state0, dhs, dstate, sizes


def rel(a, b):
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)


def derived(cell, params, x, state0, dhs, dstate, sizes):
    return evaluated.gradients(symlstm.derive(cell), params, x, state0, dhs, dstate, **sizes)


def s6():
    return symlstm.cell.shipped.get_cell("s6")


@pytest.mark.parametrize("H", [2, 3])
def test_s6_derivation_matches_brute_force_at_tiny_sizes(H):
    """H = 2 and 3 channels of N = 2 states, T = 3, the final state in the loss."""
    cell = s6()
    params, x, state0, dhs, dstate, sizes = draw(cell, H, 2, seed=H)
    grads, outputs, final = derived(cell, params, x, state0, dhs, dstate, sizes)
    ref = bruteforce.unroll(cell, params, x, state0, dhs, dstate, **sizes)
    assert set(grads) == set(ref.grads) == {*params, "x", "h0"}
    assert rel(outputs, ref.outputs) < 1e-12
    assert rel(final["h"], ref.final["h"]) < 1e-12
    for key, g in ref.grads.items():
        assert g.shape == grads[key].shape, key
        assert rel(grads[key], g) < 1e-9, key


def _forward_loss(cell, params, x, state0, dhs, dstate, sizes):
    """Σ ⟨dhs, y⟩ + ⟨dstate, h_T⟩ from the cell's forward equations alone."""
    sizes = evaluated.sizes_of(cell, **sizes)
    forward = [(eq.lhs, eq.rhs) for eq in cell.equations]
    loss = 0.0
    for b in range(x.shape[1]):
        def leaf(s, step, b=b):
            p = naming.parse(s)
            if p is None:
                return params[s.name]
            return x[step - 1, b] if p.base in cell.inputs else state0[p.base][b]
        run = unroll(len(x), forward, [], {}, leaf, sizes)
        loss += sum(np.sum(dhs[t - 1, b] * run.value(naming.timed(cell.output), t))
                    for t in range(1, len(x) + 1))
        loss += sum(np.sum(dstate[s][b] * run.value(naming.timed(s), len(x)))
                    for s in cell.states)
    return loss


def test_s6_derivation_matches_central_differences():
    cell = s6()
    params, x, state0, dhs, dstate, sizes = draw(cell, 3, 2, seed=5)
    grads, _, _ = derived(cell, params, x, state0, dhs, dstate, sizes)
    arrays = {**params, "x": x, **{f"{s}0": v for s, v in state0.items()}}
    h = 1e-6
    for key, a in arrays.items():
        numeric = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            old = a[idx]
            a[idx] = old + h
            up = _forward_loss(cell, params, x, state0, dhs, dstate, sizes)
            a[idx] = old - h
            down = _forward_loss(cell, params, x, state0, dhs, dstate, sizes)
            a[idx] = old
            numeric[idx] = (up - down) / (2 * h)
        assert rel(grads[key], numeric) < 1e-6, key


def test_s6_adjoints_are_the_textbook_ones():
    """δh_t = δ⁺h_t + δy_t C_tᵀ, δh_{t-1} = δh_t ⊙ exp(Δ_t A), δB_t = δh_tᵀ (Δ ⊙ x), and Δ
    gets the row sums of what its broadcast over the columns sends back."""
    d = symlstm.derive(s6())
    step = {str(g.lhs): str(g.rhs) for g in (*d.step, *d.initial)}
    assert step["δh[t]"] == "δ⁺h[t] + HeadOuter(δy[t], C[t])"
    assert step["δB[t]"] == "MatTVec(δh[t], u[t])"
    assert step["δC[t]"] == "MatTVec(h[t], δy[t])"
    assert "RowSum(" in step["δDelta[t]"]
    assert sp.simplify(sp.sympify(step["δh[t-1]"].replace("[t]", "_t").replace("δ", "d"))
                       - sp.sympify("dh_t*exp(A_t*Delta_t)")) == 0


def _channel_cell(body, declare_n=True, state=("H", "N")):
    """A small cell with a matrix per channel, ``body(b, x, h, p)`` writing its equations."""
    b = symlstm.CellBuilder("chan", "Channels")
    if declare_n:
        b.size("N")
    x, h = b.input("x", "H"), b.state("h", *state)
    p = {"W_B": b.param("W_B", "N", "H"), "W_C": b.param("W_C", "N", "H"),
         "A": b.param("A", "H", "N"), "W": b.param("W", "H", "H")}
    body(b, x, h, p)
    return b.build(output="y")


def _good(b, x, h, p):
    Bt, Ct = b.let("Bt", matvec(p["W_B"], x)), b.let("Ct", matvec(p["W_C"], x))
    u = b.let("u", matvec(p["W"], x))
    h_t = b.let("h", p["A"] * h + outer(u, Bt))
    b.let("y", matvec(h_t, Ct))


def _variant(**changes):
    def body(b, x, h, p):
        Bt, Ct = b.let("Bt", matvec(p["W_B"], x)), b.let("Ct", matvec(p["W_C"], x))
        u = b.let("u", matvec(p["W"], x))
        fac = changes.get("outer", lambda u, Bt, Ct: outer(u, Bt))(u, Bt, Ct)
        h_t = b.let("h", changes.get("decay", lambda p, h, u: p["A"] * h)(p, h, u) + fac)
        b.let("y", changes.get("out", lambda h_t, Ct, u: matvec(h_t, Ct))(h_t, Ct, u))
    return body


def test_a_well_formed_channel_cell_builds_and_its_sizes_are_read():
    cell = _channel_cell(_good)
    assert cell.states == {"h": CHANNEL_MATRIX}
    assert cell.dim(naming.timed("y")) == "H" and cell.sizes == ("N",)


@pytest.mark.parametrize("body, match", [
    (_variant(outer=lambda u, Bt, Ct: outer(Bt, u)),
     r"the factors have the sizes \('N', 'H'\); outer\(u, b\) makes a matrix per channel"),
    (_variant(outer=lambda u, Bt, Ct: outer(u, u)),
     r"the factors have the sizes \('H', 'H'\)"),
    (_variant(out=lambda h_t, Ct, u: matvec(h_t, u)),
     r"h\[t\] is a matrix per channel, H × N, applied to a vector of size N, but u\[t\] has "
     r"size H"),
    (_variant(out=lambda h_t, Ct, u: matvec(transpose(h_t), Ct)),
     r"h\[t\]ᵀ is a matrix per channel, N × H, applied to a vector of size H, but Ct\[t\]"),
    (_variant(decay=lambda p, h, u: h * naming.timed("Bt")),
     r"combines a matrix per channel \(H × N\) with a vector of size N element-wise"),
    (_variant(decay=lambda p, h, u: p["A"] * h + matvec(p["A"], naming.timed("Bt"))),
     r"parameter A \('H', 'N'\) is used both in a matrix product"),
    (_variant(out=lambda h_t, Ct, u: mean(h_t) * u),
     r"takes the mean of a matrix"),
])
def test_misused_channel_matrices_are_refused_with_what_was_expected(body, match):
    with pytest.raises(CellError, match=match):
        _channel_cell(body)


def test_misdeclared_channel_matrices_are_refused():
    with pytest.raises(CellError, match=r"uses the size 'N': declare it first with size\('N'\)"):
        _channel_cell(_good, declare_n=False)
    with pytest.raises(CellError, match=r"give one size for a vector.*\('H', 'N'\) for a "
                                        r"matrix per channel, e.g. state\('h', 'H', 'N'\); "
                                        r"got \('N', 'H'\)"):
        _channel_cell(_good, state=("N", "H"))
    b = symlstm.CellBuilder("both", "Both")
    b.size("NH")
    with pytest.raises(CellError,
                       match=r"either heads, size\('NH'\).*or a state size, size\('N'\)"):
        b.size("N")
    with pytest.raises(CellError, match=r"output 'h' is a matrix per channel; the output is a "
                                        "vector"):
        b = symlstm.CellBuilder("chan", "Channels")
        b.size("N")
        x, h = b.input("x", "H"), b.state("h", "H", "N")
        Bt = b.let("Bt", matvec(b.param("W_B", "N", "H"), x))
        b.let("h", b.param("A", "H", "N") * h + outer(x, Bt))
        b.build(output="h")


def test_outer_without_heads_or_state_size_says_what_to_declare():
    b = symlstm.CellBuilder("plain", "Plain")
    x = b.input("x", "H")
    W = b.param("W", "H", "H")
    C = b.let("C", outer(x, x))
    with pytest.raises(CellError, match=r"declare the number of heads first with size\('NH'\).*"
                                        r"or the state size with size\('N'\)"):
        b.let("y", matvec(C, x) + matvec(W, x))
        b.build(output="y")


# --- the NumPy and PyTorch modules, against autograd of the equations --------------

def _load(source, name, tmp_path):
    import importlib.util
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def numpy_s6(tmp_path):
    from symlstm.backends.code import numpy_module
    return _load(numpy_module(symlstm.derive("s6")), "s6_numpy", tmp_path)


def torch_s6(tmp_path):
    from symlstm.backends.torch import torch_module
    return _load(torch_module(symlstm.derive("s6")), "s6_torch", tmp_path)


def _selective_scan_torch(p, x, h):
    """Mamba's selective_scan_ref (softplus Δ, real A), one channel row of N states each,
    written out loop by loop: Δ = softplus(W_dt x + b_dt), B = W_B x, C = W_C x,
    A = -exp(A_log), h = exp(Δ A) h + Δ B x, y = h C + D x."""
    torch = pytest.importorskip("torch")
    ys = []
    A = -torch.exp(p["A_log"])                                   # (H, N)
    for xt in x:                                                  # (B, H)
        # softplus as log(1 + e^a) for every a: torch's softplus returns a itself above 20,
        # off by e^-20 there, which the saturated draw reaches
        delta = torch.logaddexp(xt @ p["W_dt"].T + p["b_dt"], torch.zeros(()).double())
        Bt, Ct = xt @ p["W_B"].T, xt @ p["W_C"].T                 # (B, N)
        deltaA = torch.exp(torch.einsum("bd,dn->bdn", delta, A))
        deltaBx = torch.einsum("bd,bn,bd->bdn", delta, Bt, xt)
        h = deltaA * h + deltaBx
        ys.append(torch.einsum("bdn,bn->bd", h, Ct) + p["D_skip"] * xt)
    return torch.stack(ys), h


def _autograd(params, x, state0, dhs, dstate):
    torch = pytest.importorskip("torch")
    leaves = {k: torch.tensor(v, requires_grad=True) for k, v in
              [*params.items(), ("x", x), ("h0", state0["h"])]}
    ys, h = _selective_scan_torch(leaves, leaves["x"], leaves["h0"])
    loss = (ys * torch.tensor(dhs)).sum() + (h * torch.tensor(dstate["h"])).sum()
    loss.backward()
    return {k: v.grad.numpy() for k, v in leaves.items()}, ys.detach().numpy(), \
        h.detach().numpy()


SCALES = pytest.mark.parametrize("scale, xscale", [(1.0, 1.0), (20.0, 5.0)],
                                 ids=["moderate", "saturated"])


@SCALES
def test_s6_derivation_matches_torch_autograd(scale, xscale):
    cell = s6()
    params, x, state0, dhs, dstate, sizes = draw(cell, 4, 3, T=5, B=3, seed=7, scale=scale,
                                                 xscale=xscale)
    grads, outputs, final = derived(cell, params, x, state0, dhs, dstate, sizes)
    ref, ys, h = _autograd(params, x, state0, dhs, dstate)
    assert rel(outputs, ys) < 1e-10 and rel(final["h"], h) < 1e-10
    for key, g in ref.items():
        assert rel(grads[key], g) < 1e-10, key


@SCALES
def test_s6_numpy_module_matches_torch_autograd(scale, xscale, tmp_path):
    """The module's forward and backward, state h (B, H, N), 1e-10 in float64; saturated:
    parameters ×20 and input ×5, where Δ A reaches hundreds below zero."""
    mod = numpy_s6(tmp_path)
    params, x, state0, dhs, dstate, _ = draw(s6(), 4, 3, T=5, B=3, seed=5, scale=scale,
                                             xscale=xscale)
    hs, state, cache = mod.forward(params, x, state0)
    grads = mod.backward(params, cache, dhs, dstate)
    ref, ys, h = _autograd(params, x, state0, dhs, dstate)
    assert rel(hs, ys) < 1e-10 and state["h"].shape == (3, 4, 3) and rel(state["h"], h) < 1e-10
    assert set(grads) == set(ref)
    for key, g in ref.items():
        assert grads[key].shape == g.shape, key
        assert np.all(np.isfinite(grads[key])), key
        assert rel(grads[key], g) < 1e-10, key


@SCALES
def test_s6_torch_module_backward_is_autograd_of_the_equations(scale, xscale, tmp_path):
    torch = pytest.importorskip("torch")
    mod = torch_s6(tmp_path)
    params, x, state0, dhs, dstate, _ = draw(s6(), 4, 3, T=5, B=3, seed=9, scale=scale,
                                             xscale=xscale)
    ref, ys, h = _autograd(params, x, state0, dhs, dstate)
    leaves = {k: torch.tensor(v, requires_grad=True) for k, v in
              [*params.items(), ("x", x), ("h0", state0["h"])]}
    hs, final = mod.forward({p: leaves[p] for p in params}, leaves["x"], {"h": leaves["h0"]})
    loss = (hs * torch.tensor(dhs)).sum() + (final["h"] * torch.tensor(dstate["h"])).sum()
    loss.backward()
    assert rel(hs.detach().numpy(), ys) < 1e-10
    for key, g in ref.items():
        assert rel(leaves[key].grad.numpy(), g) < 1e-10, key


def test_s6_verify_passes_within_a_minute():
    import time
    start = time.perf_counter()
    report = symlstm.verify("s6")
    assert report.ok and time.perf_counter() - start < 60
    assert report.sizes["N"] == 2 and report.sizes["D"] == report.sizes["H"]
    assert {r.key for r in report.rows} >= {"A_log", "D_skip", "h0", "x"}


def test_s6_numpy_module_never_forms_more_than_a_state(tmp_path):
    """Every array a step caches is at most the state, B × H × N (A, H × N, has no batch)."""
    mod = numpy_s6(tmp_path)
    params, x, state0, dhs, dstate, _ = draw(s6(), 4, 3, T=2, B=2)
    _, _, cache = mod.forward(params, x, state0)
    assert max(v.size for step in cache["steps"] for v in step.values()) == 2 * 4 * 3
    assert mod.STATE_SHAPES == {"h": ("H", "N")} and mod.EXTRA_SIZES == {"N": "state_size"}


def test_s6_modules_keep_float32_and_refuse_bad_input(tmp_path):
    torch = pytest.importorskip("torch")
    mod = numpy_s6(tmp_path)
    params = mod.init_params(4, 4, rng=0, dtype=np.float32, state_size=3)
    x = np.random.default_rng(0).standard_normal((5, 2, 4)).astype(np.float32)
    hs, state, cache = mod.forward(params, x)
    grads = mod.backward(params, cache, np.ones_like(hs))
    assert hs.dtype == np.float32 and {g.dtype for g in grads.values()} == {np.dtype("float32")}
    with pytest.raises(ValueError, match=r"params\['A_log'\] must be a float32 array of shape "
                                         r"\(4, 3\)"):
        mod.forward({**params, "A_log": np.zeros((3, 4), np.float32)}, x)
    with pytest.raises(ValueError, match=r"x must have the hidden size H=4 \(from the parameters\)"):
        mod.forward(params, x[..., :3])
    with pytest.raises(ValueError, match=r"state0\['h'\] must be a real array of shape \(2, 4, 3\)"):
        mod.forward(params, x, {"h": np.zeros((2, 3, 4))})
    with pytest.raises(ValueError, match="input_size must equal hidden_size"):
        mod.init_params(3, 4, state_size=2)
    net = torch_s6(tmp_path).Cell(4, 4, state_size=3)
    out, final = net(torch.randn(6, 3, 4))
    out.square().sum().backward()
    assert out.dtype == torch.float32 and final["h"].shape == (3, 4, 3)
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())


def test_stages_without_matrices_per_channel_refuse_s6_by_name():
    from symlstm.lower.plan import lower
    with pytest.raises(CellError, match=r"cell 's6' has matrices per channel \(h \(size H×N\)"):
        lower(symlstm.derive("s6"))


# --- the Numba module ----------------------------------------------------------------------

def numba_s6(tmp_path):
    pytest.importorskip("numba")
    from symlstm.backends.numba import numba_module
    return _load(numba_module(symlstm.derive("s6")), "s6_numba", tmp_path)


@SCALES
def test_s6_numba_module_matches_the_numpy_module(scale, xscale, tmp_path):
    """Forward, final state and every gradient within 1e-12 of the NumPy module's in
    float64; the same API, layouts and refusals."""
    mine, ref = numba_s6(tmp_path), numpy_s6(tmp_path)
    params, x, state0, dhs, dstate, _ = draw(s6(), 4, 3, T=5, B=3, seed=11, scale=scale,
                                             xscale=xscale)
    hs, state, cache = mine.forward(params, x, state0)
    grads = mine.backward(params, cache, dhs, dstate)
    ref_hs, ref_state, ref_cache = ref.forward(params, x, state0)
    ref_grads = ref.backward(params, ref_cache, dhs, dstate)
    assert rel(hs, ref_hs) < 1e-12 and rel(state["h"], ref_state["h"]) < 1e-12
    assert set(grads) == set(ref_grads)
    for key, g in ref_grads.items():
        assert grads[key].shape == g.shape, key
        assert rel(grads[key], g) < 1e-12, key
    assert mine.STATE_SHAPES == ref.STATE_SHAPES and mine.PARAMS == ref.PARAMS
    with pytest.raises(ValueError, match=r"x must have the hidden size H=4 \(from the parameters\)"):
        mine.forward(params, x[..., :3])


def test_s6_numba_module_caches_one_state_per_step(tmp_path):
    """The cache holds the states once per step (T + 1, B, H, N), A = -exp(A_log) once
    (H, N), and vectors of at most H entries per step and sample."""
    mod = numba_s6(tmp_path)
    params, x, state0, _, _, _ = draw(s6(), 4, 3, T=5, B=2)
    _, _, cache = mod.forward(params, x, state0)
    assert cache["S_h"].shape == (6, 2, 4, 3) and cache["K_A"].shape == (4, 3)
    assert all(v.shape[:2] == (5, 2) and v[0, 0].size <= 4
               for k, v in cache.items() if k.startswith("C_"))


def test_s6_numba_module_keeps_float32(tmp_path):
    mod = numba_s6(tmp_path)
    params = mod.init_params(4, 4, rng=0, dtype=np.float32, state_size=3)
    x = np.random.default_rng(0).standard_normal((5, 2, 4)).astype(np.float32)
    hs, state, cache = mod.forward(params, x)
    grads = mod.backward(params, cache, np.ones_like(hs))
    assert hs.dtype == np.float32 and state["h"].shape == (2, 4, 3)
    assert {g.dtype for g in grads.values()} == {np.dtype("float32")}


@pytest.mark.parametrize("label, claim, holds", [
    ("rec:h", "δh[t+1] ⊙ exp(A[t+1] ⊙ Delta[t+1]) + δy[t] C[t]ᵀ", True),
    ("rec:h", "δh[t+1] ⊙ exp(A[t+1] ⊙ Delta[t+1]) + δy[t] B[t]ᵀ", False),
    ("rec:h", "δh[t+1] + δy[t] C[t]ᵀ", False),
    ("adj:B", "δh[t]ᵀ u[t]", True),
    ("adj:B", "h[t]ᵀ u[t]", False),
    ("adj:u", "δh[t] B[t]", True),
    ("adj:Delta", "x[t] ⊙ δu[t] + RowSum(A[t] ⊙ h[t-1] ⊙ δh[t] ⊙ exp(A[t] ⊙ Delta[t]))", True),
    ("adj:Delta", "x[t] ⊙ δu[t]", False),
    ("grad:A_log", "-Σ_t δA[t] ⊙ exp(A_log)", True),
    ("grad:A_log", "Σ_t δA[t] ⊙ exp(A_log)", False),
])
def test_check_claim_judges_claims_about_s6(label, claim, holds):
    """Claims in the printed notation: an H-vector ⊙ a matrix per channel, u bᵀ, h c, hᵀ u and
    a row's sum, judged on runs at H = 3 channels of N = 2 states."""
    assert symlstm.check_claim(symlstm.derive("s6"), label, claim).holds is holds


def test_s6_document_writes_shapes_and_row_sums():
    """The derivation document: the state's shape H × N, a row's sum as M 1_N, no raw
    size strings."""
    from symlstm.documents.document import latex_document
    tex = latex_document(symlstm.derive("s6"))
    assert r"h_{t-1}, \allowbreak A_{t}, \allowbreak h_{t} \in \R^{H \times N}" in tex
    assert r"\right) \mathbf{1}_{N}" in tex and "RowSum" not in tex and "×" not in tex
