"""Code: a lowered plan, printed by a backend's spelling, poured into its code template.

Every backend's template receives the same :func:`code_context`; only the printing of the
statements differs (``Spelling``).
"""
from __future__ import annotations

import textwrap
from typing import Callable, NamedTuple

import sympy as sp

from .. import naming
from ..cell.matrices import per_head_parts
from ..cell.ops import Outer, Transposed, matrix_param
from ..cell.parts import size_expr
from ..derivation.bptt import Derivation
from ..lower.plan import Plan, lower
from ..printers.comment import comment
from ..printers.templates import REBUILD, environment
from ..printers.text import python_string
from .channels import channels_module, has_channels
from .heads import heads_module
from .numpy import head_pycode, pycode, pycode_into
from .sizes import sizes_context


PY_TEMPLATE = "numpy/cell.py.jinja"


class Spelling(NamedTuple):
    """How a backend prints the statements of a step: ``code(expr, inputs)`` an expression,
    ``into(lhs, rhs, inputs)`` ``rhs`` computed into the array ``lhs`` names; and ``lib``, how
    the Python around the loops calls its array library: ``cat``, ``empty``, ``zeros``,
    ``empty_like``, ``matmul``, ``copied`` (the suffix that copies an array) and ``where``
    (the dtype and device arguments of an allocation)."""
    code: Callable
    into: Callable
    lib: dict


NUMPY = Spelling(pycode, pycode_into, dict(
    cat="np.concatenate", empty="np.empty", zeros="np.zeros", empty_like="np.empty_like",
    matmul="np.matmul", copied=".copy()", where="dtype"))


def numpy_module(d: Derivation, rebuild: str | None = None) -> str:
    """The source of the generated NumPy module for ``d.cell``; its header names ``rebuild``
    as the command that regenerates it, if given.  A cell with matrices or numbers per head
    gets the module of :mod:`.heads`, one with matrices per channel that of :mod:`.channels`."""
    if has_channels(d.cell):
        return channels_module(d, rebuild)
    if per_head_parts(d.cell):
        return heads_module(d, rebuild)
    return environment().get_template(PY_TEMPLATE).render(
        template=PY_TEMPLATE, rebuild=rebuild, **code_context(d, NUMPY, "NumPy"))


def code_context(d: Derivation, spell: Spelling, backend: str, plan: Plan | None = None) -> dict:
    """What a code template receives, its statements printed by ``spell``: the same lowered
    plan (``lower(d)`` unless given) for every backend."""
    plan = plan or lower(d)
    cell = plan.cell
    inputs = [dict(name=n, size=dim, local=naming.code(x), dlocal=naming.code(naming.adjoint(x)),
                   width="D" if k == 0 else pycode(size_expr(dim)))   # D: the first's width
              for k, ((n, dim), x) in enumerate(zip(cell.inputs.items(), cell.input_symbols))]
    output = naming.timed(cell.output)
    return dict(
        cell=cell, docstring=_docstring(cell, backend),
        input_size=inputs[0]["size"], input_name=inputs[0]["name"],
        input=inputs[0]["local"], dinput=inputs[0]["dlocal"],
        inputs=inputs, extras=inputs[1:],
        hs=(f"{naming.sequence(cell.output)}[1:]" if cell.output_is_state
            else naming.cached(naming.code(output))),
        output_size="STATE_SIZES[OUTPUT]" if cell.output_is_state else "OUTPUT_SIZE",
        params=[(p.name, _shape(p.shape)) for p in cell.params],
        param_locals=[naming.code(p.symbol) for p in cell.params],
        **sizes_context(cell),
        states=[(n, dim) for n, dim in cell.states.items()],
        state_locals=[dict(name=n, prev=naming.code(naming.timed(n, -1)),
                           carry=naming.code(naming.timed(n, 0, naming.CARRY)))
                      for n in cell.states],
        groups=[_group(g, plan) for g in plan.groups],
        forward=[_block(b, plan, spell) for b in plan.forward],
        cached=[(naming.code(s), dim) for s, dim in plan.cached],
        backward=[_block(b, plan, spell) for b in plan.backward],
        carries=[_block(b, plan, spell) for b in plan.carries],
        vector_grads=[(name, naming.code(p.lhs), cell.dim(sp.Symbol(name)),
                       spell.code(p.rhs, cell.inputs))
                      for p in plan.vector_grads
                      for name in [naming.grad_key(naming.adjoint_of(p.lhs))]],
        input_grads=[dict(name=naming.grad_key(x), local=naming.code(x), dlocal=naming.code(s.lhs),
                          expr=spell.code(s.rhs, cell.inputs))
                     for s in plan.input_grads for x in [naming.adjoint_of(s.lhs)]],
        scalar_params={p.name for p in cell.params if not p.shape},
        scalar_locals=[naming.code(p.symbol) for p in cell.params if not p.shape],
        matrix_grads=_matrix_grads(plan),
        summed_grads=[(name, str(buf), f"{'' if a == 0 else pycode(a)}:{pycode(b)}")
                      for name, buf, a, b in plan.summed_grads],
        summed_buffers=sorted({str(buf) for _, buf, _, _ in plan.summed_grads}),
        loads=_loads(plan),
        has_heads=any(g.heads for g in plan.groups),
        labels=_grad_labels(cell),
        lib=spell.lib,
    )


