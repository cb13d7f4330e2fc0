"""Checking a hand-written gradient formula against the derivation: :func:`check_claim`.

A claim holds when it equals the derived gradient on every run of the cell.  Both sides are
evaluated on actual runs: the cell (with its head, when it has one) is run forward over a
few steps from random parameters, inputs and initial states, and backward from random
gradients Δh_t of the loss (or from the head's loss), and every quantity a claim may name
is read off that run at a step t in the middle of the sequence: forward values, the total
adjoints δv, what step t+1 sends back to a state (δ⁺s), what the loss sends to h (Δh), at
t and the steps around it.  So δh_t = Δh_t + δ⁺h_t, δ⁺c_t = δc_{t+1} ⊙ f_{t+1} and
σ(ī_t)(1 - σ(ī_t)) = i_t(1 - i_t) hold on these values as they hold in the derivation,
and a counterexample is a run of the cell.  Each side's terms are matched path by path to
name what a wrong claim misses or adds.

Claims are read by a small parser of the notation ``print(d)`` and ``symlstm show`` print
(``R_fᵀ δfbar[t+1]``, ``Σ_t δzbar[t] x[t]ᵀ``, ``⊙``, ``δ⁺c[t]``) and of SymPy's spelling
(``MatTVec(R_f, δfbar[t+1])``); a claim it cannot read gets a :class:`ClaimError` with a
caret under the place it stops making sense.
"""
from __future__ import annotations

import zlib
from typing import NamedTuple

import numpy as np
import sympy as sp

from .. import naming
from ..cell.ops import MatTVec, MatVec, Outer
from ..cell.parts import CHANNEL_MATRIX, HEAD_MATRIX, size_value
from ..derivation.bptt import Derivation, describe_path
from ..derivation.sweep import Term
from ..lower.values import with_values
from .claim_parser import (ALL_SIZES, CHANNEL_SIZES, HEAD_SIZES, SIZES, ClaimError, _check_names,
                           _unsummed, read)
from .numeric import EvaluationError, Run, evaluate, unroll


OUTPUTS = 4                # K, a head's output size
STEPS = 7                  # each run's length
CHECKED = (3, 4, 5)        # the steps t at which the two sides are compared
RUNS = 3                   # runs the two sides are compared on
TOLERANCE = 1e-9           # relative


class Verdict(NamedTuple):
    """What :func:`check_claim` found.

    ``holds`` says whether the claim equals the derived gradient.  When it does not,
    ``missing`` holds the derivation's paths (``Term``) that no term of the claim matches,
    ``extra`` the claim's terms that match no path, and ``counterexample`` a run of the cell
    on which the two differ: the run's length, number and step (``steps``, ``run``,
    ``step``), the sizes, the values of every quantity either side names there (``at``)
    and both sides' values.
    ``correct`` is the derived right side, ``latex`` the derived equation.
    """
    holds: bool
    label: str
    claim: sp.Expr
    correct: sp.Expr
    missing: tuple[Term, ...]
    extra: tuple[sp.Expr, ...]
    counterexample: dict | None
    latex: str

    def __str__(self) -> str:
        from ..printers.comment import comment
        lines = [f"({self.label}) {'holds' if self.holds else 'does not hold'}: "
                 f"{comment(self.claim)}"]
        if not self.holds:
            lines.append(f"  derived: {comment(self.correct)}")
            for t in self.missing:
                lines.append(f"  missing: {comment(t.expr)}  (the path via {describe_path(t)})")
            for e in self.extra:
                lines.append(f"  extra:   {comment(e)}")
            if self.counterexample:
                ex = self.counterexample
                sizes = ", ".join(f"{k} = {v}" for k, v in ex["sizes"].items())
                lines.append(f"  a counterexample: a run of {ex['steps']} steps at {sizes}, "
                             f"read at t = {ex['step']}:")
                for name, v in ex["at"].items():
                    lines.append(f"    {name} = {_show(v)}")
                lines.append(f"  the claim gives {_show(ex['claim'])}, the derivation "
                             f"{_show(ex['derived'])}")
        return "\n".join(lines)


def _show(v) -> str:
    if isinstance(v, str):
        return v
    return np.array2string(np.asarray(v), precision=4, separator=", ").replace("\n", "")


