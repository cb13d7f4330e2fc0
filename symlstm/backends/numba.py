"""The Numba backend: the lowered step as one compiled time loop per direction, for
``symlstm.generated.numba.<cell>``.

The plan is the NumPy module's.  Inside the compiled loop the fused GEMMs call BLAS
(``_gemm``: one call of MKL's GEMM, or OpenBLAS's, into a buffer), and every run of element-wise statements of one size between two
GEMMs becomes one loop nest, over the samples and the vector's entries.  A value lives in a
register unless a later nest, a GEMM or the backward pass reads it.  exp, tanh, σ, softplus
and log σ are written in branch-free arithmetic (:func:`math_context`), which LLVM
vectorises; NumPy's versions are scalar library calls inside a compiled loop.
"""
from __future__ import annotations

import functools
import re

import sympy as sp

from .. import naming
from ..cell.matrices import per_head_parts
from ..derivation.bptt import Derivation
from ..lower.plan import Plan, lower
from ..printers.templates import environment
from .channels import has_channels
from .code import NUMPY, code_context
from .numba_channels import numba_channels_module
from .numba_heads import numba_heads_module
from .numba_kernels import _backward_kernel, _carries, _forward_kernel
from .numba_printer import SPELLINGS, ElementPrinter  # noqa: F401  (the tests read them here)


TEMPLATE = "numba/cell.py.jinja"


def numba_module(d: Derivation, rebuild: str | None = None) -> str:
    """The source of ``symlstm.generated.numba.<cell>`` for ``d.cell``; its header names
    ``rebuild`` as the command that regenerates it, if given.  A cell with matrices or
    numbers per head gets the module of :mod:`.numba_heads`, one with matrices per channel
    that of :mod:`.numba_channels`."""
    if has_channels(d.cell):
        return numba_channels_module(d, rebuild)
    if per_head_parts(d.cell):
        return numba_heads_module(d, rebuild)
    plan = lower(d)
    context = code_context(d, NUMPY, "Numba", plan=plan)
    fwd, bwd = _forward_kernel(plan), _backward_kernel(plan)
    fwd["args"], bwd["args"] = _arguments(plan)
    return environment().get_template(TEMPLATE).render(
        template=TEMPLATE, rebuild=rebuild, **context, **math_context(), fwd=fwd, bwd=bwd,
        **_passes(context))


def _passes(context: dict) -> dict:
    """What the compiled passes around the loops name: the arrays the forward pass keeps for
    ``backward``, each state's initial value (or its gradient) as an argument, and what the
    backward pass returns, each with its label, in the order of ``backward``'s keys."""
    labels = context["labels"]
    grads = dict(context["matrix_grads"])
    grads.update((name, local) for name, local, _, _ in context["vector_grads"])
    grads.update((name, f"sum_{buffer}[{rows}]") for name, buffer, rows in context["summed_grads"])
    returned = [(grads[name], labels[name]) for name, _ in context["params"]]
    returned += [(x["dlocal"], labels[x["name"]]) for x in context["inputs"]]
    returned += [(s["carry"], labels[s["name"] + "0"]) for s in context["state_locals"]]
    computed = {g["name"] for g in context["input_grads"]}
    # a gradient is a whole array, a block of one, or a sum of blocks (a weight in two fused
    # groups): the compiled pass returns each array they read once, and backward() takes the
    # blocks (each array returned costs a boxing)
    returned_arrays = list(dict.fromkeys(name for expr, _ in returned
                                         for name in re.findall(r"(\w+)\[", expr) or [expr]))
    grad_keys = [name for name, _ in context["params"]] + [x["name"] for x in context["inputs"]]
    grad_keys += [s["name"] + "0" for s in context["state_locals"]]
    groups = context["groups"]
    scratch_fwd = _scratch([(f"proj_{g['name']}", g["width"]) for g in groups
                            if g["kind"] == "input"])
    buffers = {g["buffer"]: g["width"] for g in groups if g["buffer"] not in returned_arrays}
    scratch_bwd = _scratch(list(buffers.items()))
    return dict(scratch_fwd=scratch_fwd, scratch_bwd=scratch_bwd,
                returned_arrays=returned_arrays, grad_keys=grad_keys, cache_arrays=[naming.sequence(name) for name, _ in context["states"]]
                + [naming.cached(name) for name, _ in context["cached"]],
                state_inits=[f"_{name}0" for name, _ in context["states"]], returned=returned,
                summed_inputs=[x for x in context["inputs"] if x["name"] not in computed])


