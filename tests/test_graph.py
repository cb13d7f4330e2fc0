"""The step graph's layout never draws an edge through a node, for the shipped cells and for
random cells from the whole grammar."""
from cellgen import cells
from hypothesis import given, settings

import symlstm
from symlstm import naming
from symlstm.documents.layout import Edge, collisions, graph, route


def _check(cell):
    g = graph(cell)
    hits = collisions(g)
    assert not hits, [f"{e.src} -> {e.dst} through {n.symbol}" for e, n in hits]
    for e in g.edges:   # each slanted part joins two neighbouring columns
        xs = [x for x, _ in route(g, e)]
        assert xs == sorted(xs), f"{e.src} -> {e.dst} turns back"


def test_shipped_cells_have_no_edge_through_a_node():
    for name in symlstm.CELLS:
        _check(symlstm.CELLS[name]())


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(cells(max_intermediates=8, max_depth=5))
def test_random_cells_have_no_edge_through_a_node(cell):
    _check(cell)


def test_collisions_sees_an_edge_through_a_node():
    """The check itself can fail: a straight edge across a column hits the node there."""
    g = graph(symlstm.CELLS["rnn"]())
    x, h = naming.timed("x"), naming.timed("h")
    straight = g._replace(edges=(Edge(x, h, "h"),))   # two columns apart, no bend
    assert [n.symbol for _, n in collisions(straight)] == [naming.timed("hbar")]


def test_the_graph_shows_the_equations_of_the_next_step():
    g = graph(symlstm.CELLS["peephole_lstm"]())
    later = {str(n.symbol) for n in g.nodes if n.kind == "next"}
    assert later == {"zbar[t+1]", "ibar[t+1]", "fbar[t+1]", "obar[t+1]", "c[t+1]"}
    into_c = {str(e.src) for e in g.edges if str(e.dst) == "c[t+1]"}
    assert into_c == {"c[t]"}
