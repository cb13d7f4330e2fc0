"""The README's examples say what the code does."""
import re
from pathlib import Path

import symlstm

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_repl_example_output():
    shown = re.search(r">>> print\(d\[\"rec:c\"\]\)\n(.*)\n", README).group(1)
    assert shown == str(symlstm.derive("peephole_lstm")["rec:c"])


def test_user_cell_example_runs(tmp_path, monkeypatch):
    code = README.split("A\nminimal gated unit:\n\n```python\n")[1].split("```")[0]
    monkeypatch.chdir(tmp_path)
    exec(code, {})
    assert "def backward(" in (tmp_path / "mgu.py").read_text()
    assert r"\begin{document}" in (tmp_path / "mgu.tex").read_text()


def test_generated_code_example_runs():
    code = README.split("## The generated NumPy code\n\n```python\n")[1].split("```")[0]
    exec(code, {})
