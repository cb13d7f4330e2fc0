"""The LSTM rows of the benchmark (benchmarks/contenders.py, targets.py): the contender that
times only the Numba module's two compiled passes runs the code the module runs, and a
missed Numba target says what the passes and the Python around them take."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
pytest.importorskip("numba")
import contenders  # noqa: E402
import targets  # noqa: E402


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_compiled_passes_are_the_modules_own(dtype):
    """The builder asserts that the forward pass hands back what forward() caches; the
    backward pass then returns the module's weight gradient, block by block."""
    prob = contenders.make_problem((4, 3, 5, 6), dtype)
    step, to_grads = contenders.build_numba_lstm_passes(prob)
    assert to_grads is None   # not checked apart: numba_lstm, checked, runs the same passes
    dstack_x = step()[0]
    module = contenders.numba_lstm
    params = prob.lstm_params()
    _, _, cache = module.forward(params, prob.x, {"h": prob.h0, "c": prob.c0})
    grads = module.backward(params, cache, prob.dhs)
    want = np.concatenate([grads[f"W_{g}"] for g in "zifo"])
    np.testing.assert_allclose(dstack_x, want, rtol=1e-5 if dtype == "float32" else 1e-12)


def test_a_missed_numba_lstm_target_names_the_python_around_the_passes():
    times = {n: {"median_s": s} for n, s in (("numba_lstm", 200e-6), ("numba_lstm_passes", 120e-6),
                                               ("torch_lstm", 1000e-6), ("gemm_floor", 50e-6))}
    c = {"shape": [20, 1, 32, 32], "dtype": "float32", "times": times}
    text = targets.bound(c, "numba_lstm", "torch_lstm")
    assert "the two compiled passes alone (numba_lstm_passes) take 60%" in text
    assert "the Python around them 80 us" in text
    assert "the compiled passes alone are 0.120x it" in text


def test_passes_timed_slower_than_the_step_leave_no_negative_time():
    times = {n: {"median_s": s} for n, s in (("numba_lstm", 0.687), ("numba_lstm_passes", 0.689),
                                               ("torch_lstm", 0.66), ("gemm_floor", 0.58))}
    c = {"shape": [100, 64, 256, 256], "dtype": "float32", "times": times}
    text = targets.bound(c, "numba_lstm", "torch_lstm")
    assert "the Python around them less than the timings' spread" in text and " -" not in text
