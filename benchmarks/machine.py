"""The machine: one thread per BLAS, the process pinned to one core, what the record says
about the system, and this core's peak floating-point rate."""
from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np
import threadpoolctl
import torch

from contenders import numba_gemm, numba_lstm

REPO = Path(__file__).resolve().parent.parent


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


def system_info(cpu, jax, thread_env, dropped_env):
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
        "dropped_env": dropped_env,
        "numba_blas": getattr(numba_lstm, "BLAS", None),
        "env": {k: os.environ.get(k) for k in [*thread_env, "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                               "SYMLSTM_BLAS", "PYTHONDONTWRITEBYTECODE"]},
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


def peak_gflops(dtype, size=1536, repeats=5):
    """This core's peak rate in ``dtype``: the best GEMM of two size x size matrices, one
    thread, through each BLAS installed (torch's MKL, NumPy's, the Numba modules')."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size)).astype(dtype) for _ in range(2))
    out = np.empty_like(a)
    ta, tb, tout = map(torch.from_numpy, (a, b, out))
    runs = {"torch.matmul": lambda: torch.matmul(ta, tb, out=tout),
            "numpy.matmul": lambda: np.matmul(a, b, out=out)}
    if numba_lstm is not None:
        gemm = numba_gemm()
        runs[f"numba modules ({numba_lstm.BLAS})"] = lambda: gemm(a, b, out)
    best = {}
    for name, run in runs.items():
        run()   # warm-up
        walls = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            run()
            walls.append(time.perf_counter() - t0)
        best[name] = 2 * size**3 / min(walls) / 1e9
    by = max(best, key=best.get)
    return {"gflops": best[by], "by": by, "size": size, "all": best}
