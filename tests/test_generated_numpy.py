"""The generated NumPy modules: forward against a hand-written LSTM, backward against
central differences for every parameter, the input and every initial state."""
import numpy as np
import pytest
from conftest import generated, problem, size_keywords, split
from reference_lstm import lstm_forward

from symlstm.cell.parts import size_value
from symlstm.checks.gradcheck import check_grads


def total_loss(mod, dhs, dstate):
    """L = Σ_t ⟨dhs_t, h_t⟩ + Σ_s ⟨dstate_s, s_T⟩, as a function of params, the inputs and
    state0."""
    def loss(args):
        params = {k: args[k] for k in mod.PARAMS}
        state0 = {s: args[f"{s}0"] for s in mod.STATES}
        extra = {n: args[n] for n in getattr(mod, "EXTRA_INPUTS", {})}
        hs, state, _ = mod.forward(params, args["x"], state0, **extra)
        return float(np.sum(hs * dhs) + sum(np.sum(state[s] * dstate[s]) for s in mod.STATES))
    return loss


def test_backward_matches_central_differences(cell_name):
    mod = generated(cell_name)
    params, x, state0, dhs, dstate = problem(mod)
    x, extra = split(mod, x)
    _, _, cache = mod.forward(params, x, state0, **extra)
    grads = mod.backward(params, cache, dhs, dstate)
    args = {**params, "x": x, **extra, **{f"{s}0": v for s, v in state0.items()}}
    assert set(grads) == set(args)
    for k, g in grads.items():
        assert g.shape == args[k].shape and g.dtype == args[k].dtype, k
    check_grads(total_loss(mod, dhs, dstate), args, grads, rtol=1e-6)


