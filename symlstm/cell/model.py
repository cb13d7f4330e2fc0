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
from .checks import (_check_about, _check_title, _dim_of, _named, check, check_cell_name,
                     check_label, constant_value)
from .ops import Transposed, matrix_param
from .parts import (CHANNEL_MATRIX, CHANNEL_SHAPE, DIMS, EXTRA_SIZES, HEAD_MATRIX, HEADS_SHAPE,
                    SIZES, CellError, Equation, Param, size)


@dataclass(frozen=True)
class Cell:
    """One step of a recurrent cell.

    ``inputs`` and ``states`` map names to their dimension ("D" or "H"); the first input is
    the sequence generated code takes as its argument (it gives D), the others are extra
    per-step inputs passed by keyword.  ``output`` is the vector whose values over time the
    cell returns: a state, or the result of an equation that is not carried to the next step
    (SRU's h).  ``equations`` compute, in order, every intermediate, each state's new value
    and the output from the inputs at t, the ``s[t-1]`` and the parameters.
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
    constants: dict[str, float] = field(default_factory=dict)

    def __post_init__(self):
        check(self)

    def param(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)

    def matrix_shape(self, W: sp.Expr) -> tuple[str, str]:
        """(rows, cols) of a matrix parameter W or of its transpose (H × H for per-head
        blocks and for a matrix per head: the block-diagonal matrix they stand for; H × N for
        a matrix per channel)."""
        p = naming.parse(matrix_param(W))
        if p is not None and self._vector_dims.get(p.base) == CHANNEL_MATRIX:
            return CHANNEL_SHAPE[::-1] if isinstance(W, Transposed) else CHANNEL_SHAPE
        if p is not None:   # a matrix per head, C or Cᵀ
            return ("H", "H")
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
            shape = self.param(symbol.name).shape
            if shape == CHANNEL_SHAPE:   # used element-wise: a matrix per channel
                return CHANNEL_MATRIX
            return shape[0] if shape else "1"   # a scalar: one number, as for each sample
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
        self.constants: dict[str, float] = {}
        self.equations: list[Equation] = []
        self.dims: dict[str, str] = dict(DIMS)

    def size(self, name: str) -> str:
        """Declare a size beyond D and H: "P" (a projection size), "NH" (a number of heads,
        which brings the head size "H/NH"; H must then be a multiple of NH) or "N" (the
        state size of a matrix per channel, H × N).  Returns the size's name, for use in
        shapes."""
        if name not in EXTRA_SIZES:
            raise CellError(f"size {name!r} cannot be declared: the sizes a cell may declare "
                            f"are {', '.join(map(repr, EXTRA_SIZES))} (D and H are always there)")
        if name in self.dims:
            raise CellError(f"size {name!r} is declared twice")
        if {name, *self.dims} >= {"N", "NH"}:
            raise CellError("a cell declares either heads, size('NH') (matrices per head), or "
                            "a state size, size('N') (matrices per channel, H × N), not both")
        self.dims[name] = SIZES[name][1]
        return name

    def input(self, name: str, dim: str = "D") -> sp.Symbol:
        """Declare an input vector of size "D" (the input size) or "H"; returns x_t.

        The first input is the sequence generated code takes as its argument; any further
        one (a zoneout mask) is an extra per-step input, passed to ``forward`` by keyword as
        an array (T, B, size) and given a gradient by ``backward`` like the first."""
        self._declare(name, "input")
        self.inputs[name] = size(dim)
        return naming.timed(name)

    def state(self, name: str, *shape: str) -> sp.Symbol:
        """Declare a recurrent state; returns s_{t-1} (an equation for ``name`` must give s_t).

        A state is a vector of size "H" (the default), "D", "P", or "NH" (one number per head);
        ``state("C", "NH", "H/NH", "H/NH")`` is a matrix per head (one H/NH × H/NH matrix for
        each of the NH heads, declare NH first with ``size("NH")``); ``state("h", "H", "N")``
        a matrix per channel (a row of N entries for each of the H channels, declare N first
        with ``size("N")``)."""
        self._declare(name, "state")
        if tuple(shape) == HEADS_SHAPE:
            self.states[name] = HEAD_MATRIX
        elif tuple(shape) == CHANNEL_SHAPE:
            self.states[name] = CHANNEL_MATRIX
        elif len(shape) > 1:
            raise CellError(f"state {name!r}: give one size for a vector, {HEADS_SHAPE} for a "
                            f"matrix per head, e.g. state({name!r}, 'NH', 'H/NH', 'H/NH'), or "
                            f"{CHANNEL_SHAPE} for a matrix per channel, e.g. state({name!r}, "
                            f"'H', 'N'); got {shape}")
        else:
            self.states[name] = size(shape[0] if shape else "H")
        return naming.timed(name, -1)

    def param(self, name: str, *shape: str) -> sp.Symbol:
        """Declare a parameter: ``param("W_z", "H", "D")`` is a matrix, ``param("b_z", "H")`` a
        vector, ``param("alpha")`` a learnable scalar (shape (), used with every entry),
        ``param("R_z", "NH", "H/NH", "H/NH")`` block-diagonal: one H/NH × H/NH block per head,
        which ``matvec(R_z, h)`` applies to the H-vector h head by head (declare NH first with
        ``size("NH")``)."""
        _named(naming.check_param_name, name)
        if any(p.name == name for p in self.params) or name in self.constants:
            raise CellError(f"parameter {name!r} is declared twice")
        if len(shape) not in (0, 1, 2, 3):
            raise CellError(f"parameter {name!r}: give no size for a scalar, one for a vector, "
                            f"two for a matrix or {HEADS_SHAPE} for per-head blocks, e.g. "
                            f"param({name!r}, 'H', 'D'); got {shape}")
        self.params.append(Param(name, tuple(size(d) for d in shape)))
        return sp.Symbol(name)

    def constant(self, name: str, value: float) -> sp.Symbol:
        """Declare a fixed number with a name: ``constant("eps", 1e-5)``.  Documents print the
        name; generated code writes the value."""
        _named(naming.check_param_name, name)
        if name in self.constants or any(p.name == name for p in self.params):
            raise CellError(f"constant {name!r} is declared twice (as a constant or a parameter)")
        self.constants[name] = constant_value(name, value)
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
                    tuple(self.equations), output, self.about, dims=dict(self.dims),
                    constants=dict(self.constants))
