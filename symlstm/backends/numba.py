"""The Numba backend: the lowered step as one compiled time loop per direction, for
``symlstm.generated.numba.<cell>``.

The plan is the NumPy module's.  Inside the compiled loop the fused GEMMs call BLAS
(``_gemm``, one call of MKL's or OpenBLAS's GEMM into a buffer), and every run of element-wise statements of one size between two
GEMMs becomes one loop nest, over the samples and the vector's entries.  A value lives in a
register unless a later nest, a GEMM or the backward pass reads it.  exp, tanh, σ, softplus
and log σ are written in branch-free arithmetic (:func:`math_context`), which LLVM
vectorises; NumPy's versions are scalar library calls inside a compiled loop.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import sympy as sp
from sympy.printing.precedence import PRECEDENCE

from .. import naming
from ..cell.ops import OPS, Concat, Part, exp, log, logsigmoid, relu, sigma, softplus, step, tanh
from ..cell.parts import size_expr
from ..derivation.bptt import Derivation
from ..lower.plan import Broadcast, GroupAdjoint, Plan, Proj, lower
from ..printers.templates import environment
from .code import NUMPY, block_comment, code_context, computed_in, step_arrays
from .numpy import CellNumPyPrinter


TEMPLATE = "numba/cell.py.jinja"

#: Each operation of ``ops.OPS`` on one number of type ``F`` (float32 or float64); an
#: operation without an entry is computed with its NumPy spelling, on one number.
SPELLINGS = {
    sigma: "_sigmoid({a})",
    tanh: "_tanh({a})",
    exp: "_exp({a})",
    softplus: "_softplus({a})",
    logsigmoid: "_logsigmoid({a})",
    log: "np.log({a})",
    relu: "max({a}, F(0))",
    step: "F({a} > F(0))",
}


class Loc(NamedTuple):
    """Where a vector of the step lives: entries ``offset + j`` of ``array``, a (B, n) array
    whose row for sample b is bound to the name ``row`` before the loop over j."""
    row: str
    array: str
    offset: sp.Expr = sp.S.Zero


J = sp.Symbol("j", integer=True)   # the loop's index, never a cell's symbol (a parameter j)


class ElementPrinter(CellNumPyPrinter):
    """Entry ``index`` (j plus an offset) of an element-wise expression, for the loop over
    j: ``where`` maps each vector to its ``Loc`` or to a local name, ``rows`` collects the
    rows read, ``params`` names the vector parameters, ``sizes`` gives a vector's size."""

    _default_settings = {**CellNumPyPrinter._default_settings, "index": J, "where": None,
                         "rows": None, "params": (), "sizes": None, "adds": {}}

    def _memo_key(self):
        return self._settings["index"]

    def _print(self, expr, **kwargs):
        func = getattr(expr, "func", None)
        if not kwargs and func in OPS and isinstance(expr, sp.Expr) and expr.args:
            spelling = SPELLINGS.get(func, OPS[func].numpy)
            return spelling.format(a=self._print(expr.args[0]))
        return super()._print(expr, **kwargs)

    def index(self, offset=sp.S.Zero) -> str:
        """The current entry's index, ``offset`` further on, as code."""
        return _size_code(self._settings["index"] + offset)

    def _at(self, loc: Loc) -> str:
        self._settings["rows"][loc.row] = f"{loc.array}[b]"
        return f"{loc.row}[{self.index(loc.offset)}]"

    def _shifted(self, e, by) -> str:
        """``e`` read ``by`` entries further on."""
        old = self._settings["index"]
        self._settings["index"] = old + by
        try:
            return self._print(e)
        finally:
            self._settings["index"] = old

    def _print_Symbol(self, expr):
        w = self._settings["where"].get(expr)
        if isinstance(w, Loc):
            return self._at(w)
        if w is not None:
            return w
        if expr.name in self._settings["params"]:   # a vector parameter
            return f"{naming.code(expr)}[{self.index()}]"
        return naming.code(expr)   # D or H

    def _print_Proj(self, expr):
        loc = _slice(expr)
        added = self._settings["adds"].get(str(expr.args[0]))   # the input projection's slice
        if added:
            return f"({self._at(loc)} + {self._at(_proj_loc(added, 1)._replace(offset=loc.offset))})"
        return self._at(loc)

    def _print_Broadcast(self, expr):   # parameters only: the same for every sample
        return self._print(expr.args[0])

    def _print_Concat(self, expr):
        starts = [sp.S.Zero]
        for v in expr.args:
            starts.append(sp.expand(starts[-1] + self._settings["sizes"](v)))
        j = self.index()
        text = self._shifted(expr.args[-1], -starts[-2])
        for k in reversed(range(len(expr.args) - 1)):
            part = self._shifted(expr.args[k], -starts[k])
            text = f"({part} if {j} < {_size_code(starts[k + 1])} else {text})"
        return text

    def _print_Part(self, expr):
        e, a, _ = expr.args
        return self._shifted(e, a)

    def _print_Slot(self, expr):
        raise NotImplementedError(f"an array slot read inside an element-wise loop: {expr}")

    def _print_GroupAdjoint(self, expr):
        raise NotImplementedError(f"a GEMM inside an element-wise loop: {expr}")

    def _print_Integer(self, expr):
        return f"F({expr.p})"

    def _print_Rational(self, expr):
        return f"(F({expr.p}) / F({expr.q}))"

    def _print_Float(self, expr):
        return f"F({float(expr)!r})"

    def _print_NumberSymbol(self, expr):
        return f"F({float(expr)!r})"

    _print_Pi = _print_Exp1 = _print_NumberSymbol
    _print_One = _print_NegativeOne = _print_Zero = _print_Integer
    _print_Half = _print_Rational

    def _print_Pow(self, expr, rational=False):
        base, n = expr.args
        text = self.parenthesize(base, PRECEDENCE["Pow"])
        if n.is_Integer and 1 <= abs(n) <= 4:   # products, which vectorise, not pow calls
            prod = "*".join([text] * int(abs(n)))
            return (text if n == 1 else f"({prod})") if n > 0 else f"(F(1)/({prod}))"
        return f"{text}**{self._print(n)}"


