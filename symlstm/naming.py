"""Every spelling of a variable, in one place.

A cell's vectors are SymPy symbols whose names carry their time index and
whether they are an adjoint: ``z[t]``, ``c[t-1]``, ``δc[t+1]``, ``Δh[t]``.
Parameters carry no time index: ``W_z``, ``p_o``.  From such a name this
module gives the Python identifier used in generated code and the LaTeX used
in the documents, so no other module spells a name itself.
"""
from __future__ import annotations

import builtins
import keyword
import re
from typing import NamedTuple

import sympy as sp

ADJOINT = "δ"      # δv: the gradient of the loss with respect to v
EXTERNAL = "Δ"     # Δh: the gradient that reaches h_t from outside the cell
CARRY = "δ⁺"       # δ⁺s: what step t+1 sends back to the state s_t

# The kinds of equation label, ``kind:name``: the forward step (fwd:c), a one-step adjoint
# (adj:o), a recurrence through time (rec:c), a parameter's or input's gradient (grad:W_f),
# a gradient of the initial state (init:c0), what reaches the output from the head (out:h),
# and in generated code only, the stores into the fused GEMMs' buffers (store:h).
FORWARD, STEP, RECURRENCE, GRADIENT, INITIAL, OUTPUT, STORE = \
    "fwd", "adj", "rec", "grad", "init", "out", "store"

VECTOR_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*\Z")
PARAM_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*(_[A-Za-z0-9]+)?\Z")
_TIMED = re.compile(r"(?P<kind>δ⁺|δ|Δ)?(?P<base>[A-Za-z0-9_]+)\[t(?P<shift>[+-]\d+)?\]\Z")

#: Names the generated module uses for itself; a cell may not reuse them.
RESERVED = frozenset({
    "np", "numpy", "t", "T", "B", "D", "H", "params", "cache", "grads", "state", "state0",
    "dstate", "dhs", "hs", "forward", "backward", "init_params", "sigmoid", "logsigmoid", "rng",
    "dtype", "PARAMS", "STATES", "CELL", "SHAPES", "OUTPUT", "dnext", "STATE_SIZES", "INPUT_SIZE",
    "width",
})
#: Prefixes of the generated module's own arrays (fused matrices, buffers, caches).
RESERVED_PREFIXES = ("stack_", "dstack_", "proj_", "dproj_", "seq_", "cache_", "sum_", "dout_")
_GREEK = {"sigma", "tau", "phi", "psi", "eta", "mu", "nu", "rho", "theta", "lambda", "alpha",
          "beta", "gamma", "kappa", "omega", "xi", "zeta", "epsilon", "chi", "pi", "ell"}


class Timed(NamedTuple):
    """The parts of a time-indexed name: ``δc[t+1]`` is ("δ", "c", 1)."""
    kind: str
    base: str
    shift: int


def timed(base: str, shift: int = 0, kind: str = "") -> sp.Symbol:
    """The symbol of vector ``base`` at time t+shift (an adjoint if ``kind`` is δ, Δ or δ⁺)."""
    index = "t" if shift == 0 else f"t{shift:+d}"
    return sp.Symbol(f"{kind}{base}[{index}]")


def parse(symbol: sp.Symbol) -> Timed | None:
    """Split a time-indexed symbol into its parts; None for a parameter."""
    m = _TIMED.match(symbol.name)
    if m is None:
        return None
    return Timed(m["kind"] or "", m["base"], int(m["shift"] or 0))


def shift(symbol: sp.Symbol, by: int) -> sp.Symbol:
    """The same vector ``by`` steps later; parameters are returned unchanged."""
    p = parse(symbol)
    return symbol if p is None else timed(p.base, p.shift + by, p.kind)


def adjoint(symbol: sp.Symbol) -> sp.Symbol:
    """δv for a vector v (the adjoint of a parameter is named δW as well)."""
    p = parse(symbol)
    if p is None:
        return sp.Symbol(f"{ADJOINT}{symbol.name}")
    return timed(p.base, p.shift, ADJOINT)


def adjoint_of(symbol: sp.Symbol) -> sp.Symbol | None:
    """v for δv; None when ``symbol`` is not an adjoint."""
    p = parse(symbol)
    if p is not None and p.kind == ADJOINT:
        return timed(p.base, p.shift)
    if p is None and symbol.name.startswith(ADJOINT):
        return sp.Symbol(symbol.name[len(ADJOINT):])
    return None


# ---------------------------------------------------------------- code -----

_CODE_KIND = {"": "", ADJOINT: "d", EXTERNAL: "dout_", CARRY: "d{}_next"}


def code(symbol: sp.Symbol) -> str:
    """The Python identifier of a symbol inside one step of the generated loop.

    ``z[t]`` is ``z``, ``c[t-1]`` is ``c_prev``, ``δc[t]`` is ``dc``, ``δc[t-1]`` is ``dc_prev``,
    ``δ⁺c[t]`` is ``dc_next`` (what step t+1 sent back), ``W_z`` stays ``W_z`` and ``δW_z``
    is ``dW_z``.
    """
    p = parse(symbol)
    if p is None:   # a parameter W, or its gradient δW
        return "d" + symbol.name[len(ADJOINT):] if symbol.name.startswith(ADJOINT) else symbol.name
    if p.kind == CARRY:
        return f"d{p.base}_next"
    suffix = {0: "", -1: "_prev"}[p.shift]
    return f"{_CODE_KIND[p.kind]}{p.base}{suffix}"


