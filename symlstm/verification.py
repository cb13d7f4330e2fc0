"""``verify(cell)``: derive a cell, generate its NumPy module, and check the module's gradients
two independent ways at small sizes.

1. Central differences of the module's own forward pass (``symlstm.gradcheck``).
2. Brute force: the cell unrolled over T steps and differentiated directly
   (``symlstm.bruteforce``), which never sees the derivation.

Both use the loss L = Σ_t ⟨Δh_t, h_t⟩ + Σ_s ⟨δs_T, s_T⟩ with random weights Δh_t and δs_T.
"""
from __future__ import annotations

import types
from typing import NamedTuple

import numpy as np

from .cell import size_value

#: Default sizes: small enough for brute force, with D ≠ H so that shapes cannot mix.
SIZES = dict(T=3, B=2, D=2, H=3)


class Row(NamedTuple):
    """One gradient: its key in ``backward``'s dict, shape, and worst relative errors."""
    key: str
    shape: tuple[int, ...]
    central: float
    brute_force: float


class Report(NamedTuple):
    """What :func:`verify` measured, one row per gradient; ``ok`` when every error is within
    its tolerance."""
    cell: str
    sizes: dict
    rows: tuple[Row, ...]
    central_rtol: float
    brute_force_rtol: float

    def within(self, row: Row) -> bool:
        return row.central <= self.central_rtol and row.brute_force <= self.brute_force_rtol

    @property
    def ok(self) -> bool:
        return all(self.within(r) for r in self.rows)

    def __str__(self) -> str:
        sizes = ", ".join(f"{k}={v}" for k, v in self.sizes.items())
        lines = [f"verify({self.cell!r}) at {sizes}: worst relative error of each gradient",
                 f"  {'gradient':<12} {'shape':<12} {'central diff.':>14} {'brute force':>12}"]
        for r in self.rows:
            flag = "" if self.within(r) else "   <-- wrong"
            lines.append(f"  {r.key:<12} {str(r.shape):<12} {r.central:>14.1e} "
                         f"{r.brute_force:>12.1e}{flag}")
        lines.append(f"  tolerances: central differences {self.central_rtol:.0e}, brute force "
                     f"{self.brute_force_rtol:.0e}; {'all within' if self.ok else 'FAILED'}")
        return "\n".join(lines)


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


def problem(mod, *, T, B, D, H, seed=0, dtype=np.float64):
    """Random parameters, input, initial states and loss weights for a generated module."""
    rng = np.random.default_rng(seed)
    params = {k: (2 * v).astype(dtype)   # livelier gates than the usual initialisation
              for k, v in mod.init_params(D, H, rng=rng, dtype=dtype).items()}
    n = size_value(mod.INPUT_SIZE, D, H)
    x = rng.standard_normal((T, B, n)).astype(dtype)
    widths = {s: size_value(dim, D, H) for s, dim in mod.STATE_SIZES.items()}
    state0 = {s: (0.5 * rng.standard_normal((B, w))).astype(dtype) for s, w in widths.items()}
    dhs = rng.standard_normal((T, B, widths[mod.OUTPUT])).astype(dtype)
    dstate = {s: rng.standard_normal((B, w)).astype(dtype) for s, w in widths.items()}
    return params, x, state0, dhs, dstate


def total_loss(mod, dhs, dstate):
    """L(args) = Σ ⟨dhs, hs⟩ + Σ_s ⟨dstate_s, s_T⟩, args holding params, x and each s0."""
    def loss(args):
        params = {k: args[k] for k in mod.PARAMS}
        hs, state, _ = mod.forward(params, args[mod.INPUT], {s: args[f"{s}0"] for s in mod.STATES})
        return float(np.sum(hs * dhs) + sum(np.sum(state[s] * dstate[s]) for s in mod.STATES))
    return loss


def verify(cell, *, seed: int = 0, central_rtol: float = 1e-6, brute_force_rtol: float = 1e-9,
           raises: bool = True, **sizes) -> Report:
    """Derive ``cell`` (a :class:`~symlstm.Cell` or a shipped name), generate its NumPy module
    and check every gradient against central differences and against brute-force
    differentiation of the unrolled loss, in float64 at small sizes (``T``, ``B``, ``D``,
    ``H``; by default 3, 2, 2, 3, and D = H for a cell whose input has the hidden size).

    Returns a :class:`Report`, one row per gradient with its worst relative error; raises
    :class:`VerifyError` with that report when any gradient is off (unless ``raises`` is
    False)."""
    from . import derive
    from .bruteforce import loss_gradients
    from .gradcheck import directional_errors
    from .render import numpy_module

    d = derive(cell)
    unknown = set(sizes) - set(SIZES)
    if unknown:
        raise TypeError(f"verify() takes the sizes {sorted(SIZES)}, got {sorted(unknown)}")
    s = {**SIZES, **sizes}
    bad = {k: n for k, n in s.items() if not isinstance(n, int) or isinstance(n, bool) or n < 1}
    if bad:
        raise ValueError(f"verify() sizes must be positive integers, got {bad}")
    if not isinstance(seed, int):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    if "H" in d.cell.inputs.values():
        s["D"] = s["H"]
    mod = load_module(numpy_module(d), d.cell.name)
    params, x, state0, dhs, dstate = problem(mod, seed=seed, **s)
    _, _, cache = mod.forward(params, x, state0)
    grads = mod.backward(params, cache, dhs, dstate)
    args = {**params, mod.INPUT: x, **{f"{k}0": v for k, v in state0.items()}}
    present = {k: g for k, g in grads.items() if k in args}
    central = directional_errors(total_loss(mod, dhs, dstate), args, present,
                                 rng=np.random.default_rng(seed), directions=3)
    brute = loss_gradients(d.cell, {**params, mod.INPUT: x, "state0": state0, "dhs": dhs,
                                    "dstate": dstate}, s["D"], s["H"])
    # a gradient the module leaves out, or one it adds, is as wrong as a wrong value
    inf = float("inf")
    rows = tuple(Row(k, tuple(np.shape(grads.get(k, brute.get(k)))), central.get(k, inf),
                     _relative(grads[k], brute[k]) if k in grads and k in brute else inf)
                 for k in dict.fromkeys([*grads, *brute]))
    report = Report(d.cell.name, s, rows, central_rtol, brute_force_rtol)
    if raises and not report.ok:
        raise VerifyError(report)
    return report


def _relative(got, want) -> float:
    """Largest element-wise difference, relative to the largest element of ``want`` (or to
    10⁻³ where the gradient is that small or exactly zero: then the generated code's rounding
    of terms that cancel is all that is measured)."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return float("inf")
    scale = max(float(np.max(np.abs(want), initial=0.0)), 1e-3)
    err = float(np.max(np.abs(got - want), initial=0.0)) / scale
    return err if np.isfinite(err) else float("inf")
