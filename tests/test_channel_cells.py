"""The grammar of matrices per channel, proven on random cells (``headcellgen.channel_cells``):
an H × N state made by outer products u bᵀ of an H-vector and an N-vector, decayed by
H-vectors broadcast over its rows and by exp(Δ ⊙ A) of a parameter ("H", "N") used
element-wise, read by matvec(S, c) or through Sᵀ u and a matrix ("H", "N").  Each drawn
cell's derivation, evaluated as written, is held against brute force of the unrolled loss at
H = 2 and 3 channels of N = 2 states, with the final states in the loss, and its generated
NumPy and torch modules against the derivation."""
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from cellgen import note_replay, slow  # noqa: E402
from headcellgen import channel_cells  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from test_channel_states import draw, rel  # noqa: E402
from test_head_cells import module  # noqa: E402

import symlstm  # noqa: E402
from symlstm.backends.code import numpy_module  # noqa: E402
from symlstm.backends.torch import torch_module  # noqa: E402
from symlstm.checks import bruteforce, evaluated  # noqa: E402

torch = pytest.importorskip("torch", reason="torch is installed by the README's test command")


def check_modules(mods, params, x, state0, dhs, dstate, grads, H):
    mod, torch_mod = mods
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        _, _, cache = mod.forward(params, x, state0)
        mine = mod.backward(params, cache, dhs, dstate)
    for key, g in grads.items():
        assert rel(mine[key], g) < 1e-10, ("numpy", H, key)
    P = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    X = torch.tensor(x, requires_grad=True)
    S0 = {s: torch.tensor(v, requires_grad=True) for s, v in state0.items()}
    hs, final = torch_mod.forward(P, X, S0)
    loss = (hs * torch.tensor(dhs)).sum() + sum(
        (final[s] * torch.tensor(v)).sum() for s, v in dstate.items())
    loss.backward()
    got = {**{k: v.grad for k, v in P.items()}, "x": X.grad,
           **{f"{s}0": v.grad for s, v in S0.items()}}
    for key, g in grads.items():
        assert rel(got[key].numpy(), g) < 1e-10, ("torch", H, key)


def check_cell(cell):
    d = symlstm.derive(cell)
    mods = module(d, numpy_module), module(d, torch_module)
    for H in (2, 3):
        params, x, state0, dhs, dstate, sizes = draw(cell, H, 2, seed=H)
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            grads, outputs, final = evaluated.gradients(d, params, x, state0, dhs, dstate,
                                                        **sizes)
        ref = bruteforce.unroll(cell, params, x, state0, dhs, dstate, digits=60, **sizes)
        assert rel(outputs, ref.outputs) < 1e-12
        for s in cell.states:
            assert rel(final[s], ref.final[s]) < 1e-12, s
        assert set(grads) == set(ref.grads)
        for key, g in ref.grads.items():
            assert rel(grads[key], g) < 1e-9, (H, key, [str(eq) for eq in cell.equations])
        check_modules(mods, params, x, state0, dhs, dstate, grads, H)


@settings(max_examples=25, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(channel_cells())
def test_random_cells_with_matrices_per_channel_get_correct_gradients(cell):
    check_cell(cell)


@pytest.mark.slow
@slow(300)
@given(channel_cells())
def test_many_random_cells_with_matrices_per_channel(cell):
    note_replay("test_many_random_cells_with_matrices_per_channel")
    check_cell(cell)


@settings(max_examples=3, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(channel_cells())
def test_random_cells_with_matrices_per_channel_get_the_same_numba_module(cell):
    """The Numba module (``symlstm.backends.numba_channels``) within 1e-12 of the NumPy one."""
    pytest.importorskip("numba")
    from symlstm.backends.numba import numba_module
    d = symlstm.derive(cell)
    mine, ref = module(d, numba_module), module(d, numpy_module)
    params, x, state0, dhs, dstate, _ = draw(cell, 3, 2, seed=4)
    hs, state, cache = mine.forward(params, x, state0)
    grads = mine.backward(params, cache, dhs, dstate)
    ref_hs, ref_state, ref_cache = ref.forward(params, x, state0)
    assert rel(hs, ref_hs) < 1e-12
    for key, g in ref.backward(params, ref_cache, dhs, dstate).items():
        assert rel(grads[key], g) < 1e-12, key


def test_s6_numba_module_takes_the_input_through_gemms_around_the_loop():
    """The products W x are one GEMM over all steps before the compiled loops and the
    gradients through them one GEMM each after: no loop reads a parameter matrix that
    multiplies the input.  A = -exp(A_log) is computed once before the forward loop, and
    exp(A_log) once before the backward one; exp(Δ A), read by three backward statements,
    once per backward step."""
    pytest.importorskip("numba")
    from symlstm.backends.numba import numba_module
    source = numba_module(symlstm.derive("s6"))
    fwd = source[source.index("def _forward_steps"):source.index("def _given")]
    bwd = source[source.index("def _backward_steps"):source.index("def _backward(")]
    for W in ("W_dt", "W_B", "W_C"):
        assert f"P_{W}[" not in fwd + bwd and f'a["X_{W}"] = _matmul(X, params' in source, W
        assert f'-1), params["{W}"], DX' in source, W   # δx through W, into DX
    assert fwd.index("math.exp(P_A_log") < fwd.index("for t in range(T)")
    assert bwd.index("math.exp(P_A_log") < bwd.index("for t in range(T - 1")
    assert fwd.count("math.exp(") == 2 and bwd.count("math.exp(") == 2
