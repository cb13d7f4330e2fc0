"""Backpropagation through time, from the one-step sweep.

Reference semantics, for a loss L = Σ_t ℓ_t(h_t) and Δh_t = ∂ℓ_t/∂h_t::

    δs⁺ = dL/ds_T for every state s (zero unless the final state feeds the loss)
    for t = T, ..., 1:
        δ of every variable of step t  = the one-step sweep, seeded with Δh_t and δs⁺
        δs⁺ = δs_{t-1} of that sweep    # what step t sends back to step t-1
        δθ += that step's term for every parameter θ
    δs_0 = δs⁺

Written out, the carried term is the step-(t+1) sweep shifted by one step, which
gives the textbook recurrences (δc_t ∋ δc_{t+1} ⊙ f_{t+1}).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import sympy as sp

from .. import naming
from ..cell import display
from ..cell.model import Cell
from ..cell.ops import TimeSum
from ..cell.shipped import get_cell
from .sweep import CARRY, LOSS, Sweep, Term, sweep


class Gradient(NamedTuple):
    """``lhs = rhs`` with its label and the paths (terms) that make up ``rhs``.

    The label is ``kind:name`` (:func:`naming.label`): ``rec:c``, ``grad:W_f``.  ``origin``
    is the time the equation is read at: "t" in general, "1" for δh_0 and friends, which
    are the step-1 sweep's terms for h_{t-1}.
    """
    kind: str
    name: str
    lhs: sp.Symbol
    terms: tuple[Term, ...]
    summed: bool = False
    origin: str = "t"

    @property
    def label(self) -> str:
        return naming.label(self.kind, self.name)

    @property
    def rhs(self) -> sp.Expr:
        total = sp.Add(*(t.expr for t in self.terms))
        return TimeSum(total) if self.summed else total

    @property
    def eq(self) -> sp.Eq:
        return sp.Eq(self.lhs, self.rhs, evaluate=False)

    def __str__(self) -> str:
        return f"({self.label}) {self.lhs} = {self.rhs}"

    def _repr_latex_(self) -> str:
        return f"$\\displaystyle {display.latex(self)}$"


@dataclass(frozen=True)
class Derivation:
    """Everything symlstm derives for one cell, as SymPy objects.

    - ``forward``: the cell's equations at time t, labelled ``fwd:<name>``;
    - ``step``: the one-step adjoints in sweep order (``adj:<name>``), where a state's
      adjoint includes ``δ⁺s_t``, the part that comes back from step t+1;
    - ``through_time``: the recurrences ``rec:<state>`` with that part written out;
    - ``inputs``: ``grad:x``; ``initial``: ``init:h0``, ``init:c0``, read at t = 1;
    - ``params``: ``grad:W_z`` and so on, each a sum over time.
    """
    cell: Cell
    forward: tuple[Gradient, ...]
    step: tuple[Gradient, ...]
    through_time: tuple[Gradient, ...]
    inputs: tuple[Gradient, ...]
    initial: tuple[Gradient, ...]
    params: tuple[Gradient, ...]
    sweep: Sweep

    def all(self) -> tuple[Gradient, ...]:
        return (*self.forward, *self.step, *self.through_time, *self.inputs, *self.initial,
                *self.params)

    def __getitem__(self, label: str) -> Gradient:
        """Look up any equation by label: ``d["rec:c"]``, ``d["grad:W_z"]``, ``d["fwd:h"]``."""
        for g in self.all():
            if g.label == label:
                return g
        raise KeyError(f"no equation labelled {label!r}; labels: {[g.label for g in self.all()]}")

    def __str__(self) -> str:
        return "\n".join(str(g) for g in self.all())

    def __repr__(self) -> str:
        return (f"<Derivation of {self.cell.name!r}: {len(self.all())} equations; print() "
                "lists them, d[label] gives one>")

    def labels(self) -> list[str]:
        """Every equation's label, in document order."""
        return [g.label for g in self.all()]

    def _repr_latex_(self) -> str:
        rows = " \\\\\n".join(display.latex(g) for g in self.all())
        return f"$\\displaystyle\\begin{{aligned}}{rows}\\end{{aligned}}$"


def derive(cell: Cell | str) -> Derivation:
    """The full derivation of ``cell`` (a :class:`Cell`, or a name from ``CELLS``): forward,
    one-step adjoints, recurrences, gradients."""
    cell = get_cell(cell)
    s = sweep(cell)
    forward = tuple(Gradient(naming.FORWARD, eq.label, eq.lhs,
                             (Term(eq.label, sp.S.One, eq.rhs),)) for eq in cell.equations)
    step = tuple(Gradient(naming.STEP, eq.label, naming.adjoint(eq.lhs), s.terms[eq.lhs])
                 for eq in reversed(cell.equations) if eq.lhs in s.terms)
    inputs = tuple(Gradient(naming.GRADIENT, naming.grad_key(x), naming.adjoint(x), s.terms[x])
                   for x in cell.input_symbols)
    initial = tuple(Gradient(naming.INITIAL, naming.grad_key(p), naming.adjoint(p), s.terms[p],
                             origin="1") for p in cell.prev_states if p in s.terms)
    params = tuple(Gradient(naming.GRADIENT, p.name, naming.adjoint(p.symbol), s.terms[p.symbol],
                            summed=True) for p in cell.params)
    return Derivation(cell, forward, step, _recurrences(cell, s), inputs, initial, params, s)


def _recurrences(cell: Cell, s: Sweep) -> tuple[Gradient, ...]:
    """δs_t for every state: its in-step terms plus step t+1's terms for s_{t-1}, shifted."""
    out = []
    for new, prev in zip(cell.new_states, cell.prev_states):
        own = tuple(t for t in s.terms[new] if t.via != CARRY)
        later = tuple(shift_term(t, 1) for t in s.terms.get(prev, ()))
        out.append(Gradient(naming.RECURRENCE, naming.parse(new).base, naming.adjoint(new),
                            own + later))
    return tuple(out)


def shift_term(term: Term, by: int) -> Term:
    """The same path ``by`` steps later: every vector and adjoint moves, parameters stay."""
    def move(e):
        return e.xreplace({v: naming.shift(v, by) for v in e.free_symbols})
    return term._replace(local=move(term.local), expr=move(term.expr),
                         raw=None if term.raw is None else move(term.raw), later=term.later + by)


def describe_path(term: Term) -> str:
    """A term's path in plain text: ``fwd:c at step t+1``, or ``the loss``."""
    return "the loss" if term.via == LOSS else \
        naming.label(naming.FORWARD, term.via) + (" at step t+1" if term.later else "")
