"""The Numba module of a cell with matrices per channel (Mamba's selective scan): the API,
``STATE_SHAPES`` and layouts of its NumPy module (:mod:`.channels`), the time loop compiled.

Every statement of the step becomes one loop nest over the samples b and the entries of its
value: the channel c of an H-vector (B, H), the state s of an N-vector (B, N), both of a
matrix per channel (B, H, N), none of a number per sample (B,).  Each reduction in a
statement (h c, hᵀ u, a product by a parameter matrix, a row's sum, a total) is computed
first, into an array of its own size, by a loop over what it sums; so nothing larger than a
state is formed.  The products of the input by the parameters are one GEMM over all steps
before the loop and the gradients through them one GEMM each after it (:mod:`.numba_inputs`).
The states are kept as sequences (T + 1, B, ...), the one state per step that the backward
pass reads; the other values it reads are cached per step, but for those made of the
parameters alone (A = -exp(A_log)), one array for all steps and samples, computed before the
loop; the rest live in arrays of one step that every step overwrites.  In the backward
pass a call of the parameters alone (exp(A_log)) is computed once before the loop, and one of
forward values that several statements read (exp(Δ A)) once per step.
"""
from __future__ import annotations

import sympy as sp

from .. import naming
from ..cell.ops import MatTVec, MatVec, Outer, RowSum, Transposed, mean, total
from ..cell.parts import CHANNEL_MATRIX, CellError
from ..derivation.bptt import Derivation
from ..derivation.sweep import size_of
from ..lower.division import quotients
from ..lower.values import with_values
from ..printers.templates import environment
from .channels import ChannelsPrinter, channels_context
from .heads import elementwise
from .numba_heads import SPELLINGS, EntryPrinter
from .numba_inputs import Buffers, Place, input_terms, projections, reread

TEMPLATE = "numba/channels.py.jinja"
#: One step's array of each size, after (T,) or (T + 1,) where it is kept.
SHAPE = {"1": "(B,)", "H": "(B, H)", "N": "(B, N)", CHANNEL_MATRIX: "(B, H, N)"}
#: The array of a value of the parameters alone, of each size.
ONCE = {"H": "(H,)", "N": "(N,)", CHANNEL_MATRIX: "(H, N)"}
#: The loop indices over one sample's entries of each size, and how far each runs.
INDICES = {"1": "", "H": "c", "N": "s", CHANNEL_MATRIX: "cs"}
EXTENT = {"b": "B", "c": "H", "s": "N"}
IX = dict(b="b", c="c", s="s")


class ChannelEntryPrinter(EntryPrinter):
    """One entry of an element-wise expression at the loop indices ``ix`` (sample b,
    channel c, state s)."""

    def _entry(self, place: Place) -> str:
        ix = self._settings["ix"]
        at = [place.prefix] * bool(place.prefix) + [ix["b"]] * place.batched + \
            [ix[i] for i in INDICES[place.size]]
        return f"{place.array}[{', '.join(at)}]" if at else place.array

    def _print_HeadOuter(self, expr):   # (u bᵀ)[c, s] = u[c] b[s]
        return " * ".join(self.parenthesize(a, 50) for a in expr.args)


def loops(size: str, body: list[str], ix: dict, batch: bool = True) -> list[str]:
    """``body`` inside the loops over the samples and the entries of ``size``."""
    lines, indent = [], ""
    for name in "b" * batch + INDICES[size]:
        lines.append(f"{indent}for {ix[name]} in range({EXTENT[name]}):")
        indent += "    "
    return lines + [indent + line for line in body]


