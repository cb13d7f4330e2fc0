"""Printers: SymPy expressions to LaTeX, to NumPy code, and to one-line comments.

Only ``_print_<Class>`` overrides; every sub-expression goes back through ``self._print``.
Every element-wise function is spelled by its entry in ``ops.OPS``; each printer
remembers what it has printed, so a sub-expression shared by many terms is printed once.
"""
from __future__ import annotations

import functools
import re
import unicodedata
from typing import NamedTuple

import sympy as sp
from sympy.printing.latex import LatexPrinter
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.str import StrPrinter

from . import naming
from .lower import GroupAdjoint, Proj
from .ops import OPS, REDUCTIONS, Transposed


def _adjoint_first(f: sp.Expr):
    if isinstance(f, sp.Symbol):
        p = naming.parse(f)
        if p is not None and p.kind:
            return (0, str(f))
        return (1, str(f)) if p is not None else (2, str(f))
    return (3 if isinstance(f, (sp.Function, sp.Pow)) else 4, sp.default_sort_key(f))


class _TablePrinter:
    """Mixin: table functions printed from ``OPS`` (field ``_spelling``), and a memo."""

    _spelling = "comment"

    def _print(self, expr, **kwargs):
        if kwargs:
            return super()._print(expr, **kwargs)
        memo = self.__dict__.setdefault("_memo", {})
        key = (expr, self._memo_key())
        if key not in memo:
            func = getattr(expr, "func", None)
            op = OPS.get(func) or REDUCTIONS.get(func)
            memo[key] = (getattr(op, self._spelling).format(a=self._print(expr.args[0]))
                         if op is not None and isinstance(expr, sp.Expr) and expr.args
                         else super()._print(expr))
        return memo[key]

    def _memo_key(self):
        return ()


@functools.lru_cache(maxsize=1 << 16)
def _has_symbols(e: sp.Basic) -> bool:
    """Whether ``e`` holds a symbol (``free_symbols``, shared subexpressions looked at once)."""
    return isinstance(e, sp.Symbol) or any(_has_symbols(a) for a in e.args)


def _split_fraction(expr: sp.Mul):
    """(numerator factors, denominator as a product with positive powers)."""
    num = [f for f in expr.args if not (f.is_Pow and f.exp.is_negative)]
    den = [f.base ** -f.exp for f in expr.args if f.is_Pow and f.exp.is_negative]
    return num, den


def _hadamard(printer, expr: sp.Mul, sep: str, coeff_sep: str = " ") -> str:
    """Print an element-wise product with ``sep`` between vector factors."""
    coeff, factors = expr.as_coeff_mul()
    parts = [printer.parenthesize(f, PRECEDENCE["Mul"]) for f in sorted(factors, key=_adjoint_first)]
    body = sep.join(parts)
    if coeff == 1:
        return body
    if coeff == -1:
        return "-" + body
    return f"{printer._print(coeff)}{coeff_sep}{body}"


