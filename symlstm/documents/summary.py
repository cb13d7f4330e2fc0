"""The summary a cell document opens with: the forward and backward passes with their
shapes, the cell unrolled over three steps, and the sweep as pseudo-code."""
from __future__ import annotations

import sympy as sp

from .. import naming
from ..cell.matrices import per_head_parts
from ..cell.ops import RowSum, halfstep, headsum, sigma
from ..cell.parts import CHANNEL_MATRIX, CHANNEL_SHAPE, HEAD_MATRIX
from ..derivation.bptt import Derivation
from .latex import latex
from .lines import LINE_WIDTH, latex_width
from .tex import _tex, _tex_size, anchor, eqref, tex_label


def summary(d: Derivation) -> dict:
    """Everything the summary prints, as LaTeX strings: each equation of the derivation
    appears here once, labelled, and the sections after it refer to it."""
    cell = d.cell
    groups = dict(forward=rows(d, d.forward, shapes=False), step=rows(d, d.step, shapes=False),
                  through_time=rows(d, d.through_time, shapes=False), inputs=rows(d, d.inputs),
                  params=rows(d, d.params))
    return dict(
        **groups,
        boxed=all(_lines(g) <= MAX_BOXED_LINES for g in groups.values()),
        params_by_shape=_params_by_shape(cell),
        shapes=_shapes(d),
        logistic=any(eq.rhs.atoms(sigma) for eq in cell.equations),
        tanh=any(eq.rhs.atoms(sp.tanh) for eq in cell.equations),
        halfstep=any(t.expr.atoms(halfstep) for g in d.all() for t in g.terms),
        heads=None if "N" in d.cell.dims else _heads(d),
        channels=_channels(d),
        unrolled=_unrolled(cell),
        loops=_loops(d))


#: A box cannot break across pages: a group of equations longer than this (a cell whose
#: equations run over many lines) is set unboxed, so that the page can break inside it.
MAX_BOXED_LINES = 36


def _lines(group) -> int:
    """How many lines a group of rows takes: each row as tall as its tallest equation."""
    return sum(max(1 + len(e["more"]) for e in row) for row in group)


def packed(e: dict, width: float = LINE_WIDTH) -> dict:
    """An equation with as many of its terms on each line as fit (the derivation sets one
    term a line, which a summary cannot afford)."""
    lines: list[str] = []
    for line in e["terms"]:
        if lines and not line.startswith(r"\qquad") and \
                latex_width(f"{lines[-1]} {line}") <= width:
            lines[-1] = f"{lines[-1]} {line}"
        else:
            lines.append(line)
    return {**e, "terms": lines}


def _shapes(d) -> list[tuple[str, str]]:
    """The vectors of one step grouped by size: [("x_t", "D"), ("z_t, …, h_t", "H")]."""
    cell, groups = d.cell, {}
    for v in (*cell.input_symbols, *cell.prev_states, *(g.lhs for g in d.forward)):
        groups.setdefault(_tex_size(cell.dim(v), False), []).append(latex(v))
    # a break is allowed after each comma: forty vectors of one size are longer than a line
    return [(", \\allowbreak ".join(names), size) for size, names in groups.items()]


def _heads(d) -> dict | None:
    """The cell's matrices and numbers per head, as names in a sentence, and whether a sum
    within a head appears (None for a cell without them)."""
    cell = d.cell
    if not per_head_parts(cell):
        return None
    found = {HEAD_MATRIX: [], "NH": []}
    for v in (*cell.prev_states, *(g.lhs for g in d.forward)):
        if cell.dim(v) in found:
            found[cell.dim(v)].append(f"${latex(v)}$")
    return dict(matrices=_listed(found[HEAD_MATRIX]), one_matrix=len(found[HEAD_MATRIX]) == 1,
                numbers=_listed(found["NH"]),
                sums=any(t.expr.atoms(headsum) for g in d.all() for t in g.terms))


def _channels(d) -> dict | None:
    """The cell's matrices per channel (H × N), as names in a sentence, and whether a row's
    sum appears (None for a cell without them)."""
    cell = d.cell
    if "N" not in cell.dims:
        return None
    found = [f"${latex(v)}$" for v in (*cell.prev_states, *(g.lhs for g in d.forward))
             if cell.dim(v) == CHANNEL_MATRIX]
    found += [f"${naming.latex_base(p.name)}$" for p in cell.params if p.shape == CHANNEL_SHAPE]
    return dict(matrices=_listed(found), one_matrix=len(found) == 1,
                sums=any(t.expr.atoms(RowSum) for g in d.all() for t in g.terms))


def _listed(names: list[str]) -> str:
    """Names in a sentence: "a", "a and b", "a, b and c"."""
    return " and ".join(filter(None, [", ".join(names[:-1]), *names[-1:]]))


