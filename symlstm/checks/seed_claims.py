"""The formulas of four hand-written LSTM backpropagation texts (tutorials and lecture notes,
numbered 000 to 003), transcribed into the notation ``check_claim`` reads, for the document
"Common mistakes, checked" (``symlstm.mistakes``) and as test data; with the texts' titles
(:data:`TITLES`) and their wrong statements in prose, each with its correction (:data:`PROSE`).

Every entry is one formula as a text writes it, right or wrong, translated to our names and
to relative time indices (a text's step 3 of a 3-step unroll is ``t``, its step 2 is
``t-1``).  Only formulas present in the saved texts are listed; the descriptions are ours.
Where a text can be read two ways, each reading is its own entry.  A reading is prose in
which a formula stands in braces, in the notation ``check_claim`` reads: ``{δc[t]}``.

- 000 (peephole LSTM in Greff et al.'s notation): its formulas did not survive in the saved
  copy, so it has no entries; its prose claims are in :data:`PROSE`.
- 001 (``lstm_concat``): the text's forward pass is row-major, Xᵀ W with W of size
  (D+H)×H, so its W is our Wᵀ; its weight gradients δ Xᵀ come out H×(D+H), our layout.
  Its network predicts once, at the last step, from a linear head (``head="regression"``:
  the head's ŷ = h W_ŷ + B_ŷ, so its W_ŷ is our Vᵀ).
- 002 (``lstm_rowmajor``): its twelve gradients were images; its forward equations and its
  loss survive (``fwd:`` labels, checked against the forward pass and the classifier head's
  loss).  Its row-major products X W are our Wᵀ x, one row at a time.
- 003 (``lstm_nobias``): a hat marks a pre-activation (â is our abar); the symbol δ^t in
  its output-gate line and in the stacked vector Î stands where ô^t belongs.

Entries with a head are checked against ``symlstm.derive_network(cell, head)``, the others
against ``symlstm.derive(cell)``.
"""
from __future__ import annotations

from typing import NamedTuple


#: The texts by their titles (000's is the series it belongs to, of which it is part 5).
TITLES = {
    "000": "A gentle introduction to the tiresome part of understanding RNN (part 5)",
    "001": "How the LSTM improves the RNN",
    "002": "Exploring architectures - LSTMs",
    "003": "LSTM",
}


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
_R = "lstm_rowmajor"
_STEP3 = "the text's step 3 read as t"
_PRE = "σ′ read at the pre-activation, {σ(obar[t]) ⊙ (1 - σ(obar[t]))}"
_OUT = "σ′ read as applied to the gate's output itself, {σ(o[t]) ⊙ (1 - σ(o[t]))}"


def _c(where, label, claim, reading, head=""):
    return SeedClaim("001", where, _C, head, label, claim, reading)


def _r(where, label, claim, reading):
    return SeedClaim("002", where, _R, "classifier", label, claim, reading)


def _n(where, label, claim, reading):
    return SeedClaim("003", where, _N, "", label, claim, reading)


# Text 003 stacks the four pre-activation adjoints into one vector and multiplies it by
# Iᵀ = [xᵀ h[t-1]ᵀ] to get the gradient of Θ = [W U]; each block of that product is one
# of our parameter gradients.  The adjoints are taken as our own (the text's errors in them
# have entries of their own in CLAIMS), so these entries test the stacking alone.
_THETA = tuple(
    _n(f"stacked weights Θ = [W U], block {{{w}}}", f"grad:{w}",
       f"TimeSum(Outer(δ{bar}[t], Part(Concat(x[t], h[t-1]), {rows})))",
       f"the block of the per-step outer product with the stacked input "
       f"{{Concat(x[t], h[t-1])}} (its {'first D' if w[0] == 'W' else 'last H'} columns), "
       f"summed over steps as the text does; its gradient of the pre-activation read as "
       f"{{δ{bar}[t]}}")
    for g, bar in (("a", "abar"), ("i", "ibar"), ("f", "fbar"), ("o", "obar"))
    for w, rows in ((f"W_{g}", "0, D"), (f"U_{g}", "D, D + H")))

