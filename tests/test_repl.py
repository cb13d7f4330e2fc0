"""What a user sees in a REPL or a notebook."""
import pytest
import sympy as sp

import symlstm
from symlstm import naming
from symlstm.documents.latex import latex


def test_derive_by_name_or_cell_gives_sympy_objects():
    d = symlstm.derive("peephole_lstm")
    assert symlstm.derive(symlstm.get_cell("peephole_lstm")) == d
    rec = d["rec:c"]
    assert isinstance(rec.eq, sp.Eq)
    c, f = naming.timed("c"), naming.timed("f", 1)
    assert naming.timed("c", 1, naming.ADJOINT) * f in rec.rhs.args
    assert "δc[t+1]*f[t+1]" in str(rec) or "f[t+1]*δc[t+1]" in str(rec)
    assert c.name == "c[t]"


def test_latex_rendering_for_notebooks():
    d = symlstm.derive("lstm")
    assert d["rec:c"]._repr_latex_().startswith("$\\displaystyle \\delta c_{t} = ")
    assert r"\delta c_{t+1} \odot f_{t+1}" in d._repr_latex_()
    assert d["grad:W_z"]._repr_latex_() == \
        r"$\displaystyle \delta W_{z} = \sum_{t=1}^{T} \delta \bar{z}_{t} x_{t}^{\top}$"


def test_printers_spell_the_notation():
    z, c_prev = naming.timed("zbar", 1, naming.ADJOINT), naming.timed("c", -1)
    assert latex(z) == r"\delta \bar{z}_{t+1}"
    assert latex(c_prev, origin="1") == "c_{0}"
    assert latex(symlstm.sigma(naming.timed("obar"))) == r"\sigma\left(\bar{o}_{t}\right)"


def test_unknown_cell_lists_the_available_ones():
    with pytest.raises(KeyError, match="available: lstm, peephole_lstm"):
        symlstm.derive("lstmm")
