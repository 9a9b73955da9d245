"""An open searcher interface: a searcher of your own, registered by its ``kind``, travels in a sweep's
input through Temporal's payload converter, answers the ``suggest`` activity, and a kind nobody
registered is refused in one line."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Literal

import pytest
from pydantic import JsonValue, TypeAdapter, ValidationError

from temporal_ml.activities.sweep import SuggestRequest, suggest_point
from temporal_ml.converter import data_converter
from temporal_ml.search import (
    AnySearcher,
    BaseSearcher,
    Float,
    Int,
    RandomSearcher,
    SearchSpace,
    TPESearcher,
    TrialRecord,
    register_searcher,
    searcher_kinds,
)
from temporal_ml.search._base import Direction
from temporal_ml.sweeps import SweepInput
from temporal_ml.types import DatasetSource, TrainConfig


class Corners(BaseSearcher):
    """Tries the corners of the space in turn (each parameter at its low or high end)."""

    kind: Literal["test-corners"] = "test-corners"
    start_high: bool = False
    uses_history = False

    def suggest(self, space: SearchSpace, history: Sequence[TrialRecord], *, seed: int, index: int,
                direction: Direction = "minimize") -> dict[str, JsonValue]:
        point: dict[str, JsonValue] = {}
        for k, (name, param) in enumerate(sorted(space.params.items())):
            high = bool((index >> k) & 1) != self.start_high
            point[name] = param.from_unit(1.0 if high else 0.0)
        return point


@pytest.fixture(autouse=True)
def corners_registered() -> Iterator[None]:
    """``Corners`` registered for each test here, and gone after it (the registry is per process:
    other tests in this process must see only the built-ins)."""
    from temporal_ml.search import _registry

    before = dict(_registry._SEARCHERS)
    assert register_searcher(Corners) is Corners
    yield
    _registry._SEARCHERS.clear()
    _registry._SEARCHERS.update(before)


SPACE = SearchSpace({"hparams.lr": Float(0.001, 0.1, log=True), "hparams.layers": Int(1, 4)})


def test_a_registered_searcher_travels_in_a_sweep_input_and_suggests() -> None:
    inp = SweepInput(base=TrainConfig(trainable="mlp", max_steps=5), space=SPACE,
                     searcher=Corners(start_high=True), n_trials=4, dataset=DatasetSource(generator="blobs"))
    payload = data_converter.payload_converter.to_payloads([inp])
    back = data_converter.payload_converter.from_payloads(payload, [SweepInput])[0]
    assert isinstance(back.searcher, Corners) and back.searcher.start_high and back == inp
    assert b'"kind":"test-corners"' in payload[0].data and b'"start_high":true' in payload[0].data
    points = [suggest_point(SuggestRequest(searcher=back.searcher, space=SPACE, history=[], seed=0, index=i,
                                           direction="minimize")).params for i in range(2)]
    assert points == [{"hparams.layers": 4, "hparams.lr": 0.1}, {"hparams.layers": 1, "hparams.lr": 0.1}]
    assert "test-corners" in searcher_kinds() and {"random", "grid", "tpe"} <= set(searcher_kinds())


def test_built_ins_decode_as_before() -> None:
    adapter: TypeAdapter[BaseSearcher] = TypeAdapter(AnySearcher)
    assert adapter.validate_python({"kind": "tpe", "n_startup": 7}) == TPESearcher(n_startup=7)
    assert adapter.validate_json(adapter.dump_json(RandomSearcher())) == RandomSearcher()


def test_an_unknown_kind_or_bad_settings_are_one_line() -> None:
    adapter: TypeAdapter[BaseSearcher] = TypeAdapter(AnySearcher)
    with pytest.raises(ValidationError) as info:
        adapter.validate_python({"kind": "hyperopt"})
    message = info.value.errors()[0]["msg"]
    assert "unknown searcher kind 'hyperopt'; choose from" in message and "register_searcher" in message
    assert "\n" not in message
    with pytest.raises(ValidationError, match="test-corners searcher: start_high: Input should be a valid boolean"):
        adapter.validate_python({"kind": "test-corners", "start_high": "maybe"})


def test_a_kind_is_registered_once() -> None:
    class Other(BaseSearcher):
        kind: Literal["test-corners"] = "test-corners"

    with pytest.raises(ValueError, match="searcher kind 'test-corners' is taken"):
        register_searcher(Other)
    with pytest.raises(ValueError, match="is not a searcher"):
        register_searcher(int)  # type: ignore[type-var]
    assert register_searcher(Corners) is Corners  # again (a module imported twice): fine
