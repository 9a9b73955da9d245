"""Tiny workflows used by the integration tests of the foundation (kept out of test modules so the
workflow sandbox imports only this light module)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from temporal_ml.types import CheckpointRef, SnapshotRef


@activity.defn
async def checkpoint_for(snapshot: SnapshotRef) -> CheckpointRef:
    """Returns a typed model built from a typed input, to prove both cross the boundary intact."""
    return CheckpointRef(
        run_id=f"run-{snapshot.short_id}", step=sum(snapshot.splits.values()),
        uri=f"{snapshot.root}/ckpt", model_sha256="0" * 64, metrics={"loss": 0.25},
    )


@workflow.defn
class EchoRefWorkflow:
    @workflow.run
    async def run(self, snapshot: SnapshotRef) -> CheckpointRef:
        return await workflow.execute_activity(
            checkpoint_for, snapshot, start_to_close_timeout=timedelta(seconds=30)
        )


@workflow.defn
class WaitForSignalWorkflow:
    def __init__(self) -> None:
        self.done = False

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.done)
        return "finished"

    @workflow.signal
    def finish(self) -> None:
        self.done = True


@workflow.defn
class LongSleepWorkflow:
    @workflow.run
    async def run(self, snapshot: SnapshotRef) -> SnapshotRef:
        await workflow.sleep(timedelta(days=3))
        return snapshot
