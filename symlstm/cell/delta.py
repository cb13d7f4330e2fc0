"""The gated delta rule of Yang, Kautz & Hatamizadeh (2024), Gated Delta Networks: a matrix
memory per head, decayed by α and corrected towards v along k by β."""
from __future__ import annotations

from .model import Cell, CellBuilder
from .ops import headsum, matvec, outer, sigma, sqrt
from .parts import Latex


GATED_DELTA_ABOUT = Latex(
    "The gated delta rule of Yang, Kautz and Hatamizadeh, ``Gated Delta Networks: Improving "
    "Mamba2 with Delta Rule'' (2024), one step of its recurrent form. Each of the $N_h$ heads "
    "keeps a matrix $S_t$ ($d \\times d$, $d = H/N_h$; in $S[a, b]$, $a$ indexes $v$ and $b$ "
    "indexes $k$), with $q_t$ and $k_t$ normalised to unit length per head: "
    "$S_t = \\alpha_t S_{t-1} (I - \\beta_t k_t k_t^\\top) + \\beta_t v_t k_t^\\top$, written "
    "$S_t = \\alpha_t (S_{t-1} - \\beta_t (S_{t-1} k_t) k_t^\\top) + \\beta_t v_t k_t^\\top$, "
    "with the gates $\\alpha_t$ and $\\beta_t$ one number per head. The output $o_t = S_t q_t$ "
    "is not a state.")


def gated_delta_net() -> Cell:
    """Gated DeltaNet (Yang, Kautz & Hatamizadeh 2024), per head: q and k of unit length,
    S_t = α S_{t-1} (I − β k kᵀ) + β v kᵀ, and the output o = S_t q."""
    b = CellBuilder("gated_delta_net", "Gated DeltaNet", GATED_DELTA_ABOUT)
    NH = b.size("NH")
    x, S = b.input("x"), b.state("S", NH, "H/NH", "H/NH")
    W_q, W_k, W_v = (b.param(f"W_{g}", "H", "D") for g in "qkv")
    w_a, w_b = b.param("w_a", NH, "D"), b.param("w_b", NH, "D")
    b_a, b_b = b.param("b_a", NH), b.param("b_b", NH)
    qbar, kbar = b.let("qbar", matvec(W_q, x)), b.let("kbar", matvec(W_k, x))
    # L2norm within each head: each head's length, one number per head, divides its entries
    q = b.let("q", qbar / b.let("nq", sqrt(headsum(qbar**2))))
    k = b.let("k", kbar / b.let("nk", sqrt(headsum(kbar**2))))
    v = b.let("v", matvec(W_v, x))
    alpha = b.let("alpha", sigma(matvec(w_a, x) + b_a))
    beta = b.let("beta", sigma(matvec(w_b, x) + b_b))
    Sk = b.let("Sk", matvec(S, k))                     # S_{t-1} k
    S_t = b.let("S", alpha * (S - beta * outer(Sk, k)) + beta * outer(v, k))
    b.let("o", matvec(S_t, q))
    return b.build(output="o")