class _SizePrinter(CellNumPyPrinter):
    """An index or a size: ``j + H``."""

    def _print_Symbol(self, expr):
        return "j" if expr == J else super()._print_Symbol(expr)


def _size_code(e) -> str:
    return _SizePrinter().doprint(sp.expand(e))


def _proj_loc(buf, timed) -> Loc:
    """Where a fused buffer's rows are: ``proj_x[t]`` (timed) or ``proj_h_prev``."""
    name = str(buf)
    return Loc(naming.row(name), f"{name}[t]" if timed else name)


def _slice(p: Proj) -> Loc:
    """Where the slice ``p`` of a fused buffer is."""
    buf, start, _, timed = p.args
    return _proj_loc(buf, timed)._replace(offset=start)


class Elem(NamedTuple):
    """One element-wise statement: ``target`` (a local Symbol or a ``Loc``) computed from
    ``rhs`` entry by entry over ``size`` entries; ``add`` accumulates over the samples into
    the vector ``target.row`` (a parameter's gradient)."""
    target: object
    rhs: sp.Expr
    size: sp.Expr
    comment: str = ""
    add: bool = False


class Gemm(NamedTuple):
    """``_gemm(a, b, out)``, one BLAS call, with what it computes; ``reads`` and
    ``writes`` name the arrays (the loops may move past it only if they touch neither)."""
    line: str
    comment: str = ""
    reads: frozenset = frozenset()
    writes: str = ""


def _gemm(a: str, b: str, out: str, comment: str) -> Gemm:
    return Gemm(f"_gemm({a}, {b}, {out})", comment, frozenset({_base(a), _base(b)}), _base(out))


