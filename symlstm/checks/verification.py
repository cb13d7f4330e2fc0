"""``verify(cell)``: derive a cell, generate its NumPy module, and check the module's gradients
two independent ways at small sizes.

1. Central differences of the module's own forward pass (``symlstm.checks.gradcheck``).
2. Brute force: the cell unrolled over T steps and differentiated directly at 50 digits
   (``symlstm.checks.bruteforce``), which never sees the derivation.

Both use the loss L = Σ_t ⟨Δh_t, h_t⟩ + Σ_s ⟨δs_T, s_T⟩ with random weights Δh_t and δs_T.
Brute force also judges a saturated instance: parameters at up to 20 times their usual
scale and inputs at 5 times, where gates sit at 0 or 1 to many digits and any operation
that loses relative accuracy in floating point shows.
"""
from __future__ import annotations

import math
import types
from typing import NamedTuple

import numpy as np

from ..cell.parts import size_value


#: Default sizes: small enough for brute force, with D ≠ H so that shapes cannot mix.
SIZES = dict(T=3, B=2, D=2, H=3)


#: How far the saturated instance scales the parameters (tried in turn until every exact value
#: of the instance lies inside the float64 range) and the input.
SATURATED_SCALES = (20.0, 10.0, 5.0)
SATURATED_INPUT = 5.0


class Row(NamedTuple):
    """One checked quantity: a gradient under its key in ``backward``'s dict, or the forward
    outputs (key ``"forward"``), with its shape and worst relative errors against central
    differences, against brute force, and against brute force at the saturated instance
    (NaN where a check does not apply)."""
    key: str
    shape: tuple[int, ...]
    central: float
    brute_force: float
    saturated: float = math.nan


class Report(NamedTuple):
    """What :func:`verify` measured, one row per gradient; ``ok`` when every error is within
    its tolerance.  ``saturation`` is the factor the saturated instance scaled the
    parameters by."""
    cell: str
    sizes: dict
    rows: tuple[Row, ...]
    central_rtol: float
    brute_force_rtol: float
    saturation: float = math.nan

    def within(self, row: Row) -> bool:
        return (_within(row.central, self.central_rtol)
                and _within(row.brute_force, self.brute_force_rtol)
                and _within(row.saturated, self.brute_force_rtol))

    @property
    def ok(self) -> bool:
        return all(self.within(r) for r in self.rows)

    def __str__(self) -> str:
        sizes = ", ".join(f"{k}={v}" for k, v in self.sizes.items())
        lines = [f"verify({self.cell!r}) at {sizes}: worst relative error of each gradient",
                 f"  {'gradient':<12} {'shape':<12} {'central diff.':>14} {'brute force':>12} "
                 f"{'saturated':>10}"]
        for r in self.rows:
            flag = "" if self.within(r) else "   <-- wrong"
            lines.append(f"  {r.key:<12} {str(r.shape):<12} {_cell(r.central):>14} "
                         f"{_cell(r.brute_force):>12} {_cell(r.saturated):>10}{flag}")
        lines.append(f"  saturated: parameters x{self.saturation:g}, input x{SATURATED_INPUT:g}")
        lines.append(f"  tolerances: central differences {self.central_rtol:.0e}, brute force "
                     f"{self.brute_force_rtol:.0e}; {'all within' if self.ok else 'FAILED'}")
        return "\n".join(lines)


def _within(error: float, rtol: float) -> bool:
    return math.isnan(error) or error <= rtol


def _cell(error: float) -> str:
    return "-" if math.isnan(error) else f"{error:.1e}"


class VerifyError(AssertionError):
    """A generated gradient disagrees with a check; ``report`` holds every measurement."""

    def __init__(self, report: Report):
        super().__init__(str(report))
        self.report = report


def load_module(source: str, name: str) -> types.ModuleType:
    """Import generated source as a module, without writing a file."""
    mod = types.ModuleType(name)
    exec(compile(source, f"<symlstm.generated {name}>", "exec"), mod.__dict__)
    return mod


