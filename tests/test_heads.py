"""Cells with output heads: the derived loss and gradients against torch autograd, and the
weights of torch.nn.LSTM and torch.nn.GRU to and from symlstm's cells."""
import numpy as np
import pytest

import symlstm
from symlstm.generated import gru, lstm, lstm_classifier, lstm_regression


torch = pytest.importorskip("torch", reason="torch is installed by the README's test command")

T, B, D, H, K = 5, 3, 4, 6, 7


def _problem(mod, classes, seed=0):
    rng = np.random.default_rng(seed)
    params = {k: 2 * v for k, v in mod.init_params(D, H, K, rng=rng).items()}
    x = rng.standard_normal((T, B, D))
    y = rng.integers(0, K, (T, B)) if classes else rng.standard_normal((T, B, K))
    state0 = {"h": 0.5 * rng.standard_normal((B, H)), "c": 0.5 * rng.standard_normal((B, H))}
    return params, x, y, state0


def _torch_loss(params, x, y, state0, classes):
    """The same network written in torch, differentiated by autograd."""
    t = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    cell = {k: v for k, v in params.items() if k in lstm.PARAMS}
    net = symlstm.to_torch("lstm", cell)
    xs = torch.tensor(x, requires_grad=True)
    h0 = torch.tensor(state0["h"][None], requires_grad=True)
    c0 = torch.tensor(state0["c"][None], requires_grad=True)
    hs, _ = net(xs, (h0, c0))
    yhat = hs @ t["V"].T + t["b_y"]
    if classes:
        loss = torch.nn.functional.cross_entropy(yhat.reshape(-1, K), torch.tensor(y).reshape(-1),
                                                 reduction="sum")
    else:
        loss = 0.5 * ((yhat - torch.tensor(y)) ** 2).sum()
    loss.backward()
    grads = {"V": t["V"].grad, "b_y": t["b_y"].grad, "x": xs.grad, "h0": h0.grad[0],
             "c0": c0.grad[0]}
    back = symlstm.from_torch(_grads_module(net))
    return loss.item(), {**{k: v.numpy() for k, v in grads.items()}, **back}


def _grads_module(net):
    """A module whose weights are net's gradients, for from_torch to read them the same way
    (the gradient of our b is that of either torch bias, not their sum: bias_hh is zeroed)."""
    twin = type(net)(net.input_size, net.hidden_size, dtype=torch.float64)
    with torch.no_grad():
        for (name, p), (_, q) in zip(twin.named_parameters(), net.named_parameters()):
            p.copy_(q.grad if name != "bias_hh_l0" else torch.zeros_like(q))
    return twin


@pytest.mark.parametrize("mod, classes", [(lstm_regression, False), (lstm_classifier, True)])
def test_heads_match_torch_autograd(mod, classes):
    params, x, y, state0 = _problem(mod, classes)
    loss, grads = mod.loss_and_grads(params, x, y, state0)
    want, reference = _torch_loss(params, x, y, state0, classes)
    assert abs(loss - want) <= 1e-10 * abs(want)
    assert set(grads) == set(mod.PARAMS) | {"x", "h0", "c0"}
    for k, ref in reference.items():
        scale = np.abs(ref).max()
        assert np.abs(grads[k] - ref).max() <= 1e-10 * scale, k


def test_losses_are_sums_over_steps_and_samples():
    params, x, y, state0 = _problem(lstm_regression, False)
    loss, _ = lstm_regression.loss_and_grads(params, x, y, state0)
    hs, _, _ = lstm.forward({k: params[k] for k in lstm.PARAMS}, x, state0)
    yhat = hs @ params["V"].T + params["b_y"]
    assert np.isclose(loss, 0.5 * ((yhat - y) ** 2).sum(), rtol=1e-14)
    params, x, y, state0 = _problem(lstm_classifier, True)
    loss, _ = lstm_classifier.loss_and_grads(params, x, y, state0)
    hs, _, _ = lstm.forward({k: params[k] for k in lstm.PARAMS}, x, state0)
    z = hs @ params["V"].T + params["b_y"]
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    assert np.isclose(loss, -np.take_along_axis(logp, y[..., None], -1).sum(), rtol=1e-13)


