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
    for t in range(T, 0, -1):
        for g in order:
            steps[t][g.lhs] = np.atleast_1d(evaluate(g.rhs, lookup(t), sizes))
    grads = {}
    for g in (*head.params, *n.cell.params):
        name = naming.adjoint_of(g.lhs).name
        grads[name] = sum(evaluate(g.rhs.args[0], lookup(t), sizes)
                          for t in range(1, T + 1))
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
    return Example(n, params, x, y, forward, backward, grads, loss, central)


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

