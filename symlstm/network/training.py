"""Training with the generated code: clipping by global norm, truncated backpropagation through
time, and an example that trains ``symlstm.generated.lstm_classifier`` to predict characters.

    python -m symlstm.network.training                    # about half a minute; writes training_loss.png
    python -m symlstm.network.training --steps 100 --out loss.png

The text is the Zen of Python, read from the standard library's ``this`` module (without
importing it, which would print it).  Only NumPy and matplotlib (for the figure) are used.
"""
from __future__ import annotations

import argparse
import ast
import codecs
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np


def clip_by_global_norm(grads: dict, max_norm: float, names=None) -> tuple[dict, float]:
    """Scale the gradients ``names`` (default: all) together so that their joint Euclidean
    norm is at most ``max_norm``; returns the clipped gradients and the norm before clipping.

    All of them are scaled by the same factor min(1, max_norm / norm), so the update keeps its
    direction; clipping entries one by one would change it."""
    if not max_norm > 0:
        raise ValueError(f"max_norm must be positive, got {max_norm}")
    names = list(grads) if names is None else list(names)
    norm = float(np.sqrt(sum(float(np.sum(np.square(grads[k]))) for k in names)))
    scale = min(1.0, max_norm / norm) if norm > 0 else 1.0
    return {k: (g * scale if k in names else g) for k, g in grads.items()}, norm


def truncated_bptt(module, params: dict, x, y, chunk: int, state0=None):
    """The loss and gradients of a network module (``loss_and_grads`` with ``with_state``)
    over ``x`` and ``y`` in chunks of ``chunk`` steps: each chunk starts from the state the
    previous one ended in, but no gradient flows back across a chunk boundary.  Returns the
    summed loss, the summed parameter gradients and the final state."""
    if int(chunk) != chunk or chunk < 1:
        raise ValueError(f"chunk must be a positive number of steps, got {chunk}")
    total, grads, state = 0.0, None, state0
    for start in range(0, len(x), int(chunk)):
        stop = start + int(chunk)
        loss, g, state = module.loss_and_grads(params, x[start:stop], y[start:stop], state,
                                               with_state=True)
        total += loss
        grads = {k: g[k] for k in module.PARAMS} if grads is None else \
            {k: grads[k] + g[k] for k in module.PARAMS}
    return total, grads, state


class Adam:
    """Adam (Kingma and Ba), in place on a dict of arrays."""

    def __init__(self, params, lr=1e-2, betas=(0.9, 0.999), eps=1e-8):
        self.lr, self.betas, self.eps, self.t = lr, betas, eps, 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, params, grads):
        self.t += 1
        b1, b2 = self.betas
        for k in params:
            self.m[k] = b1 * self.m[k] + (1 - b1) * grads[k]
            self.v[k] = b2 * self.v[k] + (1 - b2) * grads[k] ** 2
            m_hat, v_hat = self.m[k] / (1 - b1 ** self.t), self.v[k] / (1 - b2 ** self.t)
            params[k] -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


def zen() -> str:
    """The Zen of Python, decoded from the source of the standard library's ``this``."""
    source = Path(importlib.util.find_spec("this").origin).read_text()
    encoded = next(n.value.value for n in ast.parse(source).body
                   if isinstance(n, ast.Assign) and n.targets[0].id == "s")
    return codecs.decode(encoded, "rot13")


def train_characters(text: str, *, hidden=64, steps=300, seq=32, batch=16, chunk=16,
                     lr=1e-2, clip=5.0, seed=0, log=print):
    """Train ``lstm_classifier`` to predict each next character of ``text``; returns the
    parameters, the vocabulary and the mean loss per character at each step."""
    from ..generated import lstm_classifier as net
    vocab = sorted(set(text))
    index = {ch: k for k, ch in enumerate(vocab)}
    ids = np.array([index[ch] for ch in text])
    V = len(vocab)
    rng = np.random.default_rng(seed)
    params = net.init_params(V, hidden, V, rng=rng)
    opt, losses, eye = Adam(params, lr), [], np.eye(V)
    for step in range(steps):
        starts = rng.integers(0, len(ids) - seq - 1, batch)
        window = np.stack([ids[s:s + seq + 1] for s in starts], axis=1)   # (seq + 1, B)
        x, y = eye[window[:-1]], window[1:]
        loss, grads, _ = truncated_bptt(net, params, x, y, chunk)
        grads, norm = clip_by_global_norm(grads, clip)
        opt.step(params, grads)
        losses.append(loss / (seq * batch))
        if step % 50 == 0 or step == steps - 1:
            log(f"step {step:4d}  loss per character {losses[-1]:.3f}  gradient norm {norm:.2f}")
    return params, vocab, np.array(losses)


def sample(params, vocab, start: str, length: int, *, temperature=0.5, seed=0) -> str:
    """Characters the trained network writes after ``start``."""
    from ..generated import lstm
    rng, eye = np.random.default_rng(seed), np.eye(len(vocab))
    index = {ch: k for k, ch in enumerate(vocab)}
    cell = {k: params[k] for k in lstm.PARAMS}
    hs, state, _ = lstm.forward(cell, eye[[index[ch] for ch in start]][:, None])
    out, h = [], hs[-1]
    for _ in range(length):
        logits = (h @ params["V"].T + params["b_y"])[0] / temperature
        p = np.exp(logits - logits.max())
        k = rng.choice(len(vocab), p=p / p.sum())
        out.append(vocab[k])
        hs, state, _ = lstm.forward(cell, eye[[k]][:, None], state)
        h = hs[-1]
    return start + "".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m symlstm.network.training",
                                 description="Train symlstm.generated.lstm_classifier to predict "
                                             "the characters of the Zen of Python.")
    ap.add_argument("--steps", type=int, default=300, help="updates (default 300)")
    ap.add_argument("--out", type=Path, default=Path("training_loss.png"),
                    help="the loss curve's figure (default training_loss.png)")
    args = ap.parse_args(argv)
    if args.steps < 1:
        print(f"--steps must be at least 1, got {args.steps}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    params, vocab, losses = train_characters(zen(), steps=args.steps)
    print(f"trained in {time.perf_counter() - start:.1f} s; loss per character "
          f"{losses[0]:.2f} -> {losses[-10:].mean():.2f} (uniform guessing: "
          f"{np.log(len(vocab)):.2f})")
    print("sample:", repr(sample(params, vocab, "Beautiful is", 160)))
    _figure(losses, args.out)
    print(f"wrote {args.out}")
    return 0


def _figure(losses, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.2, 3.0), layout="constrained")
    ax.plot(losses, lw=0.8, alpha=0.5, label="each step")
    width = min(20, len(losses))
    smooth = np.convolve(losses, np.ones(width) / width, mode="valid")
    ax.plot(np.arange(width - 1, len(losses)), smooth, label=f"mean of {width}")
    ax.set_xlabel("update")
    ax.set_ylabel("cross-entropy per character")
    ax.set_title("lstm_classifier on the Zen of Python")
    ax.legend()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
