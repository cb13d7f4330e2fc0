"""Every check that a cell passes before the engine derives it: names, labels, texts, the
symbols and functions each equation uses, and the size of every vector.  Each failure is a
:class:`~symlstm.cell.parts.CellError` that says which equation and what was expected."""
from __future__ import annotations

import keyword

import sympy as sp

from .. import naming
from . import display
from .matrices import (check_head_shapes, elementwise_dim, matrix_param_dim, matvec_dim,
                       outer_dim, reduction_dim)
from .ops import (BINARY, CELL_REDUCTIONS, OPS, REDUCTIONS, STRUCTURE, Concat, HeadOuter, MatVec,
                  Part, Transposed, headsum)
from .parts import (CHANNEL_MATRIX, DIMS, EXTRA_SIZES, HEAD_MATRIX, HEADS_SHAPE, MATRICES,
                    SIZE_SYMBOLS, SIZES, CellError, Equation, add_sizes, expr_counts, size,
                    size_counts, sizes_used, spell_size)


_KIND = {HEAD_MATRIX: "head", CHANNEL_MATRIX: "channel"}


def _named(rule, *args) -> None:
    """Apply a naming rule, reporting a broken one as a CellError."""
    try:
        rule(*args)
    except ValueError as e:
        raise CellError(str(e)) from None


def check(cell) -> None:
    """Raise :class:`CellError` naming the first thing in ``cell`` the engine cannot derive."""
    _named(_check_names, cell)
    defined = set(cell.input_symbols) | set(cell.prev_states) | set(size_symbols(cell))
    params = {p.symbol: p for p in cell.params}
    params.update({sp.Symbol(n): v for n, v in cell.constants.items()})
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
        _check_reductions(cell, eq, dims, dim)
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


def _check_names(cell) -> None:
    check_cell_name(cell.name)
    _check_title(cell.title)
    _check_about(cell.about)
    for n in (*cell.inputs, *cell.states):
        naming.check_vector_name(n, "input" if n in cell.inputs else "state")
    for p in cell.params:
        naming.check_param_name(p.name)
        if not isinstance(p.shape, tuple) or len(p.shape) not in (0, 1, 2, 3):
            raise CellError(f"parameter {p.name!r} has shape {p.shape}; expected () for a "
                            f"scalar, (rows,), (rows, cols) or {HEADS_SHAPE}")
    for n, v in cell.constants.items():
        naming.check_param_name(n)
        if any(p.name == n for p in cell.params):
            raise CellError(f"{n!r} is both a constant and a parameter")
        constant_value(n, v)
    for d in (*cell.inputs.values(), *cell.states.values(), *(d for p in cell.params
                                                                for d in p.shape)):
        if d not in MATRICES and size(d) != d:
            raise CellError(f"size {d!r} is not in canonical spelling ({size(d)!r}); declare "
                            "sizes through CellBuilder")
    _check_sizes(cell)
    for n, d in cell.inputs.items():
        if d not in ("D", "H"):
            raise CellError(f"input {n!r} has size {d!r}; an input has the input size 'D' or "
                            "the hidden size 'H'")
    if cell.inputs and next(iter(cell.inputs.values())) != "D":
        # generated code reads D off the first input: without it there is no D
        uses_d = [n for n, d in list(cell.inputs.items())[1:] if d == "D"] + \
            [n for n, d in cell.states.items() if d not in MATRICES and size_counts(d)[0]] + \
            [p.name for p in cell.params if any(size_counts(x)[0] for x in p.shape)]
        if uses_d:
            raise CellError(f"the input has the hidden size H, so there is no input size D, but "
                            f"{', '.join(uses_d)} {'has' if len(uses_d) == 1 else 'have'} a size "
                            "with D")
    for eq in cell.equations:
        check_label(eq.label)
        naming.check_vector_name(naming.parse(eq.lhs).base, f"equation {eq.label!r}: variable")
    results = [naming.parse(eq.lhs).base for eq in cell.equations]
    if cell.states.get(cell.output) in MATRICES:
        raise CellError(f"output {cell.output!r} is a matrix per {_KIND[cell.states[cell.output]]}"
                        "; the output is a vector (of size H, say C q)")
    if cell.output in cell.inputs or cell.output not in (*cell.states, *results):
        raise CellError(f"output {cell.output!r} is neither a state {sorted(cell.states)} nor "
                        "the result of an equation: the output is what the module returns "
                        "at every step")
    _check_code_names(cell)


def _check_sizes(cell) -> None:
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
        check_head_shapes(what, shape)
    for n in cell.sizes:
        if not any(n in p.shape for p in cell.params):
            raise CellError(f"the size {n!r} is declared but no parameter has it as a whole "
                            "dimension, so generated code could not tell it from the "
                            f"parameters (e.g. param('W', {n!r}, 'H'))")


