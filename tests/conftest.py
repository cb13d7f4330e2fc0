import importlib

import numpy as np
import pytest

import symlstm
from symlstm.cell.parts import size_value
from symlstm.checks.verification import extra_sizes


SIZES = dict(T=5, B=3, D=4, H=3)


def generated(name):
    """The committed generated module for a cell, imported as users do."""
    return importlib.import_module(f"symlstm.generated.{name}")


def size_keywords(mod, H):
    """The keywords ``init_params`` takes for the sizes beyond D and H (``proj_size=2``), by
    default, and those sizes by name."""
    extra = extra_sizes(mod, H)
    return {mod.EXTRA_SIZES[n]: v for n, v in extra.items()}, extra


def problem(mod, *, seed=0, dtype=np.float64, **sizes):
    """Random parameters, inputs, initial states and loss weights for ``mod``.  The input is
    an array, or for a module with extra per-step inputs a dict of every input's (the extra
    ones uniform in [0, 1]); :func:`split` takes it apart.  A module whose input has the
    hidden size gets D = H."""
    s = {**SIZES, **sizes}
    if mod.INPUT_SIZE == "H":
        s["D"] = s["H"]
    extra = extra_sizes(mod, s["H"], **{n: s.pop(n) for n in list(s) if n not in SIZES})
    keywords = {mod.EXTRA_SIZES[n]: v for n, v in extra.items()}
    rng = np.random.default_rng(seed)
    params = mod.init_params(s["D"], s["H"], rng=rng, dtype=dtype, **keywords)
    params = {k: (v * 2.0).astype(dtype) for k, v in params.items()}   # livelier gates
    x = rng.standard_normal((s["T"], s["B"], s["D"])).astype(dtype)
    shapes = getattr(mod, "STATE_SHAPES", None) or {k: (n,) for k, n in mod.STATE_SIZES.items()}
    state_shape = {k: (s["B"], *(size_value(n, s["D"], s["H"], **extra) for n in shape))
                   for k, shape in shapes.items()}
    out = size_value(getattr(mod, "OUTPUT_SIZE", None) or mod.STATE_SIZES[mod.OUTPUT],
                     s["D"], s["H"], **extra)
    state0 = {k: rng.standard_normal(state_shape[k]).astype(dtype) for k in mod.STATES}
    dhs = rng.standard_normal((s["T"], s["B"], out)).astype(dtype)
    dstate = {k: rng.standard_normal(state_shape[k]).astype(dtype) for k in mod.STATES}
    extras = getattr(mod, "EXTRA_INPUTS", {})
    if extras:
        x = {mod.INPUT: x, **{n: rng.uniform(0, 1, (s["T"], s["B"], s[dim])).astype(dtype)
                              for n, dim in extras.items()}}
    return params, x, state0, dhs, dstate


def split(mod, x):
    """The first input's array and the extra per-step inputs by name (none for most cells)."""
    if not isinstance(x, dict):
        return x, {}
    extra = dict(x)
    return extra.pop(mod.INPUT), extra


@pytest.fixture(params=list(symlstm.CELLS))
def cell_name(request):
    return request.param
