"""Deterministic simulations of the pure cores."""
