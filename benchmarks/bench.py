"""Benchmark one training step of the generated NumPy and torch LSTMs against PyTorch, JAX and the GEMM floor.

    python benchmarks/bench.py                  # full run, about 4 minutes
    python benchmarks/bench.py --quick          # smoke run: 2 shapes, 3 repeats, about 35 s
    python benchmarks/bench.py --strict         # exit 1 when a target is missed
    python benchmarks/bench.py --json out.json  # where the numbers go (benchmarks/out/results.json)

The default output file is git-ignored; the committed reference numbers, benchmarks/results.json,
change only when --json names them.

Everything runs on ONE CPU core: every BLAS is limited to one thread (environment variables set
before NumPy, torch and JAX are imported, threadpoolctl, torch.set_num_threads) and the process
is pinned to a single core (``--cpu N``, or ``--no-pin``), because XLA's XNNPACK matmuls
otherwise use a second thread despite the flags.  The ratio of CPU time to wall time of every
contender is recorded to show that it really used one core.

One "training step" is the forward pass over the sequence plus the full backward pass to the
gradient of every parameter and of x, h0 and c0, for the loss L = sum(hs * dhs) with dhs a
fixed random array.  Contenders, per shape (T, B, D, H) and dtype:

* ``gen_lstm``      symlstm.generated.lstm: forward() + backward()
* ``torch_lstm``    torch.nn.LSTM (CPU, same dtype): forward, (out * dhs).sum(), backward()
* ``gen_peephole``  symlstm.generated.peephole_lstm: forward() + backward()
* ``torch_loop``    a hand-written peephole cell in torch, differentiated by autograd: one GEMM
                    for the input projection of all steps, one fused (B, H) @ (H, 4H) GEMM per step
* ``torchgen_lstm``, ``torchgen_peephole``
                    the generated torch backends symlstm.generated.torch.lstm and .peephole_lstm:
                    forward() on tensors that require gradients, (hs * dhs).sum(), backward(),
                    which runs the derived BPTT of the module's autograd.Function
* ``numba_lstm``, ``numba_peephole``
                    the generated Numba backends symlstm.generated.numba.lstm and .peephole_lstm:
                    forward() + backward(), each time loop one compiled function.  Their first
                    call compiles the loops, or loads them from numba's disk cache.  Skipped, and
                    their targets with them, when numba is not installed
* ``jax_scan``      jax.jit(jax.grad(loss)) of jax.lax.scan over the same peephole cell; the jit
                    compile time (trace + lower + compile) is reported separately.  Skipped, and
                    its target with it, when JAX is not installed
* ``gemm_floor``    only the matrix products one step needs, in NumPy with the same BLAS and
                    preallocated outputs: x-projection, T recurrent GEMMs forward and backward,
                    dW, dR and dx.  No contender can beat it without a faster BLAS.
* ``gemm_floor_torch``, ``gemm_floor_numba``
                    the same products through torch.matmul (MKL), and through the Numba modules'
                    BLAS (MKL when the mkl package is installed, else SciPy's OpenBLAS) in one
                    compiled function.  The fastest of the three floors is the machine's floor.

* the newer cells' rows (cells.py): layernorm_lstm and slstm (NH = 4) at (256, 16, 128, 128),
  each generated Numba module against a torch autograd loop of the same cell, and slstm against
  the xlstm package's vanilla sLSTM; gradients checked against the generated NumPy module.
  A cell not in generated/ gives a skipped row.  --cells-only runs these rows alone.
* the cells with a matrix per head (matrix_cells.py): mlstm and gated_delta_net at
  (T, B, NH, d) = (256, 4, 4, 64), D = H = 256, each Numba module (rendered from the
  derivation: these cells are not in generated/) against a torch autograd loop of the same
  recurrence, gradients checked against the NumPy module; and what each module caches per
  step.  --cells NAME ... runs only the named cells' rows.

Before timing, every contender's gradients are checked against an independent reference
(torch.nn.LSTM for gen_lstm, torchgen_lstm and numba_lstm, the torch loop for gen_peephole,
torchgen_peephole, numba_peephole and jax_scan); a contender whose gradients disagree is not timed and the script exits 1, --strict
or not.  That check is each contender's first call in the case; its wall time, which includes any
one-time cost, is recorded apart from the step times (first_call_s) and reported for the torch
and Numba backends.  Timing is round-robin:
each repeat runs every contender once (starting point rotated), so drift hits all of them alike;
each sample runs a contender enough times to last at least --min-sample seconds; we report the
median.

Also measured: peak memory of one step (fresh subprocess per contender: rise of the peak resident
set size, Linux VmHWM, over a single step after a warm-up step, with glibc's mmap threshold fixed
so that freed large blocks go back to the OS; plus tracemalloc's peak for the NumPy code, which
sees every NumPy allocation; --quick measures only its larger shape), the cold-start time of
the symbolic side (derive and render every cell in a fresh interpreter, as
symlstm.build.sources() does, without writing files) and the import time of
symlstm.generated.lstm, and this core's peak rate (GEMM of two 1536 x 1536 matrices through each
BLAS installed, the best); every contender's GFLOP/s (the step's GEMM flops over its time) is
reported against it.  Every ratio is checked against its target in one table
(pass, miss, or skip for a contender that did not run); misses change the exit code only with
--strict.
"""
from __future__ import annotations

