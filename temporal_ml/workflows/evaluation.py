"""``EvalWorkflow``: evaluate a checkpoint on a split of the snapshot it was trained on."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey, SearchAttributeUpdate

with workflow.unsafe.imports_passed_through():
    from temporal_ml.activities._fail_fast import NON_RETRYABLE
    from temporal_ml.activities.messages import EVALUATE, EvalRequest
    from temporal_ml.types import (
        BoundaryModel,
        CheckpointRef,
        EvalResult,
        SnapshotRef,
        TrainConfig,
        TrainResult,
    )
    from temporal_ml.workflows._tags import registered_search_attributes, tag

__all__ = ["EvalWorkflow", "EvalInput"]


class EvalInput(BoundaryModel):
    """Input of an evaluation workflow. Build it from a training result with :meth:`from_result`."""

    config: TrainConfig
    snapshot: SnapshotRef
    checkpoint: CheckpointRef
    split: str = "dev"
    task_queue: str | None = None
    #: A worker silent this long (killed, lost) is considered dead and the evaluation is retried.
    heartbeat_timeout_seconds: float = Field(default=30.0, gt=0)
    #: An evaluation no worker takes from its queue for this long fails (``None``: wait forever).
    no_worker_timeout_seconds: float | None = Field(default=None, gt=0)
    #: Our search attributes the namespace defines, as a parent found them (``None``: it asks).
    search_attributes: list[str] | None = None

    @classmethod
    def from_result(cls, config: TrainConfig, result: TrainResult, split: str = "dev",
                    task_queue: str | None = None, heartbeat_timeout_seconds: float = 30.0,
                    no_worker_timeout_seconds: float | None = None) -> EvalInput:
        """Evaluate the final checkpoint of a training run on ``split`` of its own snapshot."""
        return cls(config=config, snapshot=result.snapshot, checkpoint=result.checkpoint,
                   split=split, task_queue=task_queue, heartbeat_timeout_seconds=heartbeat_timeout_seconds,
                   no_worker_timeout_seconds=no_worker_timeout_seconds)


class EvalWorkflow:
    """Base of evaluation workflows: one verified-checkpoint evaluation activity."""

    async def run(self, inp: EvalInput) -> EvalResult:
        """Evaluate ``inp.checkpoint`` on ``inp.split``; tags the workflow with the headline metric."""
        result: EvalResult = await workflow.execute_activity(
            EVALUATE, EvalRequest(config=inp.config, snapshot=inp.snapshot, checkpoint=inp.checkpoint,
                                  split=inp.split),
            result_type=EvalResult, task_queue=inp.task_queue,
            start_to_close_timeout=timedelta(hours=2),
            schedule_to_start_timeout=(None if inp.no_worker_timeout_seconds is None
                                       else timedelta(seconds=inp.no_worker_timeout_seconds)),
            heartbeat_timeout=timedelta(seconds=inp.heartbeat_timeout_seconds),
            retry_policy=RetryPolicy(maximum_attempts=5,
                                     non_retryable_error_types=[e.__name__ for e in NON_RETRYABLE]),
        )
        headline = result.accuracy if result.accuracy is not None else result.loss
        pairs: list[SearchAttributeUpdate] = [
            SearchAttributeKey.for_keyword("TmlKind").value_set("eval"),
            SearchAttributeKey.for_keyword("TmlRunId").value_set(inp.checkpoint.run_id),
            SearchAttributeKey.for_keyword("TmlSnapshotId").value_set(inp.snapshot.id),
        ]
        if headline is not None:
            pairs.append(SearchAttributeKey.for_float("TmlMetric").value_set(headline))
        registered = (frozenset(inp.search_attributes) if inp.search_attributes is not None
                      else await registered_search_attributes())
        tag(registered, pairs, {"split": inp.split, "metrics": result.metrics})
        return result
