"""Rendering: a lowered plan, printed to strings, poured into the Jinja2 templates.

Returns text and never writes a file (that is :mod:`symlstm.build`'s job).  The
templates receive only pre-printed strings and loops.
"""
from __future__ import annotations

import functools
import re
from typing import Callable, NamedTuple
import textwrap
from pathlib import Path

import jinja2
import sympy as sp

from . import naming
from .bptt import Derivation
from .cell import CellError
from .lower import Plan, lower
from .ops import Outer, Transposed, matrix_param, sigma
from .cells import CELLS
from .graph import graph, position, route
from .jacobians import jacobians
from . import notation
from .cell import Latex
from .printers import (comment, head_pycode, latex, latex_text, pycode, pycode_into,
                       python_string, signed)
from .sweep import LOSS
from .bptt import derive as derive_cell

def _templates() -> Path:
    """templates/ of a checkout, or the copy an installed package carries."""
    here = Path(__file__).resolve().parent
    return next((f for f in (here.parent / "templates", here / "templates") if f.is_dir()),
                here / "templates")


TEMPLATES = _templates()
REBUILD = "python -m symlstm.build"
PY_TEMPLATE = "numpy/cell.py.jinja"
TEX_TEMPLATE = "latex/derivation.tex.jinja"
OVERVIEW_TEMPLATE = "latex/overview.tex.jinja"


def environment() -> jinja2.Environment:
    """The one Jinja environment: strict about undefined names, whitespace as written."""
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                              undefined=jinja2.StrictUndefined, trim_blocks=True,
                              lstrip_blocks=True, keep_trailing_newline=True)


# ------------------------------------------------------------- NumPy -----

class Spelling(NamedTuple):
    """How a backend prints the statements of a step: ``code(expr, inputs)`` an expression,
    ``into(lhs, rhs, inputs)`` ``rhs`` computed into the array ``lhs`` names."""
    code: Callable
    into: Callable


NUMPY = Spelling(pycode, pycode_into)


def numpy_module(d: Derivation) -> str:
    """The source of the generated NumPy module for ``d.cell``."""
    return environment().get_template(PY_TEMPLATE).render(
        template=PY_TEMPLATE, rebuild=REBUILD, **code_context(d, NUMPY, "NumPy"))


def code_context(d: Derivation, spell: Spelling, backend: str) -> dict:
    """What a code template receives, its statements printed by ``spell``: the same lowered
    plan for every backend."""
    plan = lower(d)
    cell = plan.cell
    if len(cell.inputs) != 1:
        raise CellError(f"cell {cell.name!r}: generated code takes exactly one input sequence, "
                        f"not {len(cell.inputs)}")
    return dict(
        cell=cell, docstring=_docstring(cell, backend),
        input_size=cell.inputs[next(iter(cell.inputs))],
        input=naming.code(cell.input_symbols[0]),
        params=[(p.name, _shape(p.shape)) for p in cell.params],
        states=[(n, dim) for n, dim in cell.states.items()],
        groups=[_group(g, plan) for g in plan.groups],
        forward=[_block(b, plan, spell) for b in plan.forward],
        cached=[(naming.code(s), dim) for s, dim in plan.cached],
        backward=[_block(b, plan, spell) for b in plan.backward],
        carries=[_block(b, plan, spell) for b in plan.carries],
        vector_grads=[(name, cell.dim(sp.Symbol(name)), spell.code(p.rhs, cell.inputs))
                      for p in plan.vector_grads
                      for name in [naming.grad_key(naming.adjoint_of(p.lhs))]],
        input_grads=[spell.code(s.rhs, cell.inputs) for s in plan.input_grads],
        matrix_grads=_matrix_grads(plan),
        summed_grads=[(name, str(buf), f"{'' if a == 0 else pycode(a)}:{pycode(b)}")
                      for name, buf, a, b in plan.summed_grads],
        summed_buffers=sorted({str(buf) for _, buf, _, _ in plan.summed_grads}),
        loads=_loads(plan),
    )


