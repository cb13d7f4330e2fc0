"""What is wrong with a claim that does not hold: :func:`diagnose`.

A diagnosis is found, not written: the claim is repaired in small ways (its sign turned,
one symbol put for another, an activation's derivative exchanged for the other, a missing
square restored) until it equals the derived side on the runs :func:`check_claim` uses;
the repair that works names the mistake.  One repair is tried first, then two together.
When none works, the paths the claim misses and the terms it adds are the diagnosis.  A
loss is also checked for where it is defined: a logarithm of a vector with entries at or
below zero, and vectors of different sizes multiplied entry by entry.
"""
from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np
import sympy as sp

from .. import naming
from ..cell.ops import sigma
from .claims import ClaimError, _runs, _same, _subject, _unsummed, parse


#: The kinds of finding, in the order a diagnosis lists them.
KINDS = ("sign", "argument", "time", "symbol", "function", "missing", "extra", "log", "sizes")


class Finding(NamedTuple):
    """One mistake: ``wrong`` is what the claim has where ``right`` belongs.

    ``kind`` is one of :data:`KINDS`: "sign" (the claim is minus the derived side),
    "argument" (an activation's derivative taken at the wrong vector; ``note`` is σ′ or
    tanh′), "time" (a vector at the wrong step), "symbol" (another vector put for the one
    that belongs; ``note`` holds the right one's equation), "function" (one activation's
    derivative for the other's, or a missing square), "missing" (a path of the derivation
    the claim lacks; ``note`` is its route), "extra" (a claim term no path has), "log" (a
    logarithm of a vector with entries ≤ 0; ``note`` counts them), "sizes" (vectors of
    different sizes multiplied entry by entry).
    """
    kind: str
    wrong: sp.Expr | None = None
    right: sp.Expr | None = None
    note: object = None


def diagnose(derivation, verdict) -> tuple[Finding, ...]:
    """The findings that explain why ``verdict`` (from :func:`check_claim` on
    ``derivation``) does not hold; () when it holds."""
    if verdict.holds:
        return ()
    d = _subject(derivation)
    runs = _runs(derivation, d, 0)
    claimed, derived = _unsummed(verdict.claim), _unsummed(verdict.correct)
    found = _domain(d, runs, claimed)
    if found:
        return found
    if _fits(-claimed, derived, runs):
        return (Finding("sign", claimed, derived),)
    if verdict.missing and not verdict.extra:
        return tuple(Finding("missing", t.expr, None, t) for t in verdict.missing)
    repairs = _repairs(d, runs, claimed)
    for one in repairs:
        if _fits(one.apply(claimed), derived, runs):
            return (one.finding,)
    for a, b in itertools.combinations(repairs, 2):
        if a.finding.wrong != b.finding.wrong and \
                _fits(b.apply(a.apply(claimed)), derived, runs):
            return a.finding, b.finding
    paired = _paired(d, runs, verdict)
    if paired:
        return paired
    return (*(Finding("missing", t.expr, None, t) for t in verdict.missing),
            *(Finding("extra", e) for e in verdict.extra))


def _paired(d, runs, verdict) -> tuple[Finding, ...]:
    """Each term the claim adds turned, by one repair, into a path it misses: the repairs'
    findings, when every term pairs up so."""
    paths, found = list(verdict.missing), []
    for e in verdict.extra:
        e = _unsummed(e)
        match = next(((one, t) for one in _repairs(d, runs, e) for t in paths
                      if _fits(one.apply(e), _unsummed(t.expr), runs)), None)
        if match is None:
            return ()
        found.append(match[0].finding)
        paths.remove(match[1])
    return tuple(found) if not paths else ()


def _fits(a, b, runs) -> bool:
    """a equals b on the runs: one point first, since most repairs fail there."""
    try:
        first = runs.points()[:1]
        return _same(a, b, runs, first) and _same(a, b, runs)
    except (ClaimError, KeyError, TypeError, ValueError, ZeroDivisionError):
        return False


class _Repair(NamedTuple):
    apply: object          # claim -> repaired claim
    finding: Finding


def _repairs(d, runs, claimed) -> list[_Repair]:
    # w is a subexpression of the claim as written: exchanged where it stands (replace()
    # would try to match it against every subexpression, for the same result)
    out = [_Repair(lambda e, w=w, r=r: e.xreplace({w: r}), Finding("function", w, r, note))
           for w, r, note in _functions(claimed)]
    known = {key for run in runs.runs for key in run.values}
    for s in sorted(claimed.free_symbols, key=sp.default_sort_key):
        p = naming.parse(s)
        if p is None:
            continue
        for other in _alternatives(d, p, known):
            out.append(_Repair(lambda e, s=s, o=other: e.xreplace({s: o}),
                               _substitution(d, claimed, s, other)))
    return out


def _alternatives(d, p, known) -> list[sp.Symbol]:
    """What might belong where the vector ``p`` stands: the same vector a step earlier or
    later, another vector of its size and kind at its step, the same vector of another kind
    (Δh for δh)."""
    size = d.vectors[p.base]
    out = [naming.timed(p.base, p.shift + k, p.kind) for k in (-1, 1)]
    out += [naming.timed(b, p.shift, p.kind) for b, n in d.vectors.items()
            if n == size and b != p.base]
    out += [naming.timed(p.base, p.shift, k) for k in ("", naming.ADJOINT, naming.EXTERNAL,
                                                        naming.CARRY) if k != p.kind]
    return [s for s in out if (naming.parse(s).kind, naming.parse(s).base) in known
            and abs(naming.parse(s).shift) <= 1]


