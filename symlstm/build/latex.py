"""LaTeX runs: each document's PDF built by latexmk with fixed time stamps, so that a rebuilt
PDF is byte-identical, and only when its inputs changed (the stamps beside the outputs)."""
from __future__ import annotations

import concurrent.futures
import hashlib
import re
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from .files import GENERATED, STAMPS, _put, _shown
from .sources import Progress, _quiet, documents

#: Fixed time stamps make rebuilt PDFs byte-identical.
SOURCE_DATE_EPOCH = "1767225600"


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
