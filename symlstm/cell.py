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
from dataclasses import dataclass, field
from typing import NamedTuple

import sympy as sp

from . import naming
from .ops import DERIVATIVES, Concat, MatVec, Transposed, matrix_param

DIMS = {"D": "input size", "H": "hidden size"}


class CellError(ValueError):
    """A cell definition that the engine cannot derive; the message says which equation and why."""


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

    ``inputs`` and ``states`` map names to their dimension ("D" or "H"); ``output`` is the
    state whose values over time the cell returns; ``equations`` compute, in order, every
    intermediate and each state's new value from ``x[t]``, the ``s[t-1]`` and the parameters.
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
        if not isinstance(name, str) or not name.isidentifier() or not name.islower():
            raise CellError(f"cell name {name!r} must be a lower-case Python identifier, e.g. 'my_cell'")
        self.name, self.title, self.about = name, str(title), str(about)
        self.inputs: dict[str, str] = {}
        self.states: dict[str, str] = {}
        self.params: list[Param] = []
        self.equations: list[Equation] = []

    def input(self, name: str, dim: str = "D") -> sp.Symbol:
        """Declare an input vector; returns x_t."""
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
        lhs = naming.timed(name)
        self.equations.append(Equation(label or name, lhs, sp.sympify(rhs)))
        return lhs

    def _declare(self, name, what: str) -> None:
        _named(naming.check_vector_name, name, what)
        if name in self.inputs or name in self.states:
            raise CellError(f"{name!r} is declared twice (as an input or a state)")

    def build(self, output: str = "h") -> Cell:
        return Cell(self.name, self.title, dict(self.inputs), dict(self.states), tuple(self.params),
                    tuple(self.equations), output, self.about)


def size(dim: str) -> str:
    """A size in canonical spelling: "H", "D", or a sum such as "D + H"."""
    try:
        e = sp.sympify(dim)
    except (sp.SympifyError, TypeError):
        e = None
    if e is None or not e.free_symbols or not {str(s) for s in e.free_symbols} <= set(DIMS) \
            or not all(c.is_Integer and c > 0 for c in sp.Poly(e).coeffs()) \
            or sp.Poly(e).total_degree() != 1:
        raise CellError(f"size {dim!r} is not allowed: use D, H or a sum of them such as 'D + H'")
    return str(e)


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


def _check_names(cell: Cell) -> None:
    for n in (*cell.inputs, *cell.states):
        naming.check_vector_name(n, "input" if n in cell.inputs else "state")
    for p in cell.params:
        naming.check_param_name(p.name)
        if len(p.shape) not in (1, 2):
            raise CellError(f"parameter {p.name!r} has shape {p.shape}; expected (rows,) or "
                            "(rows, cols)")
    for d in (*cell.inputs.values(), *cell.states.values(), *(d for p in cell.params
                                                                for d in p.shape)):
        size(d)
    for n, d in cell.inputs.items():
        if d != "D":
            raise CellError(f"input {n!r} has size {d!r}; inputs have the input size 'D'")
    hoisted = tuple(f"{f.__name__}_" for f in DERIVATIVES) + ("prod_",)
    for p in cell.params:
        if p.name.startswith(hoisted):
            raise CellError(f"parameter name {p.name!r} starts like the generated module's "
                            f"cached values ({', '.join(hoisted)})")
    for eq in cell.equations:
        naming.check_vector_name(naming.parse(eq.lhs).base, f"equation {eq.label!r}: variable")
    if cell.output not in cell.states:
        raise CellError(f"output {cell.output!r} is not one of the states {sorted(cell.states)}")
    _check_code_names(cell)


def _check_code_names(cell: Cell) -> None:
    """Every forward and adjoint identifier of the generated module must be distinct."""
    symbols = [*cell.input_symbols, *cell.prev_states, *(eq.lhs for eq in cell.equations)]
    seen: dict[str, str] = {}
    for s in symbols:
        for v in (s, naming.adjoint(s)):
            c = naming.code(v)
            if seen.setdefault(c, str(v)) != str(v):
                raise CellError(f"{v} and {seen[c]} would both be called {c!r} in generated code")
    for p in cell.params:
        if p.name in seen:
            raise CellError(f"parameter {p.name!r} clashes with the vector {seen[p.name]}")


def _check_symbols(eq: Equation, defined, params, later) -> None:
    for s in sorted(eq.rhs.free_symbols, key=str):
        if s in defined or s in params:
            continue
        if s in later:
            raise CellError(f"equation {eq.label!r} uses {s} before equation {later[s]!r} computes "
                            "it: a cycle within one step (use the state's value at t-1 instead)")
        raise CellError(f"equation {eq.label!r} uses {s}, which is not an input, a state at t-1, "
                        "a parameter or an earlier equation's result")


def _check_functions(eq: Equation) -> None:
    for f in eq.rhs.atoms(sp.Function):
        if f.func is Concat and f is not eq.rhs:
            raise CellError(f"equation {eq.label!r}: concat(...) must be the whole right side; "
                            "give it an equation of its own")
        if f.func is Transposed and not any(isinstance(m, MatVec) and m.args[0] == f
                                            for m in eq.rhs.atoms(MatVec)):
            raise CellError(f"equation {eq.label!r}: transpose(...) is for the matrix of "
                            "matvec(transpose(W), v), not for use element-wise")
        if f.func in (MatVec, Transposed, Concat):
            continue
        if f.func not in DERIVATIVES:
            known = ", ".join(sorted(str(k.__name__) for k in DERIVATIVES))
            raise CellError(f"equation {eq.label!r} applies {f.func}, which has no derivative rule "
                            f"(known: {known}; add one to symlstm.ops.DERIVATIVES)")
    for p in eq.rhs.atoms(sp.Pow):
        if not p.exp.is_Integer:
            raise CellError(f"equation {eq.label!r}: the power {p} needs an integer exponent")


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
            raise CellError(f"equation {eq.label!r}: concat takes named vectors, got {e}")
        return size("+".join(f"({dims[naming.parse(v).base]})" for v in e.args))
    sizes = {d for d in (_dim_of(cell, eq, a, dims) for a in e.args) if d is not None}
    if len(sizes) > 1:
        raise CellError(f"equation {eq.label!r}: {e} combines vectors of sizes {sorted(sizes)} "
                        "element-wise; they must have the same size")
    return sizes.pop() if sizes else None


def _matvec_dim(cell: Cell, eq: Equation, e: MatVec, dims) -> str:
    W, v = e.args
    P = matrix_param(W)
    if not (isinstance(P, sp.Symbol) and naming.parse(P) is None
            and any(p.name == P.name and p.is_matrix for p in cell.params)):
        raise CellError(f"equation {eq.label!r}: in {e} the first factor must be a matrix "
                        "parameter or its transpose")
    if not (isinstance(v, sp.Symbol) and naming.parse(v) is not None):
        raise CellError(f"equation {eq.label!r}: in {e} the vector must be a named variable; "
                        "give the expression its own equation first")
    rows, cols = cell.matrix_shape(W)
    if dims[naming.parse(v).base] != cols:
        raise CellError(f"equation {eq.label!r}: {W} is {rows}×{cols} but {v} has size "
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
