"""The benchmark rows of the newer cells (benchmarks/cells.py): the torch loops compute the
cells' equations, their gradients agree with the generated NumPy modules, wrong gradients are
never timed, and a cell that is not shipped gives a skipped row."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import cells  # noqa: E402
import targets  # noqa: E402
from contenders import TOLERANCE, max_rel_error  # noqa: E402

TINY = (5, 3, 8, 8)


def once(steps, repeats, min_sample):
    """A stand-in for timing.py's round robin (which needs threadpoolctl): one call each."""
    for step in steps.values():
        step()
    return {n: {"median_s": 1.0} for n in steps}


def layernorm_problem(dtype):
    module, why = cells.load("layernorm_lstm")
    assert module is not None, why
    return module, cells.cell_problem(module, TINY, dtype, {})


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_torch_layernorm_loop_matches_the_numpy_module(dtype):
    module, prob = layernorm_problem(dtype)
    ref = cells.build_module(module, prob)[0]()
    step, to_grads = cells.build_torch_layernorm(prob)
    assert max_rel_error(to_grads(step()), ref, dtype) <= TOLERANCE[dtype]


def slstm_params(rng, H=8, D=6, NH=cells.NUM_HEADS):
    HS = H // NH
    p = {}
    for g in "zifo":
        p[f"W_{g}"] = rng.uniform(-0.5, 0.5, (H, D))
        p[f"R_{g}"] = rng.uniform(-0.5, 0.5, (NH, HS, HS))
        p[f"b_{g}"] = rng.uniform(-0.5, 0.5, H)
    return p


