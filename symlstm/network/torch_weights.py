"""Weights to and from PyTorch: ``torch.nn.LSTM`` is the cell ``lstm`` (``lstmp`` with
``proj_size=P``), ``torch.nn.GRU`` the cell ``gru``.  torch is optional; it is imported only
here, on first use.

torch keeps the gates of one layer stacked in its own order (LSTM: i, f, g, o, with g our
block input z; GRU: r, z, n) and two bias vectors per gate, one added to the input product
and one to the recurrent product.  Our cells add each pair up (b_z = b_ih[g] + b_hh[g]),
except the GRU's b_hn, which sits inside the reset gate's product r ⊙ (R_n h + b_hn) and
stays apart.  Converting to torch puts the sum in ``bias_ih`` and zeros in ``bias_hh`` (for
the GRU's n gate, b_hn in ``bias_hh``), so params → module → params gives back the same
numbers exactly.  With ``proj_size=P``, torch's ``weight_hh`` is H × P (our R_g) and its
``weight_hr`` is our W_hr (P × H).
"""
from __future__ import annotations

import numpy as np

#: torch's chunk order and, for each chunk, our names of its (W, R, b) and how b is formed.
ORDER = {"lstm": ("i", "f", "z", "o"), "lstmp": ("i", "f", "z", "o"), "gru": ("r", "z", "n")}


def _torch():
    try:
        import torch
    except ImportError:
        raise ImportError("symlstm.from_torch and to_torch need PyTorch, which symlstm "
                          "installs as its optional extra 'torch': pip install "
                          "'symlstm[torch]'") from None
    return torch


def _kind(module) -> str:
    torch = _torch()
    kind = "lstm" if isinstance(module, torch.nn.LSTM) else \
        "gru" if isinstance(module, torch.nn.GRU) else None
    if kind is None:
        raise TypeError(f"from_torch takes a torch.nn.LSTM or torch.nn.GRU, got "
                        f"{type(module).__name__}")
    if kind == "lstm" and module.proj_size:
        kind = "lstmp"
    refused = [what for what, bad in (
        (f"num_layers={module.num_layers} (one layer only)", module.num_layers != 1),
        ("bidirectional=True (one direction only)", module.bidirectional)) if bad]
    if refused:
        raise ValueError(f"from_torch converts a one-layer, one-direction {type(module).__name__}"
                         f" to the cell {kind!r}; this one has {', '.join(refused)}")
    return kind


def from_torch(module) -> dict[str, np.ndarray]:
    """The parameters of the cell ``lstm`` (``lstmp`` for an LSTM with ``proj_size``) or
    ``gru`` that compute what ``module`` computes (float64 or float32 arrays, as the module's
    weights)."""
    kind = _kind(module)
    H = module.hidden_size
    get = {name: p.detach().cpu().numpy() for name, p in module.named_parameters()}
    zeros = np.zeros(len(ORDER[kind]) * H, dtype=get["weight_ih_l0"].dtype)
    b_ih, b_hh = get.get("bias_ih_l0", zeros), get.get("bias_hh_l0", zeros)
    params = {}
    for k, g in enumerate(ORDER[kind]):
        rows = slice(k * H, (k + 1) * H)
        params[f"W_{g}"] = get["weight_ih_l0"][rows].copy()
        params[f"R_{g}"] = get["weight_hh_l0"][rows].copy()
        if kind == "gru" and g == "n":
            params["b_n"], params["b_hn"] = b_ih[rows].copy(), b_hh[rows].copy()
        else:
            params[f"b_{g}"] = b_ih[rows] + b_hh[rows]
    if kind == "lstmp":
        params["W_hr"] = get["weight_hr_l0"].copy()
    return _ordered(kind, params)


def _ordered(kind, params):
    from ..generated import gru, lstm, lstmp
    names = {"lstm": lstm.PARAMS, "lstmp": lstmp.PARAMS, "gru": gru.PARAMS}[kind]
    return {name: params[name] for name in names}


def to_torch(cell: str, params: dict[str, np.ndarray]):
    """A ``torch.nn.LSTM`` (cell ``"lstm"``; ``"lstmp"``, with ``proj_size``) or
    ``torch.nn.GRU`` (``"gru"``) holding ``params``, in their dtype; ``from_torch`` of it gives
    ``params`` back exactly."""
    torch = _torch()
    if cell not in ORDER:
        raise ValueError(f"to_torch converts the cells 'lstm', 'lstmp' and 'gru', not {cell!r}")
    expected = _names(cell)
    if not isinstance(params, dict) or set(params) != set(expected):
        raise KeyError(f"params of {cell!r} must have exactly the keys {expected}")
    W = params[f"W_{ORDER[cell][0]}"]
    H, D = np.shape(W)
    P = np.shape(params["W_hr"])[0] if cell == "lstmp" and np.ndim(params["W_hr"]) == 2 else H
    where = f"D={D}, H={H} from params['W_{ORDER[cell][0]}']" + \
        (f", P={P} from params['W_hr']" if cell == "lstmp" else "")
    for name in expected:
        want = {"W_hr": (P, H)}.get(name) or ((H, D) if name.startswith("W") else
                                               (H, P) if name.startswith("R") else (H,))
        if np.shape(params[name]) != want:
            raise ValueError(f"params[{name!r}] must have shape {want} ({where}), got "
                             f"{np.shape(params[name])}")
    dtype = {np.dtype(np.float64): torch.float64, np.dtype(np.float32): torch.float32}.get(
        np.asarray(W).dtype)
    if dtype is None:
        raise ValueError(f"params must be float32 or float64 arrays, got {np.asarray(W).dtype}")
    module = torch.nn.LSTM(D, H, dtype=dtype, proj_size=P if cell == "lstmp" else 0) \
        if cell != "gru" else torch.nn.GRU(D, H, dtype=dtype)
    stack = {
        "weight_ih_l0": np.concatenate([params[f"W_{g}"] for g in ORDER[cell]]),
        "weight_hh_l0": np.concatenate([params[f"R_{g}"] for g in ORDER[cell]]),
        "bias_ih_l0": np.concatenate([params[f"b_{g}"] for g in ORDER[cell]]),
        "bias_hh_l0": np.concatenate([params["b_hn"] if g == "n" else np.zeros(H, W.dtype)
                                      for g in ORDER[cell]]),
    }
    if cell == "lstmp":
        stack["weight_hr_l0"] = params["W_hr"]
    with torch.no_grad():
        for name, value in stack.items():
            getattr(module, name).copy_(torch.from_numpy(np.ascontiguousarray(value)))
    return module


def _names(cell):
    gates = ORDER[cell]
    return [*(f"W_{g}" for g in gates), *(f"R_{g}" for g in gates), *(f"b_{g}" for g in gates),
            *(["b_hn"] if cell == "gru" else []), *(["W_hr"] if cell == "lstmp" else [])]
