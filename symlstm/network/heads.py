"""Output heads and losses: what turns a cell's outputs h_t into the loss L = Σ_t ℓ_t.

A head is written in the same grammar as a cell, plus the reductions of ``ops.REDUCTIONS``
(a vector to one number): a linear layer ŷ_t = V h_t + b_y, then the loss of one step.

- ``regression``: ℓ_t = ½ Σ_k (ŷ_t − y_t)_k², for real targets y_t;
- ``classifier``: m_t = lse(ŷ_t) and ℓ_t = m_t − Σ_k (y_t ⊙ ŷ_t)_k, the softmax
  cross-entropy −log softmax(ŷ_t)[class] for y_t the one-hot vector of the class.

:func:`derive_head` runs the same reverse sweep as the cell's, seeded with δℓ_t = 1, so
the head's adjoints, Δh_t (what reaches the cell's output from the loss) and the gradients of
V and b_y are derived, not typed in: the softmax's δŷ_t = exp(ŷ_t − m_t) − y_t comes out
of the derivative table.
"""
from __future__ import annotations

from typing import NamedTuple

import sympy as sp

from .. import naming
from ..cell.model import Cell
from ..cell.ops import MatVec, lse, total
from ..cell.parts import CellError, Equation, Param
from ..derivation.bptt import Derivation, Gradient
from ..derivation.sweep import LOSS, Term, _named_outputs, _paths


K = "K"   # the output size


class Head(NamedTuple):
    """Equations from the cell's output ``h[t]`` and a target ``y[t]`` to the loss ``ell[t]``."""
    name: str
    title: str
    params: tuple[Param, ...]
    equations: tuple[Equation, ...]
    targets: str          # "real": y is (T, B, K); "class": y is (T, B) integer classes

    @property
    def loss(self) -> sp.Symbol:
        return self.equations[-1].lhs

    @property
    def sizes(self) -> dict[str, str]:
        """Each of the head's vectors (base name) with its size: K for ŷ and the target y,
        1 for what a reduction gives (m, ℓ)."""
        out = {naming.parse(eq.lhs).base: "1" if eq.rhs.atoms(total, lse) else K
               for eq in self.equations}
        return {**out, "y": K}


def _linear() -> tuple[tuple[Param, ...], Equation, sp.Symbol]:
    V, b_y = Param("V", (K, "H")), Param("b_y", (K,))
    yhat = naming.timed("yhat")
    eq = Equation("yhat", yhat, MatVec(V.symbol, naming.timed("h")) + b_y.symbol)
    return (V, b_y), eq, yhat


def regression() -> Head:
    """A linear layer and the squared error, summed over steps and samples."""
    params, linear, yhat = _linear()
    y = naming.timed("y")
    loss = Equation("ell", naming.timed("ell"), total((yhat - y) ** 2) / 2)
    return Head("regression", "linear head and squared loss", params, (linear, loss), "real")


def classifier() -> Head:
    """A linear layer, the softmax and the cross-entropy, summed over steps and samples."""
    params, linear, yhat = _linear()
    y, m = naming.timed("y"), naming.timed("m")
    norm = Equation("m", m, lse(yhat))
    loss = Equation("ell", naming.timed("ell"), m - total(y * yhat))
    return Head("classifier", "softmax output layer and cross-entropy loss", params,
                (linear, norm, loss), "class")


HEADS = {"regression": regression, "classifier": classifier}


class HeadDerivation(NamedTuple):
    """The head's part of the derivation: from the loss down to Δh_t, V and b_y."""
    head: Head
    forward: tuple[Gradient, ...]     # fwd:yhat, fwd:m, fwd:ell
    step: tuple[Gradient, ...]        # adj:ell (= 1), adj:m, adj:yhat
    output: Gradient                  # out:h, Δh_t = Vᵀ δŷ_t
    params: tuple[Gradient, ...]      # grad:V, grad:b_y (sums over time)


def derive_head(cell: Cell, head: Head) -> HeadDerivation:
    """The reverse sweep through ``head``, seeded with δℓ_t = 1."""
    _check(cell, head)
    terms: dict[sp.Symbol, list[Term]] = {head.loss: [Term(LOSS, sp.S.One, sp.S.One)]}
    outputs = _named_outputs(head)   # reads only .equations: m = lse(ŷ) names the lse
    for eq in reversed(head.equations):
        for v, term in _paths(eq, outputs):
            terms.setdefault(v, []).append(term)
    h = naming.timed(cell.output)   # the target y gets terms too; nothing reads them
    forward = tuple(Gradient(naming.FORWARD, eq.label, eq.lhs,
                             (Term(eq.label, sp.S.One, eq.rhs),)) for eq in head.equations)
    step = tuple(Gradient(naming.STEP, eq.label, naming.adjoint(eq.lhs), tuple(terms[eq.lhs]))
                 for eq in reversed(head.equations))
    output = Gradient(naming.OUTPUT, cell.output, naming.timed(cell.output, 0, naming.EXTERNAL),
                      tuple(terms[h]))
    params = tuple(Gradient(naming.GRADIENT, p.name, naming.adjoint(p.symbol),
                            tuple(terms[p.symbol]), summed=True) for p in head.params)
    return HeadDerivation(head, forward, step, output, params)


def _check(cell: Cell, head: Head) -> None:
    """The head's names must not be the cell's."""
    taken = {naming.parse(eq.lhs).base for eq in cell.equations} | set(cell.inputs) | \
        set(cell.states) | {p.name for p in cell.params}
    mine = {naming.parse(eq.lhs).base for eq in head.equations} | {"y"} | \
        {p.name for p in head.params}
    clash = sorted(taken & mine)
    if clash:
        raise CellError(f"cell {cell.name!r} already names {', '.join(clash)}, which the "
                        f"{head.name} head uses for its own variables")
    if cell.output_dim != "H":
        raise CellError(f"a head reads the output {cell.output!r} of size H; in {cell.name!r} "
                        f"it has size {cell.output_dim}")


class Network(NamedTuple):
    """A cell with a head: the derivation from L to every parameter."""
    cell: Derivation
    head: HeadDerivation

    @property
    def name(self) -> str:
        return f"{self.cell.cell.name}_{self.head.head.name}"

    def all(self) -> tuple[Gradient, ...]:
        h = self.head
        return (*h.forward, *h.step, h.output, *h.params, *self.cell.all())

    __getitem__ = Derivation.__getitem__
    __str__ = Derivation.__str__

    def labels(self) -> list[str]:
        return [g.label for g in self.all()]


def derive_network(cell, head) -> Network:
    """Derive ``cell`` (a name or a Cell) with ``head`` (a name of ``HEADS`` or a Head)."""
    from ..cell.shipped import get_cell
    from ..derivation.bptt import derive
    cell = get_cell(cell)
    if isinstance(head, str):
        if head not in HEADS:
            raise KeyError(f"unknown head {head!r}; available: {', '.join(HEADS)}")
        head = HEADS[head]()
    return Network(derive(cell), derive_head(cell, head))
