"""Checking a hand-written gradient formula against the derivation: :func:`check_claim`.

A claim is compared with the derived gradient after both are written in the same terms:

- every forward variable is replaced by its equation, down to the inputs, the states at
  t-1 and the parameters (so σ(ī_t)(1 - σ(ī_t)) and i_t(1 - i_t) are the same), at any time
  step;
- every adjoint of a variable that is not a state is replaced by its one-step equation, so
  that only the states' adjoints, the adjoints of step t+1 and Δh remain (δa_t and
  δc_t ⊙ i_t are the same).

Both sides are then evaluated, as vectors and matrices, on random instances at small sizes
(D = 2, H = 3): they are the same when they agree on every instance.  Each side's terms are
matched path by path to name what a wrong claim misses or adds.
"""
from __future__ import annotations

import re
import tokenize
import zlib
from typing import NamedTuple

import numpy as np
import sympy as sp

from . import naming
from .bptt import Derivation, describe_path
from .cell import CellError, size_value
from .numeric import EvaluationError, evaluate
from .ops import Concat, MatTVec, MatVec, Outer, Part, TimeSum, Transposed, relu, sigma, softplus
from .sweep import Term

#: Names a claim may use besides the cell's own: the printed notation's functions.
FUNCTIONS = {"sigma": sigma, "σ": sigma, "tanh": sp.tanh, "exp": sp.exp, "log": sp.log,
             "relu": relu, "softplus": softplus, "sech": sp.sech, "cosh": sp.cosh,
             "sinh": sp.sinh, "sqrt": sp.sqrt, "erf": sp.erf, "diff": sp.diff, "MatVec": MatVec,
             "MatTVec": MatTVec, "Outer": Outer, "TimeSum": TimeSum, "Transposed": Transposed,
             "Concat": Concat, "Part": Part, "D": sp.Symbol("D"), "H": sp.Symbol("H")}
_TIMED = re.compile(r"(δ⁺|δ|Δ)?([A-Za-z][A-Za-z0-9_]*)\[t(?:\s*([+-])\s*(\d+))?\]")
POINTS = 3          # random instances the two sides are compared on
TOLERANCE = 1e-9    # relative


class ClaimError(ValueError):
    """A claim that cannot be read: the message says what was wrong."""


class Verdict(NamedTuple):
    """What :func:`check_claim` found.

    ``holds`` says whether the claim equals the derived gradient.  When it does not,
    ``missing`` holds the derivation's paths (``Term``) that no term of the claim matches,
    ``extra`` the claim's terms that match no path, and ``counterexample`` values of the
    remaining quantities (one entry of each vector) at which the two differ, with both
    values.  ``correct`` is the derived right side, ``latex`` the derived equation.
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
        from .printers import comment
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
                lines.append(f"  a counterexample, at {sizes}:")
                for name, v in ex["at"].items():
                    lines.append(f"    {name} = {_show(v)}")
                lines.append(f"  the claim gives {_show(ex['claim'])}, the derivation "
                             f"{_show(ex['derived'])}")
        return "\n".join(lines)


def _show(v) -> str:
    if isinstance(v, str):
        return v
    return np.array2string(np.asarray(v), precision=4, separator=", ").replace("\n", "")


def check_claim(derivation, label: str, claim, *, seed: int = 0) -> Verdict:
    """Judge ``claim``, a formula for the gradient labelled ``label`` (``"adj:abar"``,
    ``"rec:c"``, ``"grad:W_f"``), against ``derivation``: a :class:`Derivation` (or a cell or
    its name, derived here), or a cell with a head from :func:`symlstm.derive_network`,
    whose labels add ``adj:yhat``, ``out:h`` (Δh_t), ``grad:V``, ...

    ``claim`` is a SymPy expression in the derivation's symbols, or a string in its printed
    notation, as ``print(derivation)`` shows it: ``"δa[t]*(1 - tanh(abar[t])**2)"``
    (``⊙`` may stand for ``*`` and ``σ`` for ``sigma``; ``MatTVec(R_z, δzbar[t+1])`` is
    R_zᵀ δz̄_{t+1}).  A summed gradient may be claimed with or without ``TimeSum``.
    """
    d = _subject(derivation)
    if label not in d.gradients:
        raise ClaimError(f"{d.name!r} has no gradient labelled {label!r}; its gradients: "
                         f"{', '.join(d.gradients)}")
    g = d.gradients[label]
    expr = parse(d, claim) if isinstance(claim, str) else sp.sympify(claim)
    _check_names(d, expr)
    canon, inst = _Canon(d), _Instances(d, seed)
    claimed, derived = canon(_unsummed(expr)), canon(_unsummed(g.rhs))
    holds = _same(claimed, derived, inst)
    missing, extra, example = (), (), None
    if not holds:
        missing, extra = _match(canon, inst, g, _unsummed(expr))
        example = _counterexample(claimed, derived, inst)
    from .printers import latex_gradient
    return Verdict(holds, label, expr, g.rhs, missing, extra, example, latex_gradient(g))


class _Subject(NamedTuple):
    """What a claim is judged against: a cell's derivation, or a cell's with a head's."""
    name: str
    gradients: dict            # label -> Gradient, every equation but the forward ones
    forward: dict              # v[t] -> its right side
    adjoints: dict             # δv[t] (and Δh[t] below a head) -> its one-step right side
    vectors: dict              # base name -> size ("D", "H", "K" or "1")
    params: dict               # name -> shape