def _base(array: str) -> str:
    """The array an expression such as ``seq_h[t]`` or ``stack_x.T`` indexes."""
    return array.partition("[")[0].partition(".")[0]


def numba_module(d: Derivation, rebuild: str | None = None) -> str:
    """The source of ``symlstm.generated.numba.<cell>`` for ``d.cell``; its header names
    ``rebuild`` as the command that regenerates it, if given."""
    plan = lower(d)
    context = code_context(d, NUMPY, "Numba", plan=plan)
    fwd, bwd = _forward_kernel(plan), _backward_kernel(plan)
    fwd["args"], bwd["args"] = _arguments(plan)
    return environment().get_template(TEMPLATE).render(
        template=TEMPLATE, rebuild=rebuild, **context, **math_context(), fwd=fwd, bwd=bwd,
        **_passes(context))


def _passes(context: dict) -> dict:
    """What the compiled passes around the loops name: the arrays the forward pass keeps for
    ``backward``, each state's initial value (or its gradient) as an argument, and what
    the backward pass returns, each with its label, in the order of ``backward``'s keys."""
    labels = context["labels"]
    grads = {name: expr for name, expr in context["matrix_grads"]}
    grads.update((name, local) for name, local, _, _ in context["vector_grads"])
    grads.update((name, f"sum_{buffer}[{rows}]") for name, buffer, rows in context["summed_grads"])
    returned = [(grads[name], labels[name]) for name, _ in context["params"]]
    returned.append((context["dinput"], labels[context["input_name"]]))
    returned += [(s["carry"], labels[s["name"] + "0"]) for s in context["state_locals"]]
    return dict(cache_arrays=[naming.sequence(name) for name, _ in context["states"]]
                + [naming.cached(name) for name, _ in context["cached"]],
                state_inits=[f"_{name}0" for name, _ in context["states"]], returned=returned)


def _arguments(plan: Plan) -> tuple[list[str], list[str]]:
    """What each compiled loop is passed: the arrays the Python wrapper made, by name."""
    cell = plan.cell
    first = [naming.code(cell.input_symbols[0]), "D", "H"]
    vectors = [naming.code(p.symbol) for p in cell.params if not p.is_matrix]
    stacks = [f"stack_{g.name}" for g in plan.groups]
    states = [naming.sequence(s) for s in cell.states]
    cached = [naming.cached(naming.code(v)) for v, _ in plan.cached]
    fwd = first + vectors + stacks + [f"proj_{g.name}" for g in plan.groups] + states + cached
    buffers = list(dict.fromkeys(g.adjoint_buffer for g in plan.groups))
    grads = [naming.code(s.lhs) for s in plan.vector_grads]
    grads += [naming.code(naming.adjoint(cell.input_symbols[0]))] if plan.input_grads else []
    carries = [naming.code(c) for c in _carries(cell)]
    bwd = first + ["dhs"] + vectors + stacks + states + cached + buffers + grads + carries
    return fwd, bwd


def _carries(cell) -> list:
    """δ⁺s for every state s: what step t+1 sent back, an array the backward loop updates."""
    return [naming.timed(s, 0, naming.CARRY) for s in cell.states]


# --------------------------------------------------------------- kernels -----

