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

import re
import zlib
from typing import NamedTuple

import numpy as np
import sympy as sp

from .. import naming
from ..cell.ops import (OPS, REDUCTIONS, Concat, MatTVec, MatVec, Outer, Part, TimeSum, Transposed,
                        lse, relu, sigma, softplus, total)
from ..cell.parts import size_value
from ..derivation.bptt import Derivation, describe_path
from ..derivation.sweep import Term
from .numeric import EvaluationError, Run, evaluate, unroll


#: Names a claim may call besides the cell's own: the printed notation's functions.
FUNCTIONS = {"sigma": sigma, "σ": sigma, "tanh": sp.tanh, "exp": sp.exp, "log": sp.log,
             "relu": relu, "softplus": softplus, "sech": sp.sech, "cosh": sp.cosh,
             "sinh": sp.sinh, "sqrt": sp.sqrt, "erf": sp.erf, "diff": sp.diff, "MatVec": MatVec,
             "MatTVec": MatTVec, "Outer": Outer, "TimeSum": TimeSum, "Transposed": Transposed,
             "Concat": Concat, "Part": Part, "lse": lse, "total": total,
             "softmax": lambda a: sp.exp(a - lse(a)),
             **{f.__name__: f for f in (*OPS, *REDUCTIONS)}}
#: Constants a claim may name (SymPy prints e as E).
CONSTANTS = {"pi": sp.pi, "π": sp.pi, "E": sp.E}
#: ASCII spellings of the adjoints' marks: delta_h[t] is δh[t], Delta_h[t] is Δh[t] and
#: delta_plus_c[t] is δ⁺c[t] (longest first).
ASCII_KINDS = (("delta_plus_", naming.CARRY), ("delta_", naming.ADJOINT),
               ("Delta_", naming.EXTERNAL))
SIZES = {"D": 2, "H": 3}   # small and different, so that a transposed product shows
OUTPUTS = 4                # K, a head's output size
STEPS = 7                  # each run's length
CHECKED = (3, 4, 5)        # the steps t at which the two sides are compared
REACH = 2                  # a claim reads steps t-2 to t+2
RUNS = 3                   # runs the two sides are compared on
TOLERANCE = 1e-9           # relative


class ClaimError(ValueError):
    """A claim that cannot be read: the message says what was wrong."""


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


def _subject(derivation) -> _Subject:
    if isinstance(derivation, _Subject):
        return derivation
    from ..derivation.bptt import derive
    from ..network.heads import Network
    head = derivation.head if isinstance(derivation, Network) else None
    d = derivation.cell if head else derivation if isinstance(derivation, Derivation) \
        else derive(derivation)
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
    return _Subject(name, gradients, tuple(forward), tuple(backward), carries, vectors, params,
                    head.head.targets if head else "", marked)


