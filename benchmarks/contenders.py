"""The contenders: one benchmark case's problem, a builder per contender that returns its
training step, and the gradient check every contender passes before it is timed."""
from __future__ import annotations

import dataclasses
import functools
import math
import time

import numpy as np
import torch

from symlstm.generated import lstm as gen_lstm
from symlstm.generated import peephole_lstm as gen_peephole
from symlstm.generated.torch import lstm as torchgen_lstm
from symlstm.generated.torch import peephole_lstm as torchgen_peephole

try:
    import numba
    from symlstm.generated.numba import lstm as numba_lstm
    from symlstm.generated.numba import peephole_lstm as numba_peephole
    NUMBA_MISSING = None
except ImportError as e:       # numba is an optional extra
    numba = numba_lstm = numba_peephole = None
    NUMBA_MISSING = f"numba not installed ({e})"

SHAPES = [(20, 1, 32, 32), (50, 32, 128, 128), (200, 16, 64, 64), (100, 64, 256, 256)]
DTYPES = ["float64", "float32"]
TOLERANCE = {"float64": 1e-8, "float32": 1e-4}   # max |a - b| / max |b|, per gradient
TORCH_GATES = "ifzo"       # torch.nn.LSTM's chunk order: i, f, g (our z), o
FUSED_GATES = "zifo"       # our fused order, as in the generated code
jax = jnp = None           # imported by load_jax(): the memory workers do without
SKIPPED = {}               # contender: why it does not run (a library it needs is missing)
if NUMBA_MISSING:
    SKIPPED.update(numba_lstm=NUMBA_MISSING, numba_peephole=NUMBA_MISSING,
                   numba_lstm_passes=NUMBA_MISSING, gemm_floor_numba=NUMBA_MISSING)


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


def build_numba_lstm_passes(prob):
    """Only numba_lstm's two compiled passes, on arguments prepared once: its step without
    the Python around them.  Its code is numba_lstm's, which is checked; the forward pass
    must hand back what forward() caches, in the order the backward pass reads them."""
    m, params, x = numba_lstm, prob.lstm_params(), np.ascontiguousarray(prob.x)
    (T, B, D), H = x.shape, prob.h0.shape[1]
    weights = [params[n] for n in m.PARAMS]
    cache = m.forward(params, x, {"h": prob.h0, "c": prob.c0})[2]
    scratch = m._scratch(T * B * 4 * H, x.dtype)   # the input products, then their gradients
    out = m._forward_pass(x, D, H, *weights, prob.h0, prob.c0, scratch)
    assert all(np.array_equal(a, cache[k]) for a, k in zip(out, list(cache)[2:], strict=True))
    dnext = [np.zeros_like(prob.h0), np.zeros_like(prob.c0)]

    def step():
        out = m._forward_pass(x, D, H, *weights, prob.h0, prob.c0, scratch)
        return m._backward_pass(x, D, H, prob.dhs, *weights, *out, *dnext, scratch)
    return step, None


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


def floor_arrays(prob):
    """The operands and outputs of one step's matrix products, with stand-ins for the values
    the step computes: x, W, R (fused, our gate order), h_{t-1}, δgates and the outputs."""
    T, B, D, H, dt = prob.T, prob.B, prob.D, prob.H, prob.dtype
    rng = np.random.default_rng(1)
    return dict(x=prob.x.reshape(T * B, D), W=prob.fused("W"), R=prob.fused("R"),  # (4H, D), (4H, H)
                hs=rng.standard_normal((T, B, H)).astype(dt),       # stands in for h_{t-1}
                g=rng.standard_normal((T, B, 4 * H)).astype(dt),    # stands in for δgates
                proj=np.empty((T * B, 4 * H), dt), rec=np.empty((B, 4 * H), dt),
                dh=np.empty((B, H), dt), dW=np.empty((4 * H, D), dt),
                dR=np.empty((4 * H, H), dt), dx=np.empty((T * B, D), dt))


def gemm_products(prob):
    """[(a, b, out)]: every matrix product of one step, same layouts as the generated code."""
    a = floor_arrays(prob)
    T, B = prob.T, prob.B
    hs2, g2 = a["hs"].reshape(T * B, -1), a["g"].reshape(T * B, -1)
    return [(a["x"], a["W"].T, a["proj"]),                          # forward input projection
            *[(a["hs"][t], a["R"].T, a["rec"]) for t in range(T)],  # forward recurrent GEMMs
            *[(a["g"][t], a["R"], a["dh"]) for t in range(T)],      # backward recurrent GEMMs
            (g2.T, a["x"], a["dW"]),                                # dW
            (g2.T, hs2, a["dR"]),                                   # dR
            (g2, a["W"], a["dx"])]                                  # dx


def gemm_flops(prob):
    """The floating-point operations of one step's matrix products: 2mnk for each."""
    return sum(2 * a.shape[0] * a.shape[1] * b.shape[1] for a, b, _ in gemm_products(prob))


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


def build_gemm_floor_numba(prob):
    """The same products through the Numba modules' BLAS (MKL when the mkl package is
    installed, else SciPy's OpenBLAS: ``numba_lstm.BLAS``), all in one compiled function, as
    the generated loops call them."""
    a = floor_arrays(prob)
    step = _numba_products()
    return (lambda: step(*a.values())), None


def numba_gemm():
    """out = a @ b in compiled code as the Numba modules do it: their ``_gemm`` (``BLAS``)."""
    blas_gemm = numba_lstm._gemm

    @numba.njit(nogil=True)
    def gemm(a, b, out):
        blas_gemm(a, b, out)
    return gemm


@functools.lru_cache(maxsize=None)
def _numba_products():
    """The compiled function of build_gemm_floor_numba, made once."""
    gemm = numba_gemm()

    @numba.njit(nogil=True)
    def products(x, W, R, hs, g, proj, rec, dh, dW, dR, dx):
        T, B = g.shape[0], g.shape[1]
        gemm(x, W.T, proj)
        for t in range(T):
            gemm(hs[t], R.T, rec)
        for t in range(T):
            gemm(g[t], R, dh)
        g2, hs2 = g.reshape(T * B, g.shape[2]), hs.reshape(T * B, hs.shape[2])
        gemm(g2.T, x, dW)
        gemm(g2.T, hs2, dR)
        gemm(g2, W, dx)
    return products


CONTENDERS = {   # name: (builder, cell, reference contender or None)
    "gemm_floor": (build_gemm_floor, None, None),
    "gemm_floor_torch": (build_gemm_floor_torch, None, None),
    "gemm_floor_numba": (build_gemm_floor_numba, None, None),
    "gen_lstm": (build_gen_lstm, "lstm", "torch_lstm"),
    "torch_lstm": (build_torch_lstm, "lstm", None),
    "torchgen_lstm": (build_torchgen_lstm, "lstm", "torch_lstm"),
    "gen_peephole": (build_gen_peephole, "peephole", "torch_loop"),
    "torch_loop": (build_torch_loop, "peephole", None),
    "torchgen_peephole": (build_torchgen_peephole, "peephole", "torch_loop"),
    "numba_lstm": (build_numba_lstm, "lstm", "torch_lstm"),
    "numba_peephole": (build_numba_peephole, "peephole", "torch_loop"),
    "numba_lstm_passes": (build_numba_lstm_passes, None, None),
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