def sequence(base: str) -> str:
    """The array of a state's values at every step, s_0 .. s_T: ``seq_c``."""
    return f"seq_{base}"


def cached(name: str) -> str:
    """The array of a cached forward value at every step: ``cache_tanh_c``."""
    return f"cache_{name}"


def row(name: str) -> str:
    """A compiled loop's name for the row of sample b of an array: ``z__b``.  No cell's
    name holds two underscores in a row, so it cannot clash with one."""
    return f"{name}__b"


def label(kind: str, name: str) -> str:
    """An equation's label, as the documents and the generated code print it: ``rec:c``."""
    return f"{kind}:{name}"


def grad_key(symbol: sp.Symbol) -> str:
    """The key of a gradient in the dict ``backward`` returns: ``W_z``, ``x``, ``h0``."""
    p = parse(symbol)
    if p is None:
        return symbol.name
    return f"{p.base}0" if p.shift == -1 else p.base


# --------------------------------------------------------------- LaTeX -----

def latex_base(base: str) -> str:
    """LaTeX of a bare name: ``zbar`` is ``\\bar{z}``, ``Ctilde`` is ``\\tilde{C}``, ``W_z`` is
    ``W_{z}``, ``sigma`` is ``\\sigma``."""
    head, _, sub = base.partition("_")
    if head.endswith("bar") and len(head) > 3:
        head = rf"\bar{{{latex_base(head[:-3])}}}"
    elif head.endswith("tilde") and len(head) > 5:
        head = rf"\tilde{{{latex_base(head[:-5])}}}"
    elif head.endswith("hat") and len(head) > 3:
        head = rf"\hat{{{latex_base(head[:-3])}}}"
    elif head in _GREEK:
        head = "\\" + head
    elif len(head) > 1:
        head = rf"\mathit{{{head}}}"
    return f"{head}_{{{sub}}}" if sub else head


def latex_time(shift: int, origin: str = "t") -> str:
    """``t``, ``t+1``, ``t-1``; with ``origin`` a number, the number itself."""
    if origin.isdigit():
        return str(int(origin) + shift)
    return origin if shift == 0 else f"{origin}{shift:+d}"


def latex(symbol: sp.Symbol, origin: str = "t", index: str = "") -> str:
    """LaTeX of any symbol: ``\\delta \\bar{z}_{t+1}``, ``W_{z}``, ``\\Delta h_{t}``.

    ``index`` names one element: ``\\bar{z}_{t+1,k}``, ``b_{z,k}``, ``W_{z,jk}``.
    """
    p = parse(symbol)
    if p is None:
        name = symbol.name[len(ADJOINT):] if symbol.name.startswith(ADJOINT) else symbol.name
        head, _, sub = name.partition("_")
        sub = ",".join(x for x in (sub, index) if x)
        text = latex_base(head) + (f"_{{{sub}}}" if sub else "")
        return (r"\delta " if name != symbol.name else "") + text
    at = latex_time(p.shift, origin) + (f",{index}" if index else "")
    body = f"{latex_base(p.base)}_{{{at}}}"
    prefix = {"": "", ADJOINT: r"\delta ", EXTERNAL: r"\Delta ", CARRY: r"\delta^{+} "}[p.kind]
    return prefix + body


# ------------------------------------------------------------ checking -----

def check_vector_name(name: str, what: str) -> None:
    """Refuse a vector name that would break generated Python or LaTeX."""
    if not isinstance(name, str) or not VECTOR_NAME.match(name):
        raise ValueError(
            f"{what} name {name!r} is not allowed: use letters and digits, starting with a letter "
            "(no underscores: the time index becomes the subscript)")
    _check_free(name, what)


def check_param_name(name: str) -> None:
    """Refuse a parameter name that would break generated Python or LaTeX."""
    if not isinstance(name, str) or not PARAM_NAME.match(name):
        raise ValueError(
            f"parameter name {name!r} is not allowed: use letters and digits with at most one "
            "underscore before a subscript, e.g. 'W_z' or 'b_hn'")
    _check_free(name, "parameter")
    if name.startswith(RESERVED_PREFIXES):
        raise ValueError(f"parameter name {name!r} starts like one of the generated module's own "
                         f"arrays ({', '.join(RESERVED_PREFIXES)})")


def _check_free(name: str, what: str) -> None:
    if not isinstance(name, str):
        raise ValueError(f"{what} name must be a string, got {name!r}")
    if keyword.iskeyword(name) or name in RESERVED or hasattr(builtins, name):
        raise ValueError(
            f"{what} name {name!r} clashes with a Python keyword or built-in, or with a name of "
            f"the generated module ({', '.join(sorted(RESERVED))})")
