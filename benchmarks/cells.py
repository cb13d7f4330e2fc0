"""The rows of the newer cells: layernorm_lstm and slstm (NH = 4), each generated Numba module
against a torch autograd loop of the same cell (and slstm against the xlstm package's vanilla
sLSTM), at CELL_SHAPE, one training step as in the LSTM cases.  The gradients of every
contender are checked against the generated NumPy module before timing."""
from __future__ import annotations

import importlib
import time

import numpy as np
import torch
import torch.nn.functional as F

from contenders import NUMBA_MISSING, TOLERANCE, build_gemm_floor, build_gemm_floor_numba, \
    build_gemm_floor_torch, gemm_flops, leaf, make_problem, max_rel_error, take_grads
from targets import fastest_floor

CELL_SHAPE = (256, 16, 128, 128)   # (T, B, D, H)
QUICK_CELL_SHAPE = (64, 16, 128, 128)   # --quick: a quarter of the steps
NUM_HEADS = 4                      # slstm's NH
LN_EPS = 1e-5                      # layernorm_lstm's ε
GATES = "zifo"                     # the generated modules' gate order


def load(name):
    """The module symlstm.generated.<name>, or None with why it is missing."""
    try:
        return importlib.import_module(f"symlstm.generated.{name}"), None
    except ImportError as e:
        return None, f"{e}"


# ----------------------------------------------------------------------------- problems

def cell_problem(numpy_module, shape, dtype, sizes, seed=0):
    """Parameters from the NumPy module's init_params, x, initial states and dL/dhs.  Positive
    initial n where the cell has it, so that h = o ⊙ c / n starts finite."""
    T, B, D, H = shape
    rng = np.random.default_rng(seed)
    params = numpy_module.init_params(D, H, rng=rng, dtype=dtype, **sizes)
    draw = lambda *s: rng.standard_normal(s).astype(dtype)   # noqa: E731
    state0 = {s: draw(B, H) for s in numpy_module.STATES}
    if "n" in state0:
        state0["n"] = 1 + np.abs(state0["n"])
    if "m" in state0:
        state0["m"] = np.zeros((B, H), dtype)
    return {"params": params, "x": draw(T, B, D), "state0": state0, "dhs": draw(T, B, H),
            "shape": shape, "dtype": dtype}


def build_module(module, prob):
    """A generated module (NumPy or Numba): forward() + backward()."""
    def step():
        hs, _, cache = module.forward(prob["params"], prob["x"], prob["state0"])
        return module.backward(prob["params"], cache, prob["dhs"])
    return step, dict


def torch_leaves(prob, fused):
    """Leaves for a torch loop: the fused parameters, x and the initial states."""
    P = {k: leaf(v) for k, v in fused.items()}
    x = leaf(prob["x"])
    s0 = {s: leaf(v) for s, v in prob["state0"].items()}
    return P, x, s0, [*P.values(), x, *s0.values()]


def torch_grads(P, s0, unfuse):
    """to_grads of a torch loop: the generated modules' names (state s's gradient is s + "0")."""
    def to_grads(raw):
        raw = [g.numpy() for g in raw]
        out = unfuse(dict(zip(P, raw)))
        out["x"] = raw[len(P)]
        out.update({f"{s}0": g for s, g in zip(s0, raw[len(P) + 1:])})
        return out
    return to_grads


def split(prefix, fused, axis=0):
    return {f"{prefix}_{g}": part for g, part in zip(GATES, np.split(fused, 4, axis=axis))}


# ----------------------------------------------------------------------------- layernorm_lstm

def build_torch_layernorm(prob):
    """The layer-normalised LSTM in torch autograd: one GEMM and one layer norm for the input
    side of every step, then one fused (B, H) @ (H, 4H) GEMM, F.layer_norm twice and the gates
    per step."""
    T, B, D, H = prob["shape"]
    p = prob["params"]
    cat = lambda k: np.concatenate([p[f"{k}_{g}"] for g in GATES])   # noqa: E731
    fused = {"W": cat("W"), "R": cat("R"), "b": cat("b"),
             **{k: p[k] for k in ("gamma_x", "gamma_h", "gamma_c", "beta_c")}}
    P, x, s0, leaves = torch_leaves(prob, fused)
    dhs = torch.from_numpy(prob["dhs"])

    def step():
        a = (x.reshape(T * B, D) @ P["W"].t()).reshape(T, B, 4 * H)
        la = F.layer_norm(a, (4 * H,), P["gamma_x"], None, LN_EPS) + P["b"]
        h, c, hs = s0["h"], s0["c"], []
        for la_t in la.unbind(0):
            lr = F.layer_norm(h @ P["R"].t(), (4 * H,), P["gamma_h"], None, LN_EPS)
            zbar, ibar, fbar, obar = (la_t + lr).chunk(4, dim=1)
            c = torch.sigmoid(fbar) * c + torch.sigmoid(ibar) * torch.tanh(zbar)
            h = torch.sigmoid(obar) * torch.tanh(
                F.layer_norm(c, (H,), P["gamma_c"], P["beta_c"], LN_EPS))
            hs.append(h)
        (torch.stack(hs) * dhs).sum().backward()
        return take_grads(leaves)

    def unfuse(g):
        return {**split("W", g.pop("W")), **split("R", g.pop("R")), **split("b", g.pop("b")), **g}
    return step, torch_grads(P, s0, unfuse)


