"""generated/ must be what the current code and templates produce, byte for byte."""
import symlstm
from symlstm import build


def test_generated_files_are_current():
    diffs = build.stale()
    assert not diffs, ("generated/ is stale; refresh it with `python -m symlstm.build`:\n"
                       + "".join(diffs)[:20000])


def test_rendering_is_deterministic():
    assert build.sources() == build.sources()
    assert build.figure_files() == build.figure_files()


def test_stale_check_reports_an_edit(tmp_path):
    files = {**{k: v.encode() for k, v in build.sources().items()}, **build.figure_files()}
    for rel, data in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    assert build.stale(tmp_path, pdfs=False) == []
    path = tmp_path / "lstm.py"
    path.write_text(path.read_text().replace("dc_next", "dc_nxt", 1))
    [diff] = build.stale(tmp_path, pdfs=False)
    assert f"a/{tmp_path}/lstm.py" in diff and "dc_nxt" in diff


def test_stale_check_reports_a_missing_pdf_and_a_stray_file(tmp_path):
    files = {**{k: v.encode() for k, v in build.sources().items()}, **build.figure_files(),
             **{f"pdf/{name}.pdf": b"%PDF-1.5 stand-in" for name in build.DOCUMENTS}}
    for rel, data in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    assert build.stale(tmp_path) == []
    (tmp_path / "pdf" / "gru.pdf").unlink()
    (tmp_path / "pdf" / "rnn.pdf").write_bytes(b"torn")
    (tmp_path / "tex" / "old_cell.tex").write_text("stray")
    assert build.stale(tmp_path) == [
        f"{tmp_path}/pdf/gru.pdf is missing or not a PDF\n",
        f"{tmp_path}/pdf/rnn.pdf is missing or not a PDF\n",
        f"{tmp_path}/tex/old_cell.tex is not a generated file: remove it\n"]


def test_a_stale_figure_names_a_package_off_its_pin(tmp_path, monkeypatch):
    # the figures' bytes depend on matplotlib and fonttools, which symlstm pins: a figure
    # that differs because another version is installed says so
    files = build.figure_files()
    for rel, data in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    (tmp_path / "tex" / "fig" / "clipping.pdf").write_bytes(b"%PDF-1.4 older")
    assert build.stale(tmp_path, pdfs=False, files=files) == [
        f"{tmp_path}/tex/fig/clipping.pdf differs from a fresh rendering\n"]
    from symlstm.build import files as module
    real = module.metadata.version
    monkeypatch.setattr(module.metadata, "version",
                        lambda name: "4.0.0" if name == "fonttools" else real(name))
    assert build.stale(tmp_path, pdfs=False, files=files) == [
        f"{tmp_path}/tex/fig/clipping.pdf differs from a fresh rendering (fonttools 4.0.0 is "
        f"installed, symlstm pins {real('fonttools')}: reinstall symlstm)\n"]


def test_a_build_lowers_each_derivation_once(monkeypatch):
    # the NumPy, torch and Numba modules of a cell share one plan, and a plan is never
    # handed to another derivation
    from symlstm.lower import plan
    lowered, real = [], plan._lower
    monkeypatch.setattr(plan, "_lower", lambda d: lowered.append(d.cell.name) or real(d))
    build.sources(["lstm", "gru"])
    assert lowered == ["lstm", "gru"]
    assert plan.lower(symlstm.derive("rnn")).cell.name == "rnn"