class Step:
    """The lines of one pass's loop body, the places of its values and the arrays it needs
    (``arrays``: name → shape text, allocated around the loop)."""

    def __init__(self, cell, places: dict, arrays: dict):
        self.cell, self.places, self.arrays = cell, places, arrays
        self.lines: list[str] = []
        self.printer = ChannelEntryPrinter({"cell": cell, "places": places, "ix": dict(IX)})

    def size(self, e) -> str:
        place = self.places.get(e)
        return place.size if place is not None else size_of(self.cell, e)

    def code(self, e, ix=None) -> str:
        self.printer._settings["ix"] = dict(ix or IX)
        return self.printer.doprint(e)

    def statement(self, target: str, e, size: str, op: str = "=", batch: bool = True) -> None:
        """``target`` op= ``e`` at every entry of ``size`` (and every sample)."""
        e = self.hoist(quotients(e))
        self.lines += loops(size, [f"{target} {op} {self.code(e)}"], IX, batch)

    def hoist(self, e):
        """``e`` with each reduction in it computed first into an array of its own size."""
        if not isinstance(e, sp.Expr) or e.is_Atom or e in self.places:
            return e
        for a in e.args:
            self.hoist(a)
        if isinstance(e, (MatVec, MatTVec)):
            self._product(e)
        elif isinstance(e, RowSum) or e.func in (total, mean):
            self._sum(e)
        return e

    def _temp(self, e, size: str) -> str:
        name = f"R_{len([a for a in self.arrays if a.startswith('R_')])}"
        self.arrays[name] = SHAPE[size]
        self.places[e] = Place(name, size)
        return name

    def _reduce(self, e, size: str, over: str, summand) -> None:
        """``e`` (of ``size``) as Σ_k summand(k), k running over ``over`` entries (H or N)."""
        name = self._temp(e, size)
        body = ["acc = 0.0", f"for k in range({over}):", f"    acc += {summand}",
                f"{name}[{', '.join(['b', *INDICES[size]])}] = acc"]
        self.lines += loops(size, body, IX)

    def _sum(self, e) -> None:
        a = e.args[0]
        if isinstance(e, RowSum):   # Σ_s a[c, s]
            return self._reduce(e, "H", "N", self.code(a, dict(IX, s="k")))
        inner = self.size(a)   # total or mean: every entry of the sample
        name = self._temp(e, "1")
        count = {"1": "1", "H": "H", "N": "N", CHANNEL_MATRIX: "H * N"}[inner]
        div = f" / ({count})" if e.func is mean else ""
        summed = loops(inner, [f"acc += {self.code(a)}"], IX, batch=False)
        self.lines += loops("1", ["acc = 0.0", *summed, f"{name}[b] = acc{div}"], IX)

    def _product(self, e) -> None:
        M, u = e.args
        transposed = isinstance(e, MatTVec) != isinstance(M, Transposed)   # Mᵀ u
        W = M.args[0] if isinstance(M, Transposed) else M
        if isinstance(W, sp.Symbol) and naming.parse(W) is None:   # a parameter
            rows, cols = self.cell.param(W.name).shape
            rows, cols = (cols, rows) if transposed else (rows, cols)
            k = {"H": dict(IX, c="k"), "N": dict(IX, s="k")}[cols]
            row = INDICES[rows]
            w = f"P_{W.name}[k, {row}]" if transposed else f"P_{W.name}[{row}, k]"
            return self._reduce(e, rows, cols, f"{w} * ({self.code(u, k)})")
        if transposed:   # hᵀ u: Σ_c h[c, s] u[c]
            return self._reduce(e, "N", "H", f"({self.code(W, dict(IX, c='k'))}) * "
                                             f"({self.code(u, dict(IX, c='k'))})")
        self._reduce(e, "H", "N", f"({self.code(W, dict(IX, s='k'))}) * "
                                  f"({self.code(u, dict(IX, s='k'))})")


def numba_channels_module(d: Derivation, rebuild: str | None = None) -> str:
    """The Numba module of a cell with matrices per channel (see the module's docstring)."""
    context = channels_context(d, ChannelsPrinter)
    return environment().get_template(TEMPLATE).render(
        **context, **_kernels(with_values(d)), template=TEMPLATE, rebuild=rebuild)


