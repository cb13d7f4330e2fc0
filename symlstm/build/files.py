"""Write the generated files: NumPy modules, LaTeX sources, figures and PDFs.

    python -m symlstm.build                 # regenerate generated/: code, .tex, figures, PDFs
    python -m symlstm.build lstm gru        # only these cells
    python -m symlstm.build --out DIR       # the same files under DIR (any install)
    python -m symlstm.build mine.py:mgu --out DIR   # a cell of your own, into DIR
    python -m symlstm.build --no-pdf        # code, .tex and figures only
    python -m symlstm.build --check         # exit 1, with a diff, if generated/ is stale

A CELL is a name from ``symlstm list``, or ``FILE.py:NAME`` for a cell of your own (NAME in
that file is a Cell, a CellBuilder or a function returning one), built into ``--out DIR``.
A folder of outputs holds ``<cell>.py``, ``torch/<cell>.py``, ``numba/<cell>.py``,
``tex/<cell>.tex`` with the figures it includes in ``tex/fig/``, and ``pdf/<cell>.pdf``;
each text file's header names the command that regenerates it.  LaTeX runs only for a
document whose inputs (its .tex, the figures, the TeX version) changed since it was last
built into that folder, or whose PDF is not the one that build wrote; ``--force`` rebuilds
every PDF.

This is the only module that writes files or runs LaTeX.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import difflib
import hashlib
import importlib.util
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, NamedTuple

from . import CELLS, derive, figures
from .cell import Cell, CellBuilder, CellError
from .heads import derive_network
from . import worked
from .backends.numba import numba_module
from .backends.torch import torch_module
from .render import (FIGURE_DIR, REBUILD, latex_document, mistakes_document, network_module,
                     numpy_module, overview_document, worked_document)
from .worked import example
from .seed_claims import CLAIMS
from .verification import load_module

#: generated/ of a checkout (the package is installed from it, editable or not).
GENERATED = Path(__file__).resolve().parent.parent / "generated"
#: Fixed time stamps make rebuilt PDFs byte-identical.
SOURCE_DATE_EPOCH = "1767225600"
#: Beside the outputs: which inputs each PDF was built from (never committed).
STAMPS = ".pdf-stamps.json"
OVERVIEW = "overview"
MISTAKES = "mistakes"
WORKED = "worked_example"

Progress = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


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


def _name(cell) -> str:
    return cell if isinstance(cell, str) else cell.name


def _cells(cells) -> list:
    """The cells to build: the shipped ones named, in CELLS' order, then the Cells of your own
    given, in their order; every shipped cell for None."""
    if cells is None:
        return list(CELLS)
    unknown = [c for c in cells if isinstance(c, str) and c not in CELLS]
    if unknown:
        raise KeyError(f"unknown cell{'s' * (len(unknown) > 1)} {', '.join(map(repr, unknown))}; "
                       f"available: {', '.join(CELLS)}")
    out = [c for c in CELLS if c in cells]
    for c in cells:
        if isinstance(c, Cell) and c not in out:
            out.append(c)
    names = [_name(c) for c in out]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise KeyError(f"two cells named {', '.join(map(repr, twice))}: their files would have "
                       "the same names; build them into different folders")
    return out


def documents(cells=None) -> list[str]:
    """The documents of a build: one per cell, and the overview when every cell is built."""
    return [*map(_name, _cells(cells)),
            *([*NETWORK_DOCUMENTS, WORKED, MISTAKES, OVERVIEW] if cells is None else [])]


def _in_generated(name: str | None) -> str:
    """The command that every file in generated/ says regenerates it."""
    return REBUILD


#: Every backend's folder in generated/ and what writes its module of a cell.
BACKENDS = {"": numpy_module, "torch/": torch_module, "numba/": numba_module}
#: Shipped cells with an output head: module name -> (cell, head).
NETWORKS = {"lstm_regression": ("lstm", "regression"), "lstm_classifier": ("lstm", "classifier"),
            "lstm_concat_regression": ("lstm_concat", "regression")}
#: Derivation documents of networks, from the loss on: the seed texts' own networks (a
#: linear head and squared loss on the concatenated-input LSTM; a softmax output layer on
#: the row-major LSTM).
NETWORK_DOCUMENTS = {"lstm_concat_regression": ("lstm_concat", "regression"),
                     "lstm_rowmajor_classifier": ("lstm_rowmajor", "classifier")}


#: The documents beside the cells', as the overview lists them.
OTHERS = (
    ("lstm_concat_regression", "the LSTM on the concatenated input with a linear head and a "
                               "squared loss, derived from the loss on"),
    ("lstm_rowmajor_classifier", "the row-major LSTM with a softmax output layer and the "
                                 "cross-entropy loss, derived from the loss on"),
    ("worked_example", "the first of those networks through three steps, every number printed"),
    ("mistakes", "the gradient formulas of four hand-written derivations, each checked"),
)


def sources(cells=None, progress: Progress = _quiet,
            rebuild: Callable[[str | None], str] = _in_generated) -> dict[str, str]:
    """Every generated text file, relative path -> contents, rendered in memory; for
    ``cells`` (shipped names or Cells of your own), only theirs (no package ``__init__.py``
    and no overview).  ``rebuild(name)`` is the command that each file of the cell ``name``
    says regenerates it (for None: the other files')."""
    out = {"__init__.py": _package_init(list(CELLS), rebuild(None)),
           **{f"{folder}__init__.py": _backend_init(folder, rebuild(None))
              for folder in BACKENDS if folder}} if cells is None else {}
    derivations = []
    for cell in _cells(cells):
        start, name = time.perf_counter(), _name(cell)
        d = derive(cell)
        for folder, module in BACKENDS.items():
            out[f"{folder}{name}.py"] = module(d, rebuild(name))
        out[f"tex/{name}.tex"] = latex_document(d, rebuild=rebuild(name))
        derivations.append(d)
        progress(f"rendered {name}.py and tex/{name}.tex ({time.perf_counter() - start:.1f} s)")
    if cells is None:
        out[f"tex/{OVERVIEW}.tex"] = overview_document(derivations, figures.CLIP, OTHERS,
                                                         rebuild(None))
        for name, (cell, head) in NETWORKS.items():
            out[f"{name}.py"] = network_module(derive_network(cell, head), rebuild=rebuild(None))
        for name, (cell, head) in NETWORK_DOCUMENTS.items():
            n = derive_network(cell, head)
            out[f"tex/{name}.tex"] = latex_document(n.cell, n.head, rebuild(None))
        progress(f"rendered {', '.join(f'{n}.py' for n in NETWORKS)} and "
                 f"{', '.join(f'tex/{n}.tex' for n in NETWORK_DOCUMENTS)}")
        start = time.perf_counter()
        out[f"tex/{WORKED}.tex"] = worked_document(example(_network_module(out)), rebuild(None))
        out[f"tex/{MISTAKES}.tex"] = mistakes_document(CLAIMS, rebuild(None))
        progress(f"rendered tex/{WORKED}.tex, checked, and tex/{MISTAKES}.tex "
                 f"({time.perf_counter() - start:.1f} s)")
    return out


def _network_module(texts: dict[str, str]):
    """The worked example's network module as rendered in ``texts``, importing the cell's
    module as rendered there too (not the file on disk, which may be older)."""
    name = f"symlstm.generated.{worked.CELL}"
    cell = load_module(texts[f"{worked.CELL}.py"], name)
    saved = sys.modules.get(name)
    sys.modules[name] = cell
    try:
        return load_module(texts[f"{worked.CELL}_{worked.HEAD}.py"],
                           f"symlstm.generated.{worked.CELL}_{worked.HEAD}")
    finally:
        if saved is None:
            del sys.modules[name]
        else:
            sys.modules[name] = saved


def figure_files(texts: dict[str, str] | None = None,
                 progress: Progress = _quiet) -> dict[str, bytes]:
    """Every figure, drawn with the generated modules as rendered in ``texts`` (those it
    lacks are rendered here)."""
    start = time.perf_counter()
    texts = dict(texts or {})
    missing = [name for name in figures.CELLS if f"{name}.py" not in texts]
    texts.update(sources(missing) if missing else {})
    modules = {name: load_module(texts[f"{name}.py"], f"symlstm.generated.{name}")
               for name in figures.CELLS}
    out = {f"tex/fig/{name}": make(modules) for name, make in figures.FIGURES.items()}
    progress(f"drew {len(out)} figures ({time.perf_counter() - start:.1f} s)")
    return out


def render(cells=None, progress: Progress = _quiet,
           rebuild: Callable[[str | None], str] = _in_generated) -> dict[str, bytes]:
    """Every file of a build but the PDFs, relative path -> bytes (the figures only when a
    document includes them)."""
    texts = sources(cells, progress, rebuild)
    includes = any(f"{{{FIGURE_DIR}/" in text for rel, text in texts.items()
                   if rel.endswith(".tex"))
    return {**{rel: text.encode() for rel, text in texts.items()},
            **(figure_files(texts, progress) if includes else {})}


def _backend_init(folder: str, rebuild: str) -> str:
    name = folder.strip("/")
    return (f"# Generated by symlstm.build: do not edit. Regenerate with `{rebuild}`.\n"
            f'"""Generated {name} modules, one per cell: ``symlstm.generated.{name}.<cell>``."""\n')


def _package_init(names, rebuild: str) -> str:
    listing = "".join(f'    "{n}",\n' for n in names)
    networks = "".join(f'    "{n}",\n' for n in NETWORKS)
    return (f"# Generated by symlstm.build: do not edit. Regenerate with `{rebuild}`.\n"
            '"""Generated NumPy modules: one per cell, ``symlstm.generated.<cell>``, and cells\n'
            'with an output head and a loss (``NETWORKS``)."""\n\n'
            f"CELLS = (\n{listing})\nNETWORKS = (\n{networks})\n")


DOCUMENTS = documents()
#: What LaTeX leaves beside a PDF, Python's caches and the PDF stamps: never reported as stray.
_IGNORED = ("__pycache__", ".aux", ".log", ".fls", ".fdb_latexmk", ".pyc", STAMPS)


def stale(root: Path = GENERATED, *, cells=None, pdfs: bool = True,
          files: dict[str, bytes] | None = None) -> list[str]:
    """Unified diffs of every generated file under ``root`` that differs from a fresh
    rendering (for a figure, a line saying so); with ``pdfs``, also a line for each PDF that
    is missing or not a PDF, and (building every cell) for each file that nothing generates.
    Whether a PDF matches its .tex is :func:`stale_pdfs`' question (it runs LaTeX)."""
    diffs, files = [], render(cells) if files is None else files
    where = _shown(root)
    for rel, data in files.items():
        path = root / rel
        old = path.read_bytes() if path.exists() else None
        if old == data:
            continue
        if not rel.endswith((".py", ".tex")) or old is None:
            diffs.append(f"{where}/{rel} {'is missing' if old is None else 'differs from a fresh rendering'}\n")
            continue
        diffs.append("".join(difflib.unified_diff(
            old.decode(errors="replace").splitlines(True), data.decode().splitlines(True),
            f"a/{where}/{rel}", f"b/{where}/{rel}", n=2)))
    if pdfs:
        expected = {*files, *(f"pdf/{name}.pdf" for name in documents(cells))}
        for name in documents(cells):
            path = root / "pdf" / f"{name}.pdf"
            if not path.exists() or path.read_bytes()[:5] != b"%PDF-":
                diffs.append(f"{where}/pdf/{name}.pdf is missing or not a PDF\n")
        for path in sorted(p for p in root.rglob("*") if p.is_file()) if cells is None else ():
            rel = path.relative_to(root).as_posix()
            if rel not in expected and not any(part in rel for part in _IGNORED):
                diffs.append(f"{where}/{rel} is not a generated file: remove it\n")
    return diffs


def _shown(root: Path) -> str:
    """How messages name a folder of outputs: ``generated`` for the checkout's own."""
    return "generated" if root == GENERATED else str(root)


def stale_pdfs(root: Path = GENERATED, *, cells=None, jobs: int | None = None,
               progress: Progress = _quiet) -> list[str]:
    """A line for each PDF that differs from a fresh build of its .tex (a PDF whose stamp
    says that this machine built it from these very inputs is not rebuilt)."""
    stamps, out = _Stamps(root), []
    todo = [n for n in documents(cells) if not stamps.current(n)]
    with tempfile.TemporaryDirectory() as work:
        for name, built, seconds in _run_latex(root, todo, Path(work), jobs):
            path = root / "pdf" / f"{name}.pdf"
            same = path.exists() and path.read_bytes() == built.pdf.read_bytes()
            progress(f"checked pdf/{name}.pdf against a fresh build ({seconds:.1f} s)")
            if not same:
                out.append(f"{_shown(root)}/pdf/{name}.pdf "
                           "differs from a fresh build of its .tex\n")
    return out


def write(root: Path = GENERATED, files: dict[str, bytes] | None = None) -> list[Path]:
    """Write every file of ``files`` (default: all, rendered now) that differs; everything is
    rendered before anything is written, so an error leaves ``root`` untouched."""
    files = render() if files is None else files
    return [p for rel, data in files.items() if (p := _put(root / rel, data))]


def _put(path: Path, data: bytes) -> Path | None:
    """Write ``data`` atomically if it differs; the path if written, readable as any new file
    is (0644 under the usual umask)."""
    if path.exists() and path.read_bytes() == data:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    # os.open applies the umask to 0o666; tempfile.mkstemp would leave the file 0600
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def pdfs(root: Path = GENERATED, cells=None, *, force: bool = False, jobs: int | None = None,
         progress: Progress = _quiet) -> list[Built]:
    """Build the PDFs of ``root/tex`` into ``root/pdf``, those whose inputs changed only
    (all with ``force``), ``jobs`` at a time (default: one per core)."""
    stamps = _Stamps(root)
    todo = []
    for name in documents(cells):
        if force or not stamps.current(name):
            todo.append(name)
        else:
            progress(f"pdf/{name}.pdf is up to date")
    out = []
    for name, built, seconds in _run_latex(root, todo, root / "pdf", jobs):
        stamps.record(name)
        progress(f"built pdf/{name}.pdf ({seconds:.1f} s)")
        for line in built.overfull():
            progress(f"  {name}.tex: {line}")
        out.append(built)
    return out


def _run_latex(root: Path, names: list[str], out_dir: Path, jobs: int | None):
    """(name, Built, seconds) for each document, as they finish; the first failure raises
    once the builds already started have ended."""
    def one(name):
        start = time.perf_counter()
        return name, pdf(root / "tex" / f"{name}.tex", out_dir), time.perf_counter() - start
    if not names:
        return
    workers = max(1, min(len(names), jobs or os.cpu_count() or 1))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for future in concurrent.futures.as_completed([pool.submit(one, n) for n in names]):
            yield future.result()


class _Stamps:
    """``root/.pdf-stamps.json``: for each PDF, digests of the inputs it was built from and of
    the PDF that build wrote.  A PDF is current when both still match."""

    def __init__(self, root: Path):
        self.root, self.path = root, root / STAMPS
        try:
            self.data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.data = {}

    def _inputs(self, name: str) -> str | None:
        tex = self.root / "tex" / f"{name}.tex"
        if not tex.exists():
            return None
        h = hashlib.sha256(_tex_version().encode())
        for path in [tex, *sorted((self.root / "tex" / "fig").glob("*"))]:
            h.update(path.name.encode() + b"\0" + path.read_bytes())
        return h.hexdigest()

    def _pdf(self, name: str) -> str | None:
        path = self.root / "pdf" / f"{name}.pdf"
        return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None

    def current(self, name: str) -> bool:
        entry = self.data.get(name)
        return entry is not None and entry == {"inputs": self._inputs(name), "pdf": self._pdf(name)}

    def record(self, name: str) -> None:
        self.data[name] = {"inputs": self._inputs(name), "pdf": self._pdf(name)}
        _put(self.path, (json.dumps(self.data, indent=1, sort_keys=True) + "\n").encode())


_VERSION: list[str] = []


def _tex_version() -> str:
    """pdflatex's first line of ``--version``: a new TeX makes every PDF stale."""
    if not _VERSION:
        _check_tex()
        run = subprocess.run(["pdflatex", "--version"], capture_output=True, text=True)
        _VERSION.append(run.stdout.partition("\n")[0])
    return _VERSION[0]


class LatexError(RuntimeError):
    """pdflatex failed, or TeX is not installed; the message says which and why."""


class Built(NamedTuple):
    pdf: Path
    log: str       # pdflatex's log of the last run

    def overfull(self) -> list[str]:
        """The log's overfull-box warnings: content that sticks out into the margin."""
        return [line for line in self.log.splitlines() if line.startswith("Overfull")]


#: TeX may read and write files only in the document's own folder, and run no programs.
PARANOID = {"openin_any": "p", "openout_any": "p", "shell_escape": "f"}


def _check_tex() -> None:
    missing = [t for t in ("latexmk", "pdflatex") if shutil.which(t) is None]
    if missing:
        raise LatexError(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not "
                         "installed: install TeX Live and latexmk (see README.md), or pass "
                         "--no-pdf")


def pdf(tex: Path, out_dir: Path) -> Built:
    """Build ``tex`` into ``out_dir`` reproducibly; the previous PDF survives a failure.

    The document is built in a fresh folder holding a copy of it and of the ``fig/`` folder
    beside it, with TeX forbidden to open files outside that folder or to run programs,
    so that a document cannot read what else is on the machine."""
    _check_tex()
    env = {**os.environ, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH, "FORCE_SOURCE_DATE": "1",
           **PARANOID}
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        shutil.copyfile(tex, work / tex.name)
        if (tex.parent / "fig").is_dir():
            shutil.copytree(tex.parent / "fig", work / "fig")
        cmd = ["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error",
               "-no-shell-escape", tex.name]
        run = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=work,
                             stdin=subprocess.DEVNULL)
        built, log = work / (tex.stem + ".pdf"), work / (tex.stem + ".log")
        if run.returncode != 0 or not built.exists():
            errors = _log_errors(log, run)
            missing = re.search(r"File `([^']+\.sty)' not found", errors)
            hint = (f"\nTeX Live lacks {missing[1]}: install the Debian packages the README's "
                    "commands name (texlive-latex-recommended, texlive-pictures)") if missing else ""
            raise LatexError(f"{tex.name} failed to build:\n{errors}{hint}")
        target = out_dir / built.name
        _put(target, built.read_bytes())
        return Built(target, log.read_text(errors="replace"))


def _log_errors(log: Path, run) -> str:
    if not log.exists():
        return f"(no log written; latexmk said:)\n{(run.stdout + run.stderr)[-2000:]}"
    lines = log.read_text(errors="replace").splitlines()
    hits = [k for k, line in enumerate(lines) if line.startswith("!")]
    keep = sorted({j for k in hits for j in range(k, min(k + 6, len(lines)))}) or \
        range(max(0, len(lines) - 20), len(lines))
    return "\n".join(lines[j] for j in keep)


# ------------------------------------------------------------- command -----

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
                                 description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.split("\n")[2:8]))
    add_arguments(ap)
    return run(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