NETWORK_TEMPLATE = "numpy/network.py.jinja"


def network_module(n, cell_import: str | None = None) -> str:
    """The source of the NumPy module of a cell with a head (``n`` from
    :func:`symlstm.heads.derive_network`): ``loss_and_grads(params, x, y, state0=None)``.
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
        template=NETWORK_TEMPLATE, rebuild=REBUILD, name=n.name, docstring=python_string(text),
        cell_import=cell_import or f"symlstm.generated.{cell.name}", head=head.head.name,
        targets=head.head.targets,
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


def _tex_size(dim: str, product: bool) -> str:
    """A size in a document: ``2H + 1``, in parentheses inside a product (H × (D + H))."""
    text = dim.replace("*", "")
    return f"({text})" if product and "+" in text else text


def _shape(shape) -> str:
    """A shape as a tuple of quoted sizes: ("H", "D + H")."""
    return "(" + ", ".join(f'"{d}"' for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _group(g, plan: Plan) -> dict:
    base = naming.parse(g.operand).base
    sequence = {"input": naming.code(g.operand), "state": f"seq_{base}[:-1]",
                "step": f"seq_{base}[1:]" if g.operand in plan.cell.new_states
                else f"cache_{naming.code(g.operand)}"}[g.kind]
    width = pycode(g.offsets()[-1])
    return dict(name=g.name, kind=g.kind, matrices=", ".join(map(pycode, g.matrices)), width=width,
                adds=g.adds, biases=", ".join(g.biases),
                buffer=g.adjoint_buffer, sequence=sequence,
                after=f"fwd:{next((eq.label for eq in plan.cell.equations if eq.lhs == g.operand), '')}")


def _block(b, plan: Plan, spell: Spelling) -> dict:
    """Printed statements of one block, with the comment that ties them to the document."""
    inputs, lines = plan.cell.inputs, []
    for s in b.stmts:
        if s.into is None:
            lines.append(f"{spell.code(s.lhs, inputs)} = {spell.code(s.rhs, inputs)}")
        else:   # name the slot, then fill it in place
            lines += [f"{spell.code(s.lhs, inputs)} = {spell.code(s.into, inputs)}",
                      spell.into(s.lhs, s.rhs, inputs)]
    if b.label.startswith("store:"):   # not an equation: the fused GEMMs' inputs
        name = b.label.partition(":")[2]
        return dict(label="", lines=lines,
                    source=f"δ(W {name}) of the products on {name}, for the fused GEMMs")
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
    return [(W, " + ".join(ps)) for W, ps in parts.items()]   # (grad:W) in the template


def _loads(plan: Plan) -> list[str]:
    """Per step of the backward loop: the forward values this step reads."""
    cell, lines = plan.cell, []
    used = set().union(*(s.rhs.free_symbols for b in (*plan.backward, *plan.carries)
                         for s in b.stmts),
                       *(s.rhs.free_symbols for s in (*plan.vector_grads, *plan.input_grads)))
    for s in cell.prev_states + cell.new_states:
        if s in used:
            base = naming.parse(s).base
            lines.append(f"{naming.code(s)} = seq_{base}[t{'' if s in cell.prev_states else ' + 1'}]")
    for s, _ in plan.cached:
        if s in used:
            lines.append(f"{naming.code(s)} = cache_{naming.code(s)}[t]")
    return lines


# ------------------------------------------------------------- LaTeX -----

def latex_document(d: Derivation, head=None) -> str:
    """The source of the derivation document for ``d.cell``; with ``head`` (a
    :class:`~symlstm.heads.HeadDerivation`), the document starts at the loss."""
    cell, g = d.cell, graph(d.cell)
    shipped = cell.name in CELLS and CELLS[cell.name]() == cell
    title = cell.title if cell.title.lower().endswith(" cell") or cell.title.lower() == "cell" \
        else f"{cell.title} cell"
    params = [_tex(x, cell, element=True) for x in d.params]
    return environment().get_template(TEX_TEMPLATE).render(
        shipped=shipped,
        template=TEX_TEMPLATE, rebuild=REBUILD, cell=cell,
        title=latex_text(title + (f" with a {head.head.title}" if head else "")),
        head=_head(head) if head else None,
        about=tex_about(cell.about), tex_name=_tt(cell.name),
        notation=_notation(cell),
        graph=_tikz(g),
        forward=[_tex(x, cell) for x in d.forward],
        gates=_gates(cell),
        carried=_carried(d),
        paths=[_paths(x, d, g) for x in (*d.through_time, *d.step) if not _is_state_step(x, d)],
        step=[_tex(x, cell) for x in d.step],
        through_time=[dict(_tex(x, cell, element=True), reads=_later(x))
                      for x in d.through_time],
        inputs=[form for x in (*d.inputs, *d.initial)
                for e in [_tex(x, cell, element=True)] for form in (e, e["element"])],
        matrix_params=[e for e, p in zip(params, d.params) if _is_matrix(p)],
        vector_params=[e for e, p in zip(params, d.params) if not _is_matrix(p)],
        param_elements=[e["element"] for e, p in sorted(zip(params, d.params),
                                                        key=lambda ep: not _is_matrix(ep[1]))],
        jacobians=[_jacobian(j) for j in jacobians(d)],
        rnn_jacobians=_rnn_jacobians() if cell.name != "rnn" else [],
        states=", ".join(f"${naming.latex_base(n)}_t$" for n in cell.states),
        sizes=[(naming.latex_base(p.name), r" \times ".join(_tex_size(d, len(p.shape) > 1)
                                                            for d in p.shape))
               for p in cell.params],
        figures=FIGURE_DIR,
    )


def _head(h) -> dict:
    """The head's equations for the document, each gradient with its shape."""
    from .ops import lse, total
    sizes = {eq.lhs: "" if eq.rhs.atoms(total, lse) else "K" for eq in h.head.equations}
    sizes.update({naming.timed("h"): "H"})

    def shaped(g, shape):
        return {**_tex(g), "shape": shape}
    return dict(
        title=latex_text(h.head.title),
        forward=[_tex(g) for g in h.forward],
        step=[shaped(g, sizes[naming.adjoint_of(g.lhs)]) for g in h.step],
        output=shaped(h.output, "H"),
        params=[shaped(g, r" \times ".join(p.shape)) for g, p in zip(h.params, h.head.params)],
        targets=h.head.targets)


