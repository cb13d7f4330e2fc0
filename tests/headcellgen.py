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
