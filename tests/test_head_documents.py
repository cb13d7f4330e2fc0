"""The derivation documents of cells with matrices per head (mLSTM, Gated DeltaNet): every
derived equation tagged once and every reference defined, the shapes of matrices and numbers
per head, the products written as a textbook writes them head by head, and the .tex builds."""
import re
import shutil
import subprocess

import headcellgen
import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings

import symlstm
from symlstm import build, naming
from symlstm.cell.ops import HS, HeadOuter, headsum, sqrt
from symlstm.cell.parts import HEAD_MATRIX
from symlstm.cell.shipped import get_cell
from symlstm.documents.document import latex_document
from symlstm.documents.latex import latex
from symlstm.documents.tex import anchor, tex_label

NAMES = ["mlstm", "gated_delta_net"]


@pytest.fixture(scope="module", params=NAMES)
def document(request):
    d = symlstm.derive(get_cell(request.param))
    return d, latex_document(d)


def _summary(tex):
    return tex[tex.index(r"\section{Summary}"):tex.index(r"\section{Forward pass}")]


def _tagged(tex, label):
    """The line of ``tex`` that tags the equation ``label``."""
    tag = re.escape(tex_label(label))
    found = [line for line in tex.splitlines()
             if re.search(r"\\(?:eq)?tag\{(?:[^}]*\}\{)?" + tag + r"\}", line)]
    assert len(found) == 1, f"{label} is tagged {len(found)} times"
    return found[0]


def _equation(tex, label):
    """The equation tagged ``label``, on one line: from its left side to its tag (in the
    summary's rows, several to a line between \\qquad; a long one continued on lines of
    its own)."""
    end = tex.index(_tagged(tex, label)) + len(_tagged(tex, label))
    lines = tex[:end].splitlines()
    k = len(lines) - 1
    while lines[k].startswith("&"):
        k -= 1
    flat = " ".join(lines[k:]).replace(r"\begin{aligned}[t] &", "").replace(r" \\ &\quad", "")
    return next(part for part in flat.split(r"\qquad") if tex_label(label) in part)


def test_every_derived_equation_is_tagged_once_in_the_summary(document):
    d, tex = document
    summary = _summary(tex)
    labels = re.findall(r"\\(?:label|eqtag)\{([^}]*)\}", tex)
    assert len(labels) == len(set(labels)), "a label is defined twice"
    for g in d.all():
        assert anchor(g.label) in labels, f"{g.label} has no \\label"
        _tagged(tex, g.label)
        if g.kind != naming.INITIAL:
            assert tex_label(g.label) in summary, f"{g.label} is not in the summary"
    for ref in re.findall(r"\\(?:eq)?ref\{([^}]*)\}", tex):
        assert ref in labels, f"\\ref to {ref}, which is not defined"


def test_matrices_and_numbers_per_head_have_their_shapes(document):
    d, tex = document
    shapes = _summary(tex).split("Shapes:")[1].split(r"\end{minipage}")[0]
    groups = {size: names for names, size in re.findall(r"\$([^$]*) \\in \\R\^\{([^$]*)\}\$",
                                                         shapes)}
    cell = d.cell
    matrices = [latex(s) for s in (*cell.prev_states, *cell.new_states)
                if cell.dim(s) == HEAD_MATRIX]
    numbers = [latex(g.lhs) for g in d.forward if cell.dim(g.lhs) == "NH"]
    assert matrices and numbers
    for name in matrices:
        assert name in groups[r"N_h \times H/N_h \times H/N_h"].split(", \\allowbreak "), name
    for name in numbers:
        assert name in groups["N_h"].split(", \\allowbreak "), name
    for p in cell.params:
        if p.shape == ("NH", "D"):
            shape = _equation(tex, f"grad:{p.name}")
            assert r"\shape{N_h \times D}" in shape, p.name
        elif p.shape == ("NH",):
            assert r"\shape{N_h}" in _equation(tex, f"grad:{p.name}"), p.name


def test_the_words_for_heads_come_before_the_equations(document):
    _, tex = document
    summary = _summary(tex)
    words = summary[:summary.index(r"\textbf{Forward pass.}")]
    assert "heads of $H/N_h$ entries each" in words
    assert r"one $H/N_h \times H/N_h$ matrix" in words and "one\nnumber per head" in words
    assert r"$\langle a, b \rangle$ sums $a \had b$ within each head" in words