def test_the_softmax_gradient_is_derived_not_typed():
    n = symlstm.derive_network("lstm", "classifier")
    assert str(n["adj:yhat"].rhs) == "-y[t]*δell[t] + δm[t]*exp(-m[t] + yhat[t])"
    assert str(n["out:h"].rhs) == "MatTVec(V, δyhat[t])"


@pytest.mark.parametrize("bad, message", [
    (lambda y: y[:-1], "integer array of classes of shape"),
    (lambda y: y + K, "classes must lie in 0..6"),
    (lambda y: y.astype(float), "integer array of classes"),
])
def test_bad_targets_are_refused(bad, message):
    params, x, y, state0 = _problem(lstm_classifier, True)
    with pytest.raises(ValueError, match=message):
        lstm_classifier.loss_and_grads(params, x, bad(y), state0)


def test_a_head_may_not_reuse_a_cells_name():
    b = symlstm.CellBuilder("echo", "Echo")
    x, h = b.input("x"), b.state("h")
    yhat = b.let("yhat", symlstm.tanh(symlstm.matvec(b.param("W", "H", "D"), x)))
    b.let("h", yhat * h)
    with pytest.raises(symlstm.CellError, match="already names yhat"):
        symlstm.derive_network(b.build(), "regression")


@pytest.mark.parametrize("kind, cell", [("LSTM", lstm), ("GRU", gru)])
def test_torch_weights_round_trip(kind, cell):
    torch.manual_seed(0)
    net = getattr(torch.nn, kind)(D, H, dtype=torch.float64)
    params = symlstm.from_torch(net)
    assert list(params) == list(cell.PARAMS)
    again = symlstm.from_torch(symlstm.to_torch(kind.lower(), params))
    assert all(np.array_equal(again[k], params[k]) for k in params)   # exact
    x = torch.randn(T, B, D, dtype=torch.float64)
    want, _ = net(x)
    hs, _, _ = cell.forward(params, x.numpy())
    assert np.abs(hs - want.detach().numpy()).max() <= 1e-12
    rebuilt, _ = symlstm.to_torch(kind.lower(), params)(x)
    assert np.abs(rebuilt.detach().numpy() - want.detach().numpy()).max() <= 1e-12