def _params_by_shape(cell) -> list[tuple[str, str]]:
    """The parameters grouped by shape: [(["W_z", "W_i"], "H \\times D"), ...]."""
    groups: dict[str, list[str]] = {}
    for p in cell.params:
        shape = r" \times ".join(_tex_size(dim, len(p.shape) > 1) for dim in p.shape)
        groups.setdefault(shape, []).append(naming.latex_base(p.name))
    return [(names, shape) for shape, names in groups.items()]


def rows(d, gradients, shapes: bool = True) -> list[list[dict]]:
    """Equations up to three to a row where they fit on one line, each with its label
    (``\\eqtag``, since a row of several cannot carry several tags) and, with ``shapes``, its
    shape; a sum over time is written small, as in running text."""
    out = []
    for g in gradients:
        e = packed(_tex(g, d.cell))
        prefix = e["prefix"].replace(r"\sum_{t=1}^{T}", r"\textstyle\sum_{t}")
        one = dict(lhs=e["lhs"], first=prefix + e["terms"][0], more=e["terms"][1:],
                   suffix=e["suffix"], shape=e["shape"] if shapes else "",
                   key=anchor(g.label), tag=tex_label(g.label))
        width = max(latex_width(f"{one['lhs']} = {t}") for t in e["terms"]) + \
            (max(8, 5 + latex_width(one["shape"])) if one["shape"] else 0) + len(g.label) + 4
        # ∈ ℝ^shape (a per-head shape is long), and the label in typewriter type
        last = out[-1] if out else None
        if last and len(last) < 3 and not last[0]["more"] and not one["more"] and \
                sum(e["width"] + BETWEEN for e in last) + width <= ROW_WIDTH:
            last.append({**one, "width": width})
        else:
            out.append([{**one, "width": width}])
    return out


#: The width (in :func:`~symlstm.printers.latex_width`'s characters) of the equations that
#: share a row of the summary, with their shapes and labels (a row estimated at 86, mLSTM's
#: δW_v and δW_o, overran the line by 3.5 pt).
ROW_WIDTH = 85
BETWEEN = 11    # the space between two equations of a row, and the second one's label's


def _unrolled(cell) -> dict:
    """The cell over steps t-1, t and t+1 (cm): each state passed forward from step to step
    above its row's middle, its adjoint passed back below it (their names staggered, so that
    rows can lie close), the input entering each step and the loss leaving it."""
    n, gap = len(cell.states), 0.6
    steps = [dict(x=f"{STEP_X * k:.2f}", name=name) for k, name in enumerate(("t-1", "t", "t+1"))]
    arrows = []
    for row, state in enumerate(cell.states):
        y = gap * (n - 1) / 2 - gap * row
        for k in range(-1, 3):   # from step k to step k+1, k = -1 and 2 leaving the picture
            left = STEP_X * k + BOX if k >= 0 else -BOX - OUTSIDE
            right = STEP_X * (k + 1) - BOX if k < 2 else STEP_X * 2 + BOX + OUTSIDE
            name = _at(state, k - 1)
            arrows.append(dict(x0=f"{left:.2f}", x1=f"{right:.2f}", y=f"{y + 0.1:.2f}",
                               label=name, style="sl-edge", side="above, pos=0.3"))
            arrows.append(dict(x0=f"{right:.2f}", x1=f"{left:.2f}", y=f"{y - 0.1:.2f}",
                               label=rf"\carry{{{name}}}", style="sl-back", side="below, pos=0.3"))
    height = gap * n + 0.3
    return dict(steps=steps, arrows=arrows, height=f"{height:.2f}",
                below=f"{-height / 2 - 0.6:.2f}", above=f"{height / 2 + 0.75:.2f}",
                output=naming.latex_base(cell.output),
                input=naming.latex_base(next(iter(cell.inputs))))


STEP_X = 4.6     # cm between the steps' centres
BOX = 0.8        # half a step's width (cm)
OUTSIDE = 2.2    # cm of the arrows to and from the steps outside the picture


def _at(state: str, shift: int) -> str:
    """A state's name at step t + shift: h_{t-1}, h_{t}, h_{t+1}."""
    return rf"{naming.latex_base(state)}_{{t{shift:+d}}}" if shift else \
        rf"{naming.latex_base(state)}_{{t}}"


def _loops(d) -> dict:
    """The equations the generated code's two loops compute, as references in its order:
    a run of several as its first and last."""
    def refs(gs):
        gs = list(gs)
        if len(gs) > 2:
            return f"{eqref(gs[0].label)} to {eqref(gs[-1].label)}"
        return " and ".join(eqref(g.label) for g in gs)
    return dict(forward=refs(d.forward), step=refs(d.step), through_time=refs(d.through_time),
                inputs=refs(d.inputs), initial=refs(d.initial), params=refs(d.params))
