"""``InferenceWorkflow``: predictions and confidences of a checkpoint for a batch of inputs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import Field
from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from temporal_ml.activities._fail_fast import NON_RETRYABLE
    from temporal_ml.activities.messages import PREDICT, PredictRequest
    from temporal_ml.types import (
        BoundaryModel,
        CheckpointRef,
        PredictionResult,
        SnapshotRef,
        TrainConfig,
        TrainResult,
    )

__all__ = ["InferenceWorkflow", "InferenceInput"]


class InferenceInput(BoundaryModel):
    """Input of an inference workflow: what was trained (config, snapshot, checkpoint) and the inputs.

    Build it from a training result with :meth:`from_result`.
    """

    config: TrainConfig
    snapshot: SnapshotRef
    checkpoint: CheckpointRef
    inputs: list[Any]
    task_queue: str | None = None
    #: A worker silent this long (killed, lost) is considered dead and the prediction is retried.
    heartbeat_timeout_seconds: float = Field(default=30.0, gt=0)

    @classmethod
    def from_result(cls, config: TrainConfig, result: TrainResult, inputs: list[Any],
                    task_queue: str | None = None) -> InferenceInput:
        """Inputs for predicting with the final checkpoint of a training run."""
        return cls(config=config, snapshot=result.snapshot, checkpoint=result.checkpoint,
                   inputs=inputs, task_queue=task_queue)


class InferenceWorkflow:
    """Base of inference workflows: one verified-checkpoint prediction activity."""

    async def run(self, inp: InferenceInput) -> PredictionResult:
        """Predict ``inp.inputs`` with ``inp.checkpoint``."""
        request = PredictRequest(config=inp.config, snapshot=inp.snapshot, checkpoint=inp.checkpoint,
                                 inputs=inp.inputs)
        return await workflow.execute_activity(
            PREDICT, request, result_type=PredictionResult, task_queue=inp.task_queue,
            start_to_close_timeout=timedelta(minutes=30),
            heartbeat_timeout=timedelta(seconds=inp.heartbeat_timeout_seconds),
            retry_policy=RetryPolicy(maximum_attempts=3,
                                     non_retryable_error_types=[e.__name__ for e in NON_RETRYABLE]),
        )
