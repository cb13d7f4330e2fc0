"""Figures for the documents, computed with the generated NumPy modules and drawn by matplotlib.

- ``gradient_norms``: ‖∂L/∂h_k‖ against the time lag T-k for the simple RNN, the LSTM,
  the peephole LSTM and the GRU, on random weights, with the loss on the last step only;
- ``clipping``: the same for an RNN whose recurrent weights make gradients explode,
  before and after clipping by norm.

Each function takes the generated modules (cell name -> module) and returns PDF bytes;
seeds and metadata are fixed, so the bytes are the same on every run.
"""
from __future__ import annotations

import io

import numpy as np


CELLS = ("rnn", "lstm", "peephole_lstm", "gru")
T, B, D, H = 60, 1, 8, 16
CLIP = 1.0
GROW = 3.0


def state_gradients(mod, *, seed: int = 0, scale: float = 1.0, bias: dict | None = None,
                    inputs: float = 1.0, zero_bias: bool = False) -> np.ndarray:
    """‖∂L/∂h_k‖ for k = T-1, …, 0 (lag 1 … T), L = ⟨v, h_T⟩, from a generated module.

    Recurrent weights are multiplied by ``scale``, the inputs by ``inputs``; ``bias`` adds
    constants to biases (``{"b_f": 3.0}``: the common forget-gate initialisation);
    ``zero_bias`` sets every bias to zero first.
    """
    rng = np.random.default_rng(seed)
    params = mod.init_params(D, H, rng=rng)
    params = {k: v * scale if k.startswith("R") else 0 * v if zero_bias and k.startswith("b")
              else v for k, v in params.items()}
    for k, b in (bias or {}).items():
        params[k] = params[k] + b
    x = inputs * rng.standard_normal((T, B, D))
    v = rng.standard_normal((B, H))
    _, _, cache = mod.forward(params, x)
    norms = []
    for k in range(T - 1, -1, -1):       # restart from the state reached at step k
        state_k = {s: cache[f"seq_{s}"][k] for s in mod.STATES}
        hs, _, sub = mod.forward(params, x[k:], state_k)
        dhs = np.zeros_like(hs)
        dhs[-1] = v
        norms.append(np.linalg.norm(mod.backward(params, sub, dhs)["h0"]))
    return np.array(norms)


def _pdf(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="pdf", metadata={"CreationDate": None, "ModDate": None})
    return buf.getvalue()


def _axes(title: str):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.rcParams.update({"svg.hashsalt": "symlstm", "pdf.fonttype": 42, "font.size": 9})
    fig, ax = plt.subplots(figsize=(5.2, 3.0), layout="constrained")
    ax.set_yscale("log")
    ax.set_xlabel("time lag $T-k$")
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    return plt, fig, ax


#: Gate biases that keep the memory path open (f ≈ σ(3) ≈ 0.95), as commonly initialised.
OPEN = {"rnn": {}, "lstm": {"b_f": 3.0}, "peephole_lstm": {"b_f": 3.0}, "gru": {"b_z": 3.0}}


def gradient_norms(modules) -> bytes:
    plt, fig, ax = _axes("Random weights; LSTM $b_f$ and GRU $b_z$ start at 3")
    lags = np.arange(1, T + 1)
    for name in CELLS:
        ax.plot(lags, state_gradients(modules[name], bias=OPEN[name]),
                label=name.replace("_", " "))
    ax.set_ylabel(r"$\|\partial L / \partial h_k\|$")
    ax.legend()
    data = _pdf(fig)
    plt.close(fig)
    return data


def clipping(modules) -> bytes:
    plt, fig, ax = _axes(f"RNN at rest, $R \\times {GROW:g}$, clipped at $\\theta = {CLIP:g}$")
    lags = np.arange(1, T + 1)
    raw = state_gradients(modules["rnn"], scale=GROW, inputs=0.0, zero_bias=True)
    ax.plot(lags, raw, label=r"$\|g\|$")
    ax.plot(lags, np.minimum(raw, CLIP), label=r"$\|g\| \min(1, \theta/\|g\|)$", ls="--")
    ax.set_ylabel("gradient norm")
    ax.legend()
    data = _pdf(fig)
    plt.close(fig)
    return data


#: Every figure, by file name under generated/tex/fig/; each is drawn from the generated
#: modules of ``CELLS`` (name -> module) that it is given.
FIGURES = {"gradient_norms.pdf": gradient_norms, "clipping.pdf": clipping}