def _gates(cell) -> list[dict]:
    """Sigmoid outputs that scale what they multiply: the cell's gates, each with the
    equations where it does."""
    out = []
    for eq in cell.equations:
        if not isinstance(eq.rhs, sigma):
            continue
        where = [other.label for other in cell.equations if any(
            isinstance(m, sp.Mul) and any(a == eq.lhs or (isinstance(a, sp.Add) and eq.lhs in a.args)
                                         for a in m.args)
            for m in sp.preorder_traversal(other.rhs))]
        if where:
            out.append(dict(name=latex(eq.lhs), where=", ".join(eqref(f"fwd:{w}") for w in where)))
    return out


def _carried(d) -> list[dict]:
    """Each state that reaches itself at the next step through an element-wise factor (no
    weight matrix): the term of its recurrence that carries the gradient along that path."""
    out = []
    for s in d.cell.new_states:
        label = next(eq.label for eq in d.cell.equations if eq.lhs == s)
        rec = next((g for g in d.through_time if naming.adjoint_of(g.lhs) == s), None)
        term = next((t for t in (rec.terms if rec else ()) if t.via == f"{label}@t+1"), None)
        if term is None or any(naming.parse(v) is None and d.cell.param(v.name).is_matrix
                               for v in term.local.free_symbols):
            continue
        out.append(dict(state=latex(s), rec=eqref(rec.label), term=latex(term.expr),
                        factor=latex(term.local), one=term.local == 1))
    return out


def _later(g) -> str:
    """The equations of step t+1 a recurrence's terms come through, as references."""
    vias = [t.via.partition("@")[0] for t in g.terms if t.via.endswith("@t+1")]
    return ", ".join(eqref(f"fwd:{v}") for v in dict.fromkeys(vias))


