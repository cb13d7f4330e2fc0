"""The package's layout: one subpackage per stage, data flowing one way.

The imports are read from the source (those inside functions too), so an import circle
fails here even where Python would tolerate it at run time."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest


PACKAGE = Path(__file__).resolve().parent.parent / "symlstm"
BENCHMARKS = PACKAGE.parent / "benchmarks"
#: The stages in the order data flows; a module of one may import only its own stage and
#: the stages before it (``naming`` and the face sit outside).
PIPELINE = ["cell", "derivation", "lower", "printers", "backends", "documents", "build"]
#: The math, which shows itself through ``cell.display`` and imports no printer.
MATH = ["cell", "derivation"]
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ["symlstm", *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _imports(name: str) -> set[str]:
    """The symlstm modules ``name`` imports, at module level or inside functions: for
    ``from P import x``, P.x where that is a module, else P."""
    package = name if _is_package(name) else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] \
                if node.level else []
            where = ".".join(base + ([node.module] if node.module else []))
            for a in node.names:
                out.add(f"{where}.{a.name}" if f"{where}.{a.name}" in MODULES else where)
    return {m for m in out if m in MODULES and m != name}


GRAPH = {name: _imports(name) for name in MODULES}


def _stage(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and _is_package(name)) else None


def test_no_module_imports_anything_that_imports_it_back():
    """Tarjan's strongly connected components: each must be one module."""
    index, low, stack, on, circles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(GRAPH[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not circles, f"import circles: {circles}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _stage(n) in PIPELINE))
def test_data_flows_one_way(name):
    """A stage imports only itself and the stages before it."""
    allowed = PIPELINE[:PIPELINE.index(_stage(name)) + 1]
    later = sorted(m for m in GRAPH[name] if _stage(m) in PIPELINE and _stage(m) not in allowed)
    assert not later, f"{name} (stage {_stage(name)}) imports later stages: {later}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _stage(n) in MATH))
def test_the_math_imports_no_printer_or_template(name):
    printers = sorted(m for m in GRAPH[name]
                      if _stage(m) in ("printers", "backends", "documents"))
    assert not printers, f"{name} imports {printers}"


def test_the_math_finds_its_printers_by_registration():
    """Error messages and _repr_latex_ use the registered printers, not SymPy's spelling."""
    import symlstm
    d = symlstm.derive("lstm")
    assert r"\odot" in d["rec:c"]._repr_latex_()
    b = symlstm.CellBuilder("bad", "Bad")
    x, h = b.input("x"), b.state("h", "H")
    W, v = b.param("W", "H", "D"), b.param("v", "H")
    b.let("h", symlstm.tanh(symlstm.matvec(W, x) + v) ** h)
    with pytest.raises(symlstm.CellError, match=r"tanh\(v \+ W x\[t\]\)"):
        b.build()


def test_package_inits_import_nothing_but_the_build_face():
    """Importing a stage's module never runs another module first, so each subpackage's
    ``__init__`` is a docstring (``build`` re-exports its command's pieces)."""
    heavy = sorted(n for n in MODULES if _is_package(n) and GRAPH[n]
                   and n not in ("symlstm.build",))
    assert not heavy, heavy


@pytest.mark.parametrize("path", sorted([*PACKAGE.rglob("*.py"), *BENCHMARKS.rglob("*.py")]),
                         ids=lambda p: p.relative_to(PACKAGE.parent).as_posix())
def test_each_source_file_reads_in_at_most_400_lines(path):
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{path.name} has {n} lines"
