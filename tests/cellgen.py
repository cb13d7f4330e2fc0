"""Random cells from the whole grammar, for property tests.

``cells()`` is a hypothesis strategy.  A drawn cell has one input (of size D, or H), up to
two extra per-step inputs (of size H, or D beside an input of size D), one to three states
(H, D or a declared projection size P) and an output h of size H, which is one of the states
or, in one cell of four, an equation's result that is not carried to the next step (then
some state has size H), a few intermediate equations and one equation per state, in any
order; its right sides nest every operation of ``ops.OPS`` (sqrt, abs, max and min among
them), division, integer powers, numbers and named constants, element-wise parameter
products, learnable scalars, parts of vectors and matrix products (plain, transposed or
per-head blocks of a declared number of heads NH, with weights shared between equations)
applied to the input, to the states at t-1, to states already computed at t and to
intermediate values; concatenations, and reductions (sum, mean) whose one number per sample
later equations use with vectors of any size.  Values stay finite by construction: exp is
applied to bounded arguments, log, sqrt and division only to positive ones.

Names are drawn as well: the input, the states other than h, the intermediate values and
the parameters may take a name from ``POOL``, which holds every generated module's own
names (the Numba loops' b, j and F, torch and device, np, T, B, ...), Python keywords and
built-ins, names that start like the modules' arrays, and x for a parameter when the input
has another name.
"""
from __future__ import annotations

import os
import random
from typing import NamedTuple

import sympy as sp
from hypothesis import HealthCheck, note, seed, settings
from hypothesis import strategies as st

from symlstm import CellBuilder, concat, matvec, naming, transpose
from symlstm.cell.ops import (Abs, Max, Min, exp, log, logsigmoid, mean, part, relu, sigma,
                              softplus, sqrt, tanh, total)
from symlstm.cell.parts import add_sizes, size_counts, size_expr


STATE_NAMES = ("h", "s", "u")

#: The seed of the slow runs (``pytest -m slow``): fresh each run unless ``SYMLSTM_SEED``
#: gives it, so that a failing run, which prints its seed, can be replayed exactly.
SEED = int(os.environ.get("SYMLSTM_SEED") or random.SystemRandom().randrange(2**32))


def slow(examples: int):
    """Settings of a slow property test: ``examples`` cells (``SYMLSTM_EXAMPLES`` overrides
    it) drawn from ``SEED``; a failure prints the line that replays it (``print_blob``)."""
    def wrap(test):
        test = settings(max_examples=int(os.environ.get("SYMLSTM_EXAMPLES", examples)),
                        deadline=None, database=None, print_blob=True,
                        suppress_health_check=[HealthCheck.too_slow,
                                               HealthCheck.data_too_large])(test)
        return seed(SEED)(test)
    return wrap


def note_replay(test: str) -> None:
    """Say, beside a failing cell, how to replay the run that found it."""
    note(f"replay the run: SYMLSTM_SEED={SEED} python -m pytest -m slow -k {test} (or add the "
         "@reproduce_failure line below to the test)")


#: Names a vector or a parameter may take: every generated module's own names
#: (``naming.MODULE_NAMES``), keywords, built-ins and the stems of the modules' arrays.  None
#: is another's adjoint ("d" + name: dhs beside hs would be refused as one identifier) or
#: ends in a digit (state0 beside a state called state would be refused as one key).
_NAMES = (naming.MODULE_NAMES - naming.SIZES) | {"lambda", "in", "max", "input", "sum", "next",
                                                 "prev", "seq", "proj", "cache", "cell", "tanh"}
