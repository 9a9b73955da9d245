"""The ``temporal-ml`` command line (``temporal-ml --help``). Its only public name is :func:`main`;
the library's API never imports this package (a test keeps it so)."""

from temporal_ml.cli._main import main

__all__ = ["main"]
