"""The examples in the library's docstrings run and print what they say (``doctest`` over every
module of ``temporal_ml``), so the public API's documentation cannot drift from the code."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import temporal_ml

MODULES = sorted(m.name for m in pkgutil.walk_packages(temporal_ml.__path__, "temporal_ml."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    from temporal_ml.search import _registry

    module = importlib.import_module(name)
    registered = dict(_registry._SEARCHERS)  # an example may register a searcher: it leaves with the test
    try:
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                                 verbose=False)
    finally:
        _registry._SEARCHERS.clear()
        _registry._SEARCHERS.update(registered)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples of {name} failed (above)"