def parse(d, text: str) -> sp.Expr:
    """A claim in the printed notation, as a SymPy expression in the symbols of ``d`` (a
    derivation, or what :func:`check_claim` judges against).

    Besides ``print(d)``'s notation (``⊙``, ``ᵀ``, ``Σ_t``, ``δ⁺``, ``Δ``) it reads ``*`` and
    ``·`` for products, ``^`` for powers, ``W^T`` or ``W.T`` for Wᵀ, ``tanh²(c[t])`` for
    tanh(c[t])², and the ASCII spellings ``delta_h[t]`` (δh[t]), ``Delta_h[t]`` (Δh[t]) and
    ``delta_plus_c[t]`` (δ⁺c[t]).  A matrix written before a vector multiplies it
    (``R_fᵀ δfbar[t+1]``), a vector before a transposed vector makes an outer product
    (``δzbar[t] x[t]ᵀ``); ``⊙`` is always entry by entry.
    """
    return read(_subject(d), text)


def check_claim(derivation, label: str, claim, *, seed: int = 0) -> Verdict:
    """Judge ``claim``, a formula for the gradient labelled ``label`` (``"adj:abar"``,
    ``"rec:c"``, ``"grad:W_f"``), against ``derivation``: a :class:`Derivation` (or a cell or
    its name, derived here), or a cell with a head from :func:`symlstm.derive_network`,
    whose labels add ``adj:yhat``, ``out:h`` (Δh_t), ``grad:V``, ...

    ``claim`` is a SymPy expression in the derivation's symbols, or a string in the notation
    ``print(derivation)`` and ``symlstm show`` print: ``"δh[t] ⊙ o[t] ⊙ (1 - tanh(c[t])**2)
    + δ⁺c[t]"``, ``"R_fᵀ δfbar[t+1]"``, ``"Σ_t δzbar[t] x[t]ᵀ"``, or SymPy's spelling
    (``MatTVec(R_f, δfbar[t+1])``, ``TimeSum(Outer(δzbar[t], x[t]))``).  A summed gradient
    may be claimed with or without its Σ_t.  The claim holds when both sides agree on
    ``RUNS`` runs of ``STEPS`` steps (drawn from ``seed``), read at each step of
    ``CHECKED``.
    """
    d = _subject(derivation)
    if label not in d.gradients:
        raise ClaimError(f"{d.name!r} has no gradient labelled {label!r}; its gradients: "
                         f"{', '.join(d.gradients)}")
    g = d.gradients[label]
    expr = parse(d, claim) if isinstance(claim, str) else sp.sympify(claim)
    _check_names(d, expr)
    runs = _runs(derivation, d, seed)
    claimed, derived = _unsummed(expr), _unsummed(g.rhs)
    holds = _same(claimed, derived, runs)
    missing, extra, example = (), (), None
    if not holds:
        missing, extra = _match(runs, g, claimed)
        example = _counterexample(claimed, derived, runs)
    from ..documents.latex import latex_gradient
    return Verdict(holds, label, expr, g.rhs, missing, extra, example, latex_gradient(g))


class _Subject(NamedTuple):
    """What a claim is judged against: a cell's derivation, or a cell's with a head's."""
    name: str
    gradients: dict            # label -> Gradient, every equation but the forward ones
    forward: tuple             # (v[t], right side), in the order a step computes them
    backward: tuple            # (δv[t] or Δh[t], right side), in the order they are computed
    carries: dict              # δ⁺s[t] -> what step t+1 sends back, read at t+1
    vectors: dict              # base name -> size ("D", "H", "K" or "1")
    params: dict               # name -> shape
    targets: str               # "" without a head, else the head's: "real" or "class"
    marked: dict               # δ⁺ and Δ -> the vectors that have them (states; h)
    constants: dict            # the cell's named constants (ε) -> their values
    sizes: dict                # the sizes the runs take: ALL_SIZES, HEAD_SIZES with heads


