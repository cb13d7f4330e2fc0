"""The document "Common mistakes, checked": a verdict table, then each text's formulas,
judged by ``check_claim`` and diagnosed by :func:`symlstm.checks.diagnose.diagnose`, near-identical
entries grouped; then the texts' wrong statements in prose, each with its correction."""
from __future__ import annotations

import itertools
import re

import numpy as np
import sympy as sp

from .. import naming
from ..cell.shipped import CELLS
from ..derivation.bptt import derive as derive_cell
from ..derivation.sweep import LOSS
from ..printers.templates import REBUILD, environment
from ..printers.text import latex_text
from .latex import latex
from .tex import _tt

MISTAKES_TEMPLATE = "latex/mistakes.tex.jinja"

#: The texts whose formulas the mistakes document checks, described in our words.
TEXTS = {
    "000": "A blog article that derives the peephole LSTM's backward pass in the notation "
           "of Greff et al., drawing the chain rule as paths in a graph. Its formulas did not "
           "survive in the saved copy; its statements in prose are checked in the last "
           "section.",
    "001": "A tutorial that unrolls an LSTM on the concatenated input $[x_t; h_{t-1}]$ over "
           "three steps, with a linear output layer and a loss at the last step "
           "(\\texttt{lstm\\char95{}concat} with the regression head).",
    "002": "A blog article on a batched, row-major LSTM with a cross-entropy loss "
           "(\\texttt{lstm\\char95{}rowmajor}). Its twelve gradients were images and are "
           "lost; its forward equations and its loss survive and are checked here, against "
           "the forward pass and against the classifier head's loss.",
    "003": "Lecture notes on an LSTM without biases, with the accumulated cell-state gradient "
           "and the stacked weights $\\Theta = [W\\; U]$ (\\texttt{lstm\\char95{}nobias}).",
}

#: What each kind of finding is called in the verdict table.
KIND_NAMES = {"sign": "sign flipped", "argument": "derivative at the wrong argument",
              "time": "wrong time index", "symbol": "one gradient put for another",
              "function": "wrong activation derivative", "missing": "missing paths",
              "extra": "extra terms", "log": "log of a vector $\\le 0$",
              "sizes": "sizes that do not fit"}


def mistakes_document(claims, rebuild: str = REBUILD, prose=None, titles=None) -> str:
    """The document that judges each :class:`~symlstm.checks.seed_claims.SeedClaim` of ``claims``
    and lists ``prose`` (:class:`~symlstm.checks.seed_claims.ProseClaim`, by default the seeds')
    with their corrections; ``titles`` names the texts (by default the seeds')."""
    from ..checks import seed_claims
    from ..checks.diagnose import check_text_claim
    from ..network.heads import derive_network
    prose = seed_claims.PROSE if prose is None else prose
    titles = seed_claims.TITLES if titles is None else titles
    subjects, texts, rows, holding = {}, [], [], 0
    for number, about in TEXTS.items():
        judged = []
        for c in (c for c in claims if c.seed == number):
            key = (c.cell, c.head)
            if key not in subjects:
                subjects[key] = derive_network(*key) if c.head else derive_cell(CELLS[c.cell]())
            v, found = check_text_claim(subjects[key], c.label, c.claim)
            holding += v.holds
            judged.append(_entry(subjects[key], c, v, found))
        groups = _groups(judged)
        kinds = [KIND_NAMES[k] for k in dict.fromkeys(
            f for e in judged for f in e["kinds"])]
        title = latex_text(titles.get(number, f"Text {number}"))
        rows.append(dict(title=title, cells=", ".join(dict.fromkeys(e["cell"] for e in judged)),
                         checked=len(judged), holds=sum(e["holds"] for e in judged),
                         kinds=", ".join(kinds) or ("---" if judged else "prose only")))
        texts.append(dict(number=number, title=title, about=about, groups=groups))
    return environment().get_template(MISTAKES_TEMPLATE).render(
        template=MISTAKES_TEMPLATE, rebuild=rebuild, texts=texts, rows=rows,
        counts=dict(total=len(claims), holds=holding),
        prose=[dict(title=latex_text(titles.get(p.seed, p.seed)), claim=latex_text(p.claim),
                    correction=_numbers(p.correction)) for p in prose])


def _entry(subject, c, v, found) -> dict:
    lhs = _lhs(subject, c.label)
    return dict(where=c.where, head=_heading(subject, c.where.split(",")[0]), lhs=lhs, holds=v.holds,
                cell=_tt(c.cell),
                reading=[_prose(subject, part) for part in c.reading.split("; ")],
                claim=f"{lhs} = {latex(v.claim)}", correct=v.latex,
                diagnosis=_diagnosis(subject, found), kinds=[f.kind for f in found])


def _lhs(subject, label) -> str:
    everything = subject.all() if hasattr(subject, "all") else ()
    g = next(g for g in everything if g.label == label)
    return latex(g.lhs, g.origin)


