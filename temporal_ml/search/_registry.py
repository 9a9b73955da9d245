"""The searchers a sweep may name by ``kind``: the built-ins and your own.

A sweep's input carries its searcher as JSON (``{"kind": "tpe", ...}``) through Temporal; this
registry turns the ``kind`` back into the class. Register your searcher in a module that both the
starter and the orchestration worker (which runs the sweep and its ``suggest``/``plan`` activities)
import. Suggestions are computed once and recorded in the sweep's history, so a searcher of your own
need not even be pure for a sweep to replay; it must be for :func:`temporal_ml.audit.audit_sweep`
to find no mismatch.

Example (``kind: Literal["midpoint"] = "midpoint"`` in a module of your own):
    >>> from temporal_ml.search import BaseSearcher, SearchSpace, Float, register_searcher
    >>> @register_searcher
    ... class Midpoint(BaseSearcher):
    ...     kind: str = "midpoint"
    ...     def suggest(self, space, history, *, seed, index, direction="minimize"):
    ...         return {name: p.from_unit(0.5) for name, p in space.params.items()}
    >>> searcher_from_json({"kind": "midpoint"}).suggest(SearchSpace({"x": Float(0, 2)}), [], seed=0, index=0)
    {'x': 1.0}
"""

from __future__ import annotations

import threading
from typing import Annotated, Any, TypeVar

from pydantic import BeforeValidator, SerializeAsAny, ValidationError

from temporal_ml.search._base import Searcher

__all__ = ["AnySearcher", "register_searcher", "searcher_kinds", "searcher_from_json"]

S = TypeVar("S", bound=type[Searcher])

_lock = threading.Lock()
_SEARCHERS: dict[str, type[Searcher]] = {}


def register_searcher(cls: S) -> S:
    """Make sweeps accept ``cls`` by its ``kind`` (a class decorator; returns ``cls``).

    ``cls`` subclasses :class:`~temporal_ml.search.BaseSearcher`, declares ``kind`` as a string
    with a default (e.g. ``kind: Literal["mine"] = "mine"``) and implements ``suggest``.

    Raises:
        ValueError: ``cls`` is not a searcher, has no ``kind`` default, or takes a kind another
            class has.
    """
    if not (isinstance(cls, type) and issubclass(cls, Searcher)):
        raise ValueError(f"{cls!r} is not a searcher: subclass temporal_ml.search.BaseSearcher")
    fields: dict[str, Any] = dict(cls.__pydantic_fields__)
    kind = fields["kind"].default if "kind" in fields else None
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"searcher {cls.__name__} needs a kind with a default, e.g. kind: Literal['mine'] = 'mine'")
    with _lock:
        known = _SEARCHERS.get(kind)
        if known is not None and known is not cls and known.__qualname__ != cls.__qualname__:
            raise ValueError(f"searcher kind {kind!r} is taken by {known.__module__}.{known.__qualname__}")
        _SEARCHERS[kind] = cls
    return cls


def searcher_kinds() -> list[str]:
    """Every kind a sweep accepts now (built-ins and registered ones), sorted."""
    with _lock:
        return sorted(_SEARCHERS)


def searcher_from_json(value: Any) -> Searcher:
    """The searcher ``value`` describes: a searcher, or its JSON object with its ``kind``.

    Raises:
        ValueError: one line: an unknown kind (with the choices), or bad settings.
    """
    if isinstance(value, Searcher):
        return value
    if not isinstance(value, dict):
        raise ValueError(f"a searcher is an object with a 'kind' ({', '.join(searcher_kinds())}), "
                         f"not {type(value).__name__}")
    kind = value.get("kind", "random")
    with _lock:
        cls = _SEARCHERS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"unknown searcher kind {kind!r}; choose from {', '.join(searcher_kinds())}, or "
                         "register yours with temporal_ml.search.register_searcher in a module the "
                         "orchestration worker imports")
    try:
        return cls.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"{kind} searcher: {where + ': ' if where else ''}{first['msg']}") from None


AnySearcher = Annotated[SerializeAsAny[Searcher], BeforeValidator(searcher_from_json)]
"""Any registered searcher, as a field type of a workflow input (JSON carries its ``kind``)."""
