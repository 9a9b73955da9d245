"""``GangSupervisor``: runs one training as a gang of data-parallel ranks, where torchrun would.

It validates the settings (failing at once, with one line, on what no retry can fix), starts
``world_size`` ranks with torch's elastic launcher (c10d rendezvous on a free local port, no
restarts: a failed gang fails the attempt and Temporal's retry restarts it from the last committed
checkpoint), relays rank 0's events to a :class:`LoopControl` (so the training activity heartbeats
with the gang's progress), and turns a stop request into a stop file the gang obeys at its next step
boundary. A gang that does not stop within ``stop_grace_seconds`` is killed.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
import signal
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from temporal_ml import errors
from temporal_ml.distributed._rank import RankSpec, run_rank
from temporal_ml.errors import ConfigError
from temporal_ml.training.control import LoopControl
from temporal_ml.training.loop import LoopResult
from temporal_ml.training.trainable import Trainable
from temporal_ml.types import CheckpointRef, SnapshotRef, TrainConfig, TrainProgress

__all__ = ["GangSupervisor", "GangError", "check_gang_settings"]

log = logging.getLogger(__name__)


class _NoSignalHandlerWarning(logging.Filter):
    """The elastic agent warns that, started off the main thread, it cannot install signal handlers
    and its workers may be orphaned: our ranks die with their parent process (see ``_rank``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Failed to register signal handlers" not in record.getMessage()


logging.getLogger("torch.distributed.elastic.multiprocessing.api").addFilter(_NoSignalHandlerWarning())


class GangError(RuntimeError):
    """A rank of the gang died or failed (retryable: the retry resumes from the last checkpoint)."""


def check_gang_settings(config: TrainConfig, trainable: Trainable | None = None, nodes: int = 1) -> str:
    """Validate a config for a gang on this machine; returns the backend to use.

    Raises:
        ConfigError: ``nccl`` without CUDA, more ranks than GPUs, a global batch smaller than the
            gang, or a trainable that cannot be pickled to the ranks.
    """
    import torch

    world, backend = config.world_size, config.dist_backend  # ranks on this node
    cuda = torch.cuda.is_available()
    if backend == "nccl" and not cuda:
        raise ConfigError("dist_backend 'nccl' needs CUDA, and this worker has no GPU; use 'gloo' "
                          "(or 'auto')")
    if backend == "auto":
        backend = "nccl" if cuda and config.device != "cpu" else "gloo"
    on_gpu = backend == "nccl" or config.device.startswith("cuda")
    if config.device.startswith("cuda") and not cuda:
        raise ConfigError(f"device {config.device!r} requested but CUDA is not available on this worker")
    if on_gpu and world > torch.cuda.device_count():
        raise ConfigError(f"world_size {world} needs {world} GPUs (one per rank), this worker has "
                          f"{torch.cuda.device_count()}")
    if config.batch_size < world * nodes:
        raise ConfigError(f"batch_size {config.batch_size} (the global batch) is smaller than "
                          f"the {world * nodes} ranks")
    if trainable is not None:
        try:
            pickle.dumps(trainable)
        except Exception as exc:  # noqa: BLE001 - any pickling error means the same
            raise ConfigError(
                f"trainable {config.trainable!r} ({type(trainable).__name__}) cannot be pickled to "
                f"the ranks: {exc}. Define it at module level and keep no locks, lambdas or open "
                "files in its attributes") from None
    return backend


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GangSupervisor:
    """Trains one run with ``config.world_size`` ranks on this machine.

    Args:
        trainable: the model family (pickled to every rank).
        config: the run's configuration (``world_size`` ranks, ``dist_backend``, ``threads_per_rank``).
        run_id: the run.
        snapshot_store: the store the ranks load the snapshot from (pickled to them).
        snapshot: the snapshot to train on.
        checkpoint_root: fsspec URL of the run's checkpoints.
        storage_options: fsspec options of the checkpoint root.
        metrics_path: the run's JSONL metrics file (written by rank 0), or ``None``.
        control: stop requests in, the gang's progress and checkpoints out.
        stop_grace_seconds: how long a stop request waits for the gang's own checkpoint-and-stop
            before the gang is killed (its last committed checkpoint then stands).
        init_from: another run's checkpoint to warm-start from (rank 0 copies it; see
            :class:`temporal_ml.training.loop.TrainingLoop`).
    """

    def __init__(self, trainable: Trainable, config: TrainConfig, *, run_id: str,
                 snapshot_store: Any, snapshot: SnapshotRef, checkpoint_root: str,
                 storage_options: dict[str, Any] | None = None, metrics_path: Path | None = None,
                 control: LoopControl | None = None, stop_grace_seconds: float = 60.0,
                 nodes: int = 1, node_rank: int = 0, rendezvous: str | None = None,
                 gang_id: str | None = None, init_from: CheckpointRef | None = None) -> None:
        self.trainable, self.config, self.run_id = trainable, config, run_id
        self.snapshot_store, self.snapshot = snapshot_store, snapshot
        self.checkpoint_root, self.storage_options = checkpoint_root, storage_options
        self.metrics_path = metrics_path
        self.control = control or LoopControl()
        self.stop_grace_seconds = stop_grace_seconds
        if nodes < 1 or not 0 <= node_rank < nodes:
            raise ConfigError(f"node_rank must be in 0..{nodes - 1}, got {node_rank}")
        if nodes > 1 and not (rendezvous and gang_id):
            raise ConfigError("a gang over several nodes needs a rendezvous endpoint (host:port of "
                              "node 0) and a gang id shared by every node")
        self.nodes, self.node_rank = nodes, node_rank
        self.rendezvous, self.gang_id = rendezvous, gang_id
        self.init_from = init_from

    def _threads(self) -> int:
        if self.config.threads_per_rank is not None:
            return self.config.threads_per_rank
        return max(1, (os.cpu_count() or 1) // self.config.world_size)

    def run(self, resume_hint: Sequence[CheckpointRef | None] = ()) -> LoopResult:
        """Train to ``max_steps`` (or until stopped) from the newest valid checkpoint.

        Raises:
            ConfigError: bad settings (see :func:`check_gang_settings`) or a rank's config error.
            GangError: a rank died or failed otherwise (retry to resume).
        """
        from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs
        from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
        from torch.distributed.launcher.api import LaunchConfig, elastic_launch

        check_gang_settings(self.config, self.trainable, nodes=self.nodes)
        try:
            pickle.dumps(self.snapshot_store)
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(f"the snapshot store cannot be pickled to the ranks: {exc}") from None
        sweep_stale_gangs()
        gang = Path(tempfile.mkdtemp(prefix=f"{GANG_PREFIX}{self.run_id[:40]}-"))
        (gang / OWNER_FILE).write_text(str(os.getpid()))
        spec = RankSpec(
            trainable=self.trainable, config=self.config, run_id=self.run_id,
            snapshot_store=self.snapshot_store, snapshot=self.snapshot,
            checkpoint_root=self.checkpoint_root, storage_options=self.storage_options,
            metrics_path=str(self.metrics_path) if self.metrics_path else None,
            hints=tuple(h for h in resume_hint if h is not None), gang_dir=str(gang),
            parent_pid=os.getpid(), threads=self._threads(), continues_from=self.control.continues_from,
            init_from=self.init_from,
        )
        launch = LaunchConfig(
            min_nodes=self.nodes, max_nodes=self.nodes, nproc_per_node=self.config.world_size,
            run_id=self.gang_id or f"{self.run_id}-{uuid.uuid4().hex[:8]}", rdzv_backend="c10d",
            rdzv_endpoint=self.rendezvous or f"127.0.0.1:{_free_port()}",
            rdzv_configs={"is_host": self.node_rank == 0, "join_timeout": 300}
            if self.nodes > 1 else {},
            max_restarts=0, monitor_interval=0.1, start_method="spawn",
            # torchelastic's own log directory lives (and is removed) with the gang's
            logs_specs=DefaultLogsSpecs(log_dir=str(gang / "elastic")),
        )
        done = threading.Event()
        relay = _Relay(gang, self.control)
        watcher = threading.Thread(target=self._watch, args=(gang, relay, done), daemon=True,
                                   name="tml-gang-watch")
        watcher.start()
        try:
            values = elastic_launch(launch, run_rank)(spec)
        except ChildFailedError as exc:
            _raise_rank_error(gang, exc, self.run_id)
            raise  # unreachable
        finally:
            done.set()
            watcher.join()
            relay.poll()
            _kill_ranks(gang)  # normally all gone already
            shutil.rmtree(gang, ignore_errors=True)
        out = next(v for v in values.values() if v is not None)
        return LoopResult(
            step=out["step"], checkpoint=CheckpointRef.model_validate(out["checkpoint"]),
            metrics=out["metrics"], stopped=out["stopped"],
            resumed_from=CheckpointRef.model_validate(out["resumed_from"])
            if out["resumed_from"] else None,
        )

    def _watch(self, gang: Path, relay: _Relay, done: threading.Event) -> None:
        stop_since: float | None = None
        while not done.wait(0.1):
            try:
                relay.poll()
            except Exception:  # noqa: BLE001 - a bad event line must not stop the supervision
                log.warning("run %s: could not read the gang's events", self.run_id, exc_info=True)
            if self.control.should_stop():
                if stop_since is None:
                    stop_since = time.monotonic()
                    (gang / "stop.tmp").write_text(self.control.reason or "stop")
                    os.replace(gang / "stop.tmp", gang / "stop")
                elif time.monotonic() - stop_since > self.stop_grace_seconds:
                    log.warning("run %s: the gang did not stop within %.0fs; killing it",
                                self.run_id, self.stop_grace_seconds)
                    _kill_ranks(gang)
                    stop_since = float("inf")


class _Relay:
    """Tails rank 0's event log into a :class:`LoopControl`."""

    def __init__(self, gang: Path, control: LoopControl) -> None:
        self.path, self.control = gang / "events.jsonl", control
        self._offset = 0
        self._lock = threading.Lock()

    def poll(self) -> None:
        with self._lock:
            try:
                with self.path.open("rb") as f:
                    f.seek(self._offset)
                    chunk = f.read()
            except FileNotFoundError:
                return
            end = chunk.rfind(b"\n") + 1
            self._offset += end
            for line in chunk[:end].splitlines():
                self._apply(json.loads(line))

    def _apply(self, e: dict[str, Any]) -> None:
        kind = e.pop("event")
        if kind == "start":
            ref = e["resumed_from"]
            if e.get("continues_from") is not None:  # rank 0 made a warm start's copy: a planned start
                self.control.continues_from = e["continues_from"]
            self.control.started(e["step"], CheckpointRef.model_validate(ref) if ref else None,
                                 resumes=e["resumes"])
        elif kind == "progress":
            self.control.progress(TrainProgress(state="training", **e))
        elif kind == "checkpoint":
            self.control.checkpoint_committed(CheckpointRef.model_validate(e["ref"]))


def _rank_pids(gang: Path) -> list[int]:
    pids = []
    for path in gang.glob("rank-*.pid"):
        try:
            pids.append(int(path.read_text()))
        except (OSError, ValueError):
            pass
    return pids


#: Gang directories are ``<tmp>/tml-gang-<run id>-<random>/``, owned by the supervisor whose pid
#: is in their ``owner.pid``.
GANG_PREFIX = "tml-gang-"
OWNER_FILE = "owner.pid"


def sweep_stale_gangs(tmp: str | None = None) -> list[Path]:
    """Remove the gang directories of supervisors that are gone (a worker SIGKILLed mid-gang cannot
    clean up after itself: the next gang on the machine does). Returns what it removed."""
    removed = []
    for gang in Path(tmp or tempfile.gettempdir()).glob(f"{GANG_PREFIX}*"):
        try:
            owner = int((gang / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # being created, or not ours to judge
        if owner == os.getpid() or _pid_alive(owner):
            continue
        _kill_ranks(gang)
        shutil.rmtree(gang, ignore_errors=True)
        removed.append(gang)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's: alive
        return True
    try:  # a zombie (exited, not yet reaped) is gone as far as its gang is concerned
        with open(f"/proc/{pid}/status") as f:
            return not any(line.startswith("State:") and "Z" in line.split()[1] for line in f)
    except OSError:
        return True


def _kill_ranks(gang: Path) -> None:
    for pid in _rank_pids(gang):
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


_NON_RETRYABLE = {cls.__name__: cls for cls in errors.NON_RETRYABLE_ERRORS}


def _raise_rank_error(gang: Path, exc: Any, run_id: str) -> None:
    """Re-raise a rank's error as one line: its own error class when no retry can fix it."""
    reported = []
    for path in sorted(gang.glob("error-*.json")):
        try:
            reported.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            pass
    for r in reported:
        if r["type"] in _NON_RETRYABLE:
            raise _NON_RETRYABLE[r["type"]](r["message"]) from None
    deaths = []
    for rank, failure in sorted(getattr(exc, "failures", {}).items()):
        if failure.exitcode < 0:
            how = f"killed by {signal.Signals(-failure.exitcode).name}"
        else:
            how = f"exit code {failure.exitcode}"
        deaths.append(f"rank {rank} (pid {failure.pid}) {how}")
    first = reported[0] if reported else None
    detail = ""
    if first:
        message = (first["message"].strip().splitlines() or [""])[0][:300]
        detail = f"; rank {first['rank']}: {first['type']}: {message}"
    raise GangError(f"the ranks of run {run_id} failed: "
                    f"{', '.join(deaths) or 'unknown failure'}{detail}") from None
