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
symlstm.generated.lstm.  Every ratio is checked against its target in one table
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
import dataclasses  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import threadpoolctl  # noqa: E402
import torch  # noqa: E402

from symlstm.generated import lstm as gen_lstm   # noqa: E402
from symlstm.generated import peephole_lstm as gen_peephole   # noqa: E402
from symlstm.generated.torch import lstm as torchgen_lstm   # noqa: E402
from symlstm.generated.torch import peephole_lstm as torchgen_peephole   # noqa: E402

try:
    from symlstm.generated.numba import lstm as numba_lstm   # noqa: E402
    from symlstm.generated.numba import peephole_lstm as numba_peephole   # noqa: E402
    NUMBA_MISSING = None
except ImportError as e:       # numba is an optional extra
    numba_lstm = numba_peephole = None
    NUMBA_MISSING = f"numba not installed ({e})"

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHAPES = [(20, 1, 32, 32), (50, 32, 128, 128), (200, 16, 64, 64), (100, 64, 256, 256)]
DTYPES = ["float64", "float32"]
TOLERANCE = {"float64": 1e-8, "float32": 1e-4}   # max |a - b| / max |b|, per gradient
TORCH_GATES = "ifzo"       # torch.nn.LSTM's chunk order: i, f, g (our z), o
FUSED_GATES = "zifo"       # our fused order, as in the generated code
TARGETS = {                # limits on ratios (and on the two side measurements) checked by targets()
    ("lstm", "float64", "torch"): 1.0,
    ("lstm", "float32", "torch"): 1.2,
    ("lstm", "floor"): 1.25,             # only at FLOOR_SHAPE
    ("peephole", "torch"): 0.75,
    ("peephole", "jax"): 1.0,
    ("peephole", "torchgen"): 1.1,       # torch backend / torch autograd of the same cell
    ("numba lstm", "float32", "torch"): 1.0,
    ("numba lstm", "float64", "torch"): 0.9,
    ("numba peephole", "torch"): 0.5,
    ("numba peephole", "jax"): 1.0,
    ("numba lstm", "floor"): 1.15,       # only at FLOOR_SHAPE
    "symbolic_s": 10.0,
    "import_ms": 50.0,
}
FLOOR_SHAPE = (100, 64, 256, 256)
DEFAULT_JSON = HERE / "out" / "results.json"   # git-ignored: only --json touches results.json
jax = jnp = None           # imported by load_jax(): the memory workers do without
SKIPPED = {}               # contender: why it does not run (a library it needs is missing)
if NUMBA_MISSING:
    SKIPPED.update(numba_lstm=NUMBA_MISSING, numba_peephole=NUMBA_MISSING)


# ----------------------------------------------------------------------------- set-up

