"""Rendering: a lowered plan, printed to strings, poured into the Jinja2 templates.

Returns text and never writes a file (that is :mod:`symlstm.build`'s job).  The
templates receive only pre-printed strings and loops.
"""
from __future__ import annotations

from pathlib import Path

import jinja2
import sympy as sp

from . import naming
from .bptt import Derivation
from .cell import CellError
from .lower import Plan, lower
from .ops import Transposed, matrix_param
from .printers import comment, latex, pycode

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
REBUILD = "python -m symlstm.build"
PY_TEMPLATE = "numpy/cell.py.jinja"
TEX_TEMPLATE = "latex/derivation.tex.jinja"


def environment() -> jinja2.Environment:
    """The one Jinja environment: strict about undefined names, whitespace as written."""
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                              undefined=jinja2.StrictUndefined, trim_blocks=True,
                              lstrip_blocks=True, keep_trailing_newline=True)


# ------------------------------------------------------------- NumPy -----

def numpy_module(d: Derivation) -> str:
    """The source of the generated NumPy module for ``d.cell``."""
    plan = lower(d)
    cell = plan.cell
    if len(cell.inputs) != 1:
        raise CellError(f"cell {cell.name!r}: generated code takes exactly one input sequence, "
                        f"not {len(cell.inputs)}")
    return environment().get_template(PY_TEMPLATE).render(
        template=PY_TEMPLATE, rebuild=REBUILD, cell=cell,
        input=naming.code(cell.input_symbols[0]),
        params=[(p.name, _shape(p.shape)) for p in cell.params],
        states=[(n, dim) for n, dim in cell.states.items()],
        groups=[_group(g, plan) for g in plan.groups],
        forward=[_block(b, plan) for b in plan.forward],
        cached=[(naming.code(s), dim) for s, dim in plan.cached],
        backward=[_block(b, plan) for b in plan.backward],
        carries=[_block(b, plan) for b in plan.carries],
        vector_grads=[(naming.code(p.lhs), cell.dim(sp.Symbol(naming.code(p.lhs))),
                       pycode(p.rhs, cell.inputs)) for p in plan.vector_grads],
        input_grads=[pycode(s.rhs, cell.inputs) for s in plan.input_grads],
        matrix_grads=_matrix_grads(plan),
        loads=_loads(plan),
    )


