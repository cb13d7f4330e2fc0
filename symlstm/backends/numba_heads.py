"""The Numba module of a cell with matrices per head (mLSTM, the delta rules): the same API,
``STATE_SHAPES`` and layouts as its NumPy module (:mod:`.heads`), the time loop compiled.

Every statement of the step becomes one loop nest over the samples b, the heads n and the
entries of its value: j for an H-vector (B, NH, HS), none for a number per head (B, NH) or
per sample (B,), the rows and columns r, c of a matrix per head (B, NH, HS, HS).  Each
reduction in a statement (C q, Cᵀ q, a per-head or total sum, a product by a parameter
matrix) is computed first, into an array of its own size, by a loop over what it sums; so
nothing larger than a state is ever formed.  The products of the input by the parameters are
one GEMM over all steps before the loop, and the parameters' gradients through the input
(δW = Σ_t δa_t x_tᵀ, δx_t = Σ Wᵀ δa_t) one GEMM each after it, from the adjoints δa_t the
loop stores.  States are kept as sequences (T + 1, B, ...), the one state per step that the
backward pass reads; other values the backward pass reads are cached per step, the rest
live in arrays of one step that every step overwrites.
"""
from __future__ import annotations

import sympy as sp

from .. import naming
from ..cell.ops import (Abs, MatTVec, MatVec, Max, Min, Outer, Transposed, exp,
                        halfstep, headsum, log, logsigmoid, mean, relu, sigma, sign,
                        softplus, sqrt, step, tanh, total)
from ..cell.parts import HEAD_MATRIX, SIZE_SYMBOLS, CellError
from ..derivation.bptt import Derivation
from ..derivation.sweep import size_of
from ..lower.division import quotients
from ..lower.values import with_values
from ..printers.templates import environment
from .heads import HeadsPrinter, heads_context
from .numba_inputs import Buffers, Place, input_terms, projections, reread
from .numpy import CellNumPyPrinter

TEMPLATE = "numba/heads.py.jinja"

#: Each operation on one number inside the compiled loop (the helpers are the module's).
SPELLINGS = {
    sigma: "_sigmoid({a})", tanh: "math.tanh({a})", exp: "math.exp({a})",
    log: "math.log({a})", softplus: "_softplus({a})", logsigmoid: "_logsigmoid({a})",
    relu: "max({a}, 0.0)", step: "_step({a}, 0.0)", sqrt: "math.sqrt({a})", Abs: "abs({a})",
    sign: "_sign({a})", halfstep: "_step({a}, 0.5)", Max: "max({a}, {b})",
    Min: "min({a}, {b})",
}
#: The shape of one step's array of each size, after (T,) or (T + 1,) where it is kept.
SHAPE = {"H": "(B, NH, HS)", "NH": "(B, NH)", "1": "(B,)", HEAD_MATRIX: "(B, NH, HS, HS)"}
#: The shape a vector parameter and its gradient have in the loops.
VECTOR = {"H": "(NH, HS)", "NH": "(NH,)", "1": "(1,)"}
#: The loop indices over one sample's entries of each size (see ``EntryPrinter``).
INDICES = {"1": "", "NH": "n", "H": "nj", HEAD_MATRIX: "nrc"}
#: How many entries of each size one sample has (a mean's divisor).
COUNT = {"H": "NH * HS", "NH": "NH", "1": "1", HEAD_MATRIX: "NH * HS * HS"}
_RANK = {"1": 0, "NH": 1, "H": 2, HEAD_MATRIX: 3}


