"""A small ResNet-style CNN on CIFAR-10 as a plain ``torch.nn`` :class:`Trainable`, and the CIFAR-10
data generator (local ``.npz`` files -> a snapshot).

Augmentation (random crop with 4-pixel padding, horizontal flip) is drawn in ``train_step`` from
torch's global RNG, which the training loop seeds from the run's seed, gives each rank its own stream
of, and captures in every checkpoint: it is seeded and resumes exactly.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from torch import nn

from temporal_ml.errors import ConfigError
from temporal_ml.training.trainable import Trainable, TrainContext, TrainSetup

__all__ = ["CifarResNet", "ResNetTrainable", "cifar10_npz", "TRAINABLE", "GENERATOR", "data_dir"]

TRAINABLE = "cifar-resnet"
GENERATOR = "cifar10-npz"
_MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
_STD = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)


def data_dir() -> Path:
    """``$CIFAR10_DIR``, else ``../shared/data/cifar10`` beside the repository."""
    default = Path(__file__).resolve().parents[3] / "shared" / "data" / "cifar10"
    return Path(os.environ.get("CIFAR10_DIR", default))


def cifar10_npz(dir: str = "", n_train: int = 10000, n_test: int = 2000) -> dict[str, pa.Table]:
    """CIFAR-10 from ``train*.npz`` / ``test.npz`` (arrays ``x``: N x 32 x 32 x 3 uint8, ``y``: labels)
    as splits ``train`` and ``test`` (columns ``image``: 3072 raw bytes HWC, ``label``). The first
    ``n_train`` / ``n_test`` rows: deterministic in its parameters."""
    root = Path(dir) if dir else data_dir()
    train = sorted(root.glob("train*.npz"))
    if not train or not (root / "test.npz").is_file():
        raise ConfigError(f"no CIFAR-10 train*.npz and test.npz in {root} (set CIFAR10_DIR or --data)")

    def table(path: Path, n: int) -> pa.Table:
        with np.load(path) as f:
            x, y = f["x"][:n], f["y"][:n]
        if x.shape[1:] != (32, 32, 3) or x.dtype != np.uint8:
            raise ConfigError(f"{path}: expected x of shape N x 32 x 32 x 3 uint8, got {x.shape} {x.dtype}")
        images = pa.array([row.tobytes() for row in x.reshape(len(x), -1)], type=pa.binary(3072))
        return pa.table({"image": images, "label": pa.array(y.astype(np.int64))})

    return {"train": table(train[0], n_train), "test": table(root / "test.npz", n_test)}


def _images(table: pa.Table) -> tuple[torch.Tensor, torch.Tensor]:
    raw = np.frombuffer(b"".join(table.column("image").to_pylist()), dtype=np.uint8)
    x = torch.from_numpy(raw.copy()).view(-1, 32, 32, 3).permute(0, 3, 1, 2).float().div_(255)
    return (x - _MEAN) / _STD, torch.from_numpy(table.column("label").to_numpy().copy())


class _Block(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.skip = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
                     if stride != 1 or c_in != c_out else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.skip(x))


class CifarResNet(nn.Module):
    """A ResNet for 32 x 32 images: a 3x3 stem and three stages of residual blocks (``width``,
    2 x ``width``, 4 x ``width`` channels; strides 1, 2, 2), global average pooling, a linear head."""

    def __init__(self, width: int = 16, blocks: int = 1, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        layers: list[nn.Module] = []
        c = width
        for i, c_out in enumerate((width, 2 * width, 4 * width)):
            for b in range(blocks):
                layers.append(_Block(c, c_out, 2 if i > 0 and b == 0 else 1))
                c = c_out
        self.stages = nn.Sequential(*layers)
        self.head = nn.Linear(c, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)).mean(dim=(2, 3)))


def augment(x: torch.Tensor) -> torch.Tensor:
    """Random crop (4-pixel zero padding) and horizontal flip, per image, from torch's global RNG."""
    n = x.shape[0]
    padded = nn.functional.pad(x, (4, 4, 4, 4))
    offsets = torch.randint(0, 9, (n, 2))
    flips = torch.rand(n) < 0.5
    out = torch.empty_like(x)
    for i in range(n):
        dy, dx = int(offsets[i, 0]), int(offsets[i, 1])
        crop = padded[i, :, dy : dy + 32, dx : dx + 32]
        out[i] = crop.flip(-1) if flips[i] else crop
    return out


class ResNetTrainable(Trainable):
    """hparams: ``width`` (16), ``blocks`` per stage (1), ``lr`` (0.05, SGD with Nesterov momentum 0.9,
    weight decay 5e-4, one-cycle schedule over the run), ``augment`` (true)."""

    def setup(self, ctx: TrainContext) -> TrainSetup:
        width, blocks = int(ctx.hparams.get("width", 16)), int(ctx.hparams.get("blocks", 1))
        if width < 1 or blocks < 1:
            raise ConfigError(f"width and blocks must be >= 1, got {width} and {blocks}")
        if "train" not in ctx.data:
            raise ConfigError("the snapshot has no 'train' split")
        model = CifarResNet(width, blocks).to(ctx.device)
        lr = float(ctx.hparams.get("lr", 0.05))
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True,
                                    weight_decay=5e-4)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=ctx.total_steps)
        x, y = _images(ctx.data["train"])

        def make_batch(indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
            idx = torch.as_tensor(indices)
            return x[idx].to(ctx.device), y[idx].to(ctx.device)

        return TrainSetup(model=model, optimizer=optimizer, scheduler=scheduler, make_batch=make_batch,
                          train_size=len(y), extra={"augment": bool(ctx.hparams.get("augment", True))})

    def train_step(self, setup: TrainSetup, batch: Any) -> torch.Tensor:
        x, y = batch
        if setup.extra["augment"]:
            x = augment(x)
        return nn.functional.cross_entropy(setup.model(x), y)

    def evaluate(self, setup: TrainSetup, split: pa.Table) -> dict[str, float]:
        x, y = _images(split)
        model = setup.model
        model.eval()
        loss, correct = 0.0, 0
        with torch.no_grad():
            for i in range(0, len(y), 500):
                logits = model(x[i : i + 500].to(next(model.parameters()).device)).cpu()
                loss += float(nn.functional.cross_entropy(logits, y[i : i + 500], reduction="sum"))
                correct += int((logits.argmax(-1) == y[i : i + 500]).sum())
        model.train()
        return {"accuracy": correct / len(y), "loss": loss / len(y), "examples": float(len(y))}
