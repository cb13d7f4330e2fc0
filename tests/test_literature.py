"""Cells from the recurrent-network literature that symlstm does not ship: each is written once
in symlstm's grammar and once directly in PyTorch, and the generated module's gradients
must match torch's autograd of the PyTorch version to 1e-10 in float64.

- MGU: the minimal gated unit (Zhou et al., 2016).
- MUT1, MUT2, MUT3: the architectures found by Jozefowicz et al., "An Empirical Exploration
  of Recurrent Network Architectures" (2015); MUT1 adds tanh(x_t) to hidden-size vectors,
  so its input has the hidden size.
- IndRNN: the independently recurrent network (Li et al., 2018), relu(W x + u ⊙ h + b).
- JANET: the forget-gate-only LSTM (van der Westhuizen and Lasenby, 2018) with its shift β.
- The Nested LSTM (Moniz and Krueger, 2018), two LSTM layers as one cell, and the LSTM with a
  projection of size 8 (``tests/literature_cells.py``).

Each is checked through all three backends: the NumPy, Numba and PyTorch modules.
"""
import numpy as np
import pytest
from literature_cells import nested_lstm, projected_lstm, stacked_lstm

import symlstm
from symlstm import CellBuilder, matvec, relu, sigma, tanh
from symlstm.backends.code import numpy_module
from symlstm.checks.verification import load_module, problem


torch = pytest.importorskip("torch")


def _gates(b, *names, x_size="D"):
    return ({g: b.param(f"W_{g}", "H", x_size) for g in names},
            {g: b.param(f"R_{g}", "H", "H") for g in names},
            {g: b.param(f"b_{g}", "H") for g in names})


def mgu():
    b = CellBuilder("mgu", "Minimal gated unit")
    x, h = b.input("x"), b.state("h")
    W, R, c = _gates(b, "f", "n")
    f = b.let("f", sigma(matvec(W["f"], x) + matvec(R["f"], h) + c["f"]))
    u = b.let("u", f * h)
    n = b.let("n", tanh(matvec(W["n"], x) + matvec(R["n"], u) + c["n"]))
    b.let("h", (1 - f) * h + f * n)
    return b.build()


def torch_mgu(p, x, h):
    f = torch.sigmoid(x @ p["W_f"].T + h @ p["R_f"].T + p["b_f"])
    n = torch.tanh(x @ p["W_n"].T + (f * h) @ p["R_n"].T + p["b_n"])
    return {"h": (1 - f) * h + f * n}


def mut1():
    b = CellBuilder("mut1", "MUT1")
    x, h = b.input("x", "H"), b.state("h")
    W_z, W_r, R_r, R_h = (b.param(n, "H", "H") for n in ("W_z", "W_r", "R_r", "R_h"))
    b_z, b_r, b_h = (b.param(n, "H") for n in ("b_z", "b_r", "b_h"))
    z = b.let("z", sigma(matvec(W_z, x) + b_z))
    r = b.let("r", sigma(matvec(W_r, x) + matvec(R_r, h) + b_r))
    u = b.let("u", r * h)
    b.let("h", tanh(matvec(R_h, u) + tanh(x) + b_h) * z + h * (1 - z))
    return b.build()


def torch_mut1(p, x, h):
    z = torch.sigmoid(x @ p["W_z"].T + p["b_z"])
    r = torch.sigmoid(x @ p["W_r"].T + h @ p["R_r"].T + p["b_r"])
    return {"h": torch.tanh((r * h) @ p["R_h"].T + torch.tanh(x) + p["b_h"]) * z + h * (1 - z)}


def mut2():
    b = CellBuilder("mut2", "MUT2")
    x, h = b.input("x", "H"), b.state("h")
    W_z, R_z, R_r, R_h, W_h = (b.param(n, "H", "H") for n in ("W_z", "R_z", "R_r", "R_h", "W_h"))
    b_z, b_r, b_h = (b.param(n, "H") for n in ("b_z", "b_r", "b_h"))
    z = b.let("z", sigma(matvec(W_z, x) + matvec(R_z, h) + b_z))
    r = b.let("r", sigma(x + matvec(R_r, h) + b_r))
    u = b.let("u", r * h)
    b.let("h", tanh(matvec(R_h, u) + matvec(W_h, x) + b_h) * z + h * (1 - z))
    return b.build()


