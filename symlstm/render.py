"""Rendering: a lowered plan, printed to strings, poured into the Jinja2 templates.

Returns text and never writes a file (that is :mod:`symlstm.build`'s job).  The
templates receive only pre-printed strings and loops.
"""
from __future__ import annotations

import functools
import textwrap
from pathlib import Path

import jinja2
import sympy as sp

from . import naming
from .bptt import Derivation
from .cell import CellError
from .lower import Plan, lower
from .ops import Transposed, matrix_param
from .cells import CELLS
from .graph import graph
from .jacobians import jacobians
from . import notation
from .cell import Latex
from .printers import comment, latex, latex_text, pycode, pycode_into, python_string, signed
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

def numpy_module(d: Derivation) -> str:
    """The source of the generated NumPy module for ``d.cell``."""
    plan = lower(d)
    cell = plan.cell
    if len(cell.inputs) != 1:
        raise CellError(f"cell {cell.name!r}: generated code takes exactly one input sequence, "
                        f"not {len(cell.inputs)}")
    return environment().get_template(PY_TEMPLATE).render(
        template=PY_TEMPLATE, rebuild=REBUILD, cell=cell, docstring=_docstring(cell),
        input_size=cell.inputs[next(iter(cell.inputs))],
        input=naming.code(cell.input_symbols[0]),
        params=[(p.name, _shape(p.shape)) for p in cell.params],
        states=[(n, dim) for n, dim in cell.states.items()],
        groups=[_group(g, plan) for g in plan.groups],
        forward=[_block(b, plan) for b in plan.forward],
        cached=[(naming.code(s), dim) for s, dim in plan.cached],
        backward=[_block(b, plan) for b in plan.backward],
        carries=[_block(b, plan) for b in plan.carries],
        vector_grads=[(name, cell.dim(sp.Symbol(name)), pycode(p.rhs, cell.inputs))
                      for p in plan.vector_grads
                      for name in [p.lhs.name[len(naming.ADJOINT):]]],
        input_grads=[pycode(s.rhs, cell.inputs) for s in plan.input_grads],
        matrix_grads=_matrix_grads(plan),
        summed_grads=[(name, str(buf), f"{'' if a == 0 else pycode(a)}:{pycode(b)}")
                      for name, buf, a, b in plan.summed_grads],
        summed_buffers=sorted({str(buf) for _, buf, _, _ in plan.summed_grads}),
        loads=_loads(plan),
    )


