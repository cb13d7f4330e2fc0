"""The NumPy backend's printer: one step of the generated loop (names from :mod:`naming`),
and a head's expression over every step at once."""
from __future__ import annotations

import functools

import sympy as sp
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.precedence import PRECEDENCE

from .. import naming
from ..cell.ops import OPS
from ..printers.table import _hadamard, _positive_first_sum, _TablePrinter


class CellNumPyPrinter(_TablePrinter, NumPyPrinter):
    """NumPy code inside one step of the generated loop (names from :mod:`naming`).

    ``inputs`` names the input sequences, which a step reads at ``[t]``.
    """

    _default_settings = {**NumPyPrinter._default_settings, "inputs": ()}
    _spelling = "numpy"

    def _module_format(self, fqn, register=True):
        return super()._module_format(fqn, register).replace("numpy.", "np.")

    def _print_Symbol(self, expr):
        p = naming.parse(expr)
        if p is not None and not p.kind and p.base in self._settings["inputs"]:
            return f"{naming.code(expr)}[t]"
        return naming.code(expr)

    def _print_Pow(self, expr, rational=False):
        base, n = expr.args
        text = self.parenthesize(base, PRECEDENCE["Pow"])
        if n.is_negative:
            return f"1/{text}" if n == -1 else f"1/{text}**{-n}"
        return f"{text}**{n}"

    def _print_Rational(self, expr):
        return f"{expr.p}/{expr.q}"

    def _print_Quotient(self, expr):
        a, b = expr.args
        left = self.parenthesize(a, expr.precedence, strict=True)   # a/b/c is (a/b)/c
        return f"{left}/{self.parenthesize(b, PRECEDENCE['Mul'])}"

    def _print_Float(self, expr):   # a constant's value as Python writes the float: 1e-05
        return repr(float(expr))

    def _print_Proj(self, expr):
        buf, a, b, timed = expr.args
        rows = f"{'' if a == 0 else self._print(a)}:{self._print(b)}"
        return f"{self._print(buf)}[t, :, {rows}]" if timed else f"{self._print(buf)}[:, {rows}]"

    def _print_Transposed(self, expr):
        return f"{self._print(expr.args[0])}.T"

    def _print_Concat(self, expr):
        return f"np.concatenate([{', '.join(self._print(v) for v in expr.args)}], axis=-1)"

    def _print_Part(self, expr):
        e, a, b = expr.args
        rows = f"{'' if a == 0 else self._print(a)}:{self._print(b)}"
        axis = "..." if isinstance(e, sp.Symbol) and naming.parse(e) is None else ":"  # a parameter
        return f"{self.parenthesize(e, PRECEDENCE['Atom'])}[{axis}, {rows}]"

    def _print_Place(self, expr):   # zeros around e's columns, in e's dtype
        e, a, b, n = expr.args
        return f"np.pad({self._print(e)}, ((0, 0), ({self._print(a)}, {self._print(n - b)})))"

    def _print_Broadcast(self, expr):
        value, n = expr.args
        return f"np.broadcast_to({self._print(value)}, (B, {self._print(n)}))"

    def _print_Slot(self, expr):
        name, offset = expr.args
        return f"{self._print(name)}[t{'' if offset == 0 else f' + {offset}'}]"

    def _print_GroupAdjoint(self, expr):
        buf, name = expr.args
        return f"{self._print(buf)}[t] @ stack_{self._print(name)}"

    def _print_HeadsAdjoint(self, expr):
        buf, name = expr.args
        return f"_heads_T({self._print(buf)}[t], stack_{self._print(name)}, H)"

    def _print_Mul(self, expr):
        if any(f.is_Pow and f.exp.is_negative for f in expr.args):
            return super()._print_Mul(expr)
        return _hadamard(self, expr, "*", "*")


class HeadNumPyPrinter(CellNumPyPrinter):
    """NumPy code of a head, over every step at once: arrays are (T, B, size), the cell's
    output sequence is ``hs``, and a matrix product ``V h`` is ``hs @ V.T``."""

    _default_settings = {**CellNumPyPrinter._default_settings, "output": "h"}

    def _print_Symbol(self, expr):
        p = naming.parse(expr)
        if p is not None and not p.kind and p.base == self._settings["output"]:
            return f"{p.base}s"
        return naming.code(expr)

    def _print_MatVec(self, expr):
        return f"{self._print(expr.args[1])} @ {self._print(expr.args[0])}.T"

    def _print_MatTVec(self, expr):
        return f"{self.parenthesize(expr.args[1], PRECEDENCE['Mul'])} @ {self._print(expr.args[0])}"

    _print_Add = _positive_first_sum


def head_pycode(expr, output: str = "h") -> str:
    """NumPy code of a head's expression (see :class:`HeadNumPyPrinter`)."""
    return HeadNumPyPrinter({"output": output}).doprint(sp.sympify(expr))


def pycode(expr, inputs=()) -> str:
    """NumPy code of ``expr`` inside one step; ``inputs`` are read at ``[t]``."""
    return _pycode(sp.sympify(expr), tuple(inputs))


@functools.lru_cache(maxsize=1 << 14)
def _pycode(expr, inputs) -> str:
    return CellNumPyPrinter({"inputs": inputs}).doprint(expr)


def pycode_into(lhs, rhs, inputs=()) -> str:
    """Compute ``rhs`` into the array ``lhs`` already names: ``np.tanh(zbar, out=z)`` for one
    function, ``np.multiply(o, tanh_c, out=h)`` for a product of two, else ``h[...] = rhs``."""
    p = CellNumPyPrinter({"inputs": tuple(inputs)})
    out = p.doprint(lhs)
    op = OPS.get(rhs.func)
    if op is not None and op.ufunc:
        return f"{op.ufunc}({p.doprint(rhs.args[0])}, out={out})"
    if isinstance(rhs, (sp.Mul, sp.Add)) and len(rhs.args) == 2:
        op = "np.multiply" if isinstance(rhs, sp.Mul) else "np.add"
        a, b = (p.doprint(x) for x in rhs.args)
        return f"{op}({a}, {b}, out={out})"
    return f"{out}[...] = {p.doprint(rhs)}"
