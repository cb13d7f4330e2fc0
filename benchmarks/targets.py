"""The targets: a limit on each ratio (and on the two side measurements), each checked as
pass, miss or skip, and for a miss of the Numba backend what bounds it."""
from __future__ import annotations

from contenders import SKIPPED

TARGETS = {                # limits on ratios (and on the two side measurements) checked by targets()
    ("lstm", "float64", "torch"): 1.0,
    ("lstm", "float32", "torch"): 1.2,
    ("lstm", "floor"): 1.25,             # only at FLOOR_SHAPE
    ("peephole", "torch"): 0.75,
    ("peephole", "jax"): 1.0,
    ("peephole", "torchgen"): 1.1,       # torch backend / torch autograd of the same cell
    ("numba lstm", "float32", "torch"): 1.0,
    ("numba lstm", "float64", "torch"): 0.85,
    ("numba lstm", "small", "torch"): 0.12,   # float32, at SMALL_SHAPE
    ("numba peephole", "torch"): 0.5,
    ("numba peephole", "large", "torch"): 0.75,   # at LARGE_SHAPES, instead of the above
    ("numba peephole", "jax"): 1.0,
    ("numba lstm", "floor"): 1.10,       # against the fastest BLAS's floor, only at FLOOR_SHAPE
    ("numba layernorm_lstm", "torch"): 0.5,   # against its torch loop, in the cell rows
    ("numba slstm", "torch"): 0.5,
    ("numba mlstm", "torch"): 0.5,            # the cells with a matrix per head
    ("numba gated_delta_net", "torch"): 0.5,
    ("numba s6", "torch"): 0.5,               # a matrix per channel
    "symbolic_s": 10.0,
    "import_ms": 50.0,
}
FLOOR_SHAPE = (100, 64, 256, 256)
SMALL_SHAPE = (20, 1, 32, 32)
LARGE_SHAPES = ((50, 32, 128, 128), (100, 64, 256, 256))
FLOORS = ("gemm_floor", "gemm_floor_torch", "gemm_floor_numba")   # NumPy's, torch's, Numba's BLAS


def fastest_floor(times) -> str | None:
    """The floor contender with the shortest median: the step's GEMMs on the fastest BLAS."""
    floors = [n for n in FLOORS if n in times]
    return min(floors, key=lambda n: times[n]["median_s"]) if floors else None


def numba_lstm_limit(c) -> float:
    if tuple(c["shape"]) == SMALL_SHAPE and c["dtype"] == "float32":
        return TARGETS[("numba lstm", "small", "torch")]
    return TARGETS[("numba lstm", c["dtype"], "torch")]


def numba_peephole_limit(c) -> float:
    large = tuple(c["shape"]) in LARGE_SHAPES
    return TARGETS[("numba peephole", "large", "torch") if large else ("numba peephole", "torch")]


def targets(cases, symbolic, imp):
    """[{what, value, limit, status, bound}] for every target the brief sets, status pass,
    miss or skip; bound says what limits a missed Numba target."""
    out = []
    for c in cases:
        label, r = f"{tuple(c['shape'])} {c['dtype']}", c["ratios"]
        out.append((f"lstm gen/torch {label}", r["gen_lstm/torch_lstm"],
                    TARGETS[("lstm", c["dtype"], "torch")], "torch_lstm", None))
        if tuple(c["shape"]) == FLOOR_SHAPE:
            out.append((f"lstm gen/GEMM floor {label}", r.get("gen_lstm/gemm_floor"),
                        TARGETS[("lstm", "floor")], "gemm_floor", None))
        out.append((f"peephole gen/torch loop {label}", r["gen_peephole/torch_loop"],
                    TARGETS[("peephole", "torch")], "torch_loop", None))
        out.append((f"peephole gen/jax scan {label}", r["gen_peephole/jax_scan"],
                    TARGETS[("peephole", "jax")], "jax_scan", None))
        out.append((f"peephole torch backend/torch loop {label}", r["torchgen_peephole/torch_loop"],
                    TARGETS[("peephole", "torchgen")], "torch_loop", None))
        out.append((f"lstm numba/torch {label}", r["numba_lstm/torch_lstm"],
                    numba_lstm_limit(c), "numba_lstm", bound(c, "numba_lstm", "torch_lstm")))
        if tuple(c["shape"]) == FLOOR_SHAPE:
            out.append((f"lstm numba/fastest GEMM floor {label}", r.get("numba_lstm/fastest_floor"),
                        TARGETS[("numba lstm", "floor")], "numba_lstm",
                        bound(c, "numba_lstm", None)))
        out.append((f"peephole numba/torch loop {label}", r["numba_peephole/torch_loop"],
                    numba_peephole_limit(c), "numba_peephole",
                    bound(c, "numba_peephole", "torch_loop")))
        out.append((f"peephole numba/jax scan {label}", r["numba_peephole/jax_scan"],
                    TARGETS[("numba peephole", "jax")],
                    "jax_scan" if "jax_scan" in SKIPPED else "numba_peephole",
                    bound(c, "numba_peephole", "jax_scan")))
    if symbolic:
        out.append(("symbolic cold start [s]", symbolic["process_wall_s"], TARGETS["symbolic_s"],
                    None, None))
    if imp:
        out.append(("import symlstm.generated.lstm [ms]", imp["import_ms"], TARGETS["import_ms"],
                    None, None))
    goals = []
    for what, value, limit, against, why in out:
        status = target_status(value, limit, against)
        goals.append({"what": what, "value": value, "limit": limit, "status": status,
                      "bound": why if status == "miss" else None})
    return goals