@pytest.mark.parametrize("name,peepholes", [("lstm", False), ("peephole_lstm", True)])
def test_forward_matches_hand_written_lstm(name, peepholes):
    mod = generated(name)
    params, x, state0, _, _ = problem(mod)
    x, extra = split(mod, x)
    hs, state, _ = mod.forward(params, x, state0, **extra)
    want, h, c = lstm_forward(params, x, state0["h"], state0["c"], peepholes)
    np.testing.assert_allclose(hs, want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(state["c"], c, rtol=1e-12, atol=1e-14)


def test_zero_initial_state_and_no_final_gradient(cell_name):
    mod = generated(cell_name)
    params, x, _, dhs, _ = problem(mod)
    x, extra = split(mod, x)
    hs, state, cache = mod.forward(params, x, **extra)
    zeros = {s: np.zeros_like(v) for s, v in state.items()}
    explicit = mod.forward(params, x, zeros, **extra)[0]
    np.testing.assert_array_equal(hs, explicit)
    g1 = mod.backward(params, cache, dhs)
    g2 = mod.backward(params, cache, dhs, zeros)
    for k in g1:
        np.testing.assert_array_equal(g1[k], g2[k])


def test_float32_stays_float32(cell_name):
    mod = generated(cell_name)
    params, x, state0, dhs, dstate = problem(mod, dtype=np.float32)
    x, extra = split(mod, x)
    hs, state, cache = mod.forward(params, x, state0, **extra)
    grads = mod.backward(params, cache, dhs, dstate)
    assert hs.dtype == np.float32
    assert all(v.dtype == np.float32 for v in (*state.values(), *grads.values()))
    p64, x64, s64, d64, ds64 = problem(mod, dtype=np.float64)
    x64, extra64 = split(mod, x64)
    g64 = mod.backward(p64, mod.forward(p64, x64, s64, **extra64)[2], d64, ds64)
    for k in grads:
        np.testing.assert_allclose(grads[k], g64[k], rtol=2e-3, atol=2e-4)


@pytest.mark.parametrize("sizes", [dict(T=1, B=1, D=1, H=1), dict(T=2, B=1, D=3, H=1)])
def test_smallest_sizes(cell_name, sizes):
    mod = generated(cell_name)
    params, x, state0, dhs, dstate = problem(mod, **sizes)
    x, extra = split(mod, x)
    _, _, cache = mod.forward(params, x, state0, **extra)
    grads = mod.backward(params, cache, dhs, dstate)
    args = {**params, "x": x, **extra, **{f"{s}0": v for s, v in state0.items()}}
    check_grads(total_loss(mod, dhs, dstate), args, grads, rtol=1e-6)


def test_init_params_contract(cell_name):
    mod = generated(cell_name)
    D = 7 if mod.INPUT_SIZE == "H" else 5
    keywords, extra = size_keywords(mod, 7)
    p = mod.init_params(D, 7, rng=np.random.default_rng(1), dtype=np.float32, **keywords)
    assert tuple(p) == mod.PARAMS
    for k, v in p.items():
        assert v.shape == tuple(size_value(d, D, 7, **extra) for d in mod.SHAPES[k])
        assert v.dtype == np.float32
        assert np.all(np.abs(v) <= 1 / np.sqrt(7))
    with pytest.raises(ValueError, match="must be positive"):
        mod.init_params(0, 3, **keywords)
    for keyword in keywords:
        with pytest.raises(ValueError, match=f"{keyword} must be positive"):
            mod.init_params(3, 4, **{**keywords, keyword: 0})


def test_bad_input_is_refused_clearly(cell_name):
    mod = generated(cell_name)
    params, x, state0, dhs, _ = problem(mod)
    x, extra = split(mod, x)
    STATE = mod.STATES[0]
    PNAME = mod.PARAMS[0]    # a matrix: W_z, W_r or W
    with pytest.raises(ValueError, match=r"x must be a non-empty float array of shape \(T, B, D\)"):
        mod.forward(params, x[0], **extra)
    with pytest.raises(KeyError, match="missing"):
        mod.forward({k: v for k, v in params.items() if k != PNAME}, x, **extra)
    with pytest.raises(ValueError, match=rf"params\['{PNAME}'\] must be a float64 array of shape"):
        mod.forward({**params, PNAME: params[PNAME][:, :-1]}, x, **extra)
    with pytest.raises(ValueError, match="float64 array"):
        mod.forward({**params, PNAME: params[PNAME].astype(np.float32)}, x, **extra)
    with pytest.raises(ValueError, match=rf"state0\['{STATE}'\] must be a real array of shape"):
        mod.forward(params, x, {**state0, STATE: state0[STATE][:1]}, **extra)
    _, _, cache = mod.forward(params, x, state0, **extra)
    with pytest.raises(ValueError, match="dhs must be a real array of shape"):
        mod.backward(params, cache, dhs[:-1])


def test_more_bad_input(cell_name):
    mod = generated(cell_name)
    params, x, state0, dhs, _ = problem(mod)
    x, extra = split(mod, x)
    STATE = mod.STATES[0]
    hs, _, cache = mod.forward(params, x.tolist(), state0, **extra)        # a nested list is fine
    np.testing.assert_array_equal(hs, mod.forward(params, x, state0, **extra)[0])
    with pytest.raises(ValueError, match="non-empty float array"):
        mod.forward(params, x[:0], **extra)
    with pytest.raises(ValueError, match="non-empty float array"):
        mod.forward(params, x.astype(int), **extra)
    with pytest.raises(ValueError, match=r"must be a real array"):
        mod.forward(params, x, {**state0, STATE: state0[STATE] + 1j}, **extra)
    other = "gru" if cell_name != "gru" else "lstm"
    with pytest.raises(ValueError, match=f"a cache of '{other}'"):
        mod.backward(params, generated(other).forward(*problem(generated(other))[:2])[2], dhs)
    with pytest.raises(ValueError, match="cache must be the third value"):
        mod.backward(params, (1, 2), dhs)
    with pytest.raises(ValueError, match="dhs must be a real array"):
        mod.backward(params, cache, dhs.astype(str))
    keywords, _ = size_keywords(mod, 4)
    with pytest.raises(ValueError, match="floating type"):
        mod.init_params(4, 4, dtype=int, **keywords)
    np.testing.assert_array_equal(
        mod.init_params(4, 4, rng=7, **keywords)[mod.PARAMS[0]],
        mod.init_params(4, 4, rng=np.random.default_rng(7), **keywords)[mod.PARAMS[0]])


def test_a_wrong_shape_names_the_wrong_parameter():
    mod = generated("lstm")
    params, x, _, _, _ = problem(mod, D=3, H=4)
    with pytest.raises(ValueError, match=r"params\['W_z'\] must be a float64 array of shape \(4, 3\)"):
        mod.forward({**params, "W_z": params["W_z"].T.copy()}, x)
