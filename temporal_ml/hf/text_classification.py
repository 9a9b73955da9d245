"""Fine-tune a Hugging Face sequence-classification model (or a tiny random BERT) as a Trainable.

Register it on a training worker, e.g.
``TrainingActivities(trainables={"text": TextClassificationTrainable()})``, and train with
``TrainConfig(trainable="text", hparams={...})``; the hyperparameters are those of
:class:`TextClassificationParams`. Labels may be integers (classification, ``num_labels`` = largest
label + 1), strings (classification over the sorted distinct names) or floats (regression, MSE loss).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from temporal_ml.errors import ConfigError
from temporal_ml.hf._columns import (
    LabelSpec,
    infer_labels,
    label_values,
    resolve_columns,
    texts_of,
)
from temporal_ml.hf._tokenized import tiny_tokenizer, tokenized_split, tokenizer_identity
from temporal_ml.hf.loading import TINY_BERT, load_model_and_tokenizer
from temporal_ml.training.progress import report_rows
from temporal_ml.training.trainable import Prediction, Trainable, TrainContext, TrainSetup

__all__ = ["TextClassificationTrainable", "TextClassificationParams", "classification_metrics"]


#: Device types torch has a fused AdamW kernel for.
_FUSED_ADAMW_DEVICES = ("cuda", "cpu")


class TextClassificationParams(BaseModel):
    """Hyperparameters of :class:`TextClassificationTrainable` (unknown keys are rejected).

    Attributes:
        model: ``"tiny-bert"`` (random, built from the data), a local directory or a hub name.
        text_column: column holding the texts (default: ``sentence``/``text`` or the only string column).
        label_column: column holding the labels (default: ``label`` or ``labels``).
        train_split: snapshot split to train on.
        num_labels: classes (default: inferred from the training labels).
        lr: peak learning rate (default 1e-3 for ``tiny-bert``, 5e-5 otherwise).
        weight_decay: AdamW weight decay (not applied to biases and LayerNorm weights).
        warmup_ratio: fraction of ``total_steps`` of linear warm-up, then linear decay to zero.
        max_length: texts are truncated to this many tokens.
        grad_clip_norm: clip gradients to this global norm (``None``: no clipping).
        eval_batch_size: batch size of ``evaluate`` and ``predict``.
        bf16: autocast the forward pass to bfloat16 (CUDA only; ignored on CPU).
        compile: ``torch.compile`` the forward pass (CUDA only; ignored on CPU).
        fused_adamw: use the fused AdamW kernel (CUDA and CPU; other devices: torch's default).
        config_overrides: model config values to override (e.g. ``{"hidden_dropout_prob": 0.0}``).
    """

    model_config = ConfigDict(ser_json_inf_nan="strings", extra="forbid", frozen=True)

    model: str = Field(default=TINY_BERT, min_length=1)
    text_column: str | None = None
    label_column: str | None = None
    train_split: str = Field(default="train", min_length=1)
    num_labels: int | None = Field(default=None, ge=1)
    lr: float | None = Field(default=None, gt=0, le=1)
    weight_decay: float = Field(default=0.01, ge=0)
    warmup_ratio: float = Field(default=0.06, ge=0, le=1)
    max_length: int = Field(default=128, ge=4, le=8192)
    grad_clip_norm: float | None = Field(default=1.0, gt=0)
    eval_batch_size: int = Field(default=64, ge=1)
    bf16: bool = False
    compile: bool = False
    fused_adamw: bool = True
    config_overrides: dict[str, JsonValue] = Field(default_factory=dict)

    @property
    def learning_rate(self) -> float:
        """``lr``, or the default for the model kind."""
        if self.lr is not None:
            return self.lr
        return 1e-3 if self.model == TINY_BERT else 5e-5

    @classmethod
    def parse(cls, hparams: Any) -> TextClassificationParams:
        """Validate ``hparams``, raising :class:`ConfigError` with every problem on one line."""
        try:
            return cls.model_validate(dict(hparams or {}))
        except (ValidationError, TypeError, ValueError) as exc:
            if isinstance(exc, ValidationError):
                problems = "; ".join(
                    f"{'.'.join(map(str, e['loc'])) or 'hparams'}: {e['msg']}" for e in exc.errors()
                )
            else:
                problems = str(exc)
            raise ConfigError(f"invalid text-classification hparams: {problems}") from exc


def _linear_schedule(optimizer: torch.optim.Optimizer, warmup: int, total: int) -> Any:
    """Linear warm-up over ``warmup`` steps (from 1/(warmup+1) of the peak), then linear decay to 0."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class TextClassificationTrainable(Trainable):
    """Text classification (or regression) with a Hugging Face ``AutoModelForSequenceClassification``.

    ``setup`` tokenizes the whole training split (fast tokenizer, no padding) once per worker and
    data: with a setup cache in the context (``TrainContext.cache``, which the training and evaluation
    activities always give), the tokenizer of ``"tiny-bert"`` and the training split's token ids are
    kept in the worker's memory and in the store, keyed by the snapshot id, split, column, tokenizer
    identity and maximum length, so a run continued from a rung checkpoint, or evaluated, does not
    tokenize again. ``make_batch`` pads a batch to its longest example and moves it to the device.
    ``TrainSetup.extra`` keeps the ``tokenizer``, the label mapping (``labels``), the parsed
    ``params`` and the resolved ``text_column``/``label_column``. Stateless but for its counters (see
    :meth:`counts`): one instance may serve many runs, on several threads.

    Example::

        trainable = TextClassificationTrainable()
        ...                                  # runs on a worker
        trainable.counts()["splits_tokenized"]   # training splits it tokenized (cache misses)
    """

    def __init__(self) -> None:
        self._counts = {"splits_tokenized": 0, "texts_tokenized": 0, "tokenizers_built": 0}
        self._counts_lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:  # pickled to the ranks of a gang: no lock
        return {"_counts": self.counts()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._counts = dict(state["_counts"])
        self._counts_lock = threading.Lock()

    def counts(self) -> dict[str, int]:
        """What this instance has computed so far: ``splits_tokenized`` (training splits tokenized,
        i.e. misses of the setup cache), ``texts_tokenized`` (texts passed to the tokenizer, evaluation
        and prediction included) and ``tokenizers_built`` (``"tiny-bert"`` vocabularies derived)."""
        if "_counts" not in self.__dict__:  # a subclass whose __init__ did not call ours
            TextClassificationTrainable.__init__(self)
        with self._counts_lock:
            return dict(self._counts)

    def _count(self, name: str) -> Callable[..., None]:
        self.counts()

        def add(n: int = 1) -> None:
            with self._counts_lock:
                self._counts[name] += n

        return add

    def setup(self, ctx: TrainContext) -> TrainSetup:
        """Tokenize the training split and build the model, AdamW and a linear warm-up/decay schedule."""
        params = TextClassificationParams.parse(ctx.hparams)
        if params.train_split not in ctx.data:
            raise ConfigError(
                f"train_split {params.train_split!r} is not in the snapshot "
                f"(splits: {sorted(ctx.data)})"
            )
        table = ctx.data[params.train_split]
        text_col, label_col = resolve_columns(table, params.text_column, params.label_column)
        if table.num_rows == 0:
            raise ConfigError(f"split {params.train_split!r} has no rows")
        spec = infer_labels(table.column(label_col), params.num_labels)
        # the tokenizer and the token ids come from the worker's setup cache when the run has one
        # (built once per worker and data; see temporal_ml.hf._tokenized), else they are built here
        tokenizer, tokenizer_id = None, None
        if params.model == TINY_BERT:
            tokenizer, tokenizer_id = tiny_tokenizer(ctx, table, params.train_split, text_col,
                                                     self._count("tokenizers_built"))
        model, tokenizer = load_model_and_tokenizer(
            params.model,
            num_labels=spec.num_labels,
            problem_type=spec.problem_type,
            config_overrides=params.config_overrides,
            tokenizer=tokenizer,
        )
        if params.model != TINY_BERT and ctx.cache is not None:
            tokenizer_id = tokenizer_identity(tokenizer)
        if spec.names is not None:
            model.config.id2label = dict(enumerate(spec.names))
            model.config.label2id = {name: i for i, name in enumerate(spec.names)}
        model.to(ctx.device).train()
        cuda = ctx.device.type == "cuda"
        max_length = min(
            params.max_length, getattr(model.config, "max_position_embeddings", 1 << 30)
        )
        pad = _Padder(tokenizer, max_length, on_encode=self._count("texts_tokenized"))
        count_split = self._count("splits_tokenized")

        def encode_split(texts: list[str]) -> list[list[int]]:
            count_split()
            return pad.encode(texts)

        ids = tokenized_split(ctx, table, params.train_split, text_col, tokenizer_id=tokenizer_id,
                              max_length=max_length, encode_texts=encode_split)
        labels = _targets(table.column(label_col), spec)

        def make_batch(indices: Sequence[int]) -> dict[str, torch.Tensor]:
            rows = list(indices)
            return pad(ids.rows(rows), ctx.device, labels[torch.as_tensor(rows, dtype=torch.long)])

        decay: list[torch.nn.Parameter] = []
        no_decay: list[torch.nn.Parameter] = []
        for name, param in model.named_parameters():
            if param.requires_grad:
                plain = param.ndim < 2 or "LayerNorm" in name or "layer_norm" in name
                (no_decay if plain else decay).append(param)
        groups = [
            {"params": decay, "weight_decay": params.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        # The fused kernel (one pass over each tensor) is the HF Trainer's default too; on CPU it makes
        # the optimizer step ~8x cheaper than torch's default per-tensor loop (~15% of a MiniLM step).
        fused = bool(params.fused_adamw and ctx.device.type in _FUSED_ADAMW_DEVICES) or None
        optimizer = torch.optim.AdamW(groups, lr=params.learning_rate, fused=fused)
        scheduler = _linear_schedule(
            optimizer, int(params.warmup_ratio * ctx.total_steps), ctx.total_steps
        )
        # compile a wrapper only: setup.model stays the plain module, so its state_dict keys are clean
        forward = torch.compile(model) if params.compile and cuda else model
        return TrainSetup(
            model=model,
            optimizer=optimizer,
            make_batch=make_batch,
            train_size=len(ids),
            scheduler=scheduler,
            grad_clip_norm=params.grad_clip_norm,
            extra={
                "tokenizer": tokenizer,
                "labels": spec,
                "params": params,
                "pad": pad,
                "forward": forward,
                "bf16": params.bf16 and cuda,
                "text_column": text_col,
                "label_column": label_col,
            },
        )

    def train_step(self, setup: TrainSetup, batch: Any) -> torch.Tensor:
        """The model's loss on one batch (cross-entropy, or MSE for regression)."""
        with _autocast(setup):
            return setup.extra["forward"](**batch).loss

    def _logits(self, setup: TrainSetup, texts: list[str]) -> torch.Tensor:
        """Logits (float32, CPU) of ``texts`` in order, computed in length-sorted batches."""
        pad, size, model = setup.extra["pad"], setup.extra["params"].eval_batch_size, setup.model
        device = next(model.parameters()).device
        ids = pad.encode(texts)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = torch.empty(len(ids), int(model.config.num_labels))  # type: ignore[union-attr,arg-type]
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad(), _autocast(setup):
                for start in range(0, len(order), size):
                    chunk = order[start : start + size]
                    out[chunk] = model(**pad([ids[i] for i in chunk], device)).logits.float().cpu()
                    report_rows(start + len(chunk), len(order))
        finally:
            model.train(was_training)
        return out

    def evaluate(self, setup: TrainSetup, split: pa.Table) -> dict[str, float]:
        """Classification: ``accuracy``, ``macro_f1``, ``loss`` (mean cross-entropy), ``examples``.
        Regression: ``mse``, ``rmse``, ``loss`` (= ``mse``), ``examples``."""
        spec: LabelSpec = setup.extra["labels"]
        text_col, label_col = setup.extra["text_column"], setup.extra["label_column"]
        if missing := [c for c in (text_col, label_col) if c not in split.column_names]:
            raise ConfigError(
                f"evaluation split lacks columns {missing} (columns: {split.column_names})"
            )
        texts = texts_of(split, text_col)
        if not texts:
            raise ConfigError("evaluation split has no rows")
        target = _targets(split.column(label_col), spec)
        logits = self._logits(setup, texts)
        n = float(len(texts))
        if spec.regression:
            mse = float(torch.mean((logits[:, 0] - target) ** 2))
            return {"mse": mse, "rmse": math.sqrt(mse), "loss": mse, "examples": n}
        loss = float(torch.nn.functional.cross_entropy(logits, target))
        return {
            **classification_metrics(target.tolist(), logits.argmax(-1).tolist()),
            "loss": loss,
            "examples": n,
        }

    def predict(self, setup: TrainSetup, inputs: Sequence[Any]) -> list[Prediction]:
        """Softmax predictions for raw texts (regression: the value, with confidence 1.0)."""
        texts = list(inputs)
        if not all(isinstance(t, str) for t in texts):
            raise ConfigError("text classification predicts on strings only")
        if not texts:
            return []
        spec: LabelSpec = setup.extra["labels"]
        logits = self._logits(setup, texts)
        if spec.regression:
            return [
                Prediction(label=float(v), confidence=1.0, scores=(float(v),)) for v in logits[:, 0]
            ]
        probs = torch.softmax(logits, dim=-1)
        conf, best = probs.max(dim=-1)
        return [
            Prediction(label=spec.name(b), confidence=c, scores=tuple(p))
            for b, c, p in zip(best.tolist(), conf.tolist(), probs.tolist(), strict=True)
        ]


def _targets(column: pa.ChunkedArray, spec: LabelSpec) -> torch.Tensor:
    return torch.as_tensor(label_values(column, spec), dtype=getattr(torch, spec.dtype))


def _autocast(setup: TrainSetup) -> Any:
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=bool(setup.extra.get("bf16")))


class _Padder:
    """Tokenizes without padding, and pads a batch of token-id rows to its longest row."""

    def __init__(self, tokenizer: Any, max_length: int,
                 on_encode: Callable[[int], None] | None = None) -> None:
        self.tokenizer, self.max_length, self.on_encode = tokenizer, max_length, on_encode
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.with_types = "token_type_ids" in tokenizer.model_input_names

    def encode(self, texts: list[str]) -> list[list[int]]:
        if self.on_encode is not None:
            self.on_encode(len(texts))
        return self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]

    def __call__(
        self, rows: Sequence[Any], device: torch.device, labels: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        ids = np.full((len(rows), max(map(len, rows))), self.pad_id, dtype=np.int64)
        ones = np.zeros_like(ids)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
            ones[i, : len(row)] = 1
        input_ids = torch.from_numpy(ids)
        batch = {"input_ids": input_ids, "attention_mask": torch.from_numpy(ones)}
        if self.with_types:
            batch["token_type_ids"] = torch.zeros_like(input_ids)
        if labels is not None:
            batch["labels"] = labels
        return {k: v.to(device, non_blocking=device.type == "cuda") for k, v in batch.items()}


def classification_metrics(target: Sequence[int], predicted: Sequence[int]) -> dict[str, float]:
    """Accuracy and macro-F1 (over the classes present in ``target`` or ``predicted``, as sklearn)."""
    n = len(target)
    accuracy = sum(t == p for t, p in zip(target, predicted, strict=True)) / n
    f1s = []
    for cls in sorted(set(target) | set(predicted)):
        tp = sum(t == cls and p == cls for t, p in zip(target, predicted, strict=True))
        fp = sum(t != cls and p == cls for t, p in zip(target, predicted, strict=True))
        fn = sum(t == cls and p != cls for t, p in zip(target, predicted, strict=True))
        f1s.append(2 * tp / (2 * tp + fp + fn))
    return {"accuracy": float(accuracy), "macro_f1": float(sum(f1s) / len(f1s))}
