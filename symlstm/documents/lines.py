"""Long equations set over several lines.

An equation is broken before a + or - of the outermost sum that does not fit, else before a
⊙; the ``\\left( \\right)`` of a group opened that way become ``\\bigl( \\bigr)``, which TeX
lets stand on different lines.
"""
from __future__ import annotations

import functools
import re
from typing import NamedTuple


#: How wide a line of an equation may be, in the units of :func:`latex_width` (about one
#: character each): what fits on the page beside a left side, a tag and a shape.
LINE_WIDTH = 50

_INVISIBLE = re.compile(r"\\(?:left|right|[bB]igg?[lr]?|mathit|mathrm|mathbf|operatorname|text"
                        r"|displaystyle|notag|top)(?![A-Za-z])|\\[,;!]")
_WIDE = re.compile(r"\\(?:tanh|exp|log|sum)(?![A-Za-z])")
_COMMAND = re.compile(r"\\[A-Za-z]+|\\.")
_OPERATOR = re.compile(r" [+=-] | \\odot ")


def latex_width(text: str) -> float:
    """The width of a LaTeX formula, roughly, in characters: a command is one letter, a
    function name three, a binary operator with its spaces two, a fraction its wider part;
    subscripts count in full."""
    k = text.find(r"\frac{")
    if k >= 0:     # a fraction is as wide as the wider of its two parts
        top = _brace_end(text, k + 5)
        bottom = _brace_end(text, top)
        return latex_width(text[:k]) + max(latex_width(text[k + 6:top - 1]),
                                           latex_width(text[top + 1:bottom - 1])) \
            + latex_width(text[bottom:])
    ops = len(_OPERATOR.findall(text))
    text = _WIDE.sub("www", text)
    text = _COMMAND.sub("w", _INVISIBLE.sub("", text))
    return len(re.sub(r"[{}^_ ]", "", text)) + ops


class _Group(NamedTuple):
    """``\\left( items \\right)``, ``width`` wide."""
    open: str
    items: list
    close: str
    width: float


class _Break(NamedTuple):
    """A place to break a line: before + or - (kind 0) or before ⊙ (kind 1)."""
    kind: int


_TOKEN = re.compile(r"\\(left|right)(?![A-Za-z])(\\\{|\\\}|\\[lr]?[a-z]+(?![a-z])|.)"
                    r"| ([+-]) | (\\odot) |\{(?:[^{}\\]|\\[A-Za-z]+)*\}|([{}])|\\[{}]")


def latex_lines(text: str, width: float = LINE_WIDTH) -> list[str]:
    """``text`` (a formula) as lines of at most ``width`` (:func:`latex_width`), when its
    sums and products allow it; ``\\left( \\right)`` around a broken sum become
    ``\\bigl( \\bigr)``."""
    if latex_width(text) <= width:
        return [text]
    return [_join(line) for line in _fill(_parse(text), width) if line]


def _parse(text: str) -> list:
    """Tokens: text, :class:`_Group` for each ``\\left( \\right)`` and :class:`_Break`
    before each + and - between terms and each ⊙; braces are kept whole."""
    stack, items, start, braces = [], [], 0, 0
    for m in _TOKEN.finditer(text):
        if m[5]:
            braces += 1 if m[5] == "{" else -1
        if braces or m[5] or not (m[1] or m[3] or m[4]):
            continue
        _flush(items, text[start:m.start()])
        if m[1] == "left":
            stack.append((items, m[2]))
            items = []
        elif m[1] == "right":
            outer, opened = stack.pop()
            outer.append(_Group(opened, items, m[2], 2 + _width(items)))
            items = outer
        elif not items:      # a sign in front of the first term: no place to break
            continue
        else:
            items.append(_Break(1 if m[4] else 0))
            start = m.start() + 1
            continue
        start = m.end()
    _flush(items, text[start:])
    return items


def _flush(items: list, text: str) -> None:
    if text.strip():
        items.append(text)


def _brace_end(text: str, k: int) -> int:
    depth = 0
    while True:
        depth += {"{": 1, "}": -1}.get(text[k], 0)
        k += 2 if text[k] == "\\" else 1
        if depth == 0:
            return k


def _width(items) -> float:
    return sum(_text_width(t) if isinstance(t, str) else
               t.width if isinstance(t, _Group) else 0 for t in items)


@functools.lru_cache(maxsize=1 << 14)
def _text_width(text: str) -> float:
    return latex_width(text)


def _split(items: list, kind: int) -> list[list]:
    """``items`` cut before every break of ``kind`` (the break stays with the piece it opens)."""
    pieces = [[]]
    for t in items:
        if isinstance(t, _Break) and t.kind == kind and pieces[-1]:
            pieces.append([])
        pieces[-1].append(t)
    return pieces


def _fill(items: list, width: float, kind: int = 0) -> list[list]:
    """Pieces cut at breaks of ``kind``, as many on a line as fit; a piece too long for a
    line is broken inside."""
    lines, line, used = [], [], 0.0
    for piece in _split(items, kind):
        wide = _width(piece)
        if used + wide <= width:
            line, used = line + piece, used + wide
            continue
        if line:
            lines.append(line)
        inside = [piece] if wide <= width else _inside(piece, width, kind)
        lines += inside[:-1]
        line, used = inside[-1], _width(inside[-1])
    return lines + [line]


def _inside(piece: list, width: float, kind: int) -> list[list]:
    """A piece too long for a line: open its widest group when that is wide, else break it
    before ⊙, else open any group; else it stays whole."""
    groups = [k for k, t in enumerate(piece) if isinstance(t, _Group)]
    widest = max(groups, key=lambda k: piece[k].width, default=None)
    opens = widest is not None and piece[widest].width > width / 3
    if not opens and kind == 0 and any(t == _Break(1) for t in piece):
        return _fill(piece, width, 1)
    if widest is None:
        return [piece]
    g, before, after = piece[widest], piece[:widest], piece[widest + 1:]
    head = _fill([*before, r"\bigl" + g.open], width, kind)
    inner = _fill(g.items, width)
    inner[-1] = [*inner[-1], r"\bigr" + g.close]    # a line never opens with a bracket
    return _glue(_glue(head, inner, width), _fill(after, width, kind), width) if after else \
        _glue(head, inner, width)


def _glue(first: list[list], then: list[list], width: float) -> list[list]:
    """Lines ``first`` then ``then``, the last of one and the first of the other on one
    line when they fit there."""
    if _width(first[-1]) + _width(then[0]) <= width:
        return [*first[:-1], first[-1] + then[0], *then[1:]]
    return first + then


def _join(line: list) -> str:
    out = ""
    for t in line:
        if isinstance(t, _Group):
            gap = " " if t.open[-1:].isalpha() else ""   # \left\langle x, not \langlex
            out += rf"\left{t.open}{gap}{_join(t.items)}\right{t.close}"
        elif isinstance(t, _Break):
            out += " "
        else:
            out += t
    return out.strip()
