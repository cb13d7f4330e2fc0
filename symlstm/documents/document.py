"""Documents: the derivation of one cell (with its head, if any), the worked example and
the mistakes checked."""
from __future__ import annotations

import functools
import re

import numpy as np
import sympy as sp

from .. import naming
from ..cell.matrices import per_head_parts
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
from .batched import batched
from .differentials import differential_flow
from .drawing import _tikz
from .latex import latex
from .layout import graph
from .lines import LINE_WIDTH, latex_lines, latex_width
from .summary import summary
from .tex import (FIGURE_DIR, _is_matrix, _tex, _tex_size, _tt, broken, eqref, matrix_states,
                  tex_about, tex_remarks)


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
        about=tex_about(cell.about), remarks=tex_remarks(cell.about), tex_name=_tt(cell.name),
        notation=_notation(cell),
        graph=_tikz(g),
        forward=[_tex(x, cell) for x in d.forward],
        gates=_gates(cell),
        carried=_carried(d),
        summary=summary(d),
        paths=[_paths(x, d) for x in (*d.through_time, *d.step) if not _is_state_step(x, d)],
        through_time=[dict(label=eqref(x.label), lhs=latex(x.lhs), reads=_later(x),
                           element=_tex(x, cell, element=True)["element"])
                      for x in d.through_time],
        inputs=[_tex(x, cell, element=True)["element"]
                for x in (*d.inputs, *(() if matrix_states(cell) else d.initial))],
        initial=[_tex(x, cell) for x in d.initial],
        param_elements=[e["element"] for e, p in sorted(zip(params, d.params),
                                                        key=lambda ep: not _is_matrix(ep[1]))],
        flow=_flow(d),
        matrix_flow=differential_flow(d),
        rnn_jacobians=_rnn_jacobians() if cell.name != "rnn" else [],
        states=", ".join(f"${naming.latex_base(n)}_t$" for n in cell.states),
        hidden_states=", ".join(f"${naming.latex_base(n)}_t$" for n, dim in cell.states.items()
                                if dim == "H"),
        output=naming.latex_base(cell.output), output_is_state=cell.output_is_state,
        extra_inputs=", ".join(f"${naming.latex_base(n)}_t$" for n in list(cell.inputs)[1:]),
        sizes=[(naming.latex_base(p.name), r" \times ".join(_tex_size(d, len(p.shape) > 1)
                                                            for d in p.shape))
               for p in cell.params],
        heads=[f"${naming.latex_base(p.name)}$" for p in cell.params if p.is_heads],
        figures=FIGURE_DIR,
        batched=batched(d, head),
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
        matrices = {p.name for p in d.cell.params if p.is_matrix}   # not a size in a part's bounds
        if term is None or any(naming.parse(v) is None and v.name in matrices
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


WORKED_TEMPLATE = "latex/worked.tex.jinja"


def worked_document(e, rebuild: str = REBUILD) -> str:
    """The worked example's document, from :func:`symlstm.documents.worked.example`."""
    from ..checks.seed_claims import TITLES
    from .worked import D, H, K, T, number, vector
    n = e.network
    cell, head = n.cell.cell, n.head
    forward = [*n.cell.forward, *head.forward]
    rows = [(latex(g.lhs), [vector(step.values[g.lhs]) for step in e.forward]) for g in forward]
    gradients = {g.lhs: g for g in n.all()}
    backward = [dict(t=step.t, rows=[_worked_row(gradients[s], v, str(step.t), step.t == T)
                                     for s, v in step.values.items()],
                     zeros=_zeros(e.zeros.get(step.t, ()), str(step.t)),
                     cut=_cut(gradients, step) if step.t == T else [])
                for step in e.backward]
    grads = [(latex(g.lhs), latex(g.rhs), vector(e.grads[naming.adjoint_of(g.lhs).name]))
             for g in (*head.params, *n.cell.params)]
    terms = [dict(lhs=latex(g.lhs), terms=[vector(v) for v in e.terms[name]],
                  total=vector(e.grads[name]), wide=np.ndim(e.grads[name]) > 1,
                  zero=[t + 1 for t, v in enumerate(e.terms[name]) if not np.any(v)])
             for g in (*head.params, *n.cell.params)
             for name in [naming.adjoint_of(g.lhs).name]]
    initial = [_worked_row(g, e.initial.values[g.lhs], "1", False) for g in n.cell.initial]
    fd, update = e.difference, e.update
    entry = f"{naming.latex_base(fd['name'])}[{fd['at'][0] + 1}, {fd['at'][1] + 1}]"
    return environment().get_template(WORKED_TEMPLATE).render(
        template=WORKED_TEMPLATE, rebuild=rebuild,
        title=f"A worked example: {T} steps of the {latex_text(cell.title)} with a "
              f"{latex_text(head.head.title)}",
        cell=_tt(cell.name), sizes=dict(T=T, D=D, H=H, K=K),
        equations=[_tex(g) for g in forward],
        params=[(naming.latex_base(k), vector(v)) for k, v in e.params.items()],
        inputs=[(t + 1, vector(e.x[t, 0]), vector(e.y[t, 0])) for t in range(T)],
        forward_rows=rows, loss=number(e.loss), backward=backward, grads=grads, terms=terms,
        initial=initial, seed=latex_text(TITLES["001"]), zero_terms=_zero_terms(terms),
        difference=dict(entry=entry, epsilon=f"10^{{{int(np.log10(fd['epsilon']))}}}",
                        plus=_digits(fd["plus"]), minus=_digits(fd["minus"]),
                        estimate=_digits(fd["estimate"]), gradient=_digits(fd["gradient"])),
        update=dict(rate=number(update["rate"]), before=number(update["before"]),
                    after=number(update["after"]),
                    params=[(naming.latex_base(k), vector(v))
                            for k, v in update["params"].items()]),
        central="10^{-6}")


def _worked_row(g, value, origin: str, last: bool) -> tuple[str, str, str]:
    """An equation of the backward pass read at step ``origin``, and its value; at the last
    step, without the terms from the step after it, which does not exist.  The right side
    is left out where it is the value itself (δℓ_t = 1)."""
    from .worked import vector
    rhs = sp.Add(*(t.expr for t in g.terms if not (last and t.later)))
    shown = latex(rhs, origin)
    return latex(g.lhs, origin), "" if shown == vector(value) else shown, vector(value)


def _cut(gradients, step) -> list[dict]:
    """The gradients that lose their terms from step t+1 at the last step, and what is left
    when that is a single vector (δh_T = Δh_T)."""
    out = []
    for s in step.values:
        g = gradients[s]
        if any(t.later for t in g.terms):
            left = sp.Add(*(t.expr for t in g.terms if not t.later))
            out.append(dict(name=latex(s, str(step.t)),
                            left=latex(left, str(step.t)) if left.is_Symbol else ""))
    return out


def _zeros(found, origin: str) -> list[str]:
    """Why a gradient is zero at a step: the vector it reads that is zero there."""
    return [f"${latex(lhs, origin)} = 0$ because "
            + " and ".join(f"${latex(s, origin)} = 0$" for s in why)
            for lhs, why in found if why]


def _zero_terms(terms) -> str:
    """The per-step parameter terms that are zero, in a sentence."""
    zero = [f"${g['lhs']}$ at $t = {', '.join(map(str, g['zero']))}$" for g in terms if g["zero"]]
    if not zero:
        return ""
    return (f"The term{'s' if len(zero) > 1 else ''} of {', '.join(zero)} "
            f"{'are' if len(zero) > 1 else 'is'} zero, because the gradients "
            f"{'they read are' if len(zero) > 1 else 'it reads is'} zero there (see the step).")


def _digits(v: float) -> str:
    """A number to ten significant digits, for a difference that needs them."""
    return f"{float(v):.10g}".replace("-", "{-}")


def _is_state_step(g, d) -> bool:
    """A state's one-step adjoint is shown through time instead, with all its paths."""
    v = naming.adjoint_of(g.lhs)
    return g.kind == naming.STEP and v in d.cell.new_states


def _paths(g, d) -> dict:
    """One entry per term: the equation that reads the variable, SymPy's local derivative,
    that derivative written through the forward outputs, and the term it adds to the sum;
    with the picture of those equations, each an edge into the variable."""
    v = naming.adjoint_of(g.lhs)
    rows, readers = [], []
    for t in g.terms:
        readers.append(_reader(d, t))
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
    return dict(label=eqref(g.label), lhs=latex(g.lhs), rows=rows,
                star=dict(focus=latex(v), readers=[
                    {**r, "y": f"{READER_GAP * ((len(readers) - 1) / 2 - k):.2f}"}
                    for k, r in enumerate(readers)]))


READER_GAP = 0.85   # cm between the equations that read a variable, in its picture


def _reader(d, term) -> dict:
    """The node a term comes from in a variable's picture: the result of the equation that
    reads the variable (at step t+1 for a recurrence's term), or the step's loss."""
    if term.via == LOSS:
        return dict(label=r"\ell_{t}", style="loss")
    consumer = _consumer(d, term.via, term.later)
    return dict(label=latex(consumer), style="next" if term.later else "step")


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


def _flow(d) -> list[dict]:
    """The one-step Jacobians for the document, by the state they start from: multiplied
    out (Σ diag(a) M) when every one from that state is short enough, else the chain of
    local Jacobians that gives them."""
    if matrix_states(d.cell):   # maps of matrices, which diag(a) M does not write
        return []
    found = jacobians(d)
    heads = bool(per_head_parts(d.cell))   # a number per head scales a head's entries
    out = []
    for prev in d.cell.prev_states:
        js = [j for j in found if j.wrt == prev]
        if not js:
            continue
        compact = [_jacobian(j) for j in js] if all(j.terms for j in js) and not heads \
            else None
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
    found = notation.document_table(cell)
    if found is None:
        return None
    header, rows = found
    return dict(header=[_escape(h) for h in header], rows=[[_cell(c) for c in r] for r in rows],
                columns=_columns(header, rows))


def _columns(header, rows) -> str:
    """The table's columns at body size: the first as wide as it needs, the others sharing
    the line in proportion to their longest entry (a long name wraps at its spaces)."""
    longest = [max(len(str(r[k])) for r in [header, *rows]) for k in range(1, len(header))]
    share = [len(longest) * n / sum(longest) for n in longest]
    return "l" + "".join(rf">{{\hsize={f:.2f}\hsize\raggedright\arraybackslash}}X"
                         for f in share)


def _cell(text: str) -> str:
    if text == "—":
        return "---"
    if text.startswith("`"):   # a PyTorch slice may break before its brackets and after "+"
        return _tt(text.strip("`")).replace("[", r"\allowbreak[").replace("+ ", r"+ \allowbreak ")
    return ", ".join(f"${_math_name(n)}$" for n in re.split(r", (?![^\[]*\])", text))


def _math_name(name: str) -> str:
    name, flip = (name[:-1], r"^{\top}") if name.endswith("ᵀ") else (name, "")
    name, _, cols = name.partition("[")   # a block of columns, counted from 1: [:, 1:D]
    cols = "[" + ", ".join(r"\cdot" if part.strip() == ":" else part.strip().replace(":", "{:}")
                           for part in cols.rstrip("]").split(",")) + "]" if cols else ""
    return naming.latex(sp.Symbol(name)) + flip + cols


def _escape(text: str) -> str:
    return text.replace("_", r"\_").replace("&", r"\&")
