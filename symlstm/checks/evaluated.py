"""A derivation evaluated as written: its equations on NumPy arrays, one sample at a time.

:func:`gradients` runs a cell's forward equations and its derived adjoints, recurrences and
parameter sums (the SymPy expressions of :func:`~symlstm.derivation.bptt.derive`, with every
matrix per head as an (NH, H/NH, H/NH) array and every vector as a 1-D one) over a whole
sequence, and returns what the generated modules' ``backward`` returns, keyed the same way.
It is the derivation's own answer, before any lowering or code: the tests hold it against
brute force (:mod:`.bruteforce`), central differences and torch autograd, so that a stage
downstream is judged against a derivation already known to be right.
"""
from __future__ import annotations

import numpy as np
import sympy as sp

from .. import naming
from ..derivation.bptt import Derivation
from ..lower.values import with_values
from .numeric import Run, evaluate, unroll


def sizes_of(cell, D: int, H: int, **extra: int) -> dict[str, int]:
    """The sizes by their code names (D, H, P, NH and the head size HS) at these values."""
    sizes = {"D": D, "H": H, **extra}
    if "NH" in extra:
        sizes["HS"] = H // extra["NH"]
    return sizes


def gradients(d: Derivation, params: dict, x, state0: dict, dhs, dstate: dict | None = None,
              **sizes: int) -> tuple[dict, np.ndarray, dict]:
    """(grads, outputs, final states) of the derived backward pass over the sequence ``x``
    (T, B, D) from ``state0`` (each state (B, ...)), for the loss Σ_t ⟨dhs_t, h_t⟩ + Σ_s
    ⟨dstate_s, s_T⟩; ``sizes`` are D, H and the declared ones (NH=...).  ``grads`` is keyed
    as ``backward`` keys it: parameters by name, the input by its name, initial states as
    ``h0``."""
    d = with_values(d)
    cell, dstate = d.cell, dstate or {}
    sizes = sizes_of(cell, **sizes)
    T, B = np.shape(dhs)[:2]
    runs = [_run(d, params, np.asarray(x)[:, b], {s: np.asarray(v)[b] for s, v in state0.items()},
                 np.asarray(dhs)[:, b], {s: np.asarray(v)[b] for s, v in dstate.items()}, sizes)
            for b in range(B)]
    grads = {}
    for g in d.params:
        inner = sp.Add(*(t.expr for t in g.terms))
        grads[g.name] = sum(np.asarray(evaluate(inner, r.at(t), sizes), float)
                            * np.ones(np.shape(params[g.name]))
                            for r in runs for t in range(1, T + 1))
    for g in d.inputs:
        grads[g.name] = np.stack([np.stack([r.value(g.lhs, t) for t in range(1, T + 1)])
                                  for r in runs], axis=1)
    for g in d.initial:
        grads[g.name] = np.stack([np.asarray(evaluate(g.rhs, r.at(1), sizes), float)
                                  * np.ones(np.shape(state0[naming.parse(g.lhs).base][0]))
                                  for r in runs])
    out = naming.timed(cell.output)
    outputs = np.stack([np.stack([r.value(out, t) for t in range(1, T + 1)]) for r in runs],
                       axis=1)
    final = {s: np.stack([r.value(naming.timed(s), T) for r in runs]) for s in cell.states}
    return grads, outputs, final


def _run(d: Derivation, params, x, state0, dhs, dstate, sizes) -> Run:
    cell = d.cell
    first = next(iter(cell.inputs))

    def leaf(s: sp.Symbol, step):
        p = naming.parse(s)
        if p is None:
            return np.asarray(params[s.name], float)
        if p.kind == naming.EXTERNAL:
            return np.asarray(dhs[step - 1], float)
        if p.kind == "" and p.base == first:
            return np.asarray(x[step - 1], float)
        if p.kind == "" and step == 0:
            return np.asarray(state0[p.base], float)
        raise KeyError(f"{s} at step {step} has no value: not an input, a parameter or an "
                       "initial state")

    forward = [(eq.lhs, eq.rhs) for eq in cell.equations]
    backward = [(g.lhs, g.rhs) for g in (*d.step, *d.inputs)]
    carries = {naming.timed(naming.parse(g.lhs).base, 0, naming.CARRY): g.rhs
               for g in d.initial}
    for s in cell.states:   # a state that step t+1 does not read gets nothing back from it
        carries.setdefault(naming.timed(s, 0, naming.CARRY), sp.S.Zero)
    return unroll(len(dhs), forward, backward, carries, leaf, sizes, final=dstate)