def limit_threads(cpu):
    """One thread everywhere; pin the process (and its subprocesses) to one core."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:       # only allowed before torch's first parallel work
        pass
    return threadpoolctl.threadpool_limits(limits=1)   # keep a reference: limits hold while alive


def load_jax():
    """JAX is optional: without it jax_scan is skipped (and the report says so), not the run."""
    global jax, jnp
    try:
        import jax as _jax
    except ImportError as e:
        SKIPPED["jax_scan"] = f"JAX not installed ({e})"
        return
    _jax.config.update("jax_enable_x64", True)     # float64 runs; float32 arrays stay float32
    import jax.numpy as _jnp
    jax, jnp = _jax, _jnp


def system_info(cpu):
    """Versions, CPU, BLAS libraries and thread settings."""
    torch_cfg = torch.__config__.show().splitlines()
    keep = ("Math Kernel Library", "MKL-DNN", "CPU capability", "OpenMP")
    return {
        "python": platform.python_version(),
        "numpy": np.__version__, "torch": torch.__version__,
        "jax": getattr(jax, "__version__", None),
        "cpu_model": _cpu_model(), "cpus_online": os.cpu_count(), "cpu_flags": _cpu_flags(),
        "pinned_to_cpu": cpu, "affinity": sorted(os.sched_getaffinity(0)),
        "threadpoolctl": [{k: lib.get(k) for k in ("user_api", "internal_api", "version", "architecture",
                                                "threading_layer", "num_threads", "filepath")}
                       for lib in threadpoolctl.threadpool_info()],
        "torch_libs": [line.strip(" -") for line in torch_cfg if any(k in line for k in keep)],
        "torch_threads": torch.get_num_threads(),
        "dropped_env": DROPPED_ENV,
        "env": {k: os.environ.get(k) for k in [*THREAD_ENV, "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                               "PYTHONDONTWRITEBYTECODE"]},
        "git": _git_state(),
    }


def _cpuinfo(field):
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(field):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _cpu_model():
    return _cpuinfo("model name") or platform.processor()


def _cpu_flags():
    """The SIMD extensions that decide which BLAS kernels can run."""
    flags = set(_cpuinfo("flags").split())
    return [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in flags]


def _git_state():
    """The commit measured and whether generated/ differs from it; None for each where git
    is not installed or the folder is not a git checkout (an unpacked release)."""
    def git(*args):
        try:
            run = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        except OSError:   # no git on this machine
            return None
        return run.stdout.strip() if run.returncode == 0 else None
    status = git("status", "--porcelain", "generated")
    return {"commit": git("rev-parse", "HEAD"),
            "dirty_generated": None if status is None else bool(status)}


# ----------------------------------------------------------------------------- problems

@dataclasses.dataclass
class Problem:
    """One benchmark case: shapes, peephole parameters (lstm uses the subset), inputs, dL/dhs."""
    T: int
    B: int
    D: int
    H: int
    dtype: str
    params: dict
    x: np.ndarray
    h0: np.ndarray
    c0: np.ndarray
    dhs: np.ndarray

    def lstm_params(self):
        return {name: self.params[name] for name in gen_lstm.PARAMS}

    def fused(self, kind, order=FUSED_GATES):
        return np.concatenate([self.params[f"{kind}_{g}"] for g in order])


def make_problem(shape, dtype, seed=0):
    T, B, D, H = shape
    rng = np.random.default_rng(seed)
    params = gen_peephole.init_params(D, H, rng=rng, dtype=dtype)
    draw = lambda *s: rng.standard_normal(s).astype(dtype)   # noqa: E731
    return Problem(T, B, D, H, dtype, params, draw(T, B, D), draw(B, H), draw(B, H), draw(T, B, H))


def split_fused(prefix, fused, order):
    """(4H, ...) gradient of a fused matrix -> {prefix_g: (H, ...)} in our naming."""
    return {f"{prefix}_{g}": part for g, part in zip(order, np.split(fused, 4))}


# ----------------------------------------------------------------------------- contenders
# Each builder returns (step, to_grads): step() runs one training step and returns the raw
# gradients; to_grads(raw) turns them into NumPy arrays named like the generated code's.

def build_generated(module, params, prob):
    state0 = {"h": prob.h0, "c": prob.c0}

    def step():
        hs, state, cache = module.forward(params, prob.x, state0)
        return module.backward(params, cache, prob.dhs)
    return step, dict


def build_gen_lstm(prob):
    return build_generated(gen_lstm, prob.lstm_params(), prob)


def build_gen_peephole(prob):
    return build_generated(gen_peephole, prob.params, prob)


def build_numba_lstm(prob):
    return build_generated(numba_lstm, prob.lstm_params(), prob)


def build_numba_peephole(prob):
    return build_generated(numba_peephole, prob.params, prob)


def leaf(a):
    return torch.from_numpy(np.array(a)).requires_grad_()


def take_grads(leaves):
    """The leaves' gradients, leaving .grad empty so that steps do not keep state around."""
    grads = [t.grad for t in leaves]
    for t in leaves:
        t.grad = None
    return grads


