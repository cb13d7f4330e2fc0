"""Matrices per head: mLSTM and Gated DeltaNet derived through the one generic sweep, their
derivations evaluated as written (``symlstm.checks.evaluated``) and held against brute force
of the unrolled loss, central differences and torch autograd of the papers' equations,
written here once more; the grammar's errors; and the stages that refuse such cells yet."""
import math

import numpy as np
import pytest
import sympy as sp

import symlstm
from symlstm import CellBuilder, CellError, naming
from symlstm.cell.ops import (HS, Abs, HeadOuter, Max, exp, headsum, matvec, mean, outer, part,
                              sigma, total, transpose)
from symlstm.cell.parts import HEAD_MATRIX, size_value
from symlstm.checks import bruteforce, evaluated
from symlstm.checks.numeric import unroll

torch = pytest.importorskip("torch", reason="torch is installed by the README's test command")
F = torch.nn.functional


def draw(cell, NH, S, D=2, T=3, B=2, seed=0, scale=1.0, xscale=1.0):
    """Parameters, input, initial and final-state gradients and dhs for ``cell`` at NH heads
    of size S: a matrix per head is (B, NH, S, S), one number per head (B, NH)."""
    rng = np.random.default_rng(seed)
    H = NH * S
    sizes = dict(D=D, H=H, NH=NH)

    def shape(dim):
        return (NH, S, S) if dim == HEAD_MATRIX else (size_value(dim, **sizes),)
    params = {p.name: scale * 0.5 * rng.standard_normal(
        tuple(size_value(d, **sizes) for d in p.shape)) for p in cell.params}
    x = xscale * rng.standard_normal((T, B, D))
    state0 = {s: 0.5 * rng.standard_normal((B, *shape(d))) for s, d in cell.states.items()}
    dstate = {s: rng.standard_normal(v.shape) for s, v in state0.items()}
    dhs = rng.standard_normal((T, B, size_value(cell.output_dim, **sizes)))
    return params, x, state0, dhs, dstate, sizes


def rel(a, b):
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)


def derived(name_or_cell, params, x, state0, dhs, dstate, sizes):
    d = symlstm.derive(name_or_cell)
    return evaluated.gradients(d, params, x, state0, dhs, dstate, **sizes)


@pytest.mark.parametrize("name", ["mlstm", "gated_delta_net"])
@pytest.mark.parametrize("NH", [1, 2])
def test_derivation_matches_brute_force_at_tiny_sizes(name, NH):
    """NH = 1 and 2 heads of d = 2, T = 3, with gradients of the final states in the loss."""
    cell = symlstm.cell.shipped.get_cell(name)
    params, x, state0, dhs, dstate, sizes = draw(cell, NH, 2, seed=NH)
    grads, outputs, final = derived(cell, params, x, state0, dhs, dstate, sizes)
    ref = bruteforce.unroll(cell, params, x, state0, dhs, dstate, **sizes)
    assert set(grads) == set(ref.grads)
    assert rel(outputs, ref.outputs) < 1e-12
    for s in cell.states:
        assert rel(final[s], ref.final[s]) < 1e-12, s
    for key, g in ref.grads.items():
        assert g.shape == grads[key].shape, key
        assert rel(grads[key], g) < 1e-9, key


def _forward_loss(cell, params, x, state0, dhs, dstate, sizes):
    """Σ ⟨dhs, h⟩ + Σ ⟨dstate, s_T⟩ from the cell's forward equations alone."""
    sizes = evaluated.sizes_of(cell, **sizes)
    forward = [(eq.lhs, eq.rhs.xreplace({sp.Symbol(n): v for n, v in cell.constants.items()}))
               for eq in cell.equations]
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


@pytest.mark.parametrize("name", ["mlstm", "gated_delta_net"])
def test_derivation_matches_central_differences(name):
    cell = symlstm.cell.shipped.get_cell(name)
    params, x, state0, dhs, dstate, sizes = draw(cell, 2, 2, seed=3)
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


