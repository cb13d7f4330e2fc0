"""A recurrent cell as data: one time step as an ordered list of labelled SymPy equations.

Write a cell with :class:`CellBuilder`; ``build()`` checks it and returns a frozen
:class:`Cell`.  Example, a minimal gated unit::

    b = CellBuilder("mgu", "Minimal gated unit")
    x, h = b.input("x"), b.state("h")
    W_f, R_f, b_f = b.param("W_f", "H", "D"), b.param("R_f", "H", "H"), b.param("b_f", "H")
    W_n, R_n, b_n = b.param("W_n", "H", "D"), b.param("R_n", "H", "H"), b.param("b_n", "H")
    fbar = b.let("fbar", matvec(W_f, x) + matvec(R_f, h) + b_f)
    f = b.let("f", sigma(fbar))
    u = b.let("u", f * h)
    n = b.let("n", tanh(matvec(W_n, x) + matvec(R_n, u) + b_n))
    b.let("h", (1 - f) * h + f * n)
    cell = b.build()

``b.state("h")`` is h_{t-1}; the equation whose left side is ``h`` gives h_t.
"""
from __future__ import annotations

import functools
import keyword
import re
from dataclasses import dataclass, field
from typing import NamedTuple

import sympy as sp

from . import naming
from .ops import OPS, STRUCTURE, Concat, MatVec, Transposed, matrix_param

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


@dataclass(frozen=True)
class Cell:
    """One step of a recurrent cell.

    ``inputs`` and ``states`` map names to their dimension ("D" or "H"); the first input is
    the sequence generated code takes as its argument (it gives D), the others are extra
    per-step inputs passed by keyword.  ``output`` is the vector whose values over time the
    cell returns: a state, or the result of an equation that is not carried to the next step
    (SRU's h).  ``equations`` compute, in order, every intermediate, each state's new value
    and the output from the inputs at t, the ``s[t-1]`` and the parameters.
    """
    name: str
    title: str
    inputs: dict[str, str]
    states: dict[str, str]
    params: tuple[Param, ...]
    equations: tuple[Equation, ...]
    output: str = "h"
    about: str = ""
    dims: dict[str, str] = field(default_factory=lambda: dict(DIMS))

    def __post_init__(self):
        check(self)

    def param(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)

    def matrix_shape(self, W: sp.Expr) -> tuple[str, str]:
        """(rows, cols) of a matrix parameter W or of its transpose."""
        shape = self.param(matrix_param(W).name).shape
        return shape[::-1] if isinstance(W, Transposed) else shape

    def dim(self, symbol: sp.Symbol) -> str:
        """The dimension of a vector symbol at any time and of its adjoint."""
        p = naming.parse(symbol)
        if p is None:
            return self.param(symbol.name).shape[0]
        return self._vector_dims[p.base]

    @functools.cached_property
    def _vector_dims(self) -> dict[str, str]:
        """The size of every vector, worked out once (``dim`` is asked for it often)."""
        dims = {**self.inputs, **self.states}
        for eq in self.equations:
            dims.setdefault(naming.parse(eq.lhs).base, _dim_of(self, eq, eq.rhs, dims))
        return dims

    @property
    def output_is_state(self) -> bool:
        """Whether the output is carried to the next step, or only computed and returned."""
        return self.output in self.states

    @property
    def output_dim(self) -> str:
        return self.dim(naming.timed(self.output))

    @property
    def input_symbols(self) -> tuple[sp.Symbol, ...]:
        return tuple(naming.timed(n) for n in self.inputs)

    @property
    def prev_states(self) -> tuple[sp.Symbol, ...]:
        return tuple(naming.timed(n, -1) for n in self.states)

    @property
    def new_states(self) -> tuple[sp.Symbol, ...]:
        return tuple(naming.timed(n) for n in self.states)


