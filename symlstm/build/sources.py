"""What a build renders, in memory: every cell's code modules and document, the networks,
the worked example, the mistakes checked, the overview and the figures.  Nothing here writes
a file (that is :mod:`.files` and :mod:`.latex`)."""
from __future__ import annotations

import sys
import time
from typing import Callable

from ..backends.code import network_module, numpy_module
from ..backends.numba import numba_module
from ..printers.templates import REBUILD
from ..backends.torch import torch_module
from ..cell.model import Cell
from ..cell.shipped import CELLS
from ..checks.seed_claims import CLAIMS
from ..checks.verification import load_module
from ..derivation.bptt import derive
from ..documents import figures, worked
from ..documents.document import latex_document, worked_document
from ..documents.mistakes import mistakes_document
from ..documents.overview import overview_document
from ..documents.tex import FIGURE_DIR
from ..documents.worked import example
from ..network.heads import derive_network

OVERVIEW = "overview"
MISTAKES = "mistakes"
WORKED = "worked_example"

Progress = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


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
