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
    "CELLS": "cell.shipped", "get_cell": "cell.shipped", "Cell": "cell.model",
    "CellBuilder": "cell.model", "CellError": "cell.parts", "Latex": "cell.parts",
    "derive": "derivation.bptt", "Derivation": "derivation.bptt", "Gradient": "derivation.bptt",
    "matvec": "cell.ops", "transpose": "cell.ops", "concat": "cell.ops", "OPS": "cell.ops",
    "sigma": "cell.ops", "tanh": "cell.ops", "exp": "cell.ops", "log": "cell.ops",
    "relu": "cell.ops", "softplus": "cell.ops", "logsigmoid": "cell.ops",
    "sqrt": "cell.ops", "total": "cell.ops", "mean": "cell.ops", "part": "cell.ops",
    "D": "cell.ops", "H": "cell.ops",
    "verify": "checks.verification", "VerifyError": "checks.verification",
    "Report": "checks.verification", "check_claim": "checks.claims", "Verdict": "checks.claims",
    "ClaimError": "checks.claims", "from_torch": "network.torch_weights",
    "to_torch": "network.torch_weights", "derive_network": "network.heads",
    "HEADS": "network.heads",
}

__all__ = ["CELLS", "Cell", "CellBuilder", "CellError", "ClaimError", "D", "Derivation",
           "Gradient", "H", "HEADS", "Latex", "OPS", "Report", "Verdict", "VerifyError",
           "check_claim", "concat", "derive", "derive_network", "exp", "from_torch", "get_cell",
           "log", "logsigmoid", "matvec", "mean", "part", "relu", "sigma", "softplus", "sqrt",
           "tanh", "to_torch", "total", "transpose", "verify"]

#: The stages, in the order data flows, and beside them the checks and the network pieces;
#: ``symlstm.<name>`` imports one on first use.
_SUBMODULES = {"cell", "derivation", "lower", "printers", "backends", "documents", "build", "checks",
               "network", "naming", "cli"}
#: The printers the math shows itself with (error messages, ``_repr_latex_``): they register
#: with :mod:`symlstm.cell.display` when imported, which the first name loaded here does.
_DISPLAY = (".printers.comment", ".documents.latex")


def __getattr__(name):
    if name == "__version__":
        return _version()
    if name in _LAZY:
        for printer in _DISPLAY:
            importlib.import_module(printer, __name__)
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