def _kernels(d: Derivation) -> dict:
    """The loop bodies of both passes and the arrays each reads and writes."""
    cell = d.cell   # channels_context has checked its layout
    x = cell.input_symbols[0]
    shared = {x: Place("X", "H", "t")}
    products = projections(cell, x, shared)
    for p in cell.params:
        if elementwise(cell, p.symbol):
            size = CHANNEL_MATRIX if p.is_matrix else p.shape[0]
            shared[p.symbol] = Place(f"P_{p.name}", size, batched=False)
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
        if _of_parameters(eq.rhs) and dim != "1":   # A = -exp(A_log): one array for all
            cached[f"K_{name}"] = ONCE[dim]
            shared[eq.lhs] = Place(f"K_{name}", dim, batched=False)
        elif eq.lhs in read or naming.parse(eq.lhs).base == cell.output:
            cached[f"C_{name}"] = f"(T, {SHAPE[dim][1:]}"
            shared[eq.lhs] = Place(f"C_{name}", dim, "t")
        else:
            work[f"W_{name}"] = SHAPE[dim]
    fwd = _forward(cell, shared, work)
    bwd = _backward(d, shared, products)
    out = shared[naming.timed(cell.output)]
    given = ["T", "B", "H", "N"]
    params = [f"P_{p.name}" for p in cell.params]
    states = [f"S_{s}" for s in cell.states]
    held = [*params, *(f"X_{W}" for W in products)]
    fwd["args"] = [*given, "X", *held, *states, *cached, *(a for a, _ in fwd["work"])]
    fwd["call"] = [*given, "x", *(f'a["{a}"]' for a in (*held, *states, *cached)),
                   *(a for a, _ in fwd["work"])]
    carried = [a for s in cell.states for a in (f"S_{s}", f"N_{s}")]
    mine = [*(g for g, _, _ in bwd["grads"]), *(b for b, _ in bwd["buffers"]),
            *(a for a, _ in bwd["work"])]
    kept = reread(d, x)   # the rest is not cached
    held = [*params, *sorted(kept)]
    bwd["args"] = [*given, "X", "DH", "DX", *held, *carried, *cached, *mine]
    bwd["call"] = [*given, "x", "DH", "DX", *(f'a["{a}"]' for a in held),
                   *(a if a.startswith("N_") else f'a["{a}"]' for a in carried),
                   *(f'a["{a}"]' for a in cached), *mine]
    return dict(projections=[(W, f"(T, {SHAPE[rows][1:]}") for W, rows in products.items()],
                uncached=[f"X_{W}" for W in products if f"X_{W}" not in kept],
                state_arrays=[(s, f"S_{s}", SHAPE[dim]) for s, dim in cell.states.items()],
                cached_arrays=list(cached.items()), hs_array=out.array,
                hs_slice="[1:]" if out.prefix == "t + 1" else "", fwd=fwd, bwd=bwd)


def _of_parameters(rhs: sp.Expr) -> bool:
    """Whether ``rhs`` reads parameters only, element-wise: the same at every step and for
    every sample, so that one array holds it."""
    return all(naming.parse(s) is None for s in rhs.free_symbols) and not rhs.atoms(
        MatVec, MatTVec, RowSum, total, mean)


def _target(place: Place) -> str:
    return ChannelEntryPrinter({"places": {}, "ix": dict(IX)})._entry(place)


def _forward(cell, shared: dict, work: dict) -> dict:
    places = dict(shared)
    for eq in cell.equations:
        if eq.lhs not in places:
            places[eq.lhs] = Place(f"W_{naming.code(eq.lhs)}", cell.dim(eq.lhs))
    step, before = Step(cell, places, dict(work)), []
    for eq in cell.equations:
        lines, step.lines = step.lines, []
        step.lines.append(f"# fwd:{eq.label}")
        step.statement(_target(places[eq.lhs]), eq.rhs, cell.dim(eq.lhs),
                       batch=places[eq.lhs].batched)
        if places[eq.lhs].batched:
            step.lines = lines + step.lines
        else:   # of the parameters alone: once, before the loop
            before, step.lines = before + step.lines, lines
    return dict(before=before, lines=step.lines, work=list(step.arrays.items()))