def build_torch_lstm(prob):
    net = torch.nn.LSTM(prob.D, prob.H).to(getattr(torch, prob.dtype))
    with torch.no_grad():
        net.weight_ih_l0.copy_(torch.from_numpy(prob.fused("W", TORCH_GATES)))
        net.weight_hh_l0.copy_(torch.from_numpy(prob.fused("R", TORCH_GATES)))
        net.bias_ih_l0.copy_(torch.from_numpy(prob.fused("b", TORCH_GATES)))
        net.bias_hh_l0.zero_()
    x, h0, c0 = leaf(prob.x), leaf(prob.h0[None]), leaf(prob.c0[None])
    dhs = torch.from_numpy(prob.dhs)
    leaves = [net.weight_ih_l0, net.weight_hh_l0, net.bias_ih_l0, x, h0, c0]

    def step():
        out, _ = net(x, (h0, c0))
        (out * dhs).sum().backward()
        return take_grads(leaves)

    def to_grads(raw):
        W, R, b, gx, gh0, gc0 = (g.numpy() for g in raw)
        return {**split_fused("W", W, TORCH_GATES), **split_fused("R", R, TORCH_GATES),
                **split_fused("b", b, TORCH_GATES), "x": gx, "h0": gh0[0], "c0": gc0[0]}
    return step, to_grads


def build_torchgen(module, prob):
    """A generated torch backend: its forward() with leaves that require gradients, then
    backward() of the same loss, which runs the derived BPTT of its autograd.Function."""
    params = {name: leaf(prob.params[name]) for name in module.PARAMS}
    x, h0, c0 = leaf(prob.x), leaf(prob.h0), leaf(prob.c0)
    dhs = torch.from_numpy(prob.dhs)
    leaves = [*params.values(), x, h0, c0]

    def step():
        hs, _ = module.forward(params, x, {"h": h0, "c": c0})
        (hs * dhs).sum().backward()
        return take_grads(leaves)

    def to_grads(raw):
        return {name: g.numpy() for name, g in zip([*params, "x", "h0", "c0"], raw)}
    return step, to_grads


def build_torchgen_lstm(prob):
    return build_torchgen(torchgen_lstm, prob)


def build_torchgen_peephole(prob):
    return build_torchgen(torchgen_peephole, prob)


def peephole_cell(gates, c_prev, p_i, p_f, p_o, tanh, sigmoid):
    """One peephole step from the pre-activations (z̄, ī, f̄, ō) without the peephole terms."""
    zbar, ibar, fbar, obar = gates
    z = tanh(zbar)
    i = sigmoid(ibar + p_i * c_prev)
    f = sigmoid(fbar + p_f * c_prev)
    c = c_prev * f + i * z
    o = sigmoid(obar + p_o * c)
    return o * tanh(c), c


def fused_peephole_params(prob):
    return {"W": prob.fused("W"), "R": prob.fused("R"), "b": prob.fused("b"),
            **{p: prob.params[p] for p in ("p_i", "p_f", "p_o")}}


def peephole_grads(P, gx, gh0, gc0):
    return {**split_fused("W", P["W"], FUSED_GATES), **split_fused("R", P["R"], FUSED_GATES),
            **split_fused("b", P["b"], FUSED_GATES), "p_i": P["p_i"], "p_f": P["p_f"],
            "p_o": P["p_o"], "x": gx, "h0": gh0, "c0": gc0}