def _subject(derivation) -> _Subject:
    from . import derive
    from .heads import Network
    head = derivation.head if isinstance(derivation, Network) else None
    d = derivation.cell if head else derivation if isinstance(derivation, Derivation) \
        else derive(derivation)
    cell = d.cell
    states = set(cell.new_states)
    everything = derivation.all() if head else d.all()
    forward = {eq.lhs: eq.rhs for eq in cell.equations}
    adjoints = {g.lhs: g.rhs for g in d.step if naming.adjoint_of(g.lhs) not in states}
    vectors = {naming.parse(v).base: cell.dim(v) for v in
               (*forward, *cell.input_symbols, *cell.prev_states)}
    params = {p.name: p.shape for p in cell.params}
    if head:
        forward.update({eq.lhs: eq.rhs for eq in head.head.equations})
        adjoints.update({g.lhs: g.rhs for g in (*head.step, head.output)})
        vectors.update(head.head.sizes)
        params.update({p.name: p.shape for p in head.head.params})
    name = cell.name + (f" with the {head.head.name} head" if head else "")
    gradients = {g.label: g for g in everything if g.kind != naming.FORWARD}
    return _Subject(name, gradients, forward, adjoints, vectors, params)


def parse(d, text: str) -> sp.Expr:
    """A claim in the printed notation, as a SymPy expression in the symbols of ``d`` (a
    derivation, or what :func:`check_claim` judges against)."""
    d = d if isinstance(d, _Subject) else _subject(d)
    if not isinstance(text, str) or not text.strip():
        raise ClaimError("a claim must be a non-empty formula, such as 'δa[t]*(1 - a[t]**2)'")
    names = {}

    def timed(m):
        kind, base, sign, k = m.groups()
        shift = int(k) * (-1 if sign == "-" else 1) if k else 0
        key = f"_v{len(names)}"
        names[key] = naming.timed(base, shift, kind or "")
        return key
    source = _TIMED.sub(timed, text.replace("⊙", "*").replace("·", "*").replace("−", "-"))
    params = {name: sp.Symbol(name) for name in d.params}
    local = {**FUNCTIONS, **params, **{k: v for k, v in names.items()}}
    for word in re.findall(r"[^\W\d]\w*", source):
        if word not in local:
            raise ClaimError(f"the claim {text!r} uses {word!r}, which is neither a parameter of "
                             f"{d.name!r} nor a function; vectors are written with their "
                             f"time, such as c[t-1] or δc[t+1]; parameters: "
                             f"{', '.join(params)}")
    try:
        return sp.parse_expr(source, local_dict=local, evaluate=True)
    except (SyntaxError, TypeError, ValueError, sp.SympifyError, tokenize.TokenError) as e:
        raise ClaimError(f"the claim {text!r} is not a formula SymPy can read: {e}") from None


def _check_names(d: _Subject, expr: sp.Expr) -> None:
    for s in expr.free_symbols:
        p = naming.parse(s)
        if p is None:
            if s.name not in d.params and s.name not in SIZES:   # sizes bound a Part
                raise ClaimError(f"{s} is not a parameter of {d.name!r}")
        elif p.base not in d.vectors:
            raise ClaimError(f"{s}: {d.name!r} has no vector {p.base!r}; it has "
                             f"{', '.join(sorted(d.vectors))}")