def _grad_labels(cell) -> dict[str, str]:
    """The label of each gradient ``backward`` returns, by its key: W_f is grad:W_f."""
    return {**{naming.grad_key(v): naming.label(naming.GRADIENT, naming.grad_key(v))
               for v in (*(p.symbol for p in cell.params), *cell.input_symbols)},
            **{naming.grad_key(s): naming.label(naming.INITIAL, naming.grad_key(s))
               for s in cell.prev_states}}


NETWORK_TEMPLATE = "numpy/network.py.jinja"


def network_module(n, cell_import: str | None = None, rebuild: str = REBUILD) -> str:
    """The source of the NumPy module of a cell with a head (``n`` from
    :func:`symlstm.network.heads.derive_network`): ``loss_and_grads(params, x, y, state0=None)``.
    It imports the cell's module, ``symlstm.generated.<cell>`` unless ``cell_import`` names
    another."""
    cell, head = n.cell.cell, n.head
    out = cell.output
    folded = {}   # adjoints that are numbers (δℓ = 1, δm = δℓ), folded into what follows

    def code(g):
        rhs = g.rhs.xreplace(folded)
        if rhs.is_number:
            folded[g.lhs] = rhs
            return ""
        return f"{naming.code(g.lhs)} = {head_pycode(rhs, out)}"
    forward = [dict(label=g.label, source=comment(g.eq), line=f"{naming.code(g.lhs)} = "
                    f"{head_pycode(g.rhs, out)}") for g in head.forward]
    backward = [dict(label=g.label, source=comment(g.eq), line=code(g)) for g in head.step]
    dh = head.output
    grads = []
    for g in head.params:
        (term,) = g.terms
        if isinstance(term.expr, Outer):   # Σ_t Σ_b u vᵀ: one GEMM over every step and sample
            u, v = (head_pycode(a.xreplace(folded), out) for a in term.expr.args)
            line = f"{u}.reshape(T * B, -1).T @ {v}.reshape(T * B, -1)"
        else:
            e = term.expr.xreplace(folded)
            text = head_pycode(e, out)
            line = f"{text if e.is_Symbol else f'({text})'}.reshape(T * B, -1).sum(axis=0)"
        grads.append(dict(name=naming.grad_key(naming.adjoint_of(g.lhs)), label=g.label,
                          source=comment(g.eq), line=line))
    title = f"{cell.title} with a {head.head.title}"
    text = (f"{title}: loss and gradients, in NumPy.\n\nThe cell's forward and backward "
            f"passes come from ``{cell_import or 'symlstm.generated.' + cell.name}``; the "
            "head's equations, labelled as in\nthe derivation document, are below.  The loss "
            "is a sum over steps and samples, not a mean.\n")
    return environment().get_template(NETWORK_TEMPLATE).render(
        template=NETWORK_TEMPLATE, rebuild=rebuild, name=n.name, docstring=python_string(text),
        cell_import=cell_import or f"symlstm.generated.{cell.name}", head=head.head.name,
        targets=head.head.targets, extras=[naming.code(x) for x in cell.input_symbols[1:]],
        head_params=[(p.name, _shape(p.shape)) for p in head.head.params],
        forward=forward, backward=backward,
        output=dict(label=dh.label, source=comment(dh.eq),
                    line=f"dhs = {head_pycode(dh.rhs.xreplace(folded), out)}"),
        head_grads=grads)


def _docstring(cell, backend: str = "NumPy") -> str:
    """The module docstring, as a Python literal: the title and description are data."""
    about = "\n".join(textwrap.fill(p, 92) for p in cell.about.split("\n")) if cell.about else ""
    text = (f"{cell.title}: forward pass and backpropagation through time, in {backend}.\n\n"
            + (f"{about}\n\n" if about else "")
            + "Equation labels such as ``(fwd:h)``, ``(adj:h)`` and ``(rec:h)`` are those of the\n"
            f"derivation document ``{cell.name}.pdf``.  Shapes: x is (T, B, "
            f"{cell.inputs[next(iter(cell.inputs))]}), time-major; "
            "states are\n(B, size) with sizes in ``STATE_SIZES``; parameters are listed in "
            "``SHAPES``.\n")
    return python_string(text)


