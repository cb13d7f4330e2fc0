"""The computational graph of one step, laid out in columns, for the documents' figures.

A node per vector (inputs, states at t-1, every equation's result), an edge from each
vector an equation reads to the vector it defines, and an edge from each new state to each
equation of step t+1 that reads it (those equations are nodes too, in the last column):
that is where the recurrences come from.  The step's loss ℓ_t, which reads the output, is
a node of the last column as well, so that the loss is in the picture.

Layout (the layered drawing of Sugiyama et al.): the column of a node is its longest path
from the inputs, so every edge points right; an edge that spans several columns bends
through one point in each column between, and each column is ordered by the mean
position of its neighbours.  Each segment of an edge then joins two neighbouring
columns, and :func:`collisions` checks that none passes through a node.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import sympy as sp

from .. import naming
from ..cell.model import Cell


COLUMN = 1.9    # cm between columns, at the least
SLANT = 0.5     # cm at the least for an edge's slanted part between two columns
ROW = 0.95      # cm between the nodes of a column
HALF_HEIGHT = 0.3   # half a node's height (cm)


class Node(NamedTuple):
    symbol: sp.Symbol
    col: int
    y: float         # vertical position, in rows (0 at the column's middle, up is positive)
    kind: str        # "input", "prev", "step", "next" (an equation of step t+1) or "loss"


class Edge(NamedTuple):
    src: sp.Symbol
    dst: sp.Symbol
    label: str       # the equation the edge belongs to ("" for the edges to step t+1)
    bends: tuple[tuple[int, float], ...] = ()   # (column, y) of the points it bends through


class Graph(NamedTuple):
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]

    def node(self, symbol: sp.Symbol) -> Node:
        return next(n for n in self.nodes if n.symbol == symbol)


def graph(cell: Cell) -> Graph:
    """Lay out one step of ``cell``, with the equations of step t+1 that read its states."""
    col = {s: 0 for s in (*cell.input_symbols, *cell.prev_states)}
    kinds = {**{s: "input" for s in cell.input_symbols}, **{s: "prev" for s in cell.prev_states}}
    edges = []
    for eq in cell.equations:
        reads = _reads(eq)
        col[eq.lhs] = 1 + max((col[s] for s in reads), default=0)
        kinds[eq.lhs] = "step"
        edges += [Edge(s, eq.lhs, eq.label) for s in reads]
    last = max(col.values()) + 1
    for eq in cell.equations:   # step t+1: the equations that read a state
        states = [s for s in _reads(eq) if s in cell.prev_states]
        if states:
            later = naming.shift(eq.lhs, 1)
            col[later], kinds[later] = last, "next"
            edges += [Edge(naming.shift(s, 1), later, "") for s in states]
    output = naming.timed(cell.output)
    col[LOSS_NODE], kinds[LOSS_NODE] = last, "loss"
    edges.append(Edge(output, LOSS_NODE, "loss"))
    return _layout(col, kinds, edges)


#: The node of the step's loss ℓ_t.
LOSS_NODE = naming.timed("ell")


def _reads(eq) -> list[sp.Symbol]:
    return sorted((s for s in eq.rhs.free_symbols if naming.parse(s) is not None), key=str)


def _layout(col, kinds, edges) -> Graph:
    """Order each column (with a point for every edge that passes through it) by the mean
    position of the neighbours, a few sweeps each way, then centre the columns."""
    columns: dict[int, list] = {}
    for s, c in col.items():
        columns.setdefault(c, []).append(s)
    chains = {}   # edge -> its bend points, one per column it passes
    for e in edges:
        chains[e] = [(e, c) for c in range(col[e.src] + 1, col[e.dst])]
        for point in chains[e]:
            columns[point[1]].append(point)
    links: dict = {}   # item -> neighbours on the left and on the right
    for e, points in chains.items():
        path = [e.src, *points, e.dst]
        for a, b in zip(path, path[1:]):
            links.setdefault(a, ([], []))[1].append(b)
            links.setdefault(b, ([], []))[0].append(a)
    for sweep in range(8):
        order = range(1, len(columns)) if sweep % 2 == 0 else range(len(columns) - 2, -1, -1)
        side = 0 if sweep % 2 == 0 else 1
        for c in order:
            where = {it: k for cc in columns.values() for k, it in enumerate(cc)}
            old = {it: k for k, it in enumerate(columns[c])}

            def mean(it):
                near = links.get(it, ([], []))[side]
                return sum(where[n] for n in near) / len(near) if near else old[it]
            columns[c].sort(key=lambda it: (mean(it), old[it]))
    y = {it: (len(cc) - 1) / 2 - k for cc in columns.values() for k, it in enumerate(cc)}
    nodes = tuple(Node(s, c, y[s], kinds[s]) for c in sorted(columns) for s in columns[c]
                  if isinstance(s, sp.Symbol))
    laid = tuple(e._replace(bends=tuple((c, y[(e, c)]) for _, c in chains[e])) for e in edges)
    return Graph(nodes, laid)


def position(g: "Graph", col: int, y: float) -> tuple[float, float]:
    """Centimetres of a layout position in graph ``g``."""
    return _columns(g)[col], ROW * y


@functools.lru_cache(maxsize=64)
def _columns(g: "Graph") -> dict[int, float]:
    """Each column's x (cm): COLUMN apart, or further where wide labels would leave less than
    SLANT between one column's widest node and the next one's, so that an edge's slanted part
    always runs between the columns (long names make wide nodes)."""
    reach: dict[int, float] = {}   # half the widest node of each column, with its gap
    for n in g.nodes:
        reach[n.col] = max(reach.get(n.col, 0.0), half_width(n.symbol) + GAP)
    xs, x = {}, 0.0
    for c in range(max(reach, default=0) + 1):
        if c:
            x += max(COLUMN, reach.get(c - 1, 0.0) + reach.get(c, 0.0) + SLANT)
        xs[c] = x
    return xs


def half_width(symbol: sp.Symbol) -> float:
    """Half the width (cm) of a node's box, from the length of its label."""
    p = naming.parse(symbol)
    base = p.base.replace("bar", "").replace("tilde", "")
    return max(0.3, 0.14 + 0.09 * (len(base) + (0.8 if p.shift == 0 else 2.4)))


