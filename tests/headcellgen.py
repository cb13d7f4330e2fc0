"""Random cells with matrices per head, for property tests.

``cells()`` is a hypothesis strategy.  A drawn cell declares NH heads and carries a matrix per
head C; beside it, maybe an H-vector state h (read back through a matrix product) and one
number per head m.  Its equations draw from the whole per-head grammar: H-vectors from
matrix products of the input (and h), gates of one number per head from ``(NH, D)``
parameters through σ, exp(−softplus) or log σ; the new C as a gated sum of C, outer products
``outer(v, k)`` and a delta-rule correction ``outer(C k, k)``; read out by ``matvec(C, q)``
or ``matvec(transpose(C), q)``, possibly normalised by a per-head sum ``headsum`` or scaled
by the head size; the output an H-vector that is a state or not.  Values stay finite by
construction: gates are bounded, norms have a floor.
"""
from __future__ import annotations

from hypothesis import strategies as st

from symlstm import CellBuilder, matvec, transpose
from symlstm.cell.ops import (HS, Abs, Max, exp, headsum, logsigmoid, outer, sigma, softplus,
                              sqrt, tanh, total)

ACTS = {"tanh": tanh, "sigma": sigma, "none": lambda a: a}
GATES = {"sigma": sigma, "expsoftplus": lambda a: exp(-softplus(a)),
         "explogsigma": lambda a: exp(logsigmoid(a))}


@st.composite
def cells(draw):
    b = CellBuilder("headcell", "A random cell with matrices per head")
    NH = b.size("NH")
    x = b.input("x")
    C = b.state("C", NH, "H/NH", "H/NH")
    has_h = draw(st.booleans())
    has_m = draw(st.booleans())
    h = b.state("h") if has_h else None
    m = b.state("m", NH) if has_m else None
    params = {}

    def param(name, *shape):
        if name not in params:
            params[name] = b.param(name, *shape)
        return params[name]

    def vector(name):
        a = matvec(param(f"W_{name}", "H", "D"), x)
        if h is not None and draw(st.booleans()):
            a = a + matvec(param(f"R_{name}", "H", "H"), h)
        if draw(st.booleans()):
            a = a + param(f"b_{name}", "H")
        return b.let(name, ACTS[draw(st.sampled_from(sorted(ACTS)))](a))

    def gate(name):
        a = matvec(param(f"w_{name}", NH, "D"), x) + param(f"c_{name}", NH)
        if m is not None and draw(st.booleans()):
            a = a + m
        return b.let(name, GATES[draw(st.sampled_from(sorted(GATES)))](a))

    v, k = vector("v"), vector("k")
    f = gate("f")
    new = f * C
    kind = draw(st.sampled_from(["gated", "delta", "plain"]))
    if kind == "delta":   # C (I - β k kᵀ) = C - β (C k) kᵀ
        beta = gate("beta")
        Ck = b.let("Ck", matvec(C, k))
        new = f * (C - beta * outer(Ck, k))
    scale = 1 - f if kind == "gated" else 1 if kind == "delta" else gate("i")
    C_t = b.let("C", new + scale * outer(v, k))
    q = draw(st.sampled_from([v, k, None])) or vector("q")
    M = transpose(C_t) if draw(st.booleans()) else C_t
    r = b.let("r", matvec(M, q))
    norm = draw(st.sampled_from(["none", "headsum", "abs", "size"]))
    if norm == "headsum":
        r = b.let("rn", r / b.let("nr", sqrt(headsum(r * r) + 1)))
    elif norm == "abs":
        r = b.let("rn", r / b.let("nr", Max(Abs(headsum(r * q)), 1)))
    elif norm == "size":
        r = b.let("rn", r / sqrt(HS))
    if m is not None:
        b.let("m", tanh(headsum(r * k)) + m / 2)
    out = ACTS[draw(st.sampled_from(sorted(ACTS)))](r)
    if draw(st.booleans()):
        out = out + b.let("s", total(r * r)) / 10 * k
    b.let("h", out + (h / 2 if h is not None else 0))
    return b.build(output="h")


@st.composite
def channel_cells(draw):
    """A random cell with a matrix per channel S (H × N, the state size N): the new S an
    H-vector decay (a gate, or exp(Δ ⊙ A) of a parameter ("H", "N") used element-wise) times
    S plus an outer product u bᵀ of an H-vector and an N-vector, maybe gated; read out by
    ``matvec(S, c)`` or through ``matvec(transpose(S), u)`` and a matrix ("H", "N"); maybe an
    H-vector state h beside it, and a sum of S's entries."""
    b = CellBuilder("chancell", "A random cell with a matrix per channel")
    N = b.size("N")
    x = b.input("x", "H")
    S = b.state("S", "H", N)
    h = b.state("h") if draw(st.booleans()) else None
    params = {}

    def param(name, *shape):
        if name not in params:
            params[name] = b.param(name, *shape)
        return params[name]

    def hvec(name, act=None):
        a = matvec(param(f"W_{name}", "H", "H"), x)
        if h is not None and draw(st.booleans()):
            a = a + matvec(param(f"R_{name}", "H", "H"), h)
        if draw(st.booleans()):
            a = a + param(f"b_{name}", "H")
        return b.let(name, (act or ACTS[draw(st.sampled_from(sorted(ACTS)))])(a))

    def nvec(name):
        a = matvec(param(f"W_{name}", N, "H"), x)
        return b.let(name, tanh(a) if draw(st.booleans()) else a)

    u, bv = hvec("u"), nvec("bv")
    kind = draw(st.sampled_from(["gate", "selective", "both"]))
    decay = 1
    if kind in ("selective", "both"):   # exp(Δ ⊙ A), A = -exp(A_log) per channel and state
        a = b.let("a", -exp(param("A_log", "H", N)))
        decay = exp(hvec("dt", softplus) * a)
    if kind in ("gate", "both"):
        decay = decay * hvec("g", sigma)
    new = outer(u, bv)
    if draw(st.booleans()):
        new = hvec("i", sigma) * new
    S_t = b.let("S", decay * S + new)
    if draw(st.booleans()):
        r = b.let("r", matvec(S_t, nvec("cv")))
    else:
        z = b.let("z", matvec(transpose(S_t), u))
        r = b.let("r", matvec(param("W_o", "H", N), z))
    out = ACTS[draw(st.sampled_from(sorted(ACTS)))](r)
    if draw(st.booleans()):
        out = out + b.let("s", total(S_t * S_t)) / 10 * u
    if draw(st.booleans()):
        out = out + param("D_skip", "H") * x
    if h is None:
        b.let("y", out)
        return b.build(output="y")
    b.let("h", out + h / 2)
    return b.build(output="h")
