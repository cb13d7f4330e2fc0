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

#: The sizes every cell has; ``CellBuilder.size`` declares more (``EXTRA_SIZES``).
DIMS = {"D": "input size", "H": "hidden size"}
#: The shape of a block-diagonal (per-head) matrix: one H/NH × H/NH block for each head.
HEADS_SHAPE = ("NH", "H/NH", "H/NH")


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
    shape: tuple[str, ...]   # ("H", "D") a matrix, ("H",) a vector, HEADS_SHAPE per-head blocks

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


@dataclass(frozen=True)
class Cell:
    """One step of a recurrent cell.

    ``inputs`` and ``states`` map names to their dimension ("D" or "H"); ``output`` is the
    state whose values over time the cell returns; ``equations`` compute, in order, every
    intermediate and each state's new value from ``x[t]``, the ``s[t-1]`` and the parameters.
    ``dims`` names the sizes the cell declares: D and H, and any of ``EXTRA_SIZES``.
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
        """(rows, cols) of a matrix parameter W or of its transpose (H × H for per-head
        blocks: the block-diagonal matrix they stand for)."""
        shape = self.param(matrix_param(W).name).shape
        if len(shape) == 3:
            return ("H", "H")
        return shape[::-1] if isinstance(W, Transposed) else shape

    @property
    def sizes(self) -> tuple[str, ...]:
        """The sizes declared beyond D and H (of ``EXTRA_SIZES``, in its order): what
        ``init_params`` takes as keywords besides input_size and hidden_size."""
        return tuple(n for n in EXTRA_SIZES if n in self.dims)

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
        self.dims: dict[str, str] = dict(DIMS)

    def size(self, name: str) -> str:
        """Declare a size beyond D and H: "P" (a projection size) or "NH" (a number of heads,
        which brings the head size "H/NH"; H must then be a multiple of NH).  Returns the
        size's name, for use in shapes."""
        if name not in EXTRA_SIZES:
            raise CellError(f"size {name!r} cannot be declared: the sizes a cell may declare "
                            f"are {', '.join(map(repr, EXTRA_SIZES))} (D and H are always there)")
        if name in self.dims:
            raise CellError(f"size {name!r} is declared twice")
        self.dims[name] = SIZES[name][1]
        return name

    def input(self, name: str, dim: str = "D") -> sp.Symbol:
        """Declare an input vector of size "D" (the input size) or "H"; returns x_t."""
        self._declare(name, "input")
        self.inputs[name] = size(dim)
        return naming.timed(name)

    def state(self, name: str, dim: str = "H") -> sp.Symbol:
        """Declare a recurrent state; returns s_{t-1} (an equation for ``name`` must give s_t)."""
        self._declare(name, "state")
        self.states[name] = size(dim)
        return naming.timed(name, -1)

    def param(self, name: str, *shape: str) -> sp.Symbol:
        """Declare a parameter: ``param("W_z", "H", "D")`` is a matrix, ``param("b_z", "H")`` a
        vector, ``param("R_z", "NH", "H/NH", "H/NH")`` block-diagonal: one H/NH × H/NH block
        per head, which ``matvec(R_z, h)`` applies to the H-vector h head by head (declare
        NH first with ``size("NH")``)."""
        _named(naming.check_param_name, name)
        if any(p.name == name for p in self.params):
            raise CellError(f"parameter {name!r} is declared twice")
        if len(shape) not in (1, 2, 3):
            raise CellError(f"parameter {name!r}: give one size for a vector, two for a matrix "
                            f"or {HEADS_SHAPE} for per-head blocks, e.g. param({name!r}, 'H', "
                            f"'D'); got {shape}")
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
        return Cell(self.name, self.title, dict(self.inputs), dict(self.states), tuple(self.params),
                    tuple(self.equations), output, self.about, dict(self.dims))


#: The sizes a cell's shapes are written in, each with its name in generated code and what it
#: stands for: D and H always; P and NH where the cell declares them (``CellBuilder.size``);
#: the head size H/NH wherever NH is declared.
SIZES = {"D": ("D", "input size"), "H": ("H", "hidden size"), "P": ("P", "projection size"),
         "NH": ("NH", "number of heads"), "H/NH": ("HS", "head size")}
#: The sizes a cell may declare beyond D and H, with the keyword that generated code takes.
EXTRA_SIZES = {"P": "proj_size", "NH": "num_heads"}

_NAMES = "|".join(re.escape(n) for n in sorted(SIZES, key=len, reverse=True))
_SIZE_TERM = re.compile(rf"\s*(?:(\d+)\s*\*\s*)?({_NAMES})\s*(?:\*\s*(\d+)\s*)?\Z|\s*(\d+)\s*\Z")


