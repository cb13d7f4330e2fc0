"""The Numba backend's printer: one entry of an element-wise statement, inside the compiled
loop over the samples b and the entries j, with each operation spelled on one number of the
float type F (:data:`SPELLINGS`), and the places (array and slice) each value lives in."""
from __future__ import annotations

from typing import NamedTuple

import sympy as sp
from sympy.printing.precedence import PRECEDENCE

from .. import naming
from ..cell.ops import (OPS, REDUCTIONS, Abs, Max, Min, exp, halfstep, log, logsigmoid, relu, sigma,
                        sign, softplus, sqrt, step, tanh)
from ..lower.gemms import Proj
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
    sqrt: "np.sqrt({a})",
    Abs: "abs({a})",
    sign: "np.sign({a})",
    halfstep: "(F(0.5) * (F(1) + np.sign({a})))",
    Max: "max({a}, {b})",
    Min: "min({a}, {b})",
}


class Loc(NamedTuple):
    """Where a vector of the step lives: entries ``offset + j`` of ``array``, a (B, n) array
    whose row for sample b is bound to the name ``row`` before the loop over j."""
    row: str
    array: str
    offset: sp.Expr = sp.S.Zero


J = sp.Symbol("j", integer=True)   # the loop's index, never a cell's symbol (a parameter j)
K = sp.Symbol("k", integer=True)   # a reduction's index, inside the loop over j


class ElementPrinter(CellNumPyPrinter):
    """Entry ``index`` (j plus an offset) of an element-wise expression, for the loop over
    j: ``where`` maps each vector to its ``Loc`` or to a local name, ``rows`` collects the
    rows read, ``params`` names the vector parameters (``scalars`` the scalar ones), ``sizes``
    gives a vector's size, and ``before`` collects the lines a reduction's sum needs (a
    loop over its entries, run before the statement that reads it)."""

    _default_settings = {**CellNumPyPrinter._default_settings, "index": J, "where": None,
                         "rows": None, "params": (), "scalars": (), "sizes": None, "adds": {},
                         "before": None}

    def _memo_key(self):
        return self._settings["index"]

    def _print(self, expr, **kwargs):
        func = getattr(expr, "func", None)
        if not kwargs and func in OPS and isinstance(expr, sp.Expr) and expr.args:
            spelling = SPELLINGS.get(func, OPS[func].numpy)
            return spelling.format(**dict(zip("ab", map(self._print, expr.args))))
        if not kwargs and func in REDUCTIONS and func.__name__ in ("total", "mean"):
            return self._reduce(expr)
        return super()._print(expr, **kwargs)

    def _reduce(self, expr) -> str:
        """A sum over a vector's entries, as a loop over k before the statement: its local."""
        before = self._settings["before"]
        name = f"red{len(before)}"
        n = self._settings["sizes"](expr.args[0])
        old = self._settings["index"]
        self._settings["index"] = K
        try:
            term = self._print(expr.args[0])
        finally:
            self._settings["index"] = old
        before += [f"{name} = F(0)", f"for k in range({_size_code(n)}):", f"    {name} += {term}"]
        return name if expr.func.__name__ == "total" else f"({name} / F({_size_code(n)}))"

    def index(self, offset=sp.S.Zero) -> str:
        """The current entry's index, ``offset`` further on, as code."""
        return _size_code(self._settings["index"] + offset)

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
            if self._settings["sizes"](expr) == 1:   # one number per sample, for every entry
                return self._shifted(expr, -self._settings["index"]) if \
                    self._settings["index"] != 0 else self._at(w)
            return self._at(w)
        if w is not None:
            return w
        if expr.name in self._settings["scalars"]:   # a scalar parameter, a 0-d array
            return f"{naming.code(expr)}[()]"
        if expr.name in self._settings["params"]:   # a vector parameter
            return f"{naming.code(expr)}[{self.index()}]"
        return naming.code(expr)   # D or H

    def _print_Proj(self, expr):
        loc = _slice(expr)
        added = self._settings["adds"].get(str(expr.args[0]))   # the input projection's slice
        if added:
            return f"({self._at(loc)} + {self._at(_proj_loc(added, 1)._replace(offset=loc.offset))})"
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
            text = f"({part} if {j} < {_size_code(starts[k + 1])} else {text})"
        return text

    def _print_Part(self, expr):
        e, a, _ = expr.args
        return self._shifted(e, a)

    def _print_Place(self, expr):   # e's entry j - a in rows a:b, else 0
        e, a, b, _ = expr.args
        j = self.index()
        return (f"({self._shifted(e, -a)} if {_size_code(a)} <= {j} < {_size_code(b)} "
                "else F(0))")

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
        return {J: "j", K: "k"}.get(expr) or super()._print_Symbol(expr)


def _size_code(e) -> str:
    return _SizePrinter().doprint(sp.expand(e))


def _proj_loc(buf, timed) -> Loc:
    """Where a fused buffer's rows are: ``proj_x[t]`` (timed) or ``proj_h_prev``."""
    name = str(buf)
    return Loc(naming.row(name), f"{name}[t]" if timed else name)


def _slice(p: Proj) -> Loc:
    """Where the slice ``p`` of a fused buffer is."""
    buf, start, _, timed = p.args
    return _proj_loc(buf, timed)._replace(offset=start)