class EntryPrinter(CellNumPyPrinter):
    """One entry of an element-wise expression at the loop indices ``ix`` (sample b, head n,
    entry j, matrix row r and column c), every value read from its ``Place``."""

    _default_settings = {**CellNumPyPrinter._default_settings, "places": None, "ix": None,
                         "cell": None}

    def _memo_key(self):
        return tuple(sorted(self._settings["ix"].items()))

    def _print(self, expr, **kwargs):
        func = getattr(expr, "func", None)
        places = self._settings["places"]
        if not kwargs and isinstance(expr, sp.Basic) and expr in places:
            return self._entry(places[expr])
        if not kwargs and func in SPELLINGS and isinstance(expr, sp.Expr) and expr.args:
            return SPELLINGS[func].format(**dict(zip("ab", map(self._print, expr.args))))
        if isinstance(expr, sqrt) and expr.free_symbols <= set(SIZE_SYMBOLS):   # √HS
            return f"math.sqrt({self._print(expr.args[0])})"
        return super()._print(expr, **kwargs)

    def _entry(self, place: Place) -> str:
        ix = self._settings["ix"]
        at = [place.prefix] * bool(place.prefix) + [ix["b"]] * place.batched + \
            [ix[i] for i in INDICES[place.size]]
        return f"{place.array}[{', '.join(at)}]" if at else place.array

    def _print_Symbol(self, expr):
        if expr in SIZE_SYMBOLS:
            return naming.code(expr)
        raise CellError(f"the Numba module of {self._settings['cell'].name!r} has no place "
                        f"for {expr}")

    def _print_HeadOuter(self, expr):   # (u vᵀ)[r, c] = u[r] v[c]
        u, v = expr.args
        ix = self._settings["ix"]
        return f"{self.at(u, j=ix['r'])} * {self.at(v, j=ix['c'])}"

    def at(self, e, **moved) -> str:
        """``e`` printed with some loop indices renamed (``j="k"``)."""
        old = self._settings["ix"]
        self._settings["ix"] = {**old, **moved}
        try:
            return self.parenthesize(e, 50)   # a factor: parenthesised unless atomic
        finally:
            self._settings["ix"] = old


def loops(size: str, body: list[str], ix: dict, batch: bool = True) -> list[str]:
    """``body`` inside the loops over the samples, heads and entries of ``size``."""
    extent = {"n": "NH", "j": "HS", "r": "HS", "c": "HS", "b": "B"}
    lines, indent = [], ""
    for name in "b" * batch + INDICES[size]:
        lines.append(f"{indent}for {ix[name]} in range({extent[name]}):")
        indent += "    "
    return lines + [indent + line for line in body]


IX = dict(b="b", n="n", j="j", r="r", c="c")


