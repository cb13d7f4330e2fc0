"""The cells symlstm ships, each a few lines of equations.  ``CELLS`` lists them all."""
from __future__ import annotations

from sympy import tanh

from .model import Cell, CellBuilder
from .ops import concat, matvec, sigma, transpose
from .parts import Latex


GREFF = 'Greff et al., "LSTM: A Search Space Odyssey"'


def _lstm(name: str, title: str, about: str, *, peepholes=True, input_gate=True,
          forget_gate="own", output_gate=True, input_act=True, output_act=True,
          full_recurrence=False) -> Cell:
    """The vanilla LSTM of Greff et al. and each of their one-change variants.

    ``forget_gate`` is "own" (its own weights), "none" (f = 1) or "coupled" (f = 1 - i).
    """
    gates = [g for g, on in (("i", input_gate), ("f", forget_gate == "own"),
                             ("o", output_gate)) if on]
    b = CellBuilder(name, title, Latex(about))
    x, h, c = b.input("x"), b.state("h"), b.state("c")
    prev = {g: b.state(g) for g in gates} if full_recurrence else {}
    W = {g: b.param(f"W_{g}", "H", "D") for g in ("z", *gates)}
    R = {g: b.param(f"R_{g}", "H", "H") for g in ("z", *gates)}
    bias = {g: b.param(f"b_{g}", "H") for g in ("z", *gates)}
    p = {g: b.param(f"p_{g}", "H") for g in gates} if peepholes else {}
    G = {(a, g): b.param(f"R_{a}{g}", "H", "H") for g in gates for a in prev}

    def pre(g, cell_state=None):
        out = matvec(W[g], x) + matvec(R[g], h) + bias[g]
        out += sum((matvec(G[a, g], prev[a]) for a in prev if g in gates), 0)
        return out + (p[g] * cell_state if g in p else 0)

    z = b.let("z", tanh(b.let("zbar", pre("z"))) if input_act else pre("z"))
    i = b.let("i", sigma(b.let("ibar", pre("i", c)))) if input_gate else 1
    if forget_gate == "own":
        f = b.let("f", sigma(b.let("fbar", pre("f", c))))
    else:
        f = 1 - i if forget_gate == "coupled" else 1
    c_t = b.let("c", z * i + c * f)
    o = b.let("o", sigma(b.let("obar", pre("o", c_t)))) if output_gate else 1
    b.let("h", (tanh(c_t) if output_act else c_t) * o)
    return b.build()


def lstm() -> Cell:
    """The standard LSTM with biases and no peepholes: the function of ``torch.nn.LSTM``.

    It is also the NP (no peepholes) variant of Greff et al."""
    return _lstm("lstm", "LSTM", "The standard LSTM with biases and no peepholes, the cell of "
                 "PyTorch's LSTM (whose two bias vectors per gate add up to one here). It is "
                 f"also the NP (no peepholes) variant of {GREFF}.", peepholes=False)


def peephole_lstm() -> Cell:
    """The LSTM of Greff et al., "LSTM: A Search Space Odyssey", with peepholes p_i, p_f, p_o."""
    return _lstm("peephole_lstm", "Peephole LSTM",
                 f"The vanilla LSTM of {GREFF}: the input and "
                 "forget gates look at the previous cell state $c_{t-1}$ through the peepholes "
                 "$p_i$ and $p_f$, and the output gate looks at the new cell state $c_t$ "
                 "through $p_o$.")


def _variant(code: str, what: str, **change):
    def make() -> Cell:
        return _lstm(f"lstm_{code.lower()}", f"{code} LSTM",
                     f"The {code} variant of {GREFF}: the vanilla peephole LSTM with {what}.",
                     **change)
    make.__name__ = f"lstm_{code.lower()}"
    make.__doc__ = f"Greff et al.'s {code} variant: {what}."
    return make