def _mlstm_torch(p, x, state, NH):
    """The stabilised mLSTM step of xLSTM's reference code, over the sequence."""
    T, B, _ = x.shape
    H = p["W_q"].shape[0]
    S = H // NH
    C, n, m, hs = state["C"], state["n"].view(B, NH, S), state["m"], []
    for t in range(T):
        xt = x[t]
        q = (xt @ p["W_q"].T + p["b_q"]).view(B, NH, S)
        k = ((xt @ p["W_k"].T + p["b_k"]) / math.sqrt(S)).view(B, NH, S)
        v = (xt @ p["W_v"].T + p["b_v"]).view(B, NH, S)
        o = torch.sigmoid(xt @ p["W_o"].T + p["b_o"])
        it, ft = xt @ p["w_i"].T + p["b_i"], xt @ p["w_f"].T + p["b_f"]
        m_new = torch.maximum(F.logsigmoid(ft) + m, it)
        i, f = torch.exp(it - m_new), torch.exp(F.logsigmoid(ft) + m - m_new)
        C = f[..., None, None] * C + i[..., None, None] * v[..., :, None] * k[..., None, :]
        n = f[..., None] * n + i[..., None] * k
        d = torch.maximum((n * q).sum(-1).abs(), torch.exp(-m_new)) + 1e-6
        hs.append(o * ((C @ q[..., None])[..., 0] / d[..., None]).reshape(B, H))
        m = m_new
    return torch.stack(hs), {"C": C, "n": n.reshape(B, H), "m": m}


