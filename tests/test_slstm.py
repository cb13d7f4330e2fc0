"""slstm, xLSTM's sLSTM: every generated backend (NumPy, Numba, PyTorch) against torch autograd
of the paper's equations written here once more, with large pre-activations where only the
stabiliser m keeps the exponentials finite; the gradient through m, which vanishes in exact
arithmetic for a loss of h alone; and verify()."""
import importlib
import time

import numpy as np
import pytest

import symlstm

torch = pytest.importorskip("torch", reason="torch is installed by the README's test command")
pytest.importorskip("numba", reason="numba is installed by the README's test command")

T, B, D, H, NH = 6, 3, 4, 8, 2
STATES = "hcnm"


def _step(p, x_t, s, hold_m=False):
    """One sLSTM step (Beck et al. 2024, vanilla), R_g as full block-diagonal H × H matrices.
    ``hold_m`` takes the stabiliser as a constant, which changes no value."""
    pre = {g: x_t @ p[f"W_{g}"].T + s["h"] @ torch.block_diag(*p[f"R_{g}"]).T + p[f"b_{g}"]
           for g in "zifo"}
    log_f = torch.nn.functional.logsigmoid(pre["f"])
    m = torch.maximum(log_f + s["m"], pre["i"])
    m_gate = m.detach() if hold_m else m
    m_prev = s["m"].detach() if hold_m else s["m"]
    i = torch.exp(pre["i"] - m_gate)
    f = torch.exp(log_f + m_prev - m_gate)
    c = f * s["c"] + i * torch.tanh(pre["z"])
    n = f * s["n"] + i
    return {"h": torch.sigmoid(pre["o"]) * c / n, "c": c, "n": n, "m": m}


def _autograd(params, x, state0, dhs, dstate, hold_m=False):
    """Outputs and the gradient of Σ dhs ⊙ hs + Σ_s dstate_s ⊙ s_T, by torch autograd."""
    leaves = {k: torch.tensor(v, requires_grad=True) for k, v in
              [*params.items(), ("x", x), *((f"{s}0", state0[s]) for s in STATES)]}
    state, hs = {s: leaves[f"{s}0"] for s in STATES}, []
    for x_t in leaves["x"]:
        state = _step(leaves, x_t, state, hold_m)
        hs.append(state["h"])
    hs = torch.stack(hs)
    loss = (hs * torch.from_numpy(dhs)).sum() + sum(
        (state[s] * torch.from_numpy(dstate[s])).sum() for s in STATES)
    loss.backward()
    return hs.detach().numpy(), {k: v.grad.numpy() for k, v in leaves.items()}


def _numpy_like(mod, params, x, state0, dhs, dstate):
    hs, _, cache = mod.forward(params, x, state0)
    return hs, mod.backward(params, cache, dhs, dstate)


def _torch(mod, params, x, state0, dhs, dstate):
    leaves = {k: torch.tensor(v, requires_grad=True) for k, v in
              [*params.items(), ("x", x), *((f"{s}0", state0[s]) for s in STATES)]}
    hs, state = mod.forward({k: leaves[k] for k in params}, leaves["x"],
                            {s: leaves[f"{s}0"] for s in STATES})
    loss = (hs * torch.from_numpy(dhs)).sum() + sum(
        (state[s] * torch.from_numpy(dstate[s])).sum() for s in STATES)
    loss.backward()
    return hs.detach().numpy(), {k: v.grad.numpy() for k, v in leaves.items()}


BACKENDS = {"numpy": ("symlstm.generated.slstm", _numpy_like),
            "numba": ("symlstm.generated.numba.slstm", _numpy_like),
            "torch": ("symlstm.generated.torch.slstm", _torch)}


def _problem(seed, scale=1.0, given=False, final_states="hcnm"):
    """Parameters (times ``scale``), inputs, initial states (zero, or given: n0 > 0) and loss
    weights, the final states' only for ``final_states``."""
    rng = np.random.default_rng(seed)
    mod = importlib.import_module("symlstm.generated.slstm")
    params = {k: scale * 2 * v for k, v in mod.init_params(D, H, num_heads=NH, rng=rng).items()}
    x = rng.standard_normal((T, B, D))
    state0 = {s: np.zeros((B, H)) for s in STATES}
    if given:
        state0 = {"h": rng.standard_normal((B, H)), "c": rng.standard_normal((B, H)),
                  "n": rng.uniform(0.5, 2, (B, H)), "m": rng.standard_normal((B, H))}
    dhs = rng.standard_normal((T, B, H))
    dstate = {s: rng.standard_normal((B, H)) * (s in final_states) for s in STATES}
    return params, x, state0, dhs, dstate


