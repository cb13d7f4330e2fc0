"""Documents: the derivation of one cell (with its head, if any), the worked example and
the mistakes checked."""
from __future__ import annotations

import functools
import re

import sympy as sp

from .. import naming
from ..cell.ops import sigma
from ..cell.shipped import CELLS
from ..derivation.bptt import Derivation
from ..derivation.bptt import derive as derive_cell
from ..derivation.jacobians import chain, jacobians
from ..derivation.sweep import LOSS
from ..printers.table import signed
from ..printers.templates import REBUILD, environment
from ..printers.text import latex_text
from . import notation
from .drawing import _highlight, _tikz
from .latex import latex
from .layout import graph
from .lines import LINE_WIDTH, latex_lines, latex_width
from .tex import FIGURE_DIR, _is_matrix, _tex, _tex_size, _tt, broken, eqref, tex_about, tex_label


TEX_TEMPLATE = "latex/derivation.tex.jinja"


def latex_document(d: Derivation, head=None, rebuild: str | None = None) -> str:
    """The source of the derivation document for ``d.cell``; with ``head`` (a
    :class:`~symlstm.network.heads.HeadDerivation`), the document starts at the loss.  Its header
    names ``rebuild`` as the command that regenerates it, if given."""
    cell, g = d.cell, graph(d.cell)
    shipped = cell.name in CELLS and CELLS[cell.name]() == cell
    title = cell.title if cell.title.lower().endswith(" cell") or cell.title.lower() == "cell" \
        else f"{cell.title} cell"
    params = [_tex(x, cell, element=True) for x in d.params]
    return environment().get_template(TEX_TEMPLATE).render(
        shipped=shipped,
        template=TEX_TEMPLATE, rebuild=rebuild, cell=cell,
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
        flow=_flow(d),
        rnn_jacobians=_rnn_jacobians() if cell.name != "rnn" else [],
        states=", ".join(f"${naming.latex_base(n)}_t$" for n in cell.states),
        sizes=[(naming.latex_base(p.name), r" \times ".join(_tex_size(d, len(p.shape) > 1)
                                                            for d in p.shape))
               for p in cell.params],
        figures=FIGURE_DIR,
    )


def _head(h) -> dict:
    """The head's equations for the document, each gradient with its shape."""
    sizes = {base: "" if size == "1" else size for base, size in h.head.sizes.items()}

    def shaped(g, shape):
        return {**_tex(g), "shape": shape}
    return dict(
        title=latex_text(h.head.title),
        forward=[_tex(g) for g in h.forward],
        step=[shaped(g, sizes[naming.parse(g.lhs).base]) for g in h.step],
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
            out.append(dict(name=latex(eq.lhs),
                            where=", ".join(eqref(naming.label(naming.FORWARD, w)) for w in where)))
    return out


def _carried(d) -> list[dict]:
    """Each state that reaches itself at the next step through an element-wise factor (no
    weight matrix): the term of its recurrence that carries the gradient along that path."""
    out = []
    for s in d.cell.new_states:
        label = next(eq.label for eq in d.cell.equations if eq.lhs == s)
        rec = next((g for g in d.through_time if naming.adjoint_of(g.lhs) == s), None)
        term = next((t for t in (rec.terms if rec else ()) if (t.via, t.later) == (label, 1)),
                    None)
        if term is None or any(naming.parse(v) is None and d.cell.param(v.name).is_matrix
                               for v in term.local.free_symbols):
            continue
        out.append(dict(state=latex(s), rec=eqref(rec.label), term=latex(term.expr),
                        factor=latex(term.local), one=term.local == 1))
    return out


def _later(g) -> str:
    """The equations of step t+1 a recurrence's terms come through, as references."""
    vias = [t.via for t in g.terms if t.later == 1]
    return ", ".join(eqref(naming.label(naming.FORWARD, v)) for v in dict.fromkeys(vias))


@functools.lru_cache(maxsize=1)
def _rnn_jacobians() -> list[dict]:
    """The simple RNN's Jacobian, which every document compares its cell with."""
    return [_jacobian(j) for j in jacobians(derive_cell(CELLS["rnn"]()))]


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


def worked_document(e, rebuild: str = REBUILD) -> str:
    """The worked example's document, from :func:`symlstm.documents.worked.example`."""
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
        template=WORKED_TEMPLATE, rebuild=rebuild,
        title=f"A worked example: {T} steps of the {latex_text(cell.title)} with a "
              f"{latex_text(head.head.title)}",
        cell=_tt(cell.name), sizes=dict(T=T, D=D, H=H, K=K),
        equations=[_tex(g) for g in forward],
        params=[(naming.latex_base(k), vector(v)) for k, v in e.params.items()],
        inputs=[(t + 1, vector(e.x[t, 0]), vector(e.y[t, 0])) for t in range(T)],
        forward_rows=rows, loss=number(e.loss), backward=backward, grads=grads,
        central="10^{-6}")


def _path(term) -> str:
    """A term's path in running text: ``fwd:c`` at step t+1, or the loss."""
    return "the loss" if term.via == LOSS else \
        tex_label(naming.label(naming.FORWARD, term.via)) + (" at step $t+1$" if term.later else "")


def mistakes_document(claims, rebuild: str = REBUILD) -> str:
    """The document that judges each :class:`~symlstm.checks.seed_claims.SeedClaim` of ``claims``."""
    from ..checks.claims import check_claim, parse
    from ..network.heads import derive_network
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
                missing=[dict(term=latex(t.expr), via=_path(t)) for t in v.missing],
                extra=[latex(e) for e in v.extra]))
        texts.append(dict(number=number, about=about, entries=entries))
    return environment().get_template(MISTAKES_TEMPLATE).render(
        template=MISTAKES_TEMPLATE, rebuild=rebuild, texts=texts,
        counts=dict(total=len(claims), holds=holding))