class _Step:
    """What one direction's kernel knows while it is built: where each vector lives, the
    sizes of vectors, and the workspace arrays it needs."""

    def __init__(self, plan: Plan):
        self.plan, self.cell = plan, plan.cell
        self.where: dict[sp.Symbol, Loc] = {}
        self.sizes: dict[sp.Symbol, sp.Expr] = {v: size_expr(dim) for v, dim in plan.cached}
        self.workspace: dict[str, sp.Expr] = {}
        self.params = tuple(p.name for p in self.cell.params if not p.is_matrix)
        self.adds: dict[str, str] = {}   # a state group's buffer -> the input projection

    def place(self, sym, array: str, offset=sp.S.Zero) -> Loc:
        """Put ``sym`` at ``array`` (its row named after the symbol)."""
        self.where[sym] = Loc(naming.row(naming.code(sym)), array, offset)
        return self.where[sym]

    def size(self, e: sp.Expr):
        """The number of entries of an element-wise expression (None for a number)."""
        if e in self.sizes:
            return self.sizes[e]
        if isinstance(e, (Proj, Part)):
            return sp.expand(e.args[2] - e.args[1])
        if isinstance(e, Broadcast):
            return e.args[1]
        if isinstance(e, Concat):
            return sp.expand(sp.Add(*(self.size(v) for v in e.args)))
        if isinstance(e, GroupAdjoint):
            g = next(g for g in self.plan.groups if g.name == str(e.args[1]))
            return self.size(g.operand)
        if isinstance(e, sp.Symbol):
            if naming.parse(e) is not None or e.name in self.params:
                return size_expr(self.cell.dim(e))
            return None
        return next((s for s in map(self.size, e.args) if s is not None), None)

    def gemm(self, g) -> Gemm:
        """The forward GEMM of group ``g``: its matrices times this step's operand."""
        return _gemm(self.where[g.operand].array, f"stack_{g.name}.T", f"proj_{g.name}",
                     f"[{'; '.join(map(str, g.matrices))}] {g.name}: the products on {g.name}, "
                     "one GEMM" + (f", plus this step's slice of proj_{g.adds}" if g.adds else ""))


def _forward_kernel(plan: Plan) -> dict:
    step, cell = _Step(plan), plan.cell
    for s in cell.prev_states:
        step.place(s, f"{naming.sequence(naming.parse(s).base)}[t]")
    for x in cell.input_symbols:
        step.place(x, f"{naming.code(x)}[t]")
    items = []
    for g in plan.groups:
        if g.kind == "state":
            items.append(step.gemm(g))
            if g.adds:   # read as the sum of both buffers' slices
                step.adds[f"proj_{g.name}"] = f"proj_{g.adds}"
    for k, b in enumerate(plan.forward):
        items += _elems(step, b, k)
        items += [step.gemm(g) for g in plan.groups
                  if g.kind == "step" and b.label == computed_in(plan, g.operand)]
    return _kernel(step, items)


def _backward_kernel(plan: Plan) -> dict:
    step, cell = _Step(plan), plan.cell
    for v, array in step_arrays(plan):
        step.place(v, array)
    for carry in _carries(cell):
        step.place(carry, naming.code(carry))
    for x in cell.input_symbols:
        step.place(x, f"{naming.code(x)}[t]")
    step.place(naming.timed(cell.output, 0, naming.EXTERNAL), "dhs[t]")
    items = []
    for k, b in enumerate(plan.backward + plan.carries):
        items += _elems(step, b, k)
    for s in plan.vector_grads:
        name = naming.code(s.lhs)
        size = size_expr(cell.param(naming.grad_key(naming.adjoint_of(s.lhs))).shape[0])
        label = naming.label(naming.GRADIENT, naming.grad_key(naming.adjoint_of(s.lhs)))
        items += _split(step, Elem(Loc(name, name), s.rhs, size, f"({label})", add=True))
    for s in plan.input_grads:
        x = naming.adjoint_of(s.lhs)
        loc = Loc(naming.row(naming.code(s.lhs)), f"{naming.code(s.lhs)}[t]")
        label = naming.label(naming.GRADIENT, naming.grad_key(x))
        items += _split(step, Elem(loc, s.rhs, step.size(x), f"({label})"))
    return _kernel(step, items)


