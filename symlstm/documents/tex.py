"""LaTeX pieces every document uses: equations as tagged, labelled rows of terms, names in
typewriter type, sizes."""
from __future__ import annotations

import re

from .. import naming
from ..cell.parts import CHANNEL_MATRIX, HEAD_MATRIX, Latex
from ..printers.table import signed
from ..printers.text import latex_text
from .latex import latex
from .lines import LINE_WIDTH, latex_lines


def _tex_size(dim: str, product: bool) -> str:
    """A size in a document: ``2H + 1``, in parentheses inside a product (H × (D + H))."""
    if dim == HEAD_MATRIX:   # one H/NH × H/NH matrix per head
        return r"N_h \times H/N_h \times H/N_h"
    if dim == CHANNEL_MATRIX:   # a row of N per channel
        return r"H \times N"
    text = dim.replace("*", "").replace("NH", "N_h")   # the number of heads
    return f"({text})" if product and "+" in text else text


FIGURE_DIR = "fig"   # beside the .tex: a document reads nothing outside its folder


def _tt(text: str) -> str:
    """Typewriter text, escaped; ``\\char95`` is the typewriter font's own underscore, which
    survives copy and paste (``\\_`` draws a rule)."""
    return rf"\texttt{{{latex_text(text).replace(chr(92) + '_', chr(92) + 'char95{}')}}}"


def tex_about(about: str) -> str:
    """A cell's description, its first paragraph (the paragraphs after a blank line are
    :func:`tex_remarks`): LaTeX as given when it is :class:`~symlstm.cell.Latex`, else
    plain text, escaped; a quotation in straight double quotes opens with TeX's opening
    quotes (``...''), which a straight quote would not give."""
    return _tex_text(type(about)(about.split("\n\n")[0]))


def tex_remarks(about: str) -> str:
    """The paragraphs of a cell's description after its first (empty when it has one): the
    document prints them after the recurrences through time, the overview leaves them out."""
    rest = about.split("\n\n")[1:]
    return "\n\n".join(_tex_text(type(about)(r)) for r in rest)


def _tex_text(about: str) -> str:
    if isinstance(about, Latex):
        return re.sub(r'"([^"$]*)"', r"``\1''", str(about))
    return re.sub(r"''(.*?)''", r"``\1''", latex_text(about))


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
    terms = broken(signed([latex(t.expr, g.origin, index) for t in g.terms]))
    total = r"\sum_{t=1}^{T}"
    prefix, suffix = (rf"{total} \Big(", r"\Big)") if g.summed and len(terms) > 1 else \
        (f"{total} ", "") if g.summed else ("", "")
    lhs = latex(g.lhs, g.origin, index[-1:] if not g.summed or len(index) == 1 else "".join(index))
    if index and g.summed and len(index) == 2:
        lhs = naming.latex(g.lhs, index="jk")
    tag = r"\notag" if index else rf"\tag{{{tex_label(g.label)}}}" + \
        (rf"\label{{{anchor(g.label)}}}" if anchored else "")
    return dict(tag=tag, lhs=lhs, terms=terms, prefix=prefix, suffix=suffix, shape="")


def broken(terms: list[str], width: float = LINE_WIDTH) -> list[str]:
    """One line per term, a term too long for a line continued on more, indented."""
    return [line if k == 0 else r"\qquad " + line
            for term in terms for k, line in enumerate(latex_lines(term, width - 4))]


def matrix_states(cell) -> list:
    """The states at t that are matrices per head."""
    return [s for s in cell.new_states if cell.dim(s) == HEAD_MATRIX]


def _is_matrix(g) -> bool:
    return any(t.expr.func.__name__ == "Outer" for t in g.terms)
