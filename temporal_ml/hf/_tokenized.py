"""The tokenized training split of a text-classification run, built once per worker and data.

Two cached values, each keyed by content (see :mod:`temporal_ml.training.setup_cache`):

* the ``"tiny-bert"`` tokenizer, whose vocabulary is derived from the training texts: keyed by the
  snapshot id, split, text column and the tokenizer's recipe (:data:`TINY_TOKENIZER_RECIPE`); stored as
  its JSON serialization;
* the token ids of every training row: keyed by the snapshot id, split, text column, the tokenizer's
  identity (the key of the tiny tokenizer above, or the sha256 of a pretrained tokenizer's full JSON
  serialization and its class) and the maximum length; stored as one flat ``int32`` array of ids and
  an ``int64`` array of row offsets.

Bump :data:`TOKENIZED_FORMAT` whenever what is stored, or how it is derived, changes: old entries then
have other keys and are never read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import JsonValue

from temporal_ml.errors import ConfigError, IntegrityError
from temporal_ml.hf._columns import texts_of
from temporal_ml.hf.loading import build_tiny_tokenizer, tiny_tokenizer_from_json
from temporal_ml.storage.array_cache import CachedArrays, cache_key
from temporal_ml.training.trainable import TrainContext

__all__ = ["TOKENIZED_FORMAT", "TINY_TOKENIZER_RECIPE", "TokenizedSplit", "tiny_tokenizer", "tokenized_split"]

#: Version of the cached arrays' layout and derivation.
TOKENIZED_FORMAT = 1
#: How ``"tiny-bert"`` derives its tokenizer from the texts (:func:`build_tiny_tokenizer`'s settings).
TINY_TOKENIZER_RECIPE: dict[str, JsonValue] = {"builder": "build_tiny_tokenizer", "max_words": 8192, "version": 1}


@dataclass(frozen=True)
class TokenizedSplit:
    """Token ids of every row of a split (without padding): row ``i`` is ``ids[offsets[i]:offsets[i+1]]``."""

    ids: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def rows(self, indices: Sequence[int]) -> list[np.ndarray]:
        """The id rows of ``indices``, in order."""
        ids, off = self.ids, self.offsets
        return [ids[off[i] : off[i + 1]] for i in indices]

    @property
    def nbytes(self) -> int:
        return int(self.ids.nbytes + self.offsets.nbytes)

    @classmethod
    def of(cls, rows: Sequence[Sequence[int]]) -> TokenizedSplit:
        """Pack tokenizer output (one list of ids per row)."""
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        ids = np.fromiter((i for r in rows for i in r), dtype=np.int32, count=int(offsets[-1]))
        return cls(ids=ids, offsets=offsets)

    def encode(self) -> tuple[dict[str, Any], dict[str, JsonValue]]:
        return {"ids": self.ids, "offsets": self.offsets}, {"rows": len(self)}

    @classmethod
    def decode(cls, entry: CachedArrays) -> TokenizedSplit:
        ids, offsets = entry.arrays["ids"], entry.arrays["offsets"]
        if (ids.dtype != np.int32 or offsets.dtype != np.int64 or offsets.ndim != 1 or len(offsets) < 1
                or int(offsets[-1]) != len(ids) or entry.meta.get("rows") != len(offsets) - 1):
            raise IntegrityError(f"cache entry {entry.key[:12]} does not hold a tokenized split")
        return cls(ids=ids, offsets=offsets)


def _split_description(ctx: TrainContext, split: str, column: str) -> dict[str, JsonValue]:
    return {"snapshot": ctx.snapshot_id, "split": split, "text_column": column}


def _cached(ctx: TrainContext) -> bool:
    return ctx.cache is not None and ctx.snapshot_id is not None


def tiny_tokenizer(ctx: TrainContext, table: pa.Table, split: str, column: str,
                   on_build: Callable[[], None]) -> tuple[Any, str | None]:
    """The ``"tiny-bert"`` tokenizer of the training texts and its identity (``None`` uncached).

    The cache holds the tokenizer's JSON serialization; each call returns a tokenizer of its own
    (a tokenizer keeps truncation settings, so runs never share one).
    """

    def build() -> str:
        on_build()
        max_words = TINY_TOKENIZER_RECIPE["max_words"]
        assert isinstance(max_words, int)
        return str(build_tiny_tokenizer(texts_of(table, column), max_words=max_words).backend_tokenizer.to_str())

    if not _cached(ctx):
        return tiny_tokenizer_from_json(build()), None
    assert ctx.cache is not None
    description: dict[str, JsonValue] = {
        "kind": "tiny-bert-tokenizer", "format": TOKENIZED_FORMAT, "recipe": TINY_TOKENIZER_RECIPE,
        **_split_description(ctx, split, column),
    }

    def encode(text: str) -> tuple[dict[str, Any], dict[str, JsonValue]]:
        return {"tokenizer_json": np.frombuffer(text.encode("utf-8"), dtype=np.uint8)}, {}

    def decode(entry: CachedArrays) -> str:
        try:
            text = entry.arrays["tokenizer_json"].tobytes().decode("utf-8")
            tiny_tokenizer_from_json(text)
        except Exception as exc:  # noqa: BLE001 - verified bytes that are no tokenizer: rebuild it
            raise IntegrityError(f"cache entry {entry.key[:12]} holds no tokenizer: {exc}") from None
        return text

    text = ctx.cache.get_or_build(description, build, encode=encode, decode=decode, nbytes=len)
    return tiny_tokenizer_from_json(text), cache_key(description)


def tokenizer_identity(tokenizer: Any) -> str:
    """A pretrained fast tokenizer's identity: sha256 of its class name and full JSON serialization."""
    digest = hashlib.sha256(type(tokenizer).__name__.encode())
    digest.update(tokenizer.backend_tokenizer.to_str().encode("utf-8"))
    return digest.hexdigest()


def tokenized_split(ctx: TrainContext, table: pa.Table, split: str, column: str, *, tokenizer_id: str | None,
                    max_length: int, encode_texts: Callable[[list[str]], list[list[int]]]) -> TokenizedSplit:
    """The token ids of every row of ``table[column]`` (truncated to ``max_length``), built once per
    worker and data when the context has a cache and ``tokenizer_id`` is known."""

    def build() -> TokenizedSplit:
        texts = texts_of(table, column)
        if not texts:
            raise ConfigError(f"split {split!r} has no rows")
        return TokenizedSplit.of(encode_texts(texts))

    if not _cached(ctx) or tokenizer_id is None:
        return build()
    assert ctx.cache is not None
    description: dict[str, JsonValue] = {
        "kind": "tokenized-split", "format": TOKENIZED_FORMAT, "tokenizer": tokenizer_id,
        "max_length": max_length, **_split_description(ctx, split, column),
    }
    found = ctx.cache.get_or_build(description, build, encode=TokenizedSplit.encode,
                                   decode=TokenizedSplit.decode, nbytes=lambda t: t.nbytes)
    if len(found) != table.num_rows:
        raise ConfigError(f"the cached tokenized split has {len(found)} rows, the split {table.num_rows}")
    return found
