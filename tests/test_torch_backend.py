"""The PyTorch backend, symlstm.generated.torch.<cell>: the same plan as the NumPy module,
behind a torch.autograd.Function whose backward is the derived one."""
import importlib
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from cellgen import cells
from hypothesis import given, settings

import symlstm
from symlstm.backends.code import numpy_module
from symlstm.backends.torch import torch_module
from symlstm.checks.verification import inputs, load_module, problem, run


torch = pytest.importorskip("torch", reason="torch is installed by the README's test command")


def _compare(numpy_mod, torch_mod, D=3, H=4, tol=1e-12):
    params, x, state0, dhs, dstate = problem(numpy_mod, T=4, B=3, D=D, H=H)
    hs, state, cache = run(numpy_mod, params, x, state0)
    want = numpy_mod.backward(params, cache, dhs, dstate)
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    tx = {k: torch.tensor(v, requires_grad=True) for k, v in inputs(numpy_mod, x).items()}
    ts = {k: torch.tensor(v, requires_grad=True) for k, v in state0.items()}
    ths, tstate = run(torch_mod, tp, tx if len(tx) > 1 else tx[torch_mod.INPUT], ts)
    assert np.abs(ths.detach().numpy() - hs).max() <= tol * max(1.0, np.abs(hs).max())
    loss = (ths * torch.tensor(dhs)).sum() + sum((tstate[s] * torch.tensor(dstate[s])).sum()
                                                 for s in tstate)
    loss.backward()
    got = {**{k: v.grad for k, v in tp.items()}, **{k: v.grad for k, v in tx.items()},
           **{f"{k}0": v.grad for k, v in ts.items()}}
    assert set(got) == set(want)
    for k, ref in want.items():
        scale = max(1.0, np.abs(ref).max())
        assert np.abs(got[k].numpy() - ref).max() <= tol * scale, k


@pytest.mark.parametrize("name", list(symlstm.CELLS))
def test_every_shipped_cell_matches_its_numpy_module(name):
    numpy_mod = importlib.import_module(f"symlstm.generated.{name}")
    torch_mod = importlib.import_module(f"symlstm.generated.torch.{name}")
    _compare(numpy_mod, torch_mod, D=4 if numpy_mod.INPUT_SIZE == "H" else 3)


@settings(max_examples=30, deadline=None, derandomize=True, database=None)
@given(cells())
def test_random_cells_match_their_numpy_module(cell):
    d = symlstm.derive(cell)
    numpy_mod = load_module(numpy_module(d), cell.name)
    torch_mod = load_module(torch_module(d), f"torch_{cell.name}")
    D = 4 if numpy_mod.INPUT_SIZE == "H" else 3
    _compare(numpy_mod, torch_mod, D=D, H=4, tol=1e-9)   # torch's exp and log are not NumPy's


@pytest.mark.parametrize("name", ["lstm", "peephole_lstm", "gru"])
def test_gradcheck(name):
    mod = importlib.import_module(f"symlstm.generated.torch.{name}")
    torch.manual_seed(0)
    cell = mod.Cell(2, 3, dtype=torch.float64)
    x = torch.randn(3, 2, 2, dtype=torch.float64, requires_grad=True)
    state0 = {s: torch.randn(2, 3, dtype=torch.float64, requires_grad=True) for s in mod.STATES}
    params = tuple(getattr(cell, p) for p in mod.PARAMS)

    def f(x, *tensors):
        p = dict(zip(mod.PARAMS, tensors[:len(params)]))
        s = dict(zip(mod.STATES, tensors[len(params):]))
        hs, final = mod.forward(p, x, s)
        return (hs, *final.values())
    assert torch.autograd.gradcheck(f, (x, *params, *state0.values()))


def test_the_module_names_its_parameters_as_params_and_runs_in_float32():
    from symlstm.generated.torch import peephole_lstm as mod
    cell = mod.Cell(5, 7)
    assert [n for n, _ in cell.named_parameters()] == list(mod.PARAMS)
    hs, state = cell(torch.randn(6, 2, 5))
    assert hs.shape == (6, 2, 7) and hs.dtype == torch.float32 and set(state) == {"h", "c"}
    hs.sum().backward()
    assert all(p.grad is not None for p in cell.parameters())


def test_bad_input_says_what_was_expected():
    from symlstm.generated.torch import lstm as mod
    cell = mod.Cell(3, 4, dtype=torch.float64)
    params = {n: getattr(cell, n) for n in mod.PARAMS}
    with pytest.raises(ValueError, match=r"params\['W_z'\] must be a torch.float32 tensor"):
        mod.forward(params, torch.randn(2, 1, 3))
    with pytest.raises(KeyError, match="params must have exactly the keys"):
        mod.forward({}, torch.randn(2, 1, 3))


DDP = textwrap.dedent("""
    import os, sys
    import numpy as np
    import torch
    import torch.distributed as dist
    from symlstm.generated.torch import lstm as mod

    def main(rank, world, port, out):
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world)
        torch.manual_seed(0)
        cell = mod.Cell(3, 4, dtype=torch.float64)
        net = torch.nn.parallel.DistributedDataParallel(cell)
        x = torch.tensor(np.random.default_rng(rank).standard_normal((5, 2, 3)))
        hs, _ = net(x)
        (hs ** 2).sum().backward()
        if rank == 0:
            torch.save({n: p.grad for n, p in cell.named_parameters()}, out)
        dist.barrier()     # neither process tears gloo down while the other still talks
        dist.destroy_process_group()

    if __name__ == "__main__":
        port, out = int(sys.argv[1]), sys.argv[2]
        torch.multiprocessing.spawn(main, args=(2, port, out), nprocs=2)
""")


def test_distributed_data_parallel_averages_the_derived_gradients(tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script, out = tmp_path / "ddp.py", tmp_path / "grads.pt"
    script.write_text(DDP)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, str(script), str(port), str(out)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    got = torch.load(out)
    from symlstm.generated import lstm as numpy_mod
    torch.manual_seed(0)
    params = {n: p.detach().numpy() for n, p in
              __import__("symlstm.generated.torch.lstm", fromlist=["Cell"]).Cell(
                  3, 4, dtype=torch.float64).named_parameters()}
    want = {n: 0.0 for n in params}
    for rank in (0, 1):     # DDP averages the two processes' gradients
        x = np.random.default_rng(rank).standard_normal((5, 2, 3))
        hs, _, cache = numpy_mod.forward(params, x)
        g = numpy_mod.backward(params, cache, 2 * hs)
        want = {n: want[n] + g[n] / 2 for n in params}
    for n in params:
        assert np.abs(got[n].numpy() - want[n]).max() <= 1e-12 * max(1, np.abs(want[n]).max()), n


def test_no_parameter_is_called_like_an_attribute_of_the_module():
    """The module's parameters are attributes of ``Cell``: naming keeps every attribute
    torch.nn.Module has out of the parameters' names, and build() says why."""
    from symlstm import CellBuilder, CellError, naming
    from symlstm.generated.torch import lstm as mod
    attributes = {n for n in [*dir(mod.Cell), *vars(mod.Cell(2, 3))] if not n.startswith("_")}
    assert attributes <= naming.TORCH_MODULE_NAMES, attributes - naming.TORCH_MODULE_NAMES
    with pytest.raises(CellError, match="torch.nn.Module already has 'train'"):
        CellBuilder("bad", "Bad").param("train", "H")
