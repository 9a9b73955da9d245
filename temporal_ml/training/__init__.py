"""Training machinery: the ``Trainable`` interface and the resumable ``TrainingLoop``.

Needs the ``torch`` extra (``pip install 'temporal-ml[torch]'``) for the loop itself.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = [
    "Trainable",
    "TrainContext",
    "TrainSetup",
    "Prediction",
    "TrainingLoop",
    "LoopResult",
    "LoopControl",
    "ResumableSampler",
    "SetupCache",
    "WorkerCache",
]

_WHERE = {
    "Trainable": "trainable", "TrainContext": "trainable", "TrainSetup": "trainable",
    "Prediction": "trainable", "TrainingLoop": "loop", "LoopResult": "loop",
    "LoopControl": "control", "ResumableSampler": "sampler",
    "SetupCache": "setup_cache", "WorkerCache": "setup_cache",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"temporal_ml.training.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'temporal_ml.training' has no attribute {name!r}")