def _substitution(d, claimed, s, other) -> Finding:
    p, q = naming.parse(s), naming.parse(other)
    if (p.base, p.kind) == (q.base, q.kind):
        return Finding("time", s, other)
    derivative = _derivative_around(claimed, s)
    if derivative and not p.kind:
        return Finding("argument", s, other, derivative)
    rhs = next((g.rhs for g in d.gradients.values()
                if g.lhs == other and not g.summed and g.kind in (naming.STEP,)), None)
    return Finding("symbol", s, other, rhs)


def _derivative_around(e, s) -> str:
    """"σ′" or "tanh′" when ``s`` stands in a factor of e that is an activation's
    derivative (σ(s)(1 - σ(s)), s(1 - s), 1 - tanh(s)², 1 - s²), else ""."""
    for a in sp.preorder_traversal(e):
        if isinstance(a, sp.Add) and s in a.free_symbols and sp.S.One in a.args:
            squared = any(isinstance(x, sp.Pow) and x.exp == 2 for x in sp.preorder_traversal(a))
            return "tanh′" if squared or a.has(sp.tanh) else "σ′"
    return ""


def _functions(claimed) -> list[tuple[sp.Expr, sp.Expr, str]]:
    """Each activation derivative of the claim exchanged for the other one, and 1 - tanh(u)
    squared: (wrong, right, what was wrong)."""
    out = []
    for a in sp.preorder_traversal(claimed):
        if not isinstance(a, sp.Add) or sp.S.One not in a.args or len(a.args) != 2:
            continue
        rest = -(a - 1)
        if isinstance(rest, sp.Pow) and isinstance(rest.base, sp.tanh) and rest.exp == 2:
            u = rest.base.args[0]
            out.append((a, sigma(u) * (1 - sigma(u)), "tanh′ for σ′"))
        elif isinstance(rest, sp.tanh):
            out.append((a, 1 - rest ** 2, "square"))
        elif isinstance(rest, sigma):
            u = rest.args[0]
            parent = next((m for m in sp.preorder_traversal(claimed) if isinstance(m, sp.Mul)
                           and a in m.args and rest in m.args), None)
            if parent is not None:
                out.append((rest * a, 1 - sp.tanh(u) ** 2, "σ′ for tanh′"))
    return out


def _domain(d, runs, claimed) -> tuple[Finding, ...]:
    """Where the claim is not defined on the runs: logarithms of entries ≤ 0, and entry by
    entry products of vectors of different sizes."""
    out = []
    for f in sp.preorder_traversal(claimed):
        if isinstance(f, sp.log):
            values = [np.asarray(runs.value(f.args[0], k, t), float)
                      for k, t in runs.points()]
            bad = sum(int(np.sum(v <= 0)) for v in values)
            if bad:
                out.append(Finding("log", f.args[0], None,
                                   (bad, sum(v.size for v in values))))
        if isinstance(f, sp.Mul):
            sizes = {}
            for a in f.args:
                p = naming.parse(a) if isinstance(a, sp.Symbol) else None
                if p is not None and d.vectors[p.base] != "1":
                    sizes.setdefault(d.vectors[p.base], a)
            for a in f.args:
                inner = [s for s in a.free_symbols if naming.parse(s) is not None]
                if not isinstance(a, sp.Symbol) and len(inner) == 1 and \
                        d.vectors[naming.parse(inner[0]).base] != "1":
                    sizes.setdefault(d.vectors[naming.parse(inner[0]).base], a)
            if len(sizes) > 1:
                (n1, a1), (n2, a2) = list(sizes.items())[:2]
                out.append(Finding("sizes", a1, a2, (n1, n2)))
    return tuple(out)


def check_text_claim(derivation, label: str, claim: str):
    """``check_claim`` for a claim that may also be a forward equation (``fwd:h``) or a
    head's loss (``fwd:ell``): the verdict, and the findings."""
    from .claims import check_claim
    d = _subject(derivation)
    if label in d.gradients:
        v = check_claim(derivation, label, claim)
        return v, diagnose(derivation, v)
    return _check_forward(derivation, d, label, claim)


def _check_forward(derivation, d, label, claim):
    from ..documents.latex import latex
    from .claims import Verdict
    eqs = _forward(derivation)
    if label not in eqs:
        raise ClaimError(f"{d.name!r} has no equation labelled {label!r}; its forward "
                         f"equations: {', '.join(eqs)}")
    eq = eqs[label]
    expr = parse(d, claim)
    runs = _runs(derivation, d, 0)
    holds = _fits(expr, eq.rhs, runs)
    v = Verdict(holds, label, expr, eq.rhs, (), (), None,
                f"{latex(eq.lhs)} = {latex(eq.rhs)}")
    if holds:
        return v, ()
    found = _domain(d, runs, expr)
    return v, found or diagnose(derivation, v)


def _forward(derivation) -> dict:
    """The forward equations, by label (``fwd:h``), of a derivation or a network."""
    from ..derivation.bptt import derive
    from ..network.heads import Network
    everything = derivation.all() if isinstance(derivation, Network) else \
        (derivation if hasattr(derivation, "all") else derive(derivation)).all()
    return {g.label: g for g in everything if g.kind == naming.FORWARD}