class CellBuilder:
    """Declare inputs, states and parameters, then the step's equations in order."""

    def __init__(self, name: str, title: str, about: str = ""):
        check_cell_name(name)
        _check_title(title)
        _check_about(about)
        self.name, self.title, self.about = name, title, about
        self.inputs: dict[str, str] = {}
        self.states: dict[str, str] = {}
        self.params: list[Param] = []
        self.equations: list[Equation] = []

    def input(self, name: str, dim: str = "D") -> sp.Symbol:
        """Declare an input vector of size "D" (the input size) or "H"; returns x_t.

        The first input is the sequence generated code takes as its argument; any further
        one (a zoneout mask) is an extra per-step input, passed to ``forward`` by keyword as
        an array (T, B, size) and given a gradient by ``backward`` like the first."""
        self._declare(name, "input")
        self.inputs[name] = size(dim)
        return naming.timed(name)

    def state(self, name: str, dim: str = "H") -> sp.Symbol:
        """Declare a recurrent state; returns s_{t-1} (an equation for ``name`` must give s_t)."""
        self._declare(name, "state")
        self.states[name] = size(dim)
        return naming.timed(name, -1)

    def param(self, name: str, *shape: str) -> sp.Symbol:
        """Declare a parameter: ``param("W_z", "H", "D")`` is a matrix, ``param("b_z", "H")`` a vector."""
        _named(naming.check_param_name, name)
        if any(p.name == name for p in self.params):
            raise CellError(f"parameter {name!r} is declared twice")
        if len(shape) not in (1, 2):
            raise CellError(f"parameter {name!r}: give one size for a vector or two for a "
                            f"matrix, e.g. param({name!r}, 'H', 'D'); got {shape}")
        self.params.append(Param(name, tuple(size(d) for d in shape)))
        return sp.Symbol(name)

    def let(self, name: str, rhs, label: str | None = None) -> sp.Symbol:
        """Add the equation ``name_t = rhs``; returns the symbol name_t for later equations."""
        _named(naming.check_vector_name, name, f"equation {label or name!r}: variable")
        if isinstance(rhs, str):
            raise CellError(f"equation {label or name!r}: write the right side with the symbols "
                            "CellBuilder returns and symlstm's functions, not as a string")
        if label is not None:
            check_label(label)
        if not isinstance(rhs, (sp.Expr, int, float)):
            raise CellError(f"equation {label or name!r}: the right side must be a SymPy "
                            f"expression or a number, got {type(rhs).__name__}")
        lhs = naming.timed(name)
        self.equations.append(Equation(label or name, lhs, sp.sympify(rhs)))
        return lhs

    def _declare(self, name, what: str) -> None:
        _named(naming.check_vector_name, name, what)
        if name in self.inputs or name in self.states:
            raise CellError(f"{name!r} is declared twice (as an input or a state)")

    def build(self, output: str = "h") -> Cell:
        """The checked cell; ``output`` names the state or equation result it returns."""
        return Cell(self.name, self.title, dict(self.inputs), dict(self.states), tuple(self.params),
                    tuple(self.equations), output, self.about)


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


# ------------------------------------------------------------ checking -----

def _named(rule, *args) -> None:
    """Apply a naming rule, reporting a broken one as a CellError."""
    try:
        rule(*args)
    except ValueError as e:
        raise CellError(str(e)) from None


def check(cell: Cell) -> None:
    """Raise :class:`CellError` naming the first thing in ``cell`` the engine cannot derive."""
    _named(_check_names, cell)
    defined = set(cell.input_symbols) | set(cell.prev_states)
    params = {p.symbol: p for p in cell.params}
    later = {eq.lhs: eq.label for eq in cell.equations}
    dims = {**cell.inputs, **cell.states}
    labels, computed = set(), set()
    for eq in cell.equations:
        if eq.label in labels:
            raise CellError(f"the label {eq.label!r} is used by two equations")
        if eq.lhs in computed or naming.parse(eq.lhs).base in cell.inputs:
            raise CellError(f"equation {eq.label!r}: {eq.lhs} is defined twice")
        labels.add(eq.label)
        computed.add(eq.lhs)
        _check_symbols(eq, defined, params, later)
        _check_functions(eq)
        dim = _dim_of(cell, eq, eq.rhs, dims)
        base = naming.parse(eq.lhs).base
        if dim is None:
            raise CellError(f"equation {eq.label!r}: the right side is a constant, not a vector")
        if base in cell.states and dim != cell.states[base]:
            raise CellError(f"equation {eq.label!r}: state {base} has size {cell.states[base]}, "
                            f"but the right side has size {dim}")
        dims[base] = dim
        defined.add(eq.lhs)
    _check_coverage(cell, defined, params)


