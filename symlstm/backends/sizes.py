"""The sizes as a generated module's code handles them, for every backend's templates."""
from __future__ import annotations

from ..cell.parts import (CHANNEL_MATRIX, CHANNEL_SHAPE, EXTRA_SIZES, HEAD_MATRIX, HEADS_SHAPE,
                          SIZES, size_counts)


def sizes_context(cell) -> dict:
    """The sizes as the module's code handles them: ``dims``, the sizes its functions take
    ("D, H", or "D, H, P" for a cell that declares P); each size string's counts of the sizes
    the cell has (``count_names``) and its constant; where the sizes beyond D and H are read."""
    extra = cell.sizes
    counted = [n for n in SIZES if n in ("D", "H", *extra) or n == "H/NH" and "NH" in extra]
    columns = [list(SIZES).index(n) for n in counted] + [len(SIZES)]
    matrices = {HEAD_MATRIX: HEADS_SHAPE, CHANNEL_MATRIX: CHANNEL_SHAPE}
    states = [d for dim in cell.states.values() for d in matrices.get(dim, (dim,))]
    heads = ["NH", "H/NH"] if "NH" in extra else []   # the per-head states' shapes
    dims = dict.fromkeys([d for p in cell.params for d in p.shape] + states
                         + [*cell.inputs.values()] + heads)
    code = [SIZES[n][0] for n in counted]
    return dict(
        dims=", ".join(["D", "H", *extra]), inferred=", ".join(["H", *extra]),
        extra_sizes=[(n, EXTRA_SIZES[n]) for n in extra], extra_names=list(extra),
        count_names=code,
        count_values=", ".join("H // NH" if c == "HS" else c for c in code),
        size_counts=[(dim, tuple(size_counts(dim)[k] for k in columns)) for dim in dims],
        extra_at=[(n, next((p.name, p.shape.index(n)) for p in cell.params if n in p.shape))
                  for n in extra])
