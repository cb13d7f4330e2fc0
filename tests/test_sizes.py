"""Sizes a cell declares beyond D and H (a projection size P, a number of heads NH with head
size H/NH), and the shipped cell that uses P: ``lstmp``, checked against
``torch.nn.LSTM(proj_size=P)`` itself."""
import importlib

import numpy as np
import pytest

import symlstm
from symlstm import CellBuilder, CellError, matvec, sigma, tanh
from symlstm.cell.parts import size, size_value
from symlstm.checks.verification import problem

torch = pytest.importorskip("torch", reason="torch is installed by the README's test command")
GATES = "ifzo"     # torch's chunk order is i, f, g (our z), o
T, B, D, H, P = 5, 3, 4, 6, 3


def _torch_lstmp(params, x, state0):
    """torch.nn.LSTM(proj_size=P) holding ``params``, run on x from state0, with autograd."""
    net = torch.nn.LSTM(D, H, proj_size=P, dtype=torch.float64)
    with torch.no_grad():
        net.weight_ih_l0.copy_(torch.tensor(np.concatenate([params[f"W_{g}"] for g in GATES])))
        net.weight_hh_l0.copy_(torch.tensor(np.concatenate([params[f"R_{g}"] for g in GATES])))
        net.bias_ih_l0.copy_(torch.tensor(np.concatenate([params[f"b_{g}"] for g in GATES])))
        net.bias_hh_l0.zero_()
        net.weight_hr_l0.copy_(torch.tensor(params["W_hr"]))
    xt = torch.tensor(x, requires_grad=True)
    h0 = torch.tensor(state0["h"][None], requires_grad=True)
    c0 = torch.tensor(state0["c"][None], requires_grad=True)
    out, (hT, cT) = net(xt, (h0, c0))
    return net, (xt, h0, c0), out, hT[0], cT[0]


def _torch_grads(params, x, state0, dhs, dstate):
    """Every gradient of L = Σ⟨dhs, hs⟩ + Σ_s ⟨dstate_s, s_T⟩ by autograd through torch's LSTM,
    keyed as the generated modules key theirs, and torch's outputs."""
    net, (xt, h0, c0), out, hT, cT = _torch_lstmp(params, x, state0)
    loss = (out * torch.tensor(dhs)).sum() + (hT * torch.tensor(dstate["h"])).sum() \
        + (cT * torch.tensor(dstate["c"])).sum()
    loss.backward()
    grads = {"x": xt.grad.numpy(), "h0": h0.grad[0].numpy(), "c0": c0.grad[0].numpy(),
             "W_hr": net.weight_hr_l0.grad.numpy()}
    for k, g in enumerate(GATES):
        rows = slice(k * H, (k + 1) * H)
        grads[f"W_{g}"] = net.weight_ih_l0.grad[rows].numpy()
        grads[f"R_{g}"] = net.weight_hh_l0.grad[rows].numpy()
        grads[f"b_{g}"] = net.bias_ih_l0.grad[rows].numpy()
    return grads, out.detach().numpy(), {"h": hT.detach().numpy(), "c": cT.detach().numpy()}


def _run(backend, params, x, state0, dhs, dstate):
    """hs, final states and gradients from one generated backend of lstmp."""
    if backend == "torch":
        mod = importlib.import_module("symlstm.generated.torch.lstmp")
        tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
        tx = torch.tensor(x, requires_grad=True)
        ts = {k: torch.tensor(v, requires_grad=True) for k, v in state0.items()}
        hs, state = mod.forward(tp, tx, ts)
        loss = (hs * torch.tensor(dhs)).sum() + sum((state[s] * torch.tensor(dstate[s])).sum()
                                                    for s in state)
        loss.backward()
        grads = {**{k: v.grad.numpy() for k, v in tp.items()}, "x": tx.grad.numpy(),
                 **{f"{k}0": v.grad.numpy() for k, v in ts.items()}}
        return hs.detach().numpy(), {s: v.detach().numpy() for s, v in state.items()}, grads
    if backend == "numba":
        pytest.importorskip("numba", reason="numba is installed by the README's test command")
    mod = importlib.import_module("symlstm.generated" + ("" if backend == "numpy" else ".numba")
                                  + ".lstmp")
    hs, state, cache = mod.forward(params, x, state0)
    return hs, state, mod.backward(params, cache, dhs, dstate)


