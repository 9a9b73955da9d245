"""A training run whose gang of ranks spans several nodes (``TrainingInput.nodes > 1``): one training
activity per node, all or nothing, restarted together from the last checkpoint when one fails.
The mixin of :class:`~temporal_ml.workflows.training.TrainingWorkflow` for that path; one node's
path reads top to bottom in ``training.py``."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from temporal_ml.activities.messages import RENDEZVOUS_SIGNAL, TRAIN, TrainOutcome, TrainRequest
    from temporal_ml.types import SnapshotRef, TrainProgress
    from temporal_ml.workflows._training_input import TrainingInput, no_worker_timeout

__all__ = ["MultiNodeTraining", "MULTINODE_PATCH"]

#: ``workflow.patched`` id of gangs over several nodes (``TrainingInput.nodes > 1``): one training
#: activity per node, all restarted together. Only runs with ``nodes > 1`` reach it.
MULTINODE_PATCH = "tml-multinode-v1"


class MultiNodeTraining:
    """``_train_nodes`` and the rendezvous signal of a gang over several nodes."""

    _progress: TrainProgress
    _paused: bool
    _stop_requested: bool
    _rollover: bool
    _cancelled: bool
    _stopping_activity: bool
    _activity: workflow.ActivityHandle[TrainOutcome] | None
    _gang: list[workflow.ActivityHandle[TrainOutcome]]
    _gangs: int
    _gang_failures: int
    _gang_failed: bool
    _endpoints: dict[str, str]

    # the training workflow provides these
    def _control_v2(self) -> bool:
        raise NotImplementedError

    def _set_state(self, state: str) -> None:
        raise NotImplementedError

    def _interrupt(self) -> None:
        raise NotImplementedError

    def _interrupted(self) -> None:
        raise NotImplementedError

    def _record(self, report: TrainProgress) -> None:
        raise NotImplementedError

    async def _train_nodes(self, inp: TrainingInput, run_id: str,
                           snapshot: SnapshotRef) -> TrainOutcome | None:
        """One gang over ``inp.nodes`` nodes: one activity per node, all or nothing.

        Each node's activity is tried once (a node never retries alone). When one fails, the others
        are cancelled, and once all have ended ``None`` is returned: the run loop starts a new gang
        (a new gang id) from the last committed checkpoint, after a short backoff. A failure no
        retry can fix, or the ``max_attempts``-th gang failure, fails the run.
        """
        self._control_v2()
        stop_now = self._stop_requested
        self._set_state("stopping" if stop_now else "training")
        self._gangs += 1
        gang_id = f"{run_id}-gang-{self._gangs}"
        recovery, self._gang_failed = self._gang_failed, False  # the last gang failed: this one recovers
        queues: list[str | None] = [inp.task_queue] * inp.nodes
        if inp.node_task_queues:
            queues = [*inp.node_task_queues]

        def start(node: int, rendezvous: str | None,
                  stop: bool = stop_now) -> workflow.ActivityHandle[TrainOutcome]:
            return workflow.start_activity(
                TRAIN, TrainRequest(
                    run_id=run_id, config=inp.config, snapshot=snapshot,
                    resume_from=self._progress.latest_checkpoint, resumes=self._progress.resumes,
                    recovery=recovery,
                    progress_every_seconds=inp.progress_every_seconds, report_to=inp.report_to,
                    stop_at_start=stop, nodes=inp.nodes, node_rank=node, rendezvous=rendezvous,
                    gang_id=gang_id),
                result_type=TrainOutcome, task_queue=queues[node],
                start_to_close_timeout=timedelta(days=30), schedule_to_start_timeout=no_worker_timeout(inp),
                heartbeat_timeout=timedelta(seconds=inp.heartbeat_timeout_seconds),
                retry_policy=RetryPolicy(maximum_attempts=1),
                cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )

        auto = inp.rendezvous == "auto"  # node 0 first; the others once it published its endpoint
        handles = [start(node, inp.rendezvous) for node in range(1 if auto else inp.nodes)]
        self._activity, self._gang = handles[0], handles  # _interrupt cancels those started
        self._cancelled, self._stopping_activity = False, stop_now
        if self._paused or self._stop_requested or self._rollover:  # requested while starting
            self._interrupt()
        if auto:  # node 0 publishes its endpoint before it gathers the gang, or ends
            await workflow.wait_condition(lambda: gang_id in self._endpoints or handles[0].done())
            endpoint = self._endpoints.pop(gang_id, None)
            if endpoint is not None and not handles[0].done():
                # Node 0 waits for the others in the rendezvous: start them even if interrupted
                # meanwhile, then in stop mode (the gang forms and stops at its first boundary).
                stop = stop_now or self._cancelled
                handles.extend(start(node, endpoint, stop) for node in range(1, inp.nodes))
        failures: list[tuple[int, ActivityError]] = []  # (node, error), in the order they came

        async def settle(node: int, handle: workflow.ActivityHandle[TrainOutcome]) -> TrainOutcome | None:
            try:
                return await handle
            except asyncio.CancelledError:
                if self._cancelled and handle.cancelled():  # interrupted before it was scheduled
                    return None
                raise  # the workflow itself is cancelled
            except ActivityError as err:
                if not isinstance(err.cause, CancelledError):
                    if not failures:  # the first failure brings the whole gang down
                        for other in handles:
                            if other is not handle and not other.done():
                                other.cancel()
                    failures.append((node, err))
                return None

        try:
            results = await asyncio.gather(*(settle(n, h) for n, h in enumerate(handles)))
        finally:
            self._activity, self._gang = None, []
            self._cancelled = self._stopping_activity = False
        outcomes = [r for r in results if r is not None]
        if outcomes:  # the node of global rank 0 has the evaluation metrics and the resume count
            best = max(outcomes, key=lambda o: (len(o.metrics), o.resumes))
            self._record(TrainProgress(step=best.step, latest_checkpoint=best.checkpoint,
                                       resumes=best.resumes, loss=best.metrics.get("loss")))
            if len(outcomes) == inp.nodes:
                return best
        if not failures:  # interrupted by this workflow (pause, stop, rollover)
            self._interrupted()
            return None
        self._gang_failures += 1
        self._gang_failed = True
        final = next((f for _, f in failures if isinstance(f.cause, ApplicationError)
                      and f.cause.non_retryable), None)
        if final is not None or 0 < inp.max_attempts <= self._gang_failures:
            self._set_state("failed")
            raise final or failures[0][1]
        workflow.logger.warning(
            "run %s: gang %s failed (%s); restarting all %d nodes from the last checkpoint",
            run_id, gang_id, "; ".join(f"node {n}: {f.cause or f}" for n, f in failures), inp.nodes)
        await workflow.sleep(timedelta(seconds=min(30, 2 ** (self._gang_failures - 1))))
        self._set_state("stopping" if self._stop_requested
                        else "paused" if self._paused else "training")
        return None

    @workflow.signal(name=RENDEZVOUS_SIGNAL)
    def _on_rendezvous(self, *args: Any) -> None:
        """Node 0 of a gang with ``rendezvous="auto"`` published where it hosts the rendezvous
        (``gang_id, "host:port"``; anything else is dropped, never failing the workflow task)."""
        if len(args) == 2 and all(isinstance(a, str) for a in args):
            self._endpoints[args[0]] = args[1]
        else:
            workflow.logger.warning("dropping a malformed %s signal: %r", RENDEZVOUS_SIGNAL, args)

