"""The step's graph as TikZ, drawn once per document."""
from __future__ import annotations

from .. import naming
from .layout import position, route


def _tikz(g) -> dict:
    """Nodes and edges of the step's picture, drawn once per document (``\\stepgraph``);
    node k is styled ``n<k>`` and edge k ``e<k>``, so that a use can highlight some."""
    ids = {n.symbol: f"n{k}" for k, n in enumerate(g.nodes)}
    nodes = [dict(id=ids[n.symbol], x=f"{x:.2f}", y=f"{y:.2f}", label=naming.latex(n.symbol),
                  style=n.kind)
             for n in g.nodes for x, y in [position(g, n.col, n.y)]]
    edges = [dict(id=f"e{k}", src=ids[e.src], dst=ids[e.dst],
                  style="edge" + (", dashed" if not e.label else ""),
                  via=" -- ".join(f"({x:.2f},{y:.2f})" for x, y in route(g, e)[1:-1]))
             for k, e in enumerate(g.edges)]
    return dict(nodes=nodes, edges=edges)
