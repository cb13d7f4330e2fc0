"""The formulas of the hand-written texts, judged: the document's verdicts are check_claim's,
and the known slips are caught."""
import re
import warnings

import pytest

import symlstm
from symlstm.checks.diagnose import check_text_claim, diagnose
from symlstm.checks.seed_claims import CLAIMS, PROSE, TITLES
from symlstm.documents.mistakes import mistakes_document
from symlstm.printers.text import latex_text


def _verdict(c):
    return check_text_claim(_subject(c), c.label, c.claim)[0]


def test_every_formula_reads_and_is_judged_and_each_wrong_one_diagnosed():
    judged = [check_text_claim(_subject(c), c.label, c.claim) for c in CLAIMS]
    assert len(CLAIMS) >= 40
    assert 0 < sum(v.holds for v, _ in judged) < len(judged)
    for c, (v, found) in zip(CLAIMS, judged):
        assert v.holds is not bool(found), c


@pytest.mark.parametrize("where, label, holds", [
    ("input gate, gate gradient", "adj:i", False),      # 001 multiplies by n at step 2
    ("output gate, gate gradient", "adj:o", True),
    ("output layer, gradient of the prediction", "adj:yhat", False),   # the sign
])
def test_known_verdicts_of_text_001(where, label, holds):
    (c,) = [c for c in CLAIMS if c.seed == "001" and c.where == where and c.label == label]
    assert _verdict(c).holds is holds


def test_the_missing_square_of_text_003():
    (c,) = [c for c in CLAIMS if c.seed == "003" and c.label == "adj:abar"]
    v = _verdict(c)
    assert not v.holds and [str(t.expr) for t in v.missing] == ["δa[t]*(1 - a[t]**2)"]


def test_the_document_counts_what_check_claim_says():
    tex = mistakes_document(CLAIMS)
    verdicts = [check_text_claim(_subject(c), c.label, c.claim)[0] for c in CLAIMS]
    holding = sum(v.holds for v in verdicts)
    assert f"Of the {len(CLAIMS)} formulas below,\n{holding} hold." in tex
    wrong = {v.label for v in verdicts if not v.holds}
    assert tex.count(r"\textbf{Diagnosis:}") <= len(CLAIMS) - holding
    assert tex.count(r"\textbf{Diagnosis:}") >= len(wrong) // 2   # grouped, not dropped


def test_the_verdict_table_comes_first_and_names_the_texts_by_title():
    tex = mistakes_document(CLAIMS)
    table = tex.index("The verdicts")
    assert table < tex.index(r"\section{")
    for title in TITLES.values():
        assert latex_text(title) in tex[table:tex.index(r"\section{")]
        assert f"\\section{{{latex_text(title)}}}" in tex
    assert "Text 00" not in tex


def test_no_code_identifiers_in_the_document():
    tex = mistakes_document(CLAIMS)
    body = tex[tex.index(r"\begin{document}"):]
    for word in ("MatTVec", "MatVec", "Outer(", "obar", "ibar", "fbar", "nbar", "abar",
                 "ˆ", "[t-1]", "[t]", "δ", "TimeSum", "**"):
        assert word not in body, word
    assert not re.search(r"(?<!\\)(sigma|tanh)\(", body)


def _subject(c):
    return symlstm.derive_network(c.cell, c.head) if c.head else symlstm.derive(c.cell)


def _diagnosis(seed, label, claim):
    (c,) = [c for c in CLAIMS if (c.seed, c.label, c.claim) == (seed, label, claim)]
    v, found = check_text_claim(_subject(c), c.label, c.claim)
    assert not v.holds
    return found


@pytest.mark.parametrize("seed, label, claim, kind, wrong, right", [
    ("001", "adj:yhat", "y[t] - yhat[t]", "sign", None, None),
    ("001", "grad:b_o", "δo[t]*sigma(o[t])*(1 - sigma(o[t]))", "argument", "o[t]", "obar[t]"),
    ("001", "adj:i", "δc[t]*n[t-1]", "time", "n[t-1]", "n[t]"),
    ("001", "grad:b_i", "δc[t]*sigma(ibar[t])*(1 - sigma(ibar[t]))", "symbol", "δc[t]",
     "δi[t]"),
    ("001", "rec:c", "δc[t+1]*f[t+1]", "missing", None, None),
    ("003", "adj:abar", "δa[t]*(1 - tanh(abar[t]))", "function", None, None),
    ("003", "adj:fbar", "δf[t]*fbar[t]*(1 - fbar[t])", "argument", "fbar[t]", "f[t]"),
    ("003", "adj:o", "Δh[t]*tanh(c[t])", "symbol", "Δh[t]", "δh[t]"),
])
def test_each_wrong_formula_gets_its_diagnosis(seed, label, claim, kind, wrong, right):
    (f, *rest) = _diagnosis(seed, label, claim)
    assert f.kind == kind
    if wrong:
        assert (str(f.wrong), str(f.right)) == (wrong, right)


def test_two_mistakes_in_one_formula_are_both_named():
    kinds = {f.kind for f in _diagnosis("001", "grad:b_f", "δc[t]*(1 - tanh(fbar[t])**2)")}
    assert kinds == {"function", "symbol"}


def test_text_002s_forward_pass_holds_and_its_loss_is_diagnosed():
    entries = [c for c in CLAIMS if c.seed == "002"]
    assert {c.label for c in entries} >= {"fwd:I", "fwd:F", "fwd:O", "fwd:Ctilde", "fwd:c",
                                          "fwd:h", "fwd:ell"}
    for c in entries:
        v, found = check_text_claim(_subject(c), c.label, c.claim)
        assert v.holds is (c.label != "fwd:ell"), c
    with warnings.catch_warnings():
        warnings.simplefilter("error")       # the NaN of log(h ≤ 0) is the finding, not a warning
        kinds = {f.kind for f in _diagnosis("002", "fwd:ell", "-total(y[t]*log(h[t]))")}
    assert kinds == {"log", "sizes"}


def test_a_diagnosis_is_computed_for_any_claim():
    d = symlstm.derive("lstm")
    v = symlstm.check_claim(d, "adj:f", "-δc[t] ⊙ c[t-1]")
    assert [f.kind for f in diagnose(d, v)] == ["sign"]
    v = symlstm.check_claim(d, "adj:f", "δc[t] ⊙ c[t-2]")
    (f,) = diagnose(d, v)
    assert (f.kind, str(f.wrong), str(f.right)) == ("time", "c[t-2]", "c[t-1]")
    v = symlstm.check_claim(d, "adj:f", "δc[t] ⊙ c[t-1]")
    assert v.holds and diagnose(d, v) == ()


def test_the_prose_claims_are_listed_with_corrections():
    tex = mistakes_document(CLAIMS)
    assert len(PROSE) >= 4 and {p.seed for p in PROSE} >= {"000", "001", "002", "003"}
    for p in PROSE:
        assert latex_text(p.claim) in tex
    assert r"\tanh'(\pm 3) = 0.0099" in tex   # computed, not typed