_NAMES = {n for n in _NAMES if not (n.startswith("d") and n[1:] in _NAMES or n[-1].isdigit())}
POOL = tuple(sorted(n for n in _NAMES if naming.VECTOR_NAME.match(n)))
#: Names an extra input may take: one passed to forward by keyword under its own name, so
#: none that generated code would have to rename (a keyword, a built-in, a module's name).
EXTRA_POOL = tuple(n for n in POOL if naming.identifier(n) == n)
#: Names only a parameter may take: x (when the input has another name), and names with an
#: underscore (the gradient of out_h is dout_h, as the code calls what reaches h from outside).
#: A parameter is never called like an attribute of torch.nn.Module (forward).
PARAM_POOL = ("x", "out_h", "W_np", "b_j")
_PARAM_NAMES = tuple(n for n in sorted(_NAMES) + list(PARAM_POOL)
                     if n not in naming.TORCH_MODULE_NAMES)


class _Names:
    """Names for a cell's vectors and parameters: each either the usual one or a name from
    the pools, never the same twice."""

    def __init__(self, draw):
        self.draw, self.used = draw, set()

    def pick(self, usual: str, pool=POOL) -> str:
        free = [n for n in pool if n not in self.used]
        name = self.draw(st.sampled_from(free)) if free and self.draw(st.booleans()) else usual
        self.used.add(name)
        return name


class Vec(NamedTuple):
    expr: sp.Expr
    size: str
    bounded: bool = True      # |value| stays O(1): exp may be applied
    positive: bool = False    # > 0 everywhere: log and division may be applied


class _Params:
    """Parameters, created on first use; a matrix of a shape already declared may be shared."""

    def __init__(self, builder, draw, names):
        self.b, self.draw, self.names = builder, draw, names
        self.matrices: dict[tuple[str, str], list[sp.Symbol]] = {}
        self.vectors: dict[str, list[sp.Symbol]] = {}
        self.count = 0
        self.shapes: dict[str, tuple[str, ...]] = {}
        self.constants: dict[str, float] = {}
        self.heads: list[sp.Symbol] | None = None   # a list once the cell declares NH

    def _new(self, prefix, *shape):
        """A parameter symbol; only those the final equations read are declared."""
        self.count += 1
        name = self.names.pick(f"{prefix}{self.count}", _PARAM_NAMES)
        self.shapes[name] = shape
        return sp.Symbol(name)

    def declare(self, equations):
        read = set().union(*(rhs.free_symbols for _, rhs, _ in equations))
        for name, value in self.constants.items():
            if sp.Symbol(name) in read:
                self.b.constant(name, value)
        if set(self.heads or ()) & read:   # NH, where some per-head blocks are read
            self.b.size("NH")
        for name, shape in self.shapes.items():
            if sp.Symbol(name) in read:
                self.b.param(name, *shape)

    def constant(self):
        """A named constant (ε, a shift): printed by name, its value in code."""
        self.count += 1
        name = self.names.pick(f"c{self.count}", _PARAM_NAMES)
        self.constants[name] = self.draw(st.sampled_from([1e-3, 0.5, 2.5]))
        return sp.Symbol(name)

    def scalar(self):
        """A learnable scalar, shape ()."""
        return self._new("alpha")

    def matrix(self, rows: str, cols: str):
        """W, transpose(W) or per-head blocks R mapping a vector of size cols to one of size
        rows."""
        if self.heads is not None and rows == cols == "H" and self.draw(st.integers(0, 2)):
            if self.heads and self.draw(st.integers(0, 2)) == 0:
                return self.draw(st.sampled_from(self.heads))
            R = self._new("R", "NH", "H/NH", "H/NH")
            self.heads.append(R)
            return R
        if self.draw(st.booleans()):   # stored the other way round: W is cols × rows
            shared = self.matrices.get((cols, rows), [])
            if shared and self.draw(st.integers(0, 2)) == 0:
                return transpose(self.draw(st.sampled_from(shared)))
            W = self._new("V", cols, rows)
            self.matrices.setdefault((cols, rows), []).append(W)
            return transpose(W)
        shared = self.matrices.get((rows, cols), [])
        if shared and self.draw(st.integers(0, 2)) == 0:
            return self.draw(st.sampled_from(shared))
        W = self._new("W", rows, cols)
        self.matrices.setdefault((rows, cols), []).append(W)
        return W

    def dense(self, rows: str, cols: str):
        """A new matrix W, rows × cols."""
        W = self._new("W", rows, cols)
        self.matrices.setdefault((rows, cols), []).append(W)
        return W

    def vector(self, size: str):
        shared = self.vectors.get(size, [])
        if shared and self.draw(st.booleans()):
            return self.draw(st.sampled_from(shared))
        p = self._new("b", size)
        self.vectors.setdefault(size, []).append(p)
        return p