class Step:
    """The lines of one pass's loop body, with the places of its values and the arrays it
    needs (``arrays``: name → shape text, allocated by the module around the loop)."""

    def __init__(self, cell, places: dict, arrays: dict):
        self.cell, self.places, self.arrays = cell, places, arrays
        self.lines: list[str] = []
        self.printer = EntryPrinter({"cell": cell, "places": places, "ix": dict(IX)})

    def size(self, e) -> str:
        place = self.places.get(e)
        return place.size if place is not None else size_of(self.cell, e)

    def code(self, e, ix=None) -> str:
        self.printer._settings["ix"] = dict(ix or IX)
        return self.printer.doprint(e)

    def statement(self, target: str, e, size: str, op: str = "=") -> None:
        """``target`` (an array entry at the loop indices) op= ``e``, over ``size``."""
        e = self.hoist(quotients(e))
        self.lines += loops(size, [f"{target} {op} {self.code(e)}"], IX)

    def hoist(self, e):
        """``e`` with each reduction in it computed first into an array of its own size."""
        if not isinstance(e, sp.Expr) or e.is_Atom or e in self.places:
            return e
        for a in e.args:
            self.hoist(a)
        if isinstance(e, (MatVec, MatTVec)):
            self._product(e)
        elif e.func in (headsum, total, mean):
            self._sum(e)
        return e

    def _temp(self, e, size: str) -> str:
        name = f"R_{len([a for a in self.arrays if a.startswith('R_')])}"
        self.arrays[name] = SHAPE[size]
        self.places[e] = Place(name, size)
        return name

    def _sum(self, e) -> None:
        """Σ within each head (headsum) or over every entry of a sample (total, mean)."""
        a = e.args[0]
        inner, outer = self.size(a), "NH" if e.func is headsum else "1"
        name = self._temp(e, outer)
        summed = loops(inner, [f"acc += {self.code(a)}"], IX, batch=False)
        if outer == "NH":   # inside the loop over the heads already
            summed = [line[4:] for line in summed[1:]] if inner != "NH" else summed
        div = f" / ({COUNT[inner]})" if e.func is mean else ""
        target = f"{name}[b, n]" if outer == "NH" else f"{name}[b]"
        self.lines += loops(outer, ["acc = 0.0", *summed, f"{target} = acc{div}"], IX)

    def _product(self, e) -> None:
        M, u = e.args
        transposed = isinstance(e, MatTVec) != isinstance(M, Transposed)   # Mᵀ u
        W = M.args[0] if isinstance(M, Transposed) else M
        if isinstance(W, sp.Symbol) and naming.parse(W) is None:   # a parameter
            return self._param_product(e, W, u, transposed)
        name = self._temp(e, "H")   # a matrix per head applied to an H-vector, head by head
        entry = dict(IX, r="k", c="j") if transposed else dict(IX, r="j", c="k")
        body = f"acc += ({self.code(W, entry)}) * ({self.code(u, dict(IX, j='k'))})"
        self.lines += loops("H", ["acc = 0.0", "for k in range(HS):", "    " + body,
                                  f"{name}[b, n, j] = acc"], IX)

    def _param_product(self, e, W, u, transposed: bool) -> None:
        cell = self.cell
        p = cell.param(W.name)
        if p.is_heads:
            raise CellError(f"cell {cell.name!r}: the Numba module does not take parameters "
                            f"of one block per head ({W.name}) yet")
        rows, cols = p.shape if not transposed else p.shape[::-1]
        if cols == "D":
            raise CellError(f"cell {cell.name!r}: the Numba module reads the input only "
                            f"through products by parameters, got {e}")
        name = self._temp(e, rows)
        ix = dict(IX, n="m", j="k")
        flat_out = {"H": "n * HS + j", "NH": "n", "1": "0"}[rows]
        flat_in = {"H": "m * HS + k", "NH": "m", "1": "0"}[cols]
        w = f"P_{W.name}[{flat_in}, {flat_out}]" if transposed else \
            f"P_{W.name}[{flat_out}, {flat_in}]"
        body = loops(cols, [f"acc += {w} * ({self.code(u, ix)})"], ix, batch=False)
        target = {"H": "b, n, j", "NH": "b, n", "1": "b"}[rows]
        self.lines += loops(rows, ["acc = 0.0", *body, f"{name}[{target}] = acc"], IX)


def numba_heads_module(d: Derivation, rebuild: str | None = None) -> str:
    """The Numba module of a cell with matrices per head (see the module's docstring)."""
    context = heads_context(d, HeadsPrinter)
    return environment().get_template(TEMPLATE).render(
        **context, **_kernels(with_values(d)), template=TEMPLATE, rebuild=rebuild)