class CellLatexPrinter(_TablePrinter, LatexPrinter):
    """LaTeX in the documents' notation: ⊙ for element-wise products, time subscripts.

    ``origin`` sets the time the expression is read at: "t" (default) or a step number;
    ``index`` prints one element instead of the vector (("k",) for a vector, ("j", "k")
    for a matrix gradient), writing matrix products out as sums.
    """

    _default_settings = {**LatexPrinter._default_settings, "origin": "t", "index": ()}
    _spelling = "latex"

    def _memo_key(self):
        return self._settings["index"], tuple(self.__dict__.get("_bound", ()))

    def _summed(self):
        """A summation index not yet in use here: j, then l, m, ... for sums inside sums."""
        used = {*self._settings["index"], *self.__dict__.setdefault("_bound", [])}
        return next(s for s in "jlmnpqrsuvw" if s not in used)

    def _sum_over(self, body):
        """``\\sum_s body(s)`` with a fresh summation index s."""
        s = self._summed()
        self._bound.append(s)
        try:
            return rf"\sum_{{{s}}} {body(s)}"
        finally:
            self._bound.pop()

    def _print_Symbol(self, expr, style="plain"):
        index = self._settings["index"]
        return naming.latex(expr, self._settings["origin"], index[-1] if index else "")

    def _indexed(self, e, *index):
        """Print ``e`` at another element index."""
        old = self._settings["index"]
        self._settings["index"] = index
        try:
            return self._print(e)
        finally:
            self._settings["index"] = old

    def _matrix_element(self, W, row, col):
        if isinstance(W, Transposed):
            W, row, col = W.args[0], col, row
        return naming.latex(W, index=f"{row}{col}")

    def _print_Mul(self, expr):
        if not _has_symbols(expr):
            return super()._print_Mul(expr)
        coeff, _ = expr.as_coeff_Mul()
        if coeff.is_negative:
            return "- " + self._print(-expr)
        num, den = _split_fraction(expr)
        if den:   # element-wise division
            top = self._print(sp.Mul(*num)) if num else "1"
            return rf"\frac{{{top}}}{{{self._print(sp.Mul(*den))}}}"
        # one element of a Hadamard product is an ordinary product
        return _hadamard(self, expr, r" \, " if self._settings["index"] else r" \odot ")

    def _print_Pow(self, expr, **kwargs):
        base, n = expr.args
        if n.is_negative:
            return rf"\frac{{1}}{{{self._print(base ** -n)}}}"
        op = OPS.get(base.func)
        call = r"\left({a}\right)"
        head = op.latex[:-len(call)] if op is not None and op.latex.endswith(call) else ""
        if head.count("\\") == 1:   # \tanh^{2}\left(c_t\right); not \log\sigma^{2}(...)
            head = head.replace("{{", "{").replace("}}", "}")
            return rf"{head}^{{{self._print(n)}}}\left({self._print(base.args[0])}\right)"
        text = self._print(base)
        if not isinstance(base, sp.Symbol):
            text = rf"\left({text}\right)"
        return f"{text}^{{{self._print(n)}}}"

    def _print_Add(self, expr, order=None):
        """Matrix products first, then element-wise terms, then bare parameters (biases)."""
        def key(term):
            if term.func.__name__ == "MatVec":
                return (0, [-ord(ch) for ch in str(term.args[0])])
            if term.is_Number:
                return (1, [])
            return (3 if isinstance(term, sp.Symbol) and naming.parse(term) is None else 2,
                    [ord(ch) for ch in self._print(term).lstrip("- ")])
        terms = positive_first(sorted(expr.args, key=key))
        return latex_join([self._print(t) for t in terms])

    def _print_MatVec(self, expr):
        W, v = expr.args
        if self._settings["index"]:
            k = self._settings["index"][-1]
            return self._sum_over(lambda s: f"{self._matrix_element(W, k, s)} {self._indexed(v, s)}")
        return f"{self._print(W)} {self._print(v)}"

    def _print_MatTVec(self, expr):
        W, u = expr.args
        if self._settings["index"]:
            k = self._settings["index"][-1]
            return self._sum_over(
                lambda s: f"{self._matrix_element(W, s, k)} {self._wrap_indexed(u, s)}")
        if isinstance(W, Transposed):      # (Wᵀ)ᵀ u = W u
            return rf"{self._print(W.args[0])} {self._wrap(u)}"
        return rf"{self._print(W)}^{{\top}} {self._wrap(u)}"

    def _print_Transposed(self, expr):
        return rf"{self._print(expr.args[0])}^{{\top}}"

    def _print_Concat(self, expr):
        rows = r" \\ ".join(self._print(v) for v in expr.args)
        return rf"\begin{{bmatrix}} {rows} \end{{bmatrix}}"

    def _print_Part(self, expr):
        e, a, b = expr.args
        if self._settings["index"]:
            k = self._settings["index"][-1]
            shifted = k if a == 0 else f"{self._print(a)}+{k}"
            return self._indexed(e, shifted)
        return rf"\left[{self._print(e)}\right]_{{{self._print(a + 1)}:{self._print(b)}}}"

    def _print_Outer(self, expr):
        u, v = expr.args
        if self._settings["index"]:
            j, k = self._settings["index"]
            return rf"{self._wrap_indexed(u, j)} {self._indexed(v, k)}"
        right = self._print(v) if isinstance(v, sp.Symbol) else rf"\left({self._print(v)}\right)"
        return rf"{self._wrap(u)} {right}^{{\top}}"

    def _wrap_indexed(self, e, index):
        text = self._indexed(e, index)
        return rf"\left({text}\right)" if isinstance(e, sp.Add) else text

    def _print_TimeSum(self, expr):
        return rf"\sum_{{t=1}}^{{T}} {self._wrap(expr.args[0])}"

    def _wrap(self, e):
        text = self._print(e)
        return rf"\left({text}\right)" if isinstance(e, (sp.Add, sp.Mul)) else text


