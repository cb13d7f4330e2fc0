"""Outputs that are not states and extra per-step inputs: sru (its output h is not carried)
and lstm_zoneout (masks mc, mh as extra inputs), each backend against torch autograd of the
same equations written here independently, and the checks around both constructs."""
import importlib
import time

import numpy as np
import pytest

import symlstm
from symlstm import CellBuilder, CellError, matvec, sigma, tanh

from conftest import problem, split

torch = pytest.importorskip("torch", reason="torch is installed by the README's test command")


def sru_step(p, x, state):
    """Lei et al. (2018): only c is carried; h = r ⊙ c + (1 − r) ⊙ x is returned."""
    c = state["c"]
    f = torch.sigmoid(x @ p["W_f"].T + p["v_f"] * c + p["b_f"])
    r = torch.sigmoid(x @ p["W_r"].T + p["v_r"] * c + p["b_r"])
    c = f * c + (1 - f) * (x @ p["W"].T)
    return r * c + (1 - r) * x, {"c": c}


def zoneout_step(p, x, state, mc, mh):
    """torch.nn.LSTM's cell, each unit keeping its old value where its mask is 1."""
    h, c = state["h"], state["c"]

    def pre(g):
        return x @ p[f"W_{g}"].T + h @ p[f"R_{g}"].T + p[f"b_{g}"]
    z, i, f, o = torch.tanh(pre("z")), torch.sigmoid(pre("i")), torch.sigmoid(pre("f")), \
        torch.sigmoid(pre("o"))
    c_new = f * c + i * z
    h_new = o * torch.tanh(c_new)
    c = mc * c + (1 - mc) * c_new
    h = mh * h + (1 - mh) * h_new
    return h, {"h": h, "c": c}


STEPS = {"sru": sru_step, "lstm_zoneout": zoneout_step}


def autograd(name, params, x, state0, dhs, dstate):
    """hs, final states and every gradient by torch autograd of ``STEPS[name]``."""
    mod = importlib.import_module(f"symlstm.generated.{name}")
    x, extra = split(mod, x)
    leaf = {k: torch.tensor(v, requires_grad=True)
            for k, v in {**params, "x": x, **extra, **{f"{s}0": v for s, v in state0.items()}
                         }.items()}
    state, hs = {s: leaf[f"{s}0"] for s in state0}, []
    for t in range(x.shape[0]):
        out, state = STEPS[name]({k: leaf[k] for k in params}, leaf["x"][t], state,
                                 *(leaf[n][t] for n in extra))
        hs.append(out)
    hs = torch.stack(hs)
    loss = (hs * torch.tensor(dhs)).sum() + sum((state[s] * torch.tensor(dstate[s])).sum()
                                                for s in state)
    loss.backward()
    return hs.detach().numpy(), {s: v.detach().numpy() for s, v in state.items()}, \
        {k: v.grad.numpy() for k, v in leaf.items()}


def run_backend(name, backend, params, x, state0, dhs, dstate):
    """hs, final states and gradients from the generated module of one backend."""
    mod = importlib.import_module(f"symlstm.generated.{name}")
    x, extra = split(mod, x)
    if backend == "torch":
        tmod = importlib.import_module(f"symlstm.generated.torch.{name}")
        leaf = {k: torch.tensor(v, requires_grad=True)
                for k, v in {**params, "x": x, **extra,
                             **{f"{s}0": v for s, v in state0.items()}}.items()}
        hs, state = tmod.forward({k: leaf[k] for k in params}, leaf["x"],
                                 {s: leaf[f"{s}0"] for s in state0},
                                 **{n: leaf[n] for n in extra})
        loss = (hs * torch.tensor(dhs)).sum() + sum((state[s] * torch.tensor(dstate[s])).sum()
                                                    for s in state)
        loss.backward()
        return hs.detach().numpy(), {s: v.detach().numpy() for s, v in state.items()}, \
            {k: v.grad.numpy() for k, v in leaf.items()}
    if backend == "numba":
        pytest.importorskip("numba", reason="numba is installed by the README's test command")
        mod = importlib.import_module(f"symlstm.generated.numba.{name}")
    hs, state, cache = mod.forward(params, x, state0, **extra)
    return hs, state, mod.backward(params, cache, dhs, dstate)


@pytest.mark.parametrize("backend", ["numpy", "numba", "torch"])
@pytest.mark.parametrize("name", list(STEPS))
def test_every_backend_matches_autograd_of_the_equations(name, backend):
    mod = importlib.import_module(f"symlstm.generated.{name}")
    params, x, state0, dhs, dstate = problem(mod, T=5, B=3, D=3, H=4, seed=3)   # D = H for sru
    want_hs, want_state, want = autograd(name, params, x, state0, dhs, dstate)
    hs, state, got = run_backend(name, backend, params, x, state0, dhs, dstate)
    assert set(got) == set(want)
    for key, a, b in [("hs", hs, want_hs), *((s, state[s], want_state[s]) for s in want_state),
                      *((k, got[k], want[k]) for k in want)]:
        assert a.shape == b.shape, key
        assert np.abs(a - b).max() <= 1e-10 * max(1.0, np.abs(b).max()), key


@pytest.mark.parametrize("name", list(STEPS))
def test_verify_passes_within_30_seconds(name):
    start = time.perf_counter()
    assert symlstm.verify(name).ok
    assert time.perf_counter() - start <= 30