def route(g: Graph, e: Edge) -> list[tuple[float, float]]:
    """The points (cm) an edge is drawn through: out of its node to the right edge of its
    column, across to the next column's left edge, through each column it passes at its own
    height, and into its end node from the left.  The slanted parts lie between columns,
    where there are no nodes."""
    edge, xs = _column_bounds(g), _columns(g)
    src, dst = g.node(e.src), g.node(e.dst)
    points = [position(g, src.col, src.y), (edge[src.col][1], ROW * src.y)]
    for c, y in e.bends:
        left, right = edge.get(c, (xs[c], xs[c]))
        points += [(left, ROW * y), (right, ROW * y)]
    return points + [(edge[dst.col][0], ROW * dst.y), position(g, dst.col, dst.y)]


GAP = 0.3   # cm between a column's widest node and where edges turn: an arrow's straight
#            last part, so that its head lies clear of the node's label


@functools.lru_cache(maxsize=64)
def _column_bounds(g: Graph) -> dict[int, tuple[float, float]]:
    """Column -> (left, right) bounds of its widest node, computed once per graph."""
    edge, xs = {}, _columns(g)
    for n in g.nodes:
        x, w = xs[n.col], half_width(n.symbol)
        left, right = edge.get(n.col, (x, x))
        edge[n.col] = (min(left, x - w - GAP), max(right, x + w + GAP))
    return edge


def collisions(g: Graph) -> list[tuple[Edge, Node]]:
    """Every (edge, node) where the edge, as :func:`route` draws it, passes through a node
    that is not one of its ends."""
    hits = []
    for e in g.edges:
        points = route(g, e)
        for n in g.nodes:
            if n.symbol in (e.src, e.dst):
                continue
            (cx, cy), w = position(g, n.col, n.y), half_width(n.symbol)
            if any(_crosses(p, q, cx, cy, w, HALF_HEIGHT) for p, q in zip(points, points[1:])):
                hits.append((e, n))
    return hits


def _crosses(p, q, cx, cy, w, h, steps=100) -> bool:
    """Whether the segment p-q enters the box of half-sizes (w, h) around (cx, cy)."""
    return any(abs(p[0] + (q[0] - p[0]) * k / steps - cx) < w and
               abs(p[1] + (q[1] - p[1]) * k / steps - cy) < h for k in range(steps + 1))