@pytest.mark.parametrize("make, message", [
    (lambda: torch.nn.LSTM(D, H, num_layers=2), "num_layers=2"),
    (lambda: torch.nn.LSTM(D, H, bidirectional=True), "bidirectional=True"),
    (lambda: torch.nn.LSTM(D, H, proj_size=2, num_layers=2), "num_layers=2"),
    (lambda: torch.nn.RNN(D, H), "takes a torch.nn.LSTM or torch.nn.GRU, got RNN"),
])
def test_from_torch_refuses_what_it_cannot_convert(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        symlstm.from_torch(make())


def test_to_torch_checks_its_parameters():
    params = lstm.init_params(D, H, rng=0)
    with pytest.raises(ValueError, match="'lstm', 'lstmp' and 'gru'"):
        symlstm.to_torch("rnn", params)
    with pytest.raises(ValueError, match=r"params\['R_f'\] must have shape \(6, 6\)"):
        symlstm.to_torch("lstm", {**params, "R_f": params["R_f"][:2]})


from cellgen import cells, note_replay, slow  # noqa: E402
from hypothesis import given, settings  # noqa: E402

from conftest import split  # noqa: E402
from symlstm.backends.code import network_module, numpy_module  # noqa: E402
from symlstm.checks.verification import problem  # noqa: E402


def _network(cell, head, tmp_path):
    """The cell's module and its network module, written beside each other and imported."""
    import importlib.util
    import sys
    folder = tmp_path / f"{cell.name}_{head}"
    folder.mkdir()
    (folder / f"{cell.name}.py").write_text(numpy_module(symlstm.derive(cell)))
    (folder / "net.py").write_text(network_module(symlstm.derive_network(cell, head),
                                                  cell_import=cell.name))
    sys.path.insert(0, str(folder))
    try:
        sys.modules.pop(cell.name, None)
        spec = importlib.util.spec_from_file_location(f"net_{cell.name}_{head}", folder / "net.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod, sys.modules.pop(cell.name)
    finally:
        sys.path.remove(str(folder))


@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(cells())
def test_random_cells_with_either_head_get_correct_gradients(tmp_path_factory, cell):
    _check_network(tmp_path_factory, cell)


@pytest.mark.slow
@slow(400)
@given(cells(max_intermediates=8, max_depth=5))
def test_hundreds_of_random_networks(tmp_path_factory, cell):
    note_replay("test_hundreds_of_random_networks")
    _check_network(tmp_path_factory, cell)


def _check_network(tmp_path_factory, cell):
    """The network module's loss and gradients against a reference that shares no code with
    it: torch autograd of the head on the cell's outputs, carried through the cell by brute
    force (the unrolled cell differentiated at 50 digits, ``symlstm.checks.bruteforce``)."""
    from symlstm.checks.bruteforce import loss_gradients
    from symlstm.checks.verification import extra_sizes
    for head in ("regression", "classifier"):
        mod, cell_mod = _network(cell, head, tmp_path_factory.mktemp("net"))
        D = 3 if cell_mod.INPUT_SIZE == "H" else 2
        params, x, state0, _, _ = problem(cell_mod, T=3, B=2, D=D, H=3)
        rng = np.random.default_rng(3)
        params = {**params, "V": rng.standard_normal((2, 3)), "b_y": rng.standard_normal(2)}
        y = rng.integers(0, 2, (3, 2)) if head == "classifier" else rng.standard_normal((3, 2, 2))
        x0, extra = split(cell_mod, x)
        loss, grads = mod.loss_and_grads(params, x0, y, state0, **extra)

        cell_params = {k: params[k] for k in cell_mod.PARAMS}
        hs, _, _ = cell_mod.forward(cell_params, x0, state0, **extra)
        want, dhs, head_grads = _torch_head(hs, params["V"], params["b_y"], y, head)
        zeros = {s: np.zeros_like(v) for s, v in state0.items()}
        reference = {**head_grads, **loss_gradients(cell, cell_params, x, state0, dhs, zeros,
                                                        D, 3, **extra_sizes(cell_mod, 3))}
        assert abs(loss - want) <= 1e-10 * max(1.0, abs(want)), (head, loss, want)
        assert set(grads) == set(reference), (head, sorted(grads), sorted(reference))
        errors = {k: np.abs(grads[k] - ref).max() / max(1.0, np.abs(ref).max())
                  for k, ref in reference.items()}
        assert max(errors.values()) < 1e-8, (head, errors)


def _torch_head(hs, V, b_y, y, head):
    """The head's loss on the outputs hs, written in torch: the loss, dL/dhs, and dL/dV and
    dL/db_y, all by autograd."""
    t = {k: torch.tensor(v, requires_grad=True) for k, v in (("hs", hs), ("V", V), ("b_y", b_y))}
    yhat = t["hs"] @ t["V"].T + t["b_y"]
    if head == "classifier":
        loss = torch.nn.functional.cross_entropy(yhat.reshape(-1, yhat.shape[-1]),
                                                 torch.tensor(y).reshape(-1), reduction="sum")
    else:
        loss = 0.5 * ((yhat - torch.tensor(y)) ** 2).sum()
    loss.backward()
    return loss.item(), t["hs"].grad.numpy(), {"V": t["V"].grad.numpy(),
                                              "b_y": t["b_y"].grad.numpy()}