def check_cell_name(name) -> None:
    """A cell's name becomes a module name: a lower-case, non-keyword Python identifier."""
    if not isinstance(name, str) or not name.isidentifier() or not name.islower() \
            or not name.isascii() or keyword.iskeyword(name) or name.startswith("_"):
        raise CellError(f"cell name {name!r} must be a lower-case ASCII Python identifier that "
                        "is not a keyword and does not start with '_', e.g. 'my_cell'")


def check_label(label) -> None:
    """A label tags an equation in code comments and documents: one line of printable text."""
    if not isinstance(label, str) or not label or not label.isprintable() or len(label) > 40 \
            or label != label.strip():
        raise CellError(f"equation label {label!r} must be 1 to 40 printable characters on one "
                        "line, without leading or trailing spaces")


def _check_title(title) -> None:
    if not isinstance(title, str) or not title.strip() or not title.isprintable() \
            or len(title) > 200:
        raise CellError(f"title {title!r} must be one line of printable text (at most 200 "
                        "characters)")


def _check_about(about) -> None:
    if not isinstance(about, str):
        raise CellError(f"about must be a string (plain text, or symlstm.Latex for LaTeX), got "
                        f"{type(about).__name__}")
    if any(not (ch.isprintable() or ch == "\n") for ch in about):
        raise CellError("about may hold printable text and line breaks only; found "
                        f"{next(ch for ch in about if not (ch.isprintable() or ch == chr(10)))!r}")


def _show(e) -> str:
    """An expression as the documents' comments write it: ``W x[t] + b``, not ``MatVec(W, x[t])``."""
    from .printers import comment   # printers depend on the engine, so only when reporting
    try:
        return comment(e)
    except Exception:   # an expression the printers cannot handle is shown as SymPy has it
        return str(e)


def _check_names(cell: Cell) -> None:
    check_cell_name(cell.name)
    _check_title(cell.title)
    _check_about(cell.about)
    for n in (*cell.inputs, *cell.states):
        naming.check_vector_name(n, "input" if n in cell.inputs else "state")
    for p in cell.params:
        naming.check_param_name(p.name)
        if not isinstance(p.shape, tuple) or len(p.shape) not in (1, 2):
            raise CellError(f"parameter {p.name!r} has shape {p.shape}; expected (rows,) or "
                            "(rows, cols)")
    for d in (*cell.inputs.values(), *cell.states.values(), *(d for p in cell.params
                                                                for d in p.shape)):
        if size(d) != d:
            raise CellError(f"size {d!r} is not in canonical spelling ({size(d)!r}); declare "
                            "sizes through CellBuilder")
    for n, d in cell.inputs.items():
        if d not in ("D", "H"):
            raise CellError(f"input {n!r} has size {d!r}; an input has the input size 'D' or "
                            "the hidden size 'H'")
    if cell.inputs and next(iter(cell.inputs.values())) != "D":
        # generated code reads D off the first input: without it there is no D
        uses_d = [n for n, d in list(cell.inputs.items())[1:] if d == "D"] + \
            [n for n, d in cell.states.items() if size_counts(d)[0]] + \
            [p.name for p in cell.params if any(size_counts(x)[0] for x in p.shape)]
        if uses_d:
            raise CellError(f"the input has the hidden size H, so there is no input size D, but "
                            f"{', '.join(uses_d)} {'has' if len(uses_d) == 1 else 'have'} a size "
                            "with D")
    for eq in cell.equations:
        check_label(eq.label)
        naming.check_vector_name(naming.parse(eq.lhs).base, f"equation {eq.label!r}: variable")
    results = [naming.parse(eq.lhs).base for eq in cell.equations]
    if cell.output in cell.inputs or cell.output not in (*cell.states, *results):
        raise CellError(f"output {cell.output!r} is neither a state {sorted(cell.states)} nor "
                        "the result of an equation: the output is what the module returns "
                        "at every step")
    _check_code_names(cell)