@functools.lru_cache(maxsize=1)
def _rnn_jacobians() -> list[dict]:
    """The simple RNN's Jacobian, which every document compares its cell with."""
    return [_jacobian(j) for j in jacobians(derive_cell(CELLS["rnn"]()))]


def overview_document(derivations: list[Derivation], clip: float, others=()) -> str:
    """The document that links every cell and compares their backward passes with the
    peephole LSTM's (which ``derivations`` must hold); ``others`` are (name, description)
    of the other documents beside it, linked too."""
    base = next((d for d in derivations if d.cell.name == "peephole_lstm"), None)
    if base is None:
        raise ValueError("the overview compares every cell with peephole_lstm; include it")
    return environment().get_template(OVERVIEW_TEMPLATE).render(
        template=OVERVIEW_TEMPLATE, rebuild=REBUILD,
        cells=[dict(name=d.cell.name, tex_name=_tt(d.cell.name), title=latex_text(d.cell.title),
                    about=tex_about(d.cell.about)) for d in derivations],
        reference=[_tex(x) for x in base.through_time],
        comparison=_comparison(base, derivations),
        others=[dict(name=name, tex_name=_tt(name), about=latex_text(about))
                for name, about in others],
        figures=FIGURE_DIR, clip=clip)


FIGURE_DIR = "fig"   # beside the .tex: a document reads nothing outside its folder
MISTAKES_TEMPLATE = "latex/mistakes.tex.jinja"

#: The texts whose formulas the mistakes document checks, described in our words.
TEXTS = {
    "000": "A blog article that derives the peephole LSTM's backward pass in the notation "
           "of Greff et al., drawing the chain rule as paths in a graph.",
    "001": "A tutorial that unrolls an LSTM on the concatenated input $[x_t; h_{t-1}]$ over "
           "three steps, with a linear output layer and a loss at the last step "
           "(\\texttt{lstm\\char95{}concat} with the regression head).",
    "002": "Lecture notes on a batched, row-major LSTM with a cross-entropy loss "
           "(\\texttt{lstm\\char95{}rowmajor}).",
    "003": "Lecture notes on an LSTM without biases, with the accumulated cell-state gradient "
           "and the stacked weights $\\Theta = [W\\; U]$ (\\texttt{lstm\\char95{}nobias}).",
}


WORKED_TEMPLATE = "latex/worked.tex.jinja"


def worked_document(e) -> str:
    """The worked example's document, from :func:`symlstm.worked.example`."""
    from .worked import D, H, K, T, number, vector
    n = e.network
    cell, head = n.cell.cell, n.head
    forward = [*n.cell.forward, *head.forward]
    rows = [(latex(g.lhs), [vector(step.values[g.lhs]) for step in e.forward]) for g in forward]
    backward = []
    gradients = {g.lhs: g for g in n.all()}
    for step in e.backward:
        origin = str(step.t)
        backward.append(dict(t=step.t, rows=[
            (latex(s, origin), latex(gradients[s].rhs, origin), vector(v))
            for s, v in step.values.items()]))
    grads = [(latex(g.lhs), latex(g.rhs), vector(e.grads[naming.adjoint_of(g.lhs).name]))
             for g in (*head.params, *n.cell.params)]
    return environment().get_template(WORKED_TEMPLATE).render(
        template=WORKED_TEMPLATE, rebuild=REBUILD,
        title=f"A worked example: {T} steps of the {latex_text(cell.title)} with a "
              f"{latex_text(head.head.title)}",
        cell=_tt(cell.name), sizes=dict(T=T, D=D, H=H, K=K),
        equations=[_tex(g) for g in forward],
        params=[(naming.latex_base(k), vector(v)) for k, v in e.params.items()],
        inputs=[(t + 1, vector(e.x[t, 0]), vector(e.y[t, 0])) for t in range(T)],
        forward_rows=rows, loss=number(e.loss), backward=backward, grads=grads,
        central="10^{-6}")