@pytest.mark.parametrize("backend", ["numpy", "torch", "numba"])
def test_lstmp_matches_torch_nn_lstm_with_proj_size(backend):
    lstmp = importlib.import_module("symlstm.generated.lstmp")
    params, x, state0, dhs, dstate = problem(lstmp, T=T, B=B, D=D, H=H, P=P, seed=3)
    assert params["R_z"].shape == (H, P) and params["W_hr"].shape == (P, H)
    want, want_hs, want_state = _torch_grads(params, x, state0, dhs, dstate)
    hs, state, grads = _run(backend, params, x, state0, dhs, dstate)
    assert hs.shape == (T, B, P)
    assert np.abs(hs - want_hs).max() <= 1e-12
    assert all(np.abs(state[s] - want_state[s]).max() <= 1e-12 for s in state)
    assert set(grads) == set(want)
    for k, g in want.items():
        assert np.abs(grads[k] - g).max() <= 1e-10 * max(1.0, np.abs(g).max()), k


def test_lstmp_round_trips_through_torch_exactly():
    lstmp = importlib.import_module("symlstm.generated.lstmp")
    torch.manual_seed(0)
    net = torch.nn.LSTM(D, H, proj_size=P, dtype=torch.float64)
    params = symlstm.from_torch(net)
    assert list(params) == list(lstmp.PARAMS)
    assert params["R_f"].shape == (H, P) and params["W_hr"].shape == (P, H)
    again = symlstm.from_torch(symlstm.to_torch("lstmp", params))
    assert all(np.array_equal(again[k], params[k]) for k in params)   # exact
    x = torch.randn(T, B, D, dtype=torch.float64)
    want, _ = net(x)
    hs, _, _ = lstmp.forward(params, x.numpy())
    assert np.abs(hs - want.detach().numpy()).max() <= 1e-12
    rebuilt = symlstm.to_torch("lstmp", params)
    assert rebuilt.proj_size == P
    assert np.abs(rebuilt(x)[0].detach().numpy() - want.detach().numpy()).max() <= 1e-12
    with pytest.raises(ValueError, match=r"params\['W_hr'\] must have shape \(3, 6\)"):
        symlstm.to_torch("lstmp", {**params, "W_hr": params["W_hr"][:, :-1]})
    with pytest.raises(ValueError, match=r"params\['R_o'\] must have shape \(6, 3\)"):
        symlstm.to_torch("lstmp", {**params, "R_o": params["R_o"][:, :-1]})


def test_lstmp_verifies_quickly():
    import time
    start = time.perf_counter()
    report = symlstm.verify("lstmp", P=4)
    assert report.ok and report.sizes["P"] == 4
    assert time.perf_counter() - start <= 30


def test_lstmp_modules_take_and_check_the_projection_size():
    lstmp = importlib.import_module("symlstm.generated.lstmp")
    assert lstmp.EXTRA_SIZES == {"P": "proj_size"}
    assert lstmp.STATE_SIZES == {"h": "P", "c": "H"}
    with pytest.raises(TypeError, match="proj_size"):
        lstmp.init_params(D, H, rng=0)
    with pytest.raises(ValueError, match="proj_size must be positive"):
        lstmp.init_params(D, H, proj_size=0)
    params = lstmp.init_params(D, H, proj_size=P, rng=0)
    x = np.zeros((T, B, D))
    with pytest.raises(ValueError, match=r"params\['W_hr'\] must be a float64 array of shape "
                                         r"\(3, 6\) \(D=4 from x, H=6 from most parameters, P=3\)"):
        lstmp.forward({**params, "W_hr": params["W_hr"][:, 1:]}, x)
    with pytest.raises(ValueError, match=r"state0\['h'\] must be a real array of shape \(3, 3\)"):
        lstmp.forward(params, x, {"h": np.zeros((B, H)), "c": np.zeros((B, H))})
    tl = importlib.import_module("symlstm.generated.torch.lstmp")
    net = tl.Cell(D, H, proj_size=P, dtype=torch.float64)
    assert net.W_hr.shape == (P, H) and net.R_i.shape == (H, P)
    assert net(torch.zeros(T, B, D, dtype=torch.float64))[0].shape == (T, B, P)