def _scratch(arrays: list[tuple[str, str]]) -> dict:
    """The temporary (T, B, width) arrays of a pass, none of which it returns, as consecutive
    slices of one scratch buffer: their names with the code of each slice's start and stop,
    and of the whole length."""
    slices, start = [], "0"
    for name, width in arrays:
        stop = f"T * B * ({width})" if start == "0" else f"{start} + T * B * ({width})"
        slices.append(dict(name=name, start=start, stop=stop, width=width))
        start = stop
    return dict(slices=slices, size=start)


def _arguments(plan: Plan) -> tuple[list[str], list[str]]:
    """What each compiled loop is passed: the arrays the Python wrapper made, by name."""
    cell = plan.cell
    first = [*map(naming.code, cell.input_symbols), "D", "H", *cell.sizes]
    vectors = [naming.code(p.symbol) for p in cell.params if not p.is_matrix]
    stacks = [f"stack_{g.name}" for g in plan.groups]
    states = [naming.sequence(s) for s in cell.states]
    cached = [naming.cached(naming.code(v)) for v, _ in plan.cached]
    fwd = first + vectors + stacks + [f"proj_{g.name}" for g in plan.groups] + states + cached
    buffers = list(dict.fromkeys(g.adjoint_buffer for g in plan.groups))
    grads = [naming.code(s.lhs) for s in plan.vector_grads]
    grads += [naming.code(s.lhs) for s in plan.input_grads]
    carries = [naming.code(c) for c in _carries(cell)]
    bwd = first + ["dhs"] + vectors + stacks + states + cached + buffers + grads + carries
    return fwd, bwd


# ------------------------------------------------------------------ math -----

#: The two float types: where exp is clamped (beyond, the result is 0 or inf: e^lowest is
#: below half the smallest subnormal number, e^highest above the largest), the exponent's
#: bias and the mantissa's width, which set 2^k through the exponent bits, the shifter
#: 1.5 * 2^mantissa (x + shifter rounds x to an integer, left in the low bits), and the
#: degree of exp's Taylor polynomial on |r| <= ln2/2: its first left-out term, (ln2/2)^(n+1)/(n+1)!,
#: is below half an ulp of the type (4.7e-18 for 13, 5.2e-9 for 7); and where tanh rounds
#: to 1 (1 - tanh a < 2 e^-2a is below half an ulp of 1 there).
FLOATS = (dict(bits=64, lowest=-745.2, highest=709.8, bias=1023, mantissa=52, degree=13,
               tanh_one=20.0),
          dict(bits=32, lowest=-104.0, highest=88.8, bias=127, mantissa=23, degree=7,
               tanh_one=10.0))


@functools.lru_cache(maxsize=None)
def math_context() -> dict:
    """exp, tanh, σ, softplus and log σ for float32 and float64 as Horner forms, their constants
    derived here: exp(r) = Σ r^k/k! on |r| <= ln2/2 (to the degree of each float type),
    and tanh on |a| < 0.625 as a convergent of Lambert's continued fraction
    tanh a = a/(1 + a²/(3 + a²/(5 + ...))), a rational function with integer coefficients."""
    a2 = sp.Symbol("a2")
    cf = sp.Integer(17)
    for k in range(7, -1, -1):
        cf = (2 * k + 1) + a2 / cf
    num, den = sp.fraction(sp.cancel(1 / cf))   # tanh a = a · num(a²)/den(a²)
    floats = [dict(f, shifter=float(3 << (f["mantissa"] - 1)), exp_poly=_horner(
        [sp.Rational(1, sp.factorial(k)) for k in range(f["degree"] + 1)], "r")) for f in FLOATS]
    return dict(floats=floats,
                tanh_num=_horner(sp.Poly(num, a2).all_coeffs()[::-1], "a2"),
                tanh_den=_horner(sp.Poly(den, a2).all_coeffs()[::-1], "a2"))


def _horner(coeffs, x: str) -> str:
    """c0 + x*(c1 + x*(c2 + ...)) with each constant as F(...)."""
    text = f"F({float(coeffs[-1])!r})"
    for c in reversed(coeffs[:-1]):
        text = f"F({float(c)!r}) + {x} * ({text})"
    return text
