"""Loading Hugging Face models, tokenizers and datasets, failing fast and clearly when offline.

Three kinds of model name are understood by :func:`load_model_and_tokenizer`:

* a local directory (anything that exists on disk, or looks like a path): loaded with
  ``AutoTokenizer`` / ``AutoModelForSequenceClassification``. A base model without a classification
  head (for example a sentence-transformers ``BertModel`` directory) gets a freshly initialised head,
  drawn from the torch RNG, so it is deterministic under a seed;
* ``"tiny-bert"``: a small randomly initialised BERT built from :data:`TINY_BERT_CONFIG` with a
  word-level tokenizer built by :func:`build_tiny_tokenizer` (no download, seconds to train on CPU);
* a Hugging Face hub name (``"bert-base-uncased"``): the hub is probed first with a short timeout, so
  an unreachable hub costs seconds rather than minutes of retries; when it is unreachable (or
  ``HF_HUB_OFFLINE`` is set) only the local Hugging Face cache is used. A name that cannot be loaded
  raises :class:`~temporal_ml.errors.ConfigError` with a one-line message.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from temporal_ml.errors import ConfigError, require

__all__ = [
    "TINY_BERT",
    "TINY_BERT_CONFIG",
    "SPECIAL_TOKENS",
    "build_tiny_tokenizer",
    "tiny_tokenizer_from_json",
    "load_model_and_tokenizer",
    "load_hub_dataset",
    "hub_offline",
    "hub_reachable",
]

TINY_BERT = "tiny-bert"
"""The model name that builds a tiny random BERT instead of loading one."""

TINY_BERT_CONFIG: dict[str, Any] = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 128,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
}
"""The ``BertConfig`` values of ``"tiny-bert"`` (``config_overrides`` may change any of them)."""

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
"""Ids 0-4 of the tiny tokenizer's vocabulary, in this order."""

_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
_PROBE_TIMEOUT_S = 3.0
_OFFLINE_VALUES = {"1", "ON", "YES", "TRUE"}


def _offline_hint(what: str, name: str, reason: str, instead: str) -> ConfigError:
    return ConfigError(
        f"{what} {name!r} could not be loaded from the Hugging Face hub ({reason}); {instead}"
    )


def _model_error(name: str, reason: str) -> ConfigError:
    return _offline_hint(
        "model", name, reason, "pass a local directory instead, e.g. --model /path/to/model"
    )