def test_size_grammar_knows_the_declared_sizes():
    assert size("H/NH") == "H/NH" and size("P + 2*H") == "2*H + P"
    assert size_value("H/NH", 1, 8, NH=4) == 2 and size_value("D + P", 3, 5, P=2) == 5
    with pytest.raises(ValueError, match="'P' needs P"):
        size_value("P", 1, 2)


def _projected(declare=True, W_shape=("P", "H"), h_size="P"):
    b = CellBuilder("proj", "Projected")
    if declare:
        b.size("P")
    x, h = b.input("x"), b.state("h", h_size)
    m = b.let("m", tanh(matvec(b.param("W", "H", "D"), x) + matvec(b.param("R", "H", h_size), h)))
    b.let("h", sigma(matvec(b.param("V", *W_shape), m)))
    return b.build()


def test_misused_sizes_are_refused_clearly():
    assert _projected().sizes == ("P",)
    with pytest.raises(CellError, match=r"uses the size 'P': declare it first with size\('P'\)"):
        _projected(declare=False)
    with pytest.raises(CellError, match="cannot be declared"):
        CellBuilder("c", "C").size("K")
    b = CellBuilder("c", "C")
    b.size("P")
    with pytest.raises(CellError, match="declared twice"):
        b.size("P")
    with pytest.raises(CellError, match="'P' is not allowed: D, H, HS, N, NH, P are the sizes"):
        CellBuilder("c", "C").param("P", "H")
    with pytest.raises(CellError, match="is not one of D, H, P, NH, H/NH"):
        CellBuilder("c", "C").param("W", "Q")
    with pytest.raises(CellError, match="'P' is declared but no parameter has it as a whole"):
        _projected(W_shape=("H", "H"), h_size="H")


def heads_lstm():
    """An LSTM whose recurrent matrices are per-head blocks: (NH, H/NH, H/NH) each."""
    b = CellBuilder("heads_lstm", "LSTM with per-head recurrent blocks")
    NH = b.size("NH")
    x, h, c = b.input("x"), b.state("h"), b.state("c")
    pre = {g: matvec(b.param(f"W_{g}", "H", "D"), x)
           + matvec(b.param(f"R_{g}", NH, "H/NH", "H/NH"), h) + b.param(f"b_{g}", "H")
           for g in "zifo"}
    z = b.let("z", tanh(b.let("zbar", pre["z"])))
    i = b.let("i", sigma(b.let("ibar", pre["i"])))
    f = b.let("f", sigma(b.let("fbar", pre["f"])))
    o = b.let("o", sigma(b.let("obar", pre["o"])))
    c_t = b.let("c", f * c + i * z)
    b.let("h", o * tanh(c_t))
    return b.build()


def mixed_heads():
    """Per-head and dense products on one vector, on the input (of size H), on a state and on
    a vector of the step, a bias beside both input products."""
    b = CellBuilder("mixed_heads", "Mixed")
    NH = b.size("NH")
    x, h = b.input("x", "H"), b.state("h")
    A, Q, R = (b.param(n, NH, "H/NH", "H/NH") for n in ("A", "Q", "R"))
    Wd, Rd, bias = b.param("Wd", "H", "H"), b.param("Rd", "H", "H"), b.param("b", "H")
    u = b.let("u", tanh(matvec(A, x) + matvec(Wd, x) + bias))
    v = b.let("v", sigma(matvec(R, u) + matvec(Rd, h)))
    b.let("h", v * tanh(matvec(Q, h)) + u)
    return b.build()


