"""The vocabulary a cell is written in: its equations and parameters, its sizes, and the error
it raises when the engine cannot derive it."""
from __future__ import annotations

import re
from typing import NamedTuple

import sympy as sp


#: The sizes every cell has; ``CellBuilder.size`` declares more (``EXTRA_SIZES``).
DIMS = {"D": "input size", "H": "hidden size"}
#: The shape of a block-diagonal (per-head) matrix: one H/NH × H/NH block for each head.
HEADS_SHAPE = ("NH", "H/NH", "H/NH")
#: The size of a variable that is a matrix per head (mLSTM's C): one H/NH × H/NH matrix for
#: each of the NH heads, stored (NH, H/NH, H/NH), a state declared with the shape HEADS_SHAPE.
#: It is no size of the size grammar: only :func:`size_value` and :func:`broadcast` read it.
HEAD_MATRIX = "NH×H/NH×H/NH"
#: The shape of a matrix per channel (Mamba's state h): one row of N entries for each of the
#: H channels, a state declared ``state("h", "H", "N")`` or a parameter used element-wise.
CHANNEL_SHAPE = ("H", "N")
#: The size of a variable that is a matrix per channel, stored (H, N) after the batch.
CHANNEL_MATRIX = "H×N"
#: The sizes that stand for matrices rather than vectors.
MATRICES = (HEAD_MATRIX, CHANNEL_MATRIX)


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
    shape: tuple[str, ...]   # ("H", "D") a matrix, ("H",) a vector, () a scalar, HEADS_SHAPE per-head blocks

    @property
    def symbol(self) -> sp.Symbol:
        return sp.Symbol(self.name)

    @property
    def is_matrix(self) -> bool:
        """A matrix for ``matvec``: dense, or block-diagonal with one block per head."""
        return len(self.shape) >= 2

    @property
    def is_heads(self) -> bool:
        """Block-diagonal: NH blocks of H/NH × H/NH, applied to an H-vector head by head."""
        return len(self.shape) == 3



#: The sizes a cell's shapes are written in, each with its name in generated code and what it
#: stands for: D and H always; P and NH where the cell declares them (``CellBuilder.size``);
#: the head size H/NH wherever NH is declared; N, the state size of a matrix per channel.
SIZES = {"D": ("D", "input size"), "H": ("H", "hidden size"), "P": ("P", "projection size"),
         "NH": ("NH", "number of heads"), "H/NH": ("HS", "head size"),
         "N": ("N", "state size")}
#: The sizes a cell may declare beyond D and H, with the keyword that generated code takes.
EXTRA_SIZES = {"P": "proj_size", "NH": "num_heads", "N": "state_size"}

_NAMES = "|".join(re.escape(n) for n in sorted(SIZES, key=len, reverse=True))
_SIZE_TERM = re.compile(rf"\s*(?:(\d+)\s*\*\s*)?({_NAMES})\s*(?:\*\s*(\d+)\s*)?\Z|\s*(\d+)\s*\Z")


def size_counts(dim) -> tuple[int, ...]:
    """A size string as its count of each of ``SIZES`` and its constant: "D + 2*H" is
    (1, 2, 0, 0, 0, 0).

    The grammar is symlstm's own: D, H, P, NH, H/NH, N, positive integers, ``+`` and ``*`` (an
    integer times a size); nothing is evaluated."""
    if not isinstance(dim, str) or not dim.strip() or len(dim) > 100:
        raise CellError(f"size {dim!r} is not allowed: use D, H, P, NH, H/NH, N, positive integers, "
                        "+ and *, e.g. 'H', 'D + H' or '2*H'")
    counts = [0] * (len(SIZES) + 1)
    for term in dim.split("+"):
        m = _SIZE_TERM.match(term)
        if m is None or (m[1] and m[3]):
            raise CellError(f"size {dim!r} is not allowed: {term.strip()!r} is not one of "
                            f"{', '.join(SIZES)}, a positive integer or an integer times a size "
                            "(e.g. 'D + 2*H')")
        if m[4] is not None:
            counts[-1] += int(m[4])
        else:
            counts[list(SIZES).index(m[2])] += int(m[1] or m[3] or 1)
    if not any(counts):
        raise CellError(f"size {dim!r} is zero; sizes must be positive")
    return tuple(counts)


def size(dim) -> str:
    """A size in canonical spelling: "H", "D", "D + H", "2*H + 1", "H/NH"."""
    return spell_size(size_counts(dim))