def _subject(derivation) -> _Subject:
    if isinstance(derivation, _Subject):
        return derivation
    from ..derivation.bptt import derive
    from ..network.heads import Network
    head = derivation.head if isinstance(derivation, Network) else None
    d = derivation.cell if head else derivation if isinstance(derivation, Derivation) \
        else derive(derivation)
    constants = {n: sp.Float(v) for n, v in d.cell.constants.items()}
    d = with_values(d)   # named constants (ε) as the numbers they stand for
    cell = d.cell
    everything = derivation.all() if head else d.all()
    forward = [(eq.lhs, eq.rhs) for eq in cell.equations]
    backward = [(g.lhs, g.rhs) for g in (*d.step, *d.inputs)]
    carries = {naming.timed(naming.parse(g.lhs).base, 0, naming.CARRY): g.rhs
               for g in d.initial}
    vectors = {naming.parse(v).base: cell.dim(v) for v in
               (*(eq.lhs for eq in cell.equations), *cell.input_symbols, *cell.prev_states)}
    params = {p.name: p.shape for p in cell.params}
    if head:
        forward += [(eq.lhs, eq.rhs) for eq in head.head.equations]
        backward[:0] = [(g.lhs, g.rhs) for g in (*head.step, head.output)]
        vectors.update(head.head.sizes)
        params.update({p.name: p.shape for p in head.head.params})
    name = cell.name + (f" with the {head.head.name} head" if head else "")
    gradients = {g.label: g for g in everything if g.kind != naming.FORWARD}
    marked = {kind: {p.base for p in map(naming.parse, (*carries, *(
        s for _, rhs in backward for s in rhs.free_symbols))) if p and p.kind == kind}
        for kind in (naming.CARRY, naming.EXTERNAL)}
    sizes = HEAD_SIZES if "NH" in cell.sizes else CHANNEL_SIZES if "N" in cell.sizes else \
        ALL_SIZES
    return _Subject(name, gradients, tuple(forward), tuple(backward), carries, vectors, params,
                    head.head.targets if head else "", marked, constants, sizes)


# --- runs of the cell ----------------------------------------------------------------------

_CACHE: list = []   # (derivation, seed, runs), the latest few: a document judges many claims


def _runs(derivation, d: _Subject, seed: int) -> _Runs:
    """The runs of ``derivation``'s cell, reused while the same derivation is judged."""
    for subject, s, runs in _CACHE:
        if subject is derivation and s == seed:
            return runs
    runs = _Runs(d, seed)
    if isinstance(derivation, (str, _Subject)):
        return runs
    _CACHE[:] = [(derivation, seed, runs), *_CACHE[:7]]
    return runs


class _Runs:
    """``RUNS`` runs of the cell, each from its own random draw."""

    def __init__(self, d: _Subject, seed: int):
        self.d, self.seed = d, seed
        self.runs = [self._run(k) for k in range(RUNS)]

    def shape(self, s: sp.Symbol) -> tuple[int, ...]:
        p = naming.parse(s)
        dims = self.d.params[s.name] if p is None else (self.d.vectors[p.base],)
        sizes = self.d.sizes
        if dims == (HEAD_MATRIX,):   # one matrix per head
            return (sizes["NH"], sizes["HS"], sizes["HS"])
        if dims == (CHANNEL_MATRIX,):   # a row per channel
            return (sizes["H"], sizes["N"])
        return tuple(OUTPUTS if dim == "K" else size_value(dim, **sizes) for dim in dims)

    def _run(self, k: int) -> Run:
        def leaf(s: sp.Symbol, step):
            p = naming.parse(s)
            if p is not None and p.kind not in ("", naming.EXTERNAL):
                raise RuntimeError(f"{s} is read before the backward pass computes it")
            key = s.name if p is None else f"{p.kind}{p.base}"
            rng = np.random.default_rng([self.seed, k, zlib.crc32(f"{key}@{step}".encode())])
            shape = self.shape(s)
            if step is None:
                return 0.5 * rng.standard_normal(shape)
            if step == 0:                               # an initial state
                return 0.5 * rng.standard_normal(shape)
            if p.base == "y" and self.d.targets == "class":
                return np.eye(shape[0])[rng.integers(shape[0])]
            return rng.standard_normal(shape)
        d = self.d
        try:
            return unroll(STEPS, d.forward, d.backward, d.carries, leaf, d.sizes)
        except EvaluationError as e:
            raise ClaimError(f"{d.name!r} cannot be run: {e}") from None

    def value(self, e: sp.Expr, k: int, t: int):
        """e on run k with t at step ``t``, as a NumPy array (or a number)."""
        try:
            # a claim may take the log of an entry ≤ 0 or overflow: the verdict judges the
            # NaN or inf it gives (and names the log), so NumPy need not warn of it
            with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
                return evaluate(e, self.runs[k].at(t), self.d.sizes)
        except KeyError as missing:
            raise ClaimError(f"{missing.args[0]} has no value in a run of {self.d.name!r}: "
                             "it is not a vector the cell computes") from None

    def points(self):
        return [(k, t) for k in range(RUNS) for t in CHECKED]


