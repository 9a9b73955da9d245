"""Hugging Face integration: a text-classification Trainable, model/dataset loading, synthetic data.

Training needs the ``hf`` extra (``pip install 'temporal-ml[hf]'``: torch, transformers, datasets).
Importing this package needs neither torch nor transformers: :func:`load_hub_dataset` (used by
snapshot workers) needs only ``datasets``, and the trainable is imported on first access, failing
with an install hint when the extra is missing.

Example::

    from temporal_ml.hf import TextClassificationTrainable, sentiment_dataset

    trainables = {"text": TextClassificationTrainable()}
    generators = {"sentiment": sentiment_dataset}
"""

from __future__ import annotations

from typing import Any

from temporal_ml.hf.loading import (
    TINY_BERT,
    TINY_BERT_CONFIG,
    build_tiny_tokenizer,
    hub_offline,
    hub_reachable,
    load_hub_dataset,
    load_model_and_tokenizer,
)
from temporal_ml.hf.synthetic import sentiment_dataset

_LAZY = ("TextClassificationTrainable", "TextClassificationParams", "classification_metrics")

__all__ = [
    "TextClassificationTrainable",
    "TextClassificationParams",
    "classification_metrics",
    "load_model_and_tokenizer",
    "load_hub_dataset",
    "build_tiny_tokenizer",
    "hub_offline",
    "hub_reachable",
    "sentiment_dataset",
    "TINY_BERT",
    "TINY_BERT_CONFIG",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from temporal_ml.errors import require

        require("torch", "hf")
        require("transformers", "hf")
        from temporal_ml.hf import text_classification

        return getattr(text_classification, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
