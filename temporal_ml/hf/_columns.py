"""Which columns hold texts and labels, and how labels become model targets (pyarrow only)."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from temporal_ml.errors import ConfigError

__all__ = ["LabelSpec", "resolve_columns", "texts_of", "infer_labels", "label_values"]


@dataclass(frozen=True)
class LabelSpec:
    """How labels map to the model's outputs: regression, integer classes or named classes."""

    num_labels: int
    regression: bool = False
    names: tuple[str, ...] | None = None

    @property
    def problem_type(self) -> str:
        """The transformers ``problem_type`` of the model config."""
        return "regression" if self.regression else "single_label_classification"

    @property
    def dtype(self) -> str:
        """The torch dtype name of the targets."""
        return "float32" if self.regression else "int64"

    def name(self, index: int) -> int | str:
        """The label of output ``index``: its name, or the index itself for integer labels."""
        return index if self.names is None else self.names[index]


def resolve_columns(table: pa.Table, text: str | None, label: str | None) -> tuple[str, str]:
    """The text and label columns: as given, else ``label``/``labels`` and ``sentence``/``text``
    or the only other string column."""
    cols = table.column_names
    if label is None:
        label = next((c for c in ("label", "labels") if c in cols), None)
        if label is None:
            raise ConfigError(f"no label column: set hparam label_column (columns: {cols})")
    if text is None:
        named = [c for c in ("sentence", "text") if c in cols]
        strings = [f.name for f in table.schema if f.name != label and _is_string(f.type)]
        if not named and len(strings) != 1:
            raise ConfigError(
                f"cannot infer the text column: set hparam text_column (columns: {cols})"
            )
        text = named[0] if named else strings[0]
    for role, col in (("text_column", text), ("label_column", label)):
        if col not in cols:
            raise ConfigError(f"{role} {col!r} is not a column of the data (columns: {cols})")
    if not _is_string(table.schema.field(text).type):
        raise ConfigError(
            f"text column {text!r} must hold strings, not {table.schema.field(text).type}"
        )
    return text, label


def _is_string(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def texts_of(table: pa.Table, column: str) -> list[str]:
    """The texts of ``column`` as Python strings (missing values are an error)."""
    col = table.column(column)
    if col.null_count:
        raise ConfigError(f"text column {column!r} has {col.null_count} missing values")
    return col.to_pylist()


def _plain_labels(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if column.null_count:
        raise ConfigError(f"the label column has {column.null_count} missing values")
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if pa.types.is_boolean(column.type):
        column = column.cast(pa.int64())
    return column


def infer_labels(column: pa.ChunkedArray, num_labels: int | None) -> LabelSpec:
    """Integers -> classes 0..max (or ``num_labels``); floats -> regression; strings -> sorted names."""
    column = _plain_labels(column)
    kind = column.type
    if pa.types.is_floating(kind):
        if num_labels not in (None, 1):
            raise ConfigError(
                f"float labels mean regression (num_labels=1), got num_labels={num_labels}"
            )
        return LabelSpec(num_labels=1, regression=True)
    if _is_string(kind):
        names = tuple(sorted(set(column.to_pylist())))
        if num_labels not in (None, len(names)):
            raise ConfigError(f"num_labels={num_labels} but the labels have {len(names)} names")
        spec = LabelSpec(num_labels=len(names), names=names)
    elif pa.types.is_integer(kind):
        values = column.to_pylist()
        if values and min(values) < 0:
            raise ConfigError(f"labels must be >= 0, found {min(values)}")
        spec = LabelSpec(num_labels=num_labels or (max(values, default=0) + 1))
    else:
        raise ConfigError(f"labels must be integers, strings or floats, not {kind}")
    if spec.num_labels < 2:
        raise ConfigError(
            f"classification needs at least 2 classes, got num_labels={spec.num_labels}"
        )
    label_values(column, spec)  # checks every label fits num_labels
    return spec


def label_values(column: pa.ChunkedArray, spec: LabelSpec) -> list[int] | list[float]:
    """The labels as model targets (class indices or floats), checked against ``spec``."""
    column = _plain_labels(column)
    values = column.to_pylist()
    if spec.regression:
        if not (pa.types.is_floating(column.type) or pa.types.is_integer(column.type)):
            raise ConfigError(f"regression labels must be numbers, not {column.type}")
        return [float(v) for v in values]
    if spec.names is not None:
        index = {name: i for i, name in enumerate(spec.names)}
        if unknown := sorted({str(v) for v in values} - set(index)):
            raise ConfigError(f"unknown labels {unknown[:5]} (known: {list(spec.names)})")
        return [index[v] for v in values]
    if not pa.types.is_integer(column.type):
        raise ConfigError(f"class labels must be integers, not {column.type}")
    if bad := [v for v in values if not 0 <= v < spec.num_labels]:
        raise ConfigError(f"labels must be in [0, {spec.num_labels}), found {bad[0]}")
    return values
