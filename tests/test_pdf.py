"""Every document builds, reproducibly, to the committed PDF, and its text holds the derived δc_t."""
import shutil
import subprocess
import unicodedata

import pytest

import symlstm
from symlstm import build

pytestmark = pytest.mark.skipif(shutil.which("latexmk") is None or shutil.which("pdftotext") is None,
                                reason="TeX Live and poppler-utils are installed by the README's commands")


@pytest.mark.parametrize("name", list(symlstm.CELLS))
def test_pdf_builds_reproducibly_and_matches_the_committed_one(name, tmp_path):
    tex = build.GENERATED / "tex" / f"{name}.tex"
    first = build.pdf(tex, tmp_path / "a").read_bytes()
    second = build.pdf(tex, tmp_path / "b").read_bytes()
    assert first == second, "two builds of the same .tex differ"
    committed = build.GENERATED / "pdf" / f"{name}.pdf"
    assert committed.read_bytes() == first, "generated/pdf is stale: run `python -m symlstm.build`"
    text = subprocess.run(["pdftotext", str(tmp_path / "a" / f"{name}.pdf"), "-"],
                          capture_output=True, text=True, check=True).stdout
    flat = _squash(text)
    for g in symlstm.derive(name).all():
        assert f"({g.label})" in flat, f"{g.label} is not tagged in {name}.pdf"
    if name not in ("lstm", "peephole_lstm"):
        return
    # the cell-state recurrence δc_t = δh_t ⊙ o_t ⊙ (1 − tanh²c_t) + δc_{t+1} ⊙ f_{t+1} (+ peepholes)
    section = flat[flat.index("Throughtime"):]
    start = section.index("δct=δht⊙ot⊙1−tanh2(ct)")
    rec_c = section[start:start + 160]
    terms = ["+δct+1⊙ft+1"]
    if name == "peephole_lstm":
        terms += ["+δōt⊙po", "+δf¯t+1⊙pf", "+δīt+1⊙pi"]
    for term in map(_squash, terms):
        assert term in rec_c, f"{term} missing from δc_t in {name}.pdf: {rec_c}"


def _squash(text):
    """The text layer without spaces, line breaks and the control bytes of big delimiters."""
    text = unicodedata.normalize("NFC", text)
    return "".join(ch for ch in text if ch.isprintable() and not ch.isspace())


def test_latex_failure_reports_the_log_and_keeps_the_old_pdf(tmp_path):
    bad = tmp_path / "broken.tex"
    bad.write_text("\\documentclass{article}\\begin{document}$\\undefinedmacro$\\end{document}\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "broken.pdf").write_bytes(b"previous")
    with pytest.raises(build.LatexError, match="Undefined control sequence"):
        build.pdf(bad, out)
    assert (out / "broken.pdf").read_bytes() == b"previous"
