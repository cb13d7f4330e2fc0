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


def test_verify_example_output(tmp_path, monkeypatch):
    code = README.split("A\nminimal gated unit:\n\n```python\n")[1].split("```")[0]
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(code, namespace)
    shown = README.split(">>> print(report)\n")[1].split("```")[0].rstrip("\n")
    # the errors are rounding, which may differ in the last digits between machines
    errors = re.compile(r"\d\.\de-\d\d")
    assert errors.sub("E", shown) == errors.sub("E", str(symlstm.verify(namespace["cell"])))