def _close(got, want, tol, what):
    """Each gradient within ``tol`` of its largest entry; one that is zero in exact arithmetic
    (m0's, where m_1 = ī_1) within ``tol`` of the largest of all."""
    typical = max(np.abs(w).max() for w in want.values())
    for k in want:
        scale = max(np.abs(want[k]).max(), 1e-6 * typical)
        err = np.abs(np.asarray(got[k]) - want[k]).max() / scale
        assert err <= tol, f"{what} grad {k}: off by {err:.1e} of {scale:.1e}"


def test_slstm_is_shipped_with_the_issues_parameters():
    cell = symlstm.CELLS["slstm"]()
    assert list(cell.states) == ["h", "c", "n", "m"]
    shapes = {p.name: tuple(p.shape) for p in cell.params}
    assert shapes == {**{f"W_{g}": ("H", "D") for g in "zifo"},
                      **{f"R_{g}": ("NH", "H/NH", "H/NH") for g in "zifo"},
                      **{f"b_{g}": ("H",) for g in "zifo"}}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", ["zero states", "given states", "large pre-activations"])
def test_every_backend_matches_autograd_of_the_equations(case, backend):
    params, x, state0, dhs, dstate = _problem(
        seed=3, given=case == "given states", scale=25.0 if case.startswith("large") else 1.0)
    if case.startswith("large"):
        params["b_i"] = params["b_i"] + 800.0     # e^ī overflows: only m keeps i finite
    want_hs, want = _autograd(params, x, state0, dhs, dstate)
    module, run = BACKENDS[backend]
    hs, grads = run(importlib.import_module(module), params, x, state0, dhs, dstate)
    assert set(grads) == set(want) and np.isfinite(hs).all()
    np.testing.assert_allclose(hs, want_hs, rtol=0, atol=1e-12 * np.abs(want_hs).max())
    _close(grads, want, 1e-10, f"{backend} {case}")


def test_the_stabiliser_leaves_h_unchanged():
    """From zero states, shifting every ī by K shifts m by K and changes no h: the unshifted
    problem and one shifted by 700 (e^700 is near float64's largest) give the same outputs
    and gradients (but those of c0, n0 and m0, whose effect the shift scales)."""
    mod = importlib.import_module("symlstm.generated.slstm")
    params, x, state0, dhs, dstate = _problem(seed=5, final_states="h")
    hs, grads = _numpy_like(mod, params, x, state0, dhs, dstate)
    shifted = {**params, "b_i": params["b_i"] + 700.0}
    hs_k, grads_k = _numpy_like(mod, shifted, x, state0, dhs, dstate)
    np.testing.assert_allclose(hs_k, hs, rtol=0, atol=1e-12 * np.abs(hs).max())
    _close(grads_k, {k: v for k, v in grads.items() if k not in ("c0", "n0", "m0")}, 1e-9,
           "shifted")


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_gradient_through_m_is_at_rounding_level_for_a_loss_of_h(backend):
    """With the loss reading h alone, the generated backward (which computes δm as derived)
    agrees with autograd that holds m constant, so δm's share of every gradient is rounding.
    The loss does not change when m0 grows by ε while c0 and n0 shrink by e^-ε, so the
    gradient of m0 is c0 ⊙ δc0 + n0 ⊙ δn0 (the δm of the step before the first).  A loss that reads the final c does depend on m's
    path, and there the two autograd results differ: the share is not dropped."""
    params, x, state0, dhs, dstate = _problem(seed=7, given=True, final_states="h")
    _, full = _autograd(params, x, state0, dhs, dstate)
    _, held = _autograd(params, x, state0, dhs, dstate, hold_m=True)
    module, run = BACKENDS[backend]
    _, grads = run(importlib.import_module(module), params, x, state0, dhs, dstate)
    _close(full, {k: v for k, v in held.items() if k != "m0"}, 1e-12, "autograd, m held")
    _close(grads, {k: v for k, v in held.items() if k != "m0"}, 1e-12, f"{backend}, m held")
    orbit = state0["c"] * grads["c0"] + state0["n"] * grads["n0"]
    assert np.abs(orbit).max() > 0.1
    assert np.abs(grads["m0"] - orbit).max() <= 1e-12 * np.abs(orbit).max()
    _, x, state0, dhs, dstate = _problem(seed=7, given=True, final_states="hc")
    _, full = _autograd(params, x, state0, dhs, dstate)
    _, held = _autograd(params, x, state0, dhs, dstate, hold_m=True)
    assert max(np.abs(full[k] - held[k]).max() for k in params) > 1e-3


def test_verify_passes_within_30_seconds():
    start = time.process_time()
    report = symlstm.verify("slstm")
    assert time.process_time() - start <= 30, "verify('slstm') took too long"
    assert report.ok
