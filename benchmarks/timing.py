"""Timing (round robin, medians), peak memory in fresh processes, and the symbolic side's
cold start and the import time."""
from __future__ import annotations

import gc
import json
import math
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

from contenders import CONTENDERS, SKIPPED, TOLERANCE, build_gen_lstm, build_gen_peephole, \
    build_torch_lstm, build_torch_loop, check, gemm_flops, make_problem
from targets import fastest_floor
from machine import limit_threads

REPO = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().with_name("bench.py")   # the memory workers run it


# ----------------------------------------------------------------------------- timing

def sample(step, n):
    """(wall, cpu) seconds per call over n calls, garbage collector off."""
    gc.collect()
    gc.disable()
    try:
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(n):
            step()
        return (time.perf_counter() - w0) / n, (time.process_time() - c0) / n
    finally:
        gc.enable()


def time_round_robin(steps, repeats, min_sample):
    """Median-of-repeats timing, contenders interleaved in rotating order."""
    names = list(steps)
    inner = {}
    for name in names:                        # warm-up, then calls per sample
        sample(steps[name], 1)
        once, _ = sample(steps[name], 1)
        inner[name] = max(1, math.ceil(min_sample / max(once, 1e-9)))
    samples = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            samples[name].append(sample(steps[name], inner[name]))
    return {name: summarize(samples[name], inner[name]) for name in names}


def summarize(samples, inner):
    walls = sorted(w for w, _ in samples)
    q1, _, q3 = statistics.quantiles(walls, n=4) if len(walls) > 1 else (walls[0],) * 3
    median = statistics.median(walls)
    return {"median_s": median, "min_s": walls[0], "q1_s": q1, "q3_s": q3,
            "spread": (q3 - q1) / median, "calls_per_sample": inner,
            "cpu_per_wall": sum(c for _, c in samples) / sum(w for w, _ in samples),
            "samples_s": [w for w, _ in samples]}


def run_case(shape, dtype, repeats, min_sample):
    prob = make_problem(shape, dtype)
    built = {name: builder(prob) for name, (builder, _, _) in CONTENDERS.items()
             if name not in SKIPPED}
    errors, first_call = check(built, prob)
    wrong = sorted(n for n, e in errors.items() if not e <= TOLERANCE[dtype])
    steps = {n: step for n, (step, _) in built.items() if n not in wrong}
    times = time_round_robin(steps, repeats, min_sample)
    flops = gemm_flops(prob)
    for t in times.values():   # the step's GEMM flops over the whole step's time
        t["gflops"] = flops / t["median_s"] / 1e9
    fastest = fastest_floor(times)
    return {"shape": list(shape), "dtype": dtype, "max_rel_error": errors,
            "tolerance": TOLERANCE[dtype], "wrong": wrong,
            "jax_compile_s": built["jax_scan"][0].compile_s if "jax_scan" in built else None,
            "first_call_s": first_call,
            "times": times, "gemm_flops": flops, "fastest_floor": fastest,
            "ratios": ratios({n: t["median_s"] for n, t in times.items()}, fastest)}


def ratios(med, fastest):
    def r(a, b):
        return med[a] / med[b] if a in med and b in med else None
    return {"gen_lstm/torch_lstm": r("gen_lstm", "torch_lstm"),
            "gen_peephole/torch_loop": r("gen_peephole", "torch_loop"),
            "gen_peephole/jax_scan": r("gen_peephole", "jax_scan"),
            "torchgen_lstm/torch_lstm": r("torchgen_lstm", "torch_lstm"),
            "torchgen_peephole/torch_loop": r("torchgen_peephole", "torch_loop"),
            "torchgen_peephole/gen_peephole": r("torchgen_peephole", "gen_peephole"),
            "numba_lstm/torch_lstm": r("numba_lstm", "torch_lstm"),
            "numba_lstm_passes/torch_lstm": r("numba_lstm_passes", "torch_lstm"),
            "numba_peephole/torch_loop": r("numba_peephole", "torch_loop"),
            "numba_peephole/jax_scan": r("numba_peephole", "jax_scan"),
            "numba_peephole/gen_peephole": r("numba_peephole", "gen_peephole"),
            **{f"{n}/gemm_floor": r(n, "gemm_floor") for n in med if n != "gemm_floor"},
            **{f"{n}/fastest_floor": r(n, fastest) for n in med if fastest and n != fastest}}


