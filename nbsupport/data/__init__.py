"""Loaders for data that ships offline in packages (see data/README.md)."""