# Text 002's forward pass, one row of its batched products at a time: its X W_ix is our
# W_xiᵀ x, its H is h at the step before, its C_i the candidate.
_ROWMAJOR = tuple(
    _r(f"{what}, forward", f"fwd:{name}",
       f"{f}(W_x{g}ᵀ x[t] + W_h{g}ᵀ h[t-1] + b_{g})",
       f"one row of the batched product, {{W_x{g}ᵀ x[t] + W_h{g}ᵀ h[t-1] + b_{g}}}")
    for what, name, f, g in (("input gate", "I", "σ", "i"), ("forget gate", "F", "σ", "f"),
                             ("output gate", "O", "σ", "o"),
                             ("candidate", "Ctilde", "tanh", "c")))


CLAIMS = (
    # --- 001: the linear output layer (checked once check_claim takes a network) ---
    _c("output layer, gradient of the prediction", "adj:yhat", "y[t] - yhat[t]",
       "the text leaves the loss unnamed; read with our squared-error head",
       head="regression"),
    _c("output layer, weight gradient", "grad:V", "Outer(δyhat[t], h[t])",
       f"{_STEP3}; the text's output weight is our transposed {{V}}, so its outer transpose "
       "cancels; one prediction only, so no sum over steps", head="regression"),
    _c("output layer, bias gradient", "grad:b_y", "δyhat[t]",
       f"{_STEP3}; the factor 1 dropped", head="regression"),
    _c("output layer, gradient reaching h", "out:h", "MatTVec(V, δyhat[t])",
       f"{_STEP3}; the text's row vector times the transposed weight, transposed back, is "
       "{Vᵀ δyhat[t]}", head="regression"),
    # --- 001: the cell, at its last step ---
    _c("cell state from the hidden state", "rec:c", "δh[t]*o[t]*(1 - tanh(c[t])**2)",
       f"{_STEP3}; tanh′ at {{c[t]}}; given at the last step, where no later step sends a "
       "gradient back, and checked here as the general recurrence"),
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
       f"{_STEP3}; tanh′ read at the pre-activation {{nbar[t]}}"),
    _c("candidate, weight gradient", "grad:W_n", "Outer(δc[t]*(1 - tanh(n[t])**2), X[t])",
       f"{_STEP3}; tanh′ read as applied to the candidate {{n[t]}} itself"),
    _c("candidate, bias gradient", "grad:b_n", "δc[t]*(1 - tanh(nbar[t])**2)",
       f"{_STEP3}; tanh′ read at the pre-activation {{nbar[t]}}"),
    _c("input gate, gate gradient", "adj:i", "δc[t]*n[t-1]",
       f"{_STEP3}; the text multiplies by the candidate of its step 2, {{n[t-1]}}"),
    _c("input gate, weight gradient", "grad:W_i",
       "Outer(δc[t]*sigma(ibar[t])*(1 - sigma(ibar[t])), X[t])",
       f"{_STEP3}; σ′ read at the pre-activation {{ibar[t]}}"),
    _c("input gate, weight gradient", "grad:W_i",
       "Outer(δc[t]*sigma(i[t])*(1 - sigma(i[t])), X[t])",
       f"{_STEP3}; σ′ read as applied to the gate's output {{i[t]}}"),
    _c("input gate, bias gradient", "grad:b_i", "δc[t]*sigma(ibar[t])*(1 - sigma(ibar[t]))",
       f"{_STEP3}; σ′ read at the pre-activation {{ibar[t]}}"),
    _c("input gate, repeated weight gradient with tanh′", "grad:W_i",
       "Outer(δc[t]*(1 - tanh(ibar[t])**2), X[t])",
       f"{_STEP3}; the text's second version, with tanh′ read at the pre-activation"),
    _c("input gate, repeated bias gradient with tanh′", "grad:b_i",
       "δc[t]*(1 - tanh(ibar[t])**2)", f"{_STEP3}; tanh′ read at the pre-activation"),
    _c("forget gate, gate gradient", "adj:f", "δc[t]*c[t-1]",
       f"{_STEP3}; the cell state of its step 2 is {{c[t-1]}}"),
    _c("forget gate, weight gradient", "grad:W_f", "Outer(δc[t]*(1 - tanh(fbar[t])**2), X[t])",
       f"{_STEP3}; tanh′ read at the pre-activation {{fbar[t]}}"),
    _c("forget gate, bias gradient", "grad:b_f", "δc[t]*(1 - tanh(fbar[t])**2)",
       f"{_STEP3}; tanh′ read at the pre-activation {{fbar[t]}}"),
    # --- 001: back to step 2 ---
    _c("cell state one step back", "rec:c", "δc[t+1]*f[t+1]",
       "the text's step 3 read as t+1 and its step 2 as t: taken as the whole gradient of "
       "{c[t]}, with nothing from {h[t]}"),
    _c("cell state one step back", "init:c0", "δc[t]*f[t]",
       f"{_STEP3}; read as only the part step t sends back to {{c[t-1]}}"),
    _c("gradient of the concatenated input", "adj:X",
       "MatTVec(W_o, δo[t]) + MatTVec(W_n, δo[t]) + MatTVec(W_i, δo[t]) + MatTVec(W_f, δo[t])",
       f"{_STEP3}; literal: all four terms use {{δo[t]}}, with no activation derivative; "
       "the text's weights are our transposed ones"),
    _c("gradient of the concatenated input", "adj:X",
       "MatTVec(W_o, δo[t]) + MatTVec(W_n, δn[t]) + MatTVec(W_i, δi[t]) + MatTVec(W_f, δf[t])",
       f"{_STEP3}; each term read as its own gate's gradient (the repeated {{δo[t]}} taken "
       "as a slip), still with no activation derivative"),
    _c("input gradient from the concatenation", "grad:x", "Part(δX[t], 0, D)",
       f"{_STEP3}; the text's first entry (D = 1) is the first D rows"),
    _c("hidden state from the concatenation", "init:h0", "Part(δX[t], D, D + H)",
       f"{_STEP3}; the hidden state of its step 2 is {{h[t-1]}}; read as the part step t "
       "sends back to it"),
    _c("hidden state from the concatenation", "rec:h", "Part(δX[t+1], D, D + H)",
       "the text's step 3 read as t+1 and its hidden state of step 2 as {h[t]}: taken as "
       "the whole gradient of {h[t]}"),
    # --- 002: the forward pass and the loss ---
    *_ROWMAJOR,
    _r("cell state, forward", "fwd:c", "F[t]*c[t-1] + I[t]*Ctilde[t]",
       "the text's × is the entry-by-entry product; its C without index is {c[t-1]}"),
    _r("hidden state, forward", "fwd:h", "O[t]*tanh(c[t])",
       "the text's × is the entry-by-entry product"),
    _r("cross-entropy loss", "fwd:ell", "-total(y[t]*log(h[t]))",
       "the text's target is our {y[t]}; its product with a column of ones sums the entries"),
    # --- 003: one step of the backward pass ---
    _n("output gate, gate gradient", "adj:o", "Δh[t]*tanh(c[t])",
       "the text's gradient of the hidden state read as it defines it, from the loss at "
       "step t only: {Δh[t]}"),
    _n("output gate, gate gradient", "adj:o", "δh[t]*tanh(c[t])",
       "the text's gradient of the hidden state read as the whole gradient {δh[t]}"),
    _n("cell state, accumulated", "adj:c", "δ⁺c[t] + δh[t]*o[t]*(1 - tanh(c[t])**2)",
       "the accumulator starts at what step t+1 sent, {δ⁺c[t]}, then the gradient through "
       "{h[t]} is added, read as the whole {δh[t]}"),
    _n("cell state, accumulated", "rec:c", "δc[t+1]*f[t+1] + Δh[t]*o[t]*(1 - tanh(c[t])**2)",
       "the accumulator written out, its start value {δc[t+1] ⊙ f[t+1]}; the gradient of "
       "the hidden state read as from the loss at step t only, {Δh[t]}"),
    _n("input gate, gate gradient", "adj:i", "δc[t]*a[t]", "the accumulator is {δc[t]}"),
    _n("block input, gradient", "adj:a", "δc[t]*i[t]", "the accumulator is {δc[t]}"),
    _n("forget gate, gate gradient", "adj:f", "δc[t]*c[t-1]", "the accumulator is {δc[t]}"),
    _n("cell state one step back", "init:c0", "δc[t]*f[t]",
       "the part step t sends back to {c[t-1]} (the start value of the accumulator one "
       "step back)"),
    _n("block input, pre-activation", "adj:abar", "δa[t]*(1 - tanh(abar[t]))",
       "literal, as the text prints it"),
    _n("input gate, pre-activation", "adj:ibar", "δi[t]*abar[t]*(1 - abar[t])",
       "literal: the factor uses the block input's pre-activation {abar[t]}"),
    _n("forget gate, pre-activation", "adj:fbar", "δf[t]*fbar[t]*(1 - fbar[t])",
       "literal: the factor uses the pre-activation {fbar[t]} instead of the gate"),
    _n("output gate, pre-activation", "adj:obar", "δo[t]*obar[t]*(1 - obar[t])",
       "the text's symbol read as the pre-activation {obar[t]}, as in its stacked vector"),
    _n("output gate, pre-activation", "adj:obar", "δo[t]*o[t]*(1 - o[t])",
       "the text's symbol read as the gate's output {o[t]}"),
    *_THETA,
)


