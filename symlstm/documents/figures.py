"""Figures for the documents, computed with the generated NumPy modules and drawn by matplotlib.

- ``gradient_norms``: ‖∂L/∂h_{T-τ}‖ against the time lag τ for the simple RNN, the LSTM,
  the peephole LSTM and the GRU, on random weights, with the loss on the last step only;
- ``clipping``: the loss of a one-unit RNN against its recurrent weight, which falls off a
  cliff, and one gradient step from the cliff's wall with and without clipping by norm.

Each function takes the generated modules (cell name -> module) and returns PDF bytes;
seeds and metadata are fixed, so the bytes are the same on every run.
"""
from __future__ import annotations

import io

import numpy as np


CELLS = ("rnn", "lstm", "peephole_lstm", "gru")
T, B, D, H = 60, 1, 8, 16
CLIP = 1.0


def state_gradients(mod, *, seed: int = 0, scale: float = 1.0, bias: dict | None = None,
                    inputs: float = 1.0, zero_bias: bool = False) -> np.ndarray:
    """‖∂L/∂h_{T-τ}‖ for the lags τ = 1, …, T, L = ⟨q, h_T⟩ with q a fixed random
    vector, from a generated module.

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
    q = rng.standard_normal((B, H))
    _, _, cache = mod.forward(params, x)
    norms = []
    for k in range(T - 1, -1, -1):       # restart from the state reached at step k
        state_k = {s: cache[f"seq_{s}"][k] for s in mod.STATES}
        hs, _, sub = mod.forward(params, x[k:], state_k)
        dhs = np.zeros_like(hs)
        dhs[-1] = q
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
    ax.set_xlabel(r"time lag $\tau$")
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
    ax.set_ylabel(r"$\|\partial L / \partial h_{T-\tau}\|$")
    ax.legend()
    data = _pdf(fig)
    plt.close(fig)
    return data


def cliff(mod, w: float) -> tuple[float, float]:
    """The loss L = (h_T - 1/2)²/2 of a one-unit RNN at rest (no input, h_0 = 0.9, bias
    -0.3) with recurrent weight ``w``, and dL/dw, from the generated module ``mod``: near
    w = 1.64 the final state jumps from one fixed point of tanh(w h - 0.3) to another, and the
    loss falls off a cliff."""
    params = {"W": np.zeros((1, 1)), "R": np.array([[w]]), "b": np.array([-0.3])}
    hs, _, cache = mod.forward(params, np.zeros((CLIFF_T, 1, 1)), {"h": np.array([[0.9]])})
    miss = hs[-1, 0, 0] - 0.5
    dhs = np.zeros_like(hs)
    dhs[-1, 0, 0] = miss
    return 0.5 * miss ** 2, float(mod.backward(params, cache, dhs)["R"][0, 0])


CLIFF_T = 40            # steps of the cliff's RNN
CLIFF_W = 1.64          # the weight on the cliff's wall where the update starts
LEARNING_RATE = 0.1


def clipping(modules) -> bytes:
    """The loss of a one-unit RNN against its recurrent weight, with a cliff, and one
    gradient step from the cliff's wall with and without clipping by norm."""
    plt, fig, ax = _axes("One update from the wall of a loss cliff")
    ax.set_yscale("linear")
    ax.set_xlabel("recurrent weight $w$")
    mod = modules["rnn"]
    ws = np.linspace(0.5, 3.0, 501)
    ax.plot(ws, [cliff(mod, w)[0] for w in ws], color="0.3", label="loss $L(w)$")
    loss, g = cliff(mod, CLIFF_W)
    step = -LEARNING_RATE * g
    clipped = step * min(1.0, CLIP / abs(g))
    ax.plot([CLIFF_W], [loss], "o", color="C3")
    ax.annotate("", xy=(CLIFF_W + clipped, cliff(mod, CLIFF_W + clipped)[0]),
                xytext=(CLIFF_W, loss), arrowprops=dict(arrowstyle="->", color="C0"))
    ax.annotate(f"clipped at $\\theta = {CLIP:g}$: $w \\to {CLIFF_W + clipped:.2f}$",
                xy=(CLIFF_W + clipped, cliff(mod, CLIFF_W + clipped)[0]),
                xytext=(1.9, 0.35), color="C0", arrowprops=dict(arrowstyle="-", color="C0"))
    ax.annotate(f"unclipped ($|g| = {abs(g):.0f}$): $w \\to {CLIFF_W + step:.1f}$, off the plot",
                xy=(3.0, loss), xytext=(1.45, 0.62), color="C3",
                arrowprops=dict(arrowstyle="->", color="C3"))
    ax.set_ylabel("loss")
    ax.legend(loc="upper left")
    data = _pdf(fig)
    plt.close(fig)
    return data


#: Every figure, by file name under generated/tex/fig/; each is drawn from the generated
#: modules of ``CELLS`` (name -> module) that it is given.
FIGURES = {"gradient_norms.pdf": gradient_norms, "clipping.pdf": clipping}