def test_the_output_of_sru_is_not_a_state():
    from symlstm.generated import sru
    assert sru.STATES == ("c",) and sru.OUTPUT == "h" and sru.OUTPUT_SIZE == "H"
    params, x, state0, dhs, dstate = problem(sru, T=3, B=2, D=3, H=3)
    hs, state, cache = sru.forward(params, x, state0)
    assert set(state) == {"c"} and hs.shape == (3, 2, 3)
    assert set(sru.backward(params, cache, dhs, dstate)) == {*sru.PARAMS, "x", "c0"}
    d = symlstm.derive("sru")
    assert [g.label for g in d.through_time] == ["rec:c"]
    assert "Δh[t]" in str(d["adj:h"].rhs)   # the loss's gradient enters through the output


def test_extra_inputs_are_keyword_arrays_checked_by_name():
    from symlstm.generated import lstm_zoneout as mod
    from symlstm.generated.torch import lstm_zoneout as tmod
    assert mod.EXTRA_INPUTS == {"mc": "H", "mh": "H"}
    params, x, state0, dhs, _ = problem(mod, T=3, B=2, D=4, H=3)
    x, extra = split(mod, x)
    with pytest.raises(TypeError, match="the extra input 'mc' is missing: pass it by keyword"):
        mod.forward(params, x, state0, mh=extra["mh"])
    with pytest.raises(ValueError, match=r"mh must be a real array of shape \(3, 2, 3\)"):
        mod.forward(params, x, state0, mc=extra["mc"], mh=extra["mh"][:, :, :2])
    with pytest.raises(TypeError, match="unexpected keyword"):
        mod.forward(params, x, state0, **extra, mz=extra["mc"])
    _, _, cache = mod.forward(params, x, state0, **extra)
    grads = mod.backward(params, cache, dhs)
    assert grads["mc"].shape == grads["mh"].shape == (3, 2, 3)
    tp = {k: torch.tensor(v) for k, v in params.items()}
    with pytest.raises(TypeError, match="the extra input 'mh' is missing"):
        tmod.forward(tp, torch.tensor(x), mc=torch.tensor(extra["mc"]))
    with pytest.raises(ValueError, match=r"mc must be a torch.float64 tensor of shape \(3, 2, 3\)"):
        tmod.forward(tp, torch.tensor(x), mc=torch.tensor(extra["mc"]).float(),
                     mh=torch.tensor(extra["mh"]))
    net = tmod.Cell(4, 3, dtype=torch.float64)
    hs, _ = net(torch.tensor(x), mc=torch.tensor(extra["mc"]), mh=torch.tensor(extra["mh"]))
    assert hs.shape == (3, 2, 3)


def _cell(output="h", extra=None):
    b = CellBuilder("c1", "Test cell")
    x, s = b.input("x"), b.state("s")
    m = b.input(*extra) if extra else 1
    W = b.param("W", "H", "D")
    s_t = b.let("s", tanh(matvec(W, x)) * s * m)
    b.let("h", sigma(s_t))
    return b.build(output=output)


def test_an_output_that_is_no_state_is_checked():
    cell = _cell()
    assert cell.output == "h" and not cell.output_is_state and cell.output_dim == "H"
    assert _cell(extra=("m", "H")).inputs == {"x": "D", "m": "H"}
    with pytest.raises(CellError, match="output 'x' is neither a state"):
        _cell(output="x")
    with pytest.raises(CellError, match="output 'y' is neither a state"):
        _cell(output="y")
    b = CellBuilder("c2", "Unread")
    x, s = b.input("x"), b.state("s")
    W = b.param("W", "H", "D")
    s_t = b.let("s", tanh(matvec(W, x)) * s)
    b.let("u", s_t * 2)
    b.let("h", sigma(s_t))
    with pytest.raises(CellError, match="u\\[t\\] is computed but nothing reads it .only the "
                       "states and the output"):
        b.build()


def test_extra_inputs_are_checked():
    with pytest.raises(CellError, match="input 'input' is an extra per-step input"):
        _cell(extra=("input", "H"))
    b = CellBuilder("c3", "H input")
    x, m, s = b.input("x", "H"), b.input("m", "D"), b.state("s")
    W = b.param("W", "H", "H")
    b.let("s", tanh(matvec(W, x)) * s * m)
    with pytest.raises(CellError, match="there is no input size D, but m has a size with D"):
        b.build()


def test_the_documents_say_what_is_carried_and_what_is_passed():
    from symlstm.documents.document import latex_document
    sru = latex_document(symlstm.derive("sru"))
    assert "the size of\n$c_t$." in sru and "The output $h_t$ is not a state" in sru
    zoneout = latex_document(symlstm.derive("lstm_zoneout"))
    assert r"extra per-step inputs $\mathit{mc}_t$, $\mathit{mh}_t$" in zoneout
    assert "is not a state" not in zoneout


def test_two_inputs_whose_products_share_a_sum_fold_its_bias_once():
    """A random cell: W3 on the input and on an extra input in one sum with the bias b2,
    which only one of the two input projections may take; the output h reads a parameter
    only, and is no state."""
    from sympy import Symbol
    from test_random_cells import check_cell
    b = CellBuilder("random_cell", "Random cell")
    first, extra, prev = b.input("logsigmoid"), b.input("cell"), b.state("self")
    n, b2, W3 = b.param("n", "H"), b.param("b2", "H"), b.param("W3", "H", "D")
    b.let("tanh", 2 * prev)
    b.let("h", n)
    b.let("self", b2 + Symbol("tanh[t]") + matvec(W3, extra) + matvec(W3, first))
    check_cell(b.build())