def slstm_numpy(p, x, s0, NH=cells.NUM_HEADS):
    """The sLSTM's equations, one entry of one head at a time where R is involved."""
    def heads(R, h):                     # block-diagonal R applied head by head
        B, H = h.shape
        return np.einsum("kpl,bkl->bkp", R, h.reshape(B, NH, H // NH)).reshape(B, H)
    sig = lambda a: 1 / (1 + np.exp(-a))   # noqa: E731
    h, c, n, m = (s0[s] for s in "hcnm")
    hs = []
    for x_t in x:
        bar = {g: x_t @ p[f"W_{g}"].T + heads(p[f"R_{g}"], h) + p[f"b_{g}"] for g in "zifo"}
        logf = np.log(sig(bar["f"]))
        m_new = np.maximum(logf + m, bar["i"])
        i, f = np.exp(bar["i"] - m_new), np.exp(logf + m - m_new)
        c, n, m = f * c + i * np.tanh(bar["z"]), f * n + i, m_new
        h = sig(bar["o"]) * c / n
        hs.append(h)
    return np.stack(hs)


def test_torch_slstm_loop_computes_the_equations():
    rng = np.random.default_rng(3)
    T, B, D, H = 7, 3, 6, 8
    p = slstm_params(rng, H, D)
    x = rng.standard_normal((T, B, D))
    s0 = {s: rng.standard_normal((B, H)) for s in "hcnm"}
    s0["n"] = 1 + np.abs(s0["n"])
    fused = cells.slstm_fused({"params": p})
    got = cells.torch_slstm_hs({k: torch.from_numpy(v) for k, v in fused.items()},
                               torch.from_numpy(x), {k: torch.from_numpy(v) for k, v in s0.items()})
    np.testing.assert_allclose(got.numpy(), slstm_numpy(p, x, s0), rtol=1e-12, atol=1e-12)
    assert cells.slstm_unfuse(fused).keys() == p.keys()
    for k, v in cells.slstm_unfuse(fused).items():
        np.testing.assert_array_equal(v, p[k])


def test_xlstm_vanilla_slstm_agrees_with_the_torch_loop():
    pytest.importorskip("xlstm.blocks.slstm.src.vanilla")
    rng = np.random.default_rng(4)
    T, B, D, H = 6, 3, 6, 8
    s0 = {s: rng.standard_normal((B, H)) for s in "hcnm"}
    s0["n"], s0["m"] = 1 + np.abs(s0["n"]), np.zeros((B, H))
    prob = {"params": slstm_params(rng, H, D), "x": rng.standard_normal((T, B, D)),
            "state0": s0, "dhs": rng.standard_normal((T, B, H)), "shape": (T, B, D, H)}
    ref = (lambda s, g: g(s()))(*cells.build_torch_slstm(prob))
    got = (lambda s, g: g(s()))(*cells.build_xlstm_slstm(prob))
    assert max_rel_error(got, ref, "float64") <= 1e-12


@pytest.fixture
def without_numba(monkeypatch):
    """The rows without the Numba module, whose first call compiles for half a minute."""
    monkeypatch.setattr(cells, "NUMBA_MISSING", "left out by the test")


def test_a_row_checks_then_times(without_numba):
    c = cells.run_cell_case("layernorm_lstm", TINY, "float64", 1, 0.0, once)
    assert c["skipped"] is None and c["wrong"] == []
    assert c["max_rel_error"]["torch_loop"] <= TOLERANCE["float64"]
    assert {"torch_loop", "gemm_floor"} <= set(c["times"]) and "numba" not in c["times"]
    assert [g["status"] for g in targets.cell_targets([c])] == ["skip"]


def test_wrong_gradients_are_not_timed(without_numba, monkeypatch):
    def off_by_a_bit(prob):
        step, to_grads = cells.build_torch_layernorm(prob)
        return step, lambda raw: {k: v * 1.01 if k == "gamma_c" else v
                                  for k, v in to_grads(raw).items()}
    monkeypatch.setitem(cells.CELLS["layernorm_lstm"], "torch_loop", off_by_a_bit)
    c = cells.run_cell_case("layernorm_lstm", TINY, "float64", 1, 0.0, once)
    assert c["wrong"] == ["torch_loop"] and "torch_loop" not in c["times"]


def test_a_cell_not_shipped_gives_a_skipped_row(monkeypatch):
    monkeypatch.setitem(cells.CELLS, "no_such_cell", cells.CELLS["slstm"])
    monkeypatch.setitem(targets.TARGETS, ("numba no_such_cell", "torch"), 0.5)
    c = cells.run_cell_case("no_such_cell", TINY, "float64", 1, 0.0, once)
    assert c["skipped"].startswith("cell not shipped")
    assert [g["status"] for g in targets.cell_targets([c])] == ["skip"]


def test_a_missed_target_says_what_bounds_it():
    times = {n: {"median_s": s} for n, s in
             (("numba", 0.08), ("torch_loop", 0.1), ("gemm_floor", 0.02))}
    c = {"cell": "slstm", "shape": [256, 16, 128, 128], "dtype": "float32", "skipped": None,
         "contenders_skipped": {}, "times": times, "ratios": {"numba/torch_loop": 0.8}}
    (goal,) = targets.cell_targets([c])
    assert goal["status"] == "miss"
    assert "25% of the step" in goal["bound"] and "5.00x those GEMMs" in goal["bound"]
    assert "117.2 us per time step beside the GEMMs" in goal["bound"]   # (0.5 * 0.1 - 0.02) / 256


def test_a_limit_below_the_gemms_is_out_of_reach():
    times = {n: {"median_s": s} for n, s in
             (("numba", 0.08), ("torch_loop", 0.1), ("gemm_floor_torch", 0.06))}
    c = {"cell": "layernorm_lstm", "shape": [256, 16, 128, 128], "dtype": "float64",
         "skipped": None, "contenders_skipped": {}, "times": times,
         "ratios": {"numba/torch_loop": 0.8}}
    (goal,) = targets.cell_targets([c])
    assert "out of reach without a faster BLAS" in goal["bound"]


def test_the_report_prints_timed_and_skipped_rows(without_numba, capsys, monkeypatch):
    import report
    monkeypatch.setitem(cells.CELLS, "no_such_cell", cells.CELLS["slstm"])
    timed = cells.run_cell_case("layernorm_lstm", TINY, "float64", 1, 0.0, once)
    for t in timed["times"].values():
        t["spread"] = 0.0
    report.print_cells([timed, cells.run_cell_case("no_such_cell", TINY, "float64", 1, 0.0, once)])
    out = capsys.readouterr().out
    assert "numba skipped: left out by the test" in out
    assert "no_such_cell" in out and "skipped: cell not shipped" in out
