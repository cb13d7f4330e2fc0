"""What every printer of symlstm shares: element-wise functions spelled from the operations
table, a memo so that a sub-expression shared by many terms is printed once, Hadamard
products with the adjoints first, and sums that open with a positive term.

Only ``_print_<Class>`` overrides, as in SymPy's printers; every sub-expression goes back
through ``self._print``. The printers themselves live with their stage: the comment printer
beside this module, the LaTeX printer in :mod:`symlstm.documents.latex`, the NumPy printer in
:mod:`symlstm.backends.numpy`.
"""
from __future__ import annotations

import functools

import sympy as sp
from sympy.printing.precedence import PRECEDENCE

from .. import naming
from ..cell.ops import OPS, REDUCTIONS


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
            memo[key] = (getattr(op, self._spelling).format(
                **dict(zip("ab", (self._print(a) for a in expr.args))))
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


#: The sizes, which a product holds as numbers, not as vectors (1/(4H) in a mean's derivative).
_SIZES = {sp.Symbol("D"), sp.Symbol("H")}


def _hadamard(printer, expr: sp.Mul, sep: str, coeff_sep: str = " ") -> str:
    """Print an element-wise product with ``sep`` between vector factors."""
    coeff, factors = expr.as_coeff_mul()
    sizes = [f for f in factors if f.free_symbols and f.free_symbols <= _SIZES]   # 4 H: numbers
    vectors = [f for f in factors if f not in sizes]
    parts = [printer.parenthesize(f, PRECEDENCE["Mul"])
             for f in sorted(vectors, key=_adjoint_first)]
    body = sep.join(parts)
    if sizes:
        size = coeff_sep.join(printer.parenthesize(f, PRECEDENCE["Mul"]) for f in sizes)
        body = f"{size}{coeff_sep}{body}" if body else size
    if coeff == 1:
        return body
    if coeff == -1:
        return "-" + body
    return f"{printer._print(coeff)}{coeff_sep}{body}"


def _positive_first_sum(printer, expr, order=None) -> str:
    """A sum as text, opening with a positive term (``h - n``, not ``-n + h``)."""
    terms = positive_first(printer._as_ordered_terms(expr, order=order))
    out = printer._print(terms[0])
    for t in terms[1:]:
        text = printer._print(t)
        out += f" - {text[1:].lstrip()}" if text.startswith("-") else f" + {text}"
    return out


def positive_first(terms: list) -> list:
    """Terms in their order, but a sum opens with its first positive term when it has one:
    ``h - n``, not ``-n + h``."""
    k = next((k for k, t in enumerate(terms) if not t.could_extract_minus_sign()), 0)
    return [terms[k], *terms[:k], *terms[k + 1:]]


def signed(parts: list[str]) -> list[str]:
    """Terms after the first with their sign in front: "+ a", "- b"."""
    return parts[:1] + [f"- {p[1:].lstrip()}" if p.startswith("-") else f"+ {p}"
                        for p in parts[1:]]
