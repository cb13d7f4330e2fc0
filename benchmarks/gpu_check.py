"""The generated torch modules on a CUDA device: mlstm, gated_delta_net and lstm, each against
a torch autograd loop of the same recurrence (torch_loops.py), on the same device.

    python benchmarks/gpu_check.py               # on the first CUDA device
    python benchmarks/gpu_check.py --repeats 20  # more timed steps per contender

For each cell and dtype, one training step (forward over the sequence, then backward of
sum(hs * dhs) to every parameter, x and the initial states) of the module and of the loop:
their gradients must agree (float64: 1e-8, float32: 1e-4, max |a - b| / max |b| per gradient;
TF32 is switched off), then both are timed, alternating, with the device synchronised around
each step; the table gives the medians and module / loop.  Shapes: mlstm and gated_delta_net
at (T, B, NH, d) = (256, 4, 4, 64), D = H = 256, as in bench.py's rows; lstm at
(T, B, D, H) = (100, 64, 256, 256).

Exit codes: 0 when every gradient agrees, and also when there is no CUDA device (it says so
and checks nothing); 1 when a module's gradients disagree with its loop's; 2 for a bad
command line.  ``--device cpu --tiny`` runs the same checks on the CPU at tiny sizes.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from torch_loops import gated_delta_hs, lstm_hs, mlstm_hs

MODULES = Path(tempfile.gettempdir()) / "symlstm-benchmarks"   # rendered modules
TOLERANCE = {torch.float64: 1e-8, torch.float32: 1e-4}
#: cell: its torch loop, (T, B, NH, d) or (T, B, D, H) for the LSTM, and the --tiny shape.
CELLS = {"mlstm": (mlstm_hs, (256, 4, 4, 64), (3, 2, 2, 4)),
         "gated_delta_net": (gated_delta_hs, (256, 4, 4, 64), (3, 2, 2, 4)),
         "lstm": (lstm_hs, (100, 64, 256, 256), (3, 2, 4, 8))}


def torch_module(name):
    """The generated torch module: the shipped one, or for a cell with a matrix per head
    (not in generated/) rendered from its derivation into the temporary folder of matrix_cells.py."""
    if name == "lstm":
        return importlib.import_module("symlstm.generated.torch.lstm")
    import symlstm
    from symlstm.backends.torch import torch_module as render
    MODULES.mkdir(parents=True, exist_ok=True)
    path = MODULES / f"{name}_torch.py"
    path.write_text(render(symlstm.derive(name)))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def problem(name, module, shape, dtype, device):
    """Parameters of the module's Cell (seeded), x, initial states and dL/dhs, on ``device``."""
    torch.manual_seed(0)
    if name == "lstm":
        T, B, D, H = shape
        NH, net = None, module.Cell(D, H, dtype=dtype, device=device)
        state0 = {s: torch.randn(B, H, dtype=dtype, device=device) for s in module.STATES}
    else:
        T, B, NH, d = shape
        D = H = NH * d
        net = module.Cell(D, H, num_heads=NH, dtype=dtype, device=device)
        sizes = {"NH": NH, "H/NH": d}
        state0 = {s: torch.randn(B, *(sizes[k] for k in dims), dtype=dtype, device=device)
                  for s, dims in module.STATE_SHAPES.items()}
        if "m" in state0:
            state0["m"].zero_()
        if "S" in state0:
            state0["S"] /= d ** 0.5
    params = {n: p.detach().clone() for n, p in net.named_parameters()}
    x = torch.randn(T, B, D, dtype=dtype, device=device)
    return params, x, state0, torch.randn(T, B, H, dtype=dtype, device=device), NH


def training_step(hs_of, params, x, state0, dhs):
    """A step: hs_of(P, x, s0) on fresh leaves, backward of sum(hs * dhs); {name: gradient}."""
    P = {k: v.clone().requires_grad_() for k, v in params.items()}
    xl = x.clone().requires_grad_()
    s0 = {s: v.clone().requires_grad_() for s, v in state0.items()}

    def step():
        (hs_of(P, xl, s0) * dhs).sum().backward()
        leaves = {**P, "x": xl, **{f"{s}0": v for s, v in s0.items()}}
        grads = {k: v.grad for k, v in leaves.items()}
        for v in leaves.values():
            v.grad = None
        return grads
    return step


def max_rel_error(got, ref):
    return max(float((got[k] - ref[k]).abs().max() / ref[k].abs().max().clamp_min(1e-300))
               for k in ref)


def timed(steps, repeats, device):
    """Median seconds per step of each, alternating, the device synchronised around each."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    samples = {n: [] for n in steps}
    for step in steps.values():   # warm-up
        step()
    for _ in range(repeats):
        for name, step in steps.items():
            sync()
            t0 = time.perf_counter()
            step()
            sync()
            samples[name].append(time.perf_counter() - t0)
    return {n: statistics.median(s) for n, s in samples.items()}


def check(name, dtype, device, repeats, tiny):
    loop, shape, tiny_shape = CELLS[name]
    shape = tiny_shape if tiny else shape
    module = torch_module(name)
    params, x, state0, dhs, NH = problem(name, module, shape, dtype, device)
    steps = {"module": training_step(lambda P, x, s0: module.forward(P, x, s0)[0],
                                     params, x, state0, dhs),
             "loop": training_step(lambda P, x, s0: loop(P, x, s0, NH), params, x, state0, dhs)}
    error = max_rel_error(steps["module"](), steps["loop"]())
    ok = error <= TOLERANCE[dtype]
    times = timed(steps, repeats, device) if ok else {}
    return {"cell": name, "shape": shape, "dtype": str(dtype).split(".")[1], "error": error,
            "ok": ok, **times}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu")
    ap.add_argument("--repeats", type=int, default=10, help="timed steps per contender")
    ap.add_argument("--tiny", action="store_true", help="tiny shapes (a smoke test)")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"no CUDA device: torch {torch.__version__} sees none "
              "(torch.cuda.is_available() is False); nothing checked or timed")
        return 0
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {where}; torch {torch.__version__}; median of {args.repeats} steps")
    print(f"{'cell':16s} {'shape':18s} {'dtype':8s} {'module ms':>10s} {'loop ms':>10s} "
          f"{'module/loop':>11s}  gradient error")
    rows = [check(n, dt, device, args.repeats, args.tiny)
            for n in CELLS for dt in (torch.float64, torch.float32)]
    for r in rows:
        times = (f"{1e3 * r['module']:10.2f} {1e3 * r['loop']:10.2f} "
                 f"{r['module'] / r['loop']:11.2f}" if r["ok"] else f"{'not timed':>33s}")
        print(f"{r['cell']:16s} {str(r['shape']):18s} {r['dtype']:8s} {times}  "
              f"{r['error']:.1e}" + ("" if r["ok"] else " WRONG"))
    print("shape: (T, B, NH, d) for the cells with a matrix per head, (T, B, D, H) for lstm; "
          "tolerance 1e-8 (float64), 1e-4 (float32)")
    wrong = [f"{r['cell']} {r['dtype']}" for r in rows if not r["ok"]]
    if wrong:
        print("exit 1: the module's gradients disagree with the torch loop's: " + ", ".join(wrong))
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
