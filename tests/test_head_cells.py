"""The per-head grammar, proven on random cells (``headcellgen.cells``): matrices per head made
by outer products and delta-rule corrections, applied to vectors (C q and Cᵀ q), scaled by
gates of one number per head, read through per-head sums.  Each drawn cell is derived and
its derivation, evaluated as written (``symlstm.checks.evaluated``), is held against brute
force of the unrolled loss (``symlstm.checks.bruteforce``, which never sees the derivation)
at one and two heads, with gradients of the final states in the loss; its generated NumPy
and torch modules (``symlstm.backends.heads``) against the derivation.  CI runs the same
cells every time; ``pytest -m slow`` runs hundreds from a fresh seed (``cellgen.slow``)."""
import importlib.util
import tempfile
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from cellgen import note_replay, slow  # noqa: E402
from headcellgen import cells  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402

import symlstm  # noqa: E402
from symlstm.backends.heads import heads_module  # noqa: E402
from symlstm.backends.torch import torch_module  # noqa: E402
from symlstm.checks import bruteforce, evaluated  # noqa: E402
from test_matrix_states import draw, rel  # noqa: E402


torch = pytest.importorskip("torch", reason="torch is installed by the README's test command")


def module(d, write=heads_module):
    """The cell's generated NumPy (or torch) module, imported from a temporary folder."""
    path = Path(tempfile.mkdtemp()) / "headcell.py"
    path.write_text(write(d))
    spec = importlib.util.spec_from_file_location("headcell", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def check_module(mod, cell, params, x, state0, dhs, dstate, NH, grads):
    """The module's gradients against the derivation's, states in the module's layout."""
    def layout(state):   # an H-vector state is (B, NH, HS) in the module
        return {s: v.reshape(len(v), NH, -1) if cell.states[s] == "H" else v
                for s, v in state.items()}
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        _, _, cache = mod.forward(params, x, layout(state0))
        mine = mod.backward(params, cache, dhs, layout(dstate))
    for key, g in grads.items():
        assert rel(mine[key].reshape(g.shape), g) < 1e-10, (NH, key)


def check_torch_module(mod, cell, params, x, state0, dhs, dstate, NH, grads):
    """The torch module's derived backward, through autograd, against the derivation's."""
    def layout(state):
        return {s: torch.tensor(v.reshape(len(v), NH, -1) if cell.states[s] == "H" else v,
                                requires_grad=True) for s, v in state.items()}
    P = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    X, S0 = torch.tensor(x, requires_grad=True), layout(state0)
    hs, final = mod.forward(P, X, S0)
    loss = (hs * torch.tensor(dhs)).sum() + sum(
        (final[s] * torch.tensor(v).reshape(final[s].shape)).sum() for s, v in dstate.items())
    loss.backward()
    mine = {**{k: v.grad for k, v in P.items()}, "x": X.grad,
            **{f"{s}0": v.grad for s, v in S0.items()}}
    for key, g in grads.items():
        assert rel(mine[key].numpy().reshape(g.shape), g) < 1e-10, ("torch", NH, key)


def check_cell(cell):
    d = symlstm.derive(cell)
    mod, torch_mod = module(d), module(d, torch_module)
    for NH in (1, 2):
        params, x, state0, dhs, dstate, sizes = draw(cell, NH, 2, seed=NH)
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            grads, outputs, final = evaluated.gradients(d, params, x, state0, dhs, dstate,
                                                        **sizes)
        ref = bruteforce.unroll(cell, params, x, state0, dhs, dstate, digits=60, **sizes)
        assert rel(outputs, ref.outputs) < 1e-12
        for s in cell.states:
            assert rel(final[s], ref.final[s]) < 1e-12, s
        assert set(grads) == set(ref.grads)
        check_module(mod, cell, params, x, state0, dhs, dstate, NH, grads)
        check_torch_module(torch_mod, cell, params, x, state0, dhs, dstate, NH, grads)
        for key, g in ref.grads.items():
            assert rel(grads[key], g) < 1e-9, (NH, key, [str(eq) for eq in cell.equations])


@settings(max_examples=30, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(cells())
def test_random_cells_with_matrices_per_head_get_correct_gradients(cell):
    check_cell(cell)


@pytest.mark.slow
@slow(300)
@given(cells())
def test_many_random_cells_with_matrices_per_head(cell):
    note_replay("test_many_random_cells_with_matrices_per_head")
    check_cell(cell)
