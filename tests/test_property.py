"""Property test: every generated module's gradients, at random sizes down to T=B=D=H=1."""
import numpy as np
import pytest
from conftest import generated, problem, split
from test_generated_numpy import total_loss

import symlstm
from symlstm.checks.gradcheck import check_grads


hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings
from hypothesis import strategies as st  # noqa: E402


sizes = st.fixed_dictionaries({k: st.integers(1, 4) for k in ("T", "B", "D", "H")})


@pytest.mark.parametrize("name", list(symlstm.CELLS))
@settings(max_examples=8, deadline=None, derandomize=True)
@given(sizes=sizes, seed=st.integers(0, 2**16))
def test_gradients_at_random_sizes(name, sizes, seed):
    mod = generated(name)
    params, x, state0, dhs, dstate = problem(mod, seed=seed, **sizes)
    x, extra = split(mod, x)
    hs, state, cache = mod.forward(params, x, state0, **extra)
    assert hs.shape == (sizes["T"], sizes["B"], dhs.shape[2])
    grads = mod.backward(params, cache, dhs, dstate)
    args = {**params, "x": x, **extra, **{f"{s}0": v for s, v in state0.items()}}
    assert set(grads) == set(args)
    check_grads(total_loss(mod, dhs, dstate), args, grads, rtol=1e-6,
                rng=np.random.default_rng(seed), directions=2)