class CellNumPyPrinter(_TablePrinter, NumPyPrinter):
    """NumPy code inside one step of the generated loop (names from :mod:`naming`).

    ``inputs`` names the input sequences, which a step reads at ``[t]``.
    """

    _default_settings = {**NumPyPrinter._default_settings, "inputs": ()}
    _spelling = "numpy"

    def _module_format(self, fqn, register=True):
        return super()._module_format(fqn, register).replace("numpy.", "np.")

    def _print_Symbol(self, expr):
        p = naming.parse(expr)
        if p is not None and not p.kind and p.base in self._settings["inputs"]:
            return f"{naming.code(expr)}[t]"
        return naming.code(expr)

    def _print_Pow(self, expr, rational=False):
        base, n = expr.args
        text = self.parenthesize(base, PRECEDENCE["Pow"])
        if n.is_negative:
            return f"1/{text}" if n == -1 else f"1/{text}**{-n}"
        return f"{text}**{n}"

    def _print_Rational(self, expr):
        return f"{expr.p}/{expr.q}"

    def _print_Proj(self, expr):
        buf, a, b, timed = expr.args
        rows = f"{'' if a == 0 else self._print(a)}:{self._print(b)}"
        return f"{self._print(buf)}[t, :, {rows}]" if timed else f"{self._print(buf)}[:, {rows}]"

    def _print_Transposed(self, expr):
        return f"{self._print(expr.args[0])}.T"

    def _print_Concat(self, expr):
        return f"np.concatenate([{', '.join(self._print(v) for v in expr.args)}], axis=-1)"

    def _print_Part(self, expr):
        e, a, b = expr.args
        rows = f"{'' if a == 0 else self._print(a)}:{self._print(b)}"
        return f"{self.parenthesize(e, PRECEDENCE['Atom'])}[:, {rows}]"

    def _print_Broadcast(self, expr):
        value, n = expr.args
        return f"np.broadcast_to({self._print(value)}, (B, {self._print(n)}))"

    def _print_Slot(self, expr):
        name, offset = expr.args
        return f"{self._print(name)}[t{'' if offset == 0 else f' + {offset}'}]"

    def _print_GroupAdjoint(self, expr):
        buf, name = expr.args
        return f"{self._print(buf)}[t] @ stack_{self._print(name)}"

    def _print_HeadsAdjoint(self, expr):
        buf, name = expr.args
        return f"_heads_T({self._print(buf)}[t], stack_{self._print(name)}, H)"

    def _print_Mul(self, expr):
        if any(f.is_Pow and f.exp.is_negative for f in expr.args):
            return super()._print_Mul(expr)
        return _hadamard(self, expr, "*", "*")


def _positive_first_sum(printer, expr, order=None) -> str:
    """A sum as text, opening with a positive term (``h - n``, not ``-n + h``)."""
    terms = positive_first(printer._as_ordered_terms(expr, order=order))
    out = printer._print(terms[0])
    for t in terms[1:]:
        text = printer._print(t)
        out += f" - {text[1:].lstrip()}" if text.startswith("-") else f" + {text}"
    return out


