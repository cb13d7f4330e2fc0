"""The command line, ``symlstm`` / ``python -m symlstm``, and incremental builds."""
import io
import os
import shutil
import subprocess
import sys
import textwrap
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


def test_build_check_on_an_output_folder(tmp_path, capsys):
    assert run("build", "rnn", "--no-pdf", "--out", str(tmp_path))[0] == 0
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")
                  if p.is_file()) == ["numba/rnn.py", "rnn.py", "tex/fig/clipping.pdf",
                                      "tex/fig/gradient_norms.pdf", "tex/rnn.tex", "torch/rnn.py"]
    code, diffs = run("build", "rnn", "--no-pdf", "--check", "--out", str(tmp_path))
    assert code == 1 and diffs == f"{tmp_path}/pdf/rnn.pdf is missing or not a PDF\n"
    assert f"is stale: run `python -m symlstm.build --out {tmp_path}`" in capsys.readouterr().err
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
    monkeypatch.setattr(build, "pdf", fake_pdf)
    monkeypatch.setattr(build, "_tex_version", lambda: "pdfTeX test")
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
    shipped = target / "symlstm" / "generated"
    assert (shipped / "tex" / "fig" / "gradient_norms.pdf").is_file()
    assert (shipped / "tex" / "peephole_lstm.tex").is_file()
    assert (shipped / "pdf" / "overview.pdf").is_file()


def test_show_and_check_claim_with_a_head():
    code, text = run("show", "lstm", "--head", "classifier", "--label", "out:h")
    assert code == 0 and text.startswith("(out:h) Δh[t] = Vᵀ δyhat[t]")
    code, text = run("check-claim", "lstm", "adj:yhat", "yhat[t] - y[t]", "--head", "regression")
    assert code == 0 and "holds" in text
