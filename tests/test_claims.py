"""symlstm.check_claim judges hand-written gradient formulas: right ones hold however they
are written, wrong ones fail with the paths they miss or add and a counterexample."""
import io

import numpy as np
import pytest
import sympy as sp

import symlstm
from symlstm import ClaimError, check_claim, cli, naming
from symlstm.claims import parse


@pytest.mark.parametrize("name", list(symlstm.CELLS))
def test_every_derived_gradient_holds_as_printed_and_as_sympy(name):
    d = symlstm.derive(name)
    for g in d.all():
        if g.kind == naming.FORWARD:
            continue
        assert check_claim(d, g.label, str(g.rhs)).holds, g.label
        assert check_claim(d, g.label, g.rhs).holds, g.label


@pytest.mark.parametrize("cell, label, claim", [
    ("lstm", "adj:ibar", "δi[t] ⊙ σ(ibar[t]) ⊙ (1 - σ(ibar[t]))"),     # σ' through σ
    ("lstm", "adj:ibar", "δc[t]*z[t]*i[t]*(1 - i[t])"),                  # δi written out
    ("lstm", "rec:c", "δh[t]*o[t]*sech(c[t])**2 + δc[t+1]*f[t+1]"),      # tanh' = sech²
    ("lstm", "rec:c", "δh[t]*o[t]*(1 - tanh(c[t]))*(1 + tanh(c[t])) + f[t+1]*δc[t+1]"),
    ("lstm", "adj:zbar", "δz[t]*diff(tanh(zbar[t]), zbar[t])"),
    ("lstm", "rec:h", "Δh[t] + MatTVec(R_z, δzbar[t+1]) + MatTVec(R_i, δibar[t+1]) "
                      "+ MatTVec(R_f, δfbar[t+1]) + MatTVec(R_o, δobar[t+1])"),
    ("lstm", "grad:W_f", "Outer(δfbar[t], x[t])"),                       # Σ_t left implicit
    ("lstm_nobias", "adj:abar", "δa[t]*(1 - tanh(abar[t])**2)"),
    ("lstm_rowmajor", "grad:W_xi", "TimeSum(Outer(x[t], δI[t]*I[t]*(1 - I[t])))"),
])
def test_equivalent_forms_hold(cell, label, claim):
    verdict = check_claim(symlstm.derive(cell), label, claim)
    assert verdict.holds and verdict.missing == () and verdict.extra == ()
    assert verdict.counterexample is None and "\\delta" in verdict.latex


def test_each_dropped_path_is_named():
    d = symlstm.derive("peephole_lstm")
    g = d["rec:c"]
    for k, dropped in enumerate(g.terms):
        claim = sp.Add(*(t.expr for j, t in enumerate(g.terms) if j != k))
        verdict = check_claim(d, "rec:c", claim)
        assert not verdict.holds
        assert verdict.missing == (dropped,) and verdict.extra == ()


def test_wrong_terms_are_extra_and_a_counterexample_shows_it():
    d = symlstm.derive("lstm")
    verdict = check_claim(d, "rec:h", "Δh[t] + MatTVec(R_z, δzbar[t+1] + δibar[t+1]) "
                                      "+ MatTVec(R_f, δfbar[t+1]) + MatVec(R_o, δobar[t+1])")
    assert not verdict.holds
    assert {(t.via, t.later) for t in verdict.missing} == {("ibar", 1), ("obar", 1)}
    assert {str(e) for e in verdict.extra} == {"MatTVec(R_z, δibar[t+1])",
                                               "MatVec(R_o, δobar[t+1])"}
    ex = verdict.counterexample
    assert ex["sizes"] == {"D": 2, "H": 3}
    assert not np.allclose(ex["claim"], ex["derived"])
    assert "R_o" in ex["at"] and np.shape(ex["at"]["R_o"]) == (3, 3)


def test_the_seeds_classic_slip_tanh_of_the_output_gate():
    """δo_t = δh_t ⊙ tanh(c_t), not δh_t ⊙ c_t: the verdict says what is missing."""
    verdict = check_claim(symlstm.derive("lstm"), "adj:o", "δh[t]*c[t]")
    assert not verdict.holds
    assert [str(t.expr) for t in verdict.missing] == ["δh[t]*tanh(c[t])"]
    assert "does not hold" in str(verdict) and "missing: δh[t] ⊙ tanh(c[t])" in str(verdict)


def test_a_transposed_outer_product_does_not_hold():
    verdict = check_claim(symlstm.derive("lstm"), "grad:W_f", "Outer(x[t], δfbar[t])")
    assert not verdict.holds and verdict.extra == (sp.sympify(
        parse(symlstm.derive("lstm"), "Outer(x[t], δfbar[t])")),)


@pytest.mark.parametrize("claim, message", [
    ("δh[t]*tanh(q[t])", "has no vector 'q'"),
    ("δh[t]*tanh(c)", "uses 'c', which is neither a parameter"),
    ("δh[t] * (", "not a formula SymPy can read"),
    ("", "non-empty formula"),
])
def test_unreadable_claims_say_why(claim, message):
    with pytest.raises(ClaimError, match=message):
        check_claim(symlstm.derive("lstm"), "adj:o", claim)


def test_a_label_that_is_not_a_gradient():
    with pytest.raises(ClaimError, match="no gradient labelled 'fwd:o'"):
        check_claim(symlstm.derive("lstm"), "fwd:o", "o[t]")


def test_command_line_exit_codes(capsys):
    out = io.StringIO()
    assert cli.main(["check-claim", "lstm", "adj:o", "δh[t]*tanh(c[t])"], out=out) == 0
    assert cli.main(["check-claim", "lstm", "adj:o", "δh[t]*c[t]", "--latex"], out=out) == 1
    text = out.getvalue()
    assert "(adj:o) holds" in text and "does not hold" in text
    assert "% the derived form" in text
    assert cli.main(["check-claim", "lstm", "adj:o", "δh[t]*q[t]"], out=out) == 2
    assert "has no vector 'q'" in capsys.readouterr().err


def test_a_wrong_claim_with_a_part_of_a_concatenation():
    verdict = check_claim(symlstm.derive("lstm_concat"), "rec:h", "Part(δX[t+1], D, D + H)")
    assert not verdict.holds and [t.via for t in verdict.missing] == ["loss"]
    assert "D" not in verdict.counterexample["at"]


def test_a_function_the_checker_cannot_evaluate():
    with pytest.raises(ClaimError, match="cannot evaluate"):
        check_claim(symlstm.derive("lstm"), "adj:o", "δh[t]*sp_erf(c[t])".replace("sp_", ""))
