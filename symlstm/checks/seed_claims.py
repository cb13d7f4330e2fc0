"""The formulas of four hand-written LSTM backpropagation texts (tutorials and lecture notes,
numbered 000 to 003), transcribed into the notation ``check_claim`` reads, for the document
"Common mistakes, checked" (``symlstm.mistakes``) and as test data.

Every entry is one formula as a text writes it, right or wrong, translated to our names and
to relative time indices (a text's step 3 of a 3-step unroll is ``t``, its step 2 is
``t-1``).  Only formulas present in the saved texts are listed; the descriptions are ours.
Where a text can be read two ways, each reading is its own entry.

- 000 (peephole LSTM in Greff et al.'s notation): its formulas did not survive in the saved
  copy, so it has no entries.
- 001 (``lstm_concat``): the text's forward pass is row-major, Xᵀ W with W of size
  (D+H)×H, so its W is our Wᵀ; its weight gradients δ Xᵀ come out H×(D+H), our layout.
  Its network predicts once, at the last step, from a linear head (``head="regression"``:
  the head's ŷ = h W_ŷ + B_ŷ, so its W_ŷ is our Vᵀ).
- 002 (``lstm_rowmajor``): its twelve gradients were images; only their names and the
  loss survive, so it has no entries.
- 003 (``lstm_nobias``): a hat marks a pre-activation (â is our abar); the symbol δ^t in
  its output-gate line and in the stacked vector Î stands where ô^t belongs.

Entries with a head are checked against ``symlstm.derive_network(cell, head)``, the others
against ``symlstm.derive(cell)``.
"""
from __future__ import annotations

from typing import NamedTuple


class SeedClaim(NamedTuple):
    """One formula of a seed text, in our printed notation."""
    seed: str        # "000", "001", "002", "003"
    where: str       # where in the text, in our words
    cell: str        # our cell name
    head: str        # "" for a cell gradient, or "regression"/"classifier" for the head
    label: str       # our label, e.g. "adj:o", "rec:c", "grad:W_f"
    claim: str       # the formula in our printed notation (what the text writes, translated)
    reading: str     # how the text's notation was read, in our words


_C = "lstm_concat"
_N = "lstm_nobias"
_STEP3 = "step 3 of 3 read as t"
_PRE = "σ' read at the pre-activation, σ'(obar) = σ(obar)(1 - σ(obar))"
_OUT = "σ' read as applied to the gate output itself, σ(o)(1 - σ(o))"


def _c(where, label, claim, reading, head=""):
    return SeedClaim("001", where, _C, head, label, claim, reading)


def _n(where, label, claim, reading):
    return SeedClaim("003", where, _N, "", label, claim, reading)


# Text 003 stacks the four pre-activation adjoints into one vector and multiplies it by
# Iᵀ = [xᵀ h[t-1]ᵀ] to get the gradient of Θ = [W U]; each block of that product is one
# of our parameter gradients.  The adjoints are taken as our own (the text's errors in them
# have entries of their own in CLAIMS), so these entries test the stacking alone.
_THETA = tuple(
    _n(f"stacked Θ = [W U], block {w}", f"grad:{w}",
       f"TimeSum(Outer(δ{bar}[t], Part(Concat(x[t], h[t-1]), {rows})))",
       f"the {w} block of the per-step outer product with I = [x; h[t-1]] (its "
       f"{'first D' if w[0] == 'W' else 'last H'} columns), summed over steps as the text "
       f"does; its ∂E/∂{bar} read as our adjoint δ{bar}")
    for g, bar in (("a", "abar"), ("i", "ibar"), ("f", "fbar"), ("o", "obar"))
    for w, rows in ((f"W_{g}", "0, D"), (f"U_{g}", "D, D + H")))


