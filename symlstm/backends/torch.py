"""The PyTorch backend: the derived step printed as torch code, for
``symlstm.generated.torch.<cell>``.

The generated module runs the same lowered plan as the NumPy module, with torch tensors (on
any device, float32 or float64), and wraps it in a ``torch.autograd.Function`` whose
backward is the derived one, not autograd of the forward pass.
"""
from __future__ import annotations

import sympy as sp

from .. import naming
from ..cell.ops import (OPS, Abs, Max, Min, exp, halfstep, log, logsigmoid, mean, relu, sigma,
                        sign, softplus, sqrt, step, tanh, total)
from ..cell.matrices import per_head_parts
from ..derivation.bptt import Derivation
from ..printers.templates import environment
from .code import Spelling, code_context
from .channels import ChannelsPrinter, channels_context, has_channels
from .heads import HeadsPrinter, heads_context
from .numpy import CellNumPyPrinter


TEMPLATE = "torch/cell.py.jinja"
HEADS_TEMPLATE = "torch/heads.py.jinja"
CHANNELS_TEMPLATE = "torch/channels.py.jinja"

#: Each operation of ``ops.OPS`` spelled in torch.  softplus returns a itself above its
#: threshold, which is within float64's rounding only from a = 37 on (e^-37/37 < half an ulp),
#: not from torch's default 20 (off by e^-20/20, 2e5 ulps); below it, log1p(e^a) is finite
#: for any a in float32 and float64.
SPELLINGS = {
    sigma: "torch.sigmoid({a})",
    tanh: "torch.tanh({a})",
    exp: "torch.exp({a})",
    log: "torch.log({a})",
    softplus: "torch.nn.functional.softplus({a}, threshold=37.0)",
    logsigmoid: "torch.nn.functional.logsigmoid({a})",
    relu: "torch.relu({a})",
    step: "(({a}) > 0).to(({a}).dtype)",
    sqrt: "torch.sqrt({a})",
    Abs: "torch.abs({a})",
    sign: "torch.sign({a})",
    halfstep: "(torch.sign({a}) + 1) / 2",
    Max: "torch.where({a} >= {b}, {a}, {b})",   # a number beside a tensor, as np.maximum
    Min: "torch.where({a} <= {b}, {a}, {b})",
    total: "torch.sum({a}, dim=-1, keepdim=True)",
    mean: "torch.mean({a}, dim=-1, keepdim=True)",
}


class TorchPrinter(CellNumPyPrinter):
    """Torch code inside one step of the generated loop (the NumPy printer's names and
    slices, torch's functions)."""

    def _print(self, expr, **kwargs):
        func = getattr(expr, "func", None)
        if not kwargs and func in SPELLINGS and isinstance(expr, sp.Expr) and expr.args:
            if all(a.is_number for a in expr.args):   # torch takes tensors, not numbers: σ(0)
                return repr(float(OPS[func].definition(*expr.args, sp).evalf()))
            return SPELLINGS[func].format(**dict(zip("ab", map(self._print, expr.args))))
        if func in OPS and func not in SPELLINGS:   # never fall back to a NumPy spelling
            raise NotImplementedError(f"the torch backend has no spelling for {func.__name__}: "
                                      "add one to symlstm.backends.torch.SPELLINGS")
        return super()._print(expr, **kwargs)

    def _module_format(self, fqn, register=True):
        return super()._module_format(fqn, register).replace("np.", "torch.")

    def _print_Concat(self, expr):
        return f"torch.cat([{', '.join(self._print(v) for v in expr.args)}], dim=-1)"

    def _print_Place(self, expr):
        e, a, b, n = expr.args
        pad = f"({self._print(a)}, {self._print(n - b)})"
        return f"torch.nn.functional.pad({self._print(e)}, {pad})"

    def _print_Broadcast(self, expr):
        value, n = expr.args
        return f"({self._print(value)}).expand(B, {self._print(n)})"


def code(expr, inputs=()) -> str:
    return TorchPrinter({"inputs": tuple(inputs)}).doprint(sp.sympify(expr))


def into(lhs, rhs, inputs=()) -> str:
    """``rhs`` computed into the tensor ``lhs`` names: ``torch.tanh(zbar, out=z)`` for one
    function of a vector of the step (every such vector is (B, n), as the slot is), else
    copied in.  A value that reads parameters only is copied: where NumPy broadcasts it into
    its (B, n) slot, ``out=`` would resize the slot instead."""
    p = TorchPrinter({"inputs": tuple(inputs)})
    out = p.doprint(lhs)
    per_sample = any(naming.parse(s) is not None for s in rhs.free_symbols)
    if per_sample and rhs.func in _IN_PLACE and not rhs.args[0].is_number:
        return f"{_IN_PLACE[rhs.func]}({p.doprint(rhs.args[0])}, out={out})"
    return f"{out}[...] = {p.doprint(rhs)}"


#: The operations with a torch function that writes into ``out=``.
_IN_PLACE = {sigma: "torch.sigmoid", tanh: "torch.tanh", exp: "torch.exp", log: "torch.log"}


TORCH = Spelling(code, into, dict(
    cat="torch.cat", empty="torch.empty", zeros="torch.zeros", empty_like="torch.empty_like",
    matmul="torch.matmul", copied=".clone()", where="dtype=dtype, device=device"))


class HeadsTorchPrinter(HeadsPrinter, TorchPrinter):
    """Torch code of one step of a cell with matrices per head, in the heads' layout."""

    _lib, _axis, _keep = "torch", "dim", "keepdim"


class ChannelsTorchPrinter(ChannelsPrinter, TorchPrinter):
    """Torch code of one step of a cell with matrices per channel, in the channels' layout."""

    _lib, _axis, _keep = "torch", "dim", "keepdim"


def torch_module(d: Derivation, rebuild: str | None = None) -> str:
    """The source of ``symlstm.generated.torch.<cell>`` for ``d.cell``; its header names
    ``rebuild`` as the command that regenerates it, if given.  A cell with matrices or
    numbers per head gets the passes of :mod:`.heads` on tensors, one with matrices per
    channel those of :mod:`.channels`."""
    if has_channels(d.cell):
        return environment().get_template(CHANNELS_TEMPLATE).render(
            **channels_context(d, ChannelsTorchPrinter), template=CHANNELS_TEMPLATE,
            rebuild=rebuild)
    if per_head_parts(d.cell):
        return environment().get_template(HEADS_TEMPLATE).render(
            **heads_context(d, HeadsTorchPrinter), template=HEADS_TEMPLATE, rebuild=rebuild)
    return environment().get_template(TEMPLATE).render(
        template=TEMPLATE, rebuild=rebuild, **code_context(d, TORCH, "PyTorch"))