def _check_code_names(cell) -> None:
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
    for n in cell.constants:
        claim(n, f"constant {n}")
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


def constant_value(name: str, value) -> float:
    """A constant's value as a float, refusing what is not a finite real number."""
    if isinstance(value, bool) or not isinstance(value, (int, float, sp.Number)) \
            or not (isinstance(value, sp.Number) and value.is_finite and value.is_real
                    or not isinstance(value, sp.Number) and abs(float(value)) < float("inf")):
        raise CellError(f"constant {name!r} must be a finite real number such as 1e-5, "
                        f"got {value!r}")
    return float(value)


def read_symbols(rhs: sp.Expr) -> set[sp.Symbol]:
    """The symbols a right side reads: its free symbols, less the sizes in a part's bounds."""
    return rhs.xreplace({r: r.args[0] for r in rhs.atoms(Part)}).free_symbols


def _check_symbols(eq: Equation, defined, params, later) -> None:
    for s in sorted(read_symbols(eq.rhs), key=str):
        if s in defined or s in params:
            continue
        if s in later:
            raise CellError(f"equation {eq.label!r} uses {s} before equation {later[s]!r} computes "
                            "it: a cycle within one step (use the state's value at t-1 instead)")
        raise CellError(f"equation {eq.label!r} uses {s}, which is not an input, a state at t-1, "
                        "a parameter or an earlier equation's result")


_KNOWN = ", ".join(sorted(f.__name__ for f in (*OPS, *CELL_REDUCTIONS)
                          if f.__name__ not in ("step", "sign", "halfstep")))


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
        if e.func in BINARY and len(e.args) != 2:
            raise CellError(f"{where}: {e.func.__name__.lower()} takes two arguments, got "
                            f"{display.text(e)}; for more, nest them through equations of "
                            "their own")
        if e.func in OPS and e.func not in BINARY and len(e.args) != 1:
            raise CellError(f"{where}: {e.func.__name__} takes one argument, got {display.text(e)}")
        if isinstance(e, STRUCTURE + (Part,)) or e.func in OPS or e.func in CELL_REDUCTIONS \
                or isinstance(e, (sp.Add, sp.Mul, sp.Symbol)):
            continue
        if e.func in REDUCTIONS:
            raise CellError(f"{where} applies {e.func.__name__}, a reduction for the losses of "
                            f"output heads; a cell may reduce with "
                            f"{' and '.join(f.__name__ for f in CELL_REDUCTIONS)}")
        if isinstance(e, sp.Pow):
            if not e.exp.is_Integer:
                hint = " (for a square root write sqrt(a), symlstm.cell.ops.sqrt)" \
                    if e.exp in (sp.S.Half, -sp.S.Half) else ""
                raise CellError(f"{where}: the power {display.text(e)} needs an integer "
                                f"exponent{hint}")
            continue
        if e.is_Number or e.is_NumberSymbol or e in (sp.zoo, sp.nan):
            if not (e.is_finite and e.is_real):
                raise CellError(f"{where}: {e} is not a finite real number")
            continue
        hint = ""
        if isinstance(e, sp.Function) or isinstance(e, sp.Expr) and e.args:
            raise CellError(f"{where} applies {e.func.__name__}, which has no derivative rule "
                            f"(known: {_KNOWN}; add an entry to symlstm.cell.ops.OPS){hint}")
        raise CellError(f"{where}: {display.text(e)} is not a vector, a parameter or a real number")


def _dim_of(cell, eq: Equation, e: sp.Expr, dims: dict[str, str]) -> str | None:
    """The size of an element-wise expression (None for a scalar), checking that sizes agree."""
    if e.is_Number:
        return None
    if isinstance(e, sp.Symbol):
        p = naming.parse(e)
        if p is not None:
            return dims[p.base]
        if e.name in cell.constants or e in size_symbols(cell):
            return None
        return matrix_param_dim(cell, eq, e)
    if e.func in REDUCTIONS:
        return reduction_dim(eq, e, _dim_of(cell, eq, e.args[0], dims))
    if isinstance(e, MatVec):
        return matvec_dim(cell, eq, e, dims)
    if isinstance(e, HeadOuter):
        return outer_dim(cell, eq, e, dims)
    if isinstance(e, Part):
        return _part_dim(cell, eq, e, dims)
    if isinstance(e, Concat):
        if not all(isinstance(v, sp.Symbol) and naming.parse(v) is not None for v in e.args):
            raise CellError(f"equation {eq.label!r}: concat takes named vectors, got {display.text(e)}")
        if any(dims[naming.parse(v).base] in MATRICES for v in e.args):
            raise CellError(f"equation {eq.label!r}: concat takes vectors, not matrices per head "
                            "or per channel")
        return add_sizes(dims[naming.parse(v).base] for v in e.args)
    # one number per sample (a reduction, a scalar) goes with any size, one per head (NH)
    # with an H-vector or a matrix per head
    return elementwise_dim(eq, e, [_dim_of(cell, eq, a, dims) for a in e.args])


