"""A whole sweep as one file: data, model, search space, searcher, scheduler and budget.

``temporal-ml sweep start SPEC.yaml`` runs it (``--embedded``: on a server and workers of its own) and
``temporal-ml sweep validate SPEC.yaml`` checks it. YAML, or TOML for a ``.toml`` file::

    name: agnews-lr                # run id prefix
    trainable: text-classification
    model: tiny-bert               # tiny-bert | minilm | a local model directory | a hub name
    dataset: ./data/agnews         # a folder of train.* and an evaluation split, or a hub name
    eval_split: test               # default: dev / validation / test, whichever exists
    metric: accuracy
    direction: maximize
    max_steps: 300
    batch_size: 32
    space:
      hparams.lr: {type: float, low: 1.0e-5, high: 1.0e-2, log: true}
      hparams.warmup_ratio: {type: float, low: 0.0, high: 0.2}
    searcher: {type: tpe, n_startup: 4}               # random | grid | tpe
    scheduler: {type: asha, min_budget: 30, eta: 3}   # optional; or {type: pbt, perturbation_interval: 50}
    trials: 12
    max_concurrency: 2

Every problem is one line naming the key: ``space.hparams.lr: low (0.01) must be less than high
(1e-05)``.

Example:
    >>> spec = SweepSpec.model_validate({"name": "demo", "max_steps": 30, "trials": 2,
    ...     "space": {"hparams.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}})
    >>> inp = spec.to_input("demo-1")
    >>> type(inp).__name__, inp.n_trials, inp.eval_split
    ('SweepInput', 2, 'dev')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import tomllib
from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter, ValidationError

from temporal_ml._names import NAME_PATTERN
from temporal_ml.errors import ConfigError
from temporal_ml.search import AnySearcher, AshaScheduler, PbtScheduler, SearchSpace
from temporal_ml.search._space import Param
from temporal_ml.sources import (
    TEXT_CLASSIFICATION,
    DatasetSummary,
    check_dataset,
    dataset_source,
    default_eval_split,
    resolve_model,
)
from temporal_ml.sweeps import SweepInput
from temporal_ml.types import TrainConfig

__all__ = ["SweepSpec", "load_spec", "SpecError"]


class SpecError(ConfigError):
    """A sweep spec that cannot run: one line, ``<file>: <key>: <what is wrong>``."""


class SweepSpec(BaseModel):
    """A sweep spec file's content (see the module docstring for the format).

    Attributes:
        name: the run id prefix (``<name>-<8 hex>`` unless ``--run-id`` is given).
        trainable: the trainable's name on the workers (``text-classification`` is built in; an
            embedded run also takes ``module:attr``).
        model / dataset / eval_split: what :mod:`temporal_ml.sources` resolves.
        train_limit: use only the first rows of a local training file.
        metric / direction: the evaluation metric to optimize.
        metrics / directions: several evaluation metrics to optimize at once, one direction each (a
            multi-objective sweep; its result is the Pareto front; the searcher ``nsga2``, ``random``
            or ``grid``); instead of ``metric``/``direction``.
        max_steps / batch_size / checkpoint_every_steps / seed: each trial's training.
        hparams: hyperparameters every trial gets (the space's points are applied over them).
        space: ``key: {type: float|int|categorical|fixed, ...}``; keys are ``hparams.<name>`` or a
            ``TrainConfig`` field.
        searcher: ``{type: random|grid|tpe, ...options}``.
        scheduler: ``{type: asha, min_budget, eta, brackets}`` (its top rung is ``max_steps``),
            ``{type: pbt, perturbation_interval, quantile, resample_probability, factors, mutate}``
            (population-based training of ``trials`` members to ``max_steps``), or none: every trial
            trains to ``max_steps``.
        trials / max_concurrency / max_failed_trials: how many trials, at once, and how many may
            fail before the sweep stops itself.
        task_queue / train_task_queue / eval_task_queue: where the sweep, its trainings and its
            evaluations run (the defaults of ``temporal-ml worker``).
        metric_sinks: also send each trial's metrics there (``tensorboard``, ``mlflow``, ...).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="strings")

    name: str = Field(pattern=NAME_PATTERN.pattern, max_length=100)
    trainable: str = TEXT_CLASSIFICATION
    model: str = "tiny-bert"
    dataset: str = "synthetic-sentiment"
    eval_split: str | None = None
    train_limit: int | None = Field(default=None, ge=1)
    metric: str = "accuracy"
    direction: Literal["maximize", "minimize"] = "maximize"
    metrics: list[str] | None = None
    directions: list[Literal["maximize", "minimize"]] | None = None
    max_steps: int = Field(ge=1)
    batch_size: int = Field(default=32, ge=1)
    checkpoint_every_steps: int | None = Field(default=None, ge=1)
    seed: int = 0
    hparams: dict[str, JsonValue] = Field(default_factory=dict)
    space: dict[str, dict[str, Any]]
    searcher: dict[str, Any] = Field(default_factory=lambda: {"type": "random"})
    scheduler: dict[str, Any] | None = None
    trials: int = Field(ge=1, le=100_000)
    max_concurrency: int = Field(default=2, ge=1, le=500)
    max_failed_trials: int | None = Field(default=None, ge=1)
    task_queue: str = "temporal-ml"
    train_task_queue: str = "temporal-ml-train"
    eval_task_queue: str = "temporal-ml-eval"
    metric_sinks: list[str] = Field(default_factory=list)

    # -- the parts, each checked with errors naming its key ----------------------------------------

    def search_space(self) -> SearchSpace:
        """The ``space`` mapping as a :class:`SearchSpace` (``type`` is the parameter kind)."""
        if not self.space:
            raise SpecError("space: needs at least one parameter, e.g. hparams.lr: {type: float, "
                            "low: 1.0e-5, high: 1.0e-2, log: true}")
        params = {}
        for key, entry in self.space.items():
            params[key] = _typed(f"space.{key}", entry, _PARAM, "float, int, categorical or fixed")
            problem = params[key].problem()
            if problem:
                raise SpecError(f"space.{key}: {problem}")
        return SearchSpace(params)

    def the_searcher(self) -> Any:
        """The ``searcher`` mapping as a searcher (random, grid, TPE, or one registered by its kind)."""
        from temporal_ml.search import searcher_kinds

        builtin = ["random", "grid", "tpe", "nsga2", "bohb"]
        kinds = [*builtin, *(k for k in searcher_kinds() if k not in builtin)]  # yours too (registered)
        return _typed("searcher", self.searcher, _SEARCHER, ", ".join(kinds[:-1]) + f" or {kinds[-1]}")

    def the_scheduler(self) -> AshaScheduler | PbtScheduler | None:
        """The ``scheduler`` mapping as an :class:`AshaScheduler` or a :class:`PbtScheduler`
        (``type: pbt``, its ``perturbation_interval``...) whose last rung is ``max_steps``."""
        if self.scheduler is None:
            return None
        entry = dict(self.scheduler)
        kind = entry.pop("type", entry.pop("kind", None))
        if kind not in ("asha", "pbt"):
            raise SpecError(f"scheduler.type: {kind!r} is not a scheduler (use asha or pbt, or leave "
                            "scheduler out for every trial to train to max_steps)")
        if "max_budget" in entry:
            raise SpecError("scheduler.max_budget: the top rung is max_steps; set max_steps instead")
        try:
            return (AshaScheduler if kind == "asha" else PbtScheduler)(**entry, max_budget=self.max_steps)
        except ValidationError as exc:
            raise SpecError(_one_line(exc, "scheduler")) from None
        except TypeError as exc:
            raise SpecError(f"scheduler: {exc}") from None

    def base_config(self) -> TrainConfig:
        """The config every trial starts from (the model resolved, the spec's fixed hparams)."""
        hparams = dict(self.hparams)
        if self.trainable == TEXT_CLASSIFICATION:
            hparams["model"] = resolve_model(self.model, "model")
        every = self.checkpoint_every_steps or max(1, min(50, self.max_steps // 4 or 1))
        try:
            return TrainConfig(trainable=self.trainable, max_steps=self.max_steps, batch_size=self.batch_size,
                               seed=self.seed, checkpoint_every_steps=every, hparams=hparams,
                               metric_sinks=self.metric_sinks)
        except ValidationError as exc:
            raise SpecError(_one_line(exc, "")) from None

    def to_input(self, run_id: str) -> SweepInput:
        """The workflow input: a :class:`SweepInput`, with the spec's scheduler if it has one.

        Raises:
            SpecError: one line naming the key at fault.
        """
        base = self.base_config()
        space = self.search_space()
        searcher = self.the_searcher()
        scheduler = self.the_scheduler()
        source = dataset_source(self.dataset, self.train_limit, "dataset")
        common: dict[str, Any] = dict(
            base=base, space=space, searcher=searcher, n_trials=self.trials,
            max_concurrency=self.max_concurrency, objective=self.metric, direction=self.direction,
            seed=self.seed, dataset=source, run_id=run_id, eval_split=self.eval_split or default_eval_split(source),
            train_task_queue=self.train_task_queue, eval_task_queue=self.eval_task_queue,
            max_failed_trials=self.max_failed_trials, progress_every_seconds=5,
        )
        if self.metrics is not None or self.directions is not None:  # several objectives
            if {"metric", "direction"} & self.model_fields_set:
                raise SpecError("metrics: give metric/direction (one objective) or metrics/directions, not both")
            common.update(objectives=self.metrics, directions=self.directions)
            if self.metrics:
                common.update(objective=self.metrics[0])
                if self.directions:
                    common.update(direction=self.directions[0])
        try:
            return SweepInput(**common, scheduler=scheduler)
        except ValidationError as exc:
            raise SpecError(_one_line(exc, "", _INPUT_KEYS)) from None

    def check_data(self, inp: SweepInput) -> DatasetSummary | None:
        """Check a local dataset folder (evaluation split, columns, labels) before anything starts."""
        assert inp.dataset is not None
        label = self.hparams.get("label_column")
        text = self.hparams.get("text_column")
        return check_dataset(inp.dataset, inp.eval_split, what="dataset",
                             label_column=label if isinstance(label, str) else None,
                             text_column=text if isinstance(text, str) else None)

    def check_hparams(self, inp: SweepInput) -> None:
        """The built-in trainable's hyperparameters (fixed ones and the space's keys) are known."""
        if self.trainable != TEXT_CLASSIFICATION:
            return
        from temporal_ml.hf.text_classification import TextClassificationParams

        known = set(TextClassificationParams.model_fields)
        for key in [*(f"hparams.{k}" for k in self.hparams), *inp.space.names]:
            name = key.removeprefix("hparams.")
            if key.startswith("hparams.") and name not in known:
                where = "space" if key in inp.space.params else "hparams"
                shown = key if where == "space" else name
                raise SpecError(f"{where}.{shown}: not a hyperparameter of {TEXT_CLASSIFICATION} "
                                f"(known: {', '.join(sorted(known))})")
        try:
            TextClassificationParams.parse(dict(inp.base.hparams))
        except (ValueError, ConfigError) as exc:
            raise SpecError(f"hparams: {str(exc).splitlines()[0]}") from None


_PARAM: TypeAdapter[Any] = TypeAdapter(Param)
_SEARCHER: TypeAdapter[Any] = TypeAdapter(AnySearcher)
#: workflow input fields -> the spec key that sets them (for errors raised by the input's checks)
_INPUT_KEYS = {"n_trials": "trials", "objective": "metric", "objectives": "metrics", "base": "", "space": "space"}


def _typed(key: str, entry: Any, adapter: TypeAdapter[Any], kinds: str) -> Any:
    """``{type: X, ...}`` -> the pydantic model of kind X, errors naming ``key``."""
    if not isinstance(entry, dict):
        raise SpecError(f"{key}: expected a mapping like {{type: ..., ...}}, got {entry!r}")
    entry = dict(entry)
    kind = entry.pop("type", None)
    if kind is None:
        kind = entry.pop("kind", None)
    if kind is None:
        raise SpecError(f"{key}.type: missing ({kinds})")
    try:
        return adapter.validate_python({**entry, "kind": kind})
    except ValidationError as exc:
        if any(e["type"] == "union_tag_invalid" or "unknown searcher kind" in e["msg"] for e in exc.errors()):
            raise SpecError(f"{key}.type: {kind!r} is not one of {kinds}") from None
        raise SpecError(_one_line(exc, key, drop_first=True)) from None


def _one_line(exc: ValidationError, prefix: str, rename: dict[str, str] | None = None,
              drop_first: bool = False) -> str:
    """The first error of ``exc`` as ``key.path: message``."""
    error = exc.errors()[0]
    loc = [str(p) for p in error["loc"]]
    if drop_first and loc:  # the union tag pydantic puts first
        loc = loc[1:]
    if loc and rename and loc[0] in rename:
        loc[0] = rename[loc[0]]
    path = ".".join(p for p in [prefix, *loc] if p)
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    return f"{path}: {message}" if path else message


def load_spec(path: str | Path) -> SweepSpec:
    """Read and check a spec file (YAML, or TOML for ``.toml``).

    Raises:
        SpecError: ``<file>: <key>: <what is wrong>`` in one line.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the spec file ({exc.strerror or exc})") from None
    try:
        if path.suffix.lower() == ".toml":
            data: Any = tomllib.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # noqa: BLE001 - a YAML or TOML syntax error, in one line
        raise SpecError(f"{path}: not valid {'TOML' if path.suffix.lower() == '.toml' else 'YAML'}: "
                        f"{' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a spec is a mapping of keys (name, dataset, space, ...), "
                        f"not {type(data).__name__}")
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(f"{path}: {_one_line(exc, '')}") from None


def spec_input(path: str | Path, run_id: str | None = None) -> tuple[SweepSpec, SweepInput,
                                                                      DatasetSummary | None]:
    """Load ``path``, build the workflow input and check the data, naming the file in any error."""
    import uuid

    spec = load_spec(path)
    try:
        inp = spec.to_input(run_id or f"{spec.name}-{uuid.uuid4().hex[:8]}")
        spec.check_hparams(inp)
        summary = spec.check_data(inp)
    except ConfigError as exc:
        raise SpecError(f"{path}: {exc}") from None
    return spec, inp, summary