def torch_mut2(p, x, h):
    z = torch.sigmoid(x @ p["W_z"].T + h @ p["R_z"].T + p["b_z"])
    r = torch.sigmoid(x + h @ p["R_r"].T + p["b_r"])
    return {"h": torch.tanh((r * h) @ p["R_h"].T + x @ p["W_h"].T + p["b_h"]) * z + h * (1 - z)}


def mut3():
    b = CellBuilder("mut3", "MUT3")
    x, h = b.input("x"), b.state("h")
    W_z, W_r, W_h = (b.param(n, "H", "D") for n in ("W_z", "W_r", "W_h"))
    R_z, R_r, R_h = (b.param(n, "H", "H") for n in ("R_z", "R_r", "R_h"))
    b_z, b_r, b_h = (b.param(n, "H") for n in ("b_z", "b_r", "b_h"))
    g = b.let("g", tanh(h))
    z = b.let("z", sigma(matvec(W_z, x) + matvec(R_z, g) + b_z))
    r = b.let("r", sigma(matvec(W_r, x) + matvec(R_r, h) + b_r))
    u = b.let("u", r * h)
    b.let("h", tanh(matvec(R_h, u) + matvec(W_h, x) + b_h) * z + h * (1 - z))
    return b.build()


def torch_mut3(p, x, h):
    z = torch.sigmoid(x @ p["W_z"].T + torch.tanh(h) @ p["R_z"].T + p["b_z"])
    r = torch.sigmoid(x @ p["W_r"].T + h @ p["R_r"].T + p["b_r"])
    return {"h": torch.tanh((r * h) @ p["R_h"].T + x @ p["W_h"].T + p["b_h"]) * z + h * (1 - z)}


def indrnn():
    b = CellBuilder("indrnn", "IndRNN")
    x, h = b.input("x"), b.state("h")
    W, u, c = b.param("W", "H", "D"), b.param("u", "H"), b.param("b", "H")
    b.let("h", relu(matvec(W, x) + u * h + c))
    return b.build()


def torch_indrnn(p, x, h):
    return {"h": torch.relu(x @ p["W"].T + p["u"] * h + p["b"])}


def janet(beta=1):
    b = CellBuilder("janet", "JANET")
    x, h = b.input("x"), b.state("h")
    W, R, c = _gates(b, "f", "c")
    s = b.let("s", matvec(W["f"], x) + matvec(R["f"], h) + c["f"])
    n = b.let("n", tanh(matvec(W["c"], x) + matvec(R["c"], h) + c["c"]))
    b.let("h", sigma(s) * h + (1 - sigma(s - beta)) * n)
    return b.build()


def torch_janet(p, x, h, beta=1):
    s = x @ p["W_f"].T + h @ p["R_f"].T + p["b_f"]
    n = torch.tanh(x @ p["W_c"].T + h @ p["R_c"].T + p["b_c"])
    return {"h": torch.sigmoid(s) * h + (1 - torch.sigmoid(s - beta)) * n}


def _torch_lstm_gates(p, x, h, suffix=""):
    pre = {g: x @ p[f"W_{g}{suffix}"].T + h @ p[f"R_{g}{suffix}"].T + p[f"b_{g}{suffix}"]
           for g in "zifo"}
    return (torch.tanh(pre["z"]), torch.sigmoid(pre["i"]), torch.sigmoid(pre["f"]),
            torch.sigmoid(pre["o"]))


def torch_nested_lstm(p, x, h, c, d):
    z, i, f, o = _torch_lstm_gates(p, x, h)
    zn, i_n, fn, on = _torch_lstm_gates(p, i * z, f * c, "2")
    d = fn * d + i_n * zn
    c = on * torch.tanh(d)
    return {"h": o * torch.tanh(c), "c": c, "d": d}


def torch_stacked_lstm(p, x, h1, c1, h, c):
    z, i, f, o = _torch_lstm_gates(p, x, h1, "1")
    c1 = f * c1 + i * z
    h1 = o * torch.tanh(c1)
    z, i, f, o = _torch_lstm_gates(p, h1, h, "2")
    c = f * c + i * z
    return {"h1": h1, "c1": c1, "h": o * torch.tanh(c), "c": c}


def torch_projected_lstm(p, x, h, c):
    z, i, f, o = _torch_lstm_gates(p, x, h)
    c = f * c + i * z
    return {"h": (o * torch.tanh(c)) @ p["W_hr"].T, "c": c}


