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
    """Random parameters, inputs, initial states and loss weights for ``mod``."""
    s = {**SIZES, **sizes}
    extra = extra_sizes(mod, s["H"], **{n: s.pop(n) for n in list(s) if n not in SIZES})
    keywords = {mod.EXTRA_SIZES[n]: v for n, v in extra.items()}
    rng = np.random.default_rng(seed)
    params = mod.init_params(s["D"], s["H"], rng=rng, dtype=dtype, **keywords)
    params = {k: (v * 2.0).astype(dtype) for k, v in params.items()}   # livelier gates
    x = rng.standard_normal((s["T"], s["B"], s["D"])).astype(dtype)
    width = {k: size_value(n, s["D"], s["H"], **extra) for k, n in mod.STATE_SIZES.items()}
    state0 = {k: rng.standard_normal((s["B"], width[k])).astype(dtype) for k in mod.STATES}
    dhs = rng.standard_normal((s["T"], s["B"], width[mod.OUTPUT])).astype(dtype)
    dstate = {k: rng.standard_normal((s["B"], width[k])).astype(dtype) for k in mod.STATES}
    return params, x, state0, dhs, dstate


@pytest.fixture(params=list(symlstm.CELLS))
def cell_name(request):
    return request.param
