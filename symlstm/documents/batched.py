"""A row-major cell's equations for a whole batch: :func:`batched`.

A cell whose weights are stored input-by-output (every product is Wᵀ v, as in
``lstm_rowmajor``) is the per-sample reading of X W + H U + b.  Stacking the B samples of a
batch as rows turns each vector v_t into a B-row matrix V_t, each Wᵀ v into V W, each
entry-by-entry product into the same product of matrices, each weight gradient's
Σ_t v δᵀ into Σ_t Vᵀ Δ and each bias gradient's Σ_t δ into Σ_t 1ᵀ Δ (the sum of the rows).
"""
from __future__ import annotations

import sympy as sp

from .. import naming
from ..cell.ops import MatTVec, MatVec, Outer, TimeSum, Transposed, lse, sigma, total
from ..printers.table import positive_first, signed
from .latex import latex
from .lines import LINE_WIDTH, latex_width

_FUNCTIONS = {sigma: r"\sigma", sp.tanh: r"\tanh", sp.exp: r"\exp", sp.log: r"\log",
              lse: r"\operatorname{lse}"}


class NotBatched(ValueError):
    """An expression with no row-major batched reading here (a Part, a Concat, ...)."""


def is_row_major(cell) -> bool:
    """Whether every matrix product of the cell multiplies a transposed weight: weights
    stored input-by-output, the layout of X W + H U + b."""
    products = [a for eq in cell.equations for a in sp.preorder_traversal(eq.rhs)
                if isinstance(a, (MatVec, MatTVec))]
    return bool(products) and all(isinstance(a, MatVec) and isinstance(a.args[0], Transposed)
                                  for a in products)


def batched(d, head=None) -> dict | None:
    """The forward and backward passes of ``d`` (with ``head``'s) for a batch of B rows, with
    each side's shape; None when the cell is not row-major."""
    cell = d.cell
    if not is_row_major(cell):
        return None
    sizes = {naming.parse(v).base: cell.dim(v) for v in
             (*cell.input_symbols, *cell.prev_states, *(eq.lhs for eq in cell.equations))}
    if head is not None:
        sizes.update(head.head.sizes)
    scalars = frozenset(b for b, n in sizes.items() if n == "1")   # a column of B numbers
    params = {p.name: p.shape for p in cell.params}
    if head is not None:
        params.update({p.name: p.shape for p in head.head.params})
    try:
        forward = [_equation(g, sizes, params, scalars) for g in (*d.forward, *(
            head.forward if head else ()))]
        backward = [_equation(g, sizes, params, scalars, _known(head)) for g in (
            *((*head.step, head.output) if head else ()), *d.through_time,
            *(g for g in d.step if naming.adjoint_of(g.lhs) not in set(cell.new_states)))]
        grads = [_equation(g, sizes, params, scalars) for g in (*(head.params if head else ()),
                                                        *d.params)]
    except NotBatched:
        return None
    inputs = [_matrix(v) for v in cell.input_symbols]
    states = [_matrix(v) for v in cell.prev_states]
    return dict(forward=forward, backward=backward, grads=grads,
                inputs=", ".join(f"${latex(v)}$" for v in inputs),
                states=", ".join(f"${latex(v)}$" for v in states),
                example=_example(d, params),
                numbers=", ".join(f"${latex(naming.timed(b))}$" for b in sorted(scalars)))


def _example(d, params) -> dict | None:
    """One weight gradient spelled out, Σ_t Xᵀ Δ, for the text."""
    for g in d.params:
        if len(params.get(naming.adjoint_of(g.lhs).name, ())) == 2:
            return dict(lhs=latex(g.lhs), rhs=_rows(g.rhs))
    return None


def _known(head) -> dict:
    """What a head's equations fix: adjoints that are numbers (δℓ = 1, δm = δℓ) and
    log-normalisers (m = lse(ŷ)), to be put into the other equations."""
    if head is None:
        return {}
    known = {eq.lhs: eq.rhs for eq in head.head.equations if isinstance(eq.rhs, lse)}
    for g in head.step:
        rhs = g.rhs.xreplace(known)
        if rhs.is_Number:
            known[g.lhs] = rhs
    return known


def _equation(g, sizes, params, scalars, known=None) -> dict:
    v = naming.adjoint_of(g.lhs) if naming.parse(g.lhs) is None else g.lhs
    p = naming.parse(g.lhs)
    if p is None:                       # a parameter's gradient: the parameter's shape
        shape = r" \times ".join(params[v.name])
    else:
        size = sizes.get(p.base, "1")
        shape = "B" if size == "1" else rf"B \times {size}"
    simple = g.rhs.xreplace(known or {})
    also = _rows(simple, g.origin, scalars) if simple != g.rhs and not simple.is_Number else ""
    return dict(lhs=_rows(g.lhs, g.origin, scalars), lines=_lines(g.rhs, g.origin, scalars),
                also=also,
                shape=shape)


#: How wide a line of the batched equations may be, in the printers' units.
WIDTH = LINE_WIDTH - 10


def _lines(e, origin: str, scalars) -> list[str]:
    """``e`` over as many lines as it needs, broken before a term of its sum."""
    if not isinstance(e, sp.Add):
        return [_rows(e, origin, scalars)]
    lines: list[str] = []
    for term in signed([_rows(a, origin, scalars) for a in _ordered(e)]):
        if lines and latex_width(f"{lines[-1]} {term}") <= WIDTH:
            lines[-1] = f"{lines[-1]} {term}"
        else:
            lines.append(term)
    return lines


