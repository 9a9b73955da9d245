"""Sweep value types: TrainConfig.schedule_steps keeps old hashes and makes rung budgets one trajectory;
the compact audit rebuilds each suggestion's history; inputs are checked against the space."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from temporal_ml.search import Categorical, Float, GridSearcher, RandomSearcher, SearchSpace
from temporal_ml.sweeps import SweepInput, TrialRow, history_at, recompute_suggestions
from temporal_ml.types import DatasetSource, TrainConfig

BASE = TrainConfig(trainable="m", max_steps=10)
SPACE = SearchSpace({"hparams.lr": Float(1e-4, 1e-1, log=True)})


def test_schedule_steps_leaves_old_hashes_and_joins_rungs() -> None:
    # The hashes of configs without schedule_steps are those of the release before the field.
    assert BASE.config_hash() == "3845d70107dda65716c90982a8d10d103a367a2c34526ec9e0b2334840801628"
    assert BASE.full_hash() == "6538e3d9e45901af8a7f8f16115b2583fdd9c7d1c4b9017bc21e277eb365fe23"
    assert BASE.total_steps == 10
    rung0 = BASE.model_copy(update={"schedule_steps": 90})
    rung1 = TrainConfig.model_validate({**rung0.model_dump(), "max_steps": 30})
    assert rung1.total_steps == 90 and rung0.config_hash() == rung1.config_hash()
    assert rung0.config_hash() != TrainConfig.model_validate({**rung0.model_dump(), "schedule_steps": 91}).config_hash()
    with pytest.raises(ValidationError, match="exceeds schedule_steps"):
        TrainConfig(trainable="m", max_steps=100, schedule_steps=90)


def test_history_at_rebuilds_what_a_suggestion_saw() -> None:
    rows = [
        TrialRow(index=0, params={"hparams.lr": 0.01}, state="done", value=0.9, result_seq=1),
        TrialRow(index=1, params={"hparams.lr": 0.02}, state="failed", error="x", result_seq=0),
        TrialRow(index=2, params={"hparams.lr": 0.03}, state="done", value=0.5, result_seq=2),
    ]
    seen = history_at(rows, 2, results_seen=1)
    assert [(h.index, h.state) for h in seen] == [(0, "pending"), (1, "failed")]
    seen = history_at(rows, 3, results_seen=3)
    assert [(h.index, h.state, h.value) for h in seen] == [(0, "complete", 0.9), (1, "failed", None),
                                                           (2, "complete", 0.5)]


def test_sweep_input_checks_space_and_searcher() -> None:
    data = DatasetSource(generator="g")
    with pytest.raises(ValidationError, match="not a field of TrainConfig"):
        SweepInput(base=BASE, space=SearchSpace({"nope": Float(0, 1)}), n_trials=2, dataset=data)
    with pytest.raises(ValidationError, match="grid needs finite values"):
        SweepInput(base=BASE, space=SPACE, searcher=GridSearcher(), n_trials=2, dataset=data)
    with pytest.raises(ValidationError, match="exactly one of dataset or snapshot"):
        SweepInput(base=BASE, space=SPACE, n_trials=2)
    inp = SweepInput(base=BASE, space=SPACE, searcher=RandomSearcher(), n_trials=2, dataset=data)
    assert SweepInput.model_validate_json(inp.model_dump_json()) == inp
    assert recompute_suggestions(inp, []) == []


def test_grid_categorical_space_is_accepted() -> None:
    space = SearchSpace({"batch_size": Categorical([8, 16])})
    SweepInput(base=BASE, space=space, searcher=GridSearcher(), n_trials=2, dataset=DatasetSource(generator="g"))