def _kernels(d: Derivation) -> dict:
    """The loop bodies of both passes, the arrays each reads and writes, and the GEMMs
    around them (see the module's docstring)."""
    cell = d.cell   # heads_context has checked its layout
    x = cell.input_symbols[0]
    shared = _param_places(cell)
    products = projections(cell, x, shared)
    read = set().union(*(g.rhs.free_symbols
                         for g in (*d.step, *d.inputs, *d.initial, *d.params)))
    for s, dim in cell.states.items():
        shared[naming.timed(s, -1)] = Place(f"S_{s}", dim, "t")
        shared[naming.timed(s)] = Place(f"S_{s}", dim, "t + 1")
    cached, work = {}, {}
    for eq in cell.equations:
        if eq.lhs in shared:
            continue
        dim, name = cell.dim(eq.lhs), naming.code(eq.lhs)
        if eq.lhs in read or naming.parse(eq.lhs).base == cell.output:
            cached[f"C_{name}"] = SHAPE[dim]
            shared[eq.lhs] = Place(f"C_{name}", dim, "t")
        else:
            work[f"W_{name}"] = SHAPE[dim]
    fwd = _forward(cell, shared, dict(work))
    bwd = _backward(d, shared, x, products)
    out = shared[naming.timed(cell.output)]
    given = ["T", "B", "D", "H", "NH", "HS"]
    params = [f"P_{p.name}" for p in cell.params]
    held = [*params, *(f"X_{W}" for W in products)]
    kept = reread(d, x)   # the rest is not cached
    states = [f"S_{s}" for s in cell.states]
    fwd["args"] = [*given, *held, *states, *cached, *(a for a, _ in fwd["work"])]
    fwd["call"] = [*given, *(f'a["{a}"]' for a in (*held, *states, *cached)),
                   *(a for a, _ in fwd["work"])]
    carried = [a for s in cell.states for a in (f"S_{s}", f"N_{s}")]
    mine = [*(g[1] for g in bwd["grads"]), *(b for b, _ in bwd["buffers"]),
            *(a for a, _ in bwd["work"])]
    held = [*params, *sorted(kept)]
    bwd["args"] = [*given, "DH", *held, *carried, *cached, *mine]
    bwd["call"] = [*given, "DH", *(f'a["{a}"]' for a in held),
                   *(a if a.startswith("N_") else f'a["{a}"]' for a in carried),
                   *(f'a["{a}"]' for a in cached), *mine]
    return dict(
        projections=[(W, f"(T, {SHAPE[rows][1:]}") for W, rows in products.items()],
        uncached=[f"X_{W}" for W in products if f"X_{W}" not in kept],
        param_places=[(p.name, None if p.is_matrix or not p.shape else VECTOR[p.shape[0]])
                      for p in cell.params],
        state_arrays=[(s, f"S_{s}", SHAPE[dim]) for s, dim in cell.states.items()],
        cached_arrays=list(cached.items()), hs_array=out.array,
        hs_slice="[1:]" if out.prefix == "t + 1" else "",
        fwd=fwd, bwd=bwd)


def _param_places(cell) -> dict:
    """Each vector parameter as the loops read it: (NH, HS), (NH,) or a number."""
    places = {}
    for p in cell.params:
        if not p.is_matrix:
            size = p.shape[0] if p.shape else "1"
            if size not in ("H", "NH", "1"):
                raise CellError(f"cell {cell.name!r}: the Numba module takes vector parameters "
                                f"of the sizes H and NH only, got {p.name} {p.shape}")
            places[p.symbol] = Place(f"P_{p.name}", size, batched=False)
    return places


def _target(place: Place) -> str:
    return EntryPrinter({"places": {}, "ix": dict(IX)})._entry(place)


def _forward(cell, shared: dict, work: dict) -> dict:
    places = dict(shared)
    for eq in cell.equations:
        if eq.lhs not in places:
            places[eq.lhs] = Place(f"W_{naming.code(eq.lhs)}", cell.dim(eq.lhs))
    step = Step(cell, places, work)
    for eq in cell.equations:
        step.lines.append(f"# fwd:{eq.label}")
        step.statement(_target(places[eq.lhs]), eq.rhs, cell.dim(eq.lhs))
    return dict(lines=step.lines, work=list(work.items()))