def _is_state_step(g, d) -> bool:
    """A state's one-step adjoint is shown through time instead, with all its paths."""
    v = naming.adjoint_of(g.lhs)
    return g.kind == naming.STEP and v in d.cell.new_states


def _paths(g, d, graph_) -> dict:
    """One entry per path: the equation it goes through, SymPy's local derivative, that
    derivative written through the forward outputs, and the term it adds to the sum."""
    v = naming.adjoint_of(g.lhs)
    rows = []
    for t in g.terms:
        if t.via == LOSS:
            where, partial = "the loss", ""
        else:
            where = eqref(naming.label(naming.FORWARD, t.via)) + \
                (" at step $t+1$" if t.later else "")
            consumer = _consumer(d, t.via, t.later)
            partial = rf"\frac{{\partial {latex(consumer)}}}{{\partial {latex(v)}}}" \
                if consumer is not None and t.raw is not None else ""
        raw = latex(t.raw) if t.raw is not None else ""
        local = latex(t.local) if t.raw is not None else ""
        rows.append(dict(via=where, lines=_path_lines(partial, raw if raw != local else "",
                                                     local, latex(t.expr))))
    drawn = v in _nodes(graph_) and len(graph_.nodes) <= MAX_DRAWN
    return dict(label=eqref(g.label), lhs=latex(g.lhs), rows=rows, sum=_tex(g, anchored=False),
                graph=_highlight(graph_, graph_.downstream(v), v) if drawn else None)


#: The most nodes a step's graph may have for each variable's paths to be drawn in it (a
#: picture per variable: past that, they take TeX minutes and show little at that scale).
MAX_DRAWN = 30


def _path_lines(partial: str, raw: str, local: str, term: str) -> list[str]:
    """A path's row: ``∂y/∂v = raw = local, adds term``, on one line when it fits, else
    the derivative and the term on lines of their own."""
    derivative = f"{partial} = {raw + ' = ' if raw else ''}{local}" if partial else ""
    adds = rf"\text{{adds }} {term}"
    if latex_width(rf"{derivative},\quad {adds}") <= PATH_WIDTH:
        return [rf"{derivative},\quad {adds}" if derivative else adds]
    parts = [f"{partial} = {raw}", f"= {local},"] if raw else [f"{partial} = {local},"]
    return broken((parts if partial else []) + [adds], PATH_WIDTH)


#: What is left of a line beside "via (fwd:c) at step t+1:".
PATH_WIDTH = LINE_WIDTH - 12


def _consumer(d, via, later):
    lhs = next((eq.lhs for eq in d.cell.equations if eq.label == via), None)
    return naming.shift(lhs, later) if lhs is not None else lhs


def _nodes(g):
    return {n.symbol for n in g.nodes}


def _flow(d) -> list[dict]:
    """The one-step Jacobians for the document, by the state they start from: multiplied
    out (Σ diag(a) M) when every one from that state is short enough, else the chain of
    local Jacobians that gives them."""
    found = jacobians(d)
    out = []
    for prev in d.cell.prev_states:
        js = [j for j in found if j.wrt == prev]
        if not js:
            continue
        compact = [_jacobian(j) for j in js] if all(j.terms for j in js) else None
        if compact is not None and all(len(c["terms"]) <= MAX_LINES for c in compact):
            out.append(dict(wrt=latex(prev), compact=compact, chain=None))
        else:
            links = chain(d, prev)
            ends = ", ".join(f"${latex(j.of)}$" for j in js)
            out.append(dict(wrt=latex(prev), compact=None, ends=ends,
                            chain=[_link(link, prev) for link in links]))
    return out


#: The most lines a multiplied-out Jacobian may take in a document; a longer one is shown
#: as its chain of local Jacobians.
MAX_LINES = 8


def _partial(of, wrt) -> str:
    return rf"\frac{{\partial {latex(of)}}}{{\partial {latex(wrt)}}}"


def _jacobian(j) -> dict:
    """∂s_t/∂s'_{t-1} as a sum of diag(a) M, a long factor spread over several lines."""
    terms = [rf"\operatorname{{diag}}\left({latex(a)}\right)" + ("" if M is None else
                                                                " " + latex(M))
             for a, M in j.terms]
    return dict(lhs=_partial(j.of, j.wrt), terms=broken(signed(terms)), tag=r"\notag",
                prefix="", suffix="")


def _link(link, wrt) -> dict:
    """One equation's local Jacobians times the Jacobians of what it reads."""
    if link.blocks is not None:
        rows = r" \\ ".join("0" if not depends else "I" if w == wrt else _partial(w, wrt)
                              for w, depends in link.blocks)
        terms = [rf"\begin{{bmatrix}} {rows} \end{{bmatrix}}"]
    else:
        terms = latex_lines(" ".join(signed([_factor(a, M, w, wrt) for a, M, w in link.terms])))
    return dict(lhs=_partial(link.of, wrt), terms=terms,
                ref=eqref(naming.label(naming.FORWARD, link.via)))


def _factor(a, M, w, wrt) -> str:
    """diag(a) M ∂w/∂wrt, leaving out what is the identity."""
    parts = [rf"\operatorname{{diag}}\left({latex(a)}\right)" if a != 1 else "",
             latex(M) if M is not None else "", _partial(w, wrt) if w != wrt else ""]
    return " ".join(p for p in parts if p) or "I"


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
