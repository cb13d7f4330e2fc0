"""The backends: each a printer plus its template folder, fed by the same lowered plan
(:func:`.code.code_context`): NumPy (:mod:`.numpy`, ``templates/numpy/``), Numba (:mod:`.numba`,
``templates/numba/``) and PyTorch (:mod:`.torch`, ``templates/torch/``)."""
