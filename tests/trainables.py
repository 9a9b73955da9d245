"""A plain PyTorch trainable (MLP on generated data) used across the tests: proof that the
training machinery is not BERT-shaped, and a fast model for crash/resume tests."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from temporal_ml.errors import ConfigError
from temporal_ml.training.progress import report_rows
from temporal_ml.training.trainable import Prediction, Trainable, TrainContext, TrainSetup

FEATURES = 8


def blobs(n_train: int = 512, n_dev: int = 128, seed: int = 0) -> dict[str, pa.Table]:
    """Two noisy classes in 8 dimensions (a deterministic generator for DatasetSource)."""
    rng = np.random.default_rng(seed)

    def split(n: int) -> pa.Table:
        labels = rng.integers(0, 2, size=n)
        x = rng.normal(size=(n, FEATURES)) + labels[:, None] * 1.5
        cols = {f"x{i}": pa.array(x[:, i].astype(np.float32)) for i in range(FEATURES)}
        return pa.table({**cols, "label": pa.array(labels.astype(np.int64))})

    return {"train": split(n_train), "dev": split(n_dev)}


def _tensors(table: pa.Table) -> tuple[torch.Tensor, torch.Tensor]:
    x = np.stack([table.column(f"x{i}").to_numpy() for i in range(FEATURES)], axis=1)
    return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(table.column("label").to_numpy().copy())


class MLPTrainable(Trainable):
    """hparams: hidden (int), lr (float), dropout (float), step_delay (seconds slept per step, to give
    crash tests time to kill mid-run), eval_delay (seconds an evaluation takes), fail ("config" ->
    raise ConfigError in setup)."""

    def setup(self, ctx: TrainContext) -> TrainSetup:
        if ctx.hparams.get("fail") == "config":
            raise ConfigError("hidden must be positive (deliberately bad config)")
        hidden = int(ctx.hparams.get("hidden", 32))
        if hidden < 1:
            raise ConfigError(f"hidden must be positive, got {hidden}")
        model = torch.nn.Sequential(
            torch.nn.Linear(FEATURES, hidden), torch.nn.ReLU(),
            torch.nn.Dropout(float(ctx.hparams.get("dropout", 0.1))), torch.nn.Linear(hidden, 2),
        ).to(ctx.device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=float(ctx.hparams.get("lr", 1e-2)))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: max(0.0, 1 - s / ctx.total_steps)
        )
        x, y = _tensors(ctx.data["train"])
        delay = float(ctx.hparams.get("step_delay", 0.0))

        def make_batch(indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
            if delay:
                time.sleep(delay)
            idx = torch.as_tensor(indices)
            return x[idx].to(ctx.device), y[idx].to(ctx.device)

        return TrainSetup(model=model, optimizer=optimizer, scheduler=scheduler,
                          make_batch=make_batch, train_size=len(y),
                          extra={"eval_delay": float(ctx.hparams.get("eval_delay", 0.0))})

    def train_step(self, setup: TrainSetup, batch: Any) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.cross_entropy(setup.model(x), y)

    def evaluate(self, setup: TrainSetup, split: pa.Table) -> dict[str, float]:
        x, y = _tensors(split)
        for tenth in range(1, 11):  # a slow evaluation (kill tests), counting its rows as it goes
            time.sleep(setup.extra.get("eval_delay", 0.0) / 10)
            report_rows(len(y) * tenth // 10, len(y))
        setup.model.eval()
        with torch.no_grad():
            logits = setup.model(x)
        setup.model.train()
        return {"accuracy": float((logits.argmax(-1) == y).float().mean()),
                "loss": float(torch.nn.functional.cross_entropy(logits, y)), "examples": float(len(y))}

    def predict(self, setup: TrainSetup, inputs: Sequence[Any]) -> list[Prediction]:
        x = torch.tensor([list(map(float, row)) for row in inputs], dtype=torch.float32)
        setup.model.eval()
        with torch.no_grad():
            probs = setup.model(x).softmax(-1)
        return [Prediction(label=int(p.argmax()), confidence=float(p.max()),
                           scores=tuple(map(float, p))) for p in probs]


class NoisyScaledTrainable(MLPTrainable):
    """The MLP with every source of state promise 1 covers: each step draws from Python's, NumPy's
    and torch's global RNGs (input noise, loss weighting, dropout), runs the forward pass under CPU
    autocast (bfloat16), and steps through a ``GradScaler`` whose scale grows every 3 steps (so its
    scale and growth tracker, and its overflow/backoff path, are part of the trajectory)."""

    def setup(self, ctx: TrainContext) -> TrainSetup:
        setup = super().setup(ctx)
        setup.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8, growth_interval=3)
        return setup

    def train_step(self, setup: TrainSetup, batch: Any) -> torch.Tensor:
        import random

        x, y = batch
        x = x + torch.from_numpy(np.random.normal(0.0, 0.05, size=tuple(x.shape)).astype(np.float32))
        x = x * (1.0 + 0.01 * torch.rand(()))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = setup.model(x)
        return torch.nn.functional.cross_entropy(logits.float(), y) * (1.0 + 0.05 * random.random())