def _shape(shape) -> str:
    """A shape as a tuple of quoted sizes: ("H", "D + H")."""
    return "(" + ", ".join(f'"{d}"' for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _group(g, plan: Plan) -> dict:
    sequence = {"input": naming.code(g.operand), "state": f"seq_{naming.parse(g.operand).base}[:-1]",
                "step": f"cache_{naming.code(g.operand)}"}[g.kind]
    width = pycode(g.offsets()[-1])
    return dict(name=g.name, kind=g.kind, matrices=", ".join(map(pycode, g.matrices)), width=width,
                buffer=g.adjoint_buffer, sequence=sequence,
                after=f"fwd:{next((eq.label for eq in plan.cell.equations if eq.lhs == g.operand), '')}")


def _block(b, plan: Plan) -> dict:
    inputs = plan.cell.inputs
    lines = [f"{pycode(s.lhs, inputs)} = {pycode(s.rhs, inputs)}" for s in b.stmts]
    return dict(label=b.label, source=comment(b.source) if b.source is not None else "",
                lines=lines)


def _matrix_grads(plan: Plan) -> list[tuple[str, str]]:
    """Each weight gradient as slices of the fused groups' gradient GEMMs."""
    parts = {}
    for g in plan.groups:
        for W, a, b in zip(g.matrices, g.offsets(), g.offsets()[1:]):
            rows = f"{'' if a == 0 else pycode(a)}:{pycode(b)}"
            flip = ".T" if isinstance(W, Transposed) else ""
            parts.setdefault(matrix_param(W).name, []).append(f"dstack_{g.name}[{rows}]{flip}")
    return [(W, " + ".join(ps)) for W, ps in parts.items()]


def _loads(plan: Plan) -> list[str]:
    """Per step of the backward loop: the forward values this step reads."""
    cell, lines = plan.cell, []
    used = set().union(*(s.rhs.free_symbols for b in (*plan.backward, *plan.carries)
                         for s in b.stmts), *(s.rhs.free_symbols for s in plan.vector_grads))
    for s in cell.prev_states + cell.new_states:
        if s in used:
            base = naming.parse(s).base
            lines.append(f"{naming.code(s)} = seq_{base}[t{'' if s in cell.prev_states else ' + 1'}]")
    for s, _ in plan.cached:
        if s in used:
            lines.append(f"{naming.code(s)} = cache_{naming.code(s)}[t]")
    return lines


# ------------------------------------------------------------- LaTeX -----

def latex_document(d: Derivation) -> str:
    """The source of the derivation document for ``d.cell``."""
    cell = d.cell
    return environment().get_template(TEX_TEMPLATE).render(
        template=TEX_TEMPLATE, rebuild=REBUILD, cell=cell,
        title=cell.title, about=cell.about,
        forward=[_tex(g) for g in d.forward],
        paths=[_paths(g) for g in (*d.through_time, *d.step) if not _is_state_step(g, d)],
        step=[_tex(g) for g in d.step],
        through_time=[_tex(g) for g in d.through_time],
        inputs=[_tex(g) for g in (*d.inputs, *d.initial)],
        params=[dict(_tex(g), element=_elementwise(g, cell)) for g in d.params],
        states=", ".join(f"${naming.latex_base(n)}_t$" for n in cell.states),
        sizes=[(naming.latex_base(p.name), r" \times ".join(p.shape)) for p in cell.params],
    )


def _tex(g) -> dict:
    """An equation as its left side and one LaTeX string per term (signs kept)."""
    terms = [latex(t.expr, g.origin) for t in g.terms]
    terms = [terms[0]] + [t if t.startswith("-") else f"+ {t}" for t in terms[1:]]
    prefix, suffix = (r"\sum_{t=1}^{T} \Big(", r"\Big)") if g.summed and len(terms) > 1 else \
        (r"\sum_{t=1}^{T} ", "") if g.summed else ("", "")
    return dict(tag=rf"\tag{{{tex_label(g.label)}}}", lhs=latex(g.lhs, g.origin), terms=terms,
                prefix=prefix, suffix=suffix)


def tex_label(label: str) -> str:
    """An equation label as typewriter text; ``\\char95`` is the typewriter font's own
    underscore, which survives copy and paste (``\\_`` draws a rule)."""
    return rf"\texttt{{{label.replace('_', chr(92) + 'char95{}')}}}"


def _is_state_step(g, d) -> bool:
    """A state's one-step adjoint is shown through time instead, with all its paths."""
    v = naming.adjoint_of(g.lhs)
    return g.label.startswith("adj:") and v in d.cell.new_states


def _paths(g) -> dict:
    """One row per path: where it goes, the local derivative, the term it adds."""
    rows = []
    for t in g.terms:
        via, _, later = t.via.partition("@")
        where = "the loss" if via == "loss" else tex_label(f"fwd:{via}")
        rows.append(dict(via=where + (" at step $t+1$" if later else ""),
                         local=latex(t.local), term=latex(t.expr)))
    return dict(label=tex_label(g.label), lhs=latex(g.lhs), rows=rows)


def _elementwise(g, cell) -> str:
    """A parameter gradient element by element: (δW)_{jk} = Σ_t Σ_b (δu_t)_j (v_t)_k."""
    j, k = sp.Symbol("j"), sp.Symbol("k")
    parts = []
    for t in g.terms:
        e = t.expr
        if e.func.__name__ == "Outer":
            u, v = e.args
            parts.append(rf"\left[{latex(u)}\right]_{{{j}}} \left[{latex(v)}\right]_{{{k}}}")
        else:
            parts.append(rf"\left[{latex(e)}\right]_{{{j}}}")
    idx = "jk" if cell.param(g.lhs.name[len(naming.ADJOINT):]).is_matrix else "j"
    return (rf"\left({latex(g.lhs)}\right)_{{{idx}}} = \sum_{{t=1}}^{{T}} \sum_{{b=1}}^{{B}} "
            + " + ".join(parts))
