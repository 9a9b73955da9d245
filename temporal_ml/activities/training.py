"""The training and prediction activities.

``train`` is an ``async`` activity that runs the :class:`TrainingLoop` in a worker thread and
supervises it from the event loop: it heartbeats ``{step, latest checkpoint, resumes}`` every
``heartbeat_every_seconds``, signals the workflow after each committed checkpoint (and with progress
every ``progress_every_seconds``), and on cancellation asks the loop to checkpoint and stop at the
next step boundary before reporting the cancellation. A retried attempt resumes from the newest valid
checkpoint of the run (the one in its heartbeat details, the one the workflow recorded, or a newer
committed one in the store).

A request with ``init_from`` (another run's checkpoint: the warm start of population-based training)
first copies it, verified, into the run's own directory when the run has no checkpoint at or past its
step, and continues from the copy with the request's config (see :class:`TrainingLoop`); continuing
from the copy is planned, not a resume.

With ``TrainConfig.world_size > 1`` (or ``trainings_in_processes=True``) the thread does not run the
loop itself: it supervises a gang of ranks in child processes
(:class:`temporal_ml.distributed.GangSupervisor`), whose rank 0 reports the same progress and
checkpoints; everything above holds for the gang as a whole.
A request with ``nodes > 1`` runs this node's part of a gang over several nodes (see
``TrainingWorkflow``): its ranks join the others through the c10d rendezvous at ``rendezvous``, and
only the node of global rank 0 reports progress to the workflow.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from temporalio import activity

from temporal_ml._names import check_name
from temporal_ml.activities._fail_fast import fail_fast, fail_fast_async
from temporal_ml.activities._heartbeat import heartbeating
from temporal_ml.activities.messages import (
    PREDICT,
    RENDEZVOUS_SIGNAL,
    REPORT_SIGNAL,
    TRAIN,
    PredictRequest,
    TrainOutcome,
    TrainRequest,
)
from temporal_ml.errors import ConfigError
from temporal_ml.metric_sinks import resolve_metric_sinks
from temporal_ml.storage.checkpoints import CheckpointManager
from temporal_ml.storage.snapshots import SnapshotStore
from temporal_ml.training.control import LoopControl
from temporal_ml.training.loop import LoopResult, TrainingLoop
from temporal_ml.training.restore import setup_from_checkpoint
from temporal_ml.training.setup_cache import SetupCache, WorkerCache, cached_snapshot
from temporal_ml.training.trainable import Trainable
from temporal_ml.types import CheckpointRef, PredictionResult, TrainProgress

__all__ = ["TrainingActivities"]

log = logging.getLogger(__name__)

class _Supervisor:
    """State shared between the training thread and the activity's event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, run_id: str, max_steps: int, resumes: int) -> None:
        self._loop = loop
        self.progress = TrainProgress(state="training", run_id=run_id, max_steps=max_steps,
                                      resumes=resumes)
        #: The loop (or, in a gang, global rank 0 on this node) has started: its progress is real.
        self.started = False

    def _apply(self, **changes: Any) -> None:  # runs on the event loop
        self.progress = self.progress.model_copy(update=changes)

    def on_start(self, step: int, resumed_from: CheckpointRef | None, recorded: int = 0,
                 continues_from: int | None = None) -> None:
        changes: dict[str, Any] = {"step": step, "latest_checkpoint": resumed_from}
        if resumed_from is not None:
            planned = continues_from is not None and resumed_from.step >= continues_from
            changes["resumes"] = max(self.progress.resumes + (0 if planned else 1), recorded)

        def apply() -> None:
            self.started = True
            self._apply(**changes)

        self._loop.call_soon_threadsafe(apply)

    def on_eval_rows(self, rows: Any) -> None:  # the evaluation at the end of training: how far
        self._loop.call_soon_threadsafe(lambda: self._apply(eval_rows=rows))

    def on_progress(self, p: TrainProgress) -> None:
        self._loop.call_soon_threadsafe(lambda: self._apply(
            step=p.step, epoch=p.epoch, loss=p.loss, samples_per_second=p.samples_per_second))

    def on_checkpoint(self, ref: CheckpointRef) -> None:
        def apply() -> None:
            current = self.progress.latest_checkpoint
            if current is None or ref.step >= current.step:
                self._apply(latest_checkpoint=ref)

        self._loop.call_soon_threadsafe(apply)


