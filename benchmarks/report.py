"""The report: the tables printed to stdout, one per question, and the targets' table."""
from __future__ import annotations

import math
from pathlib import Path

from contenders import CONTENDERS, SKIPPED
from targets import FLOOR_SHAPE, TARGETS, fastest_floor, numba_lstm_limit, numba_peephole_limit


def mark(value, limit):
    if value is None:
        return "       n/a"
    return f"{value:5.2f}" + ("     " if limit is None else (" ok  " if value <= limit else " MISS"))


def ms(t):
    return f"{1e3 * t['median_s']:9.2f} ±{100 * t['spread']:2.0f}%" if t else "          n/a"


def label(c):
    return f"{str(tuple(c['shape'])):20s} {c['dtype']:8s}"


def banner(title):
    print(f"\n=== {title} " + "=" * max(3, 95 - len(title)))


def print_system(info):
    banner("System")
    print(f"CPU {info['cpu_model']} ({info['cpus_online']} online, flags: {' '.join(info['cpu_flags'])}), "
          f"process pinned to {info['affinity']}; Python {info['python']}, NumPy {info['numpy']}, "
          f"torch {info['torch']}, jax {info['jax'] or 'not installed'}")
    for name, why in SKIPPED.items():
        print(f"skipped: {name}, {why}")
    for lib in info["threadpoolctl"]:
        print(f"threadpoolctl: {lib['internal_api']} {lib['version'] or ''} arch={lib['architecture']} "
              f"threads={lib['num_threads']} ({Path(lib['filepath']).name})")
    print("torch: " + "; ".join(info["torch_libs"]) + f"; threads={info['torch_threads']}")
    print(f"BLAS of the Numba modules: {info['numba_blas'] or 'n/a (numba not installed)'}"
          + (" (MKL: pip install mkl)" if info["numba_blas"] == "openblas" else ""))
    print("env: " + ", ".join(f"{k}={v}" for k, v in info["env"].items()))
    if info["dropped_env"]:
        print("dropped before NumPy loaded (--keep-openblas-env keeps them): "
              + ", ".join(f"{k}={v}" for k, v in info["dropped_env"].items()))
    coretype = info["env"].get("OPENBLAS_CORETYPE")
    if coretype and "avx512f" in info["cpu_flags"]:
        print(f"note: OPENBLAS_CORETYPE={coretype} makes NumPy's OpenBLAS use {coretype} kernels although "
              "this CPU has AVX-512; torch's MKL/oneDNN are not affected")
    if info["git"]["commit"] is None:
        print("git: unknown (git is not installed, or this is not a git checkout)")
    else:
        print(f"git {info['git']['commit']}, generated/ has uncommitted changes: "
              f"{info['git']['dirty_generated']}")


def print_checks(cases):
    banner("Correctness before timing: max relative gradient error vs reference")
    for c in cases:
        errs = ", ".join(f"{n} vs {CONTENDERS[n][2]} {e:.1e}" for n, e in c["max_rel_error"].items())
        print(f"{label(c)} {errs}  (tol {c['tolerance']:.0e})"
              + (f"  WRONG, NOT TIMED: {c['wrong']}" if c["wrong"] else ""))


def print_lstm(cases):
    banner("LSTM: one training step, median ms ± interquartile range / median")
    print(f"{'(T, B, D, H)':20s} {'dtype':8s} {'GEMM floor':>13s} {'torch GEMMs':>13s} {'generated':>13s} "
          f"{'torch.nn.LSTM':>13s}  {'gen/torch':>10s}  {'gen/floor':>10s}  {'torch/floor':>10s}")
    for c in cases:
        t, r = c["times"], c["ratios"]
        floor_limit = TARGETS[("lstm", "floor")] if tuple(c["shape"]) == FLOOR_SHAPE else None
        print(f"{label(c)} {ms(t.get('gemm_floor'))} {ms(t.get('gemm_floor_torch'))} "
              f"{ms(t.get('gen_lstm'))} {ms(t.get('torch_lstm'))}  "
              f"{mark(r['gen_lstm/torch_lstm'], TARGETS[('lstm', c['dtype'], 'torch')])}  "
              f"{mark(r.get('gen_lstm/gemm_floor'), floor_limit)}  {mark(r.get('torch_lstm/gemm_floor'), None)}")
    print(f"targets: gen/torch <= {TARGETS[('lstm', 'float64', 'torch')]} (float64), "
          f"<= {TARGETS[('lstm', 'float32', 'torch')]} (float32); gen/floor <= "
          f"{TARGETS[('lstm', 'floor')]} at {FLOOR_SHAPE}.  GEMM floor: the step's matrix products "
          "alone in NumPy; torch GEMMs: the same with torch.matmul")