def hub_offline() -> bool:
    """Whether Hugging Face offline mode is on (``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE``)."""
    env = (os.environ.get(k, "").upper() for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    if any(v in _OFFLINE_VALUES for v in env):
        return True
    constants = require("huggingface_hub.constants", "hf")  # not loaded by the package itself
    return bool(constants.HF_HUB_OFFLINE)


def hub_reachable(timeout: float = _PROBE_TIMEOUT_S) -> bool:
    """Whether the Hugging Face hub endpoint answers an HTTP request within ``timeout`` seconds.

    Any HTTP answer counts (even an error status); a DNS failure, refused connection or timeout does
    not. The probe runs in a daemon thread, so even a hanging DNS lookup cannot block the caller.
    """
    hub = require("huggingface_hub", "hf")
    answered = threading.Event()

    def probe() -> None:
        with contextlib.suppress(Exception):
            hub.get_session().head(hub.constants.ENDPOINT, timeout=timeout)
            answered.set()

    thread = threading.Thread(target=probe, name="temporal-ml-hub-probe", daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    return answered.is_set()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' load reports and progress bars (e.g. "newly initialized" heads)."""
    logging = require("transformers", "hf").utils.logging
    verbosity, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()


def _words(texts: Iterable[str]) -> Counter[str]:
    from tokenizers import normalizers, pre_tokenizers

    normalizer = normalizers.BertNormalizer(lowercase=True)
    splitter = pre_tokenizers.BertPreTokenizer()
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(w for w, _ in splitter.pre_tokenize_str(normalizer.normalize_str(text)))
    return counts


def build_tiny_tokenizer(texts: Iterable[str] | None = None, *, max_words: int = 8192) -> Any:
    """Build the deterministic BERT-style (WordPiece) tokenizer of ``"tiny-bert"``.

    The vocabulary is: :data:`SPECIAL_TOKENS` (ids 0-4), then single characters (lowercase ASCII
    letters, digits, punctuation) and their ``##`` continuations, so that any word can still be
    spelled out, then the ``max_words`` most frequent lowercased words of ``texts`` (ties broken
    alphabetically), sorted alphabetically. Words are split like BERT's basic tokenizer (whitespace
    and punctuation, accents kept). The same texts always give the same vocabulary; with no texts
    it is character-level only.

    Args:
        texts: the training texts the word vocabulary is derived from.
        max_words: at most this many whole words in the vocabulary.

    Returns:
        A fast tokenizer (``BertTokenizerFast``) returning ``input_ids``, ``token_type_ids`` and
        ``attention_mask``, with ``[CLS] ... [SEP]`` added.
    """
    require("transformers", "hf")
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab: dict[str, int] = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for piece in [*_CHARS, *(f"##{c}" for c in _CHARS)]:
        vocab.setdefault(piece, len(vocab))
    counts = _words(texts or ())
    frequent = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: max(0, max_words)]
    for word in sorted(w for w, _ in frequent):
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tok.decoder = decoders.WordPiece()
    return _tiny_fast(tok)


def tiny_tokenizer_from_json(text: str) -> Any:
    """The ``"tiny-bert"`` tokenizer serialized by ``tokenizer.backend_tokenizer.to_str()``, back.

    ``build_tiny_tokenizer(texts)`` and ``tiny_tokenizer_from_json(that.backend_tokenizer.to_str())``
    give the same vocabulary and the same token ids (a cached tokenizer is rebuilt this way).
    """
    from tokenizers import Tokenizer

    return _tiny_fast(Tokenizer.from_str(text))


def _tiny_fast(tok: Any) -> Any:
    transformers = require("transformers", "hf")
    return transformers.BertTokenizerFast(
        tokenizer_object=tok,
        model_max_length=TINY_BERT_CONFIG["max_position_embeddings"],
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def _looks_local(name: str) -> bool:
    return os.path.isabs(name) or name.startswith(("./", "../", "~", ".\\")) or Path(name).exists()


#: Longest model name or path accepted (a hub id is ``owner/name``; a path, at most ``PATH_MAX``).
MAX_MODEL_NAME = 4096


def _check_model_name(name: str) -> None:
    """A name no filesystem or hub could hold fails here, in one line, instead of as an ``OSError``
    that looks retryable."""
    if len(name) > MAX_MODEL_NAME or any(len(part) > 255 for part in Path(name).parts):
        raise ConfigError(f"model name too long ({len(name)} characters, starts {name[:40]!r}): "
                          f"pass a hub id or a directory path of at most {MAX_MODEL_NAME} characters")


def load_model_and_tokenizer(
    name_or_path: str | os.PathLike[str],
    *,
    num_labels: int,
    problem_type: str | None = None,
    config_overrides: Mapping[str, Any] | None = None,
    texts: Iterable[str] | None = None,
    tokenizer: Any | None = None,
) -> tuple[Any, Any]:
    """Load (or build) a sequence-classification model and its tokenizer.

    Args:
        name_or_path: a local directory, ``"tiny-bert"`` or a Hugging Face hub name.
        num_labels: classes of the classification head (1 for regression).
        problem_type: ``"single_label_classification"``, ``"multi_label_classification"`` or
            ``"regression"`` (``None``: let transformers decide).
        config_overrides: model config values to override (e.g. ``{"hidden_dropout_prob": 0.0}``).
        texts: the training texts ``"tiny-bert"`` derives its vocabulary from (ignored otherwise).
        tokenizer: ``"tiny-bert"`` only: the tokenizer to build the model for instead of building
            one from ``texts`` (e.g. one kept in a cache).

    Returns:
        ``(model, tokenizer)``: the model on the CPU in training mode, and a fast tokenizer.

    Raises:
        ConfigError: if the model cannot be found or loaded (one line, with what to do instead).
    """
    transformers = require("transformers", "hf")
    if isinstance(name_or_path, os.PathLike):
        name_or_path = os.fspath(name_or_path)
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise ConfigError(f"model must be a non-empty string, got {name_or_path!r}")
    if num_labels < 1:
        raise ConfigError(f"num_labels must be at least 1, got {num_labels}")
    _check_model_name(name_or_path)
    overrides = dict(config_overrides or {})
    head: dict[str, Any] = {"num_labels": num_labels}
    if problem_type is not None:
        head["problem_type"] = problem_type

    if name_or_path == TINY_BERT:
        tokenizer = tokenizer if tokenizer is not None else build_tiny_tokenizer(texts)
        values = {**TINY_BERT_CONFIG, **overrides, **head}
        try:
            config = transformers.BertConfig(
                vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **values
            )
            model = transformers.BertForSequenceClassification(config)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"bad tiny-bert config: {_first_line(exc)}") from exc
        model.train()
        return model, tokenizer

    local = _looks_local(name_or_path)
    if local and not Path(name_or_path).expanduser().is_dir():
        raise ConfigError(f"model directory {name_or_path!r} does not exist or is not a directory")
    if local and not (Path(name_or_path).expanduser() / "config.json").is_file():
        raise ConfigError(
            f"model directory {name_or_path!r} has no config.json: pass a directory written by "
            "save_pretrained() (model and tokenizer)"
        )
    path = str(Path(name_or_path).expanduser()) if local else name_or_path
    offline = local or hub_offline()
    reason = "offline: HF_HUB_OFFLINE is set and it is not in the local cache"
    if not offline and not hub_reachable():
        offline, reason = True, "hub unreachable and not in the local cache"
    try:
        with _quiet_transformers():
            tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=offline)
            model = transformers.AutoModelForSequenceClassification.from_pretrained(
                path, local_files_only=offline, **head, **overrides
            )
    except (OSError, ValueError, TypeError, pickle.UnpicklingError) as exc:
        if isinstance(exc, pickle.UnpicklingError):  # refused by torch's weights_only loading
            raise ConfigError(
                f"model {name_or_path!r} has pickled weights that safe loading refuses (no pickle "
                "is ever loaded): save it with save_pretrained(safe_serialization=True)") from None
        if local:
            raise ConfigError(
                f"model directory {name_or_path!r} could not be loaded: {_first_line(exc)}"
            ) from exc
        raise _model_error(name_or_path, reason if offline else _first_line(exc)) from exc
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(f"model {name_or_path!r} has no fast tokenizer (tokenizer.json)")
    model.train()
    return model, tokenizer


