"""symlstm: recurrent-cell equations in SymPy, turned into verified gradients.

>>> import symlstm
>>> d = symlstm.derive("peephole_lstm")
>>> print(d["rec:c"])            # doctest: +SKIP

The names below load on first use, so that ``import symlstm.generated.lstm`` costs NumPy
alone and never SymPy.
"""
from __future__ import annotations

import importlib
from pathlib import Path

_LAZY = {
    "CELLS": "cells", "Cell": "cell", "CellBuilder": "cell", "CellError": "cell",
    "Latex": "cell", "Derivation": "bptt", "Gradient": "bptt", "matvec": "ops",
    "transpose": "ops", "concat": "ops", "OPS": "ops", "sigma": "ops", "tanh": "ops",
    "exp": "ops", "log": "ops", "relu": "ops", "softplus": "ops", "logsigmoid": "ops",
    "verify": "verification", "VerifyError": "verification", "Report": "verification",
    "check_claim": "claims", "Verdict": "claims", "ClaimError": "claims",
    "from_torch": "torch_weights", "to_torch": "torch_weights", "derive_network": "heads",
    "HEADS": "heads",
}

__all__ = ["CELLS", "Cell", "CellBuilder", "CellError", "ClaimError", "Derivation", "Gradient",
           "HEADS", "Latex", "OPS", "Report", "Verdict", "VerifyError", "check_claim", "concat",
           "derive", "derive_network", "exp", "from_torch", "get_cell", "log", "logsigmoid",
           "matvec", "relu", "sigma", "softplus", "tanh", "to_torch", "transpose", "verify"]


#: Submodules that ``symlstm.<name>`` imports on first use.
_SUBMODULES = {"bptt", "bruteforce", "build", "cell", "cells", "claims", "cli", "figures",
               "gradcheck", "graph", "heads", "jacobians", "lower", "naming", "notation",
               "numeric", "ops", "printers", "render", "seed_claims", "sweep", "torch_weights",
               "training", "verification", "worked"}


def __getattr__(name):
    if name == "__version__":
        return _version()
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'symlstm' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)


def _version() -> str:
    """The version in pyproject.toml: the checkout's, when symlstm runs from one (so that an
    editable install never reports the version it was installed at), else the installed
    package's metadata, which pip wrote from it."""
    try:
        import tomllib
        project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml")
                                .read_text())["project"]
        if project["name"] == "symlstm":
            return project["version"]
    except (ImportError, OSError, KeyError, ValueError):   # Python 3.10; not a checkout
        pass
    from importlib.metadata import version
    return version("symlstm")


def get_cell(cell):
    """A shipped cell by name (see ``CELLS``), or ``cell`` itself when it is already a Cell."""
    from .cell import Cell, CellBuilder
    from .cells import CELLS
    if isinstance(cell, Cell):
        return cell
    if isinstance(cell, CellBuilder):
        raise TypeError("got a CellBuilder: call its .build() to get the Cell")
    if not isinstance(cell, str):
        raise TypeError(f"expected a cell name or a Cell, got {type(cell).__name__}")
    if cell not in CELLS:
        raise KeyError(f"unknown cell {cell!r}; available: {', '.join(CELLS)}")
    return CELLS[cell]()


def derive(cell):
    """Derive every gradient of ``cell`` (a name from ``CELLS`` or a :class:`Cell`)."""
    from .bptt import derive as derive_cell
    return derive_cell(get_cell(cell))
