"""The selective state space of Mamba (Gu & Dao 2023), S6: per channel a row of N states,
decayed by exp(Δ A) and fed Δ B x, where Δ, B and C depend on the input."""
from __future__ import annotations

from .model import Cell, CellBuilder
from .ops import exp, matvec, outer, softplus
from .parts import Latex


S6_ABOUT = Latex(
    "The selective state space (S6) of Gu and Dao, ``Mamba: Linear-Time Sequence Modeling "
    "with Selective State Spaces'' (2023), as \\texttt{selective\\_scan\\_ref} with a "
    "softplus step size and a real $A$. Each of the $H$ channels keeps a row of $N$ states, "
    "$h_t$ is $H \\times N$: $\\Delta_t = \\operatorname{softplus}(W_{dt} x_t + b_{dt})$ "
    "(one step size per channel), $B_t = W_B x_t$ and $C_t = W_C x_t$ (each $N$ entries, "
    "shared by the channels) and $A = -\\exp(A_{\\log})$ ($H \\times N$); "
    "$h_t[c, s] = \\exp(\\Delta_t[c] A[c, s]) h_{t-1}[c, s] + \\Delta_t[c] B_t[s] x_t[c]$, "
    "and the output $y_t[c] = \\sum_s h_t[c, s] C_t[s] + D[c] x_t[c]$ is not a state.")


def s6() -> Cell:
    """Mamba's selective scan (Gu & Dao 2023): Δ = softplus(W_dt x + b_dt), B = W_B x,
    C = W_C x, A = -exp(A_log); h_t = exp(Δ A) ⊙ h_{t-1} + (Δ ⊙ x) Bᵀ (H × N) and the output
    y = h_t C + D_skip ⊙ x, which is not a state."""
    b = CellBuilder("s6", "S6 (Mamba's selective scan)", S6_ABOUT)
    N = b.size("N")
    x, h = b.input("x", "H"), b.state("h", "H", N)
    W_dt, b_dt = b.param("W_dt", "H", "H"), b.param("b_dt", "H")
    W_B, W_C = b.param("W_B", N, "H"), b.param("W_C", N, "H")
    A_log, D_skip = b.param("A_log", "H", N), b.param("D_skip", "H")
    delta = b.let("Delta", softplus(matvec(W_dt, x) + b_dt))
    B_t, C_t = b.let("B", matvec(W_B, x)), b.let("C", matvec(W_C, x))
    A = b.let("A", -exp(A_log))
    u = b.let("u", delta * x)                          # Δ ⊙ x, what B_t spreads over the row
    h_t = b.let("h", exp(delta * A) * h + outer(u, B_t))
    b.let("y", matvec(h_t, C_t) + D_skip * x)
    return b.build(output="y")
