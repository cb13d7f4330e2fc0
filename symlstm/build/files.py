"""Writing a build's files, atomically and only where they differ, and comparing a folder of
outputs with a fresh rendering (``--check``)."""
from __future__ import annotations

import difflib
import os
import secrets
from importlib import metadata
from pathlib import Path

from .sources import documents, render

#: generated/ of a checkout (the package is installed from it, editable or not).
GENERATED = Path(__file__).resolve().parents[2] / "generated"
#: Beside the outputs: which inputs each PDF was built from (never committed).
STAMPS = ".pdf-stamps.json"
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
            diffs.append(f"{where}/{rel} {'is missing' if old is None else 'differs from a fresh rendering'}"
                         f"{_unpinned() if old is not None else ''}\n")
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


def _unpinned() -> str:
    """Why a figure may differ without any change to symlstm: an installed package whose
    version is not the one that symlstm pins (``==`` in its requirements); '' if none."""
    try:
        required = metadata.requires("symlstm") or []
    except metadata.PackageNotFoundError:
        return ""
    wrong = []
    for req in required:
        name, sep, pin = req.partition("==")
        if not sep or ";" in req:             # a range, or an extra's requirement
            continue
        name, pin = name.strip(), pin.strip()
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            have = "none"
        if have != pin:
            wrong.append(f"{name} {have} is installed, symlstm pins {pin}")
    return f" ({'; '.join(wrong)}: reinstall symlstm)" if wrong else ""


def _shown(root: Path) -> str:
    """How messages name a folder of outputs: ``generated`` for the checkout's own."""
    return "generated" if root == GENERATED else str(root)


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