def build_torch_loop(prob):
    T, B, D, H = prob.T, prob.B, prob.D, prob.H
    P = {k: leaf(v) for k, v in fused_peephole_params(prob).items()}
    x, h0, c0 = leaf(prob.x), leaf(prob.h0), leaf(prob.c0)
    dhs = torch.from_numpy(prob.dhs)
    leaves = [*P.values(), x, h0, c0]

    def step():
        proj = torch.addmm(P["b"], x.reshape(T * B, D), P["W"].t()).reshape(T, B, 4 * H)
        h, c, hs = h0, c0, []
        # unbind, not proj[t]: the backward of proj[t] writes a zero-filled (T, B, 4H) tensor per
        # step (quadratic in T; 5x slower at T=100, H=256); chunk, not slices, for the same reason
        for proj_t in proj.unbind(0):
            gates = torch.addmm(proj_t, h, P["R"].t()).chunk(4, dim=1)
            h, c = peephole_cell(gates, c, P["p_i"], P["p_f"], P["p_o"], torch.tanh, torch.sigmoid)
            hs.append(h)
        (torch.stack(hs) * dhs).sum().backward()
        return take_grads(leaves)

    def to_grads(raw):
        raw = [g.numpy() for g in raw]
        return peephole_grads(dict(zip(P, raw)), *raw[len(P):])
    return step, to_grads


def jax_peephole_loss(P, x, h0, c0, dhs):
    T, B, D = x.shape
    proj = (x.reshape(T * B, D) @ P["W"].T + P["b"]).reshape(T, B, -1)

    def cell(carry, proj_t):
        h, c = carry
        gates = jnp.split(proj_t + h @ P["R"].T, 4, axis=1)
        h, c = peephole_cell(gates, c, P["p_i"], P["p_f"], P["p_o"], jnp.tanh, jax.nn.sigmoid)
        return (h, c), h
    _, hs = jax.lax.scan(cell, (h0, c0), proj)
    return jnp.sum(hs * dhs)


def build_jax_scan(prob):
    """Compiles first; the compile time is in step.compile_s."""
    args = (jax.tree_util.tree_map(jnp.asarray, fused_peephole_params(prob)),
            *(jnp.asarray(a) for a in (prob.x, prob.h0, prob.c0, prob.dhs)))
    grad_fn = jax.jit(jax.grad(jax_peephole_loss, argnums=(0, 1, 2, 3)))
    t0 = time.perf_counter()
    compiled = grad_fn.lower(*args).compile()
    compile_s = time.perf_counter() - t0

    def step():
        return jax.block_until_ready(compiled(*args))
    step.compile_s = compile_s

    def to_grads(raw):
        P, gx, gh0, gc0 = jax.tree_util.tree_map(np.asarray, raw)
        return peephole_grads(P, gx, gh0, gc0)
    return step, to_grads


def gemm_products(prob):
    """[(a, b, out)]: every matrix product of one step, same layouts as the generated code."""
    T, B, D, H, dt = prob.T, prob.B, prob.D, prob.H, prob.dtype
    rng = np.random.default_rng(1)
    W, R = prob.fused("W"), prob.fused("R")                        # (4H, D), (4H, H)
    x = prob.x.reshape(T * B, D)
    hs = rng.standard_normal((T, B, H)).astype(dt)                 # stands in for h_{t-1}
    g = rng.standard_normal((T, B, 4 * H)).astype(dt)              # stands in for δgates
    hs2, g2 = hs.reshape(T * B, H), g.reshape(T * B, 4 * H)
    rec, dh = np.empty((B, 4 * H), dt), np.empty((B, H), dt)
    return [(x, W.T, np.empty((T * B, 4 * H), dt)),                # forward input projection
            *[(hs[t], R.T, rec) for t in range(T)],                # forward recurrent GEMMs
            *[(g[t], R, dh) for t in range(T)],                    # backward recurrent GEMMs
            (g2.T, x, np.empty((4 * H, D), dt)),                   # dW
            (g2.T, hs2, np.empty((4 * H, H), dt)),                 # dR
            (g2, W, np.empty((T * B, D), dt))]                     # dx


def build_gemm_floor(prob, matmul=np.matmul, convert=lambda a: a):
    """Only the matrix products of one step, into preallocated outputs."""
    products = [tuple(map(convert, abc)) for abc in gemm_products(prob)]

    def step():
        for a, b, out in products:
            matmul(a, b, out=out)
    return step, None


