"""The cells symlstm ships, each a few lines of equations.  ``CELLS`` lists them all."""
from __future__ import annotations

from sympy import tanh

from .model import Cell, CellBuilder
from .ops import H, concat, matvec, mean, part, sigma, sqrt, transpose
from .parts import Latex
from .delta import gated_delta_net
from .mamba import s6
from .xlstm import mlstm, slstm


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


def gru_cho() -> Cell:
    """The GRU of Cho et al. (2014), reset gate before the product: R_n (r ⊙ h_{t-1})."""
    b = CellBuilder("gru_cho", "GRU (Cho et al.)", Latex(
        "The gated recurrent unit as Cho et al.~(2014) wrote it, and as Keras computes it with "
        "\\texttt{reset\\_after=False}: the reset gate multiplies the previous state before the "
        "recurrent product, $\\bar{n}_t = W_n x_t + R_n (r_t \\odot h_{t-1}) + b_n$, and "
        "$h_t = (1 - z_t) \\odot n_t + z_t \\odot h_{t-1}$. The cell \\texttt{gru} (PyTorch's) "
        "applies the reset gate after the product instead, so the two compute different "
        "functions and have different gradients."))
    x, h = b.input("x"), b.state("h")
    W = {g: b.param(f"W_{g}", "H", "D") for g in "rzn"}
    R = {g: b.param(f"R_{g}", "H", "H") for g in "rzn"}
    bias = {g: b.param(f"b_{g}", "H") for g in "rzn"}
    r = b.let("r", sigma(b.let("rbar", matvec(W["r"], x) + matvec(R["r"], h) + bias["r"])))
    z = b.let("z", sigma(b.let("zbar", matvec(W["z"], x) + matvec(R["z"], h) + bias["z"])))
    hhat = b.let("hhat", r * h)
    n = b.let("n", tanh(b.let("nbar", matvec(W["n"], x) + matvec(R["n"], hhat) + bias["n"])))
    b.let("h", (1 - z) * n + z * h)
    return b.build()


FENG = "Feng et al., ``Were RNNs All We Needed?'' (2024)"


def mingru() -> Cell:
    """minGRU (Feng et al. 2024), sequential form: gates read the input only."""
    b = CellBuilder("mingru", "minGRU", Latex(
        f"The minimal GRU of {FENG}, in its sequential form: the update gate $z_t$ and the "
        "candidate $\\tilde{h}_t$ read the input only, so the state enters the step only "
        "through $h_t = (1 - z_t) \\odot h_{t-1} + z_t \\odot \\tilde{h}_t$, and the candidate "
        "has no activation."))
    x, h = b.input("x"), b.state("h")
    W_z, b_z = b.param("W_z", "H", "D"), b.param("b_z", "H")
    W_h, b_h = b.param("W_h", "H", "D"), b.param("b_h", "H")
    z = b.let("z", sigma(b.let("zbar", matvec(W_z, x) + b_z)))
    htilde = b.let("htilde", matvec(W_h, x) + b_h)
    b.let("h", (1 - z) * h + z * htilde)
    return b.build()


def minlstm() -> Cell:
    """minLSTM (Feng et al. 2024), sequential form: f and i normalised to sum to 1."""
    b = CellBuilder("minlstm", "minLSTM", Latex(
        f"The minimal LSTM of {FENG}, in its sequential form: the forget and input gates read "
        "the input only and are normalised to sum to 1, "
        "$h_t = \\frac{f_t}{f_t + i_t} \\odot h_{t-1} + \\frac{i_t}{f_t + i_t} \\odot "
        "\\tilde{h}_t$, with the candidate $\\tilde{h}_t$ linear in the input. The generated "
        "code divides each gate by $f_t + i_t$ before it multiplies, so that it stays finite "
        "when both gates saturate (down to pre-activations near $-700$ in double precision)."))
    x, h = b.input("x"), b.state("h")
    W_f, b_f = b.param("W_f", "H", "D"), b.param("b_f", "H")
    W_i, b_i = b.param("W_i", "H", "D"), b.param("b_i", "H")
    W_h, b_h = b.param("W_h", "H", "D"), b.param("b_h", "H")
    f = b.let("f", sigma(b.let("fbar", matvec(W_f, x) + b_f)))
    i = b.let("i", sigma(b.let("ibar", matvec(W_i, x) + b_i)))
    htilde = b.let("htilde", matvec(W_h, x) + b_h)
    b.let("h", f / (f + i) * h + i / (f + i) * htilde)
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


