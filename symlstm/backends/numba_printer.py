"""The Numba backend's printer: one entry of an element-wise expression, inside the loop
over the entries j of a vector, with exp, tanh, σ, softplus and log σ spelled as the
module's branch-free functions."""
from __future__ import annotations

from typing import NamedTuple

import sympy as sp
from sympy.printing.precedence import PRECEDENCE

from .. import naming
from ..cell.ops import OPS, exp, log, logsigmoid, relu, sigma, softplus, step, tanh
from ..lower.plan import Proj
from .numpy import CellNumPyPrinter


#: Each operation of ``ops.OPS`` on one number of type ``F`` (float32 or float64); an
#: operation without an entry is computed with its NumPy spelling, on one number.
SPELLINGS = {
    sigma: "_sigmoid({a})",
    tanh: "_tanh({a})",
    exp: "_exp({a})",
    softplus: "_softplus({a})",
    logsigmoid: "_logsigmoid({a})",
    log: "np.log({a})",
    relu: "max({a}, F(0))",
    step: "F({a} > F(0))",
}


class Loc(NamedTuple):
    """Where a vector of the step lives: entries ``offset + j`` of ``array``, a (B, n) array
    whose row for sample b is bound to the name ``row`` before the loop over j."""
    row: str
    array: str
    offset: sp.Expr = sp.S.Zero


J = sp.Symbol("j", integer=True)   # the loop's index, never a cell's symbol (a parameter j)


class ElementPrinter(CellNumPyPrinter):
    """Entry ``index`` (j plus an offset) of an element-wise expression, for the loop over
    j: ``where`` maps each vector to its ``Loc`` or to a local name, ``rows`` collects the
    rows read, ``params`` names the vector parameters, ``sizes`` gives a vector's size."""

    _default_settings = {**CellNumPyPrinter._default_settings, "index": J, "where": None,
                         "rows": None, "params": (), "sizes": None, "adds": {}}

    def _memo_key(self):
        return self._settings["index"]

    def _print(self, expr, **kwargs):
        func = getattr(expr, "func", None)
        if not kwargs and func in OPS and isinstance(expr, sp.Expr) and expr.args:
            spelling = SPELLINGS.get(func, OPS[func].numpy)
            return spelling.format(a=self._print(expr.args[0]))
        return super()._print(expr, **kwargs)

    def index(self, offset=sp.S.Zero) -> str:
        """The current entry's index, ``offset`` further on, as code."""
        return size_code(self._settings["index"] + offset)

    def _at(self, loc: Loc) -> str:
        self._settings["rows"][loc.row] = f"{loc.array}[b]"
        return f"{loc.row}[{self.index(loc.offset)}]"

    def _shifted(self, e, by) -> str:
        """``e`` read ``by`` entries further on."""
        old = self._settings["index"]
        self._settings["index"] = old + by
        try:
            return self._print(e)
        finally:
            self._settings["index"] = old

    def _print_Symbol(self, expr):
        w = self._settings["where"].get(expr)
        if isinstance(w, Loc):
            return self._at(w)
        if w is not None:
            return w
        if expr.name in self._settings["params"]:   # a vector parameter
            return f"{naming.code(expr)}[{self.index()}]"
        return naming.code(expr)   # D or H

    def _print_Proj(self, expr):
        loc = slice_loc(expr)
        added = self._settings["adds"].get(str(expr.args[0]))   # the input projection's slice
        if added:
            return f"({self._at(loc)} + {self._at(proj_loc(added, 1)._replace(offset=loc.offset))})"
        return self._at(loc)

    def _print_Broadcast(self, expr):   # parameters only: the same for every sample
        return self._print(expr.args[0])

    def _print_Concat(self, expr):
        starts = [sp.S.Zero]
        for v in expr.args:
            starts.append(sp.expand(starts[-1] + self._settings["sizes"](v)))
        j = self.index()
        text = self._shifted(expr.args[-1], -starts[-2])
        for k in reversed(range(len(expr.args) - 1)):
            part = self._shifted(expr.args[k], -starts[k])
            text = f"({part} if {j} < {size_code(starts[k + 1])} else {text})"
        return text

    def _print_Part(self, expr):
        e, a, _ = expr.args
        return self._shifted(e, a)

    def _print_Slot(self, expr):
        raise NotImplementedError(f"an array slot read inside an element-wise loop: {expr}")

    def _print_GroupAdjoint(self, expr):
        raise NotImplementedError(f"a GEMM inside an element-wise loop: {expr}")

    def _print_Integer(self, expr):
        return f"F({expr.p})"

    def _print_Rational(self, expr):
        return f"(F({expr.p}) / F({expr.q}))"

    def _print_Float(self, expr):
        return f"F({float(expr)!r})"

    def _print_NumberSymbol(self, expr):
        return f"F({float(expr)!r})"

    _print_Pi = _print_Exp1 = _print_NumberSymbol
    _print_One = _print_NegativeOne = _print_Zero = _print_Integer
    _print_Half = _print_Rational

    def _print_Pow(self, expr, rational=False):
        base, n = expr.args
        text = self.parenthesize(base, PRECEDENCE["Pow"])
        if n.is_Integer and 1 <= abs(n) <= 4:   # products, which vectorise, not pow calls
            prod = "*".join([text] * int(abs(n)))
            return (text if n == 1 else f"({prod})") if n > 0 else f"(F(1)/({prod}))"
        return f"{text}**{self._print(n)}"


class _SizePrinter(CellNumPyPrinter):
    """An index or a size: ``j + H``."""

    def _print_Symbol(self, expr):
        return "j" if expr == J else super()._print_Symbol(expr)


def size_code(e) -> str:
    return _SizePrinter().doprint(sp.expand(e))


def proj_loc(buf, timed) -> Loc:
    """Where a fused buffer's rows are: ``proj_x[t]`` (timed) or ``proj_h_prev``."""
    name = str(buf)
    return Loc(naming.row(name), f"{name}[t]" if timed else name)


def slice_loc(p: Proj) -> Loc:
    """Where the slice ``p`` of a fused buffer is."""
    buf, start, _, timed = p.args
    return proj_loc(buf, timed)._replace(offset=start)
