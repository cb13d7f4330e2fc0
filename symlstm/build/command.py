"""The build command (``python -m symlstm.build``, ``symlstm build``): which cells, into
which folder, and what each file says regenerates it."""
from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import sys
import time
from pathlib import Path

from ..printers.templates import REBUILD
from ..cell.model import Cell, CellBuilder
from ..cell.parts import CellError
from ..cell.shipped import CELLS
from .files import GENERATED, stale, write
from .latex import LatexError, pdfs, stale_pdfs
from .sources import _cells, _in_generated, _name, render

USAGE = """
    python -m symlstm.build                 # regenerate generated/: code, .tex, figures, PDFs
    python -m symlstm.build lstm gru        # only these cells
    python -m symlstm.build --out DIR       # the same files under DIR (any install)
    python -m symlstm.build mine.py:mgu --out DIR   # a cell of your own, into DIR
    python -m symlstm.build --no-pdf        # code, .tex and figures only
    python -m symlstm.build --check         # exit 1, with a diff, if generated/ is stale
"""


class UsageError(Exception):
    """A command line that names something that is not there."""


def load_cell(spec: str) -> Cell:
    """The cell a command line names: a shipped name, or ``FILE.py:NAME`` (NAME in that file
    is a Cell, a CellBuilder or a function returning one)."""
    if spec in CELLS:
        return CELLS[spec]()
    path, colon, attr = spec.rpartition(":")
    if not colon or not path.endswith(".py"):
        raise UsageError(f"unknown cell {spec!r}: give one of {', '.join(CELLS)}, or "
                         f"FILE.py:NAME for a cell of your own")
    if not Path(path).is_file():
        raise UsageError(f"{path}: no such file")
    module_spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, attr):
        raise UsageError(f"{path} defines no {attr!r}")
    found = getattr(module, attr)
    found = found() if callable(found) and not isinstance(found, (Cell, CellBuilder)) else found
    found = found.build() if isinstance(found, CellBuilder) else found
    if not isinstance(found, Cell):
        raise UsageError(f"{spec} is a {type(found).__name__}, not a Cell or a function "
                         "returning one")
    return found


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The build command's arguments (shared with ``symlstm build``)."""
    ap.add_argument("cells", nargs="*", metavar="CELL",
                    help=f"cells to build (default: all, and the overview): one of "
                         f"{', '.join(CELLS)}, or FILE.py:NAME for a cell of your own "
                         f"(with --out)")
    ap.add_argument("--out", type=Path, metavar="DIR",
                    help="write DIR/<cell>.py, DIR/torch/, DIR/numba/, DIR/tex/ (with the "
                         "figures) and DIR/pdf/ instead of the checkout's generated/")
    ap.add_argument("--no-pdf", action="store_true", help="skip LaTeX")
    ap.add_argument("--check", action="store_true",
                    help="write nothing; exit 1, with a diff, when a file is stale or missing, "
                         "a file is there that nothing generates, or a PDF differs from a fresh "
                         "build of its .tex (with --no-pdf: only that each PDF is there)")
    ap.add_argument("--force", action="store_true",
                    help="rebuild every PDF, even those whose inputs did not change")
    ap.add_argument("--jobs", type=int, metavar="N",
                    help="LaTeX runs at a time (default: one per core)")


def run(args, out=None, err=None, prog: str = "python -m symlstm.build") -> int:
    """Carry out a parsed build command; the exit status.  Diffs go to ``out``, progress and
    errors to ``err`` (standard output and error by default); ``prog`` is how the command
    was called, as the files built into ``--out`` name the command that regenerates them."""
    out, err = out or sys.stdout, err or sys.stderr

    def progress(message):
        print(message, file=err, flush=True)
    start = time.perf_counter()
    root = args.out if args.out is not None else GENERATED
    try:
        cells, rebuild = _targets(args, prog)
    except (UsageError, KeyError, CellError) as e:   # the message says what was wrong
        print(e.args[0], file=err)
        return 2
    try:
        files = render(cells, progress, rebuild)
        if args.check:
            diffs = stale(root, cells=cells, files=files, pdfs=True)
            if not args.no_pdf and not diffs:
                diffs = stale_pdfs(root, cells=cells, jobs=args.jobs, progress=progress)
            out.write("".join(diffs))
            if diffs:
                print(f"\n{root} is stale: run `{_command(prog, args.cells, args.out)}`",
                      file=err)
            else:
                progress(f"{root} is current ({time.perf_counter() - start:.1f} s)")
            return 1 if diffs else 0
        written = write(root, files)
        for path in written:
            progress(f"wrote {path.relative_to(root)}")
        if not written:
            progress("every code, .tex and figure file is unchanged")
        if not args.no_pdf:
            pdfs(root, cells, force=args.force, jobs=args.jobs, progress=progress)
    except LatexError as e:
        print(e, file=err)
        return 1
    except CellError as e:   # a cell of your own that generated code cannot take
        print(e.args[0], file=err)
        return 2
    progress(f"done in {time.perf_counter() - start:.1f} s")
    return 0


def _targets(args, prog: str):
    """The cells a build command names (None: all) and the command each file names."""
    specs = list(dict.fromkeys(args.cells))
    own = [spec for spec in specs if spec not in CELLS and spec.rpartition(":")[0].endswith(".py")]
    if args.out is None and not (GENERATED.parent / "pyproject.toml").is_file():
        raise UsageError("symlstm is installed without its repository, so there is no "
                         "generated/ to write: give --out DIR")
    if args.out is None and own:
        raise UsageError(f"{own[0]} is a cell of your own: give --out DIR, a folder for its "
                         "files (generated/ holds the shipped cells only)")
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {args.jobs}")
    loaded = {spec: spec if spec in CELLS else load_cell(spec) for spec in specs}
    cells = _cells(list(loaded.values())) if specs else None
    if args.out is None:
        return cells, _in_generated
    commands = {_name(cell): _command(prog, [spec], args.out) for spec, cell in loaded.items()}
    whole = _command(prog, [], args.out)
    return cells, lambda name: commands.get(name, whole)


def _command(prog: str, specs: list[str], out: Path | None) -> str:
    """The command line that builds ``specs`` (all cells for none) into ``out``, as the shell
    reads it; refused unless it is one line of printable text, as it goes into comments."""
    if out is None:
        return " ".join([REBUILD, *specs])
    words = [_normal(s) for s in specs] + ["--out", os.path.normpath(out)]
    command = " ".join([prog, *map(shlex.quote, words)])
    if not command.isprintable():
        raise UsageError(f"{command!r}: a cell's file and the output folder must be named by "
                         "printable text, on one line")
    return command


def _normal(spec: str) -> str:
    """``FILE.py:NAME`` with FILE's path normalised (``./a/../mine.py`` is ``mine.py``)."""
    path, colon, attr = spec.rpartition(":")
    return f"{os.path.normpath(path)}:{attr}" if colon and path.endswith(".py") else spec


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m symlstm.build",
                                 description="Write the generated files: NumPy modules, LaTeX sources, "
                                             "figures and PDFs.",
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=USAGE.strip("\n"))
    add_arguments(ap)
    return run(ap.parse_args(argv))

