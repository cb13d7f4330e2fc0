"""A numerical gradient checker: central differences along random directions.

For a scalar loss L(θ) and a claimed gradient g, compare ⟨g, u⟩ with the central
difference (L(θ + εu) − L(θ − εu)) / 2ε for random unit directions u, refined by one
Richardson step (ε and ε/2) so the truncation error is O(ε⁴).  A wrong element of g
changes ⟨g, u⟩ for almost every u, so a few directions per argument suffice.
Directional derivatives far smaller than L itself, where the differences measure
nothing but rounding, are compared against 10⁻⁴·|L| instead of their own size.
"""
from __future__ import annotations

import numpy as np


class GradientMismatch(AssertionError):
    """The analytic and numerical directional derivatives disagree."""


def directional_errors(loss, args: dict, grads: dict, *, rng=None, directions: int = 3,
                       eps: float = 1e-4) -> dict[str, float]:
    """Relative error of ⟨grads[k], u⟩ against central differences of ``loss`` for each key."""
    rng = np.random.default_rng(0) if rng is None else rng
    # below this size a directional derivative is lost in the rounding of L itself
    floor = 1e-4 * abs(loss(args)) + 1e-12
    out = {}
    for key, grad in grads.items():
        worst = 0.0
        for _ in range(directions):
            u = rng.standard_normal(np.shape(args[key]))
            u /= np.linalg.norm(u)
            coarse, fine = (_central(loss, args, key, u, e) for e in (eps, eps / 2))
            numeric = (4 * fine - coarse) / 3
            analytic = float(np.sum(grad * u))
            scale = max(abs(numeric) + abs(analytic), floor)
            worst = max(worst, abs(numeric - analytic) / scale)
        out[key] = worst
    return out


def _central(loss, args, key, u, eps):
    plus, minus = dict(args), dict(args)
    plus[key], minus[key] = args[key] + eps * u, args[key] - eps * u
    return (loss(plus) - loss(minus)) / (2 * eps)


def check_grads(loss, args: dict, grads: dict, *, rtol: float = 1e-6, **kwargs) -> None:
    """Raise :class:`GradientMismatch` listing every argument whose gradient is off by > rtol."""
    errors = directional_errors(loss, args, grads, **kwargs)
    bad = {k: e for k, e in errors.items() if not e <= rtol}
    if bad:
        lines = "\n".join(f"  {k}: relative error {e:.2e}" for k, e in sorted(bad.items()))
        raise GradientMismatch(f"gradients disagree with central differences (rtol {rtol}):\n{lines}")