CLAIMS = (
    # --- 001: the linear output layer (checked once check_claim takes a network) ---
    _c("output layer, gradient of the prediction", "adj:yhat", "y[t] - yhat[t]",
       "the text leaves the loss unnamed; read with our squared-error head, whose "
       "gradient is yhat - y (the text has the opposite sign)", head="regression"),
    _c("output layer, weight gradient", "grad:V", "Outer(δyhat[t], h[t])",
       f"{_STEP3}; the text's W_ŷ is our Vᵀ, so its outer transpose cancels; one "
       "prediction only, so no sum over steps", head="regression"),
    _c("output layer, bias gradient", "grad:b_y", "δyhat[t]",
       f"{_STEP3}; the factor 1 dropped", head="regression"),
    _c("output layer, gradient reaching h", "out:h", "MatTVec(V, δyhat[t])",
       f"{_STEP3}; dL/dŷ as a row vector times W_ŷᵀ, transposed, is W_ŷ δŷ = Vᵀ δŷ",
       head="regression"),
    # --- 001: the cell, at its last step ---
    _c("cell state from the hidden state", "rec:c", "δh[t]*o[t]*(1 - tanh(c[t])**2)",
       f"{_STEP3}; tanh' at c; given at the last step, where no later step sends a "
       "gradient back; as the general recurrence it lacks the carry δc[t+1] f[t+1]"),
    _c("output gate, gate gradient", "adj:o", "δh[t]*tanh(c[t])", _STEP3),
    _c("output gate, weight gradient", "grad:W_o",
       "Outer(δo[t]*sigma(obar[t])*(1 - sigma(obar[t])), X[t])",
       f"{_STEP3}; {_PRE}; the per-step term (the text sums steps at the end)"),
    _c("output gate, weight gradient", "grad:W_o",
       "Outer(δo[t]*sigma(o[t])*(1 - sigma(o[t])), X[t])", f"{_STEP3}; {_OUT}"),
    _c("output gate, bias gradient", "grad:b_o",
       "δo[t]*sigma(obar[t])*(1 - sigma(obar[t]))", f"{_STEP3}; {_PRE}"),
    _c("output gate, bias gradient", "grad:b_o",
       "δo[t]*sigma(o[t])*(1 - sigma(o[t]))", f"{_STEP3}; {_OUT}"),
    _c("candidate, gate gradient", "adj:n", "δc[t]*i[t]", _STEP3),
    _c("candidate, weight gradient", "grad:W_n", "Outer(δc[t]*(1 - tanh(nbar[t])**2), X[t])",
       f"{_STEP3}; the text multiplies dL/dc (not dL/dn) by tanh' at the pre-activation"),
    _c("candidate, weight gradient", "grad:W_n", "Outer(δc[t]*(1 - tanh(n[t])**2), X[t])",
       f"{_STEP3}; tanh' read as applied to the candidate n itself"),
    _c("candidate, bias gradient", "grad:b_n", "δc[t]*(1 - tanh(nbar[t])**2)",
       f"{_STEP3}; dL/dc times tanh' at the pre-activation"),
    _c("input gate, gate gradient", "adj:i", "δc[t]*n[t-1]",
       f"{_STEP3}; the text multiplies by the candidate of step 2, read as n[t-1]"),
    _c("input gate, weight gradient", "grad:W_i",
       "Outer(δc[t]*sigma(ibar[t])*(1 - sigma(ibar[t])), X[t])",
       f"{_STEP3}; dL/dc (not dL/di) times σ' at the pre-activation"),
    _c("input gate, weight gradient", "grad:W_i",
       "Outer(δc[t]*sigma(i[t])*(1 - sigma(i[t])), X[t])",
       f"{_STEP3}; σ' read as applied to the gate output"),
    _c("input gate, bias gradient", "grad:b_i", "δc[t]*sigma(ibar[t])*(1 - sigma(ibar[t]))",
       f"{_STEP3}; dL/dc times σ' at the pre-activation"),
    _c("input gate, repeated weight gradient with tanh'", "grad:W_i",
       "Outer(δc[t]*(1 - tanh(ibar[t])**2), X[t])",
       f"{_STEP3}; the text's second version uses tanh', read at the pre-activation"),
    _c("input gate, repeated bias gradient with tanh'", "grad:b_i",
       "δc[t]*(1 - tanh(ibar[t])**2)", f"{_STEP3}; tanh' at the pre-activation"),
    _c("forget gate, gate gradient", "adj:f", "δc[t]*c[t-1]", f"{_STEP3}; c^2 is c[t-1]"),
    _c("forget gate, weight gradient", "grad:W_f", "Outer(δc[t]*(1 - tanh(fbar[t])**2), X[t])",
       f"{_STEP3}; dL/dc (not dL/df) times tanh' (not σ') at the pre-activation"),
    _c("forget gate, bias gradient", "grad:b_f", "δc[t]*(1 - tanh(fbar[t])**2)",
       f"{_STEP3}; tanh' at the pre-activation"),
    # --- 001: back to step 2 ---
    _c("cell state one step back", "rec:c", "δc[t+1]*f[t+1]",
       "step 3 read as t+1 and step 2 as t: taken as the whole gradient of c[t], with "
       "nothing from h[t]"),
    _c("cell state one step back", "init:c0", "δc[t]*f[t]",
       f"{_STEP3}; read as only the part step t sends back to c[t-1]"),
    _c("gradient of the concatenated input", "adj:X",
       "MatTVec(W_o, δo[t]) + MatTVec(W_n, δo[t]) + MatTVec(W_i, δo[t]) + MatTVec(W_f, δo[t])",
       f"{_STEP3}; literal: all four terms use dL/do, with no activation derivative; "
       "((dL/do)ᵀ Wᵀ)ᵀ with the text's W = our Wᵀ is MatTVec(W, δo)"),
    _c("gradient of the concatenated input", "adj:X",
       "MatTVec(W_o, δo[t]) + MatTVec(W_n, δn[t]) + MatTVec(W_i, δi[t]) + MatTVec(W_f, δf[t])",
       f"{_STEP3}; each term read as its own gate's gradient (the repeated dL/do taken as "
       "a slip), still with no activation derivative"),
    _c("input gradient from the concatenation", "grad:x", "Part(δX[t], 0, D)",
       f"{_STEP3}; the text's element [1] (D = 1) is rows 0:D"),
    _c("hidden state from the concatenation", "init:h0", "Part(δX[t], D, D + H)",
       f"{_STEP3}; h^2 is h[t-1]; read as the part step t sends back to h[t-1]"),
    _c("hidden state from the concatenation", "rec:h", "Part(δX[t+1], D, D + H)",
       "step 3 read as t+1 and h^2 as h[t]: taken as the whole gradient of h[t]; right "
       "only when step t has no loss of its own, as in the text's one-output network"),
    # --- 003: one step of the backward pass ---
    _n("output gate, gate gradient", "adj:o", "Δh[t]*tanh(c[t])",
       "∂E/∂h^t read as the text defines it: from the loss at step t only (Δh[t])"),
    _n("output gate, gate gradient", "adj:o", "δh[t]*tanh(c[t])",
       "∂E/∂h^t read as the whole gradient of h[t] (δh[t])"),
    _n("cell state, accumulated", "adj:c", "δ⁺c[t] + δh[t]*o[t]*(1 - tanh(c[t])**2)",
       "the accumulator δc^t starts at what step t+1 sent (δ⁺c[t]), then ∂E/∂c^t is added; "
       "∂E/∂h^t read as δh[t]"),
    _n("cell state, accumulated", "rec:c", "δc[t+1]*f[t+1] + Δh[t]*o[t]*(1 - tanh(c[t])**2)",
       "the accumulator written out, its start value δc^{t+1} ⊙ f^{t+1}; ∂E/∂h^t read as "
       "from the loss at step t only (Δh[t])"),
    _n("input gate, gate gradient", "adj:i", "δc[t]*a[t]", "δc^t is our δc[t]"),
    _n("block input, gradient", "adj:a", "δc[t]*i[t]", "δc^t is our δc[t]"),
    _n("forget gate, gate gradient", "adj:f", "δc[t]*c[t-1]", "δc^t is our δc[t]"),
    _n("cell state one step back", "init:c0", "δc[t]*f[t]",
       "the part step t sends back to c[t-1] (the text's start value of δc^{t-1})"),
    _n("block input, pre-activation", "adj:abar", "δa[t]*(1 - tanh(abar[t]))",
       "literal: 1 - tanh(â), with no square"),
    _n("input gate, pre-activation", "adj:ibar", "δi[t]*abar[t]*(1 - abar[t])",
       "literal: the factor uses â (the block input's pre-activation), read as abar[t]"),
    _n("forget gate, pre-activation", "adj:fbar", "δf[t]*fbar[t]*(1 - fbar[t])",
       "literal: the factor uses the pre-activation f̂ instead of the gate f"),
    _n("output gate, pre-activation", "adj:obar", "δo[t]*obar[t]*(1 - obar[t])",
       "δ^t read as ô^t, the pre-activation, as in the stacked vector Î"),
    _n("output gate, pre-activation", "adj:obar", "δo[t]*o[t]*(1 - o[t])",
       "δ^t read as the gate output o^t"),
    *_THETA,
)
