"""Search spaces: typed parameters and the mapping of a point onto a config.

A parameter is checked when it joins a :class:`SearchSpace`, so every error names the parameter:
``SearchSpace({"lr": Float(1e-2, 1e-5, log=True)})`` raises
``ValueError: parameter 'lr': low (0.01) must be less than high (1e-05)``.

Every numeric parameter maps onto the unit interval (``to_unit`` / ``from_unit``), on a log scale
where asked; searchers work in that unit cube and never see raw bounds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

__all__ = ["Float", "Int", "Categorical", "Fixed", "Param", "SearchSpace", "canonical_json"]

_Model = TypeVar("_Model", bound=BaseModel)


def canonical_json(value: Any) -> str:
    """One string per JSON value (sorted keys, no spaces): how choices and points are compared."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class _Param(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="strings", frozen=True, extra="forbid")

    def problem(self) -> str | None:
        """What is wrong with this parameter, or ``None``. Checked when it joins a space."""
        return None

    def contains(self, value: Any) -> bool:  # pragma: no cover - overridden
        raise NotImplementedError


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class Float(_Param):
    """A real number in ``[low, high]``, on a linear or log scale, optionally on a grid of ``step``.

    Example:
        >>> Float(1e-5, 1e-2, log=True)
        Float(kind='float', low=1e-05, high=0.01, log=True, step=None)
    """

    kind: Literal["float"] = "float"
    low: float
    high: float
    log: bool = False
    step: float | None = None

    def __init__(self, low: float | None = None, high: float | None = None, **data: Any) -> None:
        if low is not None:
            data["low"] = low
        if high is not None:
            data["high"] = high
        super().__init__(**data)

    def problem(self) -> str | None:
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            return f"bounds must be finite (got low={self.low}, high={self.high})"
        if self.low >= self.high:
            return f"low ({self.low}) must be less than high ({self.high})"
        if self.log and self.low <= 0:
            return f"a log scale needs low > 0 (got low={self.low})"
        if self.step is not None:
            if self.log:
                return "step and log cannot be combined"
            if not self.step > 0:
                return f"step must be > 0 (got {self.step})"
            if self.step > self.high - self.low:
                return f"step ({self.step}) is larger than the range {self.low}..{self.high}"
        return None

    def _span(self) -> tuple[float, float]:
        low, high = self.low, self.high
        if self.step is not None:  # each grid point owns an equal share of the unit interval
            low, high = low - self.step / 2, self._top() + self.step / 2
        return (math.log(low), math.log(high)) if self.log else (low, high)

    def _top(self) -> float:
        assert self.step is not None
        return self.low + math.floor((self.high - self.low) / self.step + 1e-9) * self.step

    def to_unit(self, value: float) -> float:
        low, high = self._span()
        x = math.log(value) if self.log else float(value)
        return min(1.0, max(0.0, (x - low) / (high - low)))

    def from_unit(self, u: float) -> float:
        low, high = self._span()
        x = low + min(1.0, max(0.0, u)) * (high - low)
        value = math.exp(x) if self.log else x
        if self.step is not None:
            k = round((value - self.low) / self.step)
            value = self.low + k * self.step
            value = min(self._top(), max(self.low, value))
            value = round(value, 12)
        return min(self.high, max(self.low, value))

    def contains(self, value: Any) -> bool:
        if not _is_number(value) or not self.low <= value <= self.high:
            return False
        if self.step is not None:
            k = (value - self.low) / self.step
            return abs(k - round(k)) < 1e-6
        return True

    def grid(self) -> list[float] | None:
        if self.step is None:
            return None
        n = math.floor((self.high - self.low) / self.step + 1e-9)
        return [round(self.low + k * self.step, 12) for k in range(n + 1)]


