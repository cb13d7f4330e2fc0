"""How symlstm's cost grows with the cell: derive, NumPy module (lowering included) and
LaTeX document, timed against the number of equations (a chain of 5 to 80 gated
equations; a chain of 5 to 40 where each equation reads the two before it, so that the
paths through one step double every two equations) and against nesting depth (functions
nested 1 to 8 deep), in one process.

    python benchmarks/scaling.py                 # table, and the plot benchmarks/scaling.png
    python benchmarks/scaling.py --out plot.png  # the plot elsewhere

The table gives seconds per stage and each stage's time relative to the smallest cell of
its series (the anchor), and the .tex's size.  The target: 10 s or less for each stage
of the chains of 40 equations and of depth 8; the script exits 1 when one is missed.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from symlstm import CellBuilder, matvec, sigma, tanh
from symlstm.derivation.bptt import derive
from symlstm.documents.document import latex_document
from symlstm.backends.code import numpy_module

EQUATIONS = (5, 10, 20, 40, 80)
FAN_OUT = (5, 10, 20, 30, 40)
DEPTHS = (1, 2, 3, 4, 5, 6, 7, 8)
TARGET = 10.0
#: The cells the target is for: (series, size).
TARGETED = (("equations", 40), ("fan-out", 40), ("depth", 8))
STAGES = ("derive", "numpy", "latex")


def chain(n: int):
    """n equations: each gates the previous result with the state and a recurrent product."""
    b = CellBuilder("chain", "Chain")
    x, h = b.input("x"), b.state("h")
    W, R, c = b.param("W", "H", "D"), b.param("R", "H", "H"), b.param("b", "H")
    a = b.let("a0", tanh(matvec(W, x) + matvec(R, h) + c))
    for k in range(1, n - 1):
        a = b.let(f"a{k}", sigma(a) * h + tanh(a) * a if k % 2 else
                  tanh(a) * a + sigma(matvec(R, a)))
    b.let("h", a * h)
    return b.build()


def fan_out(n: int):
    """n equations, each reading the two before it (the first two read the state): every
    result feeds two equations, so the paths from h_{t-1} to h_t double every two."""
    b = CellBuilder("fanout", "Fan-out chain")
    x, h = b.input("x"), b.state("h")
    W, R, c = b.param("W", "H", "D"), b.param("R", "H", "H"), b.param("b", "H")
    before, last = h, b.let("a0", tanh(matvec(W, x) + matvec(R, h) + c))
    for k in range(1, n - 1):
        before, last = last, b.let(f"a{k}", sigma(last) * before if k % 2 else
                                   tanh(last) + before)
    b.let("h", last * before)
    return b.build()


def nested(depth: int):
    """One equation whose right side nests functions ``depth`` deep, in products."""
    b = CellBuilder("nested", "Nested")
    x, h = b.input("x"), b.state("h")
    W, R, c = b.param("W", "H", "D"), b.param("R", "H", "H"), b.param("b", "H")
    e = matvec(W, x) + matvec(R, h) + c
    for k in range(depth):
        e = sigma(e) * tanh(e) if k % 2 else tanh(e) * h
    b.let("h", e)
    return b.build()


def measure(cell) -> dict[str, float]:
    """Seconds for each stage, and the size of the .tex in bytes."""
    out = {}
    start = time.perf_counter()
    d = derive(cell)
    out["derive"] = time.perf_counter() - start
    start = time.perf_counter()
    numpy_module(d)
    out["numpy"] = time.perf_counter() - start
    start = time.perf_counter()
    out["tex bytes"] = len(latex_document(d).encode())
    out["latex"] = time.perf_counter() - start
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("scaling.png"),
                    help="where to write the plot (default: benchmarks/scaling.png)")
    args = ap.parse_args(argv)
    series = {"equations": [(n, measure(chain(n))) for n in EQUATIONS],
              "fan-out": [(n, measure(fan_out(n))) for n in FAN_OUT],
              "depth": [(n, measure(nested(n))) for n in DEPTHS]}
    missed = []
    for name, rows in series.items():
        anchor = rows[0][1]
        print(f"\n{name:>9} | {'derive s':>9} {'numpy s':>8} {'latex s':>8} | "
              f"{'derive x':>8} {'numpy x':>8} {'latex x':>8} | {'.tex kB':>8}")
        for n, t in rows:
            print(f"{n:>9} | {t['derive']:>9.2f} {t['numpy']:>8.2f} {t['latex']:>8.2f} | "
                  + " ".join(f"{t[k] / anchor[k]:>8.1f}" for k in STAGES)
                  + f" | {t['tex bytes'] / 1000:>8.1f}")
            if (name, n) in TARGETED:
                missed += [f"{name} {n}: {k} {t[k]:.1f} s > {TARGET} s"
                           for k in STAGES if t[k] > TARGET]
    _plot(series, args.out)
    print(f"\nplot: {args.out}")
    targeted = ", ".join(f"{name} {n}" for name, n in TARGETED)
    for line in missed:
        print("target missed:", line)
    if not missed:
        print(f"target met: every stage within {TARGET} s for {targeted}")
    return 1 if missed else 0


def _plot(series, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(series), figsize=(4.5 * len(series), 3.6))
    for ax, (name, rows) in zip(axes, series.items()):
        for stage in STAGES:
            ax.plot([n for n, _ in rows], [t[stage] for _, t in rows], marker="o", label=stage)
        ax.set_xlabel({"equations": "equations in the chain",
                       "fan-out": "equations, each reading the two before"}.get(
                           name, "nesting depth"))
        ax.set_ylabel("seconds")
        ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle("symlstm: cost of each stage against cell size")
    fig.tight_layout()
    fig.savefig(out, dpi=90)


if __name__ == "__main__":
    sys.exit(main())
