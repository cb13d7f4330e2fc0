"""A numerical gradient checker: central differences along random directions.

For a scalar loss L(θ) and a claimed gradient g, compare ⟨g, u⟩ with
(L(θ + εu) − L(θ − εu)) / 2ε for random unit directions u.  A wrong element of g
changes ⟨g, u⟩ for almost every u, so a few directions per argument suffice.
"""
from __future__ import annotations

import numpy as np


class GradientMismatch(AssertionError):
    """The analytic and numerical directional derivatives disagree."""


def directional_errors(loss, args: dict, grads: dict, *, rng=None, directions: int = 3,
                       eps: float = 1e-5) -> dict[str, float]:
    """Relative error of ⟨grads[k], u⟩ against central differences of ``loss`` for each key."""
    rng = np.random.default_rng(0) if rng is None else rng
    out = {}
    for key, grad in grads.items():
        worst = 0.0
        for _ in range(directions):
            u = rng.standard_normal(np.shape(args[key]))
            u /= np.linalg.norm(u)
            plus, minus = dict(args), dict(args)
            plus[key], minus[key] = args[key] + eps * u, args[key] - eps * u
            numeric = (loss(plus) - loss(minus)) / (2 * eps)
            analytic = float(np.sum(grad * u))
            worst = max(worst, abs(numeric - analytic) / max(1e-8, abs(numeric) + abs(analytic)))
        out[key] = worst
    return out


def check_grads(loss, args: dict, grads: dict, *, rtol: float = 1e-6, **kwargs) -> None:
    """Raise :class:`GradientMismatch` listing every argument whose gradient is off by > rtol."""
    errors = directional_errors(loss, args, grads, **kwargs)
    bad = {k: e for k, e in errors.items() if not e <= rtol}
    if bad:
        lines = "\n".join(f"  {k}: relative error {e:.2e}" for k, e in sorted(bad.items()))
        raise GradientMismatch(f"gradients disagree with central differences (rtol {rtol}):\n{lines}")