lstm_nig = _variant("NIG", "no input gate ($i_t = 1$)", input_gate=False)
lstm_nfg = _variant("NFG", "no forget gate ($f_t = 1$)", forget_gate="none")
lstm_nog = _variant("NOG", "no output gate ($o_t = 1$)", output_gate=False)
lstm_niaf = _variant("NIAF", "no input activation function ($z_t = \\bar{z}_t$)",
                     input_act=False)
lstm_noaf = _variant("NOAF", "no output activation function ($h_t = c_t \\odot o_t$)",
                     output_act=False)
lstm_cifg = _variant("CIFG", "coupled input and forget gates ($f_t = 1 - i_t$)",
                     forget_gate="coupled")
lstm_fgr = _variant(
    "FGR", "full gate recurrence: every gate's pre-activation also receives the three gates "
    "of step $t-1$ through $R_{ig}$, $R_{fg}$, $R_{og}$ ($R_{xy}$ carries gate $x$ into gate "
    "$y$), so the gates become recurrent states. Where the paper leaves the output gate's "
    "peephole open, this cell follows the vanilla LSTM: $p_o$ looks at $c_t$",
    full_recurrence=True)


def gru() -> Cell:
    """The GRU in PyTorch's convention (``torch.nn.GRU``), reset gate inside the product."""
    b = CellBuilder("gru", "GRU", Latex("The gated recurrent unit in PyTorch's convention: the reset "
                    "gate multiplies the recurrent product $R_n h_{t-1} + b_{hn}$, and "
                    "$h_t = (1 - z_t) \\odot n_t + z_t \\odot h_{t-1}$. PyTorch's two biases "
                    "of r and z add up to $b_r$ and $b_z$; $b_n$ is its $b_{in}$."))
    x, h = b.input("x"), b.state("h")
    W = {g: b.param(f"W_{g}", "H", "D") for g in "rzn"}
    R = {g: b.param(f"R_{g}", "H", "H") for g in "rzn"}
    bias = {g: b.param(f"b_{g}", "H") for g in "rzn"}
    b_hn = b.param("b_hn", "H")
    r = b.let("r", sigma(b.let("rbar", matvec(W["r"], x) + matvec(R["r"], h) + bias["r"])))
    z = b.let("z", sigma(b.let("zbar", matvec(W["z"], x) + matvec(R["z"], h) + bias["z"])))
    nbar = b.let("nbar", matvec(W["n"], x) + bias["n"] + r * (matvec(R["n"], h) + b_hn))
    n = b.let("n", tanh(nbar))
    b.let("h", (1 - z) * n + z * h)
    return b.build()


def rnn() -> Cell:
    """The simple (Elman) RNN, h_t = tanh(W x_t + R h_{t-1} + b): the baseline that vanishes."""
    b = CellBuilder("rnn", "Simple RNN", "The simple (Elman) recurrent network, the baseline "
                    "whose gradients vanish or explode with the time lag.")
    x, h = b.input("x"), b.state("h")
    W, R, bias = b.param("W", "H", "D"), b.param("R", "H", "H"), b.param("b", "H")
    b.let("h", tanh(b.let("hbar", matvec(W, x) + matvec(R, h) + bias)))
    return b.build()


def lstm_nobias() -> Cell:
    """An LSTM without biases, input weights W and recurrent weights U, block input a."""
    b = CellBuilder("lstm_nobias", "LSTM without biases (W, U notation)",
                    Latex("An LSTM without biases in the notation many lecture notes use: input "
                    "weights $W$, recurrent weights $U$, block input $a_t$. In this project's "
                    "names, $a$ is $z$, $W_a$ is $W_z$ and $U_g$ is $R_g$; PyTorch's biases "
                    "are all zero. Stacked, $\\Theta = [W\\; U]$ multiplies $[x_t; h_{t-1}]$."))
    x, h, c = b.input("x"), b.state("h"), b.state("c")
    pre = {g: matvec(b.param(f"W_{g}", "H", "D"), x) + matvec(b.param(f"U_{g}", "H", "H"), h)
           for g in "aifo"}
    a = b.let("a", tanh(b.let("abar", pre["a"])))
    i = b.let("i", sigma(b.let("ibar", pre["i"])))
    f = b.let("f", sigma(b.let("fbar", pre["f"])))
    o = b.let("o", sigma(b.let("obar", pre["o"])))
    c_t = b.let("c", a * i + c * f)
    b.let("h", tanh(c_t) * o)
    return b.build()


