"""The documents' structure, read from the .tex: every equation labelled once and every
reference defined, one picture of the step, prose before every block, shapes beside the
gradients."""
import re

import pytest

import symlstm
from symlstm.documents.document import latex_document
from symlstm.documents.latex import latex
from symlstm.documents.overview import overview_document
from symlstm.documents.tex import anchor, eqref


NAMES = list(symlstm.CELLS)


@pytest.fixture(scope="module", params=NAMES)
def document(request):
    d = symlstm.derive(request.param)
    return d, latex_document(d)


def test_every_equation_is_labelled_once_and_every_reference_is_defined(document):
    d, tex = document
    labels = re.findall(r"\\label\{([^}]*)\}", tex)
    assert len(labels) == len(set(labels)), "a label is defined twice"
    for g in d.all():
        assert anchor(g.label) in labels, f"{g.label} has no \\label"
    for ref in re.findall(r"\\(?:eq)?ref\{([^}]*)\}", tex):
        assert ref in labels, f"\\ref to {ref}, which is not defined"


def test_the_step_is_drawn_once_and_used_per_gradient(document):
    d, tex = document
    assert tex.count(r"\begin{tikzpicture}") == 1
    body = tex[tex.index(r"\begin{document}"):]
    uses = re.findall(r"\\stepgraph(\[[^\]]*\])?", body)
    assert len(uses) >= 2 and uses[0] == ""   # the figure, then highlighted copies
    assert all("sl-path" in u for u in uses[1:])


def test_every_section_opens_with_prose(document):
    _, tex = document
    for title, body in re.findall(r"\\section\*?\{([^}]*)\}(.*?)(?=\\section|\\end\{document\})",
                                  tex, re.S):
        before = re.split(r"\\begin\{(?:align|equation|figure|center)", body)[0]
        words = re.sub(r"\$[^$]*\$|\\[a-zA-Z]+|[{}~]", " ", before).split()
        assert len(words) >= 8, f"section {title!r} opens without a sentence: {before[:200]!r}"


def test_element_forms_sum_only_over_what_they_index(document):
    _, tex = document
    assert r"\sum_{b=1}" not in tex


def test_gradients_carry_their_shape(document):
    d, tex = document
    for p in d.cell.params:
        shape = r" \times ".join(dim.replace("*", "") if "+" not in dim else f"({dim})"
                                 for dim in p.shape)
        assert re.search(r"\\delta " + re.escape(symlstm.naming.latex_base(p.name)) +
                         r" &=.*&& \\shape\{" + re.escape(shape) + r"\}", tex), p.name


def test_no_sum_opens_with_a_minus_sign():
    tex = latex_document(symlstm.derive("lstm_cifg"))
    assert r"\left(z_{t} - c_{t-1}\right)" in tex and r"\left(- c_{t-1}" not in tex


def test_the_overview_compares_renamed_variables_as_the_same_paths():
    derivations = [symlstm.derive(n) for n in NAMES]
    tex = overview_document(derivations, 1.0)
    table = tex[tex.index(r"\begin{tabular}"):tex.index(r"\end{tabular}")]
    heads = re.findall(r"\\rotatebox\{90\}\{([^}]*)\}", table)
    renamed = ("abar", "Ctilde", r"\texttt{I}", r"\texttt{F}", r"\texttt{O}")
    assert not any(name in h for h in heads for name in renamed)
    rows = {line.split(" & ")[0]: line.split(" & ")[1:] for line in table.splitlines()
            if "char95" in line or line.startswith(r"\texttt")}
    for name in ("lstm_nobias", "lstm_rowmajor"):   # they rename; they add no path
        marks = rows[r"\texttt{" + name.replace("_", r"\char95{}") + "}"]
        assert "+" not in marks and "\\checkmark" in marks or "$\\sim$" in marks, (name, marks)


def test_the_overview_links_every_other_document():
    from symlstm import build
    others = [d for d in build.DOCUMENTS if d not in symlstm.CELLS and d != build.OVERVIEW]
    assert [name for name, _ in build.OTHERS] == others
    tex = overview_document([symlstm.derive(n) for n in NAMES], 1.0, build.OTHERS)
    for name in others:
        assert rf"\href{{run:{name}.pdf}}" in tex