class HeadNumPyPrinter(CellNumPyPrinter):
    """NumPy code of a head, over every step at once: arrays are (T, B, size), the cell's
    output sequence is ``hs``, and a matrix product ``V h`` is ``hs @ V.T``."""

    _default_settings = {**CellNumPyPrinter._default_settings, "output": "h"}

    def _print_Symbol(self, expr):
        p = naming.parse(expr)
        if p is not None and not p.kind and p.base == self._settings["output"]:
            return f"{p.base}s"
        return naming.code(expr)

    def _print_MatVec(self, expr):
        return f"{self._print(expr.args[1])} @ {self._print(expr.args[0])}.T"

    def _print_MatTVec(self, expr):
        return f"{self.parenthesize(expr.args[1], PRECEDENCE['Mul'])} @ {self._print(expr.args[0])}"

    _print_Add = _positive_first_sum


def head_pycode(expr, output: str = "h") -> str:
    """NumPy code of a head's expression (see :class:`HeadNumPyPrinter`)."""
    return HeadNumPyPrinter({"output": output}).doprint(sp.sympify(expr))


class CommentPrinter(_TablePrinter, StrPrinter):
    """One-line plain-text equations for comments in generated code: ``c[t] = f[t] ⊙ c[t-1] + …``."""

    def _print_Mul(self, expr):
        if any(f.is_Pow and f.exp.is_negative for f in expr.args):
            return super()._print_Mul(expr)
        return _hadamard(self, expr, " ⊙ ")

    def _print_MatVec(self, expr):
        return f"{self._print(expr.args[0])} {self._print(expr.args[1])}"

    def _print_MatTVec(self, expr):
        W, u = expr.args
        W = W.args[0] if isinstance(W, Transposed) else f"{self._print(W)}ᵀ"
        return f"{W} {self.parenthesize(u, PRECEDENCE['Mul'])}"

    def _print_Transposed(self, expr):
        return f"{self._print(expr.args[0])}ᵀ"

    def _print_Concat(self, expr):
        return "[" + "; ".join(self._print(v) for v in expr.args) + "]"

    def _print_Part(self, expr):
        e, a, b = expr.args
        return f"{self.parenthesize(e, PRECEDENCE['Atom'])}[{self._print(a)}:{self._print(b)}]"

    def _print_Outer(self, expr):
        u, v = expr.args
        right = self._print(v) if isinstance(v, sp.Symbol) else f"({self._print(v)})"
        return f"{self.parenthesize(u, PRECEDENCE['Mul'])} {right}ᵀ"

    _print_Add = _positive_first_sum

    def _print_TimeSum(self, expr):
        return f"Σ_t {self.parenthesize(expr.args[0], PRECEDENCE['Mul'])}"

    def _print_Equality(self, expr):
        return f"{self._print(expr.lhs)} = {self._print(expr.rhs)}"


def latex(expr, origin: str = "t", index=()) -> str:
    """LaTeX of ``expr`` read at time ``origin``; ``index`` prints one element."""
    return _latex(sp.sympify(expr), origin, tuple(index))


@functools.lru_cache(maxsize=1 << 14)
def _latex(expr, origin, index) -> str:
    return CellLatexPrinter({"origin": origin, "index": index}).doprint(expr)


def pycode(expr, inputs=()) -> str:
    """NumPy code of ``expr`` inside one step; ``inputs`` are read at ``[t]``."""
    return _pycode(sp.sympify(expr), tuple(inputs))


@functools.lru_cache(maxsize=1 << 14)
def _pycode(expr, inputs) -> str:
    return CellNumPyPrinter({"inputs": inputs}).doprint(expr)


def pycode_into(lhs, rhs, inputs=()) -> str:
    """Compute ``rhs`` into the array ``lhs`` already names: ``np.tanh(zbar, out=z)`` for one
    function, ``np.multiply(o, tanh_c, out=h)`` for a product of two, else ``h[...] = rhs``."""
    p = CellNumPyPrinter({"inputs": tuple(inputs)})
    out = p.doprint(lhs)
    op = OPS.get(rhs.func)
    if op is not None and op.ufunc:
        return f"{op.ufunc}({p.doprint(rhs.args[0])}, out={out})"
    if isinstance(rhs, (sp.Mul, sp.Add)) and len(rhs.args) == 2:
        op = "np.multiply" if isinstance(rhs, sp.Mul) else "np.add"
        a, b = (p.doprint(x) for x in rhs.args)
        return f"{op}({a}, {b}, out={out})"
    return f"{out}[...] = {p.doprint(rhs)}"


