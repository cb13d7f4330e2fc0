"""Networks around a cell: output heads and losses (:mod:`.heads`), clipping, truncated BPTT
and training (:mod:`.training`), weights to and from PyTorch (:mod:`.torch_weights`)."""
