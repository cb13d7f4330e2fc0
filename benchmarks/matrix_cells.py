"""The rows of the cells with a matrix per head or per channel: mlstm and gated_delta_net at
(T, B, NH, d) and s6 at (T, B, H, N), MATRIX_SHAPES, each cell's Numba module against a torch
autograd loop of the same recurrence, one training step as in the other rows, gradients
checked against the cell's NumPy module first.  The modules are rendered from
``symlstm.derive(name)`` into a folder of the system's temporary directory (so that Numba's
disk cache lasts between runs, and a row times what the installed symlstm writes) and
imported from there.  Also what each Numba module caches per step (cache_table)."""
from __future__ import annotations

import importlib.util
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from contenders import NUMBA_MISSING, TOLERANCE, leaf, max_rel_error, take_grads
from torch_loops import gated_delta_hs, mlstm_hs, s6_hs

#: (T, B, NH, d) with D = H = NH d for the cells with heads; (T, B, H, N), D = H, for s6.
MATRIX_SHAPES = {"mlstm": (256, 4, 4, 64), "gated_delta_net": (256, 4, 4, 64),
                 "s6": (256, 4, 256, 16)}
QUICK_STEPS = 64    # --quick: a quarter of the steps
MODULES = Path(tempfile.gettempdir()) / "symlstm-benchmarks"   # rendered modules