def build_gemm_floor_torch(prob):
    """The same products with torch.matmul (MKL): how fast is torch's BLAS on this machine?"""
    return build_gemm_floor(prob, torch.matmul, torch.from_numpy)


CONTENDERS = {   # name: (builder, cell, reference contender or None)
    "gemm_floor": (build_gemm_floor, None, None),
    "gemm_floor_torch": (build_gemm_floor_torch, None, None),
    "gen_lstm": (build_gen_lstm, "lstm", "torch_lstm"),
    "torch_lstm": (build_torch_lstm, "lstm", None),
    "torchgen_lstm": (build_torchgen_lstm, "lstm", "torch_lstm"),
    "gen_peephole": (build_gen_peephole, "peephole", "torch_loop"),
    "torch_loop": (build_torch_loop, "peephole", None),
    "torchgen_peephole": (build_torchgen_peephole, "peephole", "torch_loop"),
    "numba_lstm": (build_numba_lstm, "lstm", "torch_lstm"),
    "numba_peephole": (build_numba_peephole, "peephole", "torch_loop"),
    "jax_scan": (build_jax_scan, "peephole", "torch_loop"),
}


# ----------------------------------------------------------------------------- checking

def max_rel_error(got, ref, dtype):
    """max over gradients of max|got - ref| / max|ref|; inf when a name or dtype is wrong."""
    if set(got) != set(ref) or any(np.asarray(got[k]).dtype != dtype for k in got):
        return math.inf
    return max(float(np.max(np.abs(got[k] - ref[k])) / max(float(np.max(np.abs(ref[k]))), 1e-300))
               for k in ref)


def check(built, prob):
    """Each checked contender's error against its reference, {name: max relative error}, and
    the wall time of the step that produced its gradients, its first call, {name: seconds}."""
    grads, first_call = {}, {}
    for n, (step, to_grads) in built.items():
        if to_grads:
            t0 = time.perf_counter()
            raw = step()
            first_call[n] = time.perf_counter() - t0
            grads[n] = to_grads(raw)
    errors = {n: max_rel_error(grads[n], grads[CONTENDERS[n][2]], prob.dtype)
              for n in grads if CONTENDERS[n][2]}
    return errors, first_call


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
    return {"shape": list(shape), "dtype": dtype, "max_rel_error": errors,
            "tolerance": TOLERANCE[dtype], "wrong": wrong,
            "jax_compile_s": built["jax_scan"][0].compile_s if "jax_scan" in built else None,
            "first_call_s": first_call,
            "times": times,
            "ratios": ratios({n: t["median_s"] for n, t in times.items()})}


def ratios(med):
    def r(a, b):
        return med[a] / med[b] if a in med and b in med else None
    return {"gen_lstm/torch_lstm": r("gen_lstm", "torch_lstm"),
            "gen_peephole/torch_loop": r("gen_peephole", "torch_loop"),
            "gen_peephole/jax_scan": r("gen_peephole", "jax_scan"),
            "torchgen_lstm/torch_lstm": r("torchgen_lstm", "torch_lstm"),
            "torchgen_peephole/torch_loop": r("torchgen_peephole", "torch_loop"),
            "torchgen_peephole/gen_peephole": r("torchgen_peephole", "gen_peephole"),
            "numba_lstm/torch_lstm": r("numba_lstm", "torch_lstm"),
            "numba_peephole/torch_loop": r("numba_peephole", "torch_loop"),
            "numba_peephole/jax_scan": r("numba_peephole", "jax_scan"),
            "numba_peephole/gen_peephole": r("numba_peephole", "gen_peephole"),
            **{f"{n}/gemm_floor": r(n, "gemm_floor") for n in med if n != "gemm_floor"}}


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
                cmd = [sys.executable, __file__, "--memory-worker", impl, dtype, *map(str, shape)]
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


