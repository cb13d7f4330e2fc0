"""The Numba backend's loop nests: each run of element-wise statements of one size between
two GEMMs becomes one loop nest over the samples and the vector's entries; a value lives in
a register unless a later nest, a GEMM or the backward pass reads it."""
from __future__ import annotations

from typing import NamedTuple

import sympy as sp

from .. import naming
from ..cell.ops import REDUCTIONS, Concat, Part, Place
from ..cell.parts import size_expr
from ..lower.gemms import GroupAdjoint, HeadsAdjoint, Proj
from ..lower.plan import Broadcast, Plan
from .code import block_comment, computed_in, step_arrays
from .numba_printer import ElementPrinter, Loc, _size_code, _slice


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
    """``_gemm(a, b, out)``, one call of the bound BLAS's GEMM, with what it computes; ``reads`` and
    ``writes`` name the arrays (the loops may move past it only if they touch neither)."""
    line: str
    comment: str = ""
    reads: frozenset = frozenset()
    writes: str = ""


def _gemm(a: str, b: str, out: str, comment: str, call: str = "_gemm") -> Gemm:
    """``call(a, b, out)``: a BLAS GEMM, or the loops over heads of ``_heads_into`` and
    ``_heads_T_into`` (per-head blocks, whose products are small and many)."""
    return Gemm(f"{call}({a}, {b}, {out})", comment, frozenset({_base(a), _base(b)}), _base(out))


def _base(array: str) -> str:
    """The array an expression such as ``seq_h[t]`` or ``stack_x.T`` indexes."""
    return array.partition("[")[0].partition(".")[0]



def _carries(cell) -> list:
    """δ⁺s for every state s: what step t+1 sent back, an array the backward loop updates."""
    return [naming.timed(s, 0, naming.CARRY) for s in cell.states]


class _Step:
    """What one direction's kernel knows while it is built: where each vector lives, the
    sizes of vectors, and the workspace arrays it needs."""

    def __init__(self, plan: Plan):
        self.plan, self.cell = plan, plan.cell
        self.where: dict[sp.Symbol, Loc] = {}
        self.sizes: dict[sp.Symbol, sp.Expr] = {v: size_expr(dim) for v, dim in plan.cached}
        self.workspace: dict[str, sp.Expr] = {}
        self.params = tuple(p.name for p in self.cell.params if not p.is_matrix)
        self.scalars = tuple(p.name for p in self.cell.params if not p.shape)
        self.adds: dict[str, str] = {}   # a state group's buffer -> the input projection

    def place(self, sym, array: str, offset=sp.S.Zero) -> Loc:
        """Put ``sym`` at ``array`` (its row named after the symbol)."""
        self.where[sym] = Loc(naming.row(naming.code(sym)), array, offset)
        return self.where[sym]

    def size(self, e: sp.Expr):
        """The number of entries of an element-wise expression (None for a number)."""
        if e in self.sizes:
            return self.sizes[e]
        if e.func in REDUCTIONS:
            return sp.S.One
        if isinstance(e, (Proj, Part)):
            return sp.expand(e.args[2] - e.args[1])
        if isinstance(e, Place):
            return e.args[3]
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
        found = [s for s in map(self.size, e.args) if s is not None]
        return next((s for s in found if s != 1), found[0] if found else None)

    def gemm(self, g) -> Gemm:
        """The forward GEMM of group ``g``: its matrices times this step's operand."""
        if g.heads:
            return _gemm(self.where[g.operand].array, f"stack_{g.name}", f"proj_{g.name}",
                         f"[{'; '.join(map(str, g.matrices))}] {g.name}: the per-head products "
                         + (f"on {g.name}, plus this step's slice of proj_{g.adds}"
                            if g.adds else f"on {g.name}"), "_heads_into")
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
        size = size_expr(cell.dim(sp.Symbol(naming.grad_key(naming.adjoint_of(s.lhs)))))
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
        call = "_heads_T_into" if isinstance(ga, HeadsAdjoint) else "_gemm"
        if e.rhs == ga and isinstance(e.target, Loc) and e.target.offset == 0 and not e.add \
                and "[" not in e.target.array:   # the GEMM writes the carry itself
            return [_gemm(f"{buf}[t]", f"stack_{name}", e.target.array, e.comment, call)]
        ws = sp.Symbol(f"gemm_{name}")
        step.workspace[ws.name] = step.sizes[ws] = step.size(ga)
        step.where[ws] = Loc(naming.row(ws.name), ws.name)
        subs[ga] = ws
        items.append(_gemm(f"{buf}[t]", f"stack_{name}", ws.name,
                           f"Wᵀ δ(W {name}), summed over the products on {name}: "
                           + ("head by head" if isinstance(ga, HeadsAdjoint) else "one GEMM"),
                           call))
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
            before = []
            p = ElementPrinter({"where": where, "rows": rows, "params": step.params,
                                "scalars": step.scalars, "sizes": step.size, "adds": step.adds,
                                "before": before})
            if it.comment:
                body.append(f"# {it.comment}")
            rhs, t = p.doprint(it.rhs), where.get(it.target, it.target)
            body += before
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
