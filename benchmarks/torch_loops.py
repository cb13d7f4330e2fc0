"""Torch autograd loops of the cells the benchmarks time against their generated modules:
the same recurrences written out in torch ops, on whatever device their tensors are.  Each
takes the parameters under the generated modules' names, x (T, B, D) and the initial states
in the modules' layouts, and returns hs (T, B, H)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

GATES = "zifo"   # the generated LSTM's gate order


def lstm_hs(P, x, s0, NH=None):
    """hs of the LSTM: one GEMM for the input side of every step, then per step one fused
    (B, H) @ (H, 4H) GEMM and the gates (z̄, ī, f̄, ō)."""
    T, B, D = x.shape
    W = torch.cat([P[f"W_{g}"] for g in GATES])
    R = torch.cat([P[f"R_{g}"] for g in GATES]).t()
    b = torch.cat([P[f"b_{g}"] for g in GATES])
    proj = torch.addmm(b, x.reshape(T * B, D), W.t()).reshape(T, B, -1)
    h, c, hs = s0["h"], s0["c"], []
    for p in proj.unbind(0):
        zbar, ibar, fbar, obar = (p + h @ R).chunk(4, dim=1)
        c = torch.sigmoid(fbar) * c + torch.sigmoid(ibar) * torch.tanh(zbar)
        h = torch.sigmoid(obar) * torch.tanh(c)
        hs.append(h)
    return torch.stack(hs)


def mlstm_hs(P, x, s0, NH):
    """hs (T, B, H) of the stabilised mLSTM (xLSTM's recurrent step) in torch ops: one GEMM for
    every input product of every step, then per step the gates per head and the state update."""
    T, B, D = x.shape
    H = P["W_q"].shape[0]
    d = H // NH
    W = torch.cat([P["W_q"], P["W_k"], P["W_v"], P["W_o"], P["w_i"], P["w_f"]])
    b = torch.cat([P["b_q"], P["b_k"], P["b_v"], P["b_o"], P["b_i"], P["b_f"]])
    proj = torch.addmm(b, x.reshape(T * B, D), W.t()).reshape(T, B, 4 * H + 2 * NH)
    C, n, m, hs = s0["C"], s0["n"], s0["m"], []
    for p in proj.unbind(0):
        q, k, v, o = (p[:, g * H:(g + 1) * H] for g in range(4))
        q, v = q.reshape(B, NH, d), v.reshape(B, NH, d)
        k = k.reshape(B, NH, d) / math.sqrt(d)
        ibar, fbar = p[:, 4 * H:4 * H + NH], p[:, 4 * H + NH:]
        logf = F.logsigmoid(fbar)
        m_new = torch.maximum(logf + m, ibar)
        i, f = torch.exp(ibar - m_new), torch.exp(logf + m - m_new)
        C = f[..., None, None] * C + i[..., None, None] * (v[..., :, None] * k[..., None, :])
        n = f[..., None] * n + i[..., None] * k
        den = torch.maximum((n * q).sum(-1).abs(), torch.exp(-m_new)) + 1e-6
        htilde = (C @ q[..., None])[..., 0] / den[..., None]
        hs.append(torch.sigmoid(o) * htilde.reshape(B, H))
        m = m_new
    return torch.stack(hs)


def gated_delta_hs(P, x, s0, NH):
    """hs (T, B, H) of Gated DeltaNet in torch ops: one GEMM for every input product of every
    step, then per step S = α (S − β (S k) kᵀ) + β v kᵀ, never forming the d × d matrix I − β k kᵀ."""
    T, B, D = x.shape
    H = P["W_q"].shape[0]
    d = H // NH
    W = torch.cat([P["W_q"], P["W_k"], P["W_v"], P["w_a"], P["w_b"]])
    proj = (x.reshape(T * B, D) @ W.t()).reshape(T, B, 3 * H + 2 * NH)
    S, hs = s0["S"], []
    for p in proj.unbind(0):
        q, k, v = (p[:, g * H:(g + 1) * H].reshape(B, NH, d) for g in range(3))
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        alpha = torch.sigmoid(p[:, 3 * H:3 * H + NH] + P["b_a"])[..., None, None]
        beta = torch.sigmoid(p[:, 3 * H + NH:] + P["b_b"])[..., None, None]
        Sk = (S @ k[..., None])                               # (B, NH, d, 1)
        S = alpha * (S - beta * Sk * k[..., None, :]) + beta * (v[..., :, None] * k[..., None, :])
        hs.append((S @ q[..., None])[..., 0].reshape(B, H))
    return torch.stack(hs)


def s6_hs(P, x, s0, NH=None):
    """ys (T, B, H) of Mamba's selective scan (``selective_scan_ref`` with softplus Δ and real
    A) in torch ops: one GEMM each for Δ, B_t and C_t of every step, then per step
    h = exp(Δ A) ⊙ h + (Δ ⊙ x) B_tᵀ on (B, H, N) and y = h C_t + D_skip ⊙ x."""
    T, B, H = x.shape
    X = x.reshape(T * B, H)
    delta = F.softplus(torch.addmm(P["b_dt"], X, P["W_dt"].t())).reshape(T, B, H)
    Bt = (X @ P["W_B"].t()).reshape(T, B, -1)
    Ct = (X @ P["W_C"].t()).reshape(T, B, -1)
    A = -torch.exp(P["A_log"])
    h, ys = s0["h"], []
    for t in range(T):
        h = torch.exp(delta[t][..., None] * A) * h \
            + (delta[t] * x[t])[..., None] * Bt[t][:, None, :]
        ys.append((h * Ct[t][:, None, :]).sum(-1) + P["D_skip"] * x[t])
    return torch.stack(ys)