def layer_norm(b: CellBuilder, v, gamma, beta, eps, name: str):
    """LN(v; γ, β) = γ ⊙ (v - mean(v)) / √(var(v) + ε) + β, the mean and the variance over
    v's entries: the mean m, the centred vector e and the deviation s get equations named
    after ``name`` (m{name}, e{name}, s{name})."""
    m = b.let(f"m{name}", mean(v))
    e = b.let(f"e{name}", v - m)
    s = b.let(f"s{name}", sqrt(mean(e**2) + eps))
    return gamma * e / s + beta


def layernorm_lstm() -> Cell:
    """The layer-normalised LSTM of Ba, Kiros & Hinton (2016), as haste's LayerNormLSTM."""
    b = CellBuilder("layernorm_lstm", "Layer-normalised LSTM", Latex(
        "The LSTM with layer normalisation of Ba, Kiros \\& Hinton (2016), as haste's "
        "LayerNormLSTM: $\\mathrm{LN}(v; \\gamma, \\beta) = \\gamma \\odot (v - "
        "\\mathrm{mean}(v)) / \\sqrt{\\mathrm{var}(v) + \\varepsilon} + \\beta$ "
        "over the entries of v, with $\\varepsilon = 10^{-5}$. The input products "
        "$a = [W_z x_t; W_i x_t; W_f x_t; W_o x_t]$ and the recurrent products "
        "$r = [R_z h_{t-1}; \\dots; R_o h_{t-1}]$ are each normalised as one $4H$ vector "
        "(gains gamma\\_x, gamma\\_h, no shift), the biases added after; the new cell "
        "state is normalised (gamma\\_c, beta\\_c) before the tanh of the output."))
    x, h, c = b.input("x"), b.state("h"), b.state("c")
    eps = b.constant("eps", 1e-5)
    gates = "zifo"
    W = {g: b.param(f"W_{g}", "H", "D") for g in gates}
    R = {g: b.param(f"R_{g}", "H", "H") for g in gates}
    bias = {g: b.param(f"b_{g}", "H") for g in gates}
    gamma_x, gamma_h = b.param("gamma_x", "4*H"), b.param("gamma_h", "4*H")
    gamma_c, beta_c = b.param("gamma_c", "H"), b.param("beta_c", "H")
    a = b.let("a", concat(*(b.let(f"a{g}", matvec(W[g], x)) for g in gates)))
    r = b.let("r", concat(*(b.let(f"r{g}", matvec(R[g], h)) for g in gates)))
    la = b.let("la", layer_norm(b, a, gamma_x, 0, eps, "a"))
    lr = b.let("lr", layer_norm(b, r, gamma_h, 0, eps, "r"))
    pre = {g: part(la, k * H, (k + 1) * H) + part(lr, k * H, (k + 1) * H) + bias[g]
           for k, g in enumerate(gates)}
    z = b.let("z", tanh(b.let("zbar", pre["z"])))
    i = b.let("i", sigma(b.let("ibar", pre["i"])))
    f = b.let("f", sigma(b.let("fbar", pre["f"])))
    o = b.let("o", sigma(b.let("obar", pre["o"])))
    c_t = b.let("c", f * c + i * z)
    lc = b.let("lc", layer_norm(b, c_t, gamma_c, beta_c, eps, "c"))
    b.let("h", o * tanh(lc))
    return b.build()


def sru() -> Cell:
    """The simple recurrent unit of Lei et al. (2018): the state c is carried, the output h is not."""
    b = CellBuilder("sru", "Simple recurrent unit", Latex(
        "The simple recurrent unit (SRU) of Lei et al., \\emph{Simple Recurrent Units for "
        "Highly Parallelizable Recurrence} (2018). Its input has the hidden size. Only the "
        "cell state $c_t$ is carried to the next step; the output $h_t = r_t \\odot c_t + "
        "(1 - r_t) \\odot x_t$, a highway connection to the input, is returned at every step "
        "but is not a state: no equation reads $h_{t-1}$, and the gradient $\\Delta h_t$ from "
        "the loss enters through this output equation alone."))
    x, c = b.input("x", "H"), b.state("c")
    W, W_f, W_r = (b.param(n, "H", "H") for n in ("W", "W_f", "W_r"))
    v_f, v_r, b_f, b_r = (b.param(n, "H") for n in ("v_f", "v_r", "b_f", "b_r"))
    xtilde = b.let("xtilde", matvec(W, x))
    f = b.let("f", sigma(b.let("fbar", matvec(W_f, x) + v_f * c + b_f)))
    r = b.let("r", sigma(b.let("rbar", matvec(W_r, x) + v_r * c + b_r)))
    c_t = b.let("c", f * c + (1 - f) * xtilde)
    b.let("h", r * c_t + (1 - r) * x)
    return b.build(output="h")


