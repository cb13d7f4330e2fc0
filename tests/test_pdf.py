"""Every document builds, reproducibly, to the committed PDF; it is not blank, nothing sticks
out of the page, and its text layer holds the derived equations."""
import shutil
import subprocess
import unicodedata

import pytest

import symlstm
from symlstm import build


pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("latexmk", "pdftotext", "pdftoppm")),
    reason="TeX Live and poppler-utils are installed by the README's commands")

DOCUMENTS = build.DOCUMENTS


@pytest.fixture(scope="module", params=DOCUMENTS)
def built(request, tmp_path_factory):
    name = request.param
    tex = build.GENERATED / "tex" / f"{name}.tex"
    first = build.pdf(tex, tmp_path_factory.mktemp("a"))
    return name, first


@pytest.mark.parametrize("name", ["peephole_lstm", "overview"])
def test_two_builds_are_byte_identical(name, tmp_path):
    tex = build.GENERATED / "tex" / f"{name}.tex"
    first = build.pdf(tex, tmp_path / "a").pdf.read_bytes()
    assert build.pdf(tex, tmp_path / "b").pdf.read_bytes() == first


def test_pdf_is_committed(built):
    name, first = built
    committed = build.GENERATED / "pdf" / f"{name}.pdf"
    assert committed.read_bytes() == first.pdf.read_bytes(), \
        "generated/pdf is stale: run `python -m symlstm.build`"


def test_nothing_sticks_out_of_the_page(built):
    name, first = built
    assert first.overfull() == [], f"{name}.tex: {first.overfull()}"


def test_first_pages_are_not_blank(built, tmp_path):
    name, first = built
    subprocess.run(["pdftoppm", "-r", "30", "-gray", "-f", "1", "-l", "2", str(first.pdf),
                    str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page*.pgm"))
    assert len(pages) == 2
    for page in pages:
        pixels = _pgm(page.read_bytes())
        ink = sum(1 for p in pixels if p < 224) / len(pixels)
        assert ink > 0.01, f"{page.name} of {name}.pdf is blank ({ink:.4f} ink)"


def _pgm(data: bytes) -> bytes:
    """The pixels of a binary PGM (P5) image."""
    fields, pos = [], 0
    while len(fields) < 4:
        while data[pos:pos + 1].isspace():
            pos += 1
        end = pos
        while not data[end:end + 1].isspace():
            end += 1
        fields.append(data[pos:end])
        pos = end
    assert fields[0] == b"P5"
    return data[pos + 1:]


def test_text_layer_holds_the_equations(built):
    name, first = built
    text = subprocess.run(["pdftotext", str(first.pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    flat = _squash(text)
    if name == "overview":
        for cell in symlstm.CELLS:
            assert cell in flat
        assert "g←gmin1," in flat           # the clipping formula
        return
    if name == build.MISTAKES:
        assert "Diagnosis:signflipped" in flat and "missingthepathvia" in flat
        return
    if name == build.WORKED:
        assert "Stept=3" in flat and "Stept=1" in flat and "δc3=" in flat
        return
    derivation = symlstm.derive_network(*build.NETWORK_DOCUMENTS[name]) \
        if name in build.NETWORK_DOCUMENTS else symlstm.derive(name)
    for g in derivation.all():
        assert f"({g.label})" in flat, f"{g.label} is not tagged in {name}.pdf"
    if name not in ("lstm", "peephole_lstm"):
        return
    # the cell-state recurrence δc_t = δh_t ⊙ o_t ⊙ (1 − tanh²c_t) + δc_{t+1} ⊙ f_{t+1} (+ peepholes)
    section = flat[flat.index("Backwardpass"):]
    start = section.index(_squash("δct=δht⊙ot⊙1−tanh2(ct)"))
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


def test_a_user_cells_document_builds(tmp_path):
    """A cell symlstm does not ship gets a document that builds on its own."""
    from test_user_cells import mgu

    from symlstm.documents.document import latex_document
    tex = tmp_path / "mgu.tex"
    tex.write_text(latex_document(symlstm.derive(mgu())))
    built = build.pdf(tex, tmp_path / "out")
    assert built.overfull() == []
    assert "(rec:h)" in _squash(subprocess.run(["pdftotext", str(built.pdf), "-"],
                                               capture_output=True, text=True).stdout)


def _scaling():
    from test_jacobians import scaling
    return scaling()


def _big_cell_builds(cell, tmp_path):
    from symlstm.documents.document import latex_document
    tex = tmp_path / f"{cell.name}.tex"
    tex.write_text(latex_document(symlstm.derive(cell)))
    built = build.pdf(tex, tmp_path / "out")
    assert built.overfull() == [], f"{cell.name}: {built.overfull()}"
    text = _squash(subprocess.run(["pdftotext", str(built.pdf), "-"], capture_output=True,
                                  text=True, check=True).stdout)
    assert "Howgradientsflowbackthroughtime" in text and "(rec:h)" in text


@pytest.mark.parametrize("shape, size", [("nested", 4), ("fan_out", 10)])
def test_a_wide_cells_document_breaks_its_equations(shape, size, tmp_path):
    """Functions nested 4 deep make equations many pages wide; ten equations that each read
    the two before them make a graph wider than the page and 89 paths from h_{t-1} to h_t.
    Their PDFs keep within the margins."""
    _big_cell_builds(getattr(_scaling(), shape)(size), tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("shape, size", [("nested", 8), ("fan_out", 40), ("chain", 40)])
def test_the_scaling_targets_documents_build_within_the_margins(shape, size, tmp_path):
    _big_cell_builds(getattr(_scaling(), shape)(size), tmp_path)
