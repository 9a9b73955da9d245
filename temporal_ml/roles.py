"""Worker roles: what a worker of each role runs, and on which task queue.

A deployment runs workers by resource class, each polling a task queue of its own:

* ``orchestration``: workflows and the snapshot activity (no torch needed), queue ``temporal-ml``;
* ``train``: the training and prediction activities, at most N trainings at once (N = the GPUs of
  the machine), queue ``temporal-ml-train``;
* ``eval``: the evaluation activity, queue ``temporal-ml-eval``.

:class:`WorkerSpec` describes the workers of one process and is validated when built (before
anything connects); :func:`build_workers` makes one worker per role, :func:`build_worker` one
worker for all of them on one queue; :func:`import_object` and the
``load_*`` helpers resolve ``module:attr`` references. ``temporal-ml worker`` is a thin layer on top.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from temporal_ml.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from temporalio.client import Client
    from temporalio.worker import Worker

    from temporal_ml.storage.snapshots import SnapshotStore
    from temporal_ml.training.trainable import Trainable

__all__ = [
    "Role", "WorkerSpec", "build_workers", "build_worker", "DEFAULT_QUEUES", "default_queue", "default_store",
    "local_path", "import_object", "load_workflow", "load_trainable", "load_generator",
]


class Role(str, Enum):
    """What a worker does; each role polls a task queue of its own."""

    ORCHESTRATION = "orchestration"
    TRAIN = "train"
    EVAL = "eval"

    @classmethod
    def parse(cls, value: str | Role) -> Role:
        """The role named ``value``; :class:`ConfigError` for an unknown name."""
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(role.value for role in cls)
            raise ConfigError(f"unknown role {value!r}; choose from {names}") from None


#: The task queue of each role unless ``$TEMPORAL_ML_<ROLE>_QUEUE`` or the spec says otherwise.
DEFAULT_QUEUES: Mapping[Role, str] = {
    Role.ORCHESTRATION: "temporal-ml", Role.TRAIN: "temporal-ml-train", Role.EVAL: "temporal-ml-eval",
}


def default_queue(role: Role) -> str:
    """``$TEMPORAL_ML_<ROLE>_QUEUE`` (e.g. ``TEMPORAL_ML_TRAIN_QUEUE``), else ``DEFAULT_QUEUES[role]``."""
    return os.environ.get(f"TEMPORAL_ML_{role.name}_QUEUE") or DEFAULT_QUEUES[role]


def default_store(name: str = "store") -> str:
    """Where workers keep snapshots, checkpoints and metrics unless told: ``$TEMPORAL_ML_STORE``, else
    ``$TEMPORAL_ML_HOME/<name>``, else ``~/.temporal-ml/<name>``. The same home as ``temporal-ml server``
    and ``temporal-ml worker``, so separately started workers and starters share a store whatever
    their working directory.

    Example:
        >>> import os
        >>> os.environ["TEMPORAL_ML_HOME"] = "/data/tml"; os.environ.pop("TEMPORAL_ML_STORE", None)
        >>> default_store(), default_store("examples/bert_eval")
        ('/data/tml/store', '/data/tml/examples/bert_eval')
    """
    home = os.environ.get("TEMPORAL_ML_HOME") or Path.home() / ".temporal-ml"
    return os.environ.get("TEMPORAL_ML_STORE") or str(Path(home) / name)


def local_path(url: str) -> Path | None:
    """The absolute local path of a store URL (plain path or ``file://``), ``None`` if remote."""
    url = url.removeprefix("file://")
    return None if "://" in url else Path(url).expanduser().resolve()


@dataclass
class WorkerSpec:
    """The workers of one process: roles, task queues, code to run and per-resource limits.

    Validated on construction; normalized fields are filled in (``task_queues`` then holds every
    role's queue, ``store`` is absolute if local, ``metrics_dir`` has its default).

    Attributes:
        roles: one worker per role (duplicates are dropped).
        store: fsspec root URL: snapshots in ``<store>/snapshots``, checkpoints in
            ``<store>/checkpoints`` (default :func:`default_store`).
        task_queues: queue overrides per role; the others come from :func:`default_queue`.
        workflows: ``@workflow.defn`` classes (orchestration role).
        generators: name -> data generator for ``DatasetSource(generator=...)`` (orchestration).
        trainables: name -> :class:`Trainable` (train and eval roles; required there).
        metrics_dir: local directory of ``<run_id>/metrics.jsonl`` (default ``<store>/metrics`` for a
            local store, else none).
        max_concurrent_trainings: the train role's per-resource limit (e.g. GPUs): training threads
            and the worker's ``max_concurrent_activities``.
        trainings_in_processes: the train role runs every training in child processes (see
            ``TrainingActivities``), so concurrent trainings run truly in parallel.
        max_concurrent_activities: limit of the eval worker (default 1) and the orchestration
            worker (default: the SDK's).
        storage_options: fsspec options for the store.
    """

    roles: Sequence[Role]
    store: str = field(default_factory=default_store)
    task_queues: Mapping[Role, str] = field(default_factory=dict)
    workflows: Sequence[type] = ()
    generators: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    trainables: Mapping[str, Trainable] = field(default_factory=dict)
    metrics_dir: str | Path | None = None
    max_concurrent_trainings: int = 1
    trainings_in_processes: bool = False
    max_concurrent_activities: int | None = None
    storage_options: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.roles = tuple(dict.fromkeys(Role.parse(r) for r in self.roles))
        _require(bool(self.roles), "no role given; choose one or more of orchestration, train, eval")
        path = local_path(str(self.store))
        self.store = str(path) if path is not None else str(self.store).rstrip("/")
        if self.metrics_dir is None and path is not None:
            self.metrics_dir = path / "metrics"
        self.task_queues = self._resolve_queues()
        self._check_options()

    def _resolve_queues(self) -> dict[Role, str]:
        given = {Role.parse(role): queue for role, queue in self.task_queues.items()}
        extra = sorted(role.value for role in given.keys() - set(self.roles))
        _require(not extra, f"task queue given for role {', '.join(extra)}, which is not run here")
        queues = {role: given.get(role) or default_queue(role) for role in self.roles}
        for role, queue in queues.items():
            _require(bool(queue.strip()), f"empty task queue for role {role.value!r}")
            _require(list(queues.values()).count(queue) == 1,
                     f"roles must poll different task queues; {queue!r} is given twice "
                     "(a worker would receive activities it does not have)")
        return queues

    def _check_options(self) -> None:
        orchestration = Role.ORCHESTRATION in self.roles
        models = Role.TRAIN in self.roles or Role.EVAL in self.roles
        _require(orchestration or not self.workflows, "workflows are run only by the orchestration role")
        _require(orchestration or not self.generators, "generators are used only by the orchestration role")
        _require(models or not self.trainables, "trainables are used only by the train and eval roles")
        _require(not models or bool(self.trainables), "the train and eval roles need at least one trainable")
        _require(orchestration or Role.EVAL in self.roles or self.max_concurrent_activities is None,
                 "max_concurrent_activities applies to the orchestration and eval roles; "
                 "limit the train role with max_concurrent_trainings")
        for what, value in (("max_concurrent_trainings", self.max_concurrent_trainings),
                            ("max_concurrent_activities", self.max_concurrent_activities)):
            _require(value is None or value >= 1, f"{what} must be >= 1, got {value}")

    def max_concurrent(self, role: Role) -> int | None:
        """The ``max_concurrent_activities`` of the role's worker (``None``: the SDK default)."""
        if role is Role.TRAIN:
            return self.max_concurrent_trainings
        if role is Role.EVAL:
            return self.max_concurrent_activities or 1
        return self.max_concurrent_activities


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def build_workers(client: Client, spec: WorkerSpec) -> list[Worker]:
    """One (not yet running) worker per role of ``spec``, in the order of ``spec.roles``.

    Torch and the evaluation module are imported only by the roles that need them.

    Args:
        client: a client from :func:`temporal_ml.client.connect`.
        spec: the validated spec.
    """
    from temporal_ml.storage.snapshots import SnapshotStore
    from temporal_ml.worker import create_worker

    store = SnapshotStore(spec.store, storage_options=spec.storage_options)  # keeps <store>/snapshots/<id>
    return [
        create_worker(client, task_queue=spec.task_queues[role],
                      workflows=spec.workflows if role is Role.ORCHESTRATION else (),
                      activities=_activities(spec, role, store),
                      max_concurrent_activities=spec.max_concurrent(role))
        for role in spec.roles
    ]


def build_worker(client: Client, spec: WorkerSpec, *, task_queue: str) -> Worker:
    """One (not yet running) worker that runs every role of ``spec`` on one ``task_queue`` (the
    spec's own queues are not used): a whole experiment in one process, e.g. on a laptop or as the
    in-process worker of an embedded run. Its activity slots are ``spec.max_concurrent_activities``,
    else ``max_concurrent_trainings + 2`` (the trainings plus a snapshot and an evaluation).

    Example:
        >>> spec = WorkerSpec(roles=list(Role), workflows=[MyTraining],        # doctest: +SKIP
        ...                   trainables={"text-classification": TextClassificationTrainable()})
        >>> worker = build_worker(client, spec, task_queue="my-queue")          # doctest: +SKIP

    Args:
        client: a client from :func:`temporal_ml.client.connect`.
        spec: the validated spec (its roles, store, code and limits).
        task_queue: the queue the worker polls.
    """
    from temporal_ml.storage.snapshots import SnapshotStore
    from temporal_ml.worker import create_worker

    _require(bool(task_queue.strip()), "empty task queue")
    store = SnapshotStore(spec.store, storage_options=spec.storage_options)
    activities = [fn for role in spec.roles for fn in _activities(spec, role, store)]
    return create_worker(client, task_queue=task_queue, workflows=spec.workflows, activities=activities,
                         max_concurrent_activities=spec.max_concurrent_activities
                         or spec.max_concurrent_trainings + 2)


def _activities(spec: WorkerSpec, role: Role, store: SnapshotStore) -> list[Callable[..., Any]]:
    if role is Role.ORCHESTRATION:
        from temporal_ml.activities.snapshot import SnapshotActivities
        from temporal_ml.activities.sweep import SweepActivities

        # the sweep activities: stop one trial, delete the checkpoints of dead trials
        return [*SnapshotActivities(store, spec.generators).activities(),
                *SweepActivities(spec.storage_options, table_root=f"{spec.store}/tables").activities()]
    if role is Role.TRAIN:
        from temporal_ml.activities.training import TrainingActivities

        return TrainingActivities(
            trainables=spec.trainables, snapshot_store=store, checkpoint_root=f"{spec.store}/checkpoints",
            metrics_dir=spec.metrics_dir, storage_options=spec.storage_options,
            max_concurrent_trainings=spec.max_concurrent_trainings,
            trainings_in_processes=spec.trainings_in_processes,
        ).activities()
    from temporal_ml.activities.evaluation import EvalActivities

    return EvalActivities(trainables=spec.trainables, snapshot_store=store,
                          storage_options=spec.storage_options, metrics_dir=spec.metrics_dir).activities()


def import_object(ref: str) -> Any:
    """Import ``"package.module:attr"`` (``attr`` may be dotted); :class:`ConfigError` if impossible."""
    module_name, sep, attr = ref.partition(":")
    _require(bool(sep and module_name and attr), f"expected module:attr, got {ref!r}")
    try:
        obj = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any failure while importing user code
        raise ConfigError(f"cannot import module {module_name!r} ({type(exc).__name__}: {exc})") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"{ref!r}: module {module_name!r} has no attribute {attr!r}") from None
    return obj


def load_workflow(ref: str) -> type:
    """The ``@workflow.defn`` class at ``module:Class``."""
    obj = import_object(ref)
    defn = getattr(obj, "__temporal_workflow_definition", None)  # set by @workflow.defn
    _require(isinstance(obj, type) and getattr(defn, "cls", None) is obj,
             f"{ref!r} is not a @workflow.defn class")
    return obj


def load_trainable(ref: str) -> Trainable:
    """The :class:`Trainable` at ``module:attr``: an instance, or a class instantiated with no args."""
    from temporal_ml.training.trainable import Trainable

    obj = import_object(ref)
    if isinstance(obj, type) and issubclass(obj, Trainable):
        try:
            obj = obj()
        except Exception as exc:  # noqa: BLE001 - user code
            raise ConfigError(f"cannot instantiate {ref!r} with no arguments: {exc}") from exc
    _require(isinstance(obj, Trainable), f"{ref!r} is not a Trainable instance or subclass")
    return obj


def load_generator(ref: str) -> Callable[..., Any]:
    """The data generator (a callable) at ``module:attr``."""
    obj = import_object(ref)
    _require(callable(obj), f"{ref!r} is not callable, so it cannot be a data generator")
    return obj
