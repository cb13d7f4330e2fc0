"""Random cells from the whole grammar, for property tests.

``cells()`` is a hypothesis strategy.  A drawn cell has one input (of size D, or H), one to
three states (the output h of size H, the others H or D), a few intermediate equations and
one equation per state, in any order; its right sides nest every operation of ``ops.OPS``,
division, integer powers, constants, element-wise parameter products and matrix products
(plain or transposed, with weights shared between equations) applied to the input, to the
states at t-1, to states already computed at t and to intermediate values, and
concatenations.  Values stay finite by construction: exp is applied to bounded arguments,
log and division only to positive ones.

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
from symlstm.cell.ops import exp, log, logsigmoid, relu, sigma, softplus, tanh
from symlstm.cell.parts import add_sizes


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

    def _new(self, prefix, *shape):
        """A parameter symbol; only those the final equations read are declared."""
        self.count += 1
        name = self.names.pick(f"{prefix}{self.count}", _PARAM_NAMES)
        self.shapes[name] = shape
        return sp.Symbol(name)

    def declare(self, equations):
        read = set().union(*(rhs.free_symbols for _, rhs, _ in equations))
        for name, shape in self.shapes.items():
            if sp.Symbol(name) in read:
                self.b.param(name, *shape)

    def matrix(self, rows: str, cols: str):
        """W or transpose(W) mapping a vector of size cols to one of size rows."""
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
        kinds += ["op"] * 4 + ["binary"] * 3 + ["divide", "power", "scale", "gate"]
    kind = draw(st.sampled_from(kinds))
    if kind == "vector":
        return draw(st.sampled_from(same))
    if kind == "param":
        return Vec(params.vector(size), size)
    if kind == "matvec":
        v = draw(st.sampled_from(avail))
        return Vec(matvec(params.matrix(size, v.size), v.expr), size, v.bounded)
    sub = lambda: _expr(draw, size, draw(st.integers(0, depth - 1)), avail, params)  # noqa: E731
    if kind == "op":
        a = sub()
        op = draw(st.sampled_from(["sigma", "tanh", "exp", "log", "relu", "softplus",
                                     "logsigmoid"]))
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
    if kind == "binary":
        a, b = sub(), sub()
        how = draw(st.sampled_from(["+", "-", "*"]))
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
    input_size = draw(st.sampled_from(["D", "D", "D", "H"]))
    x = Vec(b.input(names.pick("x"), input_size), input_size)
    if x.expr != sp.Symbol("x[t]"):   # a parameter may be called x
        names.used.discard("x")
    n_states = draw(st.integers(1, 3))
    sizes = {"h": "H", **{names.pick(s): draw(st.sampled_from(["H", "D"]))
                          if input_size == "D" else "H" for s in STATE_NAMES[1:n_states]}}
    # a state at t-1 may have grown over the steps before: not bounded
    prev = {s: Vec(b.state(s, dim), dim, False) for s, dim in sizes.items()}
    n_inter = draw(st.integers(0, max_intermediates))
    order = draw(st.permutations([*[None] * n_inter, *sizes]))
    last = draw(st.sampled_from(list(sizes)))      # the final equation gives a state
    order = [e for e in order if e != last] + [last]
    avail = [x, *prev.values()]
    equations = []     # [name, rhs, size], completed below so that everything is read
    for k, state in enumerate(order):
        name = state or names.pick("X" if k == 0 else f"a{k}")   # X beside x: case only
        size = sizes[state] if state else draw(st.sampled_from(sorted({v.size for v in avail})))
        if state is None and len(avail) >= 2 and draw(st.integers(0, 5)) == 0:
            u, v = draw(st.lists(st.sampled_from(avail), min_size=2, max_size=2, unique_by=str))
            rhs, size = concat(u.expr, v.expr), add_sizes([u.size, v.size])
            bounded = u.bounded and v.bounded
        else:
            if state is None and draw(st.booleans()) and any(v.size != size for v in avail):
                size = draw(st.sampled_from(sorted({v.size for v in avail})))
            e = _expr(draw, size, draw(st.integers(0, max_depth)), avail, params)
            rhs, bounded = e.expr, e.bounded
        if not rhs.free_symbols:
            rhs = rhs + params.vector(size)
        equations.append([name, rhs, size])
        avail.append(Vec(sp.Symbol(f"{name}[t]"), size, bounded))
    _read_everything(equations, [x, *prev.values()], params, sizes)
    params.declare(equations)
    for name, rhs, _ in equations:
        b.let(name, rhs)
    return b.build()


def _read_everything(equations, given, params, sizes):
    """Add each vector that nothing reads to the final equation (through a matrix when the
    sizes differ), and make sure some parameter has the hidden size."""
    final = equations[-1]
    read = set().union(*(rhs.free_symbols for _, rhs, _ in equations))
    unread = [v for v in given if v.expr not in read] + [
        Vec(sp.Symbol(f"{n}[t]"), size) for n, _, size in equations[:-1]
        if sp.Symbol(f"{n}[t]") not in read and n not in sizes]
    for v in unread:
        term = v.expr if v.size == final[2] else matvec(params.matrix(final[2], v.size), v.expr)
        final[1] = final[1] + term
    read = set().union(*(rhs.free_symbols for _, rhs, _ in equations))
    if not any("H" in d for name, shape in params.shapes.items() if sp.Symbol(name) in read
               for d in shape):
        final[1] = final[1] + matvec(params.matrix(final[2], "H"), sp.Symbol("h[t-1]"))