def _block_diagonal(blocks):
    """The H × H matrix that per-head blocks (NH, S, S) stand for (for the reference only)."""
    NH, S, _ = blocks.shape
    out = torch.zeros(NH * S, NH * S, dtype=blocks.dtype)
    for n in range(NH):
        out[n * S:(n + 1) * S, n * S:(n + 1) * S] = blocks[n]
    return out


def _heads_lstm_autograd(params, x, state0, dhs, dstate):
    """The loss of heads_lstm written independently in torch, with the blocks placed in full
    H × H matrices, and its gradients by autograd."""
    P = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    xt = torch.tensor(x, requires_grad=True)
    h0, c0 = (torch.tensor(state0[s], requires_grad=True) for s in "hc")
    h, c, loss = h0, c0, 0
    for t, x_t in enumerate(xt):
        pre = {g: x_t @ P[f"W_{g}"].T + h @ _block_diagonal(P[f"R_{g}"]).T + P[f"b_{g}"]
               for g in "zifo"}
        c = torch.sigmoid(pre["f"]) * c + torch.sigmoid(pre["i"]) * torch.tanh(pre["z"])
        h = torch.sigmoid(pre["o"]) * torch.tanh(c)
        loss = loss + (h * torch.tensor(dhs[t])).sum()
    loss = loss + (h * torch.tensor(dstate["h"])).sum() + (c * torch.tensor(dstate["c"])).sum()
    loss.backward()
    return {**{k: v.grad.numpy() for k, v in P.items()}, "x": xt.grad.numpy(),
            "h0": h0.grad.numpy(), "c0": c0.grad.numpy()}


def _modules(cell, tmp_path):
    """The NumPy, torch and Numba modules of a cell of one's own."""
    import importlib.util
    from symlstm.backends.code import numpy_module
    from symlstm.backends.numba import numba_module
    from symlstm.backends.torch import torch_module
    from symlstm.checks.verification import load_module
    d = symlstm.derive(cell)
    path = tmp_path / f"numba_{cell.name}.py"
    path.write_text(numba_module(d))
    spec = importlib.util.spec_from_file_location(f"numba_{cell.name}_{tmp_path.name}", path)
    nb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(nb)
    return {"numpy": load_module(numpy_module(d), cell.name),
            "torch": load_module(torch_module(d), cell.name + "_torch"), "numba": nb}


def _gradients(backend, mod, params, x, state0, dhs, dstate):
    if backend != "torch":
        hs, state, cache = mod.forward(params, x, state0)
        return hs, mod.backward(params, cache, dhs, dstate)
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    tx = torch.tensor(x, requires_grad=True)
    ts = {k: torch.tensor(v, requires_grad=True) for k, v in state0.items()}
    hs, state = mod.forward(tp, tx, ts)
    loss = (hs * torch.tensor(dhs)).sum() + sum((state[s] * torch.tensor(dstate[s])).sum()
                                                for s in state)
    loss.backward()
    return hs.detach().numpy(), {**{k: v.grad.numpy() for k, v in tp.items()},
                                 mod.INPUT: tx.grad.numpy(),
                                 **{f"{k}0": v.grad.numpy() for k, v in ts.items()}}


def test_per_head_blocks_match_torch_autograd_in_every_backend(tmp_path):
    pytest.importorskip("numba", reason="numba is installed by the README's test command")
    mods = _modules(heads_lstm(), tmp_path)
    params, x, state0, dhs, dstate = problem(mods["numpy"], T=4, B=3, D=3, H=6, NH=3, seed=2)
    assert params["R_z"].shape == (3, 2, 2)
    want = _heads_lstm_autograd(params, x, state0, dhs, dstate)
    for backend, mod in mods.items():
        _, grads = _gradients(backend, mod, params, x, state0, dhs, dstate)
        assert set(grads) == set(want), backend
        for k, g in want.items():
            assert np.abs(grads[k] - g).max() <= 1e-10 * max(1.0, np.abs(g).max()), (backend, k)


