"""Activity names and their input/output models: the contract between workflows and activities.

Light on purpose (pydantic only): workflows import it on orchestration workers that have no torch.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from temporal_ml.types import CheckpointRef, SnapshotRef, TrainConfig

__all__ = [
    "TRAIN",
    "PREDICT",
    "CREATE_SNAPSHOT",
    "REGISTERED_SEARCH_ATTRIBUTES",
    "REPORT_SIGNAL",
    "RENDEZVOUS_SIGNAL",
    "TrainRequest",
    "TrainOutcome",
    "PredictRequest",
    "EVALUATE",
    "EvalRequest",
]

CREATE_SNAPSHOT = "temporal_ml.create_snapshot"
EVALUATE = "temporal_ml.evaluate"
TRAIN = "temporal_ml.train"
PREDICT = "temporal_ml.predict"
#: Local activity: the temporal-ml search attributes registered on the worker's namespace.
REGISTERED_SEARCH_ATTRIBUTES = "temporal_ml.registered_search_attributes"
#: Signal the training activity sends its workflow: a :class:`TrainProgress`.
REPORT_SIGNAL = "tml_report"
#: Signal node 0's training activity sends its workflow with ``rendezvous="auto"``: the gang id and
#: the ``host:port`` where it hosts that gang's c10d rendezvous store.
RENDEZVOUS_SIGNAL = "tml_rendezvous"


class TrainRequest(BaseModel):
    """Input of the ``train`` activity."""

    model_config = ConfigDict(ser_json_inf_nan="strings")

    run_id: str
    config: TrainConfig
    snapshot: SnapshotRef
    resume_from: CheckpointRef | None = None
    resumes: int = 0
    #: This start recovers from a failure (a gang restarted after one of its nodes failed): its
    #: restore counts as a resume even on the activity's first attempt. Otherwise a first attempt
    #: that restores ``resume_from`` continues (a pause ended, a continue-as-new): no resume.
    recovery: bool = False
    progress_every_seconds: float = 10.0
    #: Further workflows (e.g. a coordinator) to send progress reports to, besides the caller.
    report_to: list[str] = []
    #: Stop at the first step boundary: resume (or set up), checkpoint there and return (a stop
    #: requested before the run had any checkpoint).
    stop_at_start: bool = False
    #: A gang over several nodes: how many, which one this activity runs, node 0's c10d rendezvous
    #: endpoint (``host:port``, or ``"auto"`` on node 0: pick one and signal it to the workflow) and
    #: the id every node of this gang passes to the rendezvous.
    nodes: int = 1
    node_rank: int = 0
    rendezvous: str | None = None
    gang_id: str | None = None
    #: Another run's checkpoint to warm-start from (``TrainingInput.init_from``); left out of the
    #: payload when unset, so requests stay those of earlier versions.
    init_from: CheckpointRef | None = Field(default=None, exclude_if=lambda v: v is None)


class TrainOutcome(BaseModel):
    """Result of the ``train`` activity."""

    model_config = ConfigDict(ser_json_inf_nan="strings")

    step: int
    checkpoint: CheckpointRef
    metrics: dict[str, float]
    resumes: int
    stopped: bool = False


class PredictRequest(BaseModel):
    """Input of the ``predict`` activity: a checkpoint (verified by digest) and raw inputs."""

    model_config = ConfigDict(ser_json_inf_nan="strings")

    config: TrainConfig
    snapshot: SnapshotRef
    checkpoint: CheckpointRef
    inputs: list[Any]


class EvalRequest(BaseModel):
    """Input of the ``evaluate`` activity: a checkpoint (verified by digest) and a snapshot split."""

    model_config = ConfigDict(ser_json_inf_nan="strings")

    config: TrainConfig
    snapshot: SnapshotRef
    checkpoint: CheckpointRef
    split: str