def _unsummed(e: sp.Expr) -> sp.Expr:
    return e.args[0] if isinstance(e, TimeSum) else e


class _Canon:
    """Rewrites expressions in the remaining quantities (see the module's docstring)."""

    def __init__(self, d: _Subject):
        self.forward, self.adjoints, self.memo = d.forward, d.adjoints, {}

    def __call__(self, e: sp.Expr) -> sp.Expr:
        if e not in self.memo:
            self.memo[e] = self._rewrite(sp.sympify(e).doit())
        return self.memo[e]

    def _definition(self, s: sp.Symbol):
        """s's defining expression (shifted to s's time), or None for a remaining quantity."""
        p = naming.parse(s)
        if p is None or (p.kind == "" and p.shift < 0):   # the states at t-1 are given
            return None
        at = naming.timed(p.base, 0, p.kind)
        table = self.forward if p.kind == "" else self.adjoints
        if at not in table:
            return None
        return table[at].xreplace({v: naming.shift(v, p.shift) for v in table[at].free_symbols})

    def _rewrite(self, e):
        if isinstance(e, sp.Symbol):
            found = self._definition(e)
            return e if found is None else self(found)
        if not e.args:
            return e
        return e.func(*(self(a) for a in e.args))


SIZES = {"D": 2, "H": 3}   # small and different, so that a transposed product shows
OUTPUTS = 4                # K, a head's output size


class _Instances:
    """Random values of every remaining quantity, on ``POINTS`` instances."""

    def __init__(self, d: _Subject, seed: int):
        self.d, self.seed, self.values = d, seed, [{} for _ in range(POINTS)]

    def shape(self, s: sp.Symbol) -> tuple[int, ...]:
        p = naming.parse(s)
        dims = self.d.params[s.name] if p is None else (self.d.vectors[p.base],)
        return tuple(OUTPUTS if dim == "K" else size_value(dim, **SIZES) for dim in dims)

    def leaf(self, s: sp.Symbol, k: int) -> np.ndarray:
        if s not in self.values[k]:
            rng = np.random.default_rng([self.seed, k, zlib.crc32(str(s).encode())])
            self.values[k][s] = rng.uniform(0.2, 0.9, self.shape(s))
        return self.values[k][s]

    def value(self, e: sp.Expr, k: int):
        """e on instance k, as a NumPy array (or a number)."""
        return evaluate(e, lambda s: self.leaf(s, k), SIZES)


def _close(a, b) -> bool:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape and a.size != 1 and b.size != 1:
        return False
    return bool(np.allclose(a, b, rtol=TOLERANCE, atol=TOLERANCE))


def _same(a, b, inst, instances=range(POINTS)) -> bool:
    try:
        return all(_close(inst.value(a, k), inst.value(b, k)) for k in instances)
    except EvaluationError as e:
        raise ClaimError(f"the claim uses a function symlstm cannot evaluate: {e}") from None
    except ValueError:   # shapes that do not fit: a product the wrong way round
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


def _match(canon, inst, g, claim):
    """The derivation's paths no claim term matches, and the claim terms no path matches:
    whole terms first, then the pieces of the terms left over."""
    paths, left = list(g.terms), list(sp.Add.make_args(claim))
    for stage in ("terms", "pieces"):
        if stage == "pieces":
            left = [p for c in left for p in _pieces(c)]
        unmatched = []
        for c in left:
            k = next((k for k, t in enumerate(paths)
                      if _same(canon(c), canon(_unsummed(t.expr)), inst)), None)
            if k is None:
                unmatched.append(c)
            else:
                paths.pop(k)
        left = unmatched
    return tuple(paths), tuple(left)


def _counterexample(claimed, derived, inst) -> dict:
    """The first instance the two sides differ on: every quantity's value, and both sides'."""
    from .printers import comment
    k = next((k for k in range(POINTS) if not _same(claimed, derived, inst, [k])), 0)
    used = sorted((claimed.free_symbols | derived.free_symbols) - set(map(sp.Symbol, SIZES)),
                  key=sp.default_sort_key)   # D and H bound a Part: sizes, not quantities
    try:
        claim = inst.value(claimed, k)
    except ValueError as e:
        claim = f"no value ({e})"
    return {"sizes": dict(SIZES), "at": {comment(s): inst.leaf(s, k) for s in used},
            "claim": claim, "derived": inst.value(derived, k)}