def lstm_zoneout() -> Cell:
    """The LSTM with zoneout (Krueger et al. 2016): per-step masks mc, mh as extra inputs."""
    b = CellBuilder("lstm_zoneout", "LSTM with zoneout", Latex(
        "The LSTM of PyTorch with zoneout (Krueger et al., \\emph{Zoneout: Regularizing RNNs "
        "by Randomly Preserving Hidden Activations}, 2016), as in Tacotron 2's decoder. Each "
        "unit keeps its previous value where its mask is 1: $c_t = \\mathit{mc}_t \\odot c_{t-1} "
        "+ (1 - \\mathit{mc}_t) \\odot \\tilde{c}_t$ and $h_t = \\mathit{mh}_t \\odot h_{t-1} "
        "+ (1 - \\mathit{mh}_t) "
        "\\odot \\tilde{h}_t$, where $\\tilde{c}_t$ and $\\tilde{h}_t$ are the LSTM's new "
        "values. The masks $\\mathit{mc}$ and $\\mathit{mh}$ are extra per-step inputs of the hidden "
        "size: drawn from a Bernoulli distribution in training, set to the keep probability "
        "at test time; their gradients are returned like the input's."))
    x, mc, mh = b.input("x"), b.input("mc", "H"), b.input("mh", "H")
    h, c = b.state("h"), b.state("c")
    gates = ("z", "i", "f", "o")
    W = {g: b.param(f"W_{g}", "H", "D") for g in gates}
    R = {g: b.param(f"R_{g}", "H", "H") for g in gates}
    bias = {g: b.param(f"b_{g}", "H") for g in gates}

    def pre(g):
        return b.let(f"{g}bar", matvec(W[g], x) + matvec(R[g], h) + bias[g])
    z = b.let("z", tanh(pre("z")))
    i = b.let("i", sigma(pre("i")))
    f = b.let("f", sigma(pre("f")))
    o = b.let("o", sigma(pre("o")))
    ctilde = b.let("ctilde", f * c + i * z)
    htilde = b.let("htilde", o * tanh(ctilde))
    b.let("c", mc * c + (1 - mc) * ctilde)
    b.let("h", mh * h + (1 - mh) * htilde)
    return b.build()


def lstmp() -> Cell:
    """The LSTM with a recurrent projection of ``torch.nn.LSTM(proj_size=P)``: h_t = W_hr m_t."""
    b = CellBuilder("lstmp", "LSTM with a projection (LSTMP)",
                    Latex("The LSTM with a recurrent projection layer of Sak, Senior and Beaufays "
                    "(2014), the cell of PyTorch's LSTM with \\texttt{proj\\_size} $= P$: the "
                    "cell output $m_t = o_t \\odot \\tanh(c_t)$ of size $H$ is projected to "
                    "$h_t = W_{hr} m_t$ of size $P$, which the gates read at the next step "
                    "through $R_g$ ($H \\times P$). The cell state $c_t$ is the LSTM's."))
    P = b.size("P")
    x, h, c = b.input("x"), b.state("h", P), b.state("c")
    W = {g: b.param(f"W_{g}", "H", "D") for g in "zifo"}
    R = {g: b.param(f"R_{g}", "H", P) for g in "zifo"}
    bias = {g: b.param(f"b_{g}", "H") for g in "zifo"}
    W_hr = b.param("W_hr", P, "H")

    def pre(g):
        return matvec(W[g], x) + matvec(R[g], h) + bias[g]

    z = b.let("z", tanh(b.let("zbar", pre("z"))))
    i = b.let("i", sigma(b.let("ibar", pre("i"))))
    f = b.let("f", sigma(b.let("fbar", pre("f"))))
    c_t = b.let("c", z * i + c * f)
    o = b.let("o", sigma(b.let("obar", pre("o"))))
    m = b.let("m", tanh(c_t) * o)
    b.let("h", matvec(W_hr, m))
    return b.build()


#: Every cell symlstm ships, by name.
CELLS = {f.__name__: f for f in (
    lstm, peephole_lstm, lstm_nig, lstm_nfg, lstm_nog, lstm_niaf, lstm_noaf, lstm_cifg,
    lstm_fgr, gru, rnn, lstm_nobias, lstm_concat, lstm_rowmajor, gru_cho, mingru, minlstm,
    layernorm_lstm, sru, lstm_zoneout, lstmp, slstm, mlstm, gated_delta_net, s6)}

#: The shipped cells whose states include a matrix per head or per channel: their modules
#: take and return state arrays of the shapes ``STATE_SHAPES``, per head (B, NH, d, d),
#: (B, NH, d) and (B, NH), or per channel (B, H, N).
MATRIX_CELLS = {"mlstm": mlstm, "gated_delta_net": gated_delta_net, "s6": s6}


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
