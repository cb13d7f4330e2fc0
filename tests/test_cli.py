"""The command line, ``symlstm`` / ``python -m symlstm``, and incremental builds."""
import io
import os
import shlex
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from symlstm import build, cli


ROOT = Path(__file__).resolve().parent.parent


def run(*argv):
    out = io.StringIO()
    return cli.main(list(argv), out=out), out.getvalue()


def test_list_names_every_cell_once():
    code, text = run("list")
    assert code == 0
    names = [line.split()[0] for line in text.splitlines()]
    import symlstm
    assert names == list(symlstm.CELLS)


def test_show_one_label_prints_the_equation_and_its_paths():
    code, text = run("show", "peephole_lstm", "--label", "rec:c")
    assert code == 0
    first, *paths = text.splitlines()
    assert first.startswith("(rec:c) δc[t] = ") and "δc[t+1] ⊙ f[t+1]" in first
    assert "    via fwd:c at step t+1: δc[t+1] ⊙ f[t+1]" in paths and len(paths) == 5


def test_show_latex():
    code, text = run("show", "lstm", "--label", "adj:o", "--latex")
    assert code == 0 and text == "% (adj:o)\n\\delta o_{t} = \\delta h_{t} \\odot \\tanh\\left(c_{t}\\right)\n"


def test_a_users_cell_from_a_file(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(textwrap.dedent("""
        from symlstm import CellBuilder, matvec, tanh
        def cell():
            b = CellBuilder("mine", "Mine")
            x, h = b.input("x"), b.state("h")
            b.let("h", tanh(matvec(b.param("W", "H", "D"), x) + matvec(b.param("R", "H", "H"), h)))
            return b
    """))
    code, text = run("show", f"{path}:cell", "--label", "adj:h")
    assert code == 0 and text.startswith("(adj:h) δh[t] = ")
    code, text = run("verify", f"{path}:cell")
    assert code == 0 and "all within" in text


@pytest.mark.parametrize("argv, message", [
    (("show", "lstmx"), "unknown cell 'lstmx'"),
    (("show", "lstm", "--label", "adj:q"), "no equation labelled 'adj:q'"),
    (("show", "nowhere.py:cell"), "nowhere.py: no such file"),
    (("build", "lstmx", "--no-pdf", "--out", "unused"), "unknown cell 'lstmx'"),
])
def test_bad_arguments_say_what_was_wrong(argv, message, capsys):
    code, _ = run(*argv)
    assert code == 2 and message in capsys.readouterr().err


MINE = textwrap.dedent("""
    from symlstm import CellBuilder, matvec, tanh
    def cell():
        b = CellBuilder("mine", "Mine")
        x, h = b.input("x"), b.state("h")
        b.let("h", tanh(matvec(b.param("W", "H", "D"), x) + matvec(b.param("R", "H", "H"), h)))
        return b
""")


def test_build_a_cell_of_your_own_into_a_folder(tmp_path, monkeypatch, capsys):
    """FILE.py:NAME builds every module and the .tex (no figures: its document has none);
    each file's header names the command that regenerates it, quoted for the shell, and
    that command rebuilds the very same files."""
    (tmp_path / "my cells").mkdir()
    (tmp_path / "my cells" / "mine.py").write_text(MINE)
    monkeypatch.chdir(tmp_path)
    code, _ = run("build", "./my cells/mine.py:cell", "--no-pdf", "--out", "o u t/")
    assert code == 0, capsys.readouterr().err
    out = tmp_path / "o u t"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == \
        ["mine.py", "numba/mine.py", "tex/mine.tex", "torch/mine.py"]
    command = "symlstm build 'my cells/mine.py:cell' --out 'o u t'"
    for rel, comment in (("mine.py", "#"), ("torch/mine.py", "#"), ("numba/mine.py", "#"),
                         ("tex/mine.tex", "%")):
        header = (out / rel).read_text().split("\n")[1]
        assert header == f"{comment} Regenerate with `{command}`."
    assert "def backward(" in (out / "mine.py").read_text()
    capsys.readouterr()
    program, *argv = shlex.split(command)
    assert program == "symlstm" and run(*argv, "--no-pdf")[0] == 0
    assert "every code, .tex and figure file is unchanged" in capsys.readouterr().err
    assert (tmp_path / "my cells" / "mine.py").read_text() == MINE


@pytest.mark.parametrize("argv, message", [
    (("build", "mine.py:cell", "--no-pdf"),
     "mine.py:cell is a cell of your own: give --out DIR"),
    (("build", "mine.py:cell", "mine.py:cell", "--no-pdf", "--out", "o"), None),
    (("build", "mine.py:cell", "other.py:cell", "--no-pdf", "--out", "o"),
     "two cells named 'mine'"),
    (("build", "mine.py:nothing", "--no-pdf", "--out", "o"), "mine.py defines no 'nothing'"),
    (("build", "bad.py:cell", "--no-pdf", "--out", "o"), "cell name 'Mine Cell'"),
    (("build", "two.py:cell", "--no-pdf", "--out", "o"),
     "input 'input' is an extra per-step input, which forward takes as a keyword argument"),
    (("build", "mine.py:cell", "--no-pdf", "--out", "a\nb"),
     "must be named by printable text, on one line"),
    (("build", "mine.py:cell", "--no-pdf", "--out", "a\u2028b"),
     "must be named by printable text, on one line"),
])
def test_building_cells_of_your_own_refuses_what_it_cannot_write(argv, message, tmp_path,
                                                                 monkeypatch, capsys):
    """A name or folder that would break out of the header's comment line is refused, as is
    a cell of your own without a folder, or two cells whose files would collide."""
    (tmp_path / "mine.py").write_text(MINE)
    (tmp_path / "other.py").write_text(MINE.replace('"W"', '"V"'))   # another cell "mine"
    (tmp_path / "bad.py").write_text(MINE.replace('"mine"', '"Mine Cell"'))
    (tmp_path / "two.py").write_text(MINE.replace('x, h = b.input("x"), b.state("h")',
                                                  'x, y, h = b.input("x"), b.input("input", "H"), '
                                                  'b.state("h")').replace("x) +", "x) + y +"))
    monkeypatch.chdir(tmp_path)
    code, _ = run(*argv)
    if message is None:    # the same cell twice is built once
        assert code == 0 and (tmp_path / "o" / "mine.py").is_file()
    else:
        assert code == 2 and message in capsys.readouterr().err
        assert not (tmp_path / "o").exists()


def test_version():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    shown = subprocess.run([sys.executable, "-m", "symlstm", "--version"], capture_output=True,
                           text=True, cwd=ROOT)
    import symlstm
    assert shown.stdout == f"symlstm {project['version']}\n" and shown.returncode == 0
    assert symlstm.__version__ == project["version"]


def test_build_check_on_an_output_folder(tmp_path, capsys):
    assert run("build", "rnn", "--no-pdf", "--out", str(tmp_path))[0] == 0
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")
                  if p.is_file()) == ["numba/rnn.py", "rnn.py", "tex/fig/clipping.pdf",
                                      "tex/fig/gradient_norms.pdf", "tex/rnn.tex", "torch/rnn.py"]
    code, diffs = run("build", "rnn", "--no-pdf", "--check", "--out", str(tmp_path))
    assert code == 1 and diffs == f"{tmp_path}/pdf/rnn.pdf is missing or not a PDF\n"
    assert f"is stale: run `symlstm build rnn --out {tmp_path}`" in capsys.readouterr().err
    assert (tmp_path / "rnn.py").read_text().split("\n")[1] == \
        f"# Regenerate with `symlstm build rnn --out {tmp_path}`."
    (tmp_path / "pdf").mkdir()
    (tmp_path / "pdf" / "rnn.pdf").write_bytes(b"%PDF-1.5 stand-in")
    assert run("build", "rnn", "--no-pdf", "--check", "--out", str(tmp_path))[0] == 0
    (tmp_path / "rnn.py").write_text("edited")
    code, diffs = run("build", "rnn", "--no-pdf", "--check", "--out", str(tmp_path))
    assert code == 1 and diffs.startswith(f"--- a/{tmp_path}/rnn.py") and "-edited" in diffs


