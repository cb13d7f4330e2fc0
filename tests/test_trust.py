"""What a user supplies is data: names, titles, descriptions, labels and sizes can neither run
as code in a generated module nor read files through LaTeX."""
import ast
import shutil
import subprocess

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import symlstm
from symlstm import CellBuilder, CellError, Latex, matvec, tanh
from symlstm.backends.code import numpy_module
from symlstm.checks.verification import load_module
from symlstm.documents.document import latex_document
from symlstm.printers.text import latex_text, python_string


needs_tex = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("latexmk", "pdftotext")),
    reason="TeX Live and poppler-utils are installed by the README's commands")


def small_cell(name="mine", title="Mine", about="", label=None):
    b = CellBuilder(name, title, about)
    x, h = b.input("x"), b.state("h")
    W, R = b.param("W", "H", "D"), b.param("R", "H", "H")
    b.let("h", tanh(matvec(W, x) + matvec(R, h)), label=label)
    return b.build()


def test_a_title_cannot_end_the_docstring(tmp_path):
    marker = tmp_path / "ran"
    evil = f'Evil""" + str(open({str(marker)!r}, "w").write("x")) + r"""'
    mod = load_module(numpy_module(symlstm.derive(small_cell(title=evil))), "mine")
    assert not marker.exists()
    assert mod.__doc__.startswith(evil)


def test_a_description_cannot_end_the_docstring(tmp_path):
    marker = tmp_path / "ran"
    evil = f'"""\nimport os; os.system("touch {marker}")\nr"""\\'
    mod = load_module(numpy_module(symlstm.derive(small_cell(about=evil))), "mine")
    assert not marker.exists()
    assert "import os; os.system" in mod.__doc__ and mod.__doc__.count(chr(34) * 3) == 2


def test_titles_must_be_one_line():
    with pytest.raises(CellError, match="one line of printable text"):
        small_cell(title='Evil"""\nimport os; os.system("true")\nr"""')


@pytest.mark.parametrize("label", ["a\nimport os", "x\r", "", " padded", "\x00"])
def test_labels_are_one_printable_line(label):
    with pytest.raises(CellError, match="label"):
        small_cell(label=label)


def test_labels_are_escaped_in_latex():
    tex = latex_document(symlstm.derive(small_cell(label=r"h\input{/etc/passwd}$x_1")))
    assert r"\input{/etc/passwd}" not in tex
    assert r"h\textbackslash{}input\{/etc/passwd\}\$x\char95{}1" in tex


@pytest.mark.parametrize("size", ["__import__('os').system('true')", "D**2", "D*H", "(D+H)",
                                  "x", "D - H", "0", "", "H+", "2.5*H", "1e9999*H"])
def test_sizes_are_parsed_never_evaluated(size, monkeypatch):
    monkeypatch.setattr(sp, "sympify", lambda *a, **k: pytest.fail("sympify called"))
    b = CellBuilder("mine", "Mine")
    with pytest.raises(CellError, match="size"):
        b.param("W", "H", size)


@pytest.mark.parametrize("size, canonical", [("H", "H"), (" D ", "D"), ("H + D", "D + H"),
                                             ("2 * H", "2*H"), ("H*2 + 1", "2*H + 1"),
                                             ("D + H + D", "2*D + H")])
def test_sizes_have_one_spelling(size, canonical):
    b = CellBuilder("mine", "Mine")
    b.param("W", "H", size)
    assert b.params[0].shape == ("H", canonical)


@pytest.mark.parametrize("name", ["lambda", "class", "My", "_private", "with space", "é", "None"])
def test_cell_names_are_importable_identifiers(name):
    with pytest.raises(CellError, match="cell name"):
        CellBuilder(name, "Title")


@given(st.text(max_size=60))
@settings(max_examples=300, deadline=None, derandomize=True, database=None)
def test_any_text_round_trips_through_a_python_literal(text):
    assert ast.literal_eval(python_string(text)) == text


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
@settings(max_examples=300, deadline=None, derandomize=True, database=None)
def test_plain_text_never_reaches_latex_as_a_command(text):
    out = latex_text(text)
    # every backslash that remains starts one of the escapes latex_text writes itself
    allowed = ("\\textbackslash{}", "\\{", "\\}", "\\$", "\\&", "\\#", "\\%", "\\_",
               "\\textasciicircum{}", "\\textasciitilde{}", "\\dots{}", "\\textsc{", "$\\")
    rest = out
    for a in allowed:
        rest = rest.replace(a, "")
    assert "\\" not in rest.replace("$^{\\top}$", "").replace("\\times", "").replace(
        "\\odot", "").replace("\\cdot", "")


def _pdf_text(tmp_path, cell):
    from symlstm import build
    tex = tmp_path / f"{cell.name}.tex"
    tex.write_text(latex_document(symlstm.derive(cell)))
    try:
        built = build.pdf(tex, tmp_path / "out")
    except build.LatexError as e:
        return str(e)
    return subprocess.run(["pdftotext", str(built.pdf), "-"], capture_output=True, text=True,
                          check=True).stdout


READ = r"\newread\secretfile\openin\secretfile={path} \read\secretfile to\secretline SECRET[\secretline]"


@needs_tex
def test_a_plain_description_is_printed_not_run(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("swordfish\n")
    text = _pdf_text(tmp_path, small_cell(about=READ.format(path=secret)))
    assert "swordfish" not in text
    assert "openin" in text       # the description is there, as text


@needs_tex
def test_latex_descriptions_cannot_read_files_outside_their_folder(tmp_path):
    secret = tmp_path / "elsewhere" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("swordfish\n")
    for path in (str(secret), "../elsewhere/secret.txt"):
        text = _pdf_text(tmp_path, small_cell(about=Latex(READ.format(path=path))))
        assert "swordfish" not in text


@needs_tex
def test_latex_descriptions_cannot_run_programs_or_write_outside(tmp_path):
    marker = tmp_path / "written"
    about = Latex(rf"\immediate\write18{{touch {marker}}}"
                  rf"\newwrite\out\immediate\openout\out={marker}.tex \immediate\write\out{{x}}")
    _pdf_text(tmp_path, small_cell(about=about))
    assert not marker.exists() and not (tmp_path / "written.tex").exists()
