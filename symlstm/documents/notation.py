"""How this project's names map to PyTorch's and to the notations readers meet elsewhere.

Each table row is (ours, PyTorch, W/U notation, concatenated [x; h], row-major X W + H W + b),
as plain names that :mod:`symlstm.naming` spells; a name in backquotes is code.
"""
from __future__ import annotations

import re

LSTM_HEADER = ("this document", "PyTorch nn.LSTM", "W, U (no biases)",
               "concatenated [x; h]", "row-major X W + H W + b")
_CHUNK = {"i": 0, "f": 1, "z": 2, "o": 3}       # torch's gate order i, f, g, o
_OTHER = {"z": ("a", "n", "Ctilde", "c"), "i": ("i", "i", "I", "i"),
          "f": ("f", "f", "F", "f"), "o": ("o", "o", "O", "o")}


def _lstm_rows():
    rows = []
    for g in "zifo":
        a, n, row_name, row_sub = _OTHER[g]
        k = _CHUNK[g]
        chunk = f"[{k}H:{k + 1}H]" if k else "[:H]"
        rows += [
            (g, f"`{'g' if g == 'z' else g}`", a, n, row_name),
            (f"W_{g}", f"`weight_ih_l0{chunk}`", f"W_{a}", f"W_{n}[:, 1:D]", f"W_x{row_sub}ᵀ"),
            (f"R_{g}", f"`weight_hh_l0{chunk}`", f"U_{a}", f"W_{n}[:, D+1:D+H]", f"W_h{row_sub}ᵀ"),
            (f"b_{g}", f"`bias_ih_l0{chunk} + bias_hh_l0{chunk}`", "—", f"b_{n}", f"b_{row_sub}"),
        ]
    rows.append(("p_i, p_f, p_o", "—", "—", "—", "—"))
    return tuple(rows)


GRU_HEADER = ("this document", "PyTorch nn.GRU")
_GRU_ROWS = tuple(
    row for k, g in enumerate("rzn") for row in (
        (g, f"`{g}`"),
        (f"W_{g}", f"`weight_ih_l0[{k}H:{k + 1}H]`" if k else "`weight_ih_l0[:H]`"),
        (f"R_{g}", f"`weight_hh_l0[{k}H:{k + 1}H]`" if k else "`weight_hh_l0[:H]`"),
        (f"b_{g}", f"`bias_ih_l0[{k}H:{k + 1}H]`" if g == "n" else
         f"`bias_ih_l0[{k}H:{k + 1}H] + bias_hh_l0[{k}H:{k + 1}H]`" if k else
         "`bias_ih_l0[:H] + bias_hh_l0[:H]`"))
) + (("b_hn", "`bias_hh_l0[2H:3H]`"),)

RNN_HEADER = ("this document", "PyTorch nn.RNN")
_RNN_ROWS = (("W", "`weight_ih_l0`"), ("R", "`weight_hh_l0`"),
             ("b", "`bias_ih_l0 + bias_hh_l0`"))

_LSTM_FAMILY = ("lstm", "peephole_lstm", "lstm_nig", "lstm_nfg", "lstm_nog", "lstm_niaf",
                "lstm_noaf", "lstm_cifg", "lstm_fgr", "lstm_nobias", "lstm_concat",
                "lstm_rowmajor")


def table(cell_name: str):
    """(header, rows) for a shipped cell, or None for a cell the project does not know."""
    if cell_name in _LSTM_FAMILY:
        return LSTM_HEADER, _lstm_rows()
    if cell_name == "gru":
        return GRU_HEADER, _GRU_ROWS
    if cell_name == "rnn":
        return RNN_HEADER, _RNN_ROWS
    return None


#: Cells written in one of the other notations: the table's column that is their own.
OWN_COLUMN = {"lstm_nobias": 2, "lstm_concat": 3, "lstm_rowmajor": 4}


def document_table(cell):
    """(header, rows) for ``cell``'s document, or None: the first column is the document's
    own notation (for a cell written in another notation, that notation's column, with the
    LSTM document's names moved to a column of their own), and a row is kept only when every
    name in that column is one the cell has."""
    found = table(cell.name)
    if found is None:
        return None
    header, rows = found
    k = OWN_COLUMN.get(cell.name, 0)
    if k:
        order = [k, *(j for j in range(1, len(header)) if j != k), 0]
        header = ("this document", *(header[j] for j in order[1:-1]), "the LSTM document")
        rows = [tuple(r[j] for j in order) for r in rows]
    names = {p.name for p in cell.params} | {str(eq.lhs).split("[")[0]
                                               for eq in cell.equations}
    return header, [r for r in rows if _uses(r[0], names)]


def _uses(entry: str, names: set) -> bool:
    """Whether every name of a table entry (``W_xiᵀ``, ``W_n[:, 1:D]``, ``p_i, p_f``) is one
    of ``names``."""
    if entry == "—":
        return False
    parts = [n.strip().split("[")[0].rstrip("ᵀ") for n in re.split(r", (?![^\[]*\])", entry)]
    return all(p in names for p in parts)


#: Cells that name the LSTM's variables otherwise: their names -> the peephole LSTM's, so
#: that the overview compares the same paths (a renamed variable is not a new term).
RENAMES = {
    "lstm_nobias": {"a": "z", "abar": "zbar", "W_a": "W_z", "U_a": "R_z", "U_i": "R_i",
                    "U_f": "R_f", "U_o": "R_o"},
    "lstm_concat": {"n": "z", "nbar": "zbar"},
    "lstm_rowmajor": {"I": "ibar", "F": "fbar", "O": "obar", "Ctilde": "zbar"},
}
