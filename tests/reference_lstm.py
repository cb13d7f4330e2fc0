"""A hand-written NumPy LSTM (peepholes optional): the forward oracle, sharing no code with symlstm."""
import numpy as np


def _sig(a):
    return 1 / (1 + np.exp(-a))


def lstm_forward(P, x, h, c, peepholes=False):
    """Greff et al.'s equations, written out by hand; returns hs and the final (h, c)."""
    zero = np.zeros_like(P["b_z"])
    p = {g: P.get(f"p_{g}", zero) if peepholes else zero for g in "ifo"}
    hs = []
    for x_t in x:
        z = np.tanh(x_t @ P["W_z"].T + h @ P["R_z"].T + P["b_z"])
        i = _sig(x_t @ P["W_i"].T + h @ P["R_i"].T + p["i"] * c + P["b_i"])
        f = _sig(x_t @ P["W_f"].T + h @ P["R_f"].T + p["f"] * c + P["b_f"])
        c = z * i + c * f
        o = _sig(x_t @ P["W_o"].T + h @ P["R_o"].T + p["o"] * c + P["b_o"])
        h = np.tanh(c) * o
        hs.append(h)
    return np.stack(hs), h, c