def test_dense_and_per_head_products_on_one_vector(tmp_path):
    pytest.importorskip("numba", reason="numba is installed by the README's test command")
    cell = mixed_heads()
    report = symlstm.verify(cell, H=6, NH=2)
    assert report.ok and report.sizes["NH"] == 2
    mods = _modules(cell, tmp_path)
    params, x, state0, dhs, dstate = problem(mods["numpy"], T=3, B=2, D=6, H=6, NH=3)
    hs, want = _gradients("numpy", mods["numpy"], params, x, state0, dhs, dstate)
    for backend in ("torch", "numba"):
        got_hs, got = _gradients(backend, mods[backend], params, x, state0, dhs, dstate)
        assert np.abs(got_hs - hs).max() <= 1e-12
        assert all(np.abs(got[k] - want[k]).max() <= 1e-12 * max(1.0, np.abs(want[k]).max())
                   for k in want), backend


def test_per_head_modules_check_the_number_of_heads(tmp_path):
    mod = _modules(heads_lstm(), tmp_path)["numpy"]
    assert mod.EXTRA_SIZES == {"NH": "num_heads"} and mod.SHAPES["R_o"] == ("NH", "H/NH", "H/NH")
    with pytest.raises(ValueError, match="hidden_size must be a multiple of num_heads"):
        mod.init_params(3, 6, num_heads=4)
    params = mod.init_params(3, 6, num_heads=2, rng=0)
    assert params["R_i"].shape == (2, 3, 3)
    x = np.zeros((2, 1, 3))
    with pytest.raises(ValueError, match="H=6 .* is not a multiple of the number of heads NH=4"):
        mod.forward({**params, **{f"R_{g}": np.zeros((4, 3, 3)) for g in "zifo"}}, x)
    with pytest.raises(ValueError, match=r"params\['R_f'\] must be a float64 array of shape "
                                         r"\(2, 3, 3\)"):
        mod.forward({**params, "R_f": np.zeros((2, 2, 2))}, x)


def test_misused_heads_are_refused_clearly():
    b = CellBuilder("c", "C")
    x, h = b.input("x"), b.state("h")
    with pytest.raises(CellError, match=r"uses the size 'NH': declare it first with size\('NH'\)"):
        R = b.param("R", "NH", "H/NH", "H/NH")
        b.let("h", tanh(matvec(b.param("W", "H", "D"), x) + matvec(R, h)))
        b.build()
    b = CellBuilder("c", "C")
    b.size("NH")
    with pytest.raises(CellError, match=r"NH and H/NH are for per-head blocks"):
        b.param("V", "H", "H/NH")
        b.input("x"), b.state("h")
        b.build()
    b = CellBuilder("c", "C")
    NH = b.size("NH")
    x, h = b.input("x"), b.state("h")
    R = b.param("R", NH, "H/NH", "H/NH")
    u = b.let("u", tanh(matvec(b.param("W", "H", "D"), x)))
    b.let("h", tanh(matvec(symlstm.transpose(R), h) + b.param("b", "H")) * u)
    with pytest.raises(CellError, match="transposes the per-head blocks R"):
        b.build()


def test_a_part_of_a_vector_with_a_declared_size():
    """[x; s] with s of the size P: the backward pass slices δ[x; s] at D and D + P, and
    those bounds are spelled back as a size with P in it (a random cell found them read as
    counts of D and H only)."""
    from symlstm.cell.parts import size_expr, spell_size_expr
    for dim in ("D + P", "4*H", "H/NH", "D + 2*H + 3", "P + 1"):
        assert spell_size_expr(size_expr(dim)) == dim
    b = CellBuilder("sliced", "A concatenation with a state of size P")
    P = b.size("P")
    x, h, s = b.input("x"), b.state("h"), b.state("s", P)
    B, W = b.param("B", P), b.param("W", "H", "D + P")
    b.let("s", tanh(B + s))
    xs = b.let("xs", symlstm.concat(x, s))
    b.let("h", tanh(matvec(W, xs)) + h)
    assert symlstm.verify(b.build(), P=2).ok