def _expr(draw, size: str, depth: int, avail: list[Vec], params: _Params) -> Vec:
    """A random element-wise expression of the given size."""
    same = [v for v in avail if v.size == size]
    kinds = ["vector", "matvec", "param"] if not same else ["vector", "vector", "matvec", "param"]
    if not same:
        kinds.remove("vector")
    if depth > 0:
        kinds += ["op"] * 4 + ["binary"] * 3 + ["divide", "power", "scale", "gate", "learnable"]
        if any(v.size == "1" for v in avail) and size != "1":
            kinds.append("broadcast")
    wider = [v for v in avail if v.size != size and all(
        a >= b for a, b in zip(size_counts(v.size), size_counts(size)))]
    if wider:
        kinds.append("part")
    kind = draw(st.sampled_from(kinds))
    if kind == "vector":
        return draw(st.sampled_from(same))
    if kind == "part":   # the first or the last entries of a longer vector
        v = draw(st.sampled_from(wider))
        start = draw(st.sampled_from([sp.S.Zero, size_expr(v.size) - size_expr(size)]))
        return Vec(part(v.expr, start, start + size_expr(size)), size, v.bounded)
    if kind == "param":
        return Vec(params.vector(size), size)
    if kind == "matvec":
        v = draw(st.sampled_from(avail))
        return Vec(matvec(params.matrix(size, v.size), v.expr), size, v.bounded)
    sub = lambda: _expr(draw, size, draw(st.integers(0, depth - 1)), avail, params)  # noqa: E731
    if kind == "op":
        a = sub()
        op = draw(st.sampled_from(["sigma", "tanh", "exp", "log", "relu", "softplus",
                                     "logsigmoid", "sqrt", "abs"]))
        if op == "sqrt":
            return Vec(sqrt(a.expr if a.positive else 1 + a.expr**2), size, a.bounded, True)
        if op == "abs":
            e = Abs(a.expr)
            if e.atoms(sp.re, sp.im, sp.sign, sp.arg):   # SymPy's |e^a| = e^re(a)
                e = Abs(tanh(a.expr))
            return Vec(e, size, a.bounded)
        if op == "sigma":
            return Vec(sigma(a.expr), size, True, True)
        if op == "tanh":
            return Vec(tanh(a.expr), size, True)
        if op == "exp":
            e = exp(a.expr if a.bounded else tanh(a.expr))
            if e.func is not sp.exp:   # SymPy's own rewrite, e.g. exp(log(a)/2) is sqrt(a)
                e = exp(tanh(a.expr))
            return Vec(e, size, True, True)
        if op == "log":
            arg = a.expr if a.positive else 1 + a.expr**2
            return Vec(log(arg), size, a.bounded)
        if op == "relu":
            return Vec(relu(a.expr), size, a.bounded)
        if op == "logsigmoid":   # between min(a, 0) - log 2 and min(a, 0): bounded if a is
            return Vec(logsigmoid(a.expr), size, a.bounded)
        return Vec(softplus(a.expr), size, a.bounded, True)
    if kind == "broadcast":   # one number per sample with every entry
        s = draw(st.sampled_from([v for v in avail if v.size == "1"]))
        a = sub()
        return Vec(s.expr * a.expr, size, s.bounded and a.bounded)
    if kind == "learnable":
        a = sub()
        if draw(st.booleans()):
            return Vec(params.scalar() * a.expr, size, a.bounded)
        return Vec(a.expr + params.constant(), size, a.bounded)
    if kind == "binary":
        a, b = sub(), sub()
        how = draw(st.sampled_from(["+", "-", "*", "max", "min"]))
        if how in ("max", "min"):
            e = (Max if how == "max" else Min)(a.expr, b.expr)
            if e.func in (Max, Min) and len(e.args) == 2 and all(
                    len(m.args) == 2 for m in e.atoms(Max, Min)):
                return Vec(e, size, a.bounded and b.bounded,
                           a.positive and b.positive if how == "min" else
                           a.positive or b.positive)
            how = "+"   # SymPy merged it with a max or min inside
        e = a.expr + b.expr if how == "+" else a.expr - b.expr if how == "-" else a.expr * b.expr
        # a product of bounded values may still be large: only sums stay bounded
        return Vec(e, size, how != "*" and a.bounded and b.bounded,
                   how != "-" and a.positive and b.positive)
    if kind == "divide":
        a, b = sub(), sub()
        den = b.expr if b.positive and b.bounded else 1 + b.expr**2
        return Vec(a.expr / (1 + den), size, a.bounded, a.positive)
    if kind == "power":
        a = sub()
        base = a.expr if a.bounded else tanh(a.expr)
        n = draw(st.sampled_from([2, 3]))
        return Vec(base**n, size, False, n == 2 and a.positive)
    if kind == "scale":
        a = sub()
        c = draw(st.sampled_from([sp.Integer(2), sp.Integer(-1), sp.Rational(1, 2), sp.pi]))
        return Vec(c * a.expr, size, a.bounded, a.positive and c > 0)
    a = sub()   # "gate": an element-wise parameter product
    return Vec(params.vector(size) * a.expr, size, a.bounded)   # parameters are O(1)


