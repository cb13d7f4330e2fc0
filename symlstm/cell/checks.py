"""Every check that a cell passes before the engine derives it: names, labels, texts, the
symbols and functions each equation uses, and the size of every vector.  Each failure is a
:class:`~symlstm.cell.parts.CellError` that says which equation and what was expected."""
from __future__ import annotations

import keyword

import sympy as sp

from .. import naming
from . import display
from .ops import OPS, STRUCTURE, Concat, MatVec, Transposed, matrix_param
from .parts import CellError, Equation, add_sizes, size, size_counts


def _named(rule, *args) -> None:
    """Apply a naming rule, reporting a broken one as a CellError."""
    try:
        rule(*args)
    except ValueError as e:
        raise CellError(str(e)) from None


def check(cell) -> None:
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


def _check_names(cell) -> None:
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
                raise CellError(f"{where}: the power {display.text(e)} needs an integer exponent")
            continue
        if e.is_Number or e.is_NumberSymbol or e in (sp.zoo, sp.nan):
            if not (e.is_finite and e.is_real):
                raise CellError(f"{where}: {e} is not a finite real number")
            continue
        hint = ("; for max(0, a) write relu(a)" if isinstance(e, (sp.Max, sp.Min)) else "")
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
        param = cell.param(e.name)
        if param.is_matrix:
            raise CellError(f"equation {eq.label!r} uses the matrix {e} element-wise; "
                            f"write matvec({e}, v) for the product with a vector v")
        return param.shape[0]
    if isinstance(e, MatVec):
        return _matvec_dim(cell, eq, e, dims)
    if isinstance(e, Concat):
        if not all(isinstance(v, sp.Symbol) and naming.parse(v) is not None for v in e.args):
            raise CellError(f"equation {eq.label!r}: concat takes named vectors, got {display.text(e)}")
        return add_sizes(dims[naming.parse(v).base] for v in e.args)
    sizes = {d for d in (_dim_of(cell, eq, a, dims) for a in e.args) if d is not None}
    if len(sizes) > 1:
        raise CellError(f"equation {eq.label!r}: {display.text(e)} combines vectors of sizes {sorted(sizes)} "
                        "element-wise; they must have the same size")
    return sizes.pop() if sizes else None


def _matvec_dim(cell, eq: Equation, e: MatVec, dims) -> str:
    W, v = e.args
    P = matrix_param(W)
    if not (isinstance(P, sp.Symbol) and naming.parse(P) is None
            and any(p.name == P.name and p.is_matrix for p in cell.params)):
        raise CellError(f"equation {eq.label!r}: in {display.text(e)} the first factor must be a matrix "
                        "parameter or its transpose")
    if not (isinstance(v, sp.Symbol) and naming.parse(v) is not None):
        raise CellError(f"equation {eq.label!r}: in {display.text(e)} the vector must be a named variable; "
                        "give the expression its own equation first")
    rows, cols = cell.matrix_shape(W)
    if dims[naming.parse(v).base] != cols:
        shape = "×".join(f"({d})" if "+" in d else d for d in (rows, cols))
        raise CellError(f"equation {eq.label!r}: {display.text(W)} is {shape} but {v} has size "
                        f"{dims[naming.parse(v).base]}: the matrix is applied to the wrong vector")
    return rows


def _check_coverage(cell, defined, params) -> None:
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
