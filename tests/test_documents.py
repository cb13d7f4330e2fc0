"""The documents' structure, read from the .tex: every equation labelled once and every
reference defined, one picture of the step, prose before every block, shapes beside the
gradients."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import symlstm
from symlstm.documents import notation
from symlstm.documents.document import latex_document
from symlstm.documents.latex import latex
from symlstm.documents.layout import graph
from symlstm.documents.overview import overview_document
from symlstm.documents.tex import anchor, eqref, tex_label


NAMES = list(symlstm.CELLS)


@pytest.fixture(scope="module", params=NAMES)
def document(request):
    d = symlstm.derive(request.param)
    return d, latex_document(d)


def test_every_equation_is_labelled_once_and_every_reference_is_defined(document):
    d, tex = document
    labels = re.findall(r"\\(?:label|eqtag)\{([^}]*)\}", tex)
    assert len(labels) == len(set(labels)), "a label is defined twice"
    for g in d.all():
        assert anchor(g.label) in labels, f"{g.label} has no \\label"
    for ref in re.findall(r"\\(?:eq)?ref\{([^}]*)\}", tex):
        assert ref in labels, f"\\ref to {ref}, which is not defined"


def test_every_equation_is_printed_once(document):
    """Each equation is tagged once, in the summary; the derivation refers to it."""
    d, tex = document
    summary = tex[tex.index(r"\section{Summary}"):tex.index(r"\section{Forward pass}")]
    for g in d.all():
        tag = re.escape(tex_label(g.label))
        printed = re.findall(r"\\tag\{" + tag + r"\}|\\eqtag\{[^}]*\}\{" + tag + r"\}", tex)
        assert len(printed) == 1, f"{g.label} is printed {len(printed)} times"
        if g.kind != symlstm.naming.INITIAL:   # the initial states' end the recurrences
            assert re.search(r"\\(?:eq)?tag\{(?:[^}]*\}\{)?" + tag, summary), \
                f"{g.label} is not in the summary"


def test_the_step_is_drawn_once_and_every_picture_has_the_loss(document):
    d, tex = document
    assert tex.count(r"\begin{tikzpicture}") - tex.count(r"\begin{tikzpicture}[x=1cm") == 1
    body = tex[tex.index(r"\begin{document}"):]
    assert re.findall(r"\\stepgraph(\[[^\]]*\])?", body) == [""]   # the figure, no copies
    pictures = re.findall(r"\\begin\{tikzpicture\}(.*?)\\end\{tikzpicture\}", body, re.S)
    assert len(pictures) >= 2
    assert all("sl-loss" in picture for picture in pictures)
    assert "sl-loss" in tex[:tex.index(r"\begin{document}")].split(r"\newcommand{\stepgraph}")[1]


def test_each_term_of_a_gradient_is_one_red_edge_into_the_variable(document):
    """The picture counts what the text counts: as many red edges as terms, each ending
    at the framed variable."""
    d, tex = document
    paths = tex[tex.index(r"\section{Where each gradient"):tex.index(r"\section{Through time}")]
    for part in paths.split(r"\subsection*{")[1:]:
        picture = part[:part.index(r"\end{tikzpicture}")]
        terms = part[part.index(r"\begin{align*}"):part.index(r"\end{align*}")]
        red = re.findall(r"\\draw\[sl-path\] \((r\d+)\) -- \(v\);", picture)
        assert len(red) == terms.count(r"&\text{via") >= 1, part[:80]
        assert len(set(red)) == len(red)


def test_the_summary_defines_every_symbol_before_the_derivation(document):
    d, tex = document
    summary = tex[tex.index(r"\section{Summary}"):tex.index(r"\section{Forward pass}")]
    assert "$D$ is the size of the input" in summary and "$H$ the number of units" in summary
    uses_sigma = any(eq.rhs.atoms(symlstm.cell.ops.sigma) for eq in d.cell.equations)
    assert ("is the logistic function" in summary) == uses_sigma
    for word in (r"\carry{s_t}", r"\ext{h_t}", r"\adj{v} = \partial L", "Truncated",
                 "Clipping", "run:worked_example.pdf", r"\textbf{for} $t = T, \dots, 1$"):
        assert word in summary, word
    body = tex[tex.index(r"\section{Forward pass}"):]
    assert "L = \\langle q, h_T" not in body or "$q \\in \\R^H$ a fixed random vector" in body


def test_titles_open_quotes_and_the_notation_table_is_at_body_size():
    tex = latex_document(symlstm.derive("peephole_lstm"))
    about = tex[tex.index(r"\maketitle"):tex.index(r"\section{Summary}")]
    assert "``LSTM: A Search Space Odyssey''" in about and '"' not in about
    table = tex[tex.index(r"\section*{Notation}"):tex.index(r"\section{Forward pass}")]
    assert r"\resizebox" not in table and r"\begin{tabularx}{\linewidth}" in table
    assert not re.search(r"\\(?:small|footnotesize|scriptsize|tiny|large|Large)\b", table)


def test_the_pseudo_code_names_the_loops_of_the_generated_code():
    """The summary's loops compute what the NumPy module's loops compute, in its order."""
    from symlstm.backends.code import numpy_module
    d = symlstm.derive("peephole_lstm")
    code = numpy_module(d)
    forward = code[code.index("for t in range(T):"):code.index("for t in reversed(range(T)):")]
    backward = code[code.index("for t in reversed(range(T)):"):]
    assert "(fwd:zbar)" in forward and "(fwd:h)" in forward
    assert backward.index("(adj:h)") < backward.index("(adj:zbar)") < backward.index("(rec:h)")
    tex = latex_document(d)
    code_tex = tex[tex.index(r"\textbf{As code}"):tex.index(r"\emph{Truncated}")]
    assert code_tex.index(r"\textbf{for} $t = 1") < code_tex.index("eq:fwd:zbar") < \
        code_tex.index("eq:fwd:h") < code_tex.index(r"\textbf{for} $t = T") < \
        code_tex.index("eq:adj:h") < code_tex.index("eq:adj:zbar") < code_tex.index("eq:rec:h")


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
        shape = r" \times ".join(dim.replace("*", "").replace("NH", "N_h") if "+" not in dim
                                 else f"({dim})" for dim in p.shape)   # N_h: the heads
        assert re.search(r"\\delta " + re.escape(symlstm.naming.latex_base(p.name)) +
                         r" &?=[^&]*\\shape\{" + re.escape(shape) + r"\}", tex), p.name


def test_no_sum_opens_with_a_minus_sign():
    tex = latex_document(symlstm.derive("lstm_cifg"))
    assert r"\left(z_{t} - c_{t-1}\right)" in tex and r"\left(- c_{t-1}" not in tex


@pytest.fixture(scope="module")
def overview():
    return overview_document([symlstm.derive(n) for n in NAMES], 1.0)


def _table(tex):
    table = tex[tex.index(r"\begin{tabular}"):tex.index(r"\end{tabular}")]
    head = next(line for line in table.splitlines() if line.startswith("cell & "))
    heads = [h.strip()[len(r"\rotatebox{90}{"):-1] for h in head.rstrip(" \\").split(" & ")[1:]]
    rows = {line.split(" & ")[0]: line.rstrip(" \\").split(" & ")[1:] for line in table.splitlines()
            if line.startswith(r"\texttt")}
    return heads, rows


def _row(name):
    return r"\texttt{" + name.replace("_", r"\char95{}") + "}"


def test_the_overview_compares_terms_by_role_in_mathematical_notation(overview):
    heads, rows = _table(overview)
    renamed = ("abar", "Ctilde", "obar", "zbar", r"\texttt")
    assert not any(name in h for h in heads for name in renamed)
    assert all(re.fullmatch(r"\$\\delta [hc]_t\$ via \$[^$]+\$", h) for h in heads), heads
    marks = dict(zip(heads, rows[_row("lstm_niaf")]))   # z reads h_t: the same role as zbar
    assert marks[r"$\delta h_t$ via $\bar{z}_{t+1}$"] == r"$\sim$"
    assert "new" not in rows[_row("lstm_niaf")] and "new" not in rows[_row("lstm_nobias")]
    assert _row("gru") not in rows and _row("rnn") not in rows   # other states, other roles
    assert r"\scriptsize" not in overview and r"\tiny" not in overview


def test_the_overview_says_spelling_variants_are_the_same_cell(overview):
    _, rows = _table(overview)
    for name in ("lstm_concat", "lstm_rowmajor"):
        assert "spelled differently" in rows[_row(name)][0], rows[_row(name)]


def test_the_overview_shows_every_new_recurrence(overview):
    for label in ("rec:i", "rec:f", "rec:o"):   # lstm_fgr's gates read themselves at t-1
        assert rf"\tag{{\texttt{{{label}}}}}" in overview
    apart = overview[overview.index("not compared term by term"):]
    assert "GRU" in apart and r"\delta \bar{n}_{t+1}" in apart


def test_the_overview_words_exploding_gradients_and_clipping_exactly(overview):
    assert "only \\emph{allows} growth" in overview
    assert "above 1 it grows" not in overview
    clipping = overview[overview.index(r"\section{Gradient clipping}"):]
    assert r"\emph{at every time step}" in clipping and r"\emph{entry by entry}" in clipping
    assert r"\section{Truncated backpropagation through time}" in overview


def test_spelling_variants_compute_the_same_function():
    """SPELLED's claim, checked: the same weights, stacked or transposed, give the same
    states from the generated modules."""
    import importlib
    import numpy as np
    from symlstm.documents.overview import SPELLED
    assert set(SPELLED) == {"lstm_concat", "lstm_rowmajor"}
    lstm, concat, rowmajor = (importlib.import_module(f"generated.{n}")
                              for n in ("lstm", "lstm_concat", "lstm_rowmajor"))
    D, H, rng = 3, 4, np.random.default_rng(0)
    p = lstm.init_params(D, H, rng=rng)
    x = rng.standard_normal((5, 2, D))
    want = lstm.forward(p, x)[0]
    gates = {"f": "f", "i": "i", "n": "z", "o": "o"}
    stacked = {k: v for g, z in gates.items() for k, v in (
        (f"W_{g}", np.hstack([p[f"W_{z}"], p[f"R_{z}"]])), (f"b_{g}", p[f"b_{z}"]))}
    np.testing.assert_allclose(concat.forward(stacked, x)[0], want, rtol=1e-12, atol=1e-14)
    gates = {"i": "i", "f": "f", "o": "o", "c": "z"}
    rows = {k: v for g, z in gates.items() for k, v in (
        (f"W_x{g}", p[f"W_{z}"].T), (f"W_h{g}", p[f"R_{z}"].T), (f"b_{g}", p[f"b_{z}"]))}
    np.testing.assert_allclose(rowmajor.forward(rows, x)[0], want, rtol=1e-12, atol=1e-14)
    assert not np.allclose(concat.forward({**stacked, "b_f": stacked["b_f"] + 1}, x)[0], want)


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
    from symlstm.documents.latex import latex
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


def _rowmajor_classifier():
    n = symlstm.derive_network("lstm_rowmajor", "classifier")
    return latex_document(n.cell, n.head)


def test_the_row_major_documents_write_the_batch_as_x_w_plus_h_u_plus_b():
    tex = _rowmajor_classifier()
    batch = tex[tex.index(r"\section{The whole batch at once"):tex.index(r"\section{Where each gradient")]
    assert r"I_{t} &= \sigma\left(X_{t} W_{xi} + H_{t-1} W_{hi} + b_{i}\right) && \in \R^{B \times H}" \
        in batch
    assert r"\delta W_{xi} &= \sum_{t=1}^{T} X_{t}^{\top} \left(" in batch
    assert r"\delta W_{hi} &= \sum_{t=1}^{T} H_{t-1}^{\top} \left(" in batch
    assert r"\delta b_{i} &= \sum_{t=1}^{T} \mathbf{1}^{\top} \left(" in batch
    assert r"\in \R^{D \times H}" in batch and r"\in \R^{B \times K}" in batch
    # the gradient at the scores, found from the head's equations and named
    assert r"&= \operatorname{softmax}\left(\hat{Y}_{t}\right) - Y_{t}" in batch
    assert "W_{xi}^{\\top} x_{t}" not in batch        # no per-sample column in this section


@pytest.mark.parametrize("name", ["lstm", "gru", "lstm_concat", "lstm_nobias"])
def test_only_a_row_major_cell_gets_the_batch_section(name):
    assert "The whole batch at once" not in latex_document(symlstm.derive(name))


@pytest.mark.parametrize("name", [n for n in NAMES if notation.table(n) is not None])
def test_the_notation_table_lists_only_names_the_document_uses(name):
    cell = symlstm.CELLS[name]()
    header, rows = notation.document_table(cell)
    names = {p.name for p in cell.params} | {str(eq.lhs).split("[")[0] for eq in cell.equations}
    assert header[0] == "this document" and rows
    for row in rows:
        for entry in re.split(r", (?![^\[]*\])", row[0]):
            assert entry.split("[")[0].rstrip("ᵀ") in names, (name, row)


def test_a_cell_in_another_notation_gets_its_own_column_first():
    header, rows = notation.document_table(symlstm.CELLS["lstm_rowmajor"]())
    assert [r[0] for r in rows[:4]] == ["Ctilde", "W_xcᵀ", "W_hcᵀ", "b_c"]
    assert header[-1] == "the LSTM document" and rows[1][-1] == "W_z"
    assert "row-major X W + H W + b" not in header
    _, rows = notation.document_table(symlstm.CELLS["lstm_nobias"]())
    assert not any(r[0].startswith("b_") for r in rows)     # it has no biases


def test_the_clipping_figure_starts_on_a_cliff_wall():
    """The figure's claims hold for the numbers it plots: the loss falls by more than half
    within 0.1 of the start, whose gradient is over a hundred times the bound, so that the
    plain step leaves the plot and the clipped one does not."""
    import importlib
    from symlstm.documents import figures
    rnn = importlib.import_module("generated.rnn")
    loss, g = figures.cliff(rnn, figures.CLIFF_W)
    assert figures.cliff(rnn, figures.CLIFF_W - 0.05)[0] - figures.cliff(rnn, 1.7)[0] > 0.5
    assert abs(g) > 100 * figures.CLIP
    assert figures.CLIFF_W - figures.LEARNING_RATE * g > 3.0      # off the plotted range
    assert figures.cliff(rnn, figures.CLIFF_W + figures.LEARNING_RATE * figures.CLIP)[0] < loss


#: A step of more equations than this has a summary longer than two pages at body size
#: (layernorm_lstm's 32 equations and their gradients take four); its summary still comes first.
TWO_PAGES = 16
#: mLSTM's summary takes three: its notation for heads, outer products and numbers per head
#: and its figure of three states leave its boxes one page more.
PAGES = {"mlstm": 3}


@pytest.mark.skipif(not all(shutil.which(t) for t in ("latexmk", "pdftotext")),
                    reason="TeX Live and poppler-utils are installed by the README's commands")
@pytest.mark.parametrize("name", [n for n in NAMES
                                  if len(symlstm.CELLS[n]().equations) <= TWO_PAGES])
def test_the_summary_fits_the_first_two_pages(name, tmp_path):
    """Measured in the PDF: every equation the summary prints is tagged on pages 1-2 (its
    boxes do not break, so one missing tag means a box moved to page 3); 1-3 for ``PAGES``."""
    pages = PAGES.get(name, 2)
    d = symlstm.derive(name)
    (tmp_path / f"{name}.tex").write_text(latex_document(d))
    shutil.copytree(Path(symlstm.__file__).parent.parent / "generated" / "tex" / "fig",
                    tmp_path / "fig")
    subprocess.run(["latexmk", "-pdf", "-interaction=nonstopmode", f"{name}.tex"],
                   cwd=tmp_path, capture_output=True, check=True, timeout=600)
    text = subprocess.run(["pdftotext", "-l", str(pages), f"{name}.pdf", "-"], cwd=tmp_path,
                          capture_output=True, text=True, check=True).stdout
    flat = "".join(text.split())
    missing = [g.label for g in d.all()
               if g.kind != symlstm.naming.INITIAL and f"({g.label})" not in flat]
    assert not missing, f"{name}.pdf: {missing} not on pages 1-{pages}"


def test_a_row_major_looking_cell_with_a_product_in_a_sum_gets_its_document():
    """A sum of a parameter product and a constant beside matrix products (a random cell's)
    is read term by term, not taken for a name."""
    from symlstm.cell.ops import H, part
    b = symlstm.CellBuilder("mixed", "Mixed sums")
    x, s = b.input("x", "H"), b.state("s")
    v, V = b.param("v", "H"), b.param("V", "2*H", "H")
    b.let("h", x * v + b.constant("c", 0.001))
    xs = b.let("xs", symlstm.concat(x, s))
    b.let("s", symlstm.matvec(symlstm.transpose(V), xs) + part(xs, 0, H))
    assert r"\section{Summary}" in latex_document(symlstm.derive(b.build(output="h")))
