"""Division in lowering: every negative power becomes a ``Quotient``, the factors that the
denominator is made of divided first, so that generated code never forms a power of a
denominator (which underflows long before the quotient does)."""
from __future__ import annotations

import sympy as sp
from sympy.printing.precedence import PRECEDENCE


class Quotient(sp.Function):
    """``a / b``, element-wise: how lowering writes every division (see :func:`quotients`).

    Printed ``a/b``; inside a product it is parenthesised, so that it is computed first."""

    nargs = 2
    precedence = PRECEDENCE["Mul"] - 1


def quotients(e: sp.Expr) -> sp.Expr:
    """``e`` with every negative power written as quotients, dividing the factors that the
    denominator is made of first: f h/(f + i)² becomes h (f/(f + i))/(f + i), and f i/(f + i)²
    becomes (f/(f + i)) (i/(f + i)).  Then every quotient is finite wherever its exact value
    is, though (f + i)² may underflow to 0 (σ(-360)² in float64) and f h to a subnormal
    number: no power of a denominator is ever formed, and no numerator loses its digits."""
    if e.is_Atom:
        return e
    if e.is_Mul or _is_division(e):
        return _divided(sp.Mul.make_args(e))
    return e.func(*(quotients(a) for a in e.args))


def _is_division(e) -> bool:
    return e.is_Pow and e.exp.is_Rational and e.exp.is_negative


def _divided(factors) -> sp.Expr:
    """The product of ``factors``, its divisions as quotients of the factors they share
    symbols with (else of the whole numerator), each such factor divided in turn."""
    top, bottom = [], []
    for f in factors:
        if _is_division(f):
            bottom.append((quotients(f.base), -f.exp))
        else:
            top.append(quotients(f))
    for base, n in bottom:
        top = _expand_powers(top, base)
        near = [k for k, f in enumerate(top) if f.free_symbols & base.free_symbols]
        if not near:   # one quotient of the whole numerator (numbers stay outside)
            top = [f for f in top if f.is_number] + [sp.Mul(*(f for f in top if not f.is_number))]
            near = [len(top) - 1]
        whole_times, part = int(sp.floor(n)), n - sp.floor(n)
        divisors = [base] * whole_times + ([base ** part] if part else [])
        for k, d in enumerate(divisors):
            at = near[k % len(near)]
            top[at] = Quotient(top[at], d)
    return sp.Mul(*top)


def _expand_powers(factors, base) -> list:
    """Positive integer powers of what ``base`` shares symbols with, as repeated factors
    (f² h/(f + i)² divides each f once)."""
    out = []
    for f in factors:
        if f.is_Pow and f.exp.is_Integer and f.exp > 0 and f.free_symbols & base.free_symbols:
            out += [f.base] * int(f.exp)
        else:
            out.append(f)
    return out
