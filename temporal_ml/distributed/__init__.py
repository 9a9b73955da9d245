"""Data-parallel training on ``torch.distributed``: rank gangs started with torch's elastic launcher,
each rank running the :class:`~temporal_ml.training.TrainingLoop` wrapped in DDP over a sharded,
resumable sampler. The training activity uses it when ``TrainConfig.world_size > 1``.

Needs the ``torch`` extra.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = [
    "GangSupervisor",
    "GangError",
    "check_gang_settings",
    "DistributedTrainingLoop",
    "ShardedSampler",
]

_WHERE = {
    "GangSupervisor": "supervisor", "GangError": "supervisor", "check_gang_settings": "supervisor",
    "DistributedTrainingLoop": "loop", "ShardedSampler": "sampler",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"temporal_ml.distributed.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'temporal_ml.distributed' has no attribute {name!r}")
