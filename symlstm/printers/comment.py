"""Plain text of an expression, on one line: the comments of generated code, the equations
``symlstm show`` prints and the expressions in error messages (``c[t] = f[t] ⊙ c[t-1] + …``)."""
from __future__ import annotations

import functools

import sympy as sp
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.str import StrPrinter

from ..cell import display
from ..cell.ops import Transposed
from .table import _hadamard, _positive_first_sum, _TablePrinter


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

    def _print_Place(self, expr):
        e, a, b, n = expr.args
        return f"({self._print(e)} in rows {self._print(a)}:{self._print(b)} of {self._print(n)})"

    def _print_Outer(self, expr):
        u, v = expr.args
        right = self._print(v) if isinstance(v, sp.Symbol) else f"({self._print(v)})"
        return f"{self.parenthesize(u, PRECEDENCE['Mul'])} {right}ᵀ"

    _print_Add = _positive_first_sum

    def _print_TimeSum(self, expr):
        return f"Σ_t {self.parenthesize(expr.args[0], PRECEDENCE['Mul'])}"

    def _print_Equality(self, expr):
        return f"{self._print(expr.lhs)} = {self._print(expr.rhs)}"


@functools.lru_cache(maxsize=1 << 14)
def comment(expr) -> str:
    """One line of plain text for a comment in generated code."""
    return CommentPrinter().doprint(expr)


display.register_text(comment)
