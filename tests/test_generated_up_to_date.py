"""generated/ must be what the current code and templates produce, byte for byte."""
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
    assert build.stale(tmp_path) == []
    path = tmp_path / "lstm.py"
    path.write_text(path.read_text().replace("dc_next", "dc_nxt", 1))
    [diff] = build.stale(tmp_path)
    assert "a/generated/lstm.py" in diff and "-" in diff