def _matrix(s: sp.Symbol, scalars=frozenset()) -> sp.Symbol:
    """v[t] as the batch's matrix V[t]: the base name capitalised (a number per sample keeps
    its name, as a column of B)."""
    p = naming.parse(s)
    if p is None or p.base in scalars:
        return s
    return naming.timed(p.base[:1].upper() + p.base[1:], p.shift, p.kind)


def _rows(e, origin: str = "t", scalars=frozenset()) -> str:
    """``e`` read for a batch of rows, in LaTeX."""
    e = sp.sympify(e)
    if isinstance(e, sp.Symbol):
        return latex(_matrix(e, scalars), origin)
    if e.is_Number:
        return latex(e)
    if isinstance(e, sp.Add):
        return " ".join(signed([_rows(a, origin, scalars) for a in _ordered(e)]))
    if isinstance(e, sp.Mul):
        c, rest = e.as_coeff_Mul()
        factors = [_factor(f, origin, scalars) for f in sp.Mul.make_args(rest)]
        body = r" \odot ".join(factors)
        if c == -1:
            return "-" + body
        return body if c == 1 else f"{latex(c)} {body}"
    if isinstance(e, sp.Pow) and e.exp.is_Integer and e.exp > 0:
        return f"{_group(e.base, origin, scalars)}^{{{latex(e.exp)}}}"
    if isinstance(e, MatVec):         # Wᵀ v per sample is V W; W v is V Wᵀ
        W, v = e.args
        right = latex(W.args[0]) if isinstance(W, Transposed) else latex(W) + r"^{\top}"
        return f"{_operand(v, origin, scalars)} {right}"
    if isinstance(e, MatTVec):        # Wᵀ v per sample is V W; (Wᵀ)ᵀ v = W v is V Wᵀ
        W, v = e.args
        right = latex(W.args[0]) + r"^{\top}" if isinstance(W, Transposed) else latex(W)
        return f"{_operand(v, origin, scalars)} {right}"
    if isinstance(e, Outer):          # Σ over the rows of a bᵀ: Aᵀ B
        a, b = e.args
        return rf"{_operand(a, origin, scalars)}^{{\top}} {_operand(b, origin, scalars)}"
    if isinstance(e, TimeSum):
        inner = e.args[0]
        if isinstance(inner, Outer):
            return rf"\sum_{{t=1}}^{{T}} {_rows(inner, origin, scalars)}"
        return rf"\sum_{{t=1}}^{{T}} \mathbf{{1}}^{{\top}} {_operand(inner, origin, scalars)}"
    if isinstance(e, total):          # a sum over the entries: each row's, a column
        return rf"{_operand(e.args[0], origin, scalars)}\, \mathbf{{1}}"
    if isinstance(e, sp.exp) and _softmax(e) is not None:
        return rf"\operatorname{{softmax}}\left({_rows(_softmax(e), origin, scalars)}\right)"
    if e.func in _FUNCTIONS:
        return rf"{_FUNCTIONS[e.func]}\left({_rows(e.args[0], origin, scalars)}\right)"
    raise NotBatched(f"no batched reading of {e}")


def _ordered(e: sp.Add) -> list:
    """A sum's terms as they are read: a pre-activation as X W + H U + b (the products, the
    input's first, then the bias); any other sum opening with a positive term."""
    terms = e.as_ordered_terms()
    if any(isinstance(a, sp.Symbol) and naming.parse(a) is None for a in terms) and \
            all(isinstance(a, (MatVec, MatTVec))
                or isinstance(a, sp.Symbol) and naming.parse(a) is None for a in terms):
        def key(a):
            if not isinstance(a, (MatVec, MatTVec)):
                return (1, 0)
            shifts = [naming.parse(s).shift for s in a.args[1].free_symbols
                      if naming.parse(s) is not None]
            return (0, -max(shifts, default=0))
        return sorted(terms, key=key)
    return positive_first(terms)


def _softmax(e):
    """u when e is exp(u - lse(u)), the softmax of u, else None."""
    arg = e.args[0]
    for a in sp.Add.make_args(arg):
        if isinstance(a, sp.Mul) and a.args[0] == -1 and isinstance(a.args[1], lse) \
                and sp.expand(arg - a - a.args[1].args[0]) == 0:
            return a.args[1].args[0]
    return None


def _operand(e, origin: str, scalars) -> str:
    """An operand of a matrix product: in parentheses unless it is one name."""
    text = _rows(e, origin, scalars)
    return text if isinstance(e, (sp.Symbol, TimeSum)) else rf"\left({text}\right)"


def _factor(e, origin: str, scalars) -> str:
    """A factor of an entry-by-entry product: in parentheses when it is a sum or a matrix
    product."""
    text = _rows(e, origin, scalars)
    if isinstance(e, (MatVec, MatTVec, Outer)):
        return rf"\left({text}\right)"
    return _group(e, origin, scalars) if isinstance(e, sp.Add) else text


def _group(e, origin: str, scalars) -> str:
    """A factor, in parentheses when it is a sum."""
    text = _rows(e, origin, scalars)
    if isinstance(e, sp.Add) or (isinstance(e, sp.Mul) and e.as_coeff_Mul()[0] == -1):
        return rf"\left({text}\right)"
    return text