def _elems(step: _Step, block, k: int) -> list:
    """The items of one labelled block: its statements, each GroupAdjoint a GEMM of its own,
    the block's CSE temporaries renamed apart from the other blocks'."""
    temps = {s.lhs: sp.Symbol(f"{s.lhs.name}_{k}") for s in block.stmts
             if isinstance(s.lhs, sp.Symbol) and s.lhs.name.startswith("_tmp")}
    items, note = [], block_comment(block)
    for s in block.stmts:
        lhs, rhs = temps.get(s.lhs, s.lhs), s.rhs.xreplace(temps)
        if lhs in temps.values() and step.size(rhs) is None:   # a number such as π² has no
            temps[s.lhs] = rhs                                  # size: it is written where
            continue                                            # it is read
        if isinstance(lhs, Proj):   # a store: δ(W u) into its buffer's slice
            target, size = _slice(lhs), step.size(lhs)
        elif isinstance(s.into, Proj):   # computed into its buffer's slice
            target = step.where[lhs] = _slice(s.into)
            size = step.sizes[lhs] = step.size(s.into)
        else:   # a vector set to a number (δ⁺s = 0) has its own size
            size = step.sizes[lhs] = step.size(rhs) or step.size(lhs)
            if s.into is not None:   # computed into its slot of a per-step array
                name, shift = s.into.args
                step.place(lhs, f"{name}[t]" if shift == 0 else f"{name}[t + {shift}]")
            target = step.where.get(lhs, lhs)
        items += _split(step, Elem(target, rhs, size, note))
        note = ""   # the block's comment goes once, before its first statement
    return items


def _split(step: _Step, e: Elem) -> list:
    """``e``, with each fused GEMM it reads (Wᵀ δ(W u) of a group) computed first."""
    items, subs = [], {}
    for ga in sorted(e.rhs.atoms(GroupAdjoint), key=sp.default_sort_key):
        buf, name = ga.args
        if e.rhs == ga and isinstance(e.target, Loc) and e.target.offset == 0 and not e.add \
                and "[" not in e.target.array:   # the GEMM writes the carry itself
            return [_gemm(f"{buf}[t]", f"stack_{name}", e.target.array, e.comment)]
        ws = sp.Symbol(f"gemm_{name}")
        step.workspace[ws.name] = step.sizes[ws] = step.size(ga)
        step.where[ws] = Loc(naming.row(ws.name), ws.name)
        subs[ga] = ws
        items.append(_gemm(f"{buf}[t]", f"stack_{name}", ws.name,
                           f"Wᵀ δ(W {name}), summed over the products on {name}: one GEMM"))
    return items + [e._replace(rhs=e.rhs.xreplace(subs))]


def _sink(step: _Step, items) -> list:
    """The items with each GEMM moved after the loops that follow it and touch none of its
    arrays, so that those loops join the loop before the GEMM."""
    out = list(items)
    for k in range(len(out) - 1, -1, -1):
        if not isinstance(out[k], Gemm):
            continue
        g, at = out[k], k
        while at + 1 < len(out) and isinstance(out[at + 1], Elem) and \
                not _touches(step, out[at + 1], g):
            out[at], out[at + 1] = out[at + 1], out[at]
            at += 1
    return out


def _touches(step: _Step, e: Elem, g: Gemm) -> bool:
    """Whether ``e`` reads what ``g`` writes, or writes what ``g`` reads or writes."""
    reads = {_base(w.array) for s in e.rhs.free_symbols
             for w in [step.where.get(s)] if isinstance(w, Loc)}
    reads |= {str(p.args[0]) for p in e.rhs.atoms(Proj)}
    reads |= {step.adds[r] for r in reads if r in step.adds}
    target = step.where.get(e.target, e.target)
    writes = {_base(target.array)} if isinstance(target, Loc) else set()
    return g.writes in reads or bool(writes & (g.reads | {g.writes}))