def load_modules(name):
    """The cell's NumPy and Numba modules, rendered from its derivation and imported, or
    (NumPy module, None) with why the Numba one is missing."""
    import symlstm
    from symlstm.backends.code import numpy_module
    derivation = symlstm.derive(name)
    sources = {f"{name}_numpy": numpy_module}
    if not NUMBA_MISSING:
        from symlstm.backends.numba import numba_module
        sources[f"{name}_numba"] = numba_module
    MODULES.mkdir(parents=True, exist_ok=True)
    made = []
    for stem, render in sources.items():
        path = MODULES / f"{stem}.py"
        text = render(derivation)
        if not path.exists() or path.read_text() != text:   # an unchanged file keeps its cache
            path.write_text(text)
        spec = importlib.util.spec_from_file_location(stem, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[stem] = module   # numba's disk cache finds the module again by its name
        spec.loader.exec_module(module)
        made.append(module)
    return (made[0], made[1], None) if len(made) == 2 else (made[0], None, NUMBA_MISSING)


def matrix_problem(module, shape, dtype, seed=0):
    """init_params' parameters, x, initial states in the module's layouts and dL/dhs."""
    T, B, a, b = shape
    channels = "N" in module.EXTRA_SIZES
    H = D = a if channels else a * b
    rng = np.random.default_rng(seed)
    if channels:   # (T, B, H, N)
        params = module.init_params(D, H, rng=rng, dtype=dtype, state_size=b)
        sizes = {"H": H, "N": b}
    else:          # (T, B, NH, d)
        params = module.init_params(D, H, rng=rng, dtype=dtype, num_heads=a)
        sizes = {"NH": a, "H/NH": b}
    draw = lambda *s: rng.standard_normal(s).astype(dtype)   # noqa: E731
    state0 = {s: draw(B, *(sizes[k] for k in dims)) for s, dims in module.STATE_SHAPES.items()}
    if "m" in state0:
        state0["m"] = np.zeros_like(state0["m"])
    if "S" in state0:   # a state of the size the recurrence keeps: |S| ~ 1 per column
        state0["S"] /= math.sqrt(b)
    return {"params": params, "x": draw(T, B, D), "state0": state0, "dhs": draw(T, B, H),
            "shape": shape, "dtype": dtype}


def build_module(module, prob):
    """A generated module (NumPy or Numba): forward() + backward()."""
    def step():
        _, _, cache = module.forward(prob["params"], prob["x"], prob["state0"])
        return module.backward(prob["params"], cache, prob["dhs"])
    return step, dict


# ----------------------------------------------------------------------------- torch loops

def build_torch_loop(hs_of):
    """A torch loop's step: the loss sum(hs * dhs), backward to every leaf; gradients under
    the modules' names (state s's is s + "0")."""
    def build(prob):
        NH = prob["shape"][2]
        P = {k: leaf(v) for k, v in prob["params"].items()}
        x = leaf(prob["x"])
        s0 = {s: leaf(v) for s, v in prob["state0"].items()}
        leaves = [*P.values(), x, *s0.values()]
        dhs = torch.from_numpy(prob["dhs"])

        def step():
            (hs_of(P, x, s0, NH) * dhs).sum().backward()
            return take_grads(leaves)

        def to_grads(raw):
            raw = [g.numpy() for g in raw]
            out = dict(zip(P, raw))
            out["x"] = raw[len(P)]
            out.update({f"{s}0": g for s, g in zip(s0, raw[len(P) + 1:])})
            return out
        return step, to_grads
    return build


MATRIX_CELLS = {"mlstm": build_torch_loop(mlstm_hs),
                "gated_delta_net": build_torch_loop(gated_delta_hs),
                "s6": build_torch_loop(s6_hs)}


# ----------------------------------------------------------------------------- the rows

def run_matrix_case(cell, shape, dtype, repeats, min_sample, time_round_robin):
    """One row: the Numba module's and the torch loop's gradients against the NumPy module's,
    then timing of those that agree; the record has the same keys as cells.py's rows."""
    T, B, a, b = shape
    H = a if cell == "s6" else a * b
    record = {"cell": cell, "shape": [T, B, H, H], "heads": [a, b], "dtype": dtype,
              "tolerance": TOLERANCE[dtype]}
    numpy_module, numba_module, why = load_modules(cell)
    prob = matrix_problem(numpy_module, shape, dtype)
    built, skipped = {"numpy": build_module(numpy_module, prob),
                      "torch_loop": MATRIX_CELLS[cell](prob)}, {}
    if numba_module is None:
        skipped["numba"] = why
    else:
        built["numba"] = build_module(numba_module, prob)
    grads, first_call = {}, {}
    for n, (step, to_grads) in built.items():
        t0 = time.perf_counter()
        grads[n] = to_grads(step())
        first_call[n] = time.perf_counter() - t0
    errors = {n: max_rel_error(g, grads["numpy"], dtype)
              for n, g in grads.items() if n != "numpy"}
    wrong = sorted(n for n, e in errors.items() if not e <= TOLERANCE[dtype])
    steps = {n: step for n, (step, _) in built.items() if n not in wrong and n != "numpy"}
    times = time_round_robin(steps, repeats, min_sample)
    med = {n: t["median_s"] for n, t in times.items()}
    ratio = med["numba"] / med["torch_loop"] if {"numba", "torch_loop"} <= set(med) else None
    cache = cache_table(numba_module, prob) if numba_module else None
    return {**record, "skipped": None, "contenders_skipped": skipped, "max_rel_error": errors,
            "wrong": wrong, "first_call_s": first_call, "times": times,
            "ratios": {"numba/torch_loop": ratio}, "cache": cache}


# ----------------------------------------------------------------------------- memory

CACHE_KINDS = {"S_": "state, one per step and the initial one", "C_": "value of a step",
               "P_": "parameter as the loop reads it", "K_": "value of the parameters alone, once",
               "X_": "the input's product by a parameter, every step",
               "input": "the input"}


def cache_table(module, prob):
    """What the module's forward() keeps for backward(): each array of its cache with shape,
    bytes per time step and kind, whether it is a copy or a view of a parameter or the input,
    and the totals against the least a backward pass needs: the states, one per step, and
    the input."""
    T = prob["shape"][0]
    _, _, cache = module.forward(prob["params"], prob["x"], prob["state0"])
    params = list(prob["params"].values())
    rows = []
    for name, a in cache.items():
        if not isinstance(a, np.ndarray):
            continue
        kind = next(v for k, v in CACHE_KINDS.items() if name.startswith(k))
        view = any(np.shares_memory(a, g) for g in [prob["x"], *params])
        # a parameter is there anyway unless the module copied it; the input is kept alive
        per_step = 0 if name.startswith("P_") and view else a.nbytes / T
        rows.append({"name": name, "shape": list(a.shape), "kind": kind, "view": view,
                     "bytes_per_step": per_step})
    state_step = sum(r["bytes_per_step"] for r in rows if r["name"].startswith("S_"))
    values_step = sum(r["bytes_per_step"] for r in rows if r["name"][:2] in ("C_", "K_", "X_"))
    least = state_step + prob["x"].nbytes / T
    total = sum(r["bytes_per_step"] for r in rows)
    return {"rows": rows, "states_per_step": state_step, "values_per_step": values_step,
            "least_per_step": least, "total_per_step": total, "ratio_to_least": total / least}