def _check_code_names(cell: Cell) -> None:
    """Every identifier of the generated module (each vector, its adjoint, what step t+1 sends
    back to a state, each parameter and its gradient) must be distinct, and so must the keys
    of the gradients ``backward`` returns (``W``, ``x``, ``h0``)."""
    symbols = [*cell.input_symbols, *cell.prev_states, *(eq.lhs for eq in cell.equations),
               *(naming.timed(s, 0, naming.CARRY) for s in cell.states)]
    seen: dict[str, str] = {}

    def claim(code: str, what: str) -> None:
        if seen.setdefault(code, what) != what:
            raise CellError(f"{what} and {seen[code]} would both be called {code!r} in "
                            "generated code; rename one of them")
    for s in symbols:
        claim(naming.code(s), str(s))
        if naming.parse(s).kind != naming.CARRY:
            claim(naming.code(naming.adjoint(s)), str(naming.adjoint(s)))
    for p in cell.params:
        claim(p.name, f"parameter {p.name}")
        claim(naming.code(naming.adjoint(p.symbol)), f"the gradient of parameter {p.name}")
    for n in list(cell.inputs)[1:]:
        if naming.identifier(n) != n:
            raise CellError(f"input {n!r} is an extra per-step input, which forward takes as a "
                            "keyword argument of its name, but that name is a Python keyword, a "
                            "built-in or one of the generated module's own; rename it")
    keys: dict[str, str] = {}
    for what, key in [*((f"parameter {p.name}", p.name) for p in cell.params),
                      *((f"input {n}", n) for n in cell.inputs),
                      *((f"initial state {s}", f"{s}0") for s in cell.states)]:
        if keys.setdefault(key, what) != what:
            raise CellError(f"{what} and {keys[key]} would both have the gradient "
                            f"grads[{key!r}]; rename one of them")


def _check_symbols(eq: Equation, defined, params, later) -> None:
    for s in sorted(eq.rhs.free_symbols, key=str):
        if s in defined or s in params:
            continue
        if s in later:
            raise CellError(f"equation {eq.label!r} uses {s} before equation {later[s]!r} computes "
                            "it: a cycle within one step (use the state's value at t-1 instead)")
        raise CellError(f"equation {eq.label!r} uses {s}, which is not an input, a state at t-1, "
                        "a parameter or an earlier equation's result")


_KNOWN = ", ".join(sorted(f.__name__ for f in OPS if f.__name__ != "step"))


def _check_functions(eq: Equation) -> None:
    """Only the operations of ``OPS``, matrix products, transpose, concat, + - * / and integer
    powers may appear; anything else is refused here, never passed on to generated code."""
    for e in sp.preorder_traversal(eq.rhs):
        where = f"equation {eq.label!r}"
        if isinstance(e, Concat) and e is not eq.rhs:
            raise CellError(f"{where}: concat(...) must be the whole right side; give it an "
                            "equation of its own")
        if isinstance(e, Transposed) and not any(isinstance(m, MatVec) and m.args[0] == e
                                                 for m in eq.rhs.atoms(MatVec)):
            raise CellError(f"{where}: transpose(...) is for the matrix of "
                            "matvec(transpose(W), v), not for use element-wise")
        if isinstance(e, STRUCTURE) or e.func in OPS or isinstance(e, (sp.Add, sp.Mul, sp.Symbol)):
            continue
        if isinstance(e, sp.Pow):
            if not e.exp.is_Integer:
                raise CellError(f"{where}: the power {_show(e)} needs an integer exponent")
            continue
        if e.is_Number or e.is_NumberSymbol or e in (sp.zoo, sp.nan):
            if not (e.is_finite and e.is_real):
                raise CellError(f"{where}: {e} is not a finite real number")
            continue
        hint = ("; for max(0, a) write relu(a)" if isinstance(e, (sp.Max, sp.Min)) else "")
        if isinstance(e, sp.Function) or isinstance(e, sp.Expr) and e.args:
            raise CellError(f"{where} applies {e.func.__name__}, which has no derivative rule "
                            f"(known: {_KNOWN}; add an entry to symlstm.ops.OPS){hint}")
        raise CellError(f"{where}: {_show(e)} is not a vector, a parameter or a real number")