def _backward(d: Derivation, shared: dict, x, products: dict) -> dict:
    """The backward loop: the step's adjoints, the parameters' gradients that do not go
    through the input, the adjoints δa_t that do (``buffers``), and the carries."""
    cell = d.cell
    places, work = dict(shared), {}
    places[naming.timed(cell.output, 0, naming.EXTERNAL)] = Place("DH", "H", "t")
    for s, dim in cell.states.items():
        places[naming.timed(s, 0, naming.CARRY)] = Place(f"N_{s}", dim)
    for g in d.step:
        dim = cell.dim(naming.adjoint_of(g.lhs))
        places[g.lhs] = Place(f"A_{naming.code(g.lhs)}", dim)
        work[f"A_{naming.code(g.lhs)}"] = SHAPE[dim]
    step = Step(cell, places, work)
    for g in d.step:
        step.lines.append(f"# {g.label}")
        step.statement(_target(places[g.lhs]), g.rhs, places[g.lhs].size)
    buffers = Buffers(step, _target)
    grads = []
    for g in d.params:
        p = cell.param(g.name)
        if not p.is_matrix:
            size = p.shape[0] if p.shape else "1"
            expr = sp.Add(*(t.expr for t in g.terms))
            loop = max(size, step.size(expr), key=_RANK.get)
            step.lines.append(f"# {g.label}")
            step.statement(f"D_{g.name}[{ {'H': 'n, j', 'NH': 'n', '1': '0'}[size] }]", expr,
                           loop, op="+=")
            grads.append((g.name, f"D_{g.name}", VECTOR[size], []))
            continue
        through = []
        for t in g.terms:
            if not isinstance(t.expr, Outer):
                raise CellError(f"cell {cell.name!r}: the gradient of {g.name} is not a sum of "
                                f"outer products, got {t.expr}")
            u, v = t.expr.args
            if v == x:
                buffers.need(u, g.name)
                through.append(u)
            else:
                step.lines.append(f"# {g.label}")
                _outer_into(step, g.name, p.shape, u, v)
        grads.append((g.name, f"D_{g.name}", "P_shape", through))
    grads = [(n, a, s, [buffers.array(u, cell.param(n).shape[0]) for u in us])
             for n, a, s, us in grads]
    gemm, rest = input_terms(d.inputs[0].rhs, products) if d.inputs else ([], [])
    if rest:
        raise CellError(f"cell {cell.name!r}: the Numba module takes the gradient of the "
                        f"input as a sum of Wᵀ u, got {rest[0]}")
    for u, _ in gemm:
        buffers.need(u, "x")
    dx = [(buffers.array(u, products[W]), W) for u, W in gemm]
    carries = []
    for g in d.initial:
        s = naming.parse(g.lhs).base
        dim = cell.states[s]
        step.lines.append(f"# {g.label}: sent to step t-1")
        work[f"M_{s}"] = SHAPE[dim]
        step.statement(_target(Place(f"M_{s}", dim)), g.rhs, dim)
        carries.append(s)
    step.lines += [f"N_{s}[:] = M_{s}" for s in carries]
    step.lines += [f"N_{s}[:] = 0.0" for s in cell.states if s not in carries]
    return dict(lines=step.lines, work=list(work.items()), grads=grads, dx=dx,
                buffers=buffers.shapes(SHAPE))


def _outer_into(step: Step, name: str, shape, u, v) -> None:
    """δW += Σ_b u vᵀ, for a parameter matrix that multiplies a vector of the step."""
    rows, cols = shape
    u, v = step.hoist(quotients(u)), step.hoist(quotients(v))
    flat = {"H": "{n} * HS + {j}", "NH": "{n}"}
    if rows not in flat or cols not in flat:
        raise CellError(f"the Numba module takes parameter matrices of the sizes H and NH "
                        f"only, got {name} {shape}")
    inner = dict(IX, n="m", j="k")
    target = f"D_{name}[{flat[rows].format(**IX)}, {flat[cols].format(**inner)}]"
    body = loops(cols, [f"{target} += ({step.code(u)}) * ({step.code(v, inner)})"], inner,
                 batch=False)
    step.lines += loops(rows, body, IX)