def _check_reductions(cell, eq: Equation, dims, dim) -> None:
    """A reduction gives one number per sample, which the sweep differentiates entry by entry
    only where nothing outside it is a vector: so an equation that reduces yields one number
    per sample, and no reduction holds another."""
    reductions = [e for e in sp.preorder_traversal(eq.rhs) if e.func in CELL_REDUCTIONS]
    per_head = [r for r in reductions if r.func is headsum]
    if per_head and len(per_head) != len(reductions):
        raise CellError(f"equation {eq.label!r}: {display.text(per_head[0])} sums within each "
                        "head and may not share an equation with a sum over all entries; give "
                        "one of them an equation of its own")
    for r in reductions:
        if _dim_of(cell, eq, r.args[0], dims) is None:
            raise CellError(f"equation {eq.label!r}: {display.text(r)} reduces a number, not a "
                            "vector")
        if any(e.func in CELL_REDUCTIONS for e in sp.preorder_traversal(r.args[0])):
            raise CellError(f"equation {eq.label!r}: {display.text(r)} has a reduction inside a "
                            "reduction; give the inner one an equation of its own")
        if r.args[0].atoms(MatVec):
            raise CellError(f"equation {eq.label!r}: in {display.text(r)} a matrix product is "
                            "reduced; give the product an equation of its own")
    if reductions and dim != ("NH" if per_head else "1"):
        each, example = ("head", "nq = sqrt(headsum(q**2))") if per_head else ("sample",
                                                                              "mu = mean(v)")
        raise CellError(f"equation {eq.label!r}: {display.text(reductions[0])} is one number per "
                        f"{each}, but the right side is a vector of size {dim}; give the "
                        f"reduction an equation of its own ({example}) and use that in the "
                        "vector equation")


def _part_dim(cell, eq: Equation, e, dims) -> str:
    """The size of ``part(v, start, stop)``, checking that the rows are within v."""
    v, start, stop = e.args
    where = f"equation {eq.label!r}: in part({v}, {start}, {stop})"
    vector = isinstance(v, sp.Symbol) and (
        naming.parse(v) is not None or any(p.name == v.name and len(p.shape) == 1
                                           for p in cell.params))
    if not vector:
        raise CellError(f"{where} the first argument must be a named vector or a vector "
                        "parameter; give the expression its own equation first")
    n = dims[naming.parse(v).base] if naming.parse(v) else cell.param(v.name).shape[0]
    if n in MATRICES:
        raise CellError(f"{where} {v} is a matrix per {_KIND[n]}; part takes rows of a vector")
    n = size_counts(n)
    a, b = (_bound(x, where) for x in (start, stop))
    if a == b or any(y < x for x, y in zip((*a, *b), (*b, *n))):
        raise CellError(f"{where} the rows {start}:{stop} are not within {v}, which has size "
                        f"{spell_size(n)}: use 0 <= start < stop <= size, in D and H")
    return spell_size(tuple(y - x for x, y in zip(a, b)))


def _bound(x, where: str) -> tuple[int, ...]:
    """A part's bound (0, H, 2*H, D + P) as :func:`~.parts.size_counts` lays out a size."""
    x = sp.expand(x)
    if not x.free_symbols <= set(SIZE_SYMBOLS) or not all(
            c.is_Integer and c >= 0 for c in sp.Poly(x, *SIZE_SYMBOLS).coeffs()) \
            or sp.Poly(x, *SIZE_SYMBOLS).total_degree() > 1:
        raise CellError(f"{where} the bound {x} is not a size: write 0, an integer, or an integer "
                        "times a size (D, H or one the cell declares), e.g. part(v, H, 2*H)")
    return expr_counts(x)


def size_symbols(cell) -> tuple[sp.Symbol, ...]:
    """The sizes an equation may use as numbers (k / √HS): D, H and those the cell declares,
    with the head size HS = H/NH where it declares NH."""
    declared = {*cell.dims, *(("H/NH",) if "NH" in cell.dims else ())}
    return tuple(s for s, n in zip(SIZE_SYMBOLS, SIZES) if n in declared)


def _check_coverage(cell, defined, params) -> None:
    for s in cell.new_states:
        if s not in defined:
            raise CellError(f"state {naming.parse(s).base!r} has no equation giving its new value")
    used = set().union(*(read_symbols(eq.rhs) for eq in cell.equations))
    for eq in cell.equations:
        if eq.lhs not in used and eq.lhs not in cell.new_states \
                and eq.lhs != naming.timed(cell.output):
            raise CellError(f"equation {eq.label!r}: {eq.lhs} is computed but nothing reads it "
                            "(only the states and the output leave the step)")
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
