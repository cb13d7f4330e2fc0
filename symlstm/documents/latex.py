"""The documents' LaTeX printer: ⊙ for element-wise products, time subscripts, one element
of a vector or matrix written out as sums; and the sums and gradients built from it."""
from __future__ import annotations

import functools

import sympy as sp
from sympy.printing.latex import LatexPrinter

from .. import naming
from ..cell import display
from ..cell.ops import HS, OPS, HeadOuter, Transposed, headsum, sqrt
from ..printers.table import (_adjoint_first, _hadamard, _has_symbols, _split_fraction,
                              _TablePrinter, positive_first, signed)


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

    def _print(self, expr, **kwargs):
        if isinstance(expr, headsum) and not kwargs:
            return self._print_headsum(expr)
        if isinstance(expr, sqrt) and expr.args[0] == HS:
            return r"\sqrt{H/N_h}"
        return super()._print(expr, **kwargs)

    def _print_headsum(self, expr):
        """A sum within each head as a textbook writes it: uᵀ A w for the entries of A
        weighted by an outer product u wᵀ, ‖a‖² for a square, ⟨a, b⟩ for the sum of a
        product (the dot product of vectors, Σ_{ab} A_ab B_ab of matrices)."""
        a = expr.args[0]
        coeff, factors = a.as_coeff_mul() if isinstance(a, sp.Mul) else (sp.S.One, (a,))
        sign = "- " if coeff == -1 else "" if coeff == 1 else self._print(coeff) + " "
        outer = next((f for f in factors if isinstance(f, HeadOuter)), None)
        if outer is not None and len(factors) > 1:
            rest = sp.Mul(*(f for f in factors if f is not outer))
            u, w = outer.args
            return rf"{sign}{self._wrap(u)}^{{\top}} {self._wrap(rest)} {self._wrap(w)}"
        if len(factors) == 1 and factors[0].is_Pow and factors[0].exp == 2:
            return rf"{sign}\lVert {self._print(factors[0].base)} \rVert^{{2}}"
        if len(factors) > 1:
            first = min(factors, key=_adjoint_first)
            rest = sp.Mul(*(f for f in factors if f is not first))
            return rf"{sign}\left\langle {self._print(first)}, {self._print(rest)} \right\rangle"
        return super()._print(expr)

    def _print_Symbol(self, expr, style="plain"):
        if expr == HS:   # the head size
            return r"(H/N_h)"
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
        return f"{self._wrap(W)} {self._print(v)}"   # (i ⊙ δC) k: a matrix that is an expression

    def _print_MatTVec(self, expr):
        W, u = expr.args
        if self._settings["index"]:
            k = self._settings["index"][-1]
            return self._sum_over(
                lambda s: f"{self._matrix_element(W, s, k)} {self._wrap_indexed(u, s)}")
        if isinstance(W, Transposed):      # (Wᵀ)ᵀ u = W u
            return rf"{self._print(W.args[0])} {self._wrap(u)}"
        return rf"{self._wrap(W)}^{{\top}} {self._wrap(u)}"

    def _print_Change(self, expr):   # d v, the change of v
        return rf"\mathrm{{d}}{self._print(expr.args[0])}"

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

    def _print_Place(self, expr):
        e, a, b, n = expr.args
        if self._settings["index"]:   # entry k: e's entry k - a where a <= k < b, else 0
            k = self._settings["index"][-1]
            shifted = k if a == 0 else f"{k}-{self._print(a)}"
            return (rf"\mathbf{{1}}\left[{self._print(a + 1)} \le {k} \le {self._print(b)}\right] "
                    + self._indexed(e, shifted))
        rows = [rf"0_{{{self._print(a)}}}"] if a != 0 else []
        rows.append(self._print(e))
        rows += [rf"0_{{{self._print(n - b)}}}"] if sp.expand(n - b) != 0 else []
        return r"\begin{bmatrix} " + r" \\ ".join(rows) + r" \end{bmatrix}"

    def _print_Outer(self, expr):
        u, v = expr.args
        if self._settings["index"]:
            j, k = self._settings["index"]
            return rf"{self._wrap_indexed(u, j)} {self._indexed(v, k)}"
        right = self._print(v) if isinstance(v, sp.Symbol) else rf"\left({self._print(v)}\right)"
        return rf"{self._wrap(u)} {right}^{{\top}}"

    def _print_RowSum(self, expr):   # the sums of a matrix per channel's rows: M 1_N
        return rf"\left({self._print(expr.args[0])}\right) \mathbf{{1}}_{{N}}"

    def _print_HeadOuter(self, expr):   # v kᵀ, head by head (no entry-by-entry form yet)
        u, v = expr.args
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


def latex(expr, origin: str = "t", index=()) -> str:
    """LaTeX of ``expr`` read at time ``origin``; ``index`` prints one element."""
    return _latex(sp.sympify(expr), origin, tuple(index))


@functools.lru_cache(maxsize=1 << 14)
def _latex(expr, origin, index) -> str:
    return CellLatexPrinter({"origin": origin, "index": index}).doprint(expr)


def latex_join(parts) -> str:
    """Terms as one sum."""
    return " ".join(signed(list(parts))) or "0"


def latex_sum(exprs, origin: str = "t") -> str:
    """Terms in the order given (SymPy's Add would sort them), joined by + and -."""
    return latex_join([latex(e, origin) for e in exprs])


def latex_gradient(g) -> str:
    """``lhs = rhs`` of a :class:`~symlstm.derivation.bptt.Gradient`, its terms in path order."""
    rhs = latex_sum([t.expr for t in g.terms], g.origin)
    if g.summed:
        rhs = rf"\sum_{{t=1}}^{{T}} \left({rhs}\right)" if len(g.terms) > 1 else \
            rf"\sum_{{t=1}}^{{T}} {rhs}"
    return f"{latex(g.lhs, g.origin)} = {rhs}"


display.register_latex(latex_gradient)
