"""Clipping by global norm, truncated BPTT and the training example."""
import numpy as np
import pytest

from symlstm.generated import lstm
from symlstm.generated import lstm_classifier as net
from symlstm.network import training


def test_clipping_scales_every_gradient_by_one_factor():
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]]), "x": np.array([100.0])}
    clipped, norm = training.clip_by_global_norm(grads, 1.0, names=["a", "b"])
    assert norm == 5.0
    assert np.allclose(clipped["a"], [0.6, 0.0]) and np.allclose(clipped["b"], [[0.8]])
    assert clipped["x"] is grads["x"]                       # not among the names
    same, _ = training.clip_by_global_norm(grads, 10.0, names=["a", "b"])
    assert np.array_equal(same["a"], grads["a"])             # short enough: untouched
    with pytest.raises(ValueError, match="max_norm must be positive"):
        training.clip_by_global_norm(grads, 0)


def _problem(T=8):
    rng = np.random.default_rng(0)
    params = net.init_params(3, 4, 5, rng=rng)
    return params, rng.standard_normal((T, 2, 3)), rng.integers(0, 5, (T, 2))


def test_one_chunk_is_full_backpropagation():
    params, x, y = _problem()
    loss, grads = net.loss_and_grads(params, x, y)
    tloss, tgrads, _ = training.truncated_bptt(net, params, x, y, chunk=len(x))
    assert tloss == loss and all(np.array_equal(tgrads[k], grads[k]) for k in net.PARAMS)


def test_chunks_carry_the_state_and_stop_the_gradient():
    params, x, y = _problem()
    loss, grads, state = training.truncated_bptt(net, params, x, y, chunk=3)
    want_loss, want, s = 0.0, {k: 0 for k in net.PARAMS}, None
    for a in (0, 3, 6):                       # by hand: each chunk from the last one's state
        l, g = net.loss_and_grads(params, x[a:a + 3], y[a:a + 3], s)
        _, s, _ = lstm.forward({k: params[k] for k in lstm.PARAMS}, x[a:a + 3], s)
        want_loss += l
        want = {k: want[k] + g[k] for k in net.PARAMS}
    assert np.isclose(loss, want_loss, rtol=1e-14)
    assert all(np.allclose(grads[k], want[k], rtol=1e-13, atol=0) for k in net.PARAMS)
    assert all(np.allclose(state[k], s[k]) for k in s)
    full, _ = net.loss_and_grads(params, x, y)
    assert np.isclose(loss, full, rtol=1e-14)             # the forward pass is not truncated
    _, exact = net.loss_and_grads(params, x, y)
    assert not np.allclose(grads["R_f"], exact["R_f"])    # but the gradient is


def test_the_example_learns(tmp_path, capsys):
    assert training.main(["--steps", "120", "--out", str(tmp_path / "loss.png")]) == 0
    text = capsys.readouterr().out
    first, last = (float(v) for v in text.split("loss per character ")[-1].split(" (")[0]
                   .split(" -> "))
    assert last < 0.6 * first
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert "sample: 'Beautiful is" in text


def test_the_text_comes_from_the_standard_library():
    assert training.zen().startswith("The Zen of Python, by Tim Peters")