def _path(via: str) -> str:
    """A path in running text: ``fwd:c`` at step t+1, or the loss."""
    name, _, later = via.partition("@")
    return "the loss" if name == LOSS else tex_label(f"fwd:{name}") + \
        (" at step $t+1$" if later else "")


def mistakes_document(claims) -> str:
    """The document that judges each :class:`~symlstm.seed_claims.SeedClaim` of ``claims``."""
    from .claims import check_claim, parse
    from .heads import derive_network
    subjects, texts, holding = {}, [], 0
    for number, about in TEXTS.items():
        entries = []
        for c in (c for c in claims if c.seed == number):
            key = (c.cell, c.head)
            if key not in subjects:
                subjects[key] = derive_network(*key) if c.head else derive_cell(CELLS[c.cell]())
            v = check_claim(subjects[key], c.label, c.claim)
            holding += v.holds
            entries.append(dict(
                where=latex_text(c.where[:1].upper() + c.where[1:]), cell=_tt(c.cell)[8:-1],
                label=tex_label(c.label), reading=latex_text(c.reading), holds=v.holds,
                claim=latex(parse(subjects[key], c.claim)), correct=v.latex,
                missing=[dict(term=latex(t.expr), via=_path(t.via)) for t in v.missing],
                extra=[latex(e) for e in v.extra]))
        texts.append(dict(number=number, about=about, entries=entries))
    return environment().get_template(MISTAKES_TEMPLATE).render(
        template=MISTAKES_TEMPLATE, rebuild=REBUILD, texts=texts,
        counts=dict(total=len(claims), holds=holding))


def _tt(text: str) -> str:
    """Typewriter text, escaped; ``\\char95`` is the typewriter font's own underscore, which
    survives copy and paste (``\\_`` draws a rule)."""
    return rf"\texttt{{{latex_text(text).replace(chr(92) + '_', chr(92) + 'char95{}')}}}"


def tex_about(about: str) -> str:
    """A cell's description: LaTeX as given when it is :class:`~symlstm.cell.Latex`, else
    plain text, escaped."""
    return str(about) if isinstance(about, Latex) else latex_text(about)


def tex_label(label: str) -> str:
    """An equation label as typewriter text."""
    return _tt(label)


def _tex(g, cell=None, element: bool = False, anchored: bool = True) -> dict:
    """An equation as its left side and one LaTeX string per term (signs kept), tagged with
    its label (and ``\\label``-ed with ``anchor``) and, given the cell, the gradient's shape;
    with ``element``, also the same equation for one element (matrix products as sums)."""
    out = _terms(g, (), anchored)
    out["shape"] = _gradient_shape(cell, g) if cell is not None else ""
    if element:
        index = ("j", "k") if g.summed and _is_matrix(g) else ("k",)
        out["element"] = _terms(g, index, False)
    return out


def _gradient_shape(cell, g) -> str:
    """The shape of a gradient's left side, in a document's notation: H \\times D."""
    v = naming.adjoint_of(g.lhs)
    if v is None:
        return ""
    if naming.parse(v) is None:
        return r" \times ".join(_tex_size(dim, True) for dim in cell.param(v.name).shape)
    return _tex_size(cell.dim(v), False)


def anchor(label: str) -> str:
    """The ``\\label`` key of an equation: its label, other characters spelled out."""
    return "eq:" + re.sub(r"[^A-Za-z0-9:._-]", lambda m: f"-{ord(m[0]):x}-", label)


def eqref(label: str) -> str:
    """A reference to the equation labelled ``label``: ``(fwd:c)``, linked."""
    return rf"\eqref{{{anchor(label)}}}"


