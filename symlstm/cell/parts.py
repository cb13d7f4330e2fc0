"""The vocabulary a cell is written in: its equations and parameters, its sizes, and the error
it raises when the engine cannot derive it."""
from __future__ import annotations

import re
from typing import NamedTuple

import sympy as sp


DIMS = {"D": "input size", "H": "hidden size"}


class CellError(ValueError):
    """A cell definition that the engine cannot derive; the message says which equation and why."""


class Latex(str):
    """Text meant as LaTeX: ``about=Latex(r"the gate $f_t$")``.  Any other description is plain
    text, escaped for LaTeX; either way it is escaped for Python."""

    __slots__ = ()


class Equation(NamedTuple):
    """``lhs = rhs``, labelled; the label ties the document, the derivation and the code together."""
    label: str
    lhs: sp.Symbol
    rhs: sp.Expr


class Param(NamedTuple):
    name: str
    shape: tuple[str, ...]   # ("H", "D") for a matrix, ("H",) for a vector

    @property
    def symbol(self) -> sp.Symbol:
        return sp.Symbol(self.name)

    @property
    def is_matrix(self) -> bool:
        return len(self.shape) == 2



_SIZE_TERM = re.compile(r"\s*(?:(\d+)\s*\*\s*)?([DH])\s*(?:\*\s*(\d+)\s*)?\Z|\s*(\d+)\s*\Z")


def size_counts(dim) -> tuple[int, int, int]:
    """A size string as (count of D, count of H, constant): "D + 2*H" is (1, 2, 0).

    The grammar is symlstm's own: D, H, positive integers, ``+`` and ``*`` (an integer
    times D or H); nothing is evaluated."""
    if not isinstance(dim, str) or not dim.strip() or len(dim) > 100:
        raise CellError(f"size {dim!r} is not allowed: use D, H, positive integers, + and *, "
                        "e.g. 'H', 'D + H' or '2*H'")
    counts = [0, 0, 0]
    for term in dim.split("+"):
        m = _SIZE_TERM.match(term)
        if m is None or (m[1] and m[3]):
            raise CellError(f"size {dim!r} is not allowed: {term.strip()!r} is not D, H, a "
                            "positive integer or an integer times D or H (e.g. 'D + 2*H')")
        if m[4] is not None:
            counts[2] += int(m[4])
        else:
            counts["DH".index(m[2])] += int(m[1] or m[3] or 1)
    if counts[0] == counts[1] == 0 and counts[2] == 0:
        raise CellError(f"size {dim!r} is zero; sizes must be positive")
    return tuple(counts)


def size(dim) -> str:
    """A size in canonical spelling: "H", "D", "D + H", "2*H + 1"."""
    return spell_size(size_counts(dim))


def spell_size(counts) -> str:
    d, h, k = counts
    parts = [p for n, name in ((d, "D"), (h, "H")) if n
             for p in [name if n == 1 else f"{n}*{name}"]] + ([str(k)] if k else [])
    return " + ".join(parts)


def size_expr(dim: str) -> sp.Expr:
    """A size as a SymPy expression in the symbols D and H (for offsets into stacked rows)."""
    d, h, k = size_counts(dim)
    return d * sp.Symbol("D") + h * sp.Symbol("H") + k


def size_value(dim: str, D: int, H: int) -> int:
    """The number a size stands for at input size D and hidden size H."""
    d, h, k = size_counts(dim)
    return d * D + h * H + k


def add_sizes(dims) -> str:
    """The size of vectors stacked: the sum of theirs."""
    total = [0, 0, 0]
    for dim in dims:
        total = [a + b for a, b in zip(total, size_counts(dim))]
    return spell_size(total)
