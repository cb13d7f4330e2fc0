"""The formulas of the hand-written texts, judged: the document's verdicts are check_claim's,
and the known slips are caught."""
import pytest

import symlstm
from symlstm.checks.seed_claims import CLAIMS
from symlstm.documents.document import mistakes_document


def _verdict(c):
    d = symlstm.derive_network(c.cell, c.head) if c.head else symlstm.derive(c.cell)
    return symlstm.check_claim(d, c.label, c.claim)


def test_every_formula_reads_and_is_judged():
    verdicts = [_verdict(c) for c in CLAIMS]
    assert len(CLAIMS) >= 40
    assert 0 < sum(v.holds for v in verdicts) < len(verdicts)
    for c, v in zip(CLAIMS, verdicts):
        assert v.holds or v.missing or v.extra, c


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
    holding = sum(_verdict(c).holds for c in CLAIMS)
    assert f"Of the {len(CLAIMS)} formulas below,\n{holding} hold." in tex
    assert tex.count("does not hold}") == len(CLAIMS) - holding
    assert "No formula of this text survived" in tex   # 000 and 002