CELLS = {"nested_lstm": (nested_lstm, torch_nested_lstm),
         "stacked_lstm": (stacked_lstm, torch_stacked_lstm),
         "projected_lstm": (projected_lstm, torch_projected_lstm),
         "mgu": (mgu, torch_mgu), "mut1": (mut1, torch_mut1), "mut2": (mut2, torch_mut2),
         "mut3": (mut3, torch_mut3), "indrnn": (indrnn, torch_indrnn),
         "janet": (janet, torch_janet)}


def torch_gradients(step, params, x, state0, dhs, dstate, output="h"):
    """Autograd of the PyTorch cell over the sequence, for the loss verify() uses."""
    leaves = {k: torch.tensor(v, requires_grad=True) for k, v in
              {**params, "x": x, **{f"{s}0": v for s, v in state0.items()}}.items()}
    state = {s: leaves[f"{s}0"] for s in state0}
    loss = 0
    for t in range(x.shape[0]):
        state = step(leaves, leaves["x"][t], *state.values())
        loss = loss + (state[output] * torch.tensor(dhs[t])).sum()
    loss = loss + sum((state[s] * torch.tensor(dstate[s])).sum() for s in state)
    loss.backward()
    return {k: v.grad.numpy() for k, v in leaves.items()}


def _numpy(d, tmp_path):
    return load_module(numpy_module(d), d.cell.name)


def _numba(d, tmp_path):
    pytest.importorskip("numba", reason="numba is installed by the README's test command")
    import importlib.util
    import sys

    from symlstm.backends.numba import numba_module
    path = tmp_path / f"{d.cell.name}.py"
    path.write_text(numba_module(d))
    name = f"numba_literature_{tmp_path.name}_{d.cell.name}"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = sys.modules[name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class _TorchAsNumpy:
    """The torch module behind the NumPy modules' forward/backward contract: backward is
    autograd through the module's own derived backward pass (its autograd.Function)."""

    def __init__(self, d):
        from symlstm.backends.torch import torch_module
        self.mod = load_module(torch_module(d), f"torch_{d.cell.name}")
        self.states, self.input = self.mod.STATES, next(iter(d.cell.inputs))

    def forward(self, params, x, state0):
        leaves = {k: torch.tensor(v, requires_grad=True) for k, v in
                  {**params, self.input: x, **{f"{s}0": v for s, v in state0.items()}}.items()}
        hs, state = self.mod.forward({k: leaves[k] for k in params}, leaves[self.input],
                                     {s: leaves[f"{s}0"] for s in self.states})
        return hs, state, leaves

    def backward(self, params, leaves, dhs, dstate, hs, state):
        loss = (hs * torch.tensor(dhs)).sum() + sum(
            (state[s] * torch.tensor(dstate[s])).sum() for s in self.states)
        loss.backward()
        return {k: v.grad.numpy() for k, v in leaves.items()}


def _torch(d, tmp_path):
    return _TorchAsNumpy(d)


@pytest.mark.parametrize("backend", [_numpy, _numba, _torch], ids=["numpy", "numba", "torch"])
@pytest.mark.parametrize("name", list(CELLS))
def test_literature_cell_matches_torch_autograd(name, backend, tmp_path):
    build, step = CELLS[name]
    cell = build()
    d = symlstm.derive(cell)
    ref = load_module(numpy_module(d), name)
    D = 5 if "D" in cell.inputs.values() else 4
    params, x, state0, dhs, dstate = problem(ref, T=6, B=3, D=D, H=4, seed=7)
    mod = backend(d, tmp_path)
    if backend is _torch:
        hs, state, leaves = mod.forward(params, x, state0)
        grads = mod.backward(params, leaves, dhs, dstate, hs, state)
    else:
        _, _, cache = mod.forward(params, x, state0)
        grads = mod.backward(params, cache, dhs, dstate)
    want = torch_gradients(step, params, x, state0, dhs, dstate, cell.output)
    assert set(grads) == set(want)
    for k, g in want.items():
        err = np.max(np.abs(grads[k] - g)) / max(np.max(np.abs(g)), 1e-300)
        assert err < 1e-10, f"{name}: {k} differs from torch by {err:.1e}"


@pytest.mark.parametrize("name", ["mut1", "indrnn"])
def test_verify_reports_every_gradient(name):
    report = symlstm.verify(CELLS[name][0]())
    assert report.ok
    assert {r.key for r in report.rows} >= {"x", "h0"}
    assert "brute force" in str(report)
