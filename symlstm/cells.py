"""The cells symlstm ships, each a few lines of equations.  ``CELLS`` lists them all."""
from __future__ import annotations

from sympy import tanh

from .cell import Cell, CellBuilder
from .ops import matvec, sigma

GATES = ("z", "i", "f", "o")   # block input, input gate, forget gate, output gate


def _lstm(name: str, title: str, about: str, peepholes: bool) -> Cell:
    b = CellBuilder(name, title, about)
    x, h, c = b.input("x"), b.state("h"), b.state("c")
    W = {g: b.param(f"W_{g}", "H", "D") for g in GATES}
    R = {g: b.param(f"R_{g}", "H", "H") for g in GATES}
    bias = {g: b.param(f"b_{g}", "H") for g in GATES}
    p = {g: b.param(f"p_{g}", "H") for g in "ifo"} if peepholes else {}

    def pre(g, cell_state=None):
        peep = p[g] * cell_state if peepholes and cell_state is not None else 0
        return matvec(W[g], x) + matvec(R[g], h) + peep + bias[g]

    z = b.let("z", tanh(b.let("zbar", pre("z"))))
    i = b.let("i", sigma(b.let("ibar", pre("i", c))))
    f = b.let("f", sigma(b.let("fbar", pre("f", c))))
    c_t = b.let("c", z * i + c * f)
    o = b.let("o", sigma(b.let("obar", pre("o", c_t))))
    b.let("h", tanh(c_t) * o)
    return b.build()


def lstm() -> Cell:
    """The standard LSTM with biases and no peepholes: the function of ``torch.nn.LSTM``."""
    return _lstm("lstm", "LSTM", "The standard LSTM with biases and no peepholes, the cell of "
                 "PyTorch's LSTM (whose two bias vectors per gate add up to one here).", False)


def peephole_lstm() -> Cell:
    """The LSTM of Greff et al., "LSTM: A Search Space Odyssey", with peepholes p_i, p_f, p_o."""
    return _lstm("peephole_lstm", "Peephole LSTM",
                 "The vanilla LSTM of Greff et al., LSTM: A Search Space Odyssey: the input and "
                 "forget gates look at the previous cell state $c_{t-1}$ through the peepholes "
                 "$p_i$ and $p_f$, and the output gate looks at the new cell state $c_t$ "
                 "through $p_o$.",
                 True)


#: Every cell symlstm ships, by name.
CELLS = {"lstm": lstm, "peephole_lstm": peephole_lstm}