def print_peephole(cases):
    banner("Peephole LSTM: one training step, median ms ± interquartile range / median")
    print(f"{'(T, B, D, H)':20s} {'dtype':8s} {'generated':>13s} {'torch loop':>13s} {'jax scan':>13s} "
          f"{'jit s':>6s}  {'gen/torch':>10s}  {'gen/jax':>10s}  {'gen/floor':>9s} {'torch/fl':>8s} "
          f"{'jax/fl':>6s}")
    for c in cases:
        t, r = c["times"], c["ratios"]
        floor = [r.get(f"{n}/gemm_floor") for n in ("gen_peephole", "torch_loop", "jax_scan")]
        jit = "   n/a" if c["jax_compile_s"] is None else f"{c['jax_compile_s']:6.2f}"
        print(f"{label(c)} {ms(t.get('gen_peephole'))} {ms(t.get('torch_loop'))} {ms(t.get('jax_scan'))} "
              f"{jit}  {mark(r['gen_peephole/torch_loop'], TARGETS[('peephole', 'torch')])}"
              f"  {mark(r['gen_peephole/jax_scan'], TARGETS[('peephole', 'jax')])}  "
              + " ".join("     n/a" if v is None else f"{v:8.2f}" for v in floor))
    print(f"targets: gen/torch loop <= {TARGETS[('peephole', 'torch')]}, gen/jax <= "
          f"{TARGETS[('peephole', 'jax')]}.  jit s: JAX trace + lower + compile, not in the step times")
    busy = [(tuple(c["shape"]), c["dtype"], n, round(t["cpu_per_wall"], 2))
            for c in cases for n, t in c["times"].items() if t["cpu_per_wall"] > 1.1]
    print("CPU time / wall time <= 1.1 for every contender: one core each" if not busy
          else f"WARNING, more than one core busy: {busy}")


def print_torch_backend(cases):
    banner("Torch backend (symlstm.generated.torch): one training step, median ms ± IQR / median")
    print(f"{'(T, B, D, H)':20s} {'dtype':8s} {'tb lstm':>13s} {'1st ms':>8s} {'torch.nn.LSTM':>13s} "
          f"{'tb/torch':>10s}   {'tb peephole':>13s} {'1st ms':>8s} {'torch loop':>13s} {'tb/loop':>10s} "
          f"{'tb/numpy':>8s}")
    for c in cases:
        t, r = c["times"], c["ratios"]
        tb_numpy = r["torchgen_peephole/gen_peephole"]
        print(f"{label(c)} {ms(t.get('torchgen_lstm'))} {first_ms(c, 'torchgen_lstm')} "
              f"{ms(t.get('torch_lstm'))} {mark(r['torchgen_lstm/torch_lstm'], None)}   "
              f"{ms(t.get('torchgen_peephole'))} {first_ms(c, 'torchgen_peephole')} "
              f"{ms(t.get('torch_loop'))} "
              f"{mark(r['torchgen_peephole/torch_loop'], TARGETS[('peephole', 'torchgen')])} "
              + ("     n/a" if tb_numpy is None else f"{tb_numpy:8.2f}"))
    print(f"target: tb peephole/torch loop <= {TARGETS[('peephole', 'torchgen')]}.  tb/numpy: tb peephole "
          "over the generated NumPy module.\n1st ms: the first forward + backward in the case (the "
          "gradient check), one-time costs included, not in\nthe step times; in the first case torch's "
          "own lazy initialisation falls on torch_lstm, the first torch contender to run")