def _shape(shape) -> str:
    """A shape as a tuple of quoted sizes: ("H", "D + H")."""
    return "(" + ", ".join(f'"{d}"' for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _group(g, plan: Plan) -> dict:
    base = naming.parse(g.operand).base
    sequence = {"input": naming.code(g.operand), "state": f"{naming.sequence(base)}[:-1]",
                "step": f"{naming.sequence(base)}[1:]" if g.operand in plan.cell.new_states
                else naming.cached(naming.code(g.operand))}[g.kind]
    width = pycode(g.offsets()[-1])
    cell = plan.cell
    # D is read off the first input, so its width is D whatever its size; others have theirs
    width_in = "D" if g.operand == cell.input_symbols[0] else pycode(size_expr(cell.dim(g.operand)))
    return dict(name=g.name, operand=naming.code(g.operand), heads=g.heads, kind=g.kind,
                width_in=width_in, matrices=", ".join(map(pycode, g.matrices)), width=width,
                adds=g.adds, biases=", ".join(naming.code(sp.Symbol(b)) for b in g.biases),
                buffer=g.adjoint_buffer, sequence=sequence, after=computed_in(plan, g.operand))


def computed_in(plan: Plan, v) -> str:
    """The label of the forward block that computes the vector ``v``."""
    return naming.label(naming.FORWARD,
                        next((eq.label for eq in plan.cell.equations if eq.lhs == v), ""))


def _block(b, plan: Plan, spell: Spelling) -> dict:
    """Printed statements of one block, with the comment that ties them to the document."""
    inputs, lines = plan.cell.inputs, []
    for s in b.stmts:
        if s.into is None:
            lines.append(f"{spell.code(s.lhs, inputs)} = {spell.code(s.rhs, inputs)}")
        else:   # name the slot, then fill it in place
            lines += [f"{spell.code(s.lhs, inputs)} = {spell.code(s.into, inputs)}",
                      spell.into(s.lhs, s.rhs, inputs)]
    return dict(label=b.label, comment=block_comment(b), lines=lines)


def block_comment(b) -> str:
    """The comment that ties a block of the step to the document: its label and equation."""
    if b.kind == naming.STORE:   # not an equation: the fused GEMMs' inputs
        return f"δ(W {b.name}) of the products on {b.name}, for the fused GEMMs"
    source = comment(b.source)
    if b.kind == naming.RECURRENCE:
        return f"({b.label}) step t's share of δ{b.name}[t-1], sent back to step t-1: {source}"
    return f"({b.label}) {source}"


def _matrix_grads(plan: Plan) -> list[tuple[str, str]]:
    """Each weight gradient as slices of the fused groups' gradient GEMMs."""
    parts = {}
    for g in plan.groups:
        for k, (W, a, b) in enumerate(zip(g.matrices, g.offsets(), g.offsets()[1:])):
            if g.heads:   # blocks, NH per matrix
                a, b = k * sp.Symbol("NH"), (k + 1) * sp.Symbol("NH")
            rows = f"{'' if a == 0 else pycode(a)}:{pycode(b)}"
            flip = ".T" if isinstance(W, Transposed) else ""
            parts.setdefault(matrix_param(W).name, []).append(f"dstack_{g.name}[{rows}]{flip}")
    return [(W, " + ".join(ps)) for W, ps in parts.items()]   # (grad:W) in the template


def step_arrays(plan: Plan) -> list[tuple[sp.Symbol, str]]:
    """Where the backward pass finds the forward values of step t: each state at t-1 and at
    t in its sequence, each cached value in its cache."""
    cell = plan.cell
    out = [(s, f"{naming.sequence(naming.parse(s).base)}[t]") for s in cell.prev_states]
    out += [(s, f"{naming.sequence(naming.parse(s).base)}[t + 1]") for s in cell.new_states]
    return out + [(v, f"{naming.cached(naming.code(v))}[t]") for v, _ in plan.cached]


def _loads(plan: Plan) -> list[str]:
    """Per step of the backward loop: the forward values this step reads."""
    used = set().union(*(s.rhs.free_symbols for b in (*plan.backward, *plan.carries)
                         for s in b.stmts),
                       *(s.rhs.free_symbols for s in (*plan.vector_grads, *plan.input_grads)))
    return [f"{naming.code(s)} = {array}" for s, array in step_arrays(plan) if s in used]
