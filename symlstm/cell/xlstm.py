"""xLSTM's sLSTM and mLSTM (Beck et al. 2024): exponential gating, stabilised by a carried
maximum m; the mLSTM's memory is a matrix per head."""
from __future__ import annotations

from sympy import tanh

from .model import Cell, CellBuilder
from .ops import HS, Abs, Max, exp, headsum, logsigmoid, matvec, outer, sigma, sqrt
from .parts import Latex


ABOUT = (
    "The sLSTM of Beck et al., \\emph{xLSTM: Extended Long Short-Term Memory} (2024), as "
    "its ``vanilla'' implementation: the gate pre-activations are the LSTM's, with "
    "block-diagonal recurrent matrices $R_g$ of $N_h$ heads (blocks of $H/N_h \\times "
    "H/N_h$); the input and forget gates are exponential, $e^{\\bar{\\imath}_t}$ and "
    "$\\sigma(\\bar{f}_t) = e^{\\log\\sigma(\\bar{f}_t)}$, and the normaliser $n_t$ sums "
    "the input gates as $c_t$ sums their contributions, so that $h_t = o_t \\odot c_t / n_t$. "
    "Both are kept divided by $e^{m_t}$, where $m_t = \\max(\\log\\sigma(\\bar{f}_t) + "
    "m_{t-1}, \\bar{\\imath}_t)$ is the stabiliser, so that no exponential overflows. "
    "All four states are zero at $t = 0$ unless given; $n_t \\ge e^{\\bar{\\imath}_t - m_t} "
    "> 0$ from the first step on.\n\n"
    "\\textbf{The gradient through the stabiliser.} "
    "In exact arithmetic $h$ does not depend on $m$: $c_t = e^{-m_t} \\tilde{c}_t$ and "
    "$n_t = e^{-m_t} \\tilde{n}_t$, where $\\tilde{c}_t$ and $\\tilde{n}_t$ are the "
    "unstabilised sums, so $m_t$ cancels from $c_t / n_t$. The derivation shows it term "
    "by term in \\eqref{eq:adj:m} and \\eqref{eq:rec:m}. Step $t$ reads $m_t$ in $i_t$ "
    "and $f_t$: with $\\delta i_t = z_t "
    "\\odot \\delta c_t + \\delta n_t$ and $\\delta f_t = c_{t-1} \\odot \\delta c_t + "
    "n_{t-1} \\odot \\delta n_t$, its share $-i_t \\odot \\delta i_t - f_t \\odot \\delta "
    "f_t$ is $-c_t \\odot \\delta c_t - n_t \\odot \\delta n_t$. The parts of $\\delta "
    "c_t$ and $\\delta n_t$ that come from $h_t$, $o_t \\odot \\delta h_t / n_t$ and "
    "$-o_t \\odot c_t \\odot \\delta h_t / n_t^2$, cancel in it, leaving $-c_t \\odot "
    "\\delta^{+} c_t - n_t \\odot \\delta^{+} n_t$; step $t+1$ sends back $f_{t+1} "
    "\\odot \\delta f_{t+1} = c_t \\odot \\delta^{+} c_t + n_t \\odot \\delta^{+} n_t$, "
    "which cancels that, and $\\delta m_{t+1}$ through the max. So $\\delta m_t$ is "
    "$\\delta m_{t+1}$ passed back through the max, and at the last step it is "
    "$\\delta^{+} m_T - c_T \\odot \\delta^{+} c_T - n_T \\odot \\delta^{+} n_T$ "
    "with the gradients of the final states: it vanishes at every step when the loss "
    "reads $h$ alone. The generated code computes $\\delta m_t$ as derived and does not "
    "drop it, so that it stays exact for a loss that reads the final $c$, $n$ or $m$. "
    "For a loss of $h$ alone it is a difference of equal terms, at the level of rounding, "
    "and so is its share of the gradients of the parameters; the tests check both "
    "against autograd with $m$ held constant.")