def _close(a, b) -> bool:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape and a.size != 1 and b.size != 1:
        return False
    scale = max(1.0, float(np.max(np.abs(b), initial=0.0)))
    return bool(np.allclose(a, b, rtol=TOLERANCE, atol=TOLERANCE * scale, equal_nan=True))


def _same(a, b, runs: _Runs, points=None) -> bool:
    try:
        return all(_close(runs.value(a, k, t), runs.value(b, k, t))
                   for k, t in points or runs.points())
    except EvaluationError as e:
        raise ClaimError(f"the claim uses a function symlstm cannot evaluate: {e}") from None
    except ValueError as e:   # shapes that do not fit: a product the wrong way round
        if isinstance(e, ClaimError):
            raise
        return False


def _pieces(e: sp.Expr) -> list[sp.Expr]:
    """The terms of ``e`` once its products (element-wise and matrix) are multiplied out at
    the top level: ``R_zᵀ (a + b)`` is ``R_zᵀ a`` and ``R_zᵀ b``."""
    if isinstance(e, (MatVec, MatTVec)):
        W, u = e.args
        return [c * e.func(W, v) for piece in _pieces(u) for c, v in [piece.as_coeff_Mul()]]
    if isinstance(e, Outer):
        return [cu * cv * Outer(u, v) for a in _pieces(e.args[0]) for b in _pieces(e.args[1])
                for cu, u in [a.as_coeff_Mul()] for cv, v in [b.as_coeff_Mul()]]
    return list(sp.Add.make_args(sp.expand(e, deep=False)))


def _match(runs: _Runs, g, claim):
    """The derivation's paths no claim term matches, and the claim terms no path matches:
    whole terms first, then the pieces of the terms left over; a term left after that may
    stand for all the paths through step t+1 at once (δ⁺s_t)."""
    paths, left = list(g.terms), list(sp.Add.make_args(claim))

    def same(c, exprs):
        return _same(c, sp.Add(*(_unsummed(e) for e in exprs)), runs)

    for stage in ("terms", "pieces"):
        if stage == "pieces":
            left = [p for c in left for p in _pieces(c)]
        unmatched = []
        for c in left:
            k = next((k for k, t in enumerate(paths) if same(c, [t.expr])), None)
            if k is None:
                unmatched.append(c)
            else:
                paths.pop(k)
        left = unmatched
    for c in list(left):
        later = [t for t in paths if t.later]
        if later and same(c, [t.expr for t in later]):
            left.remove(c)
            paths = [t for t in paths if not t.later]
    return tuple(paths), tuple(left)


def _counterexample(claimed, derived, runs: _Runs) -> dict:
    """The first run and step the two sides differ at: every quantity's value there, and
    both sides'."""
    from ..printers.comment import comment
    k, t = next((p for p in runs.points() if not _same(claimed, derived, runs, [p])),
                runs.points()[0])
    used = sorted((claimed.free_symbols | derived.free_symbols) - set(map(sp.Symbol, ALL_SIZES)),
                  key=sp.default_sort_key)   # D and H bound a Part: sizes, not quantities
    try:
        claim = runs.value(claimed, k, t)
    except ValueError as e:
        if isinstance(e, ClaimError):
            raise
        claim = f"no value ({e})"
    heads = ("NH", "HS") if runs.d.sizes is HEAD_SIZES else ()
    sizes = {k: runs.d.sizes[k] for k in (*SIZES, *heads)}
    sizes = {**sizes, "K": OUTPUTS} if runs.d.targets else sizes
    return {"sizes": sizes, "steps": STEPS, "run": k, "step": t,
            "at": {comment(s): runs.runs[k].value(s, t) for s in used},
            "claim": claim, "derived": runs.value(derived, k, t)}
