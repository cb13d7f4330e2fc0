"""gru_cho, mingru and minlstm: every generated backend (NumPy, Numba, PyTorch) against torch
autograd of the cell's equations, written here once more from the papers, and verify()."""
import importlib
import time

import numpy as np
import pytest

import symlstm

from conftest import problem

torch = pytest.importorskip("torch", reason="torch is installed by the README's test command")
pytest.importorskip("numba", reason="numba is installed by the README's test command")


def gru_cho(p, x_t, s):
    """Cho et al. (2014): the reset gate multiplies h_{t-1} inside the recurrent product."""
    h = s["h"]
    r = torch.sigmoid(x_t @ p["W_r"].T + h @ p["R_r"].T + p["b_r"])
    z = torch.sigmoid(x_t @ p["W_z"].T + h @ p["R_z"].T + p["b_z"])
    n = torch.tanh(x_t @ p["W_n"].T + (r * h) @ p["R_n"].T + p["b_n"])
    return {"h": (1 - z) * n + z * h}


def mingru(p, x_t, s):
    """Feng et al. (2024), minGRU in its sequential form."""
    z = torch.sigmoid(x_t @ p["W_z"].T + p["b_z"])
    h_tilde = x_t @ p["W_h"].T + p["b_h"]
    return {"h": (1 - z) * s["h"] + z * h_tilde}


def minlstm(p, x_t, s):
    """Feng et al. (2024), minLSTM in its sequential form."""
    f = torch.sigmoid(x_t @ p["W_f"].T + p["b_f"])
    i = torch.sigmoid(x_t @ p["W_i"].T + p["b_i"])
    h_tilde = x_t @ p["W_h"].T + p["b_h"]
    return {"h": f / (f + i) * s["h"] + i / (f + i) * h_tilde}


#: Each cell's step, and its parameters with their shapes in (D, H), as the issue lists them.
STEPS = {
    "gru_cho": (gru_cho, {**{f"W_{g}": "HD" for g in "rzn"}, **{f"R_{g}": "HH" for g in "rzn"},
                          **{f"b_{g}": "H" for g in "rzn"}}),
    "mingru": (mingru, {"W_z": "HD", "b_z": "H", "W_h": "HD", "b_h": "H"}),
    "minlstm": (minlstm, {"W_f": "HD", "b_f": "H", "W_i": "HD", "b_i": "H", "W_h": "HD",
                          "b_h": "H"}),
}
SIZES = dict(T=6, B=3, D=4, H=5)


def _autograd(step, params, x, state0, dhs, dstate):
    """Outputs and the gradient of Σ dhs ⊙ hs + Σ_s dstate_s ⊙ s_T, by torch autograd."""
    leaves = {k: torch.tensor(v, requires_grad=True) for k, v in
              [*params.items(), ("x", x), *((f"{s}0", v) for s, v in state0.items())]}
    state, hs = {s: leaves[f"{s}0"] for s in state0}, []
    for x_t in leaves["x"]:
        state = step({k: leaves[k] for k in params}, x_t, state)
        hs.append(state["h"])
    hs = torch.stack(hs)
    loss = (hs * torch.from_numpy(dhs)).sum() + sum(
        (state[s] * torch.from_numpy(dstate[s])).sum() for s in state0)
    loss.backward()
    return hs.detach().numpy(), {k: v.grad.numpy() for k, v in leaves.items()}


def _numpy_like(mod, params, x, state0, dhs, dstate):
    hs, _, cache = mod.forward(params, x, state0)
    return hs, mod.backward(params, cache, dhs, dstate)


def _torch(mod, params, x, state0, dhs, dstate):
    leaves = {k: torch.tensor(v, requires_grad=True) for k, v in
              [*params.items(), ("x", x), *((f"{s}0", v) for s, v in state0.items())]}
    hs, state = mod.forward({k: leaves[k] for k in params}, leaves["x"],
                            {s: leaves[f"{s}0"] for s in state0})
    loss = (hs * torch.from_numpy(dhs)).sum() + sum(
        (state[s] * torch.from_numpy(dstate[s])).sum() for s in state0)
    loss.backward()
    return hs.detach().numpy(), {k: v.grad.numpy() for k, v in leaves.items()}


BACKENDS = {"numpy": ("symlstm.generated.{}", _numpy_like),
            "numba": ("symlstm.generated.numba.{}", _numpy_like),
            "torch": ("symlstm.generated.torch.{}", _torch)}


def test_the_cells_are_shipped_with_the_issues_parameters():
    for name, (_, shapes) in STEPS.items():
        cell = symlstm.CELLS[name]()
        assert [p.name for p in cell.params] == list(shapes), name
        sizes = {"D": "D", "H": "H"}
        assert {p.name: "".join(sizes[d] for d in p.shape) for p in cell.params} == shapes


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", STEPS)
def test_every_backend_matches_autograd_of_the_equations(name, backend):
    module, run = BACKENDS[backend]
    mod = importlib.import_module(module.format(name))
    params, x, state0, dhs, dstate = problem(importlib.import_module(f"symlstm.generated.{name}"),
                                             seed=3, **SIZES)
    want_hs, want = _autograd(STEPS[name][0], params, x, state0, dhs, dstate)
    hs, grads = run(mod, params, x, state0, dhs, dstate)
    assert set(grads) == set(want)
    np.testing.assert_allclose(hs, want_hs, rtol=0, atol=1e-12 * np.abs(want_hs).max())
    for k in want:
        scale = np.abs(want[k]).max()
        err = np.abs(np.asarray(grads[k]) - want[k]).max() / scale
        assert err <= 1e-10, f"{backend} {name} grad {k}: off by {err:.1e} of {scale:.1e}"


def test_gru_cho_is_not_torchs_gru():
    """The reset gate before the product changes the function: gru_cho and gru differ on the
    same weights (with gru's b_hn = 0), and agree only where r = 1."""
    cho, gru = (importlib.import_module(f"symlstm.generated.{n}") for n in ("gru_cho", "gru"))
    params, x, state0, _, _ = problem(cho, seed=1, **SIZES)
    both = {**params, "b_hn": np.zeros(SIZES["H"])}
    hs_cho, _, _ = cho.forward(params, x, state0)
    hs_gru, _, _ = gru.forward(both, x, state0)
    assert np.abs(hs_cho - hs_gru).max() > 1e-3
    open_reset = {**params, "W_r": 0 * params["W_r"], "R_r": 0 * params["R_r"],
                  "b_r": np.full(SIZES["H"], 40.0)}   # σ(40) = 1 - 4e-18: r = 1
    hs_cho, _, _ = cho.forward(open_reset, x, state0)
    hs_gru, _, _ = gru.forward({**open_reset, "b_hn": np.zeros(SIZES["H"])}, x, state0)
    np.testing.assert_allclose(hs_cho, hs_gru, rtol=0, atol=1e-14)


@pytest.mark.parametrize("name", STEPS)
def test_verify_passes_within_30_seconds(name):
    start = time.process_time()
    report = symlstm.verify(name)
    assert time.process_time() - start <= 30, f"verify({name!r}) took too long"
    assert report.ok
