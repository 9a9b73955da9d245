"""The names of the metric sinks a run may choose (``TrainConfig.metric_sinks``), below every other
module: a config checks its names here, while :mod:`temporal_ml.metric_sinks` holds what the names
make (the built-ins' factories are imported only when a run resolves them)."""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import Any

from temporal_ml.errors import ConfigError

__all__ = ["BUILTIN", "register", "names", "check", "factory_of"]

#: The built-in sinks, by the import path of their factory (imported only when a run uses one).
BUILTIN = {
    "mlflow": "temporal_ml._sink_builtins:MLflowSink",
    "tensorboard": "temporal_ml._sink_builtins:TensorBoardSink",
    "wandb": "temporal_ml._sink_wandb:WandbSink",
}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
REFERENCE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_lock = threading.Lock()
_registry: dict[str, Any] = {}  # name -> factory (or a built-in's import path until resolved)
_registry.update(BUILTIN)


def register(name: str, factory: Any, *, replace: bool = False) -> None:
    """Register ``factory`` under ``name`` (see :func:`temporal_ml.metric_sinks.register_metric_sink`)."""
    if not NAME.match(name):
        raise ConfigError(f"invalid metric sink name {name!r}: use letters, digits, '_', '.', '-'")
    with _lock:
        known = _registry.get(name)
        if known is not None and not replace and known is not factory and not isinstance(known, str):
            raise ConfigError(f"metric sink {name!r} is already registered (pass replace=True)")
        _registry[name] = factory


def names() -> list[str]:
    """Every registered name, built-ins included, sorted."""
    with _lock:
        return sorted(_registry)


def check(sinks: Sequence[str], *, registered: bool = True) -> list[str]:
    """Check sink names: each is registered here or a ``module:attr`` reference, none twice.

    Raises:
        ConfigError: one line naming the bad entry and the choices.
    """
    seen: set[str] = set()
    for name in sinks:
        if name in seen:
            raise ConfigError(f"metric sink {name!r} is listed twice")
        seen.add(name)
        if REFERENCE.match(name):
            continue
        if not NAME.match(name) or (registered and name not in _registry):
            raise ConfigError(
                f"unknown metric sink {name!r}; choose from {', '.join(names())}, a name registered with "
                "temporal_ml.metric_sinks.register_metric_sink, or a 'module:factory' reference "
                "(the JSONL log is always written)"
            )
    return list(sinks)


def factory_of(name: str) -> Any:
    """The factory registered as ``name`` (a built-in's is imported now); ``None`` if unknown."""
    import importlib

    with _lock:
        known = _registry.get(name)
    if isinstance(known, str):
        module, _, attr = known.partition(":")
        known = getattr(importlib.import_module(module), attr)
        with _lock:
            if isinstance(_registry.get(name), str):
                _registry[name] = known
    return known