def test_latex_runs_only_for_changed_inputs(tmp_path, monkeypatch):
    """The PDF stamps: a document is rebuilt when its .tex, a figure or its PDF changed."""
    built = []

    def fake_pdf(tex, out_dir):
        built.append(tex.stem)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / f"{tex.stem}.pdf").write_bytes(b"%PDF " + tex.read_bytes()[:20])
        return build.Built(out_dir / f"{tex.stem}.pdf", "")
    monkeypatch.setattr(build.latex, "pdf", fake_pdf)
    monkeypatch.setattr(build.latex, "_tex_version", lambda: "pdfTeX test")
    build.write(tmp_path, build.render(["rnn", "gru"]))
    build.pdfs(tmp_path, ["rnn", "gru"])
    assert sorted(built) == ["gru", "rnn"]
    built.clear()
    build.pdfs(tmp_path, ["rnn", "gru"])
    assert built == []                                   # nothing changed
    (tmp_path / "pdf" / "gru.pdf").unlink()
    (tmp_path / "tex" / "rnn.tex").write_text("changed")
    build.pdfs(tmp_path, ["rnn", "gru"])
    assert sorted(built) == ["gru", "rnn"]
    built.clear()
    (tmp_path / "tex" / "fig" / "clipping.pdf").write_bytes(b"new figure")
    build.pdfs(tmp_path, ["rnn"])
    assert built == ["rnn"]
    built.clear()
    build.pdfs(tmp_path, ["rnn"], force=True)
    assert built == ["rnn"]