# --- reading a claim ---------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>\d+(?:\.\d+)?)
  | (?P<sum>[Σ∑]_?[tk])
  | (?P<name>(?:δ⁺|δ\+|δ|Δ)?[^\W\dᵀ²][^\Wᵀ²]*)
  | (?P<transpose>ᵀ|\^T\b|\.T\b|')
  | (?P<op>\*\*|\^|[-+*/(),:\[\]²−⊙·∘])
""", re.VERBOSE)
_PRODUCT = {"*", "·", "⊙", "∘", "/"}
_KINDS = {"δ⁺": naming.CARRY, "δ+": naming.CARRY, "δ": naming.ADJOINT, "Δ": naming.EXTERNAL}


class _Token(NamedTuple):
    kind: str       # "number", "sum", "name", "transpose", "op" or "end"
    text: str
    at: int         # its column in the claim


class _Value(NamedTuple):
    """A parsed piece: its SymPy expression and what it is: "s" a number, "v" a vector,
    "m" a matrix, "r" a transposed vector (the right factor of an outer product)."""
    expr: sp.Expr
    shape: str


def _tokens(text: str) -> list[_Token]:
    out, at = [], 0
    while at < len(text):
        m = _TOKEN.match(text, at)
        if m is None:
            raise _error(text, at, "an operator, a name or a number")
        if m.lastgroup != "space":
            token = m.group()
            out.append(_Token(m.lastgroup, "-" if token == "−" else token, at))
        at = m.end()
    out.append(_Token("end", "", len(text)))
    return out


def _error(text: str, at: int, expected: str, found: str | None = None) -> ClaimError:
    if found is None:
        found = "the end of the claim" if at >= len(text) else repr(text[at])
    return ClaimError(f"the claim stops making sense at column {at + 1}: expected {expected}, "
                      f"found {found}\n  {text}\n  {' ' * at}^")


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
    d = _subject(d)
    if not isinstance(text, str) or not text.strip():
        raise ClaimError("a claim must be a non-empty formula, such as 'δa[t]*(1 - a[t]**2)'")
    value = _Parser(d, text).claim()
    return value.expr


class _Parser:
    """Recursive descent over the claim's tokens, keeping track of what each piece is, so
    that juxtaposition and ᵀ mean the product they mean in the printed notation."""

    def __init__(self, d: _Subject, text: str):
        self.d, self.text, self.tokens, self.k = d, text, _tokens(text), 0

    @property
    def next(self) -> _Token:
        return self.tokens[self.k]

    def take(self) -> _Token:
        token = self.tokens[self.k]
        self.k += 1
        return token

    def expect(self, text: str, what: str) -> _Token:
        if self.next.text != text or self.next.kind not in ("op", "transpose"):
            self.fail(what)
        return self.take()

    def fail(self, expected: str, token: _Token | None = None, found: str | None = None):
        token = token or self.next
        raise _error(self.text, token.at, expected, found)

    def claim(self) -> _Value:
        value = self.sum()
        if self.next.kind != "end":
            self.fail("an operator (+, -, *, ⊙, /, **) or the end of the claim")
        if value.shape == "r":
            self.fail("no transposed vector at the end: xᵀ closes an outer product, as in "
                      "δzbar[t] x[t]ᵀ")
        return value

    # sum := ['+'|'-'] product (('+'|'-') product)*
    def sum(self) -> _Value:
        sign = 1
        if self.next.text in "+-" and self.next.kind == "op":
            sign = -1 if self.take().text == "-" else 1
        value = self.product()
        out, shape = sign * value.expr, value.shape
        while self.next.kind == "op" and self.next.text in ("+", "-"):
            op = self.take()
            start, value = self.next, self.product()
            shape = self.combined(shape, value.shape, start, "added")
            out = out + value.expr if op.text == "+" else out - value.expr
        return _Value(out, shape)

    def combined(self, a: str, b: str, token: _Token, how: str) -> str:
        if "r" in (a, b):
            self.fail("no transposed vector here: xᵀ closes an outer product, as in "
                      "δzbar[t] x[t]ᵀ", token, "a transposed vector " + how)
        if {a, b} == {"v", "m"}:
            self.fail(f"a term of the same kind: a vector and a matrix cannot be {how}", token,
                      "a " + ("matrix" if b == "m" else "vector"))
        return "s" if a == b == "s" else "m" if "m" in (a, b) else "v"

    def starts_factor(self) -> bool:
        t = self.next
        return t.kind in ("name", "number", "sum") or (t.kind == "op" and t.text == "(")

    # product := factor ((* | ⊙ | · | / | juxtaposition) factor)* [sum_t product]
    def product(self) -> _Value:
        if self.next.kind == "sum":
            return self.summed()
        value = self.factor()
        while True:
            t = self.next
            if t.kind == "sum":
                inner = self.summed()
                value = self.times(value, inner, t, "*")
            elif t.kind == "op" and t.text in _PRODUCT:
                self.take()
                if self.next.kind == "sum":
                    right = self.summed()
                else:
                    signed = self.next.kind == "op" and self.next.text in ("+", "-")
                    if not (self.starts_factor() or signed):
                        self.fail(f"a factor after {t.text!r}")
                    right = self.factor()
                value = self.times(value, right, t, t.text)
            elif self.starts_factor():
                value = self.times(value, self.factor(), t, "")
            else:
                return value

    def summed(self) -> _Value:
        """Σ_t or Σ_k and the product that follows it."""
        t = self.take()
        if not self.starts_factor():
            self.fail(f"what {t.text} sums, such as {t.text} δzbar[t] x[t]ᵀ")
        inner = self.product()
        if t.text[-1] == "t":
            return _Value(TimeSum(inner.expr), inner.shape)
        return _Value(total(inner.expr), "v")

    def times(self, a: _Value, b: _Value, token: _Token, op: str) -> _Value:
        shapes = a.shape + b.shape
        if op == "/":
            if b.shape not in "sv":
                self.fail("a number or a vector to divide by", token, "a matrix")
            return _Value(a.expr / b.expr, self.combined(a.shape, b.shape, token, "divided"))
        if op in ("⊙", "∘"):
            if "r" in shapes or shapes in ("mv", "vm"):
                self.fail("factors of one shape around ⊙, which multiplies entry by entry (a "
                          "matrix product is written R_fᵀ δfbar[t+1], an outer product "
                          "δzbar[t] x[t]ᵀ)", token, "⊙ between a matrix and a vector")
            return _Value(a.expr * b.expr, self.combined(a.shape, b.shape, token, "multiplied"))
        if shapes == "mv":
            c, W = a.expr.as_coeff_Mul()   # 2 R_fᵀ v is 2 (R_fᵀ v)
            if isinstance(W, Transposed) and isinstance(W.args[0], sp.Symbol):
                return _Value(c * MatTVec(W.args[0], b.expr), "v")
            return _Value(c * MatVec(W, b.expr), "v")
        if shapes == "vr":
            return _Value(Outer(a.expr, b.expr), "m")
        if shapes in ("ss", "sv", "vs", "vv", "sm", "ms"):
            return _Value(a.expr * b.expr, self.combined(a.shape, b.shape, token, "multiplied"))
        if shapes == "vm":
            self.fail("the matrix before the vector: a matrix product is written matrix "
                      "first, as R_fᵀ δfbar[t+1]", token, "a vector times a matrix")
        if shapes == "mm":
            self.fail("a vector after the matrix", token, "a product of two matrices")
        self.fail("a vector before xᵀ: an outer product is written δzbar[t] x[t]ᵀ", token,
                  "a transposed vector in a product")

    # factor := '-' factor | postfix [('**' | '^') factor]
    def factor(self) -> _Value:
        t = self.next
        if t.kind == "op" and t.text in "+-":
            self.take()
            value = self.factor()
            return _Value(value.expr if t.text == "+" else -value.expr, value.shape)
        base = self.postfix()
        if self.next.kind == "op" and self.next.text in ("**", "^"):
            op = self.take()
            start = self.next
            exponent = self.factor()
            if exponent.shape != "s":
                self.fail("a number as the exponent", start, "a vector")
            if base.shape not in "sv":
                self.fail("a number or a vector before " + op.text, op, "a matrix")
            return _Value(base.expr ** exponent.expr, base.shape)
        return base

    # postfix := primary ('ᵀ' | '²' | '[' size ':' size ']')*
    def postfix(self) -> _Value:
        value = self.primary()
        while True:
            t = self.next
            if t.kind == "transpose":
                self.take()
                value = self.transposed(value, t)
            elif t.kind == "op" and t.text == "²":
                self.take()
                value = _Value(value.expr ** 2, value.shape)
            elif t.kind == "op" and t.text == "[":
                value = self.part(value)
            else:
                return value

    def transposed(self, value: _Value, token: _Token) -> _Value:
        if value.shape == "m":
            e = value.expr
            return _Value(e.args[0] if isinstance(e, Transposed) else Transposed(e), "m")
        return _Value(value.expr, {"v": "r", "r": "v", "s": "s"}[value.shape])

    def part(self, value: _Value) -> _Value:
        """Rows start:stop of a vector, as (δX[t+1])[D:D + H]."""
        t = self.take()
        if value.shape != "v":
            self.fail("a vector before the rows [start:stop]", t)
        start = self.sum().expr
        self.expect(":", "':' between the first row and the end, as in [D:D + H]")
        stop = self.sum().expr
        self.expect("]", "']' after the rows, as in [D:D + H]")
        return _Value(Part(value.expr, start, stop), "v")

    # primary := number | '(' sum ')' | function ['²'] '(' sum (',' sum)* ')' | name | vector
    def primary(self) -> _Value:
        t = self.next
        if t.kind == "number":
            self.take()
            return _Value(sp.Rational(t.text) if "." not in t.text else sp.Float(t.text), "s")
        if t.kind == "op" and t.text == "(":
            self.take()
            value = self.sum()
            self.expect(")", "')' to close the '(' at column " + str(t.at + 1))
            return value
        if t.kind != "name":
            self.fail("a name, a number or '('")
        self.take()
        if t.text in self.d.params:
            shape = self.d.params[t.text]
            return _Value(sp.Symbol(t.text), "svm"[min(len(shape), 2)])
        if t.text in FUNCTIONS:
            return self.call(t)
        if t.text in SIZES:
            return _Value(sp.Symbol(t.text), "s")
        if t.text in CONSTANTS and not (self.next.kind == "op" and self.next.text == "["):
            return _Value(CONSTANTS[t.text], "s")
        return self.vector(t)

    def call(self, name: _Token) -> _Value:
        square = self.next.text == "²" and bool(self.take())
        self.expect("(", f"'(' after {name.text}")
        args = [self.sum()]
        while self.next.kind == "op" and self.next.text == ",":
            self.take()
            args.append(self.sum())
        self.expect(")", f"')' to close {name.text}(")
        f = FUNCTIONS[name.text]
        try:
            e = f(*(a.expr for a in args))
        except (TypeError, ValueError) as err:
            self.fail(f"as many arguments as {name.text} takes ({err})", name, str(len(args)))
        shape = {MatVec: "v", MatTVec: "v", Part: "v", Concat: "v", lse: "v", total: "v",
                 Outer: "m", Transposed: "m"}.get(f, args[0].shape)
        return _Value(e ** 2 if square else e, shape)

    def vector(self, t: _Token) -> _Value:
        """A vector with its time: c[t-1], δc[t+1], δ⁺h[t], Δh[t], delta_h[t]."""
        kind, base = "", t.text
        for mark, k in (*_KINDS.items(), *ASCII_KINDS):
            if base.startswith(mark):
                kind, base = k, base[len(mark):]
                break
        if not (self.next.kind == "op" and self.next.text == "["):
            if kind or base in self.d.vectors:
                self.fail(f"its time: a vector is written with its time, as {t.text}[t] or "
                          f"{t.text}[t-1]")
            self.fail(f"a parameter ({', '.join(self.d.params)}), a function, or a vector with "
                      "its time, such as c[t-1] or δc[t+1] (in ASCII delta_c[t+1]; Delta_h[t] "
                      "for Δh[t], delta_plus_c[t] for δ⁺c[t])", t,
                      f"{t.text!r}, which is neither a parameter of {self.d.name!r} nor a "
                      "function")
        if base not in self.d.vectors:
            self.fail(f"a vector of {self.d.name!r}: {', '.join(sorted(self.d.vectors))}", t,
                      f"{t.text}[...], but {self.d.name!r} has no vector {base!r}")
        self.take()
        index = self.next
        if not (index.kind == "name" and index.text == "t"):
            self.fail("a time such as t, t-1 or t+1")
        self.take()
        shift = 0
        if self.next.kind == "op" and self.next.text in "+-":
            sign = -1 if self.take().text == "-" else 1
            if self.next.kind != "number" or "." in self.next.text:
                self.fail("a whole number of steps, as in t+1")
            shift = sign * int(self.take().text)
        self.expect("]", "']' after the time, as in c[t-1]")
        if abs(shift) > REACH:
            self.fail(f"a time from t-{REACH} to t+{REACH}", index, f"t{shift:+d}")
        return _Value(naming.timed(base, shift, kind), "v")


def _check_names(d: _Subject, expr: sp.Expr) -> None:
    for s in expr.free_symbols:
        p = naming.parse(s)
        if p is None:
            if s.name not in d.params and s.name not in SIZES:   # sizes bound a Part
                raise ClaimError(f"{s} is not a parameter of {d.name!r}")
        elif p.base not in d.vectors:
            raise ClaimError(f"{s}: {d.name!r} has no vector {p.base!r}; it has "
                             f"{', '.join(sorted(d.vectors))}")
        elif p.kind == naming.CARRY and p.base not in d.marked[naming.CARRY]:
            raise ClaimError(f"{s}: δ⁺ marks what step t+1 sends back to a state, and "
                             f"{p.base} is none; the states: "
                             f"{', '.join(sorted(d.marked[naming.CARRY]))}")
        elif p.kind == naming.EXTERNAL and p.base not in d.marked[naming.EXTERNAL]:
            raise ClaimError(f"{s}: Δ marks what the loss sends to a vector directly, and "
                             f"only {', '.join(sorted(d.marked[naming.EXTERNAL]))} gets it")
        elif abs(p.shift) > REACH:
            raise ClaimError(f"{s}: a claim reads the steps t-{REACH} to t+{REACH}")


def _unsummed(e: sp.Expr) -> sp.Expr:
    """``e`` with each Σ_t dropped: a summed gradient is compared step by step."""
    return sp.sympify(e).replace(lambda a: isinstance(a, TimeSum), lambda a: a.args[0])


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
        return tuple(OUTPUTS if dim == "K" else size_value(dim, **SIZES) for dim in dims)

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
            return unroll(STEPS, d.forward, d.backward, d.carries, leaf, SIZES)
        except EvaluationError as e:
            raise ClaimError(f"{d.name!r} cannot be run: {e}") from None

    def value(self, e: sp.Expr, k: int, t: int):
        """e on run k with t at step ``t``, as a NumPy array (or a number)."""
        try:
            return evaluate(e, self.runs[k].at(t), SIZES)
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
    used = sorted((claimed.free_symbols | derived.free_symbols) - set(map(sp.Symbol, SIZES)),
                  key=sp.default_sort_key)   # D and H bound a Part: sizes, not quantities
    try:
        claim = runs.value(claimed, k, t)
    except ValueError as e:
        if isinstance(e, ClaimError):
            raise
        claim = f"no value ({e})"
    sizes = {**SIZES, "K": OUTPUTS} if runs.d.targets else dict(SIZES)
    return {"sizes": sizes, "steps": STEPS, "run": k, "step": t,
            "at": {comment(s): runs.runs[k].value(s, t) for s in used},
            "claim": claim, "derived": runs.value(derived, k, t)}