def size_counts(dim) -> tuple[int, ...]:
    """A size string as its count of each of ``SIZES`` and its constant: "D + 2*H" is
    (1, 2, 0, 0, 0, 0).

    The grammar is symlstm's own: D, H, P, NH, H/NH, positive integers, ``+`` and ``*`` (an
    integer times a size); nothing is evaluated."""
    if not isinstance(dim, str) or not dim.strip() or len(dim) > 100:
        raise CellError(f"size {dim!r} is not allowed: use D, H, P, NH, H/NH, positive integers, "
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


def size_expr(dim: str) -> sp.Expr:
    """A size as a SymPy expression in the sizes' code names (for offsets into stacked rows)."""
    *ns, k = size_counts(dim)
    return sp.Add(*(n * sp.Symbol(code) for n, (code, _) in zip(ns, SIZES.values())), k)


def sizes_used(dims) -> tuple[str, ...]:
    """The sizes of ``SIZES`` that the size strings ``dims`` mention, in table order (NH when
    the head size is)."""
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
        if not isinstance(p.shape, tuple) or len(p.shape) not in (1, 2, 3):
            raise CellError(f"parameter {p.name!r} has shape {p.shape}; expected (rows,), "
                            f"(rows, cols) or {HEADS_SHAPE}")
    for d in (*cell.inputs.values(), *cell.states.values(), *(d for p in cell.params
                                                                for d in p.shape)):
        if size(d) != d:
            raise CellError(f"size {d!r} is not in canonical spelling ({size(d)!r}); declare "
                            "sizes through CellBuilder")
    _check_sizes(cell)
    for n, d in cell.inputs.items():
        if d not in ("D", "H"):
            raise CellError(f"input {n!r} has size {d!r}; an input has the input size 'D' or "
                            "the hidden size 'H'")
    if cell.inputs and "D" not in cell.inputs.values():
        uses_d = [n for n, d in cell.states.items() if size_counts(d)[0]] + \
            [p.name for p in cell.params if any(size_counts(x)[0] for x in p.shape)]
        if uses_d:
            raise CellError(f"the input has the hidden size H, so there is no input size D, but "
                            f"{', '.join(uses_d)} {'has' if len(uses_d) == 1 else 'have'} a size "
                            "with D")
    for eq in cell.equations:
        check_label(eq.label)
        naming.check_vector_name(naming.parse(eq.lhs).base, f"equation {eq.label!r}: variable")
    if cell.output not in cell.states:
        raise CellError(f"output {cell.output!r} is not one of the states {sorted(cell.states)}")
    _check_code_names(cell)


def _check_sizes(cell: Cell) -> None:
    """Every size a shape uses is declared; per-head blocks have the shape HEADS_SHAPE, and
    nothing else uses NH or H/NH; each declared size is some parameter's whole dimension, so
    that generated code reads it off the parameters."""
    if set(cell.dims) - set(DIMS) - set(EXTRA_SIZES):
        raise CellError(f"the cell declares the sizes {sorted(cell.dims)}; only D, H and "
                        f"{', '.join(EXTRA_SIZES)} exist")
    owners = [*((f"input {n}", (d,)) for n, d in cell.inputs.items()),
              *((f"state {n}", (d,)) for n, d in cell.states.items()),
              *((f"parameter {p.name}", p.shape) for p in cell.params)]
    for what, shape in owners:
        undeclared = [n for n in sizes_used(shape) if n not in cell.dims and n != "H/NH"]
        if undeclared:
            raise CellError(f"{what} has the shape {shape}, which uses the size "
                            f"{undeclared[0]!r}: declare it first with size({undeclared[0]!r})")
        heads = [d for d in shape if set(sizes_used((d,))) & {"NH", "H/NH"}]
        if heads and tuple(shape) != HEADS_SHAPE:
            raise CellError(f"{what} has the shape {shape}: NH and H/NH are for per-head blocks "
                            f"of the shape {HEADS_SHAPE} only")
        if len(shape) == 3 and tuple(shape) != HEADS_SHAPE:
            raise CellError(f"{what} has the shape {shape}; a parameter with three sizes holds "
                            f"per-head blocks, of the shape {HEADS_SHAPE}")
    for n in cell.sizes:
        if not any(n in p.shape for p in cell.params):
            raise CellError(f"the size {n!r} is declared but no parameter has it as a whole "
                            "dimension, so generated code could not tell it from the "
                            f"parameters (e.g. param('W', {n!r}, 'H'))")


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
    if isinstance(W, Transposed) and cell.param(P.name).is_heads:
        raise CellError(f"equation {eq.label!r}: {_show(e)} transposes the per-head blocks "
                        f"{P}; declare the blocks the other way round and write matvec({P}, v)")
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
        if eq.lhs not in used and eq.lhs not in cell.new_states:
            raise CellError(f"equation {eq.label!r}: {eq.lhs} is computed but nothing reads it "
                            "(only states leave the step)")
    if not cell.params:
        raise CellError("the cell has no parameters: there would be nothing to train")
    if not any(size_counts(d)[1] and not any(size_counts(d)[2:-1]) for p in cell.params
               for d in p.shape):
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