class TrainingActivities:
    """Training and prediction activities bound to their stores and trainables.

    Args:
        trainables: name -> :class:`Trainable` (``TrainConfig.trainable`` picks one).
        snapshot_store: the store the runs' snapshots are read from.
        checkpoint_root: fsspec URL under which each run keeps ``<run_id>/step-*/`` checkpoints.
        metrics_dir: local directory for ``<run_id>/metrics.jsonl`` (``None``: no metrics files).
        heartbeat_every_seconds: how often the training activity heartbeats.
        storage_options: fsspec options for the checkpoint root.
        max_concurrent_trainings: training loops run on this many long-lived threads (set it to the
            number of GPUs; more concurrent ``train`` activities wait for a free thread). Reusing the
            same threads matters on CPU: every new thread that runs torch gets its own OpenMP pool,
            and once the pools outnumber the cores, OpenMP stops spin-waiting and small ops slow down
            by up to 2x.
        trainings_in_processes: run every training, world size 1 included, in child processes
            started by the gang supervisor (:mod:`temporal_ml.distributed`), each pinned to
            ``TrainConfig.threads_per_rank`` threads, so several trainings of one worker run truly
            in parallel instead of taking turns under the process-wide RNG lock. Default ``False``:
            a world-size-1 run trains on a thread of this process (no start-up cost).
        setup_cache: the worker's memory cache of loaded snapshots and of what trainables derive from
            the data (tokenized splits; their store copies live under the snapshot store's
            ``cache/``), so a run continued from a rung checkpoint does not set its data up again
            (default: this process's :meth:`WorkerCache.default`, shared with the evaluation
            activities; ``WorkerCache(max_entries=0)``: none).
    """

    def __init__(
        self,
        *,
        trainables: Mapping[str, Trainable],
        snapshot_store: SnapshotStore,
        checkpoint_root: str,
        metrics_dir: str | Path | None = None,
        heartbeat_every_seconds: float = 1.0,
        storage_options: dict[str, Any] | None = None,
        max_concurrent_trainings: int = 1,
        trainings_in_processes: bool = False,
        setup_cache: WorkerCache | None = None,
    ) -> None:
        if max_concurrent_trainings < 1:
            raise ConfigError(f"max_concurrent_trainings must be >= 1, got {max_concurrent_trainings}")
        self.trainables = dict(trainables)
        #: The threads training loops run on (see ``max_concurrent_trainings``).
        self.training_executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_concurrent_trainings, thread_name_prefix="tml-train"
        )
        self.snapshots = snapshot_store
        self.checkpoint_root = checkpoint_root
        self.metrics_dir = Path(metrics_dir) if metrics_dir is not None else None
        self.heartbeat_every_seconds = heartbeat_every_seconds
        self.storage_options = storage_options
        self.trainings_in_processes = trainings_in_processes
        #: What each run's trainable gets as ``TrainContext.cache``.
        self.setup_cache = SetupCache.for_worker(snapshot_store.array_cache(), setup_cache)

    def activities(self) -> list[Callable[..., Any]]:
        """The activity callables to register on a training worker."""
        return [self.train, self.predict]

    def _trainable(self, name: str) -> Trainable:
        try:
            return self.trainables[name]
        except KeyError:
            raise ConfigError(
                f"unknown trainable {name!r}; this worker has {sorted(self.trainables)}"
            ) from None

    def _loop(self, req: TrainRequest, control: LoopControl) -> TrainingLoop:
        run_id = check_name(req.run_id, "run id")
        data = cached_snapshot(self.setup_cache.memory, self.snapshots, req.snapshot)
        checkpoints = CheckpointManager(
            self.checkpoint_root, run_id, keep_last=req.config.keep_last,
            storage_options=self.storage_options,
        )
        metrics = self.metrics_dir / run_id / "metrics.jsonl" if self.metrics_dir else None
        return TrainingLoop(self._trainable(req.config.trainable), req.config, run_id=run_id,
                            data=data, checkpoints=checkpoints, metrics_path=metrics, control=control,
                            snapshot_id=req.snapshot.id, setup_cache=self.setup_cache,
                            init_from=req.init_from)

    def _gang(self, req: TrainRequest, control: LoopControl) -> Any:
        """A supervisor of ``world_size`` ranks (``TrainConfig.world_size > 1``)."""
        from temporal_ml.distributed.supervisor import GangSupervisor

        run_id = check_name(req.run_id, "run id")
        metrics = self.metrics_dir / run_id / "metrics.jsonl" if self.metrics_dir else None
        return GangSupervisor(
            self._trainable(req.config.trainable), req.config, run_id=run_id,
            snapshot_store=self.snapshots, snapshot=req.snapshot,
            checkpoint_root=self.checkpoint_root, storage_options=self.storage_options,
            metrics_path=metrics, control=control, nodes=req.nodes, node_rank=req.node_rank,
            rendezvous=req.rendezvous, gang_id=req.gang_id, init_from=req.init_from)

    @activity.defn(name=TRAIN)
    @fail_fast_async
    async def train(self, req: TrainRequest) -> TrainOutcome:
        """Train (or resume) the run to ``max_steps``; see the module docstring."""
        self._trainable(req.config.trainable)  # fail fast before loading anything
        if self.metrics_dir is not None:  # an unknown sink or a missing extra: fail now
            resolve_metric_sinks(req.config.metric_sinks)
        info = activity.info()
        prior = _prior_resumes(info.heartbeat_details)
        loop = asyncio.get_running_loop()
        sup = _Supervisor(loop, req.run_id, req.config.max_steps, max(prior, req.resumes))
        control = LoopControl(on_progress=sup.on_progress, on_checkpoint=sup.on_checkpoint,
                              on_eval_rows=sup.on_eval_rows,
                              on_start=lambda step, ref: sup.on_start(step, ref, control.recorded_resumes,
                                                                      control.continues_from))
        # The first attempt of an activity the workflow started from its latest checkpoint (a pause
        # ended, a continue-as-new) continues; a retried attempt (a lost worker) resumes.
        if info.attempt == 1 and req.resume_from is not None and not req.recovery:
            control.continues_from = req.resume_from.step
        if req.stop_at_start:
            control.request_stop("stop")
        handles = [h for h in (_workflow_handle(w) for w in [info.workflow_id, *req.report_to]) if h]
        if req.nodes > 1 and req.rendezvous == "auto":
            req = await _publish_rendezvous(req, _workflow_handle(info.workflow_id))
        # The newest valid of (last heartbeat's checkpoint, the workflow's record, the store) wins.
        hints = [_hint(info.heartbeat_details), req.resume_from]

        def run() -> LoopResult:
            if req.config.world_size > 1 or req.nodes > 1 or self.trainings_in_processes:  # ranks
                return self._gang(req, control).run(resume_hint=hints)
            return self._loop(req, control).run(resume_hint=hints)

        future = loop.run_in_executor(self.training_executor, run)
        last_report = 0.0
        try:
            while not future.done():
                await asyncio.wait([future], timeout=self.heartbeat_every_seconds)
                if future.done():  # the result says the rest: no heartbeat, no report (a signal)
                    break
                activity.heartbeat(sup.progress.model_dump(mode="json"))
                # Reports (checkpoints included) are throttled: each costs the workflow history
                # a few events. The heartbeat details and the store always have the latest one.
                # In a gang over several nodes, only the node of global rank 0 sees the progress.
                if (time.monotonic() - last_report >= req.progress_every_seconds
                        and (req.nodes == 1 or sup.started)):
                    last_report = time.monotonic()
                    await _report(handles, sup.progress)
        except asyncio.CancelledError:
            control.request_stop("cancel")
            # keep heartbeating while the loop checkpoints and stops (a gang of ranks takes a moment
            # to shut down; without heartbeats the attempt would time out instead of being cancelled)
            while not future.done():
                await asyncio.wait([future], timeout=self.heartbeat_every_seconds)
                activity.heartbeat(sup.progress.model_dump(mode="json"))
            result = future.result()
            if req.nodes == 1 or sup.started:
                await _report(handles, sup.progress.model_copy(update={
                    "step": result.step, "latest_checkpoint": result.checkpoint,
                    "state": "stopping"}))
            raise
        result = future.result()
        # No final report: the result carries the final step and checkpoint to the caller, and its
        # parents take them from the caller's result (a report would cost each a signal and a
        # workflow task per run, for nothing).
        return TrainOutcome(step=result.step, checkpoint=result.checkpoint, metrics=result.metrics,
                            resumes=sup.progress.resumes, stopped=result.stopped is not None)

    @activity.defn(name=PREDICT)
    @fail_fast
    def predict(self, req: PredictRequest) -> PredictionResult:
        """Predictions and confidences of a checkpoint (verified by sha256) for raw inputs."""
        trainable = self._trainable(req.config.trainable)
        with heartbeating():
            data = cached_snapshot(self.setup_cache.memory, self.snapshots, req.snapshot)
            setup = setup_from_checkpoint(trainable, req.config, data, req.checkpoint,
                                          storage_options=self.storage_options,
                                          snapshot_id=req.snapshot.id, cache=self.setup_cache)
            predictions = trainable.predict(setup, req.inputs)
        return PredictionResult(checkpoint=req.checkpoint, labels=[p.label for p in predictions],
                                confidences=[p.confidence for p in predictions])


