"""The worked example: its numbers are the generated code's, checked when it is generated."""
import re

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


def test_the_per_step_terms_sum_to_the_totals_and_the_checks_are_in_numbers():
    e = worked.example(net)
    for name, terms in e.terms.items():
        assert len(terms) == worked.T
        assert np.allclose(sum(terms), e.grads[name], rtol=1e-14, atol=1e-15)
    fd = e.difference
    assert abs(fd["estimate"] - fd["gradient"]) < 1e-8 * max(1, abs(fd["gradient"]))
    assert e.update["after"] < e.update["before"]
    assert set(map(str, e.initial.values)) == {"δh[t-1]", "δc[t-1]"}


def test_the_document_explains_its_zeros_and_reads_no_step_after_the_last():
    from symlstm.documents.document import worked_document
    e = worked.example(net)
    tex = worked_document(e)
    assert [(str(lhs), list(map(str, why))) for lhs, why in e.zeros[1]][0] == \
        ("δf[t]", ["c[t-1]"])                  # c_0 = 0, found from the numbers
    assert r"$\delta f_{1} = 0$ because $c_{0} = 0$" in tex
    assert "_{4}" not in tex                   # no f_4, δc_4: step T + 1 does not exist
    assert not re.search(r"= 1 = 1\b", tex)
    assert r"\delta h_{0}" in tex and r"\delta c_{0}" in tex
    assert "at the last step only" in tex      # the loss compared with the tutorial's
    assert r"keep" in tex and r"$\delta h_{3} = \Delta h_{3}$." in tex   # what step 3 keeps