class ProseClaim(NamedTuple):
    """A statement of a seed text in words, in our paraphrase, with what holds instead."""
    seed: str
    claim: str        # what the text says, in our words
    correction: str   # what holds, in our words; formulas in $...$ LaTeX


PROSE = (
    ProseClaim("000", "gradient clipping keeps the gradient under a threshold at every time "
               "step",
               "clipping acts once per update, on the whole gradient: the sum over all steps "
               "of every parameter's gradient is rescaled to norm at most $\\tau$ when "
               "$\\lVert g\\rVert > \\tau$; the per-step terms are never clipped on their own"),
    ProseClaim("001", "the gates keep the error passed from step to step close to 1, which "
               "rules out vanishing and exploding gradients",
               "the direct path from $c_t$ to $c_{t-1}$ scales the gradient by "
               "$f_t \\in (0, 1)$, so over $k$ steps by $\\prod f$, which still shrinks "
               "unless the forget gate stays near 1; the paths through $h_{t-1}$ add "
               "$R^\\top$ products that can grow. Gates make long-range gradients possible, "
               "not guaranteed: the LSTM mitigates vanishing, it does not rule it or "
               "exploding out"),
    ProseClaim("002", "the gates are dense layers with mostly ReLU activations",
               "every gate is a logistic sigmoid, $\\sigma(u) = 1/(1 + e^{-u}) \\in (0, 1)$, "
               "so that it scales what it multiplies; a ReLU is unbounded and could not "
               "gate. Only the candidate and the output use $\\tanh$ (the text's own "
               "equations do write $\\sigma$)"),
    ProseClaim("002", "cross-entropy is taken of the hidden state $H$",
               "$h_t = o_t \\odot \\tanh c_t$ lies in $(-1, 1)$ and has $H$ entries, not one "
               "per class: an output layer $\\hat y_t = V h_t + b_y$ and a softmax come "
               "first, and the loss is $-\\sum_k y_k \\log \\operatorname{softmax}(\\hat "
               "y_t)_k$, whose gradient is $\\operatorname{softmax}(\\hat y_t) - y_t$"),
    ProseClaim("003", "unlike the sigmoid, tanh does not flatten out for large inputs, so "
               "it does not stall gradient descent",
               "$\\tanh'(u) = 1 - \\tanh^2 u$ tends to 0 as $|u|$ grows, at both ends: "
               "{tanh3}. Both saturate; tanh's derivative peaks at 1 where the sigmoid's "
               "peaks at $1/4$"),
)
