"""The computational graph of one step, laid out in columns, for the documents' figures.

A node per vector (inputs, states at t-1, every equation's result), an edge from each
vector an equation reads to the vector it defines, and an edge from each new state to
step t+1.  Column = longest path from the inputs, so every edge points right.
"""
from __future__ import annotations

from typing import NamedTuple

import sympy as sp

from . import naming
from .cell import Cell


class Node(NamedTuple):
    symbol: sp.Symbol
    col: int
    row: int
    kind: str        # "input", "prev", "step", or "next" (the state as step t+1 reads it)


class Edge(NamedTuple):
    src: sp.Symbol
    dst: sp.Symbol
    label: str       # the equation the edge belongs to ("" for the edges to step t+1)


class Graph(NamedTuple):
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]

    def downstream(self, v: sp.Symbol) -> frozenset[Edge]:
        """Every edge on a path from v onwards: the paths v's gradient comes back along."""
        out, todo = set(), [v]
        while todo:
            u = todo.pop()
            for e in self.edges:
                if e.src == u and e not in out:
                    out.add(e)
                    todo.append(e.dst)
        return frozenset(out)


def graph(cell: Cell) -> Graph:
    """Lay out one step of ``cell``."""
    col = {s: 0 for s in (*cell.input_symbols, *cell.prev_states)}
    kinds = {**{s: "input" for s in cell.input_symbols}, **{s: "prev" for s in cell.prev_states}}
    edges = []
    for eq in cell.equations:
        reads = sorted((s for s in eq.rhs.free_symbols if naming.parse(s) is not None), key=str)
        col[eq.lhs] = 1 + max((col[s] for s in reads), default=0)
        kinds[eq.lhs] = "step"
        edges += [Edge(s, eq.lhs, eq.label) for s in reads]
    last = max(col.values()) + 1
    for s in cell.new_states:
        nxt = naming.shift(naming.timed(naming.parse(s).base, -1), 1)   # s_t as step t+1 sees it
        nxt = sp.Symbol(nxt.name + "→")
        col[nxt], kinds[nxt] = last, "next"
        edges.append(Edge(s, nxt, ""))
    rows: dict[int, int] = {}
    nodes = []
    for s, c in col.items():
        nodes.append(Node(s, c, rows.get(c, 0), kinds[s]))
        rows[c] = rows.get(c, 0) + 1
    return Graph(tuple(nodes), tuple(edges))