class Int(_Param):
    """An integer in ``[low, high]`` (both included), linear with ``step`` or on a log scale.

    Example:
        >>> Int(1, 6).grid()
        [1, 2, 3, 4, 5, 6]
    """

    kind: Literal["int"] = "int"
    low: int
    high: int
    log: bool = False
    step: int = 1

    def __init__(self, low: int | None = None, high: int | None = None, **data: Any) -> None:
        if low is not None:
            data["low"] = low
        if high is not None:
            data["high"] = high
        super().__init__(**data)

    def problem(self) -> str | None:
        if self.low >= self.high:
            return f"low ({self.low}) must be less than high ({self.high})"
        if self.log and self.low <= 0:
            return f"a log scale needs low > 0 (got low={self.low})"
        if self.step < 1:
            return f"step must be >= 1 (got {self.step})"
        if self.log and self.step != 1:
            return "step and log cannot be combined"
        if self.step > self.high - self.low:
            return f"step ({self.step}) is larger than the range {self.low}..{self.high}"
        return None

    def _top(self) -> int:
        return self.low + (self.high - self.low) // self.step * self.step

    def _span(self) -> tuple[float, float]:
        low, high = self.low - self.step / 2, self._top() + self.step / 2
        return (math.log(low), math.log(high)) if self.log else (low, high)

    def to_unit(self, value: float) -> float:
        low, high = self._span()
        x = math.log(value) if self.log else float(value)
        return min(1.0, max(0.0, (x - low) / (high - low)))

    def from_unit(self, u: float) -> int:
        low, high = self._span()
        x = low + min(1.0, max(0.0, u)) * (high - low)
        value = math.exp(x) if self.log else x
        k = round((value - self.low) / self.step)
        return int(min(self._top(), max(self.low, self.low + k * self.step)))

    def contains(self, value: Any) -> bool:
        return (
            isinstance(value, int)
            and not isinstance(value, bool)
            and self.low <= value <= self.high
            and (value - self.low) % self.step == 0
        )

    def grid(self) -> list[int]:
        return list(range(self.low, self._top() + 1, self.step))


class Categorical(_Param):
    """One of a list of JSON values (strings, numbers, booleans, lists, objects, null).

    Example:
        >>> Categorical(["relu", "gelu"]).grid()
        ['relu', 'gelu']
    """

    kind: Literal["categorical"] = "categorical"
    choices: list[JsonValue]

    def __init__(self, choices: list[JsonValue] | None = None, **data: Any) -> None:
        if choices is not None:
            data["choices"] = list(choices)
        super().__init__(**data)

    def problem(self) -> str | None:
        if not self.choices:
            return "choices must not be empty"
        seen: set[str] = set()
        for choice in self.choices:
            key = canonical_json(choice)
            if key in seen:
                return f"duplicate choice {key}"
            seen.add(key)
        return None

    def index(self, value: Any) -> int:
        """Position of ``value`` among the choices (``ValueError`` if it is not one)."""
        key = canonical_json(value)
        for i, choice in enumerate(self.choices):
            if canonical_json(choice) == key:
                return i
        raise ValueError(f"{key} is not one of the choices")

    def contains(self, value: Any) -> bool:
        try:
            self.index(value)
        except (ValueError, TypeError):
            return False
        return True

    def grid(self) -> list[JsonValue]:
        return list(self.choices)


class Fixed(_Param):
    """A constant: part of every point, never searched (e.g. ``Fixed(3)`` for a fixed epoch count)."""

    kind: Literal["fixed"] = "fixed"
    value: JsonValue

    def __init__(self, value: JsonValue = None, **data: Any) -> None:
        if "value" not in data:
            data["value"] = value
        super().__init__(**data)

    def contains(self, value: Any) -> bool:
        return canonical_json(value) == canonical_json(self.value)

    def grid(self) -> list[JsonValue]:
        return [self.value]


Param = Annotated[Float | Int | Categorical | Fixed, Field(discriminator="kind")]
"""Any parameter; JSON carries its ``kind`` (``float``, ``int``, ``categorical``, ``fixed``)."""

Numeric = Float | Int


