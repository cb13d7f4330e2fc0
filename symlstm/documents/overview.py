"""The overview: every cell, and which backward terms each variant keeps, changes or adds."""
from __future__ import annotations

import sympy as sp

from .. import naming
from ..derivation.bptt import Derivation
from ..derivation.sweep import LOSS
from ..printers.templates import REBUILD, environment
from ..printers.text import latex_text
from . import notation
from .latex import latex
from .tex import FIGURE_DIR, _tex, _tt, tex_about


OVERVIEW_TEMPLATE = "latex/overview.tex.jinja"


def overview_document(derivations: list[Derivation], clip: float, others=(),
                      rebuild: str = REBUILD) -> str:
    """The document that links every cell and compares their backward passes with the
    peephole LSTM's (which ``derivations`` must hold); ``others`` are (name, description)
    of the other documents beside it, linked too."""
    base = next((d for d in derivations if d.cell.name == "peephole_lstm"), None)
    if base is None:
        raise ValueError("the overview compares every cell with peephole_lstm; include it")
    return environment().get_template(OVERVIEW_TEMPLATE).render(
        template=OVERVIEW_TEMPLATE, rebuild=rebuild,
        cells=[dict(name=d.cell.name, tex_name=_tt(d.cell.name), title=latex_text(d.cell.title),
                    about=tex_about(d.cell.about)) for d in derivations],
        reference=[_tex(x) for x in base.through_time],
        comparison=_comparison(base, derivations),
        others=[dict(name=name, tex_name=_tt(name), about=latex_text(about))
                for name, about in others],
        figures=FIGURE_DIR, clip=clip)


#: Shipped cells that compute another cell's function, only spelled differently (weights
#: stacked or transposed, variables renamed); tests/test_documents.py checks that they give
#: the same outputs for the same weights.
SPELLED = {"lstm_concat": ("lstm", r"the gates' weights stacked into one matrix on "
                                   r"$[x_t; h_{t-1}]$"),
           "lstm_rowmajor": ("lstm", r"row vectors, $X_t W + H_{t-1} U + b$, with the "
                                     r"activations written inside the gates")}


def _comparison(base: Derivation, derivations) -> dict:
    """Which terms of the peephole LSTM's δc_t and δh_t each cell with the same states keeps,
    changes or drops, and which it adds: a term is matched by the role of the equation it
    comes through (the same gate, the same state), not by its variable's letter."""
    states = set(base.cell.states)
    family = [d for d in derivations if set(d.cell.states) >= states
              and (d.cell.name in SPELLED or len(_new_roles(base, d)) <= MAX_NEW)]
    columns = []
    for state in ("c", "h"):
        for d in [base, *(d for d in family if d.cell.name not in SPELLED)]:
            for role in _terms(d, state):
                if (state, role) not in columns:
                    columns.append((state, role))
    rows, more = [], []
    for d in family:
        if d.cell.name in SPELLED:
            same, how = SPELLED[d.cell.name]
            rows.append(dict(name=_tt(d.cell.name), marks=None, same=_tt(same), how=how))
            continue
        marks = []
        for state, role in columns:
            mine, theirs = _terms(d, state), _terms(base, state)
            marks.append("--" if role not in mine else "new" if role not in theirs else
                         r"\checkmark" if mine[role] == theirs[role] else r"$\sim$")
        rows.append(dict(name=_tt(d.cell.name), marks=marks))
        extra = [x for x in d.through_time if x.name not in states]
        if extra:
            more.append(dict(name=_tt(d.cell.name), states=", ".join(
                f"${latex(naming.adjoint_of(x.lhs))}$" for x in extra),
                equations=[_tex(x, anchored=False) for x in extra]))
    heads = [rf"$\delta {state}_t$ via ${_role(base, family, state, role)}$"
             for state, role in columns]
    apart = [dict(name=_tt(d.cell.name), title=latex_text(d.cell.title),
                  equations=[_tex(x, anchored=False) for x in d.through_time])
             for d in derivations if d not in family]
    return dict(heads=heads, rows=rows, more=more, apart=apart)


#: A cell with more terms of its own than this is shown apart, its recurrences in full, so
#: that the table keeps to the page.
MAX_NEW = 2


def _new_roles(base, d) -> list:
    """The terms of ``d``'s δc_t and δh_t through equations whose role the base lacks."""
    return [role for state in ("c", "h") for role in _terms(d, state)
            if role not in _terms(base, state)]


def _terms(d, state) -> dict:
    """The terms of ``d``'s recurrence for ``state``, by role: (the equation's variable in
    the peephole LSTM's names, with a pre-activation and its gate sharing one role, steps
    later) -> the term in those names."""
    g = next((x for x in d.through_time if x.name == state), None)
    if g is None:
        return {}
    renames = notation.RENAMES.get(d.cell.name, {})
    return {(_role_name(renames.get(t.via, t.via)), t.later): _renamed(t.expr, renames)
            for t in g.terms}


def _role_name(via: str) -> str:
    """A pre-activation and the gate it feeds play one role: zbar and z are both the block
    input's (a cell without the activation reads the state in z itself)."""
    return via[:-3] if via.endswith("bar") and len(via) > 3 else via


def _role(base, family, state, role) -> str:
    """A column's role as the variable that reads the state: ℓ_t for the loss, else the
    variable of the peephole LSTM (or of the first cell that has it) at its step."""
    name, later = role
    if name == LOSS:
        return r"\ell_{t}"
    for d in [base, *family]:
        renames = notation.RENAMES.get(d.cell.name, {})
        for eq in d.cell.equations:
            if _role_name(renames.get(eq.label, eq.label)) == name:
                return latex(naming.shift(eq.lhs, later))
    return name


def _renamed(expr, renames):
    """``expr`` in the peephole LSTM's names."""
    def rename(s):
        p = naming.parse(s)
        if p is None:
            return sp.Symbol(renames.get(s.name, s.name))
        return naming.timed(renames.get(p.base, p.base), p.shift, p.kind)
    return expr.xreplace({s: rename(s) for s in expr.free_symbols})