def test_mlstm_is_written_as_a_textbook_writes_it():
    tex = latex_document(symlstm.derive(get_cell("mlstm")))
    expected = {
        "fwd:C": r"C_{t} = C_{t-1} \odot f_{t} + i_{t} \odot v_{t} k_{t}^{\top}",
        "fwd:htilde": r"\tilde{h}_{t} = \frac{C_{t} q_{t}}{d_{t}}",
        "fwd:k": r"k_{t} = \frac{W_{k} x_{t} + b_{k}}{\sqrt{H/N_h}}",
        "fwd:d": r"\left|\left\langle n_{t}, q_{t} \right\rangle\right|",
        "rec:C": r"\delta C_{t} = \left(\frac{\delta \tilde{h}_{t}}{d_{t}}\right) q_{t}^{\top} "
                 r"+ \delta C_{t+1} \odot f_{t+1}",
        "adj:f": r"\delta f_{t} = \left\langle \delta n_{t}, n_{t-1} \right\rangle + "
                 r"\left\langle \delta C_{t}, C_{t-1} \right\rangle",
        "adj:i": r"\delta i_{t} = \left\langle \delta n_{t}, k_{t} \right\rangle + "
                 r"v_{t}^{\top} \delta C_{t} k_{t}",
        "adj:v": r"\delta v_{t} = \left(\delta C_{t} \odot i_{t}\right) k_{t}",
        "adj:q": r"\delta q_{t} = C_{t}^{\top} \left(\frac{\delta \tilde{h}_{t}}{d_{t}}\right)",
    }
    for label, text in expected.items():
        assert text in _equation(tex, label), (label, _equation(tex, label))
    assert r"\mathbf{1}_{h}" not in tex   # every sum within a head has its textbook form


def test_gated_delta_net_is_written_as_a_textbook_writes_it():
    tex = latex_document(symlstm.derive(get_cell("gated_delta_net")))
    expected = {
        "fwd:S": r"\beta_{t} \odot v_{t} k_{t}^{\top}",
        "fwd:Sk": r"\mathit{Sk}_{t} = S_{t-1} k_{t}",
        "fwd:o": r"o_{t} = S_{t} q_{t}",
        "fwd:nk": r"\sqrt{\lVert \bar{k}_{t} \rVert^{2}}",
        "rec:S": r"\delta S_{t} = \delta o_{t} q_{t}^{\top} + \delta S_{t+1} \odot \alpha_{t+1} "
                 r"+ \delta \mathit{Sk}_{t+1} k_{t+1}^{\top}",
        "adj:q": r"\delta q_{t} = S_{t}^{\top} \delta o_{t}",
        "adj:alpha": r"\delta \alpha_{t} = \left\langle \delta S_{t}, ",
    }
    for label, text in expected.items():
        assert text in _equation(tex, label), (label, _equation(tex, label))


def test_sums_within_a_head_print_as_dot_products():
    v, k, n, q, dC = (sp.Symbol(f"{s}[t]") for s in ("v", "k", "n", "q", "δC"))
    assert latex(headsum(n * q)) == r"\left\langle n_{t}, q_{t} \right\rangle"
    assert latex(headsum(dC * HeadOuter(v, k))) == r"v_{t}^{\top} \delta C_{t} k_{t}"
    assert latex(-headsum(dC * HeadOuter(v, k))) == r"- v_{t}^{\top} \delta C_{t} k_{t}"
    assert latex(headsum(k ** 2)) == r"\lVert k_{t} \rVert^{2}"
    assert latex(headsum(k)) == r"\mathbf{1}_{h}^{\top}\!\left(k_{t}\right)"
    assert latex(sqrt(HS)) == r"\sqrt{H/N_h}"


def test_the_flow_section_sends_matrices_to_their_recurrences(document):
    d, tex = document
    flow = tex[tex.index(r"\section{How gradients flow"):tex.index(r"\appendix")]
    assert "map matrices to matrices" in " ".join(flow.split())
    assert r"\eqref{eq:rec:" in flow
    assert r"\operatorname{diag}\left(k_{t}\right)" not in flow   # no diag of a matrix map
    entries = tex[tex.index(r"\section{Entry by entry}"):]
    assert r"\delta x_{t,k}" in entries and "rec:" not in entries


