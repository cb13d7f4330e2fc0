import numpy as np
import pytest

from symlstm.checks.gradcheck import GradientMismatch, check_grads


def loss(a):
    return float(np.sum(np.tanh(a["w"]) * a["v"]))


def true_grads(a):
    return {"w": (1 - np.tanh(a["w"]) ** 2) * a["v"], "v": np.tanh(a["w"])}


ARGS = {"w": np.linspace(-1, 1, 6).reshape(2, 3), "v": np.arange(6.0).reshape(2, 3)}


def test_accepts_the_true_gradient():
    check_grads(loss, ARGS, true_grads(ARGS))


def test_rejects_a_gradient_with_one_wrong_element():
    g = true_grads(ARGS)
    g["w"][1, 2] *= 1.01
    with pytest.raises(GradientMismatch, match="w: relative error"):
        check_grads(loss, ARGS, g)
