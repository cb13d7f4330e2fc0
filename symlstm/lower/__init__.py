"""Lowering: a derivation turned into the plan every backend prints (fused matrix products,
the values the backward pass reads from the forward one, common subexpressions)."""