def test_the_jacobians_of_matrices_are_written_as_changes():
    """dS_t = α_t (dS_{t-1} - β_t dSk_t k_tᵀ) with dSk_t = dS_{t-1} k_t: the map
    dS_{t-1} ↦ α_t dS_{t-1} (I - β_t k_t k_tᵀ) of the paper, equation by equation."""
    tex = latex_document(symlstm.derive(get_cell("gated_delta_net")))
    flow = tex[tex.index(r"\section{How gradients flow"):tex.index(r"\appendix")]
    assert r"\mathrm{d}\mathit{Sk}_{t} &= \mathrm{d}S_{t-1} k_{t}" in flow
    assert (r"\mathrm{d}S_{t} &= \alpha_{t} \odot \left(\mathrm{d}S_{t-1} - \beta_{t} \odot "
            r"\mathrm{d}\mathit{Sk}_{t} k_{t}^{\top}\right)") in flow
    tex = latex_document(symlstm.derive(get_cell("mlstm")))
    flow = tex[tex.index(r"\section{How gradients flow"):tex.index(r"\appendix")]
    assert r"\mathrm{d}C_{t} &= f_{t} \odot \mathrm{d}C_{t-1}" in flow
    assert r"\mathrm{d}\tilde{h}_{t} &= \frac{\mathrm{d}C_{t} q_{t}}{d_{t}}" in flow
    assert r"\left\langle q_{t}, \mathrm{d}n_{t} \right\rangle" in flow   # d_t reads n_tᵀ q_t


def test_a_change_is_the_derivative_along_it():
    """The differential of a cell's equation against central differences of that equation:
    its value at v + ε dv minus its value at v - ε dv, over 2ε."""
    from symlstm.checks.numeric import evaluate
    from symlstm.documents.differentials import Change, differential
    cell = get_cell("mlstm")
    rng = np.random.default_rng(0)
    sizes = {"D": 2, "H": 4, "NH": 2, "HS": 2}
    number = {"D": 2, "H": 4, "NH": 2, HEAD_MATRIX: (2, 2, 2)}

    def shape(s):
        dims = (cell.dim(s),) if naming.parse(s) is not None else cell.param(s.name).shape
        return sum((number[d] if isinstance(number[d], tuple) else (number[d],) for d in dims),
                   ())
    for eq in cell.equations:
        names = [s for s in eq.rhs.free_symbols if s.name not in ("HS", "eps")]
        vectors = [s for s in names if naming.parse(s) is not None]
        at = {s: rng.standard_normal(shape(s)) for s in names}
        at.update({s: v for s, v in ((sp.Symbol("eps"), 1e-6),) if s in eq.rhs.free_symbols})
        move = {s: rng.standard_normal(np.shape(v)) for s, v in at.items() if s in vectors}
        changes = {s: Change(s) for s in move}
        dy = differential(eq.rhs, changes)
        named = {Change(s): sp.Symbol(f"d_{s.name}") for s in move}
        value = evaluate(dy.xreplace(named), {**at, **{named[Change(s)]: v for s, v in
                                                      move.items()}}.__getitem__, sizes)
        eps = 1e-6
        plus = evaluate(eq.rhs, {**at, **{s: at[s] + eps * move[s] for s in move}}.__getitem__,
                        sizes)
        minus = evaluate(eq.rhs, {**at, **{s: at[s] - eps * move[s] for s in move}}.__getitem__,
                         sizes)
        assert np.allclose(value, (plus - minus) / (2 * eps), atol=1e-6), eq.label


@pytest.mark.skipif(not all(shutil.which(t) for t in ("latexmk", "pdftotext")),
                    reason="TeX Live and poppler-utils are installed by the README's commands")
@pytest.mark.parametrize("name", NAMES)
def test_the_document_builds_and_its_text_holds_every_equation(name, tmp_path):
    d = symlstm.derive(get_cell(name))
    tex = tmp_path / f"{name}.tex"
    tex.write_text(latex_document(d))
    shutil.copytree(build.GENERATED / "tex" / "fig", tmp_path / "fig")
    built = build.pdf(tex, tmp_path / "out")
    assert built.overfull() == [], built.overfull()
    text = subprocess.run(["pdftotext", str(built.pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    flat = "".join(text.split())
    for g in d.all():
        assert f"({g.label})" in flat, f"{g.label} is not tagged in {name}.pdf"
    assert "∈RNh×H/Nh×H/Nh" in flat   # C_t ∈ ℝ^{N_h × H/N_h × H/N_h}


@settings(max_examples=15, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(headcellgen.cells())
def test_every_random_cell_with_matrices_per_head_gets_its_document(cell):
    """The grammar's whole per-head part (outer products, Cq and Cᵀq, sums within a head,
    numbers per head) prints: every equation tagged once, the matrix state with its shape."""
    d = symlstm.derive(cell)
    tex = latex_document(d)
    for g in d.all():
        _tagged(tex, g.label)
    assert r"C_{t-1}" in _summary(tex).split("Shapes:")[1].split(r"\in \R^{N_h \times H/N_h")[0]
    assert r"\mathbf{1}_{h}^{\top}\!\left(\delta C" not in tex   # a matrix's sum is ⟨A, B⟩