@functools.lru_cache(maxsize=1 << 14)
def comment(expr) -> str:
    """One line of plain text for a comment in generated code."""
    return CommentPrinter().doprint(expr)


def positive_first(terms: list) -> list:
    """Terms in their order, but a sum opens with its first positive term when it has one:
    ``h - n``, not ``-n + h``."""
    k = next((k for k, t in enumerate(terms) if not t.could_extract_minus_sign()), 0)
    return [terms[k], *terms[:k], *terms[k + 1:]]


def signed(parts: list[str]) -> list[str]:
    """Terms after the first with their sign in front: "+ a", "- b"."""
    return parts[:1] + [f"- {p[1:].lstrip()}" if p.startswith("-") else f"+ {p}"
                        for p in parts[1:]]


def latex_join(parts) -> str:
    """Terms as one sum."""
    return " ".join(signed(list(parts))) or "0"


def latex_sum(exprs, origin: str = "t") -> str:
    """Terms in the order given (SymPy's Add would sort them), joined by + and -."""
    return latex_join([latex(e, origin) for e in exprs])


def latex_gradient(g) -> str:
    """``lhs = rhs`` of a :class:`~symlstm.bptt.Gradient`, its terms in path order."""
    rhs = latex_sum([t.expr for t in g.terms], g.origin)
    if g.summed:
        rhs = rf"\sum_{{t=1}}^{{T}} \left({rhs}\right)" if len(g.terms) > 1 else \
            rf"\sum_{{t=1}}^{{T}} {rhs}"
    return f"{latex(g.lhs, g.origin)} = {rhs}"


# ---------------------------------------------------------------- text -----
# Titles, descriptions and labels come from users: they are data, printed so that they
# can neither end a Python string nor run a TeX command.

def python_string(text: str) -> str:
    """``text`` as a triple-quoted Python literal that evaluates to exactly ``text``."""
    out = []
    for k, ch in enumerate(text):
        if ch == "\\" or ch == '"' and text[k + 1:k + 2] in ('"', ""):   # never three in a row
            out.append("\\" + ch)
        elif ch == "\n" or ch.isprintable():
            out.append(ch)
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"""' + "".join(out) + '"""'


_TEX_SPECIAL = {
    "\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&", "#": r"\#",
    "%": r"\%", "_": r"\_", "^": r"\textasciicircum{}", "~": r"\textasciitilde{}",
    "<": "$<$", ">": "$>$", "|": "$|$", '"': "''",
    "–": "--", "—": "---", "‘": "`", "’": "'", "“": "``", "”": "''", "…": r"\dots{}",
    "×": r"$\times$", "⊙": r"$\odot$", "·": r"$\cdot$",
    "Δ": r"$\Delta$", "ᵀ": r"$^{\top}$", "∂": r"$\partial$", "Σ": r"$\Sigma$", "∑": r"$\sum$",
}
_GREEK_LETTERS = {chr(0x3b1 + k): name for k, name in enumerate(
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi o pi rho "
    "varsigma sigma tau upsilon phi chi psi omega".split())}
_GREEK_LETTERS.update({"Γ": "Gamma", "Δ": "Delta", "Θ": "Theta", "Λ": "Lambda", "Ξ": "Xi",
                       "Π": "Pi", "Σ": "Sigma", "Φ": "Phi", "Ψ": "Psi", "Ω": "Omega"})
#: Mathematical characters of plain text, each as a fixed piece of LaTeX.
_TEX_MATH = {"ᵀ": r"$^{\top}$", "⁺": r"$^{+}$", "∂": r"$\partial$", "⊙": r"$\odot$",
             "×": r"$\times$", "→": r"$\to$", "≤": r"$\le$", "≥": r"$\ge$", "≈": r"$\approx$",
             "′": "'", "−": "-", "·": r"$\cdot$", "²": r"$^{2}$", "Σ": r"$\Sigma$"}
_HAT = "\u0302"   # a combining circumflex: x̂