# ----------------------------------------------------------------------------- slstm

def slstm_fused(prob):
    """W (4H, D) and b (4H) in our gate order; R (NH, H/NH, 4 H/NH): head k's blocks of the
    four gates side by side, transposed, so that h_k @ R[k] gives that head's four products."""
    p = prob["params"]
    return {"W": np.concatenate([p[f"W_{g}"] for g in GATES]),
            "b": np.concatenate([p[f"b_{g}"] for g in GATES]),
            "R": np.concatenate([p[f"R_{g}"].transpose(0, 2, 1) for g in GATES], axis=2)}


def slstm_unfuse(g):
    R = g["R"]
    return {**split("W", g["W"]), **split("b", g["b"]),
            **{k: v.transpose(0, 2, 1) for k, v in split("R", R, axis=2).items()}}


def torch_slstm_hs(P, x, s0, num_heads=NUM_HEADS):
    """hs (T, B, H) of slstm in torch ops from the fused parameters of slstm_fused: one GEMM
    for the input side of every step, then per step one batched (NH, B, H/NH) @
    (NH, H/NH, 4 H/NH) product for the block-diagonal R and the stabilised exponential gates."""
    T, B, D = x.shape
    H = P["b"].shape[0] // 4
    NH, HS = num_heads, H // num_heads
    proj = torch.addmm(P["b"], x.reshape(T * B, D), P["W"].t()).reshape(T, B, 4 * H)
    h, c, n, m = (s0[s] for s in "hcnm")
    hs = []
    for proj_t in proj.unbind(0):
        r = torch.bmm(h.reshape(B, NH, HS).transpose(0, 1), P["R"])      # (NH, B, 4 HS)
        r = r.reshape(NH, B, 4, HS).permute(1, 2, 0, 3).reshape(B, 4 * H)  # gate-major
        zbar, ibar, fbar, obar = (proj_t + r).chunk(4, dim=1)
        logf = F.logsigmoid(fbar)
        m_new = torch.maximum(logf + m, ibar)
        i, f = torch.exp(ibar - m_new), torch.exp(logf + m - m_new)
        c, n, m = f * c + i * torch.tanh(zbar), f * n + i, m_new
        h = torch.sigmoid(obar) * c / n
        hs.append(h)
    return torch.stack(hs)


def build_torch_slstm(prob):
    """slstm in torch autograd (torch_slstm_hs), backward of the same loss."""
    P, x, s0, leaves = torch_leaves(prob, slstm_fused(prob))
    dhs = torch.from_numpy(prob["dhs"])

    def step():
        (torch_slstm_hs(P, x, s0) * dhs).sum().backward()
        return take_grads(leaves)
    return step, torch_grads(P, s0, slstm_unfuse)


XLSTM_GATES = "ifzo"   # the gate order of xlstm's vanilla sLSTM


def build_xlstm_slstm(prob):
    """The xlstm package's vanilla sLSTM (xlstm.blocks.slstm.src.vanilla, the backend its
    sLSTMCell uses without CUDA) over the same input products, differentiated by autograd.
    Its recurrent kernel is (NH, 4 H/NH, H/NH), gates i, f, z, o; its bias is added per step."""
    from xlstm.blocks.slstm.src.vanilla import slstm_forward, slstm_pointwise_function_registry
    T, B, D, H = prob["shape"]
    p = prob["params"]
    fused = {"W": np.concatenate([p[f"W_{g}"] for g in XLSTM_GATES]),
             "b": np.concatenate([p[f"b_{g}"] for g in XLSTM_GATES]),
             "R": np.concatenate([p[f"R_{g}"] for g in XLSTM_GATES], axis=1)}
    P, x, s0, leaves = torch_leaves(prob, fused)
    dhs = torch.from_numpy(prob["dhs"])
    pointwise = slstm_pointwise_function_registry["slstm"]

    def step():
        wx = (x.reshape(T * B, D) @ P["W"].t()).reshape(T, B, 4 * H)
        states = torch.stack([s0[s] for s in "hcnm"])
        all_states, _, _ = slstm_forward(wx, states, P["R"], P["b"], pointwise)
        (all_states[0, 1:] * dhs).sum().backward()
        return take_grads(leaves)

    def unfuse(g):
        parts = lambda k, axis: dict(zip(XLSTM_GATES, np.split(g[k], 4, axis=axis)))  # noqa: E731
        return {**{f"W_{q}": v for q, v in parts("W", 0).items()},
                **{f"b_{q}": v for q, v in parts("b", 0).items()},
                **{f"R_{q}": v for q, v in parts("R", 1).items()}}
    return step, torch_grads(P, s0, unfuse)


