"""Backends beyond NumPy: each is a printer (how one step's statements are spelled) and a
template folder, fed by the same lowered plan (:func:`symlstm.render.code_context`)."""