@st.composite
def cells(draw, max_intermediates: int = 4, max_depth: int = 3):
    """A random valid cell (see the module docstring)."""
    b = CellBuilder("random_cell", "Random cell")
    names = _Names(draw)
    names.used.update(["h", "x", "X", *STATE_NAMES])
    params = _Params(b, draw, names)
    if draw(st.integers(0, 2)) == 0:   # per-head blocks for most H × H products
        params.heads = []
    input_size = draw(st.sampled_from(["D", "D", "D", "H"]))
    x = Vec(b.input(names.pick("x"), input_size), input_size)
    if x.expr != sp.Symbol("x[t]"):   # a parameter may be called x
        names.used.discard("x")
    # extra inputs are drawn uniformly from [0, 1] by the checks: bounded
    extras = [Vec(b.input(name, dim), dim) for k in range(draw(st.sampled_from([0, 0, 1, 2])))
              for name, dim in [(names.pick(f"m{k}", EXTRA_POOL),
                                 draw(st.sampled_from(["H", "D"])) if input_size == "D" else "H")]]
    carried = draw(st.integers(0, 3)) > 0    # else h is an output that is not a state
    n_states = draw(st.integers(1, 3 if carried else 2))
    others = STATE_NAMES[1:n_states] if carried else STATE_NAMES[1:n_states + 1]
    state_sizes = ["H", "D", "P"] if input_size == "D" else ["H", "P"]
    sizes = {**({"h": "H"} if carried else {}),
             **{names.pick(s): draw(st.sampled_from(state_sizes)) for s in others}}
    if not carried:   # some state has size H: the sizes of the states are then not all D
        sizes[next(iter(sizes))] = "H"
    if "P" in sizes.values():   # a projection size: declared where a state has it
        b.size("P")
    # a state at t-1 may have grown over the steps before: not bounded
    prev = {s: Vec(b.state(s, dim), dim, False) for s, dim in sizes.items()}
    n_inter = draw(st.integers(0, max_intermediates))
    results = {**sizes, **({} if carried else {"h": "H"})}   # the states' and the output's
    order = draw(st.permutations([*[None] * n_inter, *results]))
    last = draw(st.sampled_from(list(sizes)))      # the final equation gives a state
    order = [e for e in order if e != last] + [last]
    avail = [x, *extras, *prev.values()]
    equations = []     # [name, rhs, size], completed below so that everything is read
    for k, state in enumerate(order):
        name = state or names.pick("X" if k == 0 else f"a{k}")   # X beside x: case only
        size = results[state] if state else draw(st.sampled_from(sorted({v.size for v in avail})))
        if state is None and draw(st.integers(0, 4)) == 0:   # one number per sample
            size = draw(st.sampled_from(sorted({v.size for v in avail} - {"1"})))
            e = _expr(draw, size, draw(st.integers(0, max_depth)), avail, params)
            if not e.expr.free_symbols or any(m.func.__name__ == "MatVec"
                                              for m in e.expr.atoms(sp.Function)):
                # a product is reduced only through an equation of its own, a number never
                e = draw(st.sampled_from([v for v in avail if v.size == size]))
                e = e._replace(expr=e.expr ** 2)
            reduce = draw(st.sampled_from([mean, total]))
            rhs, size, bounded = reduce(e.expr), "1", e.bounded and reduce is mean
        elif state is None and len(avail) >= 2 and draw(st.integers(0, 5)) == 0:
            u, v = draw(st.lists(st.sampled_from(avail), min_size=2, max_size=2, unique_by=str))
            rhs, size = concat(u.expr, v.expr), add_sizes([u.size, v.size])
            bounded = u.bounded and v.bounded
        else:
            if state is None and draw(st.booleans()) and any(v.size != size for v in avail):
                size = draw(st.sampled_from(sorted({v.size for v in avail})))
            e = _expr(draw, size, draw(st.integers(0, max_depth)), avail, params)
            rhs, bounded = e.expr, e.bounded
        if not any("[" in s.name or params.shapes.get(s.name) for s in rhs.free_symbols):
            rhs = rhs + params.vector(size)   # numbers, sizes, constants, scalars: no vector
        equations.append([name, rhs, size])
        avail.append(Vec(sp.Symbol(f"{name}[t]"), size, bounded))
    _read_everything(equations, [x, *extras, *prev.values()], params, results,
                     next(s for s, dim in sizes.items() if dim == "H"))
    params.declare(equations)
    for name, rhs, _ in equations:
        b.let(name, rhs)
    return b.build()