class SearchSpace(BaseModel):
    """Named parameters. Keys address a config: ``hparams.<name>`` or a top-level field.

    A space is JSON-serializable (it travels in workflow inputs) and is checked on construction;
    :meth:`check_keys` also checks it against a config, and :meth:`apply` maps a point onto one.

    Example:
        >>> space = SearchSpace({"hparams.lr": Float(1e-5, 1e-2, log=True),
        ...                      "batch_size": Categorical([16, 32])})
        >>> sorted(space.names)
        ['batch_size', 'hparams.lr']
    """

    model_config = ConfigDict(ser_json_inf_nan="strings", frozen=True, extra="forbid")

    params: dict[str, Param]

    def __init__(self, params: Mapping[str, Any] | None = None, **data: Any) -> None:
        if params is not None:
            data["params"] = dict(params)
        super().__init__(**data)

    @model_validator(mode="after")
    def _check(self) -> SearchSpace:
        if not self.params:
            raise ValueError("a search space needs at least one parameter")
        for name, param in self.params.items():
            if not name or name != name.strip():
                raise ValueError(f"parameter {name!r}: names must be non-empty, without spaces")
            problem = param.problem()
            if problem:
                raise ValueError(f"parameter {name!r}: {problem}")
        return self

    @property
    def names(self) -> list[str]:
        """Parameter names in declaration order (the order searchers use)."""
        return list(self.params)

    def problem_with(self, point: Mapping[str, Any]) -> str | None:
        """Why ``point`` is not a point of this space (missing, unknown or out-of-range keys)."""
        missing = [n for n in self.params if n not in point]
        if missing:
            return f"missing parameter(s): {', '.join(missing)}"
        unknown = [n for n in point if n not in self.params]
        if unknown:
            return f"unknown parameter(s): {', '.join(unknown)} (the space has {', '.join(self.params)})"
        for name, param in self.params.items():
            if not param.contains(point[name]):
                return f"parameter {name!r}: {canonical_json(point[name])} is outside {_describe(param)}"
        return None

    def grid(self) -> list[dict[str, JsonValue]]:
        """Every point of a finite space in a fixed order (last parameter varies fastest)."""
        axes: list[list[Any]] = []
        for name, param in self.params.items():
            values = param.grid()
            if values is None:
                raise ValueError(
                    f"parameter {name!r}: a grid needs finite values (give the Float a step, "
                    "or use Categorical)"
                )
            axes.append(values)
        points: list[dict[str, JsonValue]] = [{}]
        for name, values in zip(self.params, axes, strict=True):
            points = [{**p, name: v} for p in points for v in values]
        return points

    def grid_size(self) -> int | None:
        """Number of grid points, or ``None`` when a parameter is continuous."""
        size = 1
        for param in self.params.values():
            values = param.grid()
            if values is None:
                return None
            size *= len(values)
        return size

    def check_keys(self, config: BaseModel | type[BaseModel]) -> None:
        """Check that every key addresses ``config`` and that the bounds give valid configs.

        Raises:
            ValueError: naming the first parameter that is not a field of the config, or whose
                values the config rejects (e.g. a ``Float`` for an integer ``batch_size``).
        """
        cls = config if isinstance(config, type) else type(config)
        fields = cls.model_fields
        for name in self.params:
            if name.startswith("hparams."):
                if "hparams" not in fields or not name[len("hparams."):]:
                    raise ValueError(f"parameter {name!r}: the config has no hparams to address")
                continue
            if name not in fields or name in ("hparams", "trainable"):
                raise ValueError(
                    f"parameter {name!r} is not a field of {cls.__name__}; "
                    f"use 'hparams.{name}' for a hyperparameter"
                )
        if isinstance(config, BaseModel):
            for name, param in self.params.items():
                for value in _extremes(param):
                    try:
                        self._set(config, {name: value})
                    except ValueError as exc:
                        first = str(exc).splitlines()
                        detail = first[2].strip() if len(first) > 2 else str(exc)
                        raise ValueError(
                            f"parameter {name!r}: the config rejects {canonical_json(value)} "
                            f"({detail})"
                        ) from None

    def apply(self, config: _Model, point: Mapping[str, Any]) -> _Model:
        """A copy of ``config`` with the point's values set (validated again).

        Example:
            >>> from temporal_ml.types import TrainConfig
            >>> base = TrainConfig(trainable="m", max_steps=10)
            >>> SearchSpace({"hparams.lr": Float(0.1, 1.0)}).apply(base, {"hparams.lr": 0.5}).hparams
            {'lr': 0.5}
        """
        problem = self.problem_with(point)
        if problem:
            raise ValueError(problem)
        return self._set(config, point)

    @staticmethod
    def _set(config: _Model, point: Mapping[str, Any]) -> _Model:
        data = config.model_dump()
        for name, value in point.items():
            if name.startswith("hparams."):
                data.setdefault("hparams", {})[name[len("hparams."):]] = value
            else:
                data[name] = value
        return type(config).model_validate(data)


def _extremes(param: Any) -> list[Any]:
    values = param.grid()
    if values is None:
        return [param.low, param.high]
    return [values[0], values[-1]] if isinstance(param, Int) else list(values)


def _describe(param: Any) -> str:
    if isinstance(param, (Float, Int)):
        extra = " (log)" if param.log else ""
        if isinstance(param, Int) and param.step != 1 or isinstance(param, Float) and param.step:
            extra += f" step {param.step}"
        return f"[{param.low}, {param.high}]{extra}"
    if isinstance(param, Categorical):
        return "the choices " + ", ".join(canonical_json(c) for c in param.choices)
    return f"the fixed value {canonical_json(param.value)}"
