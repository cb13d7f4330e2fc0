"""The command line: ``symlstm`` or ``python -m symlstm``.

    symlstm list                          the cells, one line each
    symlstm show lstm                     every equation of the derivation
    symlstm show lstm --label rec:c       one of them (--latex: as LaTeX)
    symlstm build [CELL ...] [--out DIR]  code, .tex and PDFs (see symlstm build --help)
    symlstm build mine.py:mgu --out DIR   the same for a cell of your own
    symlstm verify gru                    check the generated code of a cell
    symlstm check-claim lstm adj:o 'δh[t]*tanh(c[t])'   judge a formula of your own

A CELL is a name from ``symlstm list``, or ``FILE.py:NAME`` for a cell of your own: NAME in
that file is a Cell, a CellBuilder or a function that returns one.
"""
from __future__ import annotations

import argparse
import sys

from . import __version__, build
from .build import UsageError, load_cell
from .cell.parts import CellError
from .checks.claims import ClaimError
from .network.heads import HEADS


_HELP = argparse.RawDescriptionHelpFormatter


def _list(args, out) -> int:
    from .cell.shipped import CELLS
    cells = [CELLS[name]() for name in CELLS]
    width = max(map(len, CELLS))
    for c in cells:
        states = ", ".join(c.states)
        print(f"{c.name:<{width}}  {c.title}  (states {states}; {len(c.params)} parameters)",
              file=out)
    return 0


def _derive(args):
    """The derivation a command names: the cell's, or with --head the network's."""
    from .derivation.bptt import derive
    from .network.heads import derive_network
    cell = load_cell(args.cell)
    return derive_network(cell, args.head) if args.head else derive(cell)


def _show(args, out) -> int:
    from .derivation.bptt import describe_path
    from .documents.latex import latex
    from .printers.comment import comment
    d = _derive(args)
    gradients = [d[args.label]] if args.label else [d[label] for label in d.labels()]
    for g in gradients:
        if args.latex:
            print(f"% ({g.label})\n{latex(g.lhs)} = {latex(g.rhs)}", file=out)
            continue
        print(f"({g.label}) {comment(g.eq)}", file=out)
        if args.label and len(g.terms) > 1:   # one equation: each path it sums as well
            for t in g.terms:
                print(f"    via {describe_path(t)}: {comment(t.expr)}", file=out)
    return 0


def _verify(args, out) -> int:
    from .checks.verification import VerifyError, verify
    try:
        report = verify(load_cell(args.cell), seed=args.seed)
    except VerifyError as e:
        print(e, file=out)
        return 1
    print(report, file=out)
    return 0


def _check_claim(args, out) -> int:
    from .checks.claims import check_claim
    verdict = check_claim(_derive(args), args.label, args.claim, seed=args.seed)
    print(verdict, file=out)
    if args.latex:
        print(f"% the derived form\n{verdict.latex}", file=out)
    return 0 if verdict.holds else 1


def _build(args, out) -> int:
    return build.run(args, out=out, prog="symlstm build")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="symlstm", formatter_class=_HELP,
        description="Recurrent-cell equations turned into verified gradients, NumPy code and "
                    "derivation documents.",
        epilog="\n".join(__doc__.split("\n")[2:]))
    ap.add_argument("--version", action="version", version=f"symlstm {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)
    sub.add_parser("list", help="the cells, one line each",
                   description="List the shipped cells.").set_defaults(run=_list)
    show = sub.add_parser("show", help="a cell's derivation in the terminal",
                          description="Print a cell's derived equations, each with its label.")
    show.add_argument("cell", metavar="CELL")
    show.add_argument("--label", metavar="L",
                      help="only the equation labelled L, such as fwd:c, adj:o, rec:c, grad:W_f")
    show.add_argument("--latex", action="store_true", help="print LaTeX instead of text")
    show.add_argument("--head", choices=tuple(HEADS),
                      help="with an output head and its loss: the derivation starts at L")
    show.set_defaults(run=_show)
    b = sub.add_parser("build", help="write code, .tex and PDFs", formatter_class=_HELP,
                       description=build.__doc__.split("\n")[0],
                       epilog="\n".join(build.__doc__.split("\n")[2:]))
    build.add_arguments(b)
    b.set_defaults(run=_build)
    v = sub.add_parser("verify", help="check a cell's generated code",
                       description="Generate a cell's NumPy code and check every gradient "
                                   "against central differences and brute-force "
                                   "differentiation of the unrolled loss.")
    v.add_argument("cell", metavar="CELL")
    v.add_argument("--seed", type=int, default=0, help="seed of the random problem (default 0)")
    v.set_defaults(run=_verify)
    c = sub.add_parser("check-claim", help="judge a hand-written gradient formula",
                       formatter_class=_HELP,
                       description="Judge a formula for one gradient against the derivation, "
                                   "on runs of the cell: exit 0 when it holds, 1 when it does "
                                   "not (with the paths it misses or adds, and a counterexample "
                                   "read off a run), 2 when it cannot be read.",
                       epilog="The claim is written as `symlstm show` prints, for example\n"
                              "  symlstm check-claim lstm rec:h 'Δh[t] + δ⁺h[t]'\n"
                              "  symlstm check-claim lstm rec:c "
                              "'δc[t+1] ⊙ f[t+1] + δh[t] ⊙ o[t] ⊙ (1 - tanh(c[t])**2)'\n"
                              "  symlstm check-claim lstm grad:W_f 'Σ_t δfbar[t] x[t]ᵀ'\n"
                              "δh is the whole gradient of h, Δh what the loss sends it, δ⁺h "
                              "what step t+1 sends back (δh = Δh + δ⁺h).\n"
                              "In ASCII: * for ⊙, sigma for σ, W^T or W.T for Wᵀ, "
                              "TimeSum(...) for Σ_t, delta_h[t] for δh[t],\n"
                              "Delta_h[t] for Δh[t], delta_plus_h[t] (or δ+h[t]) for δ⁺h[t].")
    c.add_argument("cell", metavar="CELL")
    c.add_argument("label", metavar="LABEL", help="the gradient's label, such as adj:o or rec:c")
    c.add_argument("claim", metavar="CLAIM", help="the formula, quoted")
    c.add_argument("--latex", action="store_true", help="also print the derived form as LaTeX")
    c.add_argument("--head", choices=tuple(HEADS),
                   help="judge against the cell with this output head (labels adj:yhat, out:h, ...)")
    c.add_argument("--seed", type=int, default=0, help="seed of the random runs (default 0)")
    c.set_defaults(run=_check_claim)
    return ap


def main(argv=None, out=sys.stdout) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args, out)
    except BrokenPipeError:   # the reader (head, less) stopped reading: not an error
        sys.stdout = None
        return 0
    except (UsageError, KeyError, CellError, ClaimError) as e:   # the message says what was wrong
        print(f"symlstm {args.command}: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
