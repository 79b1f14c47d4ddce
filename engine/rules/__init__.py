"""The billing rules of shared/RULES.md, one module per rule, as pure functions."""