def problem(mod, *, T, B, D, H, seed=0, dtype=np.float64, scale=2.0, input_scale=1.0, **extra):
    """Random parameters, input, initial states and loss weights for a generated module:
    parameters at ``scale`` times ``init_params``' draw (2 by default: livelier gates than
    the usual initialisation), the input at ``input_scale`` times a standard normal.  For a
    module with extra per-step inputs (``EXTRA_INPUTS``) the input is a dict of every input's
    sequence by name (see :func:`run`); the extra ones are drawn uniformly from [0, 1], as
    masks and mixing weights are.  ``extra`` gives the sizes the module has beyond D and H
    (``P=``, ``NH=``; by default those of ``extra_sizes``)."""
    rng = np.random.default_rng(seed)
    extra = extra_sizes(mod, H, **extra)
    keywords = {getattr(mod, "EXTRA_SIZES", {})[n]: v for n, v in extra.items()}
    params = {k: np.asarray(scale * v, dtype)
              for k, v in mod.init_params(D, H, rng=rng, dtype=dtype, **keywords).items()}
    n = size_value(mod.INPUT_SIZE, D, H, **extra)
    x = (input_scale * rng.standard_normal((T, B, n))).astype(dtype)
    # a state is (B, size), or as STATE_SHAPES says: (B, NH, H/NH, H/NH) for a matrix per head
    shapes = getattr(mod, "STATE_SHAPES", {s: (dim,) for s, dim in mod.STATE_SIZES.items()})
    widths = {s: tuple(size_value(d, D, H, **extra) for d in shape)
              for s, shape in shapes.items()}
    state0 = {s: (0.5 * rng.standard_normal((B, *w))).astype(dtype) for s, w in widths.items()}
    out = size_value(getattr(mod, "OUTPUT_SIZE", None) or mod.STATE_SIZES[mod.OUTPUT], D, H,
                     **extra)
    dhs = rng.standard_normal((T, B, out)).astype(dtype)
    dstate = {s: rng.standard_normal((B, *w)).astype(dtype) for s, w in widths.items()}
    extras = getattr(mod, "EXTRA_INPUTS", {})
    if extras:
        x = {mod.INPUT: x, **{n: rng.uniform(0, 1, (T, B, size_value(dim, D, H, **extra))).astype(dtype)
                              for n, dim in extras.items()}}
    return params, x, state0, dhs, dstate


def run(mod, params, x, state0=None):
    """``mod.forward`` on the input of :func:`problem`: an array, or a dict of every input."""
    if isinstance(x, dict):
        return mod.forward(params, x[mod.INPUT], state0,
                           **{n: a for n, a in x.items() if n != mod.INPUT})
    return mod.forward(params, x, state0)


def inputs(mod, x) -> dict:
    """The inputs of :func:`problem` by name, as ``backward`` keys their gradients."""
    return dict(x) if isinstance(x, dict) else {mod.INPUT: x}


#: Default sizes beyond D and H, for modules that have them: P below H, two heads, N = 2.
EXTRA_DEFAULTS = dict(P=2, NH=2, N=2)


def extra_sizes(mod, H, **given) -> dict:
    """The sizes a module has beyond D and H (its ``EXTRA_SIZES``), each as given or by
    default (``EXTRA_DEFAULTS``, or NH = H, one entry per head, where two heads do not
    divide H)."""
    names = getattr(mod, "EXTRA_SIZES", {})
    unknown = set(given) - set(names)
    if unknown:
        raise TypeError(f"{mod.CELL} has no sizes {sorted(unknown)}; its sizes beyond D and H "
                        f"are {sorted(names)}")
    out = {n: given.get(n, EXTRA_DEFAULTS[n]) for n in names}
    if "NH" in out and "NH" not in given and H % out["NH"]:
        out["NH"] = H
    return out


def total_loss(mod, dhs, dstate):
    """L(args) = Σ ⟨dhs, hs⟩ + Σ_s ⟨dstate_s, s_T⟩, args holding params, each input under its
    name and each s0."""
    names = [mod.INPUT, *getattr(mod, "EXTRA_INPUTS", {})]

    def loss(args):
        params = {k: args[k] for k in mod.PARAMS}
        xs = {n: args[n] for n in names}
        hs, state, _ = run(mod, params, xs if len(xs) > 1 else xs[mod.INPUT],
                           {s: args[f"{s}0"] for s in mod.STATES})
        return float(np.sum(hs * dhs) + sum(np.sum(state[s] * dstate[s]) for s in mod.STATES))
    return loss