# ----------------------------------------------------------------------------- report

def targets(cases, symbolic, imp):
    """[{what, value, limit, status}] for every target the brief sets, status pass, miss or skip."""
    out = []
    for c in cases:
        label, r = f"{tuple(c['shape'])} {c['dtype']}", c["ratios"]
        out.append((f"lstm gen/torch {label}", r["gen_lstm/torch_lstm"],
                    TARGETS[("lstm", c["dtype"], "torch")], "torch_lstm"))
        if tuple(c["shape"]) == FLOOR_SHAPE:
            out.append((f"lstm gen/GEMM floor {label}", r.get("gen_lstm/gemm_floor"),
                        TARGETS[("lstm", "floor")], "gemm_floor"))
        out.append((f"peephole gen/torch loop {label}", r["gen_peephole/torch_loop"],
                    TARGETS[("peephole", "torch")], "torch_loop"))
        out.append((f"peephole gen/jax scan {label}", r["gen_peephole/jax_scan"],
                    TARGETS[("peephole", "jax")], "jax_scan"))
        out.append((f"peephole torch backend/torch loop {label}", r["torchgen_peephole/torch_loop"],
                    TARGETS[("peephole", "torchgen")], "torch_loop"))
        out.append((f"lstm numba/torch {label}", r["numba_lstm/torch_lstm"],
                    TARGETS[("numba lstm", c["dtype"], "torch")], "numba_lstm"))
        if tuple(c["shape"]) == FLOOR_SHAPE:
            out.append((f"lstm numba/GEMM floor {label}", r.get("numba_lstm/gemm_floor"),
                        TARGETS[("numba lstm", "floor")], "numba_lstm"))
        out.append((f"peephole numba/torch loop {label}", r["numba_peephole/torch_loop"],
                    TARGETS[("numba peephole", "torch")], "numba_peephole"))
        out.append((f"peephole numba/jax scan {label}", r["numba_peephole/jax_scan"],
                    TARGETS[("numba peephole", "jax")],
                    "jax_scan" if "jax_scan" in SKIPPED else "numba_peephole"))
    if symbolic:
        out.append(("symbolic cold start [s]", symbolic["process_wall_s"], TARGETS["symbolic_s"], None))
    if imp:
        out.append(("import symlstm.generated.lstm [ms]", imp["import_ms"], TARGETS["import_ms"], None))
    return [{"what": w, "value": v, "limit": lim, "status": target_status(v, lim, against)}
            for w, v, lim, against in out]


def target_status(value, limit, against):
    """skip only when the contender compared against did not run; a missing value (wrong
    gradients, not timed) is a miss."""
    if against in SKIPPED:
        return "skip"
    return "pass" if value is not None and value <= limit else "miss"


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
    print("env: " + ", ".join(f"{k}={v}" for k, v in info["env"].items()))
    if DROPPED_ENV:
        print("dropped before NumPy loaded (--keep-openblas-env keeps them): "
              + ", ".join(f"{k}={v}" for k, v in DROPPED_ENV.items()))
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
          f"{'nb/floor':>8s}   {'nb peephole':>13s} {'1st ms':>8s} {'nb/loop':>10s} {'nb/jax':>10s} "
          f"{'nb/numpy':>8s}")
    for c in cases:
        t, r, dtype = c["times"], c["ratios"], c["dtype"]
        floor, numpy = r.get("numba_lstm/gemm_floor"), r["numba_peephole/gen_peephole"]
        print(f"{label(c)} {ms(t.get('numba_lstm'))} {first_ms(c, 'numba_lstm')} "
              f"{mark(r['numba_lstm/torch_lstm'], TARGETS[('numba lstm', dtype, 'torch')])} "
              + ("     n/a" if floor is None else f"{floor:8.2f}") + "   "
              f"{ms(t.get('numba_peephole'))} {first_ms(c, 'numba_peephole')} "
              f"{mark(r['numba_peephole/torch_loop'], TARGETS[('numba peephole', 'torch')])} "
              f"{mark(r['numba_peephole/jax_scan'], TARGETS[('numba peephole', 'jax')])} "
              + ("     n/a" if numpy is None else f"{numpy:8.2f}"))
    print(f"targets: nb lstm/torch.nn.LSTM <= {TARGETS[('numba lstm', 'float32', 'torch')]} (float32), "
          f"<= {TARGETS[('numba lstm', 'float64', 'torch')]} (float64); nb lstm/GEMM floor <= "
          f"{TARGETS[('numba lstm', 'floor')]} at {FLOOR_SHAPE};\nnb peephole/torch loop <= "
          f"{TARGETS[('numba peephole', 'torch')]}, nb peephole/jax <= {TARGETS[('numba peephole', 'jax')]}.  "
          "1st ms: the first call in the case, compiling or loading from numba's cache")


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