def test_missing_tex_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda tool: None if tool == "pdflatex" else "/bin/true")
    (tmp_path / "a.tex").write_text("x")
    with pytest.raises(build.LatexError, match="pdflatex is not installed.*--no-pdf"):
        build.pdf(tmp_path / "a.tex", tmp_path)


@pytest.mark.skipif(not shutil.which("latexmk"), reason="TeX Live is installed by the README's commands")
def test_a_missing_latex_package_names_what_to_install(tmp_path):
    (tmp_path / "a.tex").write_text("\\documentclass{article}\\usepackage{nosuchpackage}"
                                    "\\begin{document}x\\end{document}\n")
    with pytest.raises(build.LatexError, match="lacks nosuchpackage.sty: install the Debian"):
        build.pdf(tmp_path / "a.tex", tmp_path)


@pytest.mark.skipif(not shutil.which("latexmk"), reason="TeX Live is installed by the README's commands")
def test_a_non_editable_install_builds_a_cell_and_runs_the_cli(tmp_path):
    """Installed from a wheel (no checkout, no generated/ beside it): `symlstm build --out`
    writes the module, the .tex with its figures and the PDF; the shipped .tex files and
    their figures are installed too."""
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--target", str(target), str(ROOT)], check=True, cwd=tmp_path)
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = tmp_path / "out"

    def symlstm(*argv):
        return subprocess.run([sys.executable, "-m", "symlstm", *argv], env=env, cwd=tmp_path,
                              capture_output=True, text=True)
    where = symlstm("list")
    assert where.returncode == 0 and where.stdout.startswith("lstm ")
    installed = subprocess.run([sys.executable, "-c", "import symlstm; print(symlstm.__file__)"],
                               env=env, cwd=tmp_path, capture_output=True, text=True).stdout
    assert installed.startswith(str(target))
    refused = symlstm("build", "--no-pdf")
    assert refused.returncode == 2 and "give --out DIR" in refused.stderr
    done = symlstm("build", "rnn", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "built pdf/rnn.pdf" in done.stderr
    assert (out / "pdf" / "rnn.pdf").read_bytes()[:5] == b"%PDF-"
    again = symlstm("build", "rnn", "--out", str(out))
    assert "pdf/rnn.pdf is up to date" in again.stderr
    assert symlstm("build", "rnn", "--check", "--out", str(out)).returncode == 0
    version = symlstm("--version")     # from the installed metadata: no pyproject.toml here
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert version.stdout == f"symlstm {project['version']}\n"
    (tmp_path / "mine.py").write_text(MINE)
    mine = symlstm("build", "mine.py:cell", "--out", "mine")
    assert mine.returncode == 0, mine.stderr
    assert sorted(p.relative_to(tmp_path / "mine").as_posix()
                  for p in (tmp_path / "mine").rglob("*") if p.is_file() and p.name[0] != ".") \
        == ["mine.py", "numba/mine.py", "pdf/mine.pdf", "tex/mine.tex", "torch/mine.py"]
    assert (tmp_path / "mine" / "pdf" / "mine.pdf").read_bytes()[:5] == b"%PDF-"
    assert "# Regenerate with `symlstm build mine.py:cell --out mine`." in \
        (tmp_path / "mine" / "torch" / "mine.py").read_text()
    shipped = target / "symlstm" / "generated"
    assert (shipped / "tex" / "fig" / "gradient_norms.pdf").is_file()
    assert (shipped / "tex" / "peephole_lstm.tex").is_file()
    assert (shipped / "pdf" / "overview.pdf").is_file()


def test_show_and_check_claim_with_a_head():
    code, text = run("show", "lstm", "--head", "classifier", "--label", "out:h")
    assert code == 0 and text.startswith("(out:h) Δh[t] = Vᵀ δyhat[t]")
    code, text = run("check-claim", "lstm", "adj:yhat", "yhat[t] - y[t]", "--head", "regression")
    assert code == 0 and "holds" in text
