"""Hardening of the workflow inputs (issue 7, item 10): run ids that become paths, derived child ids."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from temporal_ml.devserver import SEARCH_ATTRIBUTES
from temporal_ml.types import DatasetSource, ExperimentSpec, TrainConfig
from temporal_ml.workflows.coordinator import CoordinatorInput, child_id
from temporal_ml.workflows.training import TrainingInput

CONFIG = TrainConfig(trainable="mlp", max_steps=10)
DATA = DatasetSource(generator="blobs")


@pytest.mark.parametrize("run_id", ["../../etc", "a/b", "..", "x/../../y", "", ".hidden", "a" * 201])
def test_training_run_id_must_be_a_safe_path_component(run_id: str) -> None:
    with pytest.raises(ValidationError, match="run id"):
        TrainingInput(config=CONFIG, dataset=DATA, run_id=run_id)


def test_training_run_id_accepts_safe_names() -> None:
    assert TrainingInput(config=CONFIG, dataset=DATA, run_id="exp-1.a_b=2").run_id == "exp-1.a_b=2"
    assert TrainingInput(config=CONFIG, dataset=DATA).run_id is None


def test_coordinator_rejects_derived_child_ids_that_would_be_too_long_up_front() -> None:
    name = "n" * 100  # the longest experiment name
    longest_ok = "r" * (200 - len(child_id("", name, "train")))
    CoordinatorInput(experiments=[ExperimentSpec(name=name, config=CONFIG)], dataset=DATA,
                     run_id=longest_ok)
    with pytest.raises(ValidationError, match="at most 200"):
        CoordinatorInput(experiments=[ExperimentSpec(name=name, config=CONFIG)], dataset=DATA,
                         run_id=longest_ok + "r")
    with pytest.raises(ValidationError):
        CoordinatorInput(experiments=[ExperimentSpec(name="a", config=CONFIG)], dataset=DATA,
                         run_id="../up")


def test_no_dead_search_attribute() -> None:
    assert "TmlStatus" not in SEARCH_ATTRIBUTES  # registered but never set by any workflow