def lstm_concat() -> Cell:
    """An LSTM on the concatenated input X_t = [x_t; h_{t-1}], one weight matrix per gate."""
    b = CellBuilder("lstm_concat", "LSTM on the concatenated input [x; h]",
                    Latex("An LSTM whose gates read the concatenated input $X_t = [x_t; h_{t-1}]$ "
                    "through one weight matrix each, with candidate $n_t$ for the block input. "
                    "In this project's names, $n$ is $z$ and $W_g = [W_g^x\\; R_g]$ splits into "
                    "the input and recurrent weights; PyTorch's weight\\_ih and weight\\_hh are "
                    "those two column blocks, chunked i, f, g ($n$), o."))
    x, h, c = b.input("x"), b.state("h"), b.state("c")
    X = b.let("X", concat(x, h))
    pre = {g: matvec(b.param(f"W_{g}", "H", "D + H"), X) + b.param(f"b_{g}", "H") for g in "fino"}
    f = b.let("f", sigma(b.let("fbar", pre["f"])))
    i = b.let("i", sigma(b.let("ibar", pre["i"])))
    n = b.let("n", tanh(b.let("nbar", pre["n"])))
    o = b.let("o", sigma(b.let("obar", pre["o"])))
    c_t = b.let("c", f * c + i * n)
    b.let("h", o * tanh(c_t))
    return b.build()


def lstm_rowmajor() -> Cell:
    """The batch-major LSTM of many textbooks, rows X W_x + H W_h + b, weights stored D×H."""
    b = CellBuilder("lstm_rowmajor", "Row-major LSTM (X W + H W + b)",
                    Latex("The LSTM as written for a batch of rows: $I = \\sigma(X W_{xi} + H W_{hi} + "
                    "b_i)$ with $X$ of size $B\\times D$, weights stored input-by-output "
                    "($W_{xi}$ is $D\\times H$). One row of that product is $W_{xi}^\\top x_t$, "
                    "which is how this document writes it; $\\tilde{C}$ is the candidate (this "
                    "project's $z$), and $W_{xi}^\\top$ is PyTorch's weight\\_ih chunk i."))
    x, h, c = b.input("x"), b.state("h"), b.state("c")

    def pre(g):
        W_x, W_h = b.param(f"W_x{g}", "D", "H"), b.param(f"W_h{g}", "H", "H")
        return matvec(transpose(W_x), x) + matvec(transpose(W_h), h) + b.param(f"b_{g}", "H")

    I, F, O = (b.let(g.upper(), sigma(pre(g))) for g in "ifo")
    C = b.let("Ctilde", tanh(pre("c")))
    c_t = b.let("c", F * c + I * C)
    b.let("h", O * tanh(c_t))
    return b.build()


#: Every cell symlstm ships, by name.
CELLS = {f.__name__: f for f in (
    lstm, peephole_lstm, lstm_nig, lstm_nfg, lstm_nog, lstm_niaf, lstm_noaf, lstm_cifg,
    lstm_fgr, gru, rnn, lstm_nobias, lstm_concat, lstm_rowmajor)}


def get_cell(cell):
    """A shipped cell by name (see ``CELLS``), or ``cell`` itself when it is already a Cell."""
    if isinstance(cell, Cell):
        return cell
    if isinstance(cell, CellBuilder):
        raise TypeError("got a CellBuilder: call its .build() to get the Cell")
    if not isinstance(cell, str):
        raise TypeError(f"expected a cell name or a Cell, got {type(cell).__name__}")
    if cell not in CELLS:
        raise KeyError(f"unknown cell {cell!r}; available: {', '.join(CELLS)}")
    return CELLS[cell]()
