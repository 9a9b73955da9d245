"""``TrainingInput`` for a gang over several nodes: bad settings are refused before a run starts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from temporal_ml.types import SnapshotRef, TrainConfig
from temporal_ml.workflows.training import TrainingInput

CONFIG = TrainConfig(trainable="mlp", max_steps=10, batch_size=4)
SNAPSHOT = SnapshotRef(id="a" * 64, root="memory://snaps", splits={"train": 8})


def _input(**kw: object) -> TrainingInput:
    return TrainingInput(config=kw.pop("config", CONFIG), snapshot=SNAPSHOT, **kw)  # type: ignore[arg-type]


def test_defaults_are_one_node() -> None:
    inp = _input()
    assert inp.nodes == 1 and inp.node_task_queues is None and inp.rendezvous is None


def test_a_gang_over_nodes_is_accepted() -> None:
    inp = _input(nodes=2, node_task_queues=["n0", "n1"], rendezvous="10.0.0.5:29400")
    assert inp.nodes == 2
    assert _input(nodes=2, rendezvous="auto").rendezvous == "auto"  # node 0 publishes it


@pytest.mark.parametrize(("kw", "message"), [
    ({"nodes": 2}, "needs rendezvous='host:port'"),
    ({"nodes": 2, "rendezvous": "10.0.0.5"}, "needs rendezvous='host:port'"),
    ({"nodes": 2, "rendezvous": "h:1", "node_task_queues": ["n0"]}, "1 queues for 2 nodes"),
    ({"nodes": 0}, "greater than or equal to 1"),
    ({"nodes": 3, "rendezvous": "h:1", "config": CONFIG.model_copy(update={"world_size": 2})},
     "smaller than the 6 ranks"),
])
def test_bad_gang_settings_are_refused(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _input(**kw)
