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


def test_check_claim_example():
    import doctest
    block = README.split("### Check a formula: `symlstm.check_claim`\n\n```python\n")[1]
    block = block.split("```")[0]
    test = doctest.DocTestParser().get_doctest(block, {"symlstm": symlstm}, "README", None, 0)
    runner = doctest.DocTestRunner()
    runner.run(test)
    assert runner.failures == 0 and runner.tries == 4


def test_command_line_block_names_real_commands():
    from symlstm import cli
    block = README.split("## On the command line")[1].split("```\n")[1]
    commands = {line.split()[1] for line in block.splitlines() if line.startswith("symlstm ")}
    subcommands = cli.parser()._subparsers._group_actions[0].choices
    assert commands <= set(subcommands) and {"list", "show", "build", "verify",
                                             "check-claim"} <= commands


def test_heads_example_runs():
    import numpy as np
    code = README.split("## Output heads, losses and training\n\n```python\n")[1].split("```")[0]
    exec(code, {"np": np})


def test_torch_backend_example_runs():
    code = README.split("### On PyTorch: `symlstm.generated.torch.<cell>`\n\n```python\n")[1]
    exec(code.split("```")[0], {})


def test_numba_backend_example_runs_and_is_a_drop_in_replacement():
    import numpy as np
    code = README.split("### Compiled: `symlstm.generated.numba.<cell>`\n\n```python\n")[1]
    scope = {}
    exec(code.split("```")[0], scope)
    from symlstm.generated import peephole_lstm as reference
    cell = scope["cell"]
    assert (cell.PARAMS, cell.SHAPES, cell.STATES) == (reference.PARAMS, reference.SHAPES,
                                                      reference.STATES)
    params = cell.init_params(input_size=8, hidden_size=16, rng=0)
    hs, state, cache = cell.forward(params, np.ones((5, 2, 8)))
    assert set(cell.backward(params, cache, np.ones_like(hs))) == set(
        reference.backward(params, reference.forward(params, np.ones((5, 2, 8)))[2],
                           np.ones_like(hs)))
