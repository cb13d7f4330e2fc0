"""The derivation: the one-step reverse sweep, one term per path (:mod:`.sweep`); the
recurrences through time and the parameter sums (:mod:`.bptt`); the state-to-state
Jacobians read off the sweep (:mod:`.jacobians`)."""