def print_numba_backend(cases):
    banner("Numba backend (symlstm.generated.numba): one training step, median ms ± IQR / median")
    print(f"{'(T, B, D, H)':20s} {'dtype':8s} {'nb lstm':>13s} {'1st ms':>8s} {'nb/torch':>10s} "
          f"{'passes':>7s} {'nb/floor':>8s} {'nb/fast':>10s}   {'nb peephole':>13s} {'1st ms':>8s} {'nb/loop':>10s} "
          f"{'nb/jax':>10s} {'nb/numpy':>8s}")
    for c in cases:
        t, r = c["times"], c["ratios"]
        floor, numpy = r.get("numba_lstm/gemm_floor"), r["numba_peephole/gen_peephole"]
        passes = r.get("numba_lstm_passes/torch_lstm")
        fast_limit = TARGETS[("numba lstm", "floor")] if tuple(c["shape"]) == FLOOR_SHAPE else None
        print(f"{label(c)} {ms(t.get('numba_lstm'))} {first_ms(c, 'numba_lstm')} "
              f"{mark(r['numba_lstm/torch_lstm'], numba_lstm_limit(c))} "
              + ("    n/a" if passes is None else f"{passes:7.3f}") + " "
              + ("     n/a" if floor is None else f"{floor:8.2f}") + " "
              f"{mark(r.get('numba_lstm/fastest_floor'), fast_limit)}   "
              f"{ms(t.get('numba_peephole'))} {first_ms(c, 'numba_peephole')} "
              f"{mark(r['numba_peephole/torch_loop'], numba_peephole_limit(c))} "
              f"{mark(r['numba_peephole/jax_scan'], TARGETS[('numba peephole', 'jax')])} "
              + ("     n/a" if numpy is None else f"{numpy:8.2f}"))
    print(f"targets: nb lstm/torch.nn.LSTM <= {TARGETS[('numba lstm', 'float32', 'torch')]} (float32; "
          f"<= {TARGETS[('numba lstm', 'small', 'torch')]} at (20, 1, 32, 32)), "
          f"<= {TARGETS[('numba lstm', 'float64', 'torch')]} (float64); nb lstm/fastest GEMM floor <= "
          f"{TARGETS[('numba lstm', 'floor')]} at {FLOOR_SHAPE};\nnb peephole/torch loop <= "
          f"{TARGETS[('numba peephole', 'large', 'torch')]} at the two large shapes, <= "
          f"{TARGETS[('numba peephole', 'torch')]} at the others, nb peephole/jax <= "
          f"{TARGETS[('numba peephole', 'jax')]}.  nb/floor: over NumPy's GEMM floor; nb/fast: over the "
          "fastest floor;\npasses: nb lstm's two compiled passes alone (numba_lstm_passes), without the Python around them, over\ntorch.nn.LSTM.  1st ms: the first call in the case, compiling or loading from numba's cache")


def print_cells(cell_cases):
    if all("cache" in c for c in cell_cases):
        return
    banner("Newer cells: generated Numba module vs a torch autograd loop, median ms ± IQR / median")
    print(f"{'cell':15s} {'(T, B, D, H)':20s} {'dtype':8s} {'numba':>13s} {'1st ms':>8s} "
          f"{'torch loop':>13s} {'xlstm':>13s} {'nb/loop':>10s} {'nb/xlstm':>8s} {'nb/floor':>8s}  "
          "gradient error vs NumPy module")
    for c in cell_cases:
        if "cache" in c:    # a cell with a matrix per head: print_matrix_cells
            continue
        if c["skipped"]:
            print(f"{c['cell']:15s} {label(c)} skipped: {c['skipped']}")
            continue
        t, r = c["times"], c["ratios"]
        limit = TARGETS[(f"numba {c['cell']}", "torch")]
        errs = ", ".join(f"{n} {e:.1e}" for n, e in c["max_rel_error"].items())
        print(f"{c['cell']:15s} {label(c)} {ms(t.get('numba'))} {first_ms(c, 'numba')} "
              f"{ms(t.get('torch_loop'))} {ms(t.get('xlstm'))} {mark(r['numba/torch_loop'], limit)} "
              + " ".join("     n/a" if v is None else f"{v:8.2f}"
                         for v in (r["numba/xlstm"], r["numba/fastest_floor"]))
              + f"  {errs} (tol {c['tolerance']:.0e})"
              + (f"  WRONG, NOT TIMED: {c['wrong']}" if c["wrong"] else ""))
        for name, why in c["contenders_skipped"].items():
            print(f"  {name} skipped: {why}")
    print("targets: nb/torch loop <= " + ", ".join(
        f"{TARGETS[k]} ({k[0].split()[1]})" for k in TARGETS if isinstance(k, tuple)
        and k[0] in ("numba layernorm_lstm", "numba slstm")) + ".  xlstm: the xlstm package's "
        "vanilla sLSTM (torch autograd);\nnb/floor: over the fastest floor of the LSTM's GEMMs at "
        "this shape (dense R; slstm's block-diagonal R needs 1/NH of the recurrent flops)")


