"""User texts (titles, descriptions, labels) as data: printed so that they can neither end a
Python string nor run a TeX command."""
from __future__ import annotations

import unicodedata


def python_string(text: str) -> str:
    """``text`` as a triple-quoted Python literal that evaluates to exactly ``text``."""
    out = []
    for k, ch in enumerate(text):
        if ch == "\\" or ch == '"' and text[k + 1:k + 2] in ('"', ""):   # never three in a row
            out.append("\\" + ch)
        elif ch == "\n" or ch.isprintable():
            out.append(ch)
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"""' + "".join(out) + '"""'


_TEX_SPECIAL = {
    "\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&", "#": r"\#",
    "%": r"\%", "_": r"\_", "^": r"\textasciicircum{}", "~": r"\textasciitilde{}",
    "<": "$<$", ">": "$>$", "|": "$|$", '"': "''",
    "–": "--", "—": "---", "‘": "`", "’": "'", "“": "``", "”": "''", "…": r"\dots{}",
    "×": r"$\times$", "⊙": r"$\odot$", "·": r"$\cdot$",
    "Δ": r"$\Delta$", "ᵀ": r"$^{\top}$", "∂": r"$\partial$", "Σ": r"$\Sigma$", "∑": r"$\sum$",
}
_GREEK_LETTERS = {chr(0x3b1 + k): name for k, name in enumerate(
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi o pi rho "
    "varsigma sigma tau upsilon phi chi psi omega".split())}
_GREEK_LETTERS.update({"Γ": "Gamma", "Δ": "Delta", "Θ": "Theta", "Λ": "Lambda", "Ξ": "Xi",
                       "Π": "Pi", "Σ": "Sigma", "Φ": "Phi", "Ψ": "Psi", "Ω": "Omega"})
#: Mathematical characters of plain text, each as a fixed piece of LaTeX.
_TEX_MATH = {"ᵀ": r"$^{\top}$", "⁺": r"$^{+}$", "∂": r"$\partial$", "⊙": r"$\odot$",
             "×": r"$\times$", "→": r"$\to$", "≤": r"$\le$", "≥": r"$\ge$", "≈": r"$\approx$",
             "′": "'", "−": "-", "·": r"$\cdot$", "²": r"$^{2}$", "Σ": r"$\Sigma$"}
_HAT = "\u0302"   # a combining circumflex: x̂


def latex_text(text: str) -> str:
    """Plain text for a LaTeX document: every special character escaped, a blank line a new
    paragraph; a character LaTeX cannot set is written as its code point, U+XXXX."""
    out = []
    text = unicodedata.normalize("NFC", text)
    for k, ch in enumerate(text):
        parts = unicodedata.normalize("NFD", ch)   # ŷ is y and a combining circumflex
        if ch == _HAT:
            continue
        if k + 1 < len(text) and text[k + 1] == _HAT and ch.isascii() and ch.isalpha():
            out.append(rf"$\hat{{{ch}}}$")
        elif len(parts) == 2 and parts[1] == _HAT and parts[0].isascii():
            out.append(rf"$\hat{{{parts[0]}}}$")
        elif ch in _TEX_MATH:
            out.append(_TEX_MATH[ch])
        elif ch in _TEX_SPECIAL:
            out.append(_TEX_SPECIAL[ch])
        elif ch in _GREEK_LETTERS and _GREEK_LETTERS[ch] != "o":
            out.append(rf"$\{_GREEK_LETTERS[ch]}$")
        elif ch == "\n" or " " <= ch <= "~" or "\u00c0" <= ch <= "\u00ff" and ch not in "×÷ÐÞðþ":
            out.append(ch)
        else:
            out.append(rf"\textsc{{u+{ord(ch):04x}}}")
    return "".join(out)
