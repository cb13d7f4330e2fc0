"""What the generated modules remember between calls (the checks of the parameters' types,
shapes and dtypes, ``_CHECKED``) never hides a check or a changed value: a parameter changed
in place changes the result, bad input after good input is refused as before, and input that
is not an array yet is converted on every call."""
import numpy as np
import pytest

from symlstm.generated import lstm as numpy_lstm

T, B, D, H = 4, 3, 5, 6


def problem(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    params = numpy_lstm.init_params(D, H, rng=rng, dtype=dtype)
    x = rng.standard_normal((T, B, D)).astype(dtype)
    dhs = rng.standard_normal((T, B, H)).astype(dtype)
    return params, x, dhs


def modules():
    out = [numpy_lstm]
    try:
        from symlstm.generated.numba import lstm as numba_lstm
    except ImportError:   # numba is an optional extra
        return out
    return out + [numba_lstm]


def step(mod, params, x, dhs):
    hs, _, cache = mod.forward(params, x)
    return hs, mod.backward(params, cache, dhs)


@pytest.mark.parametrize("mod", modules(), ids=lambda m: m.__name__)
def test_a_parameter_changed_in_place_changes_the_result(mod):
    params, x, dhs = problem()
    hs_before, grads_before = step(mod, params, x, dhs)
    params["R_f"][1, 2] += 0.5          # in place: the same arrays, the same dict
    params["b_o"][:] *= -1
    x[1, 0, 0] += 1.0
    hs, grads = step(mod, params, x, dhs)
    want_hs, want = step(numpy_lstm, {k: v.copy() for k, v in params.items()}, x.copy(), dhs)
    assert np.abs(hs - hs_before).max() > 1e-3
    assert np.abs(hs - want_hs).max() <= 1e-12
    for k in want:
        assert np.abs(grads[k] - want[k]).max() <= 1e-12, k
    assert any(np.abs(grads[k] - grads_before[k]).max() > 1e-6 for k in want)


@pytest.mark.parametrize("mod", modules(), ids=lambda m: m.__name__)
def test_bad_input_after_good_input_is_refused_as_before(mod):
    params, x, dhs = problem()
    step(mod, params, x, dhs)
    with pytest.raises(ValueError, match=r"params\['R_z'\] must be a float64 array of shape "
                                         r"\(6, 6\)"):
        mod.forward({**params, "R_z": params["R_z"][:, :-1]}, x)
    with pytest.raises(ValueError, match=r"params\['b_i'\] must be a float64 array"):
        mod.forward({**params, "b_i": params["b_i"].astype(np.float32)}, x)
    with pytest.raises(ValueError, match=r"params\['W_o'\] must be a float64 array"):
        mod.forward({**params, "W_o": params["W_o"].tolist()}, x)
    with pytest.raises(KeyError, match="params must have exactly the keys"):
        mod.forward({**params, "extra": params["b_i"]}, x)
    with pytest.raises(ValueError, match="must be a non-empty float array"):
        mod.forward(params, x[:, :, :, None])
    _, _, cache = mod.forward(params, x)
    with pytest.raises(ValueError, match=r"params\['W_z'\] must be a float64 array"):
        mod.backward({**params, "W_z": params["W_z"][:-1]}, cache, dhs)
    with pytest.raises(ValueError, match=r"params\['W_z'\] must be a float64 array"):
        mod.forward({**params, "W_z": params["W_z"][:-1]}, x)   # and again: never remembered


@pytest.mark.parametrize("mod", modules(), ids=lambda m: m.__name__)
def test_input_that_is_not_an_array_is_converted_on_every_call(mod):
    params, x, dhs = problem()
    want, _ = step(mod, params, x, dhs)
    for _ in range(2):
        hs, _, _ = mod.forward(params, x.tolist())
        assert np.abs(hs - want).max() <= 1e-12
    params32, x32, _ = problem(np.float32)
    hs, _, _ = mod.forward(params32, x32)
    assert hs.dtype == np.float32


def test_what_is_remembered_stays_small():
    params, x, _ = problem()
    for t in range(1, 80):
        numpy_lstm.forward(params, np.zeros((t, 1, D)))
    assert 0 < len(numpy_lstm._CHECKED) <= 64


def test_the_numba_scratch_is_reused_and_never_shared():
    """The Numba passes' temporaries live in one buffer per thread and dtype, reused between
    calls: nothing a call returns or caches lies in it, so an old cache still gives its own
    gradients after other calls, and threads running at once each get their own."""
    numba_lstm = pytest.importorskip("symlstm.generated.numba.lstm")
    params, x, dhs = problem()
    want_hs, want = step(numpy_lstm, params, x, dhs)
    hs, _, cache = numba_lstm.forward(params, x)
    buffer = numba_lstm._scratch(1, np.dtype(np.float64))
    longer = buffer.size // (B * 4 * H) + 1   # another call, longer: the buffer grows, then is kept
    other_x = np.random.default_rng(1).standard_normal((longer, B, D))
    other_hs, _, other_cache = numba_lstm.forward(params, other_x)
    grown = numba_lstm._scratch(1, np.dtype(np.float64))
    assert grown is not buffer and grown.size >= longer * B * 4 * H
    numba_lstm.backward(params, other_cache, np.ones_like(other_hs))
    assert numba_lstm._scratch(1, np.dtype(np.float64)) is grown   # reused, not allocated again
    for out in (hs, *cache.values()):
        assert not isinstance(out, np.ndarray) or not np.shares_memory(out, grown)
    got = numba_lstm.backward(params, cache, dhs)   # the first cache, after the other calls
    np.testing.assert_allclose(hs, want_hs, rtol=0, atol=1e-12)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=0, atol=1e-12)
        assert not np.shares_memory(got[k], grown)


def test_threads_running_at_once_get_their_own_scratch():
    import threading
    numba_lstm = pytest.importorskip("symlstm.generated.numba.lstm")
    problems = [problem(seed=s) for s in range(4)]
    want = [step(numpy_lstm, *p) for p in problems]
    step(numba_lstm, *problems[0])   # compiled (or loaded) before the threads start
    got, buffers = [None] * 4, [None] * 4

    def run(k):
        for _ in range(20):   # long enough for the threads to overlap
            got[k] = step(numba_lstm, *problems[k])
        buffers[k] = numba_lstm._scratch(1, np.dtype(np.float64))

    threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(b) for b in buffers}) == 4
    for (want_hs, want_grads), (hs, grads) in zip(want, got):
        np.testing.assert_allclose(hs, want_hs, rtol=0, atol=1e-12)
        for k in want_grads:
            np.testing.assert_allclose(grads[k], want_grads[k], rtol=0, atol=1e-12)