def print_matrix_cells(cell_cases):
    cases = [c for c in cell_cases if "cache" in c]
    if not cases:
        return
    banner("Cells with a matrix per head or per channel: Numba module vs a torch autograd loop, "
           "median ms ± IQR / median")
    print(f"{'cell':15s} {'(T,B,NH,d|H,N)':20s} {'dtype':8s} {'numba':>13s} {'1st ms':>8s} "
          f"{'torch loop':>13s} {'nb/loop':>10s}  gradient error vs NumPy module")
    for c in cases:
        t = c["times"]
        limit = TARGETS[(f"numba {c['cell']}", "torch")]
        shape = str((c["shape"][0], c["shape"][1], *c["heads"]))
        errs = ", ".join(f"{n} {e:.1e}" for n, e in c["max_rel_error"].items())
        print(f"{c['cell']:15s} {shape:20s} {c['dtype']:8s} {ms(t.get('numba'))} "
              f"{first_ms(c, 'numba')} {ms(t.get('torch_loop'))} "
              f"{mark(c['ratios']['numba/torch_loop'], limit)}  {errs} (tol {c['tolerance']:.0e})"
              + (f"  WRONG, NOT TIMED: {c['wrong']}" if c["wrong"] else ""))
        for name, why in c["contenders_skipped"].items():
            print(f"  {name} skipped: {why}")
    print(f"target: nb/torch loop <= {TARGETS[('numba mlstm', 'torch')]}.  D = H = NH d (s6: D = H, "
          "N states per channel); torch loop: one GEMM for every input product, then per step the "
          "recurrence on (B, NH, d, d) or (B, H, N)")
    banner("What the Numba module caches per step for the backward pass (bytes per time step)")
    print("S_: a state, kept for every step (T + 1 of them); C_: a value of the step the backward "
          "pass reads; K_: a value of the parameters alone, once; X_: the input's product by a "
          "parameter, every step; input: kept by reference;\nP_: a parameter as the loop reads it (a "
          "view: no bytes).  least: the states, one per step, and the input")
    for c in cases:
        if not c["cache"]:
            continue
        k = c["cache"]
        print(f"\n{c['cell']} {c['dtype']}: {k['total_per_step']:,.0f} per step = states "
              f"{k['states_per_step']:,.0f} + values {k['values_per_step']:,.0f} + input "
              f"{k['total_per_step'] - k['states_per_step'] - k['values_per_step']:,.0f}; "
              f"least {k['least_per_step']:,.0f}, {k['ratio_to_least']:.2f}x of it")
        print(f"  {'array':10s} {'shape':>24s} {'bytes/step':>11s}  kind")
        for r in k["rows"]:
            if r["bytes_per_step"]:
                print(f"  {r['name']:10s} {str(tuple(r['shape'])):>24s} "
                      f"{r['bytes_per_step']:11,.0f}  {r['kind']}")


def print_machine(cases, peak):
    banner("Against the machine: GFLOP/s of the step's matrix products, % of this core's peak")
    print("peak: GEMM at " + ", ".join(
        f"{p['size']}x{p['size']} {dtype} {p['gflops']:.1f} GFLOP/s ({p['by']})"
        for dtype, p in peak.items()) + ", one thread")
    names = ("gemm_floor", "gemm_floor_torch", "gemm_floor_numba", "numba_lstm", "torch_lstm",
             "numba_peephole", "torch_loop")
    print(f"{'(T, B, D, H)':20s} {'dtype':8s} {'fastest floor':>17s} "
          + " ".join(f"{n.replace('gemm_floor', 'floor'):>17s}" for n in names))
    for c in cases:
        t, p = c["times"], peak.get(c["dtype"])
        cells = [f"{t[n]['gflops']:6.1f} ({100 * t[n]['gflops'] / p['gflops']:3.0f}%)"
                 if n in t and p else f"{'n/a':>17s}" for n in names]
        print(f"{label(c)} {fastest_floor(t) or 'n/a':>17s} " + " ".join(f"{s:>17s}" for s in cells))
    print("GFLOP/s: the step's GEMM flops (2mnk summed over its products) over the contender's "
          "whole step; floor: NumPy's BLAS,\nfloor_torch: torch.matmul, floor_numba: the Numba "
          "modules' BLAS in one compiled loop")