def _groups(entries) -> list[dict]:
    """Entries that hold, by the part of the network they are about; entries that do not,
    by their diagnosis: one group each, in the order of their first entry."""
    groups: dict = {}
    for e in entries:
        key = (True, e["where"].split(",")[0]) if e["holds"] else (False, e["diagnosis"])
        groups.setdefault(key, []).append(e)
    out = []
    for (holds, _), members in groups.items():
        heads = list(dict.fromkeys(m["head"] for m in members))
        out.append(dict(
            holds=holds, head="; ".join(heads), members=members,
            lhs=", ".join(f"${m}$" for m in dict.fromkeys(m["lhs"] for m in members)),
            readings=list(dict.fromkeys(part for m in members
                                        for part in m["reading"])),
            correct=list(dict.fromkeys(m["correct"] for m in members)),
            diagnosis=members[0]["diagnosis"]))
    return out


_FORMULA = re.compile(r"\{([^{}]*)\}")


def _prose(subject, text: str) -> str:
    """Words with formulas in braces, in the notation ``check_claim`` reads: the words
    escaped, each formula typeset."""
    from ..checks.claims import parse
    out, at = [], 0
    for m in _FORMULA.finditer(text):
        out.append(latex_text(text[at:m.start()]))
        out.append(f"${latex(parse(subject, m.group(1)))}$")
        at = m.end()
    return "".join(out) + latex_text(text[at:])


def _heading(subject, where: str) -> str:
    return _prose(subject, where[:1].upper() + where[1:])


def _diagnosis(subject, found) -> str:
    """The findings in one line of text and mathematics."""
    parts = []
    for _, same in itertools.groupby(
            found, key=lambda f: (f.kind, f.wrong) if f.kind == "symbol" else id(f)):
        same = list(same)
        if len(same) > 1:
            rights = ", ".join(f"${latex(g.right)}$" for g in same)
            parts.append(f"${latex(same[0].wrong)}$ where {rights} belong")
        else:
            parts.append(_finding(subject, same[0]))
    return "; ".join(parts)


_DERIVATIVE = {"σ′": r"$\sigma'$", "tanh′": r"$\tanh'$"}


def _finding(subject, f) -> str:
    w = latex(f.wrong) if f.wrong is not None else ""
    r = latex(f.right) if f.right is not None else ""
    if f.kind == "sign":
        return r"sign flipped: the claim is $-1$ times the derived side"
    if f.kind == "argument":
        return f"{_DERIVATIVE[f.note]} at the wrong argument: ${w}$ where ${r}$ belongs"
    if f.kind == "time":
        return f"wrong time index: ${w}$ where ${r}$ belongs"
    if f.kind == "symbol":
        rhs = f" = {latex(f.note)}" if isinstance(f.note, sp.Expr) else ""
        return f"${w}$ where ${r}{rhs}$ belongs"
    if f.kind == "function":
        if f.note == "square":
            return f"the square is missing: ${w}$ where ${r}$ belongs"
        wrong, right = f.note.split(" for ")
        return (f"{_DERIVATIVE[wrong]} where {_DERIVATIVE[right]} belongs: ${w}$ where "
                f"${r}$ belongs")
    if f.kind == "missing":
        return f"missing the path via {_via(subject, f.note)}: ${w}$"
    if f.kind == "extra":
        return f"an extra term ${w}$"
    if f.kind == "log":
        bad, total = f.note
        return (rf"the logarithm of ${w}$, which is $\le 0$ in {bad} of its {total} entries "
                "on the runs checked, where the loss is undefined")
    if f.kind == "sizes":
        n1, n2 = f.note
        return (f"${w}$ ({_size(n1)} entries) times ${r}$ ({_size(n2)} entries), entry by "
                "entry: the sizes do not fit")
    raise ValueError(f"no wording for a finding of kind {f.kind!r}")


def _size(n: str) -> str:
    return f"${n}$"


def _via(subject, term) -> str:
    """The path of a derivation's term in words: the vector of the equation it goes through,
    at its step, or the loss."""
    if term.via == LOSS:
        return "the loss"
    everything = subject.all() if hasattr(subject, "all") else ()
    eq = next((g for g in everything if g.kind == naming.FORWARD
               and g.label == naming.label(naming.FORWARD, term.via)), None)
    if eq is None:
        return "step $t+1$" if term.later else "step $t$"
    return f"${latex(naming.shift(eq.lhs, term.later))}$"


def _numbers(text: str) -> str:
    """A correction with its computed numbers put in (``{tanh3}``)."""
    tanh3 = 1 - np.tanh(3.0) ** 2
    sig3 = 1 / (1 + np.exp(-3.0)) * (1 - 1 / (1 + np.exp(-3.0)))
    return text.replace("{tanh3}", rf"$\tanh'(\pm 3) = {tanh3:.4f}$, against "
                                   rf"$\sigma'(\pm 3) = {sig3:.4f}$")