async def _publish_rendezvous(req: TrainRequest, workflow: Any) -> TrainRequest:
    """Node 0 of a gang with ``rendezvous="auto"``: pick this machine's endpoint (host from
    ``TEMPORAL_ML_NODE_ADDRESS``, else its fully qualified name; a free port) and signal it to the
    workflow, which then starts the other nodes with it."""
    if req.node_rank != 0:
        raise ConfigError("rendezvous 'auto' reached a node other than node 0; the workflow passes "
                          "node 0's published endpoint to the others")
    if workflow is None:
        raise ConfigError("rendezvous 'auto' needs a workflow to publish node 0's endpoint to")
    host = os.environ.get("TEMPORAL_ML_NODE_ADDRESS") or socket.getfqdn()
    with socket.socket() as s:
        s.bind(("", 0))
        port = int(s.getsockname()[1])
    endpoint = f"{host}:{port}"
    await workflow.signal(RENDEZVOUS_SIGNAL, args=[req.gang_id, endpoint])
    return req.model_copy(update={"rendezvous": endpoint})


def _last_details(details: Any) -> dict[str, Any] | None:
    if details and isinstance(details[-1], dict):
        return details[-1]
    return None


def _prior_resumes(details: Any) -> int:
    last = _last_details(details)
    return int(last.get("resumes", 0)) if last else 0


def _hint(details: Any) -> CheckpointRef | None:
    last = _last_details(details)
    if last and last.get("latest_checkpoint"):
        try:
            return CheckpointRef.model_validate(last["latest_checkpoint"])
        except ValueError:  # details of another version: the store and the workflow's record remain
            return None
    return None


def _workflow_handle(workflow_id: str | None) -> Any:
    """A handle to signal the calling workflow, or ``None`` outside a workflow (e.g. in a test harness)."""
    try:
        return activity.client().get_workflow_handle(workflow_id) if workflow_id else None
    except RuntimeError:  # no client: not running under a worker
        return None


async def _report(handles: list[Any], progress: TrainProgress) -> None:
    """Signal progress to the workflows; a failed signal is logged, never fatal to training."""
    for handle in handles:
        try:
            await handle.signal(REPORT_SIGNAL, progress)
        except Exception as exc:  # noqa: BLE001 - the checkpoint store remains the source of truth
            log.warning("could not report progress to workflow %s: %s", handle.id, exc)
