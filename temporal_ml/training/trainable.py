"""The ``Trainable`` interface: how a user plugs a model into temporal-ml.

A :class:`Trainable` is a stateless factory registered on a training worker under a name. For one
run it builds a :class:`TrainSetup` (model, optimizer, scheduler, how to make a batch from indices)
from a :class:`TrainContext` (hyperparameters, seed, the dataset snapshot's tables, device), and it
computes the loss of one batch. The :class:`~temporal_ml.training.loop.TrainingLoop` owns everything
else: data order, backward/step, gradient scaling, checkpoints, heartbeats and exact resume.

Contract (what exact resume relies on):

* ``setup`` is deterministic given the context (the loop seeds every RNG before calling it);
* ``make_batch(indices)`` is a pure function of the indices (no hidden iterator state);
* all mutable training state lives in the model, optimizer, scheduler and scaler (their
  ``state_dict`` is checkpointed) or in the RNGs the loop captures.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa
    import torch

    from temporal_ml.training.setup_cache import SetupCache

__all__ = ["Trainable", "TrainContext", "TrainSetup", "Prediction"]


@dataclass(frozen=True)
class TrainContext:
    """Everything a :class:`Trainable` may read to build a run.

    Attributes:
        run_id: the run being built.
        hparams: the user's hyperparameters (JSON values) from ``TrainConfig.hparams``.
        seed: the run's seed (already applied to every RNG).
        data: the dataset snapshot's splits as Arrow tables (split name -> table).
        device: the torch device to train on.
        batch_size: examples per optimizer step.
        total_steps: the run's step budget, e.g. for an LR schedule (always defined over the maximum
            budget, so a run continued from a checkpoint follows the same schedule).
        snapshot_id: the content address of the snapshot ``data`` comes from (``None``: unknown).
        cache: the worker's setup cache, for what ``setup`` derives from the data alone (a tokenized
            split): built once per worker and data instead of once per run (see
            :mod:`temporal_ml.training.setup_cache`; ``None``: build it every time).
    """

    run_id: str
    hparams: Mapping[str, Any]
    seed: int
    data: Mapping[str, pa.Table]
    device: torch.device
    batch_size: int
    total_steps: int
    snapshot_id: str | None = None
    cache: SetupCache | None = None


@dataclass
class TrainSetup:
    """The live objects of one run, built by :meth:`Trainable.setup`.

    Attributes:
        model: the module to train (already on ``ctx.device``).
        optimizer: its optimizer.
        make_batch: builds the batch for a list of example indices of the training split (on device).
        train_size: number of training examples the sampler draws indices from.
        scheduler: an LR scheduler stepped once per optimizer step, or ``None``.
        scaler: a ``torch.amp.GradScaler`` for fp16 training, or ``None``.
        grad_clip_norm: clip gradients to this global norm before each step, or ``None``.
        extra: anything else the trainable wants to keep for ``train_step``/``evaluate``/``predict``
            (for example a tokenizer). Not checkpointed: it must be rebuilt identically by ``setup``.
    """

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    make_batch: Callable[[Sequence[int]], Any]
    train_size: int
    scheduler: Any | None = None
    scaler: Any | None = None
    grad_clip_norm: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Prediction:
    """One inference output: the predicted label (or value) and the model's confidence in it."""

    label: int | float | str
    confidence: float
    scores: tuple[float, ...] = ()


class Trainable(ABC):
    """A model family temporal-ml can train, evaluate and serve. Subclass it and register an instance
    on your training worker under a name (``TrainingActivities(trainables={"mlp": MyMLP()})``).

    Implementations must be thread-safe in the trivial sense: one instance may build several runs
    (sequentially or on several worker threads), so keep per-run state in the ``TrainSetup``.
    """

    @abstractmethod
    def setup(self, ctx: TrainContext) -> TrainSetup:
        """Build model, optimizer, scheduler and batching for a run. Deterministic given ``ctx``.

        Raise :class:`~temporal_ml.errors.ConfigError` for bad hyperparameters or data (the run then
        fails immediately instead of retrying).
        """

    @abstractmethod
    def train_step(self, setup: TrainSetup, batch: Any) -> torch.Tensor:
        """Forward one batch and return the scalar loss tensor (do not call ``.item()`` on it: the
        loop reads losses only every few steps to avoid a device sync per step)."""

    def evaluate(self, setup: TrainSetup, split: pa.Table) -> dict[str, float]:
        """Metrics of the current model on an evaluation split. Optional."""
        raise NotImplementedError(f"{type(self).__name__} does not implement evaluate()")

    def predict(self, setup: TrainSetup, inputs: Sequence[Any]) -> list[Prediction]:
        """Predictions for raw inputs (texts, feature rows, ...). Optional."""
        raise NotImplementedError(f"{type(self).__name__} does not implement predict()")
