"""The documents: the LaTeX printer (:mod:`.latex`) and its line breaks (:mod:`.lines`), a
cell's derivation document and the worked example (:mod:`.document`), the mistakes checked
(:mod:`.mistakes`), a row-major cell's batch form (:mod:`.batched`), the
overview (:mod:`.overview`), the pieces they share (:mod:`.tex`), the step graph laid out
(:mod:`.layout`) and drawn (:mod:`.drawing`), figures (:mod:`.figures`), notation of other
texts (:mod:`.notation`) and the worked example's numbers (:mod:`.worked`)."""