def latex_text(text: str) -> str:
    """Plain text for a LaTeX document: every special character escaped, a blank line a new
    paragraph; a character LaTeX cannot set is written as its code point, U+XXXX."""
    out = []
    text = unicodedata.normalize("NFC", text)
    for k, ch in enumerate(text):
        parts = unicodedata.normalize("NFD", ch)   # ŷ is y and a combining circumflex
        if ch == _HAT:
            continue
        if k + 1 < len(text) and text[k + 1] == _HAT and ch.isascii() and ch.isalpha():
            out.append(rf"$\hat{{{ch}}}$")
        elif len(parts) == 2 and parts[1] == _HAT and parts[0].isascii():
            out.append(rf"$\hat{{{parts[0]}}}$")
        elif ch in _TEX_MATH:
            out.append(_TEX_MATH[ch])
        elif ch in _TEX_SPECIAL:
            out.append(_TEX_SPECIAL[ch])
        elif ch in _GREEK_LETTERS and _GREEK_LETTERS[ch] != "o":
            out.append(rf"$\{_GREEK_LETTERS[ch]}$")
        elif ch == "\n" or " " <= ch <= "~" or "\u00c0" <= ch <= "\u00ff" and ch not in "×÷ÐÞðþ":
            out.append(ch)
        else:
            out.append(rf"\textsc{{u+{ord(ch):04x}}}")
    return "".join(out)


# ---------------------------------------------------------- line breaks -----
# A long equation is set over several lines: broken before a + or - of the outermost sum
# that does not fit, else before a ⊙; the \left( \right) of a group opened that way become
# \bigl( \bigr), which TeX lets stand on different lines.

#: How wide a line of an equation may be, in the units of :func:`latex_width` (about one
#: character each): what fits on the page beside a left side, a tag and a shape.
LINE_WIDTH = 50

_INVISIBLE = re.compile(r"\\(?:left|right|[bB]igg?[lr]?|mathit|mathrm|mathbf|operatorname|text"
                        r"|displaystyle|notag|top)(?![A-Za-z])|\\[,;!]")
_WIDE = re.compile(r"\\(?:tanh|exp|log|sum)(?![A-Za-z])")
_COMMAND = re.compile(r"\\[A-Za-z]+|\\.")
_OPERATOR = re.compile(r" [+=-] | \\odot ")


def latex_width(text: str) -> float:
    """The width of a LaTeX formula, roughly, in characters: a command is one letter, a
    function name three, a binary operator with its spaces two, a fraction its wider part;
    subscripts count in full."""
    k = text.find(r"\frac{")
    if k >= 0:     # a fraction is as wide as the wider of its two parts
        top = _brace_end(text, k + 5)
        bottom = _brace_end(text, top)
        return latex_width(text[:k]) + max(latex_width(text[k + 6:top - 1]),
                                           latex_width(text[top + 1:bottom - 1])) \
            + latex_width(text[bottom:])
    ops = len(_OPERATOR.findall(text))
    text = _WIDE.sub("www", text)
    text = _COMMAND.sub("w", _INVISIBLE.sub("", text))
    return len(re.sub(r"[{}^_ ]", "", text)) + ops


class _Group(NamedTuple):
    """``\\left( items \\right)``, ``width`` wide."""
    open: str
    items: list
    close: str
    width: float


class _Break(NamedTuple):
    """A place to break a line: before + or - (kind 0) or before ⊙ (kind 1)."""
    kind: int


_TOKEN = re.compile(r"\\(left|right)(?![A-Za-z])(\\\{|\\\}|\\[lr]?[a-z]+(?![a-z])|.)"
                    r"| ([+-]) | (\\odot) |\{(?:[^{}\\]|\\[A-Za-z]+)*\}|([{}])|\\[{}]")


def latex_lines(text: str, width: float = LINE_WIDTH) -> list[str]:
    """``text`` (a formula) as lines of at most ``width`` (:func:`latex_width`), when its
    sums and products allow it; ``\\left( \\right)`` around a broken sum become
    ``\\bigl( \\bigr)``."""
    if latex_width(text) <= width:
        return [text]
    return [_join(line) for line in _fill(_parse(text), width) if line]