def _read_everything(equations, given, params, results, state_h):
    """Add each vector that nothing reads, but for the states and the output (``results``),
    to the final equation (through a matrix when the sizes differ), and make sure some
    parameter has the hidden size (a matrix on the state ``state_h`` of size H)."""
    final = equations[-1]
    read = set().union(*(rhs.free_symbols for _, rhs, _ in equations))
    unread = [v for v in given if v.expr not in read] + [
        Vec(sp.Symbol(f"{n}[t]"), size) for n, _, size in equations[:-1]
        if sp.Symbol(f"{n}[t]") not in read and n not in results]
    for v in unread:
        term = v.expr if v.size in (final[2], "1") else \
            matvec(params.matrix(final[2], v.size), v.expr)
        final[1] = final[1] + term
    read = set().union(*(rhs.free_symbols for _, rhs, _ in equations))
    if not any(size_counts(d)[1] and not any(size_counts(d)[2:-1])   # H, and no P or NH
               for name, shape in params.shapes.items() if sp.Symbol(name) in read
               for d in shape):
        final[1] = final[1] + matvec(params.dense(final[2], "H"), sp.Symbol(f"{state_h}[t-1]"))
    read = set().union(*(rhs.free_symbols for _, rhs, _ in equations))
    projected = [v for v in given if v.size == "P"]
    if projected and not any("P" in shape for name, shape in params.shapes.items()
                             if sp.Symbol(name) in read):   # P is read off a parameter
        final[1] = final[1] + matvec(params.dense(final[2], "P"), projected[0].expr)
