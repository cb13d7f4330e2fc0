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

from .cell.ops import OPS


OPS_NAMES = tuple(f.__name__ for f in OPS)

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

#: The sizes' names in generated code (``cell.SIZES``: D, H, the projection size P, the number
#: of heads NH, the head size HS = H/NH and the state size N): a size expression's symbols, so
#: no parameter may be called so.
SIZES = frozenset({"D", "H", "P", "NH", "HS", "N"})

#: Every name a generated module (NumPy, PyTorch or Numba) uses for itself where a cell's
#: names are in scope: its imports, constants and functions, the arguments and locals of the
#: functions that hold the cell's vectors, and the compiled loops' indices and float type.
MODULE_NAMES = frozenset({
    # imports, constants and functions
    "np", "numpy", "functools", "math", "torch", "numba", "intrinsic", "overload",
    "CELL", "PARAMS", "STATES", "SHAPES", "STATE_SIZES", "OUTPUT", "INPUT", "INPUT_SIZE",
    "OUTPUT_SIZE", "EXTRA_INPUTS",
    "sigmoid", "logsigmoid", "init_params", "forward", "backward", "BPTT", "Cell",
    # arguments and locals
    "params", "state0", "cache", "state", "dhs", "dstate", "dstates", "dnext", "grads", "hs",
    "final", "width", "dtype", "device", "ctx", "tensors", "self", "name", "want", "shape",
    "value", "p", "s", "n", "k", "t", "T", "B", *SIZES,
    # the compiled loops: samples b, entries j, the float type F
    "b", "j", "F",
})
#: Prefixes of the module's own arrays (fused matrices, buffers, caches, workspaces) and of
#: the forward values it hoists out of the equations (``tanh_c``, ``prod_W_x``).
MODULE_PREFIXES = ("stack_", "dstack_", "proj_", "dproj_", "seq_", "cache_", "sum_", "dout_",
                   "gemm_", *(f"{d}{f}_" for d in ("", "d") for f in ("prod", *OPS_NAMES)))
#: The attributes of ``torch.nn.Module`` (the generated ``Cell`` registers each parameter
#: as an attribute of that name, so none may be one of these).
TORCH_MODULE_NAMES = frozenset({
    "T_destination", "add_module", "apply", "bfloat16", "buffers", "call_super_init",
    "children", "compile", "cpu", "cuda", "double", "dump_patches", "eval", "extra_repr",
    "float", "forward", "get_buffer", "get_extra_state", "get_parameter", "get_submodule",
    "half", "ipu", "load_state_dict", "modules", "mtia", "named_buffers", "named_children",
    "named_modules", "named_parameters", "parameters", "register_backward_hook",
    "register_buffer", "register_forward_hook", "register_forward_pre_hook",
    "register_full_backward_hook", "register_full_backward_pre_hook",
    "register_load_state_dict_post_hook", "register_load_state_dict_pre_hook",
    "register_module", "register_parameter", "register_state_dict_post_hook",
    "register_state_dict_pre_hook", "requires_grad_", "set_extra_state", "set_submodule",
    "share_memory", "state_dict", "to", "to_empty", "train", "training", "type", "xpu",
    "zero_grad",
})
_GREEK = {"sigma", "tau", "phi", "psi", "eta", "mu", "nu", "rho", "theta", "lambda", "alpha",
          "beta", "gamma", "kappa", "omega", "xi", "zeta", "epsilon", "chi", "pi", "ell",
          "Gamma", "Delta", "Theta", "Lambda", "Xi", "Pi", "Sigma", "Phi", "Psi", "Omega"}


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

def identifier(name: str) -> str:
    """The Python identifier of one of a cell's names in generated code: the name itself, or
    the name with a trailing underscore (PEP 8's ``class_``) where it would be a keyword, a
    built-in or one of the module's own names (``MODULE_NAMES``, ``MODULE_PREFIXES``): a
    parameter ``b`` is ``b_``, the gradient of a parameter ``hs`` is ``dhs_``.  No cell's name
    ends with an underscore, and no module's own name does, so nothing can clash."""
    if keyword.iskeyword(name) or hasattr(builtins, name) or name in MODULE_NAMES \
            or name.startswith(MODULE_PREFIXES):
        return name + "_"
    return name


def code(symbol: sp.Symbol) -> str:
    """The Python identifier of a symbol inside one step of the generated loop.

    ``z[t]`` is ``z``, ``c[t-1]`` is ``c_prev``, ``δc[t]`` is ``dc``, ``δc[t-1]`` is ``dc_prev``,
    ``δ⁺c[t]`` is ``dc_next`` (what step t+1 sent back), ``Δh[t]`` is ``dout_h``, ``W_z`` stays
    ``W_z`` and ``δW_z`` is ``dW_z``; each passed through :func:`identifier` (``b`` is ``b_``).
    The module's own values (``tanh_c[t]``, CSE temporaries ``_tmp0``, arrays such as
    ``cache_z``) and the sizes D and H keep their names.
    """
    p = parse(symbol)
    if p is None:   # a parameter W, or its gradient δW
        name = symbol.name
        if name.startswith(ADJOINT):
            return identifier("d" + name[len(ADJOINT):])
        internal = name in SIZES or name.startswith(("_", *MODULE_PREFIXES))
        return name if internal else identifier(name)
    if p.kind == EXTERNAL:
        return f"dout_{p.base}"
    if p.kind == CARRY:
        form = f"d{p.base}_next"
    else:
        form = f"{'d' if p.kind == ADJOINT else ''}{p.base}{'_prev' if p.shift == -1 else ''}"
    return identifier(form) if VECTOR_NAME.match(p.base) else form   # tanh_c: the module's


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
    elif head == "eps":
        head = r"\varepsilon"
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
    """Refuse a vector name that would break generated Python or LaTeX.  A name that is a
    keyword, a built-in or one of the generated module's own is fine: :func:`identifier`
    spells it apart in code."""
    if not isinstance(name, str) or not VECTOR_NAME.match(name):
        raise ValueError(
            f"{what} name {name!r} is not allowed: use letters and digits, starting with a letter "
            "(no underscores: the time index becomes the subscript)")


def check_param_name(name: str) -> None:
    """Refuse a parameter name that would break generated Python or LaTeX, or that is a size
    (D, H: the symbols of every size expression)."""
    if not isinstance(name, str) or not PARAM_NAME.match(name):
        raise ValueError(
            f"parameter name {name!r} is not allowed: use letters and digits with at most one "
            "underscore before a subscript, e.g. 'W_z' or 'b_hn'")
    if name in SIZES:
        raise ValueError(f"parameter name {name!r} is not allowed: {', '.join(sorted(SIZES))} "
                         "are the sizes (input, hidden, projection size, number of heads, head "
                         "size and state size)")
    if name.startswith(MODULE_PREFIXES):
        raise ValueError(f"parameter name {name!r} starts like one of the generated module's own "
                         f"arrays or cached values ({', '.join(MODULE_PREFIXES)})")
    if name in TORCH_MODULE_NAMES:
        raise ValueError(f"parameter name {name!r} is not allowed: the PyTorch module's "
                         "parameters are its attributes, and torch.nn.Module already has "
                         f"{name!r}")
