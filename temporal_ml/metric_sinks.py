"""Metric sinks: where a training run's metrics go besides its JSONL log.

Every run writes ``<metrics_dir>/<run_id>/metrics.jsonl`` on its training worker (the default, read by
``temporal-ml plot``/``report`` and :func:`temporal_ml.results.learning_curves`). A run can also send
its metrics to other sinks, chosen per run like the Hugging Face Trainer's ``report_to``::

    TrainConfig(trainable="text-classification", max_steps=300, metric_sinks=["tensorboard"])

Built in (optional extras, imported only by a run that uses them):

* ``"tensorboard"`` (``pip install 'temporal-ml[tensorboard]'``): event files in the run's metrics
  directory ``<metrics_dir>/<run_id>/``, so ``tensorboard --logdir <metrics_dir>`` shows every run
  under its id.
* ``"mlflow"`` (``pip install 'temporal-ml[mlflow]'``): one MLflow run per training run (run name and
  tag ``temporal_ml.run_id`` = the run id, params = the config), at ``$MLFLOW_TRACKING_URI`` (default
  ``sqlite:///<metrics_dir>/mlflow.db``), in the experiment ``$MLFLOW_EXPERIMENT_NAME`` (default
  ``temporal-ml``). A resumed run logs into the same MLflow run.
* ``"wandb"`` (``pip install 'temporal-ml[wandb]'``): one W&B run per training run, its id derived
  from the run id and config hash (so a resumed run continues it, ``resume="allow"``), named by the
  run id, every metric plotted against ``step``; W&B's environment applies (``WANDB_MODE=offline``,
  ``WANDB_PROJECT``, default ``temporal-ml``; ``WANDB_DIR``, default the run's metrics directory).

Evaluations of a run's checkpoints by the evaluation activity reach the same sinks as ``eval_<name>``
at the checkpoint's step (:func:`log_evaluation`).

Your own: implement :class:`MetricSink` (``log(step, metrics)`` and ``close()``) and either register a
factory under a name with :func:`register_metric_sink` (in a module both the starter and the training
worker import), or name its factory by import path, ``"my_package.sinks:make_sink"``.

Resume: after a worker is lost, a run resumes from its last checkpoint and logs the steps since then
again. The JSONL log keeps both (a ``resume`` record marks the point; readers keep the last value of a
step); TensorBoard hides the discarded steps itself (the writer purges steps after the resume point);
MLflow and W&B keep both values of a repeated step in the metric's history (W&B against the
``step`` metric, so its own monotonic ``_step`` never goes back). Sinks see only the training
metrics; the weights, and so exact resume, never depend on them.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from temporal_ml import _sink_names
from temporal_ml.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from temporal_ml.types import TrainConfig

__all__ = [
    "MetricSink", "SinkContext", "SinkFactory", "register_metric_sink", "metric_sink_names",
    "check_metric_sinks", "resolve_metric_sinks", "RunMetrics", "log_evaluation",
]

log = logging.getLogger(__name__)


@runtime_checkable
class MetricSink(Protocol):
    """Receives one run's metrics. Called from the run's training thread only (one sink per run), so
    an implementation need not be thread-safe across calls; it must not raise for a repeated ``step``
    (a resumed run logs the steps since its last checkpoint again)."""

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        """Record ``metrics`` (finite floats: ``loss``, ``samples_per_second``, ``epoch``, and at the end
        ``eval_*``) at optimizer step ``step``."""

    def close(self) -> None:
        """Flush and release; called once when the training call ends, however it ends."""


@dataclass(frozen=True)
class SinkContext:
    """What a sink factory knows when a training call starts.

    Attributes:
        run_id: the run.
        config: the run's configuration.
        run_dir: the run's metrics directory on this worker (``<metrics_dir>/<run_id>``, created).
        start_step: the step training starts from (0, or the resumed checkpoint's step; 0 for the
            sink an evaluation of one of the run's checkpoints opens, logs to once and closes).
    """

    run_id: str
    config: TrainConfig
    run_dir: Path
    start_step: int


#: Makes a run's sink when its training call starts.
SinkFactory = Callable[[SinkContext], MetricSink]

def register_metric_sink(name: str, factory: SinkFactory, *, replace: bool = False) -> None:
    """Make ``TrainConfig(metric_sinks=[name])`` use ``factory``.

    Register in a module that both the process building configs (the starter, to check names before
    anything starts) and the training worker import.

    Raises:
        ConfigError: a malformed name, or one already registered (unless ``replace``).
    """
    _sink_names.register(name, factory, replace=replace)


def metric_sink_names() -> list[str]:
    """The names :func:`register_metric_sink` knows (built-ins included), sorted."""
    return _sink_names.names()


def check_metric_sinks(names: Sequence[str], *, registered: bool = True) -> list[str]:
    """Check sink names: each is registered here or a ``module:attr`` reference, none twice.

    Args:
        names: ``TrainConfig.metric_sinks``.
        registered: also require plain names to be registered in this process (``False``: syntax only,
            for configs decoded from a payload, which the training worker resolves).

    Raises:
        ConfigError: one line naming the bad entry and the choices.
    """
    return _sink_names.check(names, registered=registered)


def resolve_metric_sinks(names: Sequence[str]) -> list[tuple[str, SinkFactory]]:
    """The factories of ``names`` (importing references and built-ins' packages now, so a missing one
    fails before training starts).

    Raises:
        ConfigError: an unknown name or a reference that cannot be imported.
        MissingDependencyError: a built-in sink's package is not installed (names the extra).
    """
    check_metric_sinks(names)
    factories: list[tuple[str, SinkFactory]] = []
    for name in names:
        registered = _sink_names.factory_of(name)
        if registered is not None:
            factory = registered
            check = getattr(factory, "check", None)
            if callable(check):
                check()
        else:
            module, _, attr = name.partition(":")
            try:
                obj: Any = importlib.import_module(module)
                for part in attr.split("."):
                    obj = getattr(obj, part)
            except (ImportError, AttributeError) as exc:
                raise ConfigError(f"metric sink {name!r} cannot be imported: {exc}") from exc
            if not callable(obj):
                raise ConfigError(f"metric sink {name!r} is not callable (expected a sink factory)")
            factory = obj
        factories.append((name, factory))
    return factories


def _numbers(values: Mapping[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value):
            out[key] = float(value)
    return out


class RunMetrics:
    """One training call's metrics: the append-only JSONL log (one JSON object per line) and the
    run's sinks. ``write("start"|"resume", step=...)`` opens the sinks, ``"train"`` and ``"end"`` records
    reach them too; :meth:`close` closes them.

    A sink that fails is logged and dropped: metrics never stop a training run.

    Args:
        path: the JSONL file (``None``: no log and no sinks, e.g. a worker without a metrics dir).
        run_id: the run.
        config: its configuration (``config.metric_sinks`` are resolved now).
    """

    _TRAIN_KEYS = ("loss", "samples_per_second", "epoch")

    def __init__(self, path: Path | None, *, run_id: str = "", config: TrainConfig | None = None) -> None:
        self.path = path
        self.run_id = run_id
        self.config = config
        self._factories: list[tuple[str, SinkFactory]] = []
        self._sinks: list[tuple[str, MetricSink]] = []
        self._train_step = -1
        names = list(config.metric_sinks) if config is not None else []
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._factories = resolve_metric_sinks(names)
        elif names:
            log.warning("run %s: metric sinks %s not used: this worker keeps no metrics directory",
                        run_id, names)

    def write(self, event: str, **values: Any) -> None:
        if self.path is None:
            return
        record = {"event": event, "time": round(time.time(), 3), **values}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if event in ("start", "resume", "continue"):
            self._open(int(values.get("step", 0)))
        elif event in ("train", "end") and self._sinks:
            step = int(values["step"])
            numbers = _numbers(values)
            numbers.pop("step", None)
            if event == "train":
                numbers = {k: v for k, v in numbers.items() if k in self._TRAIN_KEYS}
                self._train_step = step
            elif step == self._train_step:  # the loss of this step went out with its train record
                numbers = {k: v for k, v in numbers.items() if k not in self._TRAIN_KEYS}
            if numbers:
                self._log(step, numbers)

    def _open(self, step: int) -> None:
        self.close()
        for name, factory in self._factories:
            assert self.path is not None and self.config is not None
            ctx = SinkContext(run_id=self.run_id, config=self.config, run_dir=self.path.parent,
                              start_step=step)
            sink = factory(ctx)  # errors here are the user's config: they fail the run
            self._sinks.append((name, sink))

    def _log(self, step: int, metrics: Mapping[str, float]) -> None:
        for name, sink in list(self._sinks):
            try:
                sink.log(step, metrics)
            except Exception as exc:  # noqa: BLE001 - metrics never stop training
                log.warning("run %s: metric sink %s failed, dropped: %s", self.run_id, name, exc)
                self._sinks.remove((name, sink))
                self._close_one(name, sink)

    def _close_one(self, name: str, sink: MetricSink) -> None:
        try:
            sink.close()
        except Exception as exc:  # noqa: BLE001
            log.warning("run %s: closing metric sink %s failed: %s", self.run_id, name, exc)

    def close(self) -> None:
        """Close the open sinks (the JSONL file is opened per record and needs no closing)."""
        sinks, self._sinks = self._sinks, []
        for name, sink in sinks:
            self._close_one(name, sink)


def log_evaluation(metrics_dir: str | Path | None, run_id: str, config: TrainConfig, step: int,
                   metrics: Mapping[str, Any]) -> None:
    """Send an evaluation of a run's checkpoint (at ``step``) to the run's sinks, as ``eval_<name>``
    (the names the training loop gives its own final evaluation). Used by the evaluation activity;
    nothing without a metrics dir or sinks. A sink that fails (or is not installed on this worker) is
    logged: an evaluation never fails because of its metrics' destinations."""
    if metrics_dir is None or not config.metric_sinks:
        return
    run_dir = Path(metrics_dir) / run_id
    numbers = {f"eval_{k}": v for k, v in _numbers(metrics).items()}
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        factories = resolve_metric_sinks(config.metric_sinks)
    except Exception as exc:  # noqa: BLE001 - the evaluation's result stands without its sinks
        log.warning("run %s: evaluation metrics not sent to %s: %s", run_id, config.metric_sinks, exc)
        return
    for name, factory in factories:
        try:
            sink = factory(SinkContext(run_id=run_id, config=config, run_dir=run_dir, start_step=0))
            try:
                sink.log(step, numbers)
            finally:
                sink.close()
        except Exception as exc:  # noqa: BLE001
            log.warning("run %s: metric sink %s failed for an evaluation: %s", run_id, name, exc)