def verify(cell, *, seed: int = 0, central_rtol: float = 1e-6, brute_force_rtol: float = 1e-9,
           raises: bool = True, **sizes) -> Report:
    """Derive ``cell`` (a :class:`~symlstm.Cell` or a shipped name), generate its NumPy module
    and check its outputs and every gradient against brute-force differentiation of the
    unrolled loss at 50 digits, twice (at moderate parameters, and at a saturated instance
    with parameters up to 20 times larger), and its gradients against central differences, in
    float64 at small sizes (``T``, ``B``, ``D``, ``H``; by default 3, 2, 2, 3, and D = H for a
    cell whose input has the hidden size; the sizes a cell declares beyond them, ``P`` and
    ``NH``, by default 2 and 2, with H = 4 for a cell with heads).

    Returns a :class:`Report`, one row per gradient with its worst relative error; raises
    :class:`VerifyError` with that report when any gradient is off (unless ``raises`` is
    False)."""
    from ..backends.code import numpy_module
    from ..derivation.bptt import derive
    from .gradcheck import directional_errors

    d = derive(cell)
    unknown = set(sizes) - set(SIZES) - set(d.cell.sizes)
    if unknown:
        raise TypeError(f"verify() takes the sizes {sorted(SIZES) + list(d.cell.sizes)}, got "
                        f"{sorted(unknown)}")
    s = {**SIZES, **({"H": 4} if "NH" in d.cell.sizes else {}), **sizes}   # two heads of 2
    bad = {k: n for k, n in s.items() if not isinstance(n, int) or isinstance(n, bool) or n < 1}
    if bad:
        raise ValueError(f"verify() sizes must be positive integers, got {bad}")
    if not isinstance(seed, int):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    if next(iter(d.cell.inputs.values())) == "H":   # D is the first input's size
        s["D"] = s["H"]
    mod = load_module(numpy_module(d), d.cell.name)
    s.update(extra_sizes(mod, s["H"], **{n: s[n] for n in d.cell.sizes if n in s}))
    moderate = _against_brute_force(d.cell, mod, s, seed)
    if moderate is None:
        raise ValueError(f"cell {d.cell.name!r}: at moderate parameters (twice the usual "
                         "initialisation) its exact values overflow float64, so no float64 "
                         "code can compute them; check the cell's equations")
    params, x, state0, dhs, dstate, grads, errors = moderate
    args = {**params, **inputs(mod, x), **{f"{k}0": v for k, v in state0.items()}}
    present = {k: g for k, g in grads.items() if k in args}
    central = directional_errors(total_loss(mod, dhs, dstate), args, present,
                                 rng=np.random.default_rng(seed), directions=3)
    factor, saturated = _saturated(d.cell, mod, s, seed)
    shapes = {**{k: np.shape(g) for k, g in grads.items()}, "forward": np.shape(dhs)}
    inf = float("inf")
    rows = tuple(Row(k, shapes.get(k, ()), central.get(k, inf) if k != "forward" else math.nan,
                     errors.get(k, inf), saturated.get(k, inf) if saturated else math.nan)
                 for k in dict.fromkeys([*grads, *errors, "forward"]))
    report = Report(d.cell.name, s, rows, central_rtol, brute_force_rtol, factor)
    if raises and not report.ok:
        raise VerifyError(report)
    return report


def _against_brute_force(cell, mod, sizes, seed, scale=2.0, input_scale=1.0):
    """Run the module forward and backward on one instance and measure every gradient, and
    the forward outputs and final states (``"forward"``), against brute force (right to 50
    digits).
    Returns the instance, the module's gradients and the errors by key."""
    from .bruteforce import unroll
    params, x, state0, dhs, dstate = problem(mod, seed=seed, scale=scale,
                                             input_scale=input_scale, **sizes)
    try:
        ref = unroll(cell, params, x, state0, dhs, dstate, sizes["D"], sizes["H"],
                     **{n: sizes[n] for n in cell.sizes})
    except ZeroDivisionError:   # an exact value beyond even the reference's range (log 0)
        return None
    if not _finite(ref):
        return None
    hs, state, cache = run(mod, params, x, state0)
    grads = mod.backward(params, cache, dhs, dstate)
    inf = float("inf")
    # a gradient the module leaves out, or one it adds, is as wrong as a wrong value
    errors = {k: _relative(grads[k], ref.grads[k]) if k in grads and k in ref.grads else inf
              for k in dict.fromkeys([*grads, *ref.grads])}
    errors["forward"] = max([_relative(hs, ref.outputs)]
                            + [_relative(state[k], ref.final[k]) for k in ref.final])
    return params, x, state0, dhs, dstate, grads, errors


def _saturated(cell, mod, sizes, seed):
    """The errors at the saturated instance: the largest parameter scale of
    ``SATURATED_SCALES`` at which every exact value fits in float64 (an instance whose exact
    loss or gradient overflows float64 tells nothing about the code)."""
    for factor in SATURATED_SCALES:
        with np.errstate(all="ignore"):   # judged by the values alone, NaN or inf included
            run = _against_brute_force(cell, mod, sizes, seed + 1, scale=factor,
                                       input_scale=SATURATED_INPUT)
        if run is not None:
            return factor, run[-1]
    return math.nan, {}


def _finite(ref) -> bool:
    values = [*ref.grads.values(), ref.outputs, *ref.final.values()]
    return all(np.all(np.abs(v) < 1e300) for v in values)


def _relative(got, want) -> float:
    """Largest element-wise difference, relative to the largest element of ``want`` (or to
    10⁻³ where the gradient is that small or exactly zero: then the generated code's rounding
    of terms that cancel is all that is measured)."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return float("inf")
    scale = max(float(np.max(np.abs(want), initial=0.0)), 1e-3)
    with np.errstate(all="ignore"):
        err = float(np.max(np.abs(got - want), initial=0.0)) / scale
    return err if np.isfinite(err) else float("inf")
