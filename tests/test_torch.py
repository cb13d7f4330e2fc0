"""Against independent autograd: torch.nn.LSTM, and a torch peephole cell differentiated by autograd."""
import numpy as np
import pytest
from conftest import generated, problem


torch = pytest.importorskip("torch")
GATES = "ifzo"     # torch's chunk order is i, f, g (our z), o


def to_torch(a):
    return torch.tensor(a, dtype=torch.float64, requires_grad=True)


def rel_err(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def test_lstm_matches_torch_nn_lstm():
    mod = generated("lstm")
    params, x, state0, dhs, dstate = problem(mod, T=6, B=3, D=4, H=5)
    hs, state, cache = mod.forward(params, x, state0)
    grads = mod.backward(params, cache, dhs, dstate)

    net = torch.nn.LSTM(4, 5).double()
    with torch.no_grad():
        net.weight_ih_l0.copy_(torch.tensor(np.concatenate([params[f"W_{g}"] for g in GATES])))
        net.weight_hh_l0.copy_(torch.tensor(np.concatenate([params[f"R_{g}"] for g in GATES])))
        net.bias_ih_l0.copy_(torch.tensor(np.concatenate([params[f"b_{g}"] for g in GATES])))
        net.bias_hh_l0.zero_()
    xt, h0, c0 = to_torch(x), to_torch(state0["h"][None]), to_torch(state0["c"][None])
    out, (hT, cT) = net(xt, (h0, c0))
    loss = (out * torch.tensor(dhs)).sum() + (hT[0] * torch.tensor(dstate["h"])).sum() \
        + (cT[0] * torch.tensor(dstate["c"])).sum()
    loss.backward()

    assert rel_err(hs, out.detach().numpy()) < 1e-12
    H = 5
    for k, g in enumerate(GATES):
        rows = slice(k * H, (k + 1) * H)
        assert rel_err(grads[f"W_{g}"], net.weight_ih_l0.grad[rows].numpy()) < 1e-10
        assert rel_err(grads[f"R_{g}"], net.weight_hh_l0.grad[rows].numpy()) < 1e-10
        assert rel_err(grads[f"b_{g}"], net.bias_ih_l0.grad[rows].numpy()) < 1e-10
    assert rel_err(grads["x"], xt.grad.numpy()) < 1e-10
    assert rel_err(grads["h0"], h0.grad[0].numpy()) < 1e-10
    assert rel_err(grads["c0"], c0.grad[0].numpy()) < 1e-10


def test_peephole_lstm_matches_torch_autograd():
    mod = generated("peephole_lstm")
    params, x, state0, dhs, dstate = problem(mod, T=7, B=2, D=3, H=4)
    hs, state, cache = mod.forward(params, x, state0)
    grads = mod.backward(params, cache, dhs, dstate)

    P = {k: to_torch(v) for k, v in params.items()}
    xt, h, c = to_torch(x), to_torch(state0["h"]), to_torch(state0["c"])
    h0, c0 = h, c
    outs = []
    for x_t in xt:
        pre = {g: x_t @ P[f"W_{g}"].T + h @ P[f"R_{g}"].T + P[f"b_{g}"] for g in "zifo"}
        z = torch.tanh(pre["z"])
        i = torch.sigmoid(pre["i"] + P["p_i"] * c)
        f = torch.sigmoid(pre["f"] + P["p_f"] * c)
        c = z * i + c * f
        o = torch.sigmoid(pre["o"] + P["p_o"] * c)
        h = torch.tanh(c) * o
        outs.append(h)
    out = torch.stack(outs)
    loss = (out * torch.tensor(dhs)).sum() + (h * torch.tensor(dstate["h"])).sum() \
        + (c * torch.tensor(dstate["c"])).sum()
    loss.backward()

    assert rel_err(hs, out.detach().numpy()) < 1e-12
    for k in params:
        assert rel_err(grads[k], P[k].grad.numpy()) < 1e-10, k
    for k, t in (("x", xt), ("h0", h0), ("c0", c0)):
        assert rel_err(grads[k], t.grad.numpy()) < 1e-10, k


def test_gru_matches_torch_nn_gru():
    mod = generated("gru")
    params, x, state0, dhs, dstate = problem(mod, T=6, B=3, D=4, H=5)
    hs, state, cache = mod.forward(params, x, state0)
    grads = mod.backward(params, cache, dhs, dstate)

    H, rng = 5, np.random.default_rng(7)
    b_hr, b_hz = rng.standard_normal(H), rng.standard_normal(H)   # torch's extra biases
    net = torch.nn.GRU(4, 5).double()
    with torch.no_grad():
        net.weight_ih_l0.copy_(torch.tensor(np.concatenate([params[f"W_{g}"] for g in "rzn"])))
        net.weight_hh_l0.copy_(torch.tensor(np.concatenate([params[f"R_{g}"] for g in "rzn"])))
        net.bias_ih_l0.copy_(torch.tensor(np.concatenate(
            [params["b_r"] - b_hr, params["b_z"] - b_hz, params["b_n"]])))
        net.bias_hh_l0.copy_(torch.tensor(np.concatenate([b_hr, b_hz, params["b_hn"]])))
    xt, h0 = to_torch(x), to_torch(state0["h"][None])
    out, hT = net(xt, h0)
    loss = (out * torch.tensor(dhs)).sum() + (hT[0] * torch.tensor(dstate["h"])).sum()
    loss.backward()

    assert rel_err(hs, out.detach().numpy()) < 1e-12
    for k, g in enumerate("rzn"):
        rows = slice(k * H, (k + 1) * H)
        assert rel_err(grads[f"W_{g}"], net.weight_ih_l0.grad[rows].numpy()) < 1e-10
        assert rel_err(grads[f"R_{g}"], net.weight_hh_l0.grad[rows].numpy()) < 1e-10
        assert rel_err(grads[f"b_{g}"], net.bias_ih_l0.grad[rows].numpy()) < 1e-10
    assert rel_err(grads["b_hn"], net.bias_hh_l0.grad[2 * H:].numpy()) < 1e-10
    assert rel_err(grads["x"], xt.grad.numpy()) < 1e-10
    assert rel_err(grads["h0"], h0.grad[0].numpy()) < 1e-10
