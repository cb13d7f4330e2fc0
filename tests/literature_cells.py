"""Cells from the literature that are larger than the shipped ones, for checks of speed and
of the generator on bigger cells: the Nested LSTM, two LSTM layers as one cell, an LSTM with
a projection of size 8."""
from symlstm import CellBuilder, matvec, sigma, tanh


def _gates(b, x, h, names, in_size="D", h_size="H", suffix=""):
    """σ/tanh pre-activations W x + R h + b for each gate name; returns their symbols."""
    out = {}
    for g in names:
        W = b.param(f"W_{g}{suffix}", "H", in_size)
        R = b.param(f"R_{g}{suffix}", "H", h_size)
        bias = b.param(f"b_{g}{suffix}", "H")
        out[g] = b.let(f"{g}bar{suffix}", matvec(W, x) + matvec(R, h) + bias)
    return out


def nested_lstm():
    """Moniz & Krueger 2018: the outer LSTM's memory update f ⊙ c + i ⊙ z is an inner LSTM
    with input i ⊙ z, hidden state f ⊙ c_{t-1} and its own memory d."""
    b = CellBuilder("nested_lstm", "Nested LSTM")
    x, h, c, d = b.input("x"), b.state("h"), b.state("c"), b.state("d")
    pre = _gates(b, x, h, "zifo")
    z, i, f, o = (b.let(n, fn(pre[n])) for n, fn in
                  (("z", tanh), ("i", sigma), ("f", sigma), ("o", sigma)))
    xin, hin = b.let("xin", i * z), b.let("hin", f * c)
    inner = _gates(b, xin, hin, "zifo", in_size="H", suffix="2")
    zn, i_n, fn_, on = (b.let(n + "2", fn(inner[n])) for n, fn in
                        (("z", tanh), ("i", sigma), ("f", sigma), ("o", sigma)))
    d_t = b.let("d", fn_ * d + i_n * zn)
    c_t = b.let("c", on * tanh(d_t))
    b.let("h", o * tanh(c_t))
    return b.build()


def stacked_lstm():
    """Two LSTM layers as one cell: the second reads the first's h1 at step t."""
    b = CellBuilder("stacked_lstm", "Two-layer LSTM")
    x = b.input("x")
    h1, c1, h, c = b.state("h1"), b.state("c1"), b.state("h"), b.state("c")
    for layer, (inp, hh, cc, in_size) in enumerate(((x, h1, c1, "D"), (None, h, c, "H")), 1):
        s = str(layer)
        if inp is None:
            inp = h1_t
        pre = _gates(b, inp, hh, "zifo", in_size=in_size, suffix=s)
        z, i, f, o = (b.let(n + s, fn(pre[n])) for n, fn in
                      (("z", tanh), ("i", sigma), ("f", sigma), ("o", sigma)))
        out_c = "c1" if layer == 1 else "c"
        out_h = "h1" if layer == 1 else "h"
        c_t = b.let(out_c, f * cc + i * z)
        h1_t = b.let(out_h, o * tanh(c_t))
    return b.build()


def projected_lstm(P: int = 8):
    """``torch.nn.LSTM(proj_size=P)``: the gates read h of size P; h = W_hr (o ⊙ tanh(c))."""
    b = CellBuilder("projected_lstm", "LSTM with a projection")
    x, h, c = b.input("x"), b.state("h", str(P)), b.state("c")
    pre = _gates(b, x, h, "zifo", h_size=str(P))
    z, i, f, o = (b.let(n, fn(pre[n])) for n, fn in
                  (("z", tanh), ("i", sigma), ("f", sigma), ("o", sigma)))
    c_t = b.let("c", f * c + i * z)
    m = b.let("m", o * tanh(c_t))
    W_hr = b.param("W_hr", str(P), "H")
    b.let("h", matvec(W_hr, m))
    return b.build()


LITERATURE = {"nested_lstm": nested_lstm, "stacked_lstm": stacked_lstm,
              "projected_lstm": projected_lstm}
