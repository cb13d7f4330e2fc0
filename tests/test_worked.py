"""The worked example: its numbers are the generated code's, checked when it is generated."""
import numpy as np
import pytest

from symlstm.documents import worked
from symlstm.generated import lstm_concat_regression as net


def test_every_step_is_printed_and_sums_to_the_generated_gradients():
    e = worked.example(net)
    assert [s.t for s in e.forward] == [1, 2, 3] and [s.t for s in e.backward] == [3, 2, 1]
    loss, grads = net.loss_and_grads(e.params, e.x, e.y)
    assert loss == e.loss
    for name, value in e.grads.items():
        assert np.allclose(value, grads[name], rtol=1e-12, atol=1e-13)
    first = e.backward[0].values          # t = T: nothing from step T + 1
    assert [str(s) for s in first][:3] == ["δell[t]", "δyhat[t]", "Δh[t]"]
    assert e.central < 1e-6


def test_the_inputs_have_one_decimal():
    e = worked.example(net)
    for a in (*e.params.values(), e.x, e.y):
        assert np.allclose(np.round(a, 1), a)


def test_a_wrong_module_is_caught(monkeypatch):
    class Off:
        init_params = staticmethod(net.init_params)

        @staticmethod
        def loss_and_grads(params, x, y):
            loss, grads = net.loss_and_grads(params, x, y)
            return loss, {**grads, "W_f": grads["W_f"] * 1.001}
    with pytest.raises(AssertionError, match="δW_f differs from the generated code's"):
        worked.example(Off)
