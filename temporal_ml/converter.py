"""How values cross Temporal: JSON through pydantic, with non-finite numbers as data.

A diverged loss is ``nan``, a metric of an empty split may be ``inf``: they are results to report,
not errors. Plain JSON has no such numbers (pydantic's default writes ``null``, which then fails to
decode into a ``float`` field and wedges the workflow task that reads it), so temporal-ml uses one
encoding everywhere a value leaves the process, in payloads, queries, results and the tables in the
store:

=============  ===============
value          JSON
=============  ===============
``nan``        ``"NaN"``
``inf``        ``"Infinity"``
``-inf``       ``"-Infinity"``
=============  ===============

Every pydantic model of the library declares ``ser_json_inf_nan="strings"`` (pinned by a test), and
:data:`data_converter` writes plain values (dicts, lists, floats) the same way. Fields typed
``float`` read the strings back as the numbers; a field typed ``Any`` keeps the string.
:func:`decode_nonfinite` turns such strings back into floats where no type says so (a table row
read from the store).

Example:
    >>> payload = data_converter.payload_converter.to_payloads([{"loss": float("nan")}])[0]
    >>> payload.data
    b'{"loss":"NaN"}'
"""

from __future__ import annotations

import math
from typing import Any

import temporalio.api.common.v1
from pydantic_core import to_json
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
)

__all__ = ["data_converter", "NONFINITE_JSON", "decode_nonfinite", "TemporalMLPayloadConverter"]

#: The JSON strings that stand for the non-finite floats.
NONFINITE_JSON: dict[str, float] = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class _JSONConverter(PydanticJSONPlainPayloadConverter):
    """pydantic's JSON payload converter, writing non-finite floats of plain values as strings
    (models follow their own ``ser_json_inf_nan``, which is ``"strings"`` for ours)."""

    def to_payload(self, value: Any) -> temporalio.api.common.v1.Payload | None:
        return temporalio.api.common.v1.Payload(
            metadata={"encoding": self.encoding.encode()},
            data=to_json(value, inf_nan_mode="strings"),
        )


class TemporalMLPayloadConverter(CompositePayloadConverter):
    """Temporal's default payload converters, with JSON written and read by pydantic and
    :data:`NONFINITE_JSON` for non-finite floats."""

    def __init__(self) -> None:
        json_converter = _JSONConverter()
        super().__init__(*(
            json_converter if isinstance(c, JSONPlainPayloadConverter) else c
            for c in DefaultPayloadConverter.default_encoding_payload_converters
        ))


#: The data converter of every temporal-ml client and worker (installed by ``TemporalMLPlugin``).
data_converter = DataConverter(payload_converter_class=TemporalMLPayloadConverter)


def decode_nonfinite(value: Any) -> Any:
    """``value`` with every :data:`NONFINITE_JSON` string, at any depth, turned back into its float.

    Example:
        >>> decode_nonfinite({"loss": "NaN", "params": [1, "Infinity"], "name": "t0001"})
        {'loss': nan, 'params': [1, inf], 'name': 't0001'}
    """
    if isinstance(value, str):
        return NONFINITE_JSON.get(value, value)
    if isinstance(value, dict):
        return {k: decode_nonfinite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_nonfinite(v) for v in value]
    return value