def _terms(g, index, anchored=True) -> dict:
    terms = signed([latex(t.expr, g.origin, index) for t in g.terms])
    total = r"\sum_{t=1}^{T}"
    prefix, suffix = (rf"{total} \Big(", r"\Big)") if g.summed and len(terms) > 1 else \
        (f"{total} ", "") if g.summed else ("", "")
    lhs = latex(g.lhs, g.origin, index[-1:] if not g.summed or len(index) == 1 else "".join(index))
    if index and g.summed and len(index) == 2:
        lhs = naming.latex(g.lhs, index="jk")
    tag = r"\notag" if index else rf"\tag{{{tex_label(g.label)}}}" + \
        (rf"\label{{{anchor(g.label)}}}" if anchored else "")
    return dict(tag=tag, lhs=lhs, terms=terms, prefix=prefix, suffix=suffix, shape="")


def _is_matrix(g) -> bool:
    return any(t.expr.func.__name__ == "Outer" for t in g.terms)


def _is_state_step(g, d) -> bool:
    """A state's one-step adjoint is shown through time instead, with all its paths."""
    v = naming.adjoint_of(g.lhs)
    return g.label.startswith("adj:") and v in d.cell.new_states


def _paths(g, d, graph_) -> dict:
    """One entry per path: the equation it goes through, SymPy's local derivative, that
    derivative written through the forward outputs, and the term it adds to the sum."""
    v = naming.adjoint_of(g.lhs)
    rows = []
    for t in g.terms:
        via, _, later = t.via.partition("@")
        if via == LOSS:
            where, partial = "the loss", ""
        else:
            where = eqref(f"fwd:{via}") + (" at step $t+1$" if later else "")
            consumer = _consumer(d, via, later)
            partial = rf"\frac{{\partial {latex(consumer)}}}{{\partial {latex(v)}}}" \
                if consumer is not None and t.raw is not None else ""
        raw = latex(t.raw) if t.raw is not None else ""
        local = latex(t.local) if t.raw is not None else ""
        rows.append(dict(via=where, partial=partial, raw=raw if raw != local else "",
                         local=local, term=latex(t.expr)))
    return dict(label=eqref(g.label), lhs=latex(g.lhs), rows=rows, sum=_tex(g, anchored=False),
                graph=_highlight(graph_, graph_.downstream(v), v) if v in _nodes(graph_) else None)


def _consumer(d, via, later):
    lhs = next((eq.lhs for eq in d.cell.equations if eq.label == via), None)
    return naming.shift(lhs, 1) if lhs is not None and later else lhs


def _nodes(g):
    return {n.symbol for n in g.nodes}


def _tikz(g) -> dict:
    """Nodes and edges of the step's picture, drawn once per document (``\\stepgraph``);
    node k is styled ``n<k>`` and edge k ``e<k>``, so that a use can highlight some."""
    ids = {n.symbol: f"n{k}" for k, n in enumerate(g.nodes)}
    nodes = [dict(id=ids[n.symbol], x=f"{x:.2f}", y=f"{y:.2f}", label=naming.latex(n.symbol),
                  style=n.kind)
             for n in g.nodes for x, y in [position(n.col, n.y)]]
    edges = [dict(id=f"e{k}", src=ids[e.src], dst=ids[e.dst],
                  style="edge" + (", dashed" if not e.label else ""),
                  via=" -- ".join(f"({x:.2f},{y:.2f})" for x, y in route(g, e)[1:-1]))
             for k, e in enumerate(g.edges)]
    return dict(nodes=nodes, edges=edges)


def _highlight(g, edges, focus) -> str:
    """Options of one use of ``\\stepgraph``: ``edges`` as paths, ``focus`` framed."""
    styles = [f"e{k}/.style=sl-path" for k, e in enumerate(g.edges) if e in edges]
    styles += [f"n{k}/.style=sl-focus" for k, n in enumerate(g.nodes) if n.symbol == focus]
    return ", ".join(styles)


