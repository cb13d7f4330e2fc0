"""``symlstm.verify`` and its brute-force reference, on cells larger than the shipped ones and
at the edges of the floating-point range."""
import math

import mpmath
import numpy as np
import pytest
from literature_cells import LITERATURE

import symlstm
from symlstm import CellBuilder, matvec, sigma, tanh
from symlstm.checks.bruteforce import unroll
from symlstm.checks.verification import Report, Row


@pytest.mark.parametrize("name", sorted(LITERATURE))
def test_larger_literature_cells_verify(name):
    report = symlstm.verify(LITERATURE[name]())
    assert report.saturation >= 5 and not math.isnan(report.saturation)
    assert {r.key for r in report.rows} >= {"x", "forward", "h0"}


def _gate_cell():
    b = CellBuilder("gate", "One gate")
    x, h = b.input("x"), b.state("h")
    W = b.param("W", "H", "D")
    b.let("h", sigma(matvec(W, x) + h))   # h_0 = 0 below: h_1 = σ(W x_1)
    return b.build()


def test_brute_force_is_exact_where_float64_saturates():
    """σ(-700) is about 1e-304: the reference must get it, and its derivative, to many digits
    (the reference is what judges the generated code in saturation)."""
    W = np.array([[1.0], [-1.0]])
    x = np.array([[[700.0]]])
    ref = unroll(_gate_cell(), {"W": W}, x, {"h": np.zeros((1, 2))}, np.ones((1, 1, 2)),
                 {"h": np.zeros((1, 2))}, 1, 2)
    with mpmath.workdps(50):
        small = 1 / (1 + mpmath.exp(700))
        assert ref.outputs[0, 0, 1] == pytest.approx(float(small), rel=1e-15)
        # dσ(±700)/dW = σ(1 - σ) x = σ(700) σ(-700) 700 in both rows
        want = [float(small * (1 - small) * 700)] * 2
    np.testing.assert_allclose(ref.grads["W"][:, 0], want, rtol=1e-15)
    assert ref.grads["W"][1, 0] != 0


def test_saturated_instance_catches_an_inaccurate_sigmoid(monkeypatch):
    """A module whose σ keeps only absolute accuracy (½ + ½ tanh(a/2): zero below -38) passes
    at moderate parameters and fails at the saturated instance."""
    from symlstm.checks import verification

    def inaccurate(source, name):
        mod = load(source, name)
        for attr, value in vars(mod).items():
            if callable(value) and attr.lstrip("_") == "sigmoid":
                setattr(mod, attr, lambda a, out=None: np.add(0.5, 0.5 * np.tanh(0.5 * a),
                                                              out=out))
        return mod

    load = verification.load_module
    monkeypatch.setattr(verification, "load_module", inaccurate)
    report = symlstm.verify(_min_lstm(), raises=False)
    assert not report.ok
    assert all(r.brute_force <= 1e-12 for r in report.rows)
    assert any(r.saturated > 1e-9 for r in report.rows)


def _min_lstm():
    """minLSTM (Feng et al. 2024): h = f/(f+i) ⊙ h + i/(f+i) ⊙ h̃, which divides by gates."""
    b = CellBuilder("minlstm", "minLSTM")
    x, h = b.input("x"), b.state("h")
    W_f, b_f = b.param("W_f", "H", "D"), b.param("b_f", "H")
    W_i, b_i = b.param("W_i", "H", "D"), b.param("b_i", "H")
    W_h, b_h = b.param("W_h", "H", "D"), b.param("b_h", "H")
    f = b.let("f", sigma(matvec(W_f, x) + b_f))
    i = b.let("i", sigma(matvec(W_i, x) + b_i))
    n = b.let("n", matvec(W_h, x) + b_h)
    b.let("h", f / (f + i) * h + i / (f + i) * n)
    return b.build()


def test_min_lstm_verifies_in_saturation():
    report = symlstm.verify(_min_lstm())
    assert all(r.saturated <= 1e-9 for r in report.rows)


def test_report_marks_checks_that_do_not_apply():
    row = Row("forward", (3, 2, 3), math.nan, 1e-16, 2e-16)
    report = Report("c", {"T": 3}, (row,), 1e-6, 1e-9, 20.0)
    assert report.ok and " - " in str(report)
    bad = Report("c", {"T": 3}, (row._replace(saturated=math.inf),), 1e-6, 1e-9, 20.0)
    assert not bad.ok and "<-- wrong" in str(bad)


@pytest.mark.parametrize("depth, factor", [(1, 10.0), (2, math.nan)])
def test_the_saturated_instance_stays_inside_float64(depth, factor):
    """exp(W x) (and exp(exp(W x))) with parameters 20 times larger overflows float64: verify
    scales down until every exact value fits, or leaves the saturated check out where none
    does, rather than judge the code on a value nothing can represent."""
    b = CellBuilder("growth", "Exponential growth")
    x, h = b.input("x"), b.state("h")
    W = b.param("W", "H", "D")
    a = matvec(W, x) * (20 if depth == 1 else 1)
    for _ in range(depth):
        a = symlstm.exp(a)
    b.let("h", a + h)
    report = symlstm.verify(b.build(), raises=False)
    assert report.ok, report
    assert report.saturation == factor or (math.isnan(factor) and math.isnan(report.saturation))


def test_a_cell_that_overflows_at_moderate_parameters_is_refused_with_a_reason():
    b = CellBuilder("blowup", "Overflow")
    x, h = b.input("x"), b.state("h")
    W = b.param("W", "H", "D")
    b.let("h", symlstm.exp(symlstm.exp(matvec(W, x) * 60)) + h)
    with pytest.raises(ValueError, match="overflow float64"):
        symlstm.verify(b.build())


@pytest.mark.parametrize("build, size", [("fan_out", 40), ("chain", 40), ("nested", 8)])
def test_verify_grows_with_the_cell_not_with_its_paths(build, size):
    """A 40-equation chain in which each equation reads the two before it has more than 10⁸
    paths from h_{t-1} to h_t; brute force runs the operations once each, whatever the paths."""
    from test_jacobians import scaling
    report = symlstm.verify(getattr(scaling(), build)(size))
    assert report.ok


def test_brute_force_keeps_tiny_terms_beside_one():
    """softplus(-300) = log(1 + e^-300) ≈ e^-300: at 50 working digits 1 + e^-300 is 1 and the
    reference gave log(softplus(-300)) = log 0 (a random cell found it); at 400 it is -300."""
    b = CellBuilder("tiny", "Tiny terms")
    x, h = b.input("x"), b.state("h")
    W = b.param("W", "H", "D")
    b.let("h", symlstm.log(symlstm.softplus(matvec(W, x) + h)))
    ref = unroll(b.build(), {"W": np.array([[1.0]])}, np.array([[[-300.0]]]),
                 {"h": np.zeros((1, 1))}, np.ones((1, 1, 1)), {"h": np.zeros((1, 1))}, 1, 1)
    with mpmath.workdps(60):
        sp_ = mpmath.log1p(mpmath.exp(-300))
        want = mpmath.log(sp_)
        dwant = -300 / (sp_ * (1 + mpmath.exp(300)))    # d/dW: σ(a)/softplus(a) · x
    assert ref.outputs[0, 0, 0] == pytest.approx(float(want), rel=1e-15)
    assert ref.grads["W"][0, 0] == pytest.approx(float(dwant), rel=1e-12)