def first_ms(c, name):
    s = c["first_call_s"].get(name)
    return "     n/a" if s is None else f"{1e3 * s:8.2f}"


def print_memory(memory):
    banner("Peak memory of one training step, MiB")
    print("rss: rise of the peak resident set size (VmHWM) during one step after a warm-up step, fresh\n"
          "process, glibc mmap threshold 64 KiB (page-granular: meaningless below ~1 MiB);\n"
          "tm: tracemalloc peak of the same step (every NumPy allocation; NumPy code only)")
    print(f"{'(T, B, D, H)':20s} {'dtype':8s} {'gen_lstm rss / tm':>19s} {'torch_lstm rss':>15s} "
          f"{'gen/torch':>9s}   {'gen_peep rss / tm':>19s} {'torch_loop rss':>15s} {'gen/torch':>9s}")
    rows = {}
    for m in memory:
        rows.setdefault((tuple(m["shape"]), m["dtype"]), {})[m["impl"]] = m
    for (shape, dtype), r in rows.items():
        cells = [memory_cells(r[gen], r[ref]) for gen, ref in (("gen_lstm", "torch_lstm"),
                                                              ("gen_peephole", "torch_loop"))]
        print(f"{str(shape):20s} {dtype:8s} " + "   ".join(cells))


def memory_cells(gen, ref):
    def mib(row, key):
        return row.get(key) / 2**20 if row.get(key) is not None else math.nan
    g, t = mib(gen, "rss_peak_rise_bytes"), mib(ref, "rss_peak_rise_bytes")
    ratio = f"{g / t:9.2f}" if t >= 1 else "        -"
    return f"{g:9.1f} / {mib(gen, 'tracemalloc_peak_bytes'):7.1f} {t:15.1f} {ratio}"


def print_side(symbolic, imp):
    banner("Symbolic side and import")
    print(f"derive + render every cell (symlstm.build.sources()), fresh interpreter: "
          f"{symbolic['process_wall_s']:.2f} s wall, {symbolic['in_process_s']:.2f} s of it after "
          f"start-up; median of {symbolic['runs']}  [target <= {TARGETS['symbolic_s']} s]")
    print(f"import symlstm.generated.lstm, NumPy already imported: {imp['import_ms']:.0f} ms, median of "
          f"{imp['runs']} fresh processes [target <= {TARGETS['import_ms']} ms]; pulls in SymPy: "
          f"{imp['pulls_in_sympy']}")
    print(f"  generated/lstm.py loaded by path instead (no symlstm package): {imp['import_by_file_path_ms']:.0f} ms;"
          f" whole `python -c 'import symlstm.generated.lstm'`: {imp['process_wall_s']:.2f} s; "
          f"PYTHONDONTWRITEBYTECODE={imp['pythondontwritebytecode']}")


def print_targets(goals):
    count = {s: sum(g["status"] == s for g in goals) for s in ("pass", "miss", "skip")}
    banner(f"Targets: {count['pass']} pass, {count['miss']} miss, {count['skip']} skipped")
    width = max(len(g["what"]) for g in goals)
    print(f"{'target':{width}s} {'measured':>9s} {'limit':>9s}  result")
    for g in goals:
        value = "n/a" if g["value"] is None else f"{g['value']:.2f}"
        result = "MISS" if g["status"] == "miss" else g["status"]   # as in the tables above
        print(f"{g['what']:{width}s} {value:>9s} {'<= ' + format(g['limit'], 'g'):>9s}  {result}")
    bounds = [g for g in goals if g.get("bound")]
    if bounds:
        print("\nWhat bounds each missed Numba target:")
        for g in bounds:
            print(f"  {g['what']}: {g['bound']}")


def print_report(info, cases, memory, symbolic, imp, goals, peak, cell_cases=()):
    print_system(info)
    if not cases:       # --cells-only
        print_cells(cell_cases)
        print_matrix_cells(cell_cases)
        print_targets(goals)
        return
    print_checks(cases)
    print_lstm(cases)
    print_peephole(cases)
    print_torch_backend(cases)
    print_numba_backend(cases)
    print_cells(cell_cases)
    print_matrix_cells(cell_cases)
    print_machine(cases, peak)
    print_memory(memory)
    print_side(symbolic, imp)
    print_targets(goals)