def _dim_of(cell: Cell, eq: Equation, e: sp.Expr, dims: dict[str, str]) -> str | None:
    """The size of an element-wise expression (None for a scalar), checking that sizes agree."""
    if e.is_Number:
        return None
    if isinstance(e, sp.Symbol):
        p = naming.parse(e)
        if p is not None:
            return dims[p.base]
        param = cell.param(e.name)
        if param.is_matrix:
            raise CellError(f"equation {eq.label!r} uses the matrix {e} element-wise; "
                            f"write matvec({e}, v) for the product with a vector v")
        return param.shape[0]
    if isinstance(e, MatVec):
        return _matvec_dim(cell, eq, e, dims)
    if isinstance(e, Concat):
        if not all(isinstance(v, sp.Symbol) and naming.parse(v) is not None for v in e.args):
            raise CellError(f"equation {eq.label!r}: concat takes named vectors, got {_show(e)}")
        return add_sizes(dims[naming.parse(v).base] for v in e.args)
    sizes = {d for d in (_dim_of(cell, eq, a, dims) for a in e.args) if d is not None}
    if len(sizes) > 1:
        raise CellError(f"equation {eq.label!r}: {_show(e)} combines vectors of sizes {sorted(sizes)} "
                        "element-wise; they must have the same size")
    return sizes.pop() if sizes else None


def _matvec_dim(cell: Cell, eq: Equation, e: MatVec, dims) -> str:
    W, v = e.args
    P = matrix_param(W)
    if not (isinstance(P, sp.Symbol) and naming.parse(P) is None
            and any(p.name == P.name and p.is_matrix for p in cell.params)):
        raise CellError(f"equation {eq.label!r}: in {_show(e)} the first factor must be a matrix "
                        "parameter or its transpose")
    if not (isinstance(v, sp.Symbol) and naming.parse(v) is not None):
        raise CellError(f"equation {eq.label!r}: in {_show(e)} the vector must be a named variable; "
                        "give the expression its own equation first")
    rows, cols = cell.matrix_shape(W)
    if dims[naming.parse(v).base] != cols:
        shape = "×".join(f"({d})" if "+" in d else d for d in (rows, cols))
        raise CellError(f"equation {eq.label!r}: {_show(W)} is {shape} but {v} has size "
                        f"{dims[naming.parse(v).base]}: the matrix is applied to the wrong vector")
    return rows


def _check_coverage(cell: Cell, defined, params) -> None:
    for s in cell.new_states:
        if s not in defined:
            raise CellError(f"state {naming.parse(s).base!r} has no equation giving its new value")
    used = set().union(*(eq.rhs.free_symbols for eq in cell.equations))
    for eq in cell.equations:
        if eq.lhs not in used and eq.lhs not in cell.new_states \
                and eq.lhs != naming.timed(cell.output):
            raise CellError(f"equation {eq.label!r}: {eq.lhs} is computed but nothing reads it "
                            "(only the states and the output leave the step)")
    if not cell.params:
        raise CellError("the cell has no parameters: there would be nothing to train")
    if not any("H" in d for p in cell.params for d in p.shape):
        raise CellError("no parameter's shape mentions the hidden size H, so generated code "
                        "could not tell it from the parameters")
    for s in (*cell.input_symbols, *cell.prev_states):
        if s not in used:
            raise CellError(f"{s} is declared but no equation reads it"
                            + (" (a state must be read at t-1 to be recurrent)"
                               if s in cell.prev_states else ""))
    for p in params:
        if p not in used:
            raise CellError(f"parameter {p} is declared but no equation uses it")