def target_status(value, limit, against):
    """skip only when the contender compared against did not run; a missing value (wrong
    gradients, not timed) is a miss."""
    if against in SKIPPED:
        return "skip"
    return "pass" if value is not None and value <= limit else "miss"


def bound(c, name, reference) -> str | None:
    """What bounds ``name``'s time in case ``c``: the share of its step that the GEMMs take on
    the fastest BLAS, and, against a reference, how the reference's whole step compares with
    those GEMMs alone."""
    times, fast = c["times"], fastest_floor(c["times"])
    if name not in times or fast is None:
        return None
    step, floor = times[name]["median_s"], times[fast]["median_s"]
    text = (f"the GEMMs alone ({fast}) take {floor / step:.0%} of the step; element-wise work "
            f"and per-call overhead the other {1 - floor / step:.0%}")
    passes = times.get(f"{name}_passes", {}).get("median_s")
    if passes:
        # two medians of separate samples: at large shapes the Python around the passes is
        # smaller than their spread, and the difference may come out negative
        around = f"{1e6 * (step - passes):.0f} us" if step > passes else \
            "less than the timings' spread"
        text += (f"; the two compiled passes alone ({name}_passes) take {passes / step:.0%}, "
                 f"the Python around them {around}")
    if reference in times:
        ref = times[reference]["median_s"]
        text += f"; {reference}'s whole step is {ref / floor:.2f}x those GEMMs"
        if passes:
            text += f", and the compiled passes alone are {passes / ref:.3f}x it"
        if ref < floor:
            text += " (it beats the fastest GEMM floor: out of reach by faster GEMMs alone)"
    return text


def cell_targets(cell_cases):
    """The cell rows' targets: Numba module / torch loop of the same cell, per case; skip
    when the cell is not shipped or a contender did not run."""
    goals = []
    for c in cell_cases:
        sizes = (*c["shape"][:2], *c["heads"]) if "heads" in c else tuple(c["shape"])
        what = f"{c['cell']} numba/torch loop {sizes} {c['dtype']}"
        limit = TARGETS[(f"numba {c['cell']}", "torch")]
        if c["skipped"] or "numba" in c["contenders_skipped"]:
            goals.append({"what": what, "value": None, "limit": limit, "status": "skip",
                          "bound": None})
            continue
        value = c["ratios"]["numba/torch_loop"]
        status = "pass" if value is not None and value <= limit else "miss"
        goals.append({"what": what, "value": value, "limit": limit, "status": status,
                      "bound": (matrix_bound(c) if "cache" in c else cell_bound(c, limit))
                      if status == "miss" else None})
    return goals


def matrix_bound(c) -> str | None:
    """What bounds the Numba module in a row of a cell with a matrix per head: its time per
    step against the torch loop's, and the bytes per step it writes to its cache and reads
    back (the state, one per step: the step's work is a few passes over that state)."""
    times, T = c["times"], c["shape"][0]
    if not {"numba", "torch_loop"} <= set(times) or not c.get("cache"):
        return None
    us = {n: 1e6 * times[n]["median_s"] / T for n in ("numba", "torch_loop")}
    return (f"{us['numba']:.1f} us per time step against the torch loop's {us['torch_loop']:.1f}; "
            f"each step caches {c['cache']['total_per_step'] / 1024:.0f} KiB, "
            f"{c['cache']['states_per_step'] / c['cache']['total_per_step']:.0%} of it the states, "
            "written forward and read back in the backward pass")


def cell_bound(c, limit) -> str | None:
    """What bounds the Numba module in a cell row: the share of its step that the LSTM's GEMMs
    at this shape take on the fastest BLAS (slstm's block-diagonal R needs 1/NH of the
    recurrent flops, so for it the share is an upper bound), the rest per time step, the
    torch loop's whole step over those GEMMs, and what the limit leaves beside them."""
    times, T = c["times"], c["shape"][0]
    fast = fastest_floor(times)
    if "numba" not in times or fast is None:
        return None
    step, floor = times["numba"]["median_s"], times[fast]["median_s"]
    text = (f"the LSTM's GEMMs at this shape ({fast}) take {floor / step:.0%} of the step; the "
            f"rest, {1e6 * (step - floor) / T:.1f} us per time step, is element-wise work, the "
            f"reductions and per-step calls")
    if "torch_loop" in times:
        loop = times["torch_loop"]["median_s"]
        budget = limit * loop - floor
        text += (f"; the torch loop's whole step is {loop / floor:.2f}x those GEMMs, "
                 f"{1e6 * loop / T:.1f} us per time step; {limit}x the torch loop leaves "
                 + (f"{1e6 * budget / T:.1f} us per time step beside the GEMMs" if budget > 0
                    else "less than the GEMMs alone: out of reach without a faster BLAS"))
    return text