def _gated_delta_torch(p, x, state, NH):
    """Gated DeltaNet's recurrent step, over the sequence."""
    T, B, _ = x.shape
    H = p["W_q"].shape[0]
    S_, hs = state["S"], []
    for t in range(T):
        xt = x[t]
        q, k, v = ((xt @ p[f"W_{g}"].T).view(B, NH, H // NH) for g in "qkv")
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        a = torch.sigmoid(xt @ p["w_a"].T + p["b_a"])[..., None, None]
        be = torch.sigmoid(xt @ p["w_b"].T + p["b_b"])[..., None, None]
        kkT, vkT = k[..., :, None] * k[..., None, :], v[..., :, None] * k[..., None, :]
        S_ = a * (S_ - be * S_ @ kkT) + be * vkT      # α S (I − β k kᵀ) + β v kᵀ
        hs.append((S_ @ q[..., None])[..., 0].reshape(B, H))
    return torch.stack(hs), {"S": S_}


def _autograd(step, params, x, state0, dhs, dstate, NH):
    leaves = {k: torch.tensor(v, requires_grad=True) for k, v in
              [*params.items(), ("x", x), *((f"{s}0", v) for s, v in state0.items())]}
    hs, final = step(leaves, leaves["x"], {s: leaves[f"{s}0"] for s in state0}, NH)
    loss = (hs * torch.tensor(dhs)).sum() + sum((final[s] * torch.tensor(dstate[s])).sum()
                                                for s in final)
    loss.backward()
    return {k: v.grad.numpy() for k, v in leaves.items()}, hs.detach().numpy()


@pytest.mark.parametrize("name, step", [("mlstm", _mlstm_torch),
                                        ("gated_delta_net", _gated_delta_torch)])
@pytest.mark.parametrize("scale, xscale", [(1.0, 1.0), (20.0, 5.0)], ids=["moderate", "saturated"])
def test_derivation_matches_torch_autograd(name, step, scale, xscale):
    """1e-10 in float64 at NH = 2 heads of 3, T = 5; saturated: parameters ×20 and input ×5,
    where the mLSTM's gate pre-activations reach hundreds and only m keeps exp finite."""
    cell = symlstm.cell.shipped.get_cell(name)
    params, x, state0, dhs, dstate, sizes = draw(cell, 2, 3, D=4, T=5, B=3, seed=7,
                                                 scale=scale, xscale=xscale)
    grads, outputs, _ = derived(cell, params, x, state0, dhs, dstate, sizes)
    ref, hs = _autograd(step, params, x, state0, dhs, dstate, 2)
    assert rel(outputs, hs) < 1e-10
    for key, g in ref.items():
        assert np.all(np.isfinite(grads[key])), key
        assert rel(grads[key], g) < 1e-10, key


def test_mlstm_has_the_issues_names_and_layouts():
    cell = symlstm.cell.shipped.get_cell("mlstm")
    assert {p.name: p.shape for p in cell.params} == {
        **{f"W_{g}": ("H", "D") for g in "qkvo"}, **{f"b_{g}": ("H",) for g in "qkvo"},
        "w_i": ("NH", "D"), "w_f": ("NH", "D"), "b_i": ("NH",), "b_f": ("NH",)}
    assert cell.states == {"C": HEAD_MATRIX, "n": "H", "m": "NH"}
    assert cell.output == "h" and not cell.output_is_state


def test_the_matrix_recurrences_read_as_the_textbook_writes_them():
    """δC_t = f_{t+1} δC_{t+1} + (δh̃_t / d_t) q_tᵀ: one term per path."""
    d = symlstm.derive("mlstm")
    t = {n: naming.timed(n) for n in ("f", "d", "q", "δC", "δhtilde")}
    g = d["rec:C"]
    assert sorted((term.via, term.later) for term in g.terms) == [("C", 1), ("htilde", 0)]
    assert g.rhs == naming.shift(t["f"], 1) * naming.shift(t["δC"], 1) + \
        HeadOuter(t["δhtilde"] / t["d"], t["q"])
    gd = symlstm.derive("gated_delta_net")["rec:S"]
    assert sorted((term.via, term.later) for term in gd.terms) == [("S", 1), ("Sk", 1), ("o", 0)]


def _cell(body, output="h"):
    """A small cell with heads: body(b, x, C, n, m) adds equations."""
    b = CellBuilder("heads", "Heads")
    NH = b.size("NH")
    x = b.input("x")
    C, n, m = b.state("C", NH, "H/NH", "H/NH"), b.state("n"), b.state("m", NH)
    W, w = b.param("W", "H", "D"), b.param("w", NH, "D")
    body(b, x, C, n, m, W, w)
    return b.build(output=output)


def test_transposed_products_and_numbers_per_head_agree_with_brute_force():
    """Cᵀ q, a per-head gate scaling the matrix, a per-head sum, a learnable scalar and a
    total beside them: a user's cell of the whole grammar."""
    def body(b, x, C, n, m, W, w):
        alpha = b.param("alpha")
        u = b.let("u", matvec(W, x))
        g = b.let("g", sigma(matvec(w, x) + alpha * m))
        b.let("C", g * C + (1 - g) * outer(u, n))
        r = b.let("r", matvec(transpose(C), u))
        b.let("n", Max(r, n) * g)
        b.let("m", headsum(r * u) / HS + m)
        s = b.let("s", total(r * r))
        b.let("h", exp(-Abs(r)) + s * n)
    cell = _cell(body)
    for NH in (1, 2):
        params, x, state0, dhs, dstate, sizes = draw(cell, NH, 2, seed=11 + NH)
        grads, outputs, _ = derived(cell, params, x, state0, dhs, dstate, sizes)
        ref = bruteforce.unroll(cell, params, x, state0, dhs, dstate, **sizes)
        assert rel(outputs, ref.outputs) < 1e-12
        for key, g in ref.grads.items():
            assert rel(grads[key], g) < 1e-9, (NH, key)


def _builder_without_heads():
    b = CellBuilder("noheads", "No heads")
    x, h = b.input("x"), b.state("h")
    W = b.param("W", "H", "D")
    return b, x, h, W


@pytest.mark.parametrize("body, match", [
    (lambda b, x, C, n, m, W, w: b.let("h", matvec(C, x)), r"matrix per head.*H-vector.*size D"),
    (lambda b, x, C, n, m, W, w: b.let("h", C * n),
     r"combines a matrix per head with a vector of size H"),
    (lambda b, x, C, n, m, W, w: b.let("h", n + outer(n, x)), r"outer\(v, k\) takes two H-vectors"),
    (lambda b, x, C, n, m, W, w: b.let("h", n + outer(n, n + n)), r"factors must be named vectors"),
    (lambda b, x, C, n, m, W, w: b.let("h", n * headsum(n)),
     r"one number per head.*vector of size H.*nq = sqrt"),
    (lambda b, x, C, n, m, W, w: b.let("h", n * headsum(m)),
     r"sums within each head.*not one of size NH"),
    (lambda b, x, C, n, m, W, w: b.let("h", n * b.let("s", headsum(n) + total(n))),
     r"may not share an equation"),
    (lambda b, x, C, n, m, W, w: b.let("h", part(C, 0, 1)), r"matrix per head; part takes rows"),
    (lambda b, x, C, n, m, W, w: b.let("h", n * b.let("s", mean(C))), r"mean of a matrix per head"),
])
def test_misused_matrices_are_refused_with_what_was_expected(body, match):
    def full(b, x, C, n, m, W, w):
        body(b, x, C, n, m, W, w)
    with pytest.raises(CellError, match=match):
        _cell(full)


def test_misdeclared_heads_are_refused():
    b = CellBuilder("bad", "Bad")
    b.size("NH")
    with pytest.raises(CellError, match="matrix per head"):
        b.state("C", "NH", "H/NH")
    b, x, h, W = _builder_without_heads()
    u = b.let("u", matvec(W, x))
    b.let("h", h + matvec(b.let("C", outer(u, u)), u))
    with pytest.raises(CellError, match=r"declare the number of heads first with size\('NH'\)"):
        b.build()
    b = CellBuilder("bad", "Bad")
    NH = b.size("NH")
    x, s = b.input("x"), b.state("s", "H/NH")
    b.param("W", NH, "D")
    b.let("s", s)
    with pytest.raises(CellError, match="the head size H/NH is never a size of its own"):
        b.build()


def test_the_output_is_a_vector_not_a_matrix():
    def body(b, x, C, n, m, W, w):
        b.let("C", C + outer(n, n))
        b.let("n", matvec(C, n))
        b.let("m", m + matvec(w, x))
    with pytest.raises(CellError, match=r"output 'C' is a matrix per head"):
        _cell(body, output="C")


def test_the_fused_lowering_refuses_matrices_per_head_by_name():
    from symlstm.lower.plan import lower
    with pytest.raises(CellError, match=r"cell 'mlstm' has matrices or numbers per head \(C "
                                        r"\(size NH×H/NH×H/NH\), m \(size NH\).*does not handle"):
        lower(symlstm.derive("mlstm"))


# --- the NumPy module ----------------------------------------------------------------------

def heads_module(cell, tmp_path):
    """The generated NumPy module of ``cell``, written into ``tmp_path`` and imported."""
    import importlib.util
    from symlstm.backends.heads import heads_module as write
    path = tmp_path / f"{cell.name}_heads.py"
    path.write_text(write(symlstm.derive(cell)))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _module_layout(state, NH):
    """States as the module takes them: an H-vector (B, NH, HS), the rest as drawn."""
    return {s: v.reshape(v.shape[0], NH, -1) if s == "n" else v for s, v in state.items()}


@pytest.mark.parametrize("name, step", [("mlstm", _mlstm_torch),
                                        ("gated_delta_net", _gated_delta_torch)])
@pytest.mark.parametrize("scale, xscale", [(1.0, 1.0), (20.0, 5.0)], ids=["moderate", "saturated"])
def test_numpy_module_matches_torch_autograd(name, step, scale, xscale, tmp_path):
    """The module's forward and backward against autograd of the papers' equations, 1e-10 in
    float64, states in the issue's layouts: C (B, NH, d, d), n (B, NH, d), m (B, NH)."""
    cell = symlstm.cell.shipped.get_cell(name)
    mod = heads_module(cell, tmp_path)
    NH, S = 2, 3
    params, x, state0, dhs, dstate, sizes = draw(cell, NH, S, D=4, T=5, B=3, seed=5,
                                                 scale=scale, xscale=xscale)
    hs, state, cache = mod.forward(params, x, _module_layout(state0, NH))
    grads = mod.backward(params, cache, dhs, _module_layout(dstate, NH))
    ref, ref_hs = _autograd(step, params, x, state0, dhs, dstate, NH)
    assert rel(hs, ref_hs) < 1e-10
    layouts = {"C": (3, NH, S, S), "S": (3, NH, S, S), "n": (3, NH, S), "m": (3, NH)}
    assert {s: v.shape for s, v in state.items()} == {s: layouts[s] for s in cell.states}
    for key, g in ref.items():
        mine = grads[key].reshape(g.shape)
        assert np.all(np.isfinite(mine)), key
        assert rel(mine, g) < 1e-10, key


def test_numpy_module_never_forms_more_than_a_state(tmp_path):
    """Every array the step computes or caches is at most one matrix per head per sample."""
    cell = symlstm.cell.shipped.get_cell("mlstm")
    mod = heads_module(cell, tmp_path)
    params, x, state0, dhs, dstate, _ = draw(cell, 2, 4, D=3, T=2, B=2)
    _, _, cache = mod.forward(params, x, _module_layout(state0, 2))
    assert max(v.size for step in cache["steps"] for v in step.values()) == 2 * 2 * 4 * 4


def test_numpy_module_refuses_a_cell_of_vectors():
    from symlstm.backends.heads import heads_module as write
    with pytest.raises(CellError, match="no matrices or numbers per head"):
        write(symlstm.derive("lstm"))


def test_modules_refuse_a_learnable_scalar_in_a_cell_with_heads():
    """Its gradient sums every entry of every sample; the modules say what to write instead."""
    from symlstm.backends.heads import heads_module as write
    b = CellBuilder("scaled", "Scaled memory")
    b.size("NH")
    x, C = b.input("x"), b.state("C", "NH", "H/NH", "H/NH")
    q = b.let("q", matvec(b.param("W_q", "H", "D"), x))
    g, alpha = b.param("g", "NH"), b.param("alpha")
    b.let("C", alpha * g * C + outer(q, q))
    b.let("o", matvec(C, q))
    with pytest.raises(CellError, match=r"alpha is a learnable scalar.*param\(name, 'NH'\)"):
        write(symlstm.derive(b.build(output="o")))


@pytest.mark.parametrize("name", ["mlstm", "gated_delta_net"])
@pytest.mark.parametrize("NH", [1, 2])
def test_verify_passes_within_a_minute(name, NH):
    """symlstm.verify: the NumPy module (numpy_module picks the heads' module) against
    central differences and brute force, moderate and saturated, at NH heads of d = 2, T = 3."""
    import time
    start = time.perf_counter()
    report = symlstm.verify(name, NH=NH, H=2 * NH)
    assert report.ok and time.perf_counter() - start < 60
    assert dict(report.sizes, NH=NH)["NH"] == NH and report.sizes["H"] == 2 * NH
    assert {r.key for r in report.rows} >= {f"{s}0" for s in symlstm.get_cell(name).states}


# --- the PyTorch module --------------------------------------------------------------------

def torch_heads_module(cell, tmp_path):
    import importlib.util
    from symlstm.backends.torch import torch_module
    path = tmp_path / f"{cell.name}_torch.py"
    path.write_text(torch_module(symlstm.derive(cell)))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("name, step", [("mlstm", _mlstm_torch),
                                        ("gated_delta_net", _gated_delta_torch)])
@pytest.mark.parametrize("scale, xscale", [(1.0, 1.0), (20.0, 5.0)], ids=["moderate", "saturated"])
def test_torch_module_backward_is_autograd_of_the_equations(name, step, scale, xscale, tmp_path):
    """The torch module's derived backward (its autograd.Function) against autograd of the
    papers' equations, 1e-10 in float64."""
    cell = symlstm.cell.shipped.get_cell(name)
    mod = torch_heads_module(cell, tmp_path)
    NH = 2
    params, x, state0, dhs, dstate, _ = draw(cell, NH, 3, D=4, T=5, B=3, seed=9, scale=scale,
                                             xscale=xscale)
    ref, ref_hs = _autograd(step, params, x, state0, dhs, dstate, NH)
    leaves = {k: torch.tensor(v, requires_grad=True) for k, v in
              [*params.items(), ("x", x),
               *((f"{s}0", v) for s, v in _module_layout(state0, NH).items())]}
    hs, final = mod.forward({p: leaves[p] for p in params}, leaves["x"],
                            {s: leaves[f"{s}0"] for s in state0})
    loss = (hs * torch.tensor(dhs)).sum() + sum(
        (final[s] * torch.tensor(v).reshape(final[s].shape)).sum() for s, v in dstate.items())
    loss.backward()
    assert rel(hs.detach().numpy(), ref_hs) < 1e-10
    for key, g in ref.items():
        assert rel(leaves[key].grad.numpy().reshape(g.shape), g) < 1e-10, key


def test_torch_module_trains_in_float32(tmp_path):
    mod = torch_heads_module(symlstm.cell.shipped.get_cell("mlstm"), tmp_path)
    torch.manual_seed(0)
    net = mod.Cell(4, 8, num_heads=2)
    hs, state = net(torch.randn(6, 3, 4))
    hs.square().sum().backward()
    assert hs.dtype == torch.float32 and state["C"].shape == (3, 2, 4, 4)
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())


def test_numpy_module_keeps_float32_and_refuses_bad_input(tmp_path):
    mod = heads_module(symlstm.cell.shipped.get_cell("mlstm"), tmp_path)
    params = mod.init_params(4, 8, rng=0, dtype=np.float32, num_heads=2)
    x = np.random.default_rng(0).standard_normal((5, 3, 4)).astype(np.float32)
    hs, state, cache = mod.forward(params, x)
    grads = mod.backward(params, cache, np.ones_like(hs))
    assert hs.dtype == np.float32 and {g.dtype for g in grads.values()} == {np.dtype("float32")}
    with pytest.raises(ValueError, match=r"params\['w_f'\] must be a float32 array of shape "
                                         r"\(2, 4\)"):
        mod.forward({**params, "w_f": np.zeros((3, 4), np.float32)}, x)
    zeros = {s: np.zeros((3, *shape)) for s, shape in (("C", (2, 4, 4)), ("n", (2, 4)),
                                                         ("m", (2,)))}
    with pytest.raises(ValueError, match=r"state0\['C'\] must be a real array of shape "
                                         r"\(3, 2, 4, 4\)"):
        mod.forward(params, x, {**zeros, "C": np.zeros((3, 2, 4))})
    with pytest.raises(KeyError, match=r"state0 must be a dict with the keys \('C', 'n', 'm'\)"):
        mod.forward(params, x, {"C": zeros["C"]})
    with pytest.raises(KeyError, match="params must have exactly the keys"):
        mod.forward({}, x)