import os
import sys

THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false",
}
os.environ.update(THREAD_ENV)   # before NumPy, torch or JAX is imported
# OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, where a machine sets them, can pin OpenBLAS to older
# kernels than the processor has (Haswell's on an AVX-512 machine, for NumPy alone: torch
# brings MKL). They are dropped before NumPy loads, unless --keep-openblas-env says otherwise.
OPENBLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
DROPPED_ENV = {} if "--keep-openblas-env" in sys.argv else \
    {k: os.environ.pop(k) for k in OPENBLAS_ENV if k in os.environ}

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

import contenders  # noqa: E402
from contenders import DTYPES, SHAPES, SKIPPED  # noqa: E402
from machine import _git_state, limit_threads, peak_gflops, system_info  # noqa: E402, F401
from report import print_report  # noqa: E402
from cells import CELL_SHAPE, CELLS, QUICK_CELL_SHAPE, run_cell_case  # noqa: E402
from matrix_cells import MATRIX_CELLS, MATRIX_SHAPES, QUICK_STEPS, run_matrix_case  # noqa: E402
from targets import TARGETS, cell_targets, targets  # noqa: E402
from timing import measure_import, measure_memory, measure_symbolic, memory_worker, \
    run_case, time_round_robin  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_JSON = HERE / "out" / "results.json"   # git-ignored: only --json touches results.json


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: first two shapes, 3 repeats, memory at the larger shape only")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON,
                    help=f"where to write the numbers (default {DEFAULT_JSON.relative_to(REPO)}, "
                         "git-ignored; benchmarks/results.json is the committed reference run)")
    ap.add_argument("--repeats", type=int, help="timed repeats per contender (default 9, quick 3)")
    ap.add_argument("--min-sample", type=float, help="seconds per timed sample (default 0.05, quick 0.01)")
    ap.add_argument("--cpu", type=int, default=max(os.sched_getaffinity(0)), help="core to pin to")
    ap.add_argument("--no-pin", action="store_true", help="do not pin the process to one core")
    ap.add_argument("--keep-openblas-env", action="store_true",
                    help="keep OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE as the environment sets them")
    ap.add_argument("--cells-only", action="store_true",
                    help="only the rows of the newer cells (layernorm_lstm, slstm, mlstm, "
                         "gated_delta_net): no LSTM cases, "
                         "memory, symbolic side or import")
    ap.add_argument("--cells", nargs="+", choices=[*CELLS, *MATRIX_CELLS], metavar="CELL",
                    help="only these cells' rows (implies --cells-only): "
                         + ", ".join([*CELLS, *MATRIX_CELLS]))
    ap.add_argument("--memory-worker", nargs=6, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.repeats = args.repeats or (3 if args.quick else 9)
    args.min_sample = args.min_sample or (0.01 if args.quick else 0.05)
    args.cells_only = args.cells_only or bool(args.cells)
    args.cells = args.cells or [*CELLS, *MATRIX_CELLS]
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.memory_worker:
        impl, dtype, *shape = args.memory_worker
        return memory_worker(impl, tuple(map(int, shape)), dtype)
    cpu = None if args.no_pin else args.cpu
    limits = limit_threads(cpu)   # noqa: F841  (the limits last as long as this object)
    contenders.load_jax()
    # sample() collects garbage before every sample; with torch and JAX loaded that walks some
    # 230k long-lived objects, ~0.15 s a call and most of a quick run's timing.  Frozen, the
    # collector skips them.
    gc.freeze()
    info = system_info(cpu, contenders.jax, THREAD_ENV, DROPPED_ENV)
    shapes = [] if args.cells_only else SHAPES[:2] if args.quick else SHAPES
    cases = []
    for shape in shapes:
        for dtype in DTYPES:
            print(f"timing {shape} {dtype} ...", flush=True)
            cases.append(run_case(shape, dtype, args.repeats, args.min_sample))
    cell_shape = QUICK_CELL_SHAPE if args.quick else CELL_SHAPE
    matrix_shapes = {c: ((QUICK_STEPS, *s[1:]) if args.quick else s) for c, s in MATRIX_SHAPES.items()}
    cell_cases = []
    for cell in args.cells:
        matrix = cell in MATRIX_CELLS
        run, shape = (run_matrix_case, matrix_shapes[cell]) if matrix else (run_cell_case, cell_shape)
        for dtype in DTYPES:
            print(f"timing {cell} {shape} {dtype} ...", flush=True)
            cell_cases.append(run(cell, shape, dtype, args.repeats, args.min_sample,
                                  time_round_robin))
    memory, symbolic, imp, peak, memory_shapes = [], None, None, {}, []
    if not args.cells_only:
        print("memory ...", flush=True)
        # a fresh process per contender costs ~2.5 s, mostly importing torch; the small
        # shape's rises are below the RSS's page granularity anyway
        memory_shapes = shapes[-1:] if args.quick else shapes
        memory = measure_memory(memory_shapes, DTYPES)
        print("symbolic side and import ...", flush=True)
        symbolic = measure_symbolic(1 if args.quick else 3)
        imp = measure_import(3 if args.quick else 9)
        peak = {dtype: peak_gflops(dtype) for dtype in DTYPES}
    goals = targets(cases, symbolic, imp) + cell_targets(cell_cases)
    print_report(info, cases, memory, symbolic, imp, goals, peak, cell_cases)
    config = {"quick": args.quick, "strict": args.strict, "repeats": args.repeats,
              "min_sample_s": args.min_sample, "shapes": shapes, "memory_shapes": memory_shapes,
              "dtypes": DTYPES, "skipped": SKIPPED, "cell_shape": cell_shape,
              "matrix_shapes": matrix_shapes, "cells": args.cells,
              "targets": {str(k): v for k, v in TARGETS.items()}}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"system": info, "config": config, "cases": cases,
                                     "cell_cases": cell_cases,
                                     "memory": memory, "symbolic": symbolic, "import": imp,
                                     "peak": peak,
                                     "targets": goals}, indent=1, default=str))
    print(f"\nnumbers written to {args.json}")
    return exit_code(cases + [c for c in cell_cases if not c["skipped"]], goals, args.strict)


def exit_code(cases, goals, strict):
    """1 for wrong gradients, always; for a missed target only with --strict."""
    if any(c["wrong"] for c in cases):
        print("exit 1: gradients disagree with the reference: "
              + ", ".join(f"{c.get('cell', '')} {tuple(c['shape'])} {c['dtype']} {c['wrong']}"
                         for c in cases if c["wrong"]))
        return 1
    missed = sum(g["status"] == "miss" for g in goals)
    if missed and strict:
        print(f"exit 1 (--strict): {missed} target(s) missed")
        return 1
    if missed:
        print(f"{missed} target(s) missed; exit 0 (--strict would exit 1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