# ----------------------------------------------------------------------------- memory

MEMORY_IMPLS = {"gen_lstm": build_gen_lstm, "torch_lstm": build_torch_lstm,
                "gen_peephole": build_gen_peephole, "torch_loop": build_torch_loop}


def proc_status_kb(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def memory_worker(impl, shape, dtype):
    """Runs in a fresh process: peak memory of one step after a warm-up step, as JSON on stdout."""
    limit_threads(None)
    step, _ = MEMORY_IMPLS[impl](make_problem(shape, dtype))
    step()                                     # warm-up: lazy initialisation, first-touch
    gc.collect()
    out = {"impl": impl, "shape": list(shape), "dtype": dtype}
    try:
        Path("/proc/self/clear_refs").write_text("5")      # reset VmHWM to the current RSS
        rss0 = proc_status_kb("VmRSS")
        result = step()
        out["rss_peak_rise_bytes"] = (proc_status_kb("VmHWM") - rss0) * 1024
        del result
    except OSError:
        out["rss_peak_rise_bytes"] = None
    if impl.startswith("gen_"):
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        result = step()
        out["tracemalloc_peak_bytes"] = tracemalloc.get_traced_memory()[1] - before
        tracemalloc.stop()
    print(json.dumps(out))


def measure_memory(shapes, dtypes):
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "131072"}
    rows = []
    for shape in shapes:
        for dtype in dtypes:
            for impl in MEMORY_IMPLS:
                cmd = [sys.executable, str(BENCH), "--memory-worker", impl, dtype, *map(str, shape)]
                run = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
                rows.append(json.loads(run.stdout.strip().splitlines()[-1]))
    return rows


# ----------------------------------------------------------------------------- symbolic side, import

def wall_of(code):
    t0 = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, check=True)
    return time.perf_counter() - t0, run


SYMBOLIC_CODE = ("import time; t = time.perf_counter(); import symlstm.build as b; s = b.sources(); "
                 "print(time.perf_counter() - t, len(s))")


def measure_symbolic(runs):
    """Fresh interpreter: derive and render every cell, no files written."""
    walls, inside = [], []
    for _ in range(runs):
        wall, run = wall_of(SYMBOLIC_CODE)
        walls.append(wall)
        inside.append(float(run.stdout.split()[0]))
    return {"process_wall_s": statistics.median(walls), "in_process_s": statistics.median(inside),
            "runs": runs, "process_walls_s": walls}


IMPORT_CODE = ("import time, sys; import numpy; t = time.perf_counter(); {}; "
               "print(time.perf_counter() - t, 'sympy' in sys.modules)")
IMPORTS = {
    "module": "import symlstm.generated.lstm",
    "file": ("import importlib.util as u; s = u.spec_from_file_location('lstm', 'generated/lstm.py'); "
             "s.loader.exec_module(u.module_from_spec(s))"),
}


def measure_import(runs):
    """Fresh interpreters with NumPy already imported: time of `import symlstm.generated.lstm`
    (and, for comparison, of loading generated/lstm.py by path, without the symlstm package)."""
    seconds = {k: [] for k in IMPORTS}
    for _ in range(runs):
        for k, code in IMPORTS.items():
            out = wall_of(IMPORT_CODE.format(code))[1].stdout.split()
            seconds[k].append(float(out[0]))
            if k == "module":
                pulls_in_sympy = out[1] == "True"
    cold_wall = statistics.median(wall_of(IMPORTS["module"])[0] for _ in range(3))
    return {"import_ms": 1e3 * statistics.median(seconds["module"]),
            "import_by_file_path_ms": 1e3 * statistics.median(seconds["file"]),
            "pulls_in_sympy": pulls_in_sympy, "process_wall_s": cold_wall,
            "runs": runs, "samples_s": seconds,
            "pythondontwritebytecode": os.environ.get("PYTHONDONTWRITEBYTECODE")}
