"""Tiny models used by the notebooks (one module per family)."""
