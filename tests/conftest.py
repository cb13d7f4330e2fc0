import importlib

import numpy as np
import pytest

import symlstm


SIZES = dict(T=5, B=3, D=4, H=3)


def generated(name):
    """The committed generated module for a cell, imported as users do."""
    return importlib.import_module(f"symlstm.generated.{name}")


def problem(mod, *, seed=0, dtype=np.float64, **sizes):
    """Random parameters, inputs, initial states and loss weights for ``mod``."""
    s = {**SIZES, **sizes}
    rng = np.random.default_rng(seed)
    params = mod.init_params(s["D"], s["H"], rng=rng, dtype=dtype)
    params = {k: (v * 2.0).astype(dtype) for k, v in params.items()}   # livelier gates
    x = rng.standard_normal((s["T"], s["B"], s["D"])).astype(dtype)
    state0 = {k: rng.standard_normal((s["B"], s["H"])).astype(dtype) for k in mod.STATES}
    dhs = rng.standard_normal((s["T"], s["B"], s["H"])).astype(dtype)
    dstate = {k: rng.standard_normal((s["B"], s["H"])).astype(dtype) for k in mod.STATES}
    return params, x, state0, dhs, dstate


@pytest.fixture(params=list(symlstm.CELLS))
def cell_name(request):
    return request.param