def _kernel(step: _Step, items) -> dict:
    """The kernel's steps: GEMM lines and loop nests, each nest the longest run of
    element-wise items of one size; a local that another nest reads becomes an array."""
    runs = []
    for it in _sink(step, items):
        if isinstance(it, Elem) and it.size is None:   # every value of a loop is a vector
            raise NotImplementedError(f"{it.target} = {it.rhs}: an element-wise statement "
                                      "that reads no vector, so its loop has no size")
        if isinstance(it, Elem) and runs and isinstance(runs[-1], list) and \
                sp.expand(runs[-1][0].size - it.size) == 0:
            runs[-1].append(it)
        else:
            runs.append([it] if isinstance(it, Elem) else it)
    home = {it.target: k for k, r in enumerate(runs) if isinstance(r, list) for it in r
            if isinstance(it.target, sp.Symbol)}
    for k, r in enumerate(runs):
        for s in sorted({s for it in (r if isinstance(r, list) else ())
                         for s in it.rhs.free_symbols if home.get(s, k) != k}, key=str):
            step.workspace[naming.code(s)] = step.sizes[s]
            step.place(s, naming.code(s))
    ops = []
    for r in runs:
        if isinstance(r, Gemm):
            ops.append(dict(line=r.line, comment=r.comment))
            continue
        rows, body = {}, []
        where = {**{s: naming.code(s) for s in home}, **step.where}
        for it in r:
            p = ElementPrinter({"where": where, "rows": rows, "params": step.params,
                                "sizes": step.size, "adds": step.adds})
            if it.comment:
                body.append(f"# {it.comment}")
            rhs, t = p.doprint(it.rhs), where.get(it.target, it.target)
            if isinstance(t, str):
                body.append(f"{t} = {rhs}")
            elif it.add:
                body.append(f"{t.row}[j] += {rhs}")
            else:
                rows[t.row] = f"{t.array}[b]"
                body.append(f"{t.row}[{p.index(t.offset)}] = {rhs}")
        ops.append(dict(size=_size_code(r[0].size),
                        rows=[f"{row} = {src}" for row, src in rows.items()], body=body))
    return dict(ops=ops, workspace=[(n, _size_code(s)) for n, s in step.workspace.items()])


# ------------------------------------------------------------------ math -----

#: The two float types: where exp is clamped (beyond, the result is 0 or inf: e^lowest is
#: below half the smallest subnormal number, e^highest above the largest), and the
#: exponent's bias and the mantissa's width, which set 2^k through the exponent bits.
FLOATS = (dict(bits=64, lowest=-745.2, highest=709.8, bias=1023, mantissa=52),
          dict(bits=32, lowest=-104.0, highest=88.8, bias=127, mantissa=23))


@functools.lru_cache(maxsize=None)
def math_context() -> dict:
    """exp, tanh, σ, softplus and log σ for float32 and float64 as Horner forms, their constants
    derived here: exp(r) = Σ r^k/k! on |r| <= ln2/2 (degree 13, below float64's rounding),
    and tanh on |a| < 0.625 as a convergent of Lambert's continued fraction
    tanh a = a/(1 + a²/(3 + a²/(5 + ...))), a rational function with integer coefficients."""
    r, a2 = sp.Symbol("r"), sp.Symbol("a2")
    exp_coeffs = [sp.Rational(1, sp.factorial(k)) for k in range(14)]
    cf = sp.Integer(17)
    for k in range(7, -1, -1):
        cf = (2 * k + 1) + a2 / cf
    num, den = sp.fraction(sp.cancel(1 / cf))   # tanh a = a · num(a²)/den(a²)
    return dict(floats=FLOATS, exp_poly=_horner(exp_coeffs, "r"),
                tanh_num=_horner(sp.Poly(num, a2).all_coeffs()[::-1], "a2"),
                tanh_den=_horner(sp.Poly(den, a2).all_coeffs()[::-1], "a2"))


def _horner(coeffs, x: str) -> str:
    """c0 + x*(c1 + x*(c2 + ...)) with each constant as F(...)."""
    text = f"F({float(coeffs[-1])!r})"
    for c in reversed(coeffs[:-1]):
        text = f"F({float(c)!r}) + {x} * ({text})"
    return text
