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

import sympy as sp

from .. import naming
from .checks import _check_about, _check_title, _dim_of, _named, check, check_cell_name, check_label
from .ops import Transposed, matrix_param
from .parts import DIMS, CellError, Equation, Param, size


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
        check_cell_name(name)
        _check_title(title)
        _check_about(about)
        self.name, self.title, self.about = name, title, about
        self.inputs: dict[str, str] = {}
        self.states: dict[str, str] = {}
        self.params: list[Param] = []
        self.equations: list[Equation] = []

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
        return Cell(self.name, self.title, dict(self.inputs), dict(self.states), tuple(self.params),
                    tuple(self.equations), output, self.about)
