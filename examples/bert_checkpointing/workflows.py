"""The bert_checkpointing workflow: the library's TrainingWorkflow, registered under its own name.

Everything durable (snapshot, checkpoints, resume, pause/resume/stop-early, progress queries) is
inherited; this module only names the workflow."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from temporal_ml.types import TrainResult
    from temporal_ml.workflows.training import TrainingInput, TrainingWorkflow

TASK_QUEUE = "bert-checkpointing"


@workflow.defn(name="BertCheckpointing")
class BertCheckpointingWorkflow(TrainingWorkflow):
    @workflow.run
    async def run(self, inp: TrainingInput) -> TrainResult:
        return await super().run(inp)