def _parse(text: str) -> list:
    """Tokens: text, :class:`_Group` for each ``\\left( \\right)`` and :class:`_Break`
    before each + and - between terms and each ⊙; braces are kept whole."""
    stack, items, start, braces = [], [], 0, 0
    for m in _TOKEN.finditer(text):
        if m[5]:
            braces += 1 if m[5] == "{" else -1
        if braces or m[5] or not (m[1] or m[3] or m[4]):
            continue
        _flush(items, text[start:m.start()])
        if m[1] == "left":
            stack.append((items, m[2]))
            items = []
        elif m[1] == "right":
            outer, opened = stack.pop()
            outer.append(_Group(opened, items, m[2], 2 + _width(items)))
            items = outer
        elif not items:      # a sign in front of the first term: no place to break
            continue
        else:
            items.append(_Break(1 if m[4] else 0))
            start = m.start() + 1
            continue
        start = m.end()
    _flush(items, text[start:])
    return items


def _flush(items: list, text: str) -> None:
    if text.strip():
        items.append(text)


def _brace_end(text: str, k: int) -> int:
    depth = 0
    while True:
        depth += {"{": 1, "}": -1}.get(text[k], 0)
        k += 2 if text[k] == "\\" else 1
        if depth == 0:
            return k


def _width(items) -> float:
    return sum(_text_width(t) if isinstance(t, str) else
               t.width if isinstance(t, _Group) else 0 for t in items)


@functools.lru_cache(maxsize=1 << 14)
def _text_width(text: str) -> float:
    return latex_width(text)


def _split(items: list, kind: int) -> list[list]:
    """``items`` cut before every break of ``kind`` (the break stays with the piece it opens)."""
    pieces = [[]]
    for t in items:
        if isinstance(t, _Break) and t.kind == kind and pieces[-1]:
            pieces.append([])
        pieces[-1].append(t)
    return pieces


def _fill(items: list, width: float, kind: int = 0) -> list[list]:
    """Pieces cut at breaks of ``kind``, as many on a line as fit; a piece too long for a
    line is broken inside."""
    lines, line, used = [], [], 0.0
    for piece in _split(items, kind):
        wide = _width(piece)
        if used + wide <= width:
            line, used = line + piece, used + wide
            continue
        if line:
            lines.append(line)
        inside = [piece] if wide <= width else _inside(piece, width, kind)
        lines += inside[:-1]
        line, used = inside[-1], _width(inside[-1])
    return lines + [line]


def _inside(piece: list, width: float, kind: int) -> list[list]:
    """A piece too long for a line: open its widest group when that is wide, else break it
    before ⊙, else open any group; else it stays whole."""
    groups = [k for k, t in enumerate(piece) if isinstance(t, _Group)]
    widest = max(groups, key=lambda k: piece[k].width, default=None)
    opens = widest is not None and piece[widest].width > width / 3
    if not opens and kind == 0 and any(t == _Break(1) for t in piece):
        return _fill(piece, width, 1)
    if widest is None:
        return [piece]
    g, before, after = piece[widest], piece[:widest], piece[widest + 1:]
    head = _fill([*before, r"\bigl" + g.open], width, kind)
    inner = _fill(g.items, width)
    inner[-1] = [*inner[-1], r"\bigr" + g.close]    # a line never opens with a bracket
    return _glue(_glue(head, inner, width), _fill(after, width, kind), width) if after else \
        _glue(head, inner, width)


def _glue(first: list[list], then: list[list], width: float) -> list[list]:
    """Lines ``first`` then ``then``, the last of one and the first of the other on one
    line when they fit there."""
    if _width(first[-1]) + _width(then[0]) <= width:
        return [*first[:-1], first[-1] + then[0], *then[1:]]
    return first + then


def _join(line: list) -> str:
    out = ""
    for t in line:
        if isinstance(t, _Group):
            out += rf"\left{t.open}{_join(t.items)}\right{t.close}"
        elif isinstance(t, _Break):
            out += " "
        else:
            out += t
    return out.strip()