def _backward(d: Derivation, shared: dict, products: dict) -> dict:
    """The backward loop: the step's adjoints, the input's and every parameter's share but
    for those through the input's products (the adjoints δa_t they need are stored in
    ``buffers``), and what each state is sent back."""
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
    before = _shared_calls(step, d, set(places) - set(shared))
    for g in d.step:
        step.lines.append(f"# {g.label}")
        step.statement(_target(places[g.lhs]), g.rhs, places[g.lhs].size)
    buffers = Buffers(step, _target)
    grads = []
    for g in d.params:
        p = cell.param(g.name)
        through = []
        grads.append((f"D_{g.name}", g.name, through))
        if elementwise(cell, p.symbol):
            size = CHANNEL_MATRIX if p.is_matrix else p.shape[0]
            step.lines.append(f"# {g.label}")
            target = f"D_{g.name}[{', '.join(INDICES[size])}]"
            step.statement(target, sp.Add(*(t.expr for t in g.terms)), size, op="+=")
            continue
        for t in g.terms:
            if not isinstance(t.expr, Outer):
                raise CellError(f"cell {cell.name!r}: the gradient of {g.name} is not a sum of "
                                f"outer products, got {t.expr}")
            if t.expr.args[1] == cell.input_symbols[0] and g.name in products:
                buffers.need(t.expr.args[0], g.name)
                through.append(t.expr.args[0])
            else:
                step.lines.append(f"# {g.label}")
                _outer_into(step, g.name, p.shape, *t.expr.args)
    gemm = []
    for g in d.inputs:
        terms, rest = input_terms(g.rhs, products)
        for u, _ in terms:
            buffers.need(u, "x")
        if rest:
            step.lines.append(f"# {g.label}, but for the products by parameters")
            step.statement(_target(Place("DX", "H", "t")), sp.Add(*rest), "H")
        gemm += terms
    grads = [(a, n, [buffers.array(u, products[n]) for u in us]) for a, n, us in grads]
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
    return dict(before=before, lines=step.lines, work=list(work.items()), grads=grads, dx=dx,
                buffers=buffers.shapes(SHAPE))


def _outer_into(step: Step, name: str, shape, u, v) -> None:
    """δW += Σ_b u vᵀ, for a parameter matrix (rows, cols) of the sizes H and N."""
    rows, cols = shape
    u, v = step.hoist(quotients(u)), step.hoist(quotients(v))
    inner = {"H": dict(IX, c="k"), "N": dict(IX, s="k")}[cols]
    target = f"D_{name}[{INDICES[rows]}, k]"
    body = [f"for k in range({EXTENT[INDICES[cols]]}):",
            f"    {target} += ({step.code(u)}) * ({step.code(v, inner)})"]
    step.lines += loops(rows, body, IX)



def _shared_calls(step: Step, d: Derivation, adjoints: set) -> list[str]:
    """Each call (exp, σ, ...) of the backward step made of the parameters alone, computed
    once before the loop into an array of its size (``E_i``, returned: its lines), and each
    of forward values that several statements make, once per step."""
    readers: dict = {}
    for g in (*d.step, *d.inputs, *d.params, *d.initial):
        for f in g.rhs.atoms(*SPELLINGS):
            if not f.free_symbols & adjoints:
                readers.setdefault(f, []).append(g.label)
    lines, step.lines = step.lines, []
    for f, labels in readers.items():
        size = step.size(f)
        if _of_parameters(f) and size != "1":
            name = f"E_{len([a for a in step.arrays if a[:2] == 'E_'])}"
            step.arrays[name] = ONCE[size]
            step.lines.append(f"# read by {', '.join(labels)}")
            step.statement(_target(Place(name, size, batched=False)), f, size, batch=False)
            step.places[f] = Place(name, size, batched=False)
    before, step.lines = step.lines, lines
    for f, labels in readers.items():
        if len(labels) > 1 and f not in step.places:
            size, name = step.size(f), f"E_{len([a for a in step.arrays if a[:2] == 'E_'])}"
            step.arrays[name] = SHAPE[size]
            step.lines.append(f"# read by {', '.join(labels)}")
            step.statement(_target(Place(name, size)), f, size)
            step.places[f] = Place(name, size)
    return before