def test_gradients_flow_back_under_a_title_that_holds_for_every_cell(document):
    _, tex = document
    assert r"\section{How gradients flow back through time}" in tex
    assert "Why gradients survive" not in tex


def test_the_lstm_document_states_the_forget_gate_path():
    tex = latex_document(symlstm.derive("lstm"))
    flow = tex[tex.index("How gradients flow back"):]
    assert (r"\frac{\partial c_{t}}{\partial c_{t-1}} &= \operatorname{diag}\left(f_{t}\right)"
            in flow)


def test_a_jacobian_past_max_paths_is_written_as_its_chain():
    """The chain names every equation on the way, each with its local Jacobians."""
    cell = _scaling().fan_out(12)
    tex = latex_document(symlstm.derive(cell))
    flow = tex[tex.index("How gradients flow back"):]
    for eq in cell.equations:
        assert rf"\frac{{\partial {latex(eq.lhs)}}}{{\partial h_{{t-1}}}} &=" \
            in flow, eq.label
        assert rf"\text{{by }} {eqref('fwd:' + eq.label)}" in flow


def _scaling():
    from test_jacobians import scaling
    return scaling()


@pytest.fixture(scope="module")
def big_documents():
    """The .tex of the fan-out chain at 10, 20 and 40 equations and of depth 4 and 8, with
    each stage's time."""
    import time

    from symlstm.backends.code import numpy_module
    s, out = _scaling(), {}
    for key, cell in [(("fan-out", n), s.fan_out(n)) for n in (10, 20, 40)] + \
            [(("depth", n), s.nested(n)) for n in (4, 8)]:
        times = [time.perf_counter()]
        d = symlstm.derive(cell)
        times.append(time.perf_counter())
        numpy_module(d)
        times.append(time.perf_counter())
        tex = latex_document(d)
        times.append(time.perf_counter())
        print(f"{key}: derive {times[1] - times[0]:.2f} s, NumPy module "
              f"{times[2] - times[1]:.2f} s, LaTeX {times[3] - times[2]:.2f} s, "
              f"{len(tex.encode()) / 1000:.0f} kB")
        out[key] = tex
    return out


def test_documents_grow_polynomially_with_the_cell(big_documents):
    """The paths through one step of the fan-out chain double every two equations (2^20 at
    40 equations); the document may grow with the equations, not with the paths."""
    size = {k: len(tex.encode()) for k, tex in big_documents.items()}
    assert size["fan-out", 40] < 400_000
    assert size["fan-out", 40] < 8 * size["fan-out", 20] < 64 * size["fan-out", 10]
    assert size["depth", 8] < 2_000_000


def test_every_line_of_a_big_document_is_broken(big_documents):
    """No line of an equation is much wider than a line of the page (the PDF test checks
    what TeX makes of it)."""
    from symlstm.documents.lines import LINE_WIDTH, latex_width
    for key, tex in big_documents.items():
        body = tex[tex.index(r"\begin{document}"):]
        for block in re.findall(r"\\begin\{align\*?\}(.*?)\\end\{align\*?\}", body, re.S):
            for line in block.split("\\\\\n"):
                math = re.sub(r"\\text\{[^}]*\}|\\tag\{[^}]*\}|\\label\{[^}]*\}|\\eqref\{[^}]*\}"
                              r"|\\shape\{[^}]*\}|\\notag", "", line)
                assert latex_width(math) < 2 * LINE_WIDTH, (key, line[:300])


def test_broken_lines_keep_every_character_and_pair_every_delimiter():
    """Lines of a broken equation put back together are the equation, with \\left( \\right)
    of each opened group spelled \\bigl( \\bigr); each line pairs its own \\left \\right."""
    from symlstm.documents import latex
    from symlstm.documents.lines import LINE_WIDTH, latex_lines, latex_width
    d = symlstm.derive(_scaling().nested(4))
    broke = 0
    for g in d.all():
        for t in g.terms:
            text = latex(t.expr)
            lines = latex_lines(text)
            broke += len(lines) > 1
            joined = "".join(lines).replace(r"\bigl", r"\left").replace(r"\bigr", r"\right")
            assert joined.replace(" ", "") == text.replace(" ", "")
            for line in lines:
                assert line.count(r"\left") == line.count(r"\right"), line
                assert latex_width(line) <= LINE_WIDTH + 10, line
    assert broke >= 5