def slstm() -> Cell:
    """The sLSTM of xLSTM (Beck et al. 2024), "vanilla": exponential input and forget gates
    stabilised by the carried maximum m, a normaliser n, and recurrent matrices of NH heads."""
    b = CellBuilder("slstm", "sLSTM (xLSTM)", Latex(ABOUT))
    NH = b.size("NH")
    x, h, c, n, m = b.input("x"), b.state("h"), b.state("c"), b.state("n"), b.state("m")
    W = {g: b.param(f"W_{g}", "H", "D") for g in "zifo"}
    R = {g: b.param(f"R_{g}", NH, "H/NH", "H/NH") for g in "zifo"}
    bias = {g: b.param(f"b_{g}", "H") for g in "zifo"}

    def pre(g):
        return b.let(f"{g}bar", matvec(W[g], x) + matvec(R[g], h) + bias[g])

    z = b.let("z", tanh(pre("z")))
    ibar, fbar = pre("i"), pre("f")
    o = b.let("o", sigma(pre("o")))
    m_t = b.let("m", Max(logsigmoid(fbar) + m, ibar))
    i = b.let("i", exp(ibar - m_t))
    f = b.let("f", exp(logsigmoid(fbar) + m - m_t))
    c_t = b.let("c", f * c + i * z)
    n_t = b.let("n", f * n + i)
    b.let("h", o * c_t / n_t)
    return b.build()


MLSTM_ABOUT = Latex(
    "The mLSTM of Beck et al., ``xLSTM: Extended Long Short-Term Memory'' (2024), as the "
    "stabilised recurrent step of its reference code. Each of the $N_h$ heads keeps a matrix "
    "memory $C_t$ ($H/N_h \\times H/N_h$), a normaliser $n_t$ ($H/N_h$ entries) and a "
    "stabiliser $m_t$ (one number): $C_t = f_t C_{t-1} + i_t v_t k_t^\\top$ and "
    "$n_t = f_t n_{t-1} + i_t k_t$, with the exponential input gate "
    "$i_t = \\exp(\\bar{i}_t - m_t)$ and the forget gate "
    "$f_t = \\exp(\\log\\sigma(\\bar{f}_t) + m_{t-1} - m_t)$, one number per head each, and the "
    "output $h_t = o_t \\odot C_t q_t / (\\max(|n_t^\\top q_t|, \\exp(-m_t)) + 10^{-6})$.")


def mlstm() -> Cell:
    """The mLSTM of xLSTM (Beck et al. 2024), the stabilised recurrent step: per head a
    matrix memory C_t = f C_{t-1} + i v kᵀ, a normaliser n and a stabiliser m; the output
    h = o ⊙ C_t q / (max(|n_tᵀ q|, exp(-m_t)) + 1e-6) is not a state."""
    b = CellBuilder("mlstm", "mLSTM (xLSTM)", MLSTM_ABOUT)
    NH = b.size("NH")
    x = b.input("x")
    C, n, m = b.state("C", NH, "H/NH", "H/NH"), b.state("n"), b.state("m", NH)
    W = {g: b.param(f"W_{g}", "H", "D") for g in "qkvo"}
    bias = {g: b.param(f"b_{g}", "H") for g in "qkvo"}
    w_i, w_f = b.param("w_i", NH, "D"), b.param("w_f", NH, "D")
    b_i, b_f = b.param("b_i", NH), b.param("b_f", NH)
    eps = b.constant("eps", 1e-6)
    q = b.let("q", matvec(W["q"], x) + bias["q"])
    k = b.let("k", (matvec(W["k"], x) + bias["k"]) / sqrt(HS))
    v = b.let("v", matvec(W["v"], x) + bias["v"])
    o = b.let("o", sigma(matvec(W["o"], x) + bias["o"]))
    ibar = b.let("ibar", matvec(w_i, x) + b_i)
    fbar = b.let("fbar", matvec(w_f, x) + b_f)
    m_t = b.let("m", Max(logsigmoid(fbar) + m, ibar))
    i = b.let("i", exp(ibar - m_t))
    f = b.let("f", exp(logsigmoid(fbar) + m - m_t))
    C_t = b.let("C", f * C + i * outer(v, k))
    n_t = b.let("n", f * n + i * k)
    d = b.let("d", Max(Abs(headsum(n_t * q)), exp(-m_t)) + eps)
    htilde = b.let("htilde", matvec(C_t, q) / d)
    b.let("h", o * htilde)
    return b.build(output="h")
