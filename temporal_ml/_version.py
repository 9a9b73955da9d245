"""The library version (single source of truth for pyproject and lineage)."""

__version__ = "0.1.0"