def _docstring(cell) -> str:
    """The module docstring, as a Python literal: the title and description are data."""
    about = "\n".join(textwrap.fill(p, 92) for p in cell.about.split("\n")) if cell.about else ""
    text = (f"{cell.title}: forward pass and backpropagation through time, in NumPy.\n\n"
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


def _block(b, plan: Plan) -> dict:
    """Printed statements of one block, with the comment that ties them to the document."""
    inputs, lines = plan.cell.inputs, []
    for s in b.stmts:
        if s.into is None:
            lines.append(f"{pycode(s.lhs, inputs)} = {pycode(s.rhs, inputs)}")
        else:   # name the slot, then fill it in place
            lines += [f"{pycode(s.lhs, inputs)} = {pycode(s.into, inputs)}",
                      pycode_into(s.lhs, s.rhs, inputs)]
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

def latex_document(d: Derivation) -> str:
    """The source of the derivation document for ``d.cell``."""
    cell, g = d.cell, graph(d.cell)
    shipped = cell.name in CELLS and CELLS[cell.name]() == cell
    return environment().get_template(TEX_TEMPLATE).render(
        shipped=shipped,
        template=TEX_TEMPLATE, rebuild=REBUILD, cell=cell,
        title=latex_text(cell.title if cell.title.lower().endswith(" cell") or
                         cell.title.lower() == "cell" else f"{cell.title} cell"),
        about=tex_about(cell.about), tex_name=_tt(cell.name),
        notation=_notation(cell),
        graph=_tikz(g),
        forward=[_tex(x) for x in d.forward],
        paths=[_paths(x, d, g) for x in (*d.through_time, *d.step) if not _is_state_step(x, d)],
        step=[_tex(x) for x in d.step],
        through_time=[_tex(x, element=True) for x in d.through_time],
        inputs=[_tex(x, element=True) for x in (*d.inputs, *d.initial)],
        params=[_tex(x, element=True) for x in d.params],
        jacobians=[_jacobian(j) for j in jacobians(d)],
        rnn_jacobians=_rnn_jacobians() if cell.name != "rnn" else [],
        states=", ".join(f"${naming.latex_base(n)}_t$" for n in cell.states),
        sizes=[(naming.latex_base(p.name), r" \times ".join(_tex_size(d, len(p.shape) > 1)
                                                            for d in p.shape))
               for p in cell.params],
        figures=FIGURE_DIR,
    )


@functools.lru_cache(maxsize=1)
def _rnn_jacobians() -> list[dict]:
    """The simple RNN's Jacobian, which every document compares its cell with."""
    return [_jacobian(j) for j in jacobians(derive_cell(CELLS["rnn"]()))]


def overview_document(derivations: list[Derivation], clip: float) -> str:
    """The document that links every cell and compares their backward passes with the
    peephole LSTM's (which ``derivations`` must hold)."""
    base = next((d for d in derivations if d.cell.name == "peephole_lstm"), None)
    if base is None:
        raise ValueError("the overview compares every cell with peephole_lstm; include it")
    return environment().get_template(OVERVIEW_TEMPLATE).render(
        template=OVERVIEW_TEMPLATE, rebuild=REBUILD,
        cells=[dict(name=d.cell.name, tex_name=_tt(d.cell.name), title=latex_text(d.cell.title),
                    about=tex_about(d.cell.about), recurrences=[_tex(x) for x in d.through_time])
               for d in derivations],
        comparison=_comparison(base, derivations),
        figures=FIGURE_DIR, clip=clip)


FIGURE_DIR = "fig"   # beside the .tex: a document reads nothing outside its folder


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


def _tex(g, element: bool = False) -> dict:
    """An equation as its left side and one LaTeX string per term (signs kept); with
    ``element``, also the same equation for one element (matrix products as sums)."""
    out = _terms(g, ())
    if element:
        index = ("j", "k") if g.summed and _is_matrix(g) else ("k",)
        out["element"] = _terms(g, index)
    return out


def _terms(g, index) -> dict:
    terms = signed([latex(t.expr, g.origin, index) for t in g.terms])
    total = r"\sum_{t=1}^{T} \sum_{b=1}^{B}" if index and g.summed else r"\sum_{t=1}^{T}"
    prefix, suffix = (rf"{total} \Big(", r"\Big)") if g.summed and len(terms) > 1 else \
        (f"{total} ", "") if g.summed else ("", "")
    lhs = latex(g.lhs, g.origin, index[-1:] if not g.summed or len(index) == 1 else "".join(index))
    if index and g.summed and len(index) == 2:
        lhs = naming.latex(g.lhs, index="jk")
    tag = rf"\tag{{{tex_label(g.label)}}}" if not index else r"\notag"
    return dict(tag=tag, lhs=lhs, terms=terms, prefix=prefix, suffix=suffix)


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
            where = tex_label(f"fwd:{via}") + (" at step $t+1$" if later else "")
            consumer = _consumer(d, via, later)
            partial = rf"\frac{{\partial {latex(consumer)}}}{{\partial {latex(v)}}}" \
                if consumer is not None and t.raw is not None else ""
        raw = latex(t.raw) if t.raw is not None else ""
        local = latex(t.local) if t.raw is not None else ""
        rows.append(dict(via=where, partial=partial, raw=raw if raw != local else "",
                         local=local, term=latex(t.expr)))
    return dict(label=tex_label(g.label), lhs=latex(g.lhs), rows=rows, sum=_tex(g),
                graph=_tikz(graph_, graph_.downstream(v), v) if v in _nodes(graph_) else None)


def _consumer(d, via, later):
    lhs = next((eq.lhs for eq in d.cell.equations if eq.label == via), None)
    return naming.shift(lhs, 1) if lhs is not None and later else lhs


def _nodes(g):
    return {n.symbol for n in g.nodes}


def _tikz(g, highlight=frozenset(), focus=None) -> dict:
    """Node positions, labels and edge styles for the TikZ macro; ``highlight`` in red."""
    ids = {n.symbol: f"n{k}" for k, n in enumerate(g.nodes)}
    height = {}
    for n in g.nodes:
        height[n.col] = max(height.get(n.col, 0), n.row + 1)
    nodes = []
    for n in g.nodes:
        y = (height[n.col] - 1) / 2 - n.row
        label = naming.latex(naming.timed(n.symbol.name.split("[")[0], 0)) + r"\to" \
            if n.kind == "next" else naming.latex(n.symbol)
        style = "focus" if n.symbol == focus else n.kind
        nodes.append(dict(id=ids[n.symbol], x=f"{1.55 * n.col:.2f}", y=f"{0.9 * y:.2f}",
                          label=label, style=style))
    edges = [dict(src=ids[e.src], dst=ids[e.dst],
                  style=("path" if e in highlight else "edge") + (", dashed" if not e.label else ""))
             for e in g.edges]
    return dict(nodes=nodes, edges=edges)


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
    return ", ".join(f"${_math_name(n)}$" for n in text.split(", "))


def _math_name(name: str) -> str:
    name, flip = (name[:-1], r"^{\top}") if name.endswith("ᵀ") else (name, "")
    name, _, cols = name.partition("[")
    cols = "[" + cols.replace(":", "{:}").replace(",", r",\,") if cols else ""
    return naming.latex(sp.Symbol(name)) + flip + cols


def _escape(text: str) -> str:
    return text.replace("_", r"\_").replace("&", r"\&")


def _comparison(base: Derivation, derivations) -> dict:
    """Which paths of the peephole LSTM's δc_t and δh_t each cell keeps, drops or adds."""
    def paths(d, state):
        g = next((x for x in d.through_time if x.label == f"rec:{state}"), None)
        return {t.via: t for t in g.terms} if g is not None else None
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
                marks.append(r"\checkmark" if mine[via].expr == theirs[via].expr else "$\\sim$")
        rows.append(dict(name=_tt(d.cell.name), marks=marks))
    heads = [rf"$\delta {state}_t$ via " + _via(via) for state, via in columns]
    return dict(heads=heads, rows=rows)


def _via(via: str) -> str:
    name, _, later = via.partition("@")
    return "loss" if name == "loss" else tex_label(name) + ("$^{+}$" if later else "")
