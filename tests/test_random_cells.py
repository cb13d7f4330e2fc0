"""The generator, proven on random cells drawn from the whole grammar (``cellgen.cells``).

Each drawn cell is derived, generated, imported and checked twice, against central
differences of the generated forward pass and against brute-force differentiation of
the unrolled loss (``symlstm.checks.bruteforce``, which never sees the derivation); its LaTeX
document must render.  CI runs a few hundred cells, the same ones every time
(``derandomize``); ``pytest -m slow`` runs thousands, from a fresh seed each run.  A failing slow run prints
``SYMLSTM_SEED=<seed>``, which replays it, and a ``@reproduce_failure`` line, which replays
the one cell; ``SYMLSTM_EXAMPLES=<n>`` sets how many cells a slow test draws.  Each cell a
run has found wrong becomes a test of its own in ``test_regressions.py``.
"""
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest


hypothesis = pytest.importorskip("hypothesis")
from cellgen import cells, note_replay, slow  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402

import symlstm  # noqa: E402
from symlstm.documents.document import latex_document  # noqa: E402


SIZES = dict(T=2, B=2, D=2, H=3)   # H = 4 for a cell with heads (below)


def check_cell(cell, seed=1):
    """Every gradient of the generated module against both references (``symlstm.verify``,
    with floating-point errors raised); the LaTeX renders."""
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        report = symlstm.verify(cell, seed=seed, central_rtol=1e-5, brute_force_rtol=1e-8,
                                raises=False,   # D = H where the input has size H
                                **{**SIZES, **({"H": 4} if "NH" in cell.sizes else {})})
    assert report.ok, f"{report}\n{describe(cell)}"
    d = symlstm.derive(cell)
    tex = latex_document(d)
    assert r"\end{document}" in tex
    return d, tex


def describe(cell) -> str:
    lines = [f"inputs {cell.inputs}, states {cell.states}, "
             f"params {[(p.name, p.shape) for p in cell.params]}"]
    lines += [f"  {eq.lhs} = {eq.rhs}" for eq in cell.equations]
    return "\n".join(lines)


@settings(max_examples=200, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(cells())
def test_random_cells_get_correct_code(cell):
    check_cell(cell)


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(cells(max_intermediates=8, max_depth=5))
def test_large_random_cells_get_correct_code(cell):
    check_cell(cell)


@pytest.mark.slow
@slow(3000)
@given(cells(max_intermediates=8, max_depth=5))
def test_thousands_of_random_cells(cell):
    note_replay("test_thousands_of_random_cells")
    check_cell(cell)


@pytest.mark.skipif(not shutil.which("latexmk"), reason="TeX Live is installed by the README's commands")
@settings(max_examples=3, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(cells())
def test_random_cell_documents_compile(tmp_path_factory, cell):
    from symlstm import build
    _, tex = check_cell(cell)
    folder = tmp_path_factory.mktemp("doc")
    (folder / "random_cell.tex").write_text(tex)
    built = build.pdf(folder / "random_cell.tex", folder / "pdf")
    assert built.pdf.stat().st_size > 1000


FAILING = """
from hypothesis import given, strategies as st
from cellgen import note_replay, slow

@slow(50)
@given(st.integers(0, 100))
def test_fails(n):
    note_replay("test_fails")
    assert n < 10
"""


def test_a_failing_slow_run_says_how_to_replay_it(tmp_path):
    """The slow runs' settings (``cellgen.slow``) on a test that fails: the report holds the
    seed that replays the run and the line that replays the failing example."""
    (tmp_path / "test_failing.py").write_text(FAILING)
    tests = pathlib.Path(__file__).parent
    env = {**os.environ, "SYMLSTM_SEED": "12345", "PYTHONPATH": str(tests)}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          str(tmp_path / "test_failing.py")], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stdout
    assert "replay the run: SYMLSTM_SEED=12345" in run.stdout, run.stdout[-3000:]
    assert "@reproduce_failure(" in run.stdout, run.stdout[-3000:]
