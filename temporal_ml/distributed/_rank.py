"""What each rank of a gang runs (in a process the elastic launcher spawned).

The rank reports to its supervisor through files in the gang directory (the supervisor is in another
process, possibly busy): rank 0 appends events (start, progress, committed checkpoints) to
``events.jsonl``; a rank that fails writes ``error-<rank>.json``; every rank writes ``rank-<rank>.pid``.
A rank dies with its supervisor: ``PR_SET_PDEATHSIG`` on Linux, plus a thread that watches the
parent pid (a worker killed with SIGKILL leaves no rank behind).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporal_ml.errors import permanent_error
from temporal_ml.training.trainable import Trainable
from temporal_ml.types import CheckpointRef, SnapshotRef, TrainConfig, TrainProgress

__all__ = ["RankSpec", "run_rank", "die_with_parent"]

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class RankSpec:
    """Everything a rank needs (pickled to it by the launcher)."""

    trainable: Trainable
    config: TrainConfig
    run_id: str
    snapshot_store: Any
    snapshot: SnapshotRef
    checkpoint_root: str
    storage_options: dict[str, Any] | None
    metrics_path: str | None
    hints: tuple[CheckpointRef, ...]
    gang_dir: str
    parent_pid: int
    threads: int
    #: see :attr:`temporal_ml.training.control.LoopControl.continues_from`
    continues_from: int | None = None
    #: another run's checkpoint to warm-start from (see :class:`temporal_ml.training.loop.TrainingLoop`)
    init_from: CheckpointRef | None = None


def die_with_parent(parent_pid: int) -> None:
    """Kill this process when ``parent_pid`` (its parent) goes away."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):  # pragma: no cover - no prctl: the watcher remains
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent_pid:
                os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, daemon=True, name="tml-parent-watch").start()


class _Events:
    """Rank 0's event log (one JSON object per line, appended with a single write)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def write(self, event: str, **values: Any) -> None:
        line = json.dumps({"event": event, **values}) + "\n"
        with self._lock, self.path.open("a") as f:
            f.write(line)


def run_rank(spec: RankSpec) -> dict[str, Any] | None:
    """Train this rank's part of the run; the first rank of each node returns the loop's result as
    JSON values (the final checkpoint is rank 0's, broadcast to every rank)."""
    die_with_parent(spec.parent_pid)
    import torch
    import torch.distributed as dist

    from temporal_ml.distributed.loop import DistributedTrainingLoop
    from temporal_ml.storage.checkpoints import CheckpointManager
    from temporal_ml.training.control import LoopControl
    from temporal_ml.training.setup_cache import SetupCache

    torch.set_num_threads(spec.threads)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    gang = Path(spec.gang_dir)
    (gang / f"rank-{rank}.pid").write_text(str(os.getpid()))
    control = LoopControl()
    if rank == 0:
        events = _Events(gang / "events.jsonl")

        def on_start(step: int, ref: CheckpointRef | None) -> None:
            events.write("start", step=step, resumes=control.recorded_resumes,
                         resumed_from=ref.model_dump(mode="json") if ref else None,
                         continues_from=control.continues_from)

        def on_progress(p: TrainProgress) -> None:
            events.write("progress", **p.model_dump(mode="json", include={
                "step", "epoch", "loss", "samples_per_second"}))

        def on_checkpoint(ref: CheckpointRef) -> None:
            events.write("checkpoint", ref=ref.model_dump(mode="json"))

        control = LoopControl(on_progress=on_progress, on_checkpoint=on_checkpoint,
                              on_start=on_start)
    control.continues_from = spec.continues_from
    backend = spec.config.dist_backend
    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() and spec.config.device != "cpu" else "gloo"
    try:
        dist.init_process_group(backend)
        data = spec.snapshot_store.load(spec.snapshot)
        checkpoints = CheckpointManager(spec.checkpoint_root, spec.run_id,
                                        keep_last=spec.config.keep_last,
                                        storage_options=spec.storage_options)
        loop = DistributedTrainingLoop(
            spec.trainable, spec.config, run_id=spec.run_id, data=data, checkpoints=checkpoints,
            metrics_path=Path(spec.metrics_path) if spec.metrics_path and rank == 0 else None,
            control=control, snapshot_id=spec.snapshot.id, rank=rank, world_size=world,
            local_rank=int(os.environ.get("LOCAL_RANK", rank)), stop_file=gang / "stop",
            # a rank lives for one training: the store's setup cache spares it the data set-up
            setup_cache=SetupCache.for_worker(getattr(spec.snapshot_store, "array_cache", lambda: None)()),
            init_from=spec.init_from,
        )
        result = loop.run(resume_hint=list(spec.hints))
        checkpoints.close()
    except BaseException as exc:
        reported = permanent_error(exc) or exc  # the supervisor fails at once on what cannot heal
        (gang / f"error-{rank}.json").write_text(json.dumps(
            {"rank": rank, "type": type(reported).__name__, "message": str(reported)}))
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if int(os.environ.get("LOCAL_RANK", rank)) != 0:
        return None
    # the first rank of each node reports (on other nodes than rank 0's: no evaluation metrics)
    return {
        "step": result.step,
        "checkpoint": result.checkpoint.model_dump(mode="json"),
        "metrics": result.metrics,
        "resumed_from": result.resumed_from.model_dump(mode="json") if result.resumed_from else None,
        "stopped": result.stopped,
    }
