"""The README's examples say what the code does."""
import re
import sys
from pathlib import Path

import symlstm


README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_repl_example_output():
    shown = re.search(r">>> print\(d\[\"rec:c\"\]\)\n(.*)\n", README).group(1)
    assert shown == str(symlstm.derive("peephole_lstm")["rec:c"])


def _mgu(folder: Path) -> Path:
    """The README's mgu.py, saved in ``folder``."""
    path = folder / "mgu.py"
    path.write_text(README.split("minimal gated unit, saved as `mgu.py`:\n\n```python\n")[1]
                    .split("```")[0])
    return path


def test_user_cell_example_runs_from_the_command_line(tmp_path, monkeypatch):
    """The README's mgu.py, loaded by the commands the README gives, as written: loading it
    writes nothing, and `build` writes the three modules, the .tex and the PDF, each
    naming the command that regenerates it."""
    from symlstm import cli
    source = _mgu(tmp_path).read_text()
    monkeypatch.chdir(tmp_path)
    block = README.split("Loading the file only defines `mgu`")[1].split("```\n")[1]
    commands = [line.split("#")[0].split() for line in block.splitlines()
                if line.startswith("symlstm ")]
    assert [c[:2] for c in commands] == [["symlstm", "show"], ["symlstm", "verify"],
                                         ["symlstm", "build"]]
    for command in commands:
        assert cli.main(command[1:]) == 0, command
    assert (tmp_path / "mgu.py").read_text() == source
    out = tmp_path / "out"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                  if p.is_file() and not p.name.startswith(".")) == \
        ["mgu.py", "numba/mgu.py", "pdf/mgu.pdf", "tex/mgu.tex", "torch/mgu.py"]
    rebuild = README.split("Each file's header says the command that regenerates it: `")[1]
    rebuild = " ".join(rebuild.split("`")[0].split())
    assert rebuild == " ".join(commands[2])
    for module in ("mgu.py", "torch/mgu.py", "numba/mgu.py"):
        assert (out / module).read_text().split("\n")[1] == f"# Regenerate with `{rebuild}`."
    assert (out / "pdf" / "mgu.pdf").read_bytes()[:5] == b"%PDF-"
    monkeypatch.syspath_prepend(str(tmp_path))   # as in a REPL started in that folder
    scope = {}
    try:
        exec("from out import mgu as cell", scope)   # as the README says
    finally:
        sys.modules.pop("out.mgu", None), sys.modules.pop("out", None)
    assert scope["cell"].__file__ == str(out / "mgu.py") and "backward" in dir(scope["cell"])


def test_loading_the_user_cell_writes_nothing(tmp_path, monkeypatch):
    path = _mgu(tmp_path)
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(path.read_text(), scope)
    assert [p.name for p in tmp_path.iterdir()] == ["mgu.py"]
    assert symlstm.derive(scope["mgu"]())["rec:h"].terms


def test_the_cli_is_run_from_the_virtual_environment():
    """The commands above it install the CLI into .venv/bin, which is not on PATH."""
    text = README.split("## On the command line\n")[1].split("```")[0]
    assert "`.venv/bin/symlstm`" in text and "`. .venv/bin/activate`" in text


def test_the_apt_lines_install_no_recommends():
    lines = [line for line in README.splitlines() if line.startswith("apt-get update")]
    assert len(lines) == 2
    for line in lines:
        assert "apt-get install -y --no-install-recommends python3 python3-venv " in line


def test_generated_code_example_runs():
    code = README.split("## The generated NumPy code\n\n```python\n")[1].split("```")[0]
    exec(code, {})


def test_verify_example_output(tmp_path, monkeypatch):
    _mgu(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "mgu", raising=False)
    block = README.split("### Check it: `symlstm.verify`\n\n```python\n")[1].split("```")[0]
    namespace = {}
    for line in block.splitlines()[:3]:       # >>> import symlstm, from mgu import mgu, verify
        exec(line.removeprefix(">>> "), namespace)
    shown = README.split(">>> print(report)\n")[1].split("```")[0].rstrip("\n")
    # the errors are rounding, which may differ in the last digits between machines
    errors = re.compile(r"\d\.\de-\d\d")
    assert errors.sub("E", shown) == errors.sub("E", str(namespace["report"]))


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
    assert "--version" in commands
    commands.discard("--version")
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
