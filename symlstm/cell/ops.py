"""The operations cells are written with: one table entry each, holding all there is to know.

Vectors are plain commutative SymPy symbols, read element-wise: ``i*z`` is the
Hadamard product i ⊙ z and ``tanh(c)`` is applied to every element.  The only
operations that mix elements are the reductions below and the matrix products of
``products`` (re-exported here); the engine keeps them as opaque atoms so SymPy never
has to do matrix calculus.

``OPS`` maps each element-wise function to its :class:`Op`: the derivative rule the
sweep uses, its NumPy, LaTeX and comment spellings, and its definition in elementary
functions (what the independent checks differentiate).  Adding an operation is adding
one entry; a function without one is refused when a cell is built.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import sympy as sp

from .products import (  # noqa: F401 (re-exported: the grammar is read from ops)
    D, H, HS, STRUCTURE, Concat, HeadOuter, MatTVec, MatVec, Outer, Part, Place, RowSum, TimeSum,
    Transposed, concat, matrix_param, matvec, outer, part, transpose)


class sigma(sp.Function):
    """The logistic sigmoid σ(a) = 1 / (1 + e^{-a}), element-wise."""

    nargs = 1

    def fdiff(self, argindex=1):
        return OPS[sigma].derivative(self, self.args[0])

    def _eval_rewrite_as_exp(self, a, **kwargs):
        return 1 / (1 + sp.exp(-a))


class relu(sp.Function):
    """max(0, a), element-wise.  Its derivative is taken as 0 at a = 0 (as PyTorch does)."""

    nargs = 1

    def fdiff(self, argindex=1):
        return OPS[relu].derivative(self, self.args[0])


class softplus(sp.Function):
    """log(1 + e^a), element-wise; generated code computes it stably for large |a|."""

    nargs = 1

    def fdiff(self, argindex=1):
        return OPS[softplus].derivative(self, self.args[0])


class logsigmoid(sp.Function):
    """log σ(a) = -softplus(-a), element-wise: the log of a gate, accurate for any a
    (near a for a very negative, near -e^-a for a large)."""

    nargs = 1

    def fdiff(self, argindex=1):
        return OPS[logsigmoid].derivative(self, self.args[0])


class step(sp.Function):
    """The unit step, 1 where a > 0 and 0 elsewhere: the derivative of relu."""

    nargs = 1

    def fdiff(self, argindex=1):
        return sp.S.Zero


class sqrt(sp.Function):
    """√a, element-wise (SymPy's own sqrt is a power, a ** (1/2), which cells do not take)."""

    nargs = 1

    def fdiff(self, argindex=1):
        return OPS[sqrt].derivative(self, self.args[0])


class sign(sp.Function):
    """-1, 0 or 1 as a < 0, a = 0, a > 0: the derivative of abs (0 at a = 0, as PyTorch)."""

    nargs = 1

    def fdiff(self, argindex=1):
        return sp.S.Zero


class halfstep(sp.Function):
    """1 where a > 0, ½ at a = 0 and 0 below: the derivative of max(a, b) towards a is
    halfstep(a - b), so that at a tie each side gets half the gradient (as ``torch.maximum``)."""

    nargs = 1

    def fdiff(self, argindex=1):
        return sp.S.Zero


log = sp.log
tanh = sp.tanh
exp = sp.exp
Abs = sp.Abs
Max = sp.Max
Min = sp.Min


class Op(NamedTuple):
    """Everything about one element-wise function f.

    ``derivative(y, a)`` is f'(a) (for a function of two arguments, ``derivative(y, a, b)``
    is the pair ∂y/∂a, ∂y/∂b), written through the output y = f(a) wherever that is
    exact, so that the documents read σ' = σ(1-σ) and code reuses cached outputs.
    ``numpy``, ``latex`` and ``comment`` are format strings of the printed arguments ``{a}``
    (and ``{b}``);
    ``ufunc``, when set, is a NumPy call that takes ``out=`` to compute in place.
    ``definition(a, m)`` (``definition(a, b, m)``) writes f with the elementary functions of ``m`` (SymPy, symengine,
    or the brute-force check's 50-digit tape: ``m.exp``, ``m.log``, ``m.tanh``,
    ``m.Piecewise``, or any other function of mpmath's); the brute-force check differentiates
    that, never the rule above.
    """
    func: type
    derivative: Callable
    numpy: str
    latex: str
    comment: str
    definition: Callable
    ufunc: str | None = None
    about: str = ""


#: The operation table, keyed by function; ``about`` is a line on each, for readers of the table.
OPS: dict[type, Op] = {op.func: op for op in (
    Op(sigma, lambda y, a: y * (1 - y), "sigmoid({a})", r"\sigma\left({a}\right)", "σ({a})",
        lambda a, m: 1 / (1 + m.exp(-a)), "sigmoid", "σ(a) = 1/(1 + e^-a); σ' = σ(1 - σ)"),
    Op(sp.tanh, lambda y, a: 1 - y**2, "np.tanh({a})", r"\tanh\left({a}\right)", "tanh({a})",
        lambda a, m: m.tanh(a), "np.tanh", "tanh' = 1 - tanh²"),
    Op(sp.exp, lambda y, a: y, "np.exp({a})", r"e^{{{a}}}", "exp({a})",
        lambda a, m: m.exp(a), "np.exp", "exp' = exp"),
    Op(sp.log, lambda y, a: 1 / a, "np.log({a})", r"\log\left({a}\right)", "log({a})",
        lambda a, m: m.log(a), "np.log", "natural logarithm; log'(a) = 1/a"),
    Op(softplus, lambda y, a: sigma(a), "np.logaddexp(0, {a})",
        r"\operatorname{{softplus}}\left({a}\right)", "softplus({a})",
        lambda a, m: m.log(1 + m.exp(a)), None, "log(1 + e^a), stable for large |a|; softplus' = σ"),
    Op(logsigmoid, lambda y, a: sigma(-a), "logsigmoid({a})", r"\log\sigma\left({a}\right)",
        "logσ({a})", lambda a, m: -m.log(1 + m.exp(-a)), "logsigmoid",
        "log σ(a) = -log(1 + e^-a); (log σ)' = 1 - σ(a) = σ(-a), which keeps its digits "
        "where σ(a) is near 1, as 1 - e^y would not"),
    Op(relu, lambda y, a: step(y), "np.maximum({a}, 0)", r"\operatorname{{relu}}\left({a}\right)",
        "relu({a})", lambda a, m: m.Piecewise((a, a > 0), (0, True)), None,
        "max(0, a); relu'(a) = 1 for a > 0, and 0 for a <= 0 (0 at a = 0, as PyTorch)"),
    Op(step, lambda y, a: sp.S.Zero, "np.heaviside({a}, 0)", r"\mathbf{{1}}\left[{a} > 0\right]",
        "[{a} > 0]", lambda a, m: m.Piecewise((1, a > 0), (0, True)), None,
        "1 for a > 0, else 0 (relu's derivative)"),
    Op(sqrt, lambda y, a: 1 / (2 * y), "np.sqrt({a})", r"\sqrt{{{a}}}", "√({a})",
        lambda a, m: m.sqrt(a), "np.sqrt", "the square root; sqrt' = 1/(2 sqrt)"),
    Op(sp.Abs, lambda y, a: sign(a), "np.abs({a})", r"\left|{a}\right|", "|{a}|",
        lambda a, m: m.Piecewise((a, a > 0), (-a, a < 0), (0 * a, True)), "np.abs",
        "|a|; abs'(a) = sign(a), 0 at a = 0 (as PyTorch)"),
    Op(sign, lambda y, a: sp.S.Zero, "np.sign({a})", r"\operatorname{{sign}}\left({a}\right)",
        "sign({a})", lambda a, m: m.Piecewise((1, a > 0), (-1, a < 0), (0, True)), None,
        "-1, 0 or 1 (abs's derivative)"),
    Op(halfstep, lambda y, a: sp.S.Zero, "np.heaviside({a}, 0.5)",
        r"H\left({a}\right)", "H({a})",
        lambda a, m: m.Piecewise((1, a > 0), (0, a < 0), (sp.S.Half, True)), None,
        "1 for a > 0, 1/2 at 0, 0 below (the derivative of max and min)"),
    Op(sp.Max, lambda y, a, b: (halfstep(a - b), halfstep(b - a)), "np.maximum({a}, {b})",
        r"\max\left({a}, {b}\right)", "max({a}, {b})",
        lambda a, b, m: m.Piecewise((a, a > b), (b, b > a), ((a + b) / 2, True)), None,
        "the larger of a and b; at a tie each gets half the gradient (as torch.maximum)"),
    Op(sp.Min, lambda y, a, b: (halfstep(b - a), halfstep(a - b)), "np.minimum({a}, {b})",
        r"\min\left({a}, {b}\right)", "min({a}, {b})",
        lambda a, b, m: m.Piecewise((a, a < b), (b, b < a), ((a + b) / 2, True)), None,
        "the smaller of a and b; at a tie each gets half the gradient (as torch.minimum)"),
)}

#: The operations of two arguments (max and min); every other one takes one.
BINARY = (sp.Max, sp.Min)


class total(sp.Function):
    """Σ_k a_k: a vector summed to one number for each sample (a vector of size 1, which
    combines with any vector entry by entry)."""

    nargs = 1

    def fdiff(self, argindex=1):
        return REDUCTIONS[total].derivative(self, self.args[0])


class mean(sp.Function):
    """(1/n) Σ_k a_k over a vector's n entries: one number for each sample, as ``total``.
    Its derivative 1/n needs the size, so the sweep reads it as total(a)/n
    (:func:`expand_means`)."""

    nargs = 1


class headsum(sp.Function):
    """Σ over each head's entries: an H-vector or a matrix per head summed to one number per
    head (a vector of size NH).  ``headsum(n * q)`` is the dot product nᵀq of every head."""

    nargs = 1

    def fdiff(self, argindex=1):
        return REDUCTIONS[headsum].derivative(self, self.args[0])


class lse(sp.Function):
    """log Σ_k exp(a_k), the log-normaliser of the softmax.  A reduction: heads only."""

    nargs = 1

    def fdiff(self, argindex=1):
        return REDUCTIONS[lse].derivative(self, self.args[0])


#: Reductions of a vector to one number per sample: total and mean inside cells (variances,
#: dot products, norms), total and lse in the losses of output heads.  ``derivative(y, a)``
#: is ∂y/∂a_k for every entry k, written through y: Σ_k a_k gives 1, lse gives the softmax
#: exp(a - lse(a)); mean has none (see :func:`expand_means`).  Each entry has the same
#: fields as those of ``OPS``.
REDUCTIONS = {op.func: op for op in (
    Op(total, lambda y, a: sp.S.One, "np.sum({a}, axis=-1, keepdims=True)",
       r"\mathbf{{1}}^{{\top}}\!\left({a}\right)", "Σ_k {a}", None, None,
       "the sum of a vector's entries; ∂/∂a_k = 1"),
    Op(mean, None, "np.mean({a}, axis=-1, keepdims=True)",
       r"\operatorname{{mean}}\left({a}\right)", "mean({a})", None, None,
       "the mean of a vector's n entries; ∂/∂a_k = 1/n"),
    Op(headsum, lambda y, a: sp.S.One, "headsum({a})",
       r"\mathbf{{1}}_{{h}}^{{\top}}\!\left({a}\right)", "Σ_head {a}", None, None,
       "the sum of each head's entries (of an H-vector or a matrix per head); ∂/∂a_k = 1"),
    Op(lse, lambda y, a: sp.exp(a - y), "logsumexp({a})",
       r"\operatorname{{lse}}\left({a}\right)", "lse({a})", None, None,
       "log Σ_k exp(a_k), computed as max(a) + log Σ_k exp(a_k - max(a)); "
       "∂/∂a_k = exp(a_k - lse(a)), the softmax"),
)}


#: The reductions a cell's equations may use (lse belongs to the heads' losses).
CELL_REDUCTIONS = (total, mean, headsum)


def expand_means(e: sp.Expr, size) -> sp.Expr:
    """``e`` with every mean(a) written as total(a)/n, n = ``size(a)`` (a SymPy expression in
    the sizes D and H): the form whose derivative the table gives."""
    return e.replace(lambda u: isinstance(u, mean), lambda u: total(u.args[0]) / size(u.args[0]))


def diff(e: sp.Expr, v: sp.Symbol) -> sp.Expr:
    """∂e/∂v for an element-wise expression, every function's rule taken from ``OPS``.

    Matrix products must already be replaced by symbols (the sweep does that)."""
    if e == v:
        return sp.S.One
    if not e.has(v):
        return sp.S.Zero
    if e.is_Add:
        return sp.Add(*(diff(a, v) for a in e.args))
    if e.is_Mul:
        return sp.Add(*(sp.Mul(*e.args[:k], diff(a, v), *e.args[k + 1:])
                        for k, a in enumerate(e.args) if a.has(v)))
    if e.is_Pow:
        base, n = e.args
        return n * base ** (n - 1) * diff(base, v)
    rule = OPS.get(e.func) or REDUCTIONS.get(e.func)   # read live: a new entry counts at once
    if rule is not None and rule.derivative is not None:
        if len(e.args) == 1:
            return rule.derivative(e, e.args[0]) * diff(e.args[0], v)
        return sp.Add(*(d * diff(a, v) for d, a in zip(rule.derivative(e, *e.args), e.args)))
    raise TypeError(f"no derivative rule for {e.func} (the rules live in symlstm.cell.ops.OPS)")


def elementary(e: sp.Expr, m, leaf: Callable) -> object:
    """Rebuild the element-wise expression ``e`` with module ``m``'s elementary functions:
    every table function by its ``definition``, every symbol, number and matrix product by
    ``leaf``, and so is every reduction (it reads more than the current entry).  The
    brute-force check uses this with its 50-digit tape as ``m``."""
    if e.is_Number or e.is_NumberSymbol or isinstance(e, (sp.Symbol, MatVec, Concat, Part, HeadOuter)) \
            or e.func in REDUCTIONS:
        return leaf(e)
    args = [elementary(a, m, leaf) for a in e.args]
    if e.is_Add:
        out = args[0]
        for a in args[1:]:
            out = out + a
        return out
    if e.is_Mul:
        out = args[0]
        for a in args[1:]:
            out = out * a
        return out
    if e.is_Pow:
        return args[0] ** int(e.exp)
    return OPS[e.func].definition(*args, m)
