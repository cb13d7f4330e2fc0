"""The overview: every cell, and which backward terms each variant keeps, changes or adds."""
from __future__ import annotations

import sympy as sp

from .. import naming
from ..derivation.bptt import Derivation
from ..derivation.sweep import LOSS
from ..printers.templates import REBUILD, environment
from ..printers.text import latex_text
from . import notation
from .tex import FIGURE_DIR, _tex, _tt, tex_about, tex_label


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


def _comparison(base: Derivation, derivations) -> dict:
    """Which paths of the peephole LSTM's δc_t and δh_t each cell keeps, drops or adds."""
    def paths(d, state):
        g = next((x for x in d.through_time if x.name == state), None)
        if g is None:
            return None
        renames = notation.RENAMES.get(d.cell.name, {})
        return {(renames.get(t.via, t.via), t.later): _renamed(t.expr, renames) for t in g.terms}
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


def _renamed(expr, renames):
    """``expr`` in the peephole LSTM's names."""
    def rename(s):
        p = naming.parse(s)
        if p is None:
            return sp.Symbol(renames.get(s.name, s.name))
        return naming.timed(renames.get(p.base, p.base), p.shift, p.kind)
    return expr.xreplace({s: rename(s) for s in expr.free_symbols})


def _via(path: tuple[str, int]) -> str:
    """A path (equation, steps later) as a column head: the loss, or ``c`` with ⁺ at t+1."""
    name, later = path
    return "loss" if name == LOSS else tex_label(name) + ("$^{+}$" if later else "")