def _jacobian(j) -> dict:
    """∂s_t/∂s'_{t-1} as a sum of diag(a) M; a long factor is spread over several lines
    (with \\bigl( \\bigr), which may break). A Jacobian of another shape is named only."""
    lhs = rf"\frac{{\partial {latex(j.of)}}}{{\partial {latex(j.wrt)}}}"
    if j.terms is None:
        return dict(lhs=lhs, terms=None)
    lines = []
    for a, M in j.terms:
        more = _lines(a, r"\operatorname{diag}\bigl(", r"\bigr)" + ("" if M is None else
                                                                    " " + latex(M)))
        lines += [more[0] if not lines else f"+ {more[0]}", *more[1:]]
    return dict(lhs=lhs, terms=lines, tag=r"\notag", prefix="", suffix="")


def _lines(e, open_: str, close: str) -> list[str]:
    """``open_ e close`` on one line, or, when that is long, one line per term of e."""
    whole = latex(e)
    if len(whole) <= 90 or not isinstance(e, sp.Add):
        return [open_ + whole + close]
    parts = signed([latex(t) for t in sp.Add.make_args(e)])
    parts[0] = open_ + parts[0]
    parts[-1] = parts[-1] + close
    return parts



def _notation(cell):
    found = notation.table(cell.name)
    if found is None:
        return None
    header, rows = found
    names = {p.name for p in cell.params}
    rows = [r for r in rows if all(n in names for n in r[0].split(", ") if n.startswith("p_"))]
    return dict(header=[_escape(h) for h in header], rows=[[_cell(c) for c in r] for r in rows])


def _cell(text: str) -> str:
    if text == "—":
        return "---"
    if text.startswith("`"):
        return _tt(text.strip("`"))
    return ", ".join(f"${_math_name(n)}$" for n in re.split(r", (?![^\[]*\])", text))


def _math_name(name: str) -> str:
    name, flip = (name[:-1], r"^{\top}") if name.endswith("ᵀ") else (name, "")
    name, _, cols = name.partition("[")   # a block of columns, counted from 1: [:, 1:D]
    cols = "[" + ", ".join(r"\cdot" if part.strip() == ":" else part.strip().replace(":", "{:}")
                           for part in cols.rstrip("]").split(",")) + "]" if cols else ""
    return naming.latex(sp.Symbol(name)) + flip + cols


def _escape(text: str) -> str:
    return text.replace("_", r"\_").replace("&", r"\&")


def _comparison(base: Derivation, derivations) -> dict:
    """Which paths of the peephole LSTM's δc_t and δh_t each cell keeps, drops or adds."""
    def paths(d, state):
        g = next((x for x in d.through_time if x.label == f"rec:{state}"), None)
        if g is None:
            return None
        renames = notation.RENAMES.get(d.cell.name, {})
        return {_renamed_via(t.via, renames): _renamed(t.expr, renames) for t in g.terms}
    columns = []
    for state in ("c", "h"):
        vias = list(paths(base, state))
        extra = []
        for d in derivations:
            for via in (paths(d, state) or {}):
                if via not in vias and via not in extra:
                    extra.append(via)
        columns += [(state, v) for v in vias + extra]
    rows = []
    for d in derivations:
        marks = []
        for state, via in columns:
            mine, theirs = paths(d, state), paths(base, state)
            if mine is None or via not in mine:
                marks.append("" if mine is None else "--")
            elif via not in theirs:
                marks.append("+")
            else:
                marks.append(r"\checkmark" if mine[via] == theirs[via] else "$\\sim$")
        rows.append(dict(name=_tt(d.cell.name), marks=marks))
    heads = [rf"$\delta {state}_t$ via " + _via(via) for state, via in columns]
    return dict(heads=heads, rows=rows)


def _renamed_via(via: str, renames) -> str:
    name, at, later = via.partition("@")
    return renames.get(name, name) + at + later


def _renamed(expr, renames):
    """``expr`` in the peephole LSTM's names."""
    def rename(s):
        p = naming.parse(s)
        if p is None:
            return sp.Symbol(renames.get(s.name, s.name))
        return naming.timed(renames.get(p.base, p.base), p.shift, p.kind)
    return expr.xreplace({s: rename(s) for s in expr.free_symbols})


def _via(via: str) -> str:
    name, _, later = via.partition("@")
    return "loss" if name == "loss" else tex_label(name) + ("$^{+}$" if later else "")