# ----------------------------------------------------------------------------- the rows

#: cell: the sizes beyond D and H its init_params takes, its torch loop and other contenders.
CELLS = {
    "layernorm_lstm": {"sizes": {}, "torch_loop": build_torch_layernorm},
    "slstm": {"sizes": {"num_heads": NUM_HEADS}, "torch_loop": build_torch_slstm,
              "xlstm": build_xlstm_slstm},
}


def xlstm_missing():
    """Why xlstm's vanilla sLSTM cannot run here, or None."""
    try:
        importlib.import_module("xlstm.blocks.slstm.src.vanilla")
    except Exception as e:   # noqa: BLE001 (an import of a third-party package can fail any way)
        return f"xlstm not importable ({type(e).__name__}: {e})"
    return None


def contenders_of(cell, prob):
    """{name: (step, to_grads)} of one row, the NumPy module (the reference) first, the LSTM's
    GEMM floors at this shape last; and {name: why} for the contenders that cannot run."""
    spec, skipped = CELLS[cell], {}
    built = {"numpy": build_module(load(cell)[0], prob), "torch_loop": spec["torch_loop"](prob)}
    numba_module, why = load(f"numba.{cell}")
    if NUMBA_MISSING or numba_module is None:
        skipped["numba"] = NUMBA_MISSING or f"numba module missing ({why})"
    else:
        built["numba"] = build_module(numba_module, prob)
    if "xlstm" in spec:
        if xlstm_missing():
            skipped["xlstm"] = xlstm_missing()
        else:
            built["xlstm"] = spec["xlstm"](prob)
    floor_prob = make_problem(prob["shape"], prob["dtype"])   # W, R dense: the LSTM's GEMMs
    built["gemm_floor"] = build_gemm_floor(floor_prob)
    built["gemm_floor_torch"] = build_gemm_floor_torch(floor_prob)
    if not NUMBA_MISSING:
        built["gemm_floor_numba"] = build_gemm_floor_numba(floor_prob)
    return built, skipped, gemm_flops(floor_prob)


def run_cell_case(cell, shape, dtype, repeats, min_sample, time_round_robin):
    """One row: every contender's gradients against the NumPy module's, then timing of those
    that agree by ``time_round_robin(steps, repeats, min_sample)`` (timing.py's).  A cell
    whose module is not shipped gives a record whose "skipped" says so."""
    numpy_module, why = load(cell)
    record = {"cell": cell, "shape": list(shape), "dtype": dtype, "tolerance": TOLERANCE[dtype]}
    if numpy_module is None:
        return {**record, "skipped": f"cell not shipped ({why})"}
    prob = cell_problem(numpy_module, shape, dtype, CELLS[cell]["sizes"])
    built, skipped, flops = contenders_of(cell, prob)
    grads, first_call = {}, {}
    for n, (step, to_grads) in built.items():
        if to_grads:
            t0 = time.perf_counter()
            grads[n] = to_grads(step())
            first_call[n] = time.perf_counter() - t0
    errors = {n: max_rel_error(g, grads["numpy"], dtype)
              for n, g in grads.items() if n != "numpy"}
    wrong = sorted(n for n, e in errors.items() if not e <= TOLERANCE[dtype])
    steps = {n: step for n, (step, _) in built.items() if n not in wrong and n != "numpy"}
    times = time_round_robin(steps, repeats, min_sample)
    for t in times.values():   # the LSTM's GEMM flops at this shape over the whole step
        t["gflops"] = flops / t["median_s"] / 1e9
    med = {n: t["median_s"] for n, t in times.items()}
    fastest = fastest_floor(times)
    r = lambda a, b: med[a] / med[b] if a in med and b in med else None   # noqa: E731
    return {**record, "skipped": None, "contenders_skipped": skipped, "max_rel_error": errors,
            "wrong": wrong, "first_call_s": first_call, "times": times,
            "gemm_flops": flops,
            "ratios": {"numba/torch_loop": r("numba", "torch_loop"),
                       "numba/xlstm": r("numba", "xlstm"),
                       "xlstm/torch_loop": r("xlstm", "torch_loop"),
                       "numba/fastest_floor": r("numba", fastest) if fastest else None},
            "fastest_floor": fastest}
