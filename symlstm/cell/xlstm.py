"""xLSTM's sLSTM (Beck et al. 2024): exponential gating, stabilised by a carried maximum m."""
from __future__ import annotations

from sympy import tanh

from .model import Cell, CellBuilder
from .ops import Max, exp, logsigmoid, matvec, sigma
from .parts import Latex


ABOUT = (
    "The sLSTM of Beck et al., \\emph{xLSTM: Extended Long Short-Term Memory} (2024), as "
    "its ``vanilla'' implementation: the gate pre-activations are the LSTM's, with "
    "block-diagonal recurrent matrices $R_g$ of $N\\!H$ heads (blocks of $H/N\\!H \\times "
    "H/N\\!H$); the input and forget gates are exponential, $e^{\\bar{\\imath}_t}$ and "
    "$\\sigma(\\bar{f}_t) = e^{\\log\\sigma(\\bar{f}_t)}$, and the normaliser $n_t$ sums "
    "the input gates as $c_t$ sums their contributions, so that $h_t = o_t \\odot c_t / n_t$. "
    "Both are kept divided by $e^{m_t}$, where $m_t = \\max(\\log\\sigma(\\bar{f}_t) + "
    "m_{t-1}, \\bar{\\imath}_t)$ is the stabiliser, so that no exponential overflows. "
    "All four states are zero at $t = 0$ unless given; $n_t \\ge e^{\\bar{\\imath}_t - m_t} "
    "> 0$ from the first step on."
    "\\par\\medskip\\noindent\\textbf{The gradient through the stabiliser.} "
    "In exact arithmetic $h$ does not depend on $m$: $c_t = e^{-m_t} \\tilde{c}_t$ and "
    "$n_t = e^{-m_t} \\tilde{n}_t$, where $\\tilde{c}_t$, $\\tilde{n}_t$ are the "
    "unstabilised sums, so $m_t$ cancels from $c_t / n_t$. The derivation shows this "
    "term by term. The equations that read $m_t$ are $i_t$ and $f_t$ (giving "
    "$-i_t \\odot \\Delta i_t - f_t \\odot \\Delta f_t = -c_t \\odot \\Delta c_t - n_t "
    "\\odot \\Delta n_t$, since $\\Delta i_t = z_t \\odot \\Delta c_t + \\Delta n_t$ and "
    "$\\Delta f_t = c_{t-1} \\odot \\Delta c_t + n_{t-1} \\odot \\Delta n_t$), $f_{t+1}$ "
    "(giving $f_{t+1} \\odot \\Delta f_{t+1}$, which is $c_t$ and $n_t$ times the parts of "
    "$\\Delta c_t$ and $\\Delta n_t$ carried back from step $t+1$) and $m_{t+1}$. What is "
    "left of the first two is $c_t$ and $n_t$ times the parts that come from $h_t$, "
    "$\\frac{o_t}{n_t} \\odot \\Delta h_t$ and $-\\frac{o_t \\odot c_t}{n_t^2} \\odot "
    "\\Delta h_t$, which cancel. So $\\Delta m_t$ is $\\Delta m_{t+1}$ passed back through "
    "the max, and it vanishes at every step when the loss reads the outputs $h_t$ alone. "
    "The generated code computes $\\Delta m_t$ as derived, and does not drop it: it is "
    "exact for a loss that also reads the last $c$, $n$ or $m$ (then "
    "$\\Delta m_T = \\Delta m - c_T \\odot \\Delta c - n_T \\odot \\Delta n$ does not "
    "vanish); for a loss of the outputs alone it is a difference of equal terms, at the "
    "level of rounding, and so is its share of the gradients of the parameters, as the "
    "tests check against autograd with $m$ held constant.")


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