def load_hub_dataset(name: str, config: str | None = None, revision: str | None = None) -> Any:
    """Load a dataset from the Hugging Face hub as a ``datasets.DatasetDict`` (all its splits).

    The hub is probed first: when it is unreachable this fails within seconds. With
    ``HF_HUB_OFFLINE=1`` the ``datasets`` cache is used.

    Args:
        name: the dataset's hub name (``"glue"``, ``"stanfordnlp/sst2"``).
        config: its configuration (``"sst2"``), if it has several.
        revision: a branch, tag or commit (pin one for reproducible snapshots).

    Raises:
        ConfigError: if it cannot be reached or found (one line, with what to do instead).
    """
    datasets = require("datasets", "data")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"dataset name must be a non-empty string, got {name!r}")
    # datasets reads HF_HUB_OFFLINE once, at import: only then does it skip the network by itself
    offline = bool(datasets.config.HF_HUB_OFFLINE)
    label = name if config is None else f"{name}/{config}"
    instead = "pass local files instead (DatasetSource(files=...))"
    if not offline and not hub_reachable():
        reason = "offline" if hub_offline() else "hub unreachable"
        hint = "set HF_HUB_OFFLINE=1 before starting the worker to use a cached copy"
        raise _offline_hint("dataset", label, reason, f"{instead}, or {hint}")
    try:
        loaded = datasets.load_dataset(name, config, revision=revision)
    except (FileNotFoundError, ConnectionError, ValueError) as exc:
        reason = (
            "offline and not in the local cache" if offline else f"not found: {_first_line(exc)}"
        )
        raise _offline_hint("dataset", label, reason, instead) from exc
    if not isinstance(loaded, datasets.DatasetDict):
        loaded = datasets.DatasetDict({"train": loaded})
    return loaded