def spell_size(counts) -> str:
    *ns, k = counts
    parts = [p for n, name in zip(ns, SIZES) if n for p in [name if n == 1 else f"{n}*{name}"]]
    return " + ".join(parts + ([str(k)] if k else []))


#: The sizes' code names as symbols, in the order of ``SIZES`` (how size_counts lays them out).
SIZE_SYMBOLS = tuple(sp.Symbol(code) for code, _ in SIZES.values())


def expr_counts(e: sp.Expr) -> tuple[int, ...]:
    """A size written as a SymPy expression in the sizes' code names (4*H, D + P) as its
    counts of each size and its constant, laid out as :func:`size_counts` lays them out."""
    e = sp.expand(e)
    return (*(int(e.coeff(s)) for s in SIZE_SYMBOLS), int(e.subs({s: 0 for s in SIZE_SYMBOLS})))


def spell_size_expr(e: sp.Expr) -> str:
    """A size written as a SymPy expression (4*H, D + P) as the string a cell writes."""
    return spell_size(expr_counts(e))


def size_expr(dim: str) -> sp.Expr:
    """A size as a SymPy expression in the sizes' code names (for offsets into stacked rows)."""
    *ns, k = size_counts(dim)
    return sp.Add(*(n * sp.Symbol(code) for n, (code, _) in zip(ns, SIZES.values())), k)


def sizes_used(dims) -> tuple[str, ...]:
    """The sizes of ``SIZES`` that the size strings ``dims`` mention, in table order (NH when
    the head size is)."""
    dims = [n for d in dims for n in (HEADS_SHAPE if d == HEAD_MATRIX else CHANNEL_SHAPE
                                      if d == CHANNEL_MATRIX else (d,))]
    counts = [size_counts(d) for d in dims]
    used = {name for k, name in enumerate(SIZES) if any(c[k] for c in counts)}
    used |= {"NH"} if "H/NH" in used else set()
    return tuple(n for n in SIZES if n in used)


def size_value(dim: str, D: int, H: int, **extra: int) -> int:
    """The number a size stands for at input size D, hidden size H and the sizes ``extra``
    (P, NH) where the size mentions them."""
    values = {"D": D, "H": H, **extra}
    if "NH" in values:
        values["H/NH"] = H // values["NH"]
    if dim == CHANNEL_MATRIX:
        return H * values["N"]
    if dim == HEAD_MATRIX:
        return H * values["H/NH"] if "NH" in values else size_value("NH", D, H)
    *ns, k = size_counts(dim)
    missing = [name for n, name in zip(ns, SIZES) if n and name not in values]
    if missing:
        raise ValueError(f"size {dim!r} needs {', '.join(missing)}")
    return sum(n * values[name] for n, name in zip(ns, SIZES) if n) + k


def add_sizes(dims) -> str:
    """The size of vectors stacked: the sum of theirs."""
    total = [0] * (len(SIZES) + 1)
    for dim in dims:
        total = [a + b for a, b in zip(total, size_counts(dim))]
    return spell_size(total)


def combine(dims) -> tuple[str | None, tuple[str, ...]]:
    """The size of an element-wise combination of operands of the sizes ``dims`` (None for a
    number), and the sizes that cannot be combined (empty where all can).

    One number per sample ("1") goes with anything; one number per head ("NH") goes with an
    H-vector (each head's number with that head's H/NH entries) and with a matrix per head
    (with all of its head's entries); an H-vector goes with a matrix per channel (each
    channel's number with all of its row); otherwise the sizes must be equal."""
    found = {d for d in dims if d is not None}
    sizes = found - {"1"}
    if "NH" in sizes and sizes & {"H", HEAD_MATRIX}:
        sizes.discard("NH")
    if "H" in sizes and CHANNEL_MATRIX in sizes:
        sizes.discard("H")
    if len(sizes) > 1:
        return None, tuple(sorted(sizes))
    return (sizes.pop() if sizes else found.pop() if found else None), ()


def reduces_to(small: str, big: str) -> bool:
    """Whether a gradient of size ``big`` is summed to reach a variable of size ``small`` that
    it was broadcast from: a number per sample from anything, a number per head from an
    H-vector or a matrix per head, an H-vector from a matrix per channel (its rows' sums)."""
    return small != big and (small == "1" or small == "NH" and big in ("H", HEAD_MATRIX)
                             or small == "H" and big == CHANNEL_MATRIX)