def print_report(info, cases, memory, symbolic, imp, goals):
    print_system(info)
    print_checks(cases)
    print_lstm(cases)
    print_peephole(cases)
    print_torch_backend(cases)
    print_numba_backend(cases)
    print_memory(memory)
    print_side(symbolic, imp)
    print_targets(goals)


# ----------------------------------------------------------------------------- main

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
    ap.add_argument("--memory-worker", nargs=6, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.repeats = args.repeats or (3 if args.quick else 9)
    args.min_sample = args.min_sample or (0.01 if args.quick else 0.05)
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.memory_worker:
        impl, dtype, *shape = args.memory_worker
        return memory_worker(impl, tuple(map(int, shape)), dtype)
    cpu = None if args.no_pin else args.cpu
    limits = limit_threads(cpu)   # noqa: F841  (the limits last as long as this object)
    load_jax()
    # sample() collects garbage before every sample; with torch and JAX loaded that walks some
    # 230k long-lived objects, ~0.15 s a call and most of a quick run's timing.  Frozen, the
    # collector skips them.
    gc.freeze()
    info = system_info(cpu)
    shapes = SHAPES[:2] if args.quick else SHAPES
    cases = []
    for shape in shapes:
        for dtype in DTYPES:
            print(f"timing {shape} {dtype} ...", flush=True)
            cases.append(run_case(shape, dtype, args.repeats, args.min_sample))
    print("memory ...", flush=True)
    # a fresh process per contender costs ~2.5 s, mostly importing torch; the small shape's
    # rises are below the RSS's page granularity anyway
    memory_shapes = shapes[-1:] if args.quick else shapes
    memory = measure_memory(memory_shapes, DTYPES)
    print("symbolic side and import ...", flush=True)
    symbolic = measure_symbolic(1 if args.quick else 3)
    imp = measure_import(3 if args.quick else 9)
    goals = targets(cases, symbolic, imp)
    print_report(info, cases, memory, symbolic, imp, goals)
    config = {"quick": args.quick, "strict": args.strict, "repeats": args.repeats,
              "min_sample_s": args.min_sample, "shapes": shapes, "memory_shapes": memory_shapes,
              "dtypes": DTYPES, "skipped": SKIPPED, "targets": {str(k): v for k, v in TARGETS.items()}}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"system": info, "config": config, "cases": cases,
                                     "memory": memory, "symbolic": symbolic, "import": imp,
                                     "targets": goals}, indent=1, default=str))
    print(f"\nnumbers written to {args.json}")
    return exit_code(cases, goals, args.strict)


def exit_code(cases, goals, strict):
    """1 for wrong gradients, always; for a missed target only with --strict."""
    if any(c["wrong"] for c in cases):
        print("exit 1: gradients disagree with the reference: "
              + ", ".join(f"{tuple(c['shape'])} {c['dtype']} {c['wrong']}" for c in cases if c["wrong"]))
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
