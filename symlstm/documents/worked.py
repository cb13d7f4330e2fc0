"""A worked example with numbers: the concatenated-input LSTM with a linear head and squared
loss, unrolled over T = 3 steps at sizes small enough to print (D = 1, H = 2, K = 1).

:func:`example` computes one instance: every forward value and every gradient of every step,
evaluated from the derived equations (``numeric.evaluate``), t = 3, 2, 1.  It checks them
before anything is printed: the parameter gradients, summed over the steps, must equal
those of the generated module ``lstm_concat_regression`` to 1e-12, and that module's must
agree with central differences of its own loss.  A mismatch raises.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import sympy as sp

from .. import naming
from ..cell.parts import size_value
from ..checks.gradcheck import directional_errors
from ..checks.numeric import evaluate
from ..network.heads import derive_network


CELL, HEAD = "lstm_concat", "regression"
T, D, H, K = 3, 1, 2, 1
SEED = 7


class Step(NamedTuple):
    t: int
    values: dict          # symbol at t (x[t], δc[t], ...) -> array


class Example(NamedTuple):
    network: object       # heads.Network
    params: dict
    x: np.ndarray         # (T, 1, D)
    y: np.ndarray         # (T, 1, K)
    forward: tuple[Step, ...]     # t = 1, 2, 3
    backward: tuple[Step, ...]    # t = 3, 2, 1
    grads: dict                   # name -> the sum over steps
    loss: float
    central: float                # worst relative difference against central differences
    terms: dict                   # name -> its term at each step t = 1, ..., T
    initial: Step                 # δh_0 and δc_0, what step 1 sends back to the initial states
    difference: dict              # one central difference, spelled out (see _difference)
    update: dict                  # one SGD step (see _update)
    zeros: dict                   # t -> [(δv[t], the vectors at t that are zero and make it so)]


def _decimals(rng, shape, scale=0.9):
    """Random numbers with one decimal, so that a reader can type them in."""
    return np.round(rng.uniform(-scale, scale, shape), 1) + 0.0


def instance(module):
    rng = np.random.default_rng(SEED)
    params = {k: _decimals(rng, v.shape) for k, v in module.init_params(D, H, K, rng=0).items()}
    return params, _decimals(rng, (T, 1, D)), _decimals(rng, (T, 1, K))


def example(module) -> Example:
    """The instance, every step's values, and the checks (see the module's docstring);
    ``module`` is the generated ``lstm_concat_regression``."""
    n = derive_network(CELL, HEAD)
    cell, head = n.cell.cell, n.head
    params, x, y = instance(module)
    dims = {naming.parse(v).base: cell.dim(v) for v in (*cell.input_symbols, *cell.prev_states,
                                                       *(eq.lhs for eq in cell.equations))}
    dims.update(head.head.sizes)

    sizes = {"D": D, "H": H}   # what a Part's bounds read

    def width(dim):
        return K if dim == "K" else size_value(dim, D, H)
    steps = {0: {}, T + 1: {}}
    for s in cell.prev_states:   # the initial states are zero
        steps[0][naming.shift(s, 1)] = np.zeros(width(cell.dim(s)))

    def lookup(t):
        def get(s):
            p = naming.parse(s)
            if p is None:
                return params[s.name]
            k, at = t + p.shift, naming.timed(p.base, 0, p.kind)
            return steps.get(k, {}).get(at, np.zeros(width(dims[p.base])))
        return get

    for t in range(1, T + 1):
        steps[t] = {naming.timed("x"): x[t - 1, 0], naming.timed("y"): y[t - 1, 0]}
        for eq in (*cell.equations, *head.head.equations):
            steps[t][eq.lhs] = np.atleast_1d(evaluate(eq.rhs, lookup(t), sizes))
    states = set(cell.new_states)
    order = [*head.step, head.output, *n.cell.through_time,
             *(g for g in n.cell.step if naming.adjoint_of(g.lhs) not in states)]
    zeros = {}
    for t in range(T, 0, -1):
        for g in order:
            steps[t][g.lhs] = np.atleast_1d(evaluate(g.rhs, lookup(t), sizes))
            if not np.any(steps[t][g.lhs]):   # say why: which vector it reads is zero
                why = [s for s in sorted(g.rhs.free_symbols, key=sp.default_sort_key)
                       if naming.parse(s) is not None and not np.any(lookup(t)(s))]
                zeros.setdefault(t, []).append((g.lhs, why))
    terms = {naming.adjoint_of(g.lhs).name: [np.asarray(evaluate(g.rhs.args[0], lookup(t),
                                                                  sizes), float)
                                             for t in range(1, T + 1)]
             for g in (*head.params, *n.cell.params)}
    grads = {name: sum(each) for name, each in terms.items()}
    initial = Step(0, {g.lhs: np.atleast_1d(evaluate(g.rhs, lookup(1), sizes))
                       for g in n.cell.initial})
    loss, module_grads = module.loss_and_grads(params, x, y)
    for name, value in grads.items():
        if not np.allclose(value, module_grads[name], rtol=1e-12, atol=1e-13):
            raise AssertionError(f"the worked example's δ{name} differs from the generated code's")
    central = max(directional_errors(lambda p: module.loss_and_grads(p, x, y)[0], params,
                                     {k: module_grads[k] for k in params}).values())
    if not central < 1e-6:
        raise AssertionError(f"the generated code's gradients differ from central differences "
                             f"by {central:.1e}")
    forward = tuple(Step(t, {s: v for s, v in steps[t].items() if naming.parse(s).kind == ""})
                    for t in range(1, T + 1))
    backward = tuple(Step(t, {g.lhs: steps[t][g.lhs] for g in order}) for t in range(T, 0, -1))
    return Example(n, params, x, y, forward, backward, grads, loss, central, terms, initial,
                   _difference(module, params, x, y, grads), _update(module, params, x, y),
                   zeros)


#: The entry the central difference is shown for, its step, and the SGD step's learning rate.
CHECKED, EPSILON, RATE = ("W_f", (0, 0)), 1e-5, 0.1


def _difference(module, params, x, y, grads) -> dict:
    """(L(θ + ε e) - L(θ - ε e)) / 2ε for one entry e of one parameter, beside its gradient."""
    name, at = CHECKED
    moved = {}
    for sign in (1, -1):
        p = {k: v.copy() for k, v in params.items()}
        p[name][at] += sign * EPSILON
        moved[sign] = module.loss_and_grads(p, x, y)[0]
    return dict(name=name, at=at, epsilon=EPSILON, plus=moved[1], minus=moved[-1],
                estimate=(moved[1] - moved[-1]) / (2 * EPSILON), gradient=grads[name][at])


def _update(module, params, x, y) -> dict:
    """θ ← θ - η ∇L once, and the loss before and after."""
    before, grads = module.loss_and_grads(params, x, y)
    after = {k: v - RATE * grads[k] for k, v in params.items()}
    return dict(rate=RATE, params=after, before=before,
                after=module.loss_and_grads(after, x, y)[0])


def number(v: float) -> str:
    """A value as the document prints it: four significant digits."""
    text = f"{float(v):.4g}"
    return "0" if text in ("-0", "0") else text.replace("-", "{-}")


def vector(v) -> str:
    """A vector (or a matrix) in LaTeX."""
    a = np.atleast_2d(np.asarray(v, float))
    if a.shape[0] == 1 and np.ndim(v) <= 1:
        return number(a[0, 0]) if a.size == 1 else \
            r"\begin{pmatrix}" + r" \\ ".join(number(e) for e in a[0]) + r"\end{pmatrix}"
    return r"\begin{pmatrix}" + r" \\ ".join(" & ".join(number(e) for e in row)
                                            for row in a) + r"\end{pmatrix}"

