"""The benchmark rows of the cells with a matrix per head (benchmarks/matrix_cells.py) and the
GPU check (benchmarks/gpu_check.py): the torch loops compute the cells' recurrences, the rows
check gradients before timing and never time wrong ones, the cache table counts what the
module keeps, and gpu_check says so and exits 0 without a CUDA device."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import gpu_check  # noqa: E402
import matrix_cells  # noqa: E402
import targets  # noqa: E402
from contenders import TOLERANCE, max_rel_error  # noqa: E402

TINY = (3, 2, 2, 4)   # (T, B, NH, d); for s6 (T, B, H, N)


def once(steps, repeats, min_sample):
    """A stand-in for timing.py's round robin: one call each."""
    for step in steps.values():
        step()
    return {n: {"median_s": 1.0 + (n == "numba")} for n in steps}


@pytest.mark.parametrize("cell", ["mlstm", "gated_delta_net", "s6"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_torch_loops_match_the_numpy_modules(cell, dtype):
    numpy_module, _, _ = matrix_cells.load_modules(cell)
    prob = matrix_cells.matrix_problem(numpy_module, TINY, dtype)
    ref = matrix_cells.build_module(numpy_module, prob)[0]()
    step, to_grads = matrix_cells.MATRIX_CELLS[cell](prob)
    got = to_grads(step())
    assert set(got) == set(ref)
    assert max_rel_error(got, ref, dtype) <= TOLERANCE[dtype]


def test_a_row_checks_gradients_and_times_only_those_that_agree(monkeypatch):
    pytest.importorskip("numba")
    row = matrix_cells.run_matrix_case("mlstm", TINY, "float64", 1, 0.0, once)
    assert row["wrong"] == [] and set(row["times"]) == {"numba", "torch_loop"}
    assert row["ratios"]["numba/torch_loop"] == 2.0
    goal, = targets.cell_targets([row])
    assert goal["status"] == "miss" and "per time step" in goal["bound"]

    def wrong(P, x, s0, NH):
        return 1.01 * matrix_cells.mlstm_hs(P, x, s0, NH)
    monkeypatch.setitem(matrix_cells.MATRIX_CELLS, "mlstm", matrix_cells.build_torch_loop(wrong))
    row = matrix_cells.run_matrix_case("mlstm", TINY, "float64", 1, 0.0, once)
    assert row["wrong"] == ["torch_loop"] and "torch_loop" not in row["times"]
    assert row["ratios"]["numba/torch_loop"] is None


def test_the_cache_table_counts_every_array_the_module_keeps():
    pytest.importorskip("numba")
    _, numba_module, _ = matrix_cells.load_modules("gated_delta_net")
    T, B, NH, d = TINY
    prob = matrix_cells.matrix_problem(numba_module, TINY, "float64")
    table = matrix_cells.cache_table(numba_module, prob)
    rows = {r["name"]: r for r in table["rows"]}
    state = B * NH * d * d * 8
    assert rows["S_S"]["bytes_per_step"] == state * (T + 1) / T == table["states_per_step"]
    assert rows["input"]["bytes_per_step"] == B * NH * d * 8
    assert all(r["bytes_per_step"] == 0 for n, r in rows.items() if n.startswith("P_"))
    assert table["least_per_step"] == table["states_per_step"] + rows["input"]["bytes_per_step"]
    assert table["total_per_step"] == pytest.approx(
        table["least_per_step"] + table["values_per_step"])
    assert all(r["bytes_per_step"] <= state for n, r in rows.items() if n.startswith("C_"))


def test_the_s6_row_has_its_sizes_and_its_cache_counts_a_once_made_value():
    pytest.importorskip("numba")
    row = matrix_cells.run_matrix_case("s6", TINY, "float64", 1, 0.0, once)
    T, B, H, N = TINY
    assert row["shape"] == [T, B, H, H] and row["heads"] == [H, N] and row["wrong"] == []
    rows = {r["name"]: r for r in row["cache"]["rows"]}
    assert rows["S_h"]["bytes_per_step"] == B * H * N * 8 * (T + 1) / T
    assert rows["K_A"]["kind"] == matrix_cells.CACHE_KINDS["K_"]
    assert row["cache"]["total_per_step"] == pytest.approx(
        row["cache"]["least_per_step"] + row["cache"]["values_per_step"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="the path without a CUDA device")
def test_gpu_check_says_there_is_no_cuda_device_and_exits_0():
    out = subprocess.run([sys.executable, str(BENCHMARKS / "gpu_check.py")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("no CUDA device")


def test_gpu_check_runs_its_checks_on_the_cpu(capsys, monkeypatch):
    assert gpu_check.main(["--device", "cpu", "--tiny", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert all(f"{cell} " in out for cell in gpu_check.CELLS) and "WRONG" not in out

    def wrong(P, x, s0, NH):
        return gpu_check.lstm_hs(P, x, s0) + 1e-3 * x[..., :1]
    monkeypatch.setitem(gpu_check.CELLS, "lstm", (wrong, *gpu_check.CELLS["lstm"][1:]))
    assert gpu_check.main(["--device", "cpu", "--tiny", "--repeats", "1"]) == 1
    assert "exit 1: the module's gradients disagree" in capsys.readouterr().out


def test_the_matrix_problem_has_the_modules_layouts():
    numpy_module, _, _ = matrix_cells.load_modules("mlstm")
    prob = matrix_cells.matrix_problem(numpy_module, TINY, "float32")
    T, B, NH, d = TINY
    assert {s: v.shape for s, v in prob["state0"].items()} == \
        {"C": (B, NH, d, d), "n": (B, NH, d), "m": (B, NH)}
    assert prob["x"].shape == (T, B, NH * d) and prob["x"].dtype == np.float32
