"""Hardening of the workflow inputs (issue 7, item 10): run ids that become paths, derived child ids."""

from __future__ import annotations

from pathlib import Path

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


def test_activity_failures_stay_small() -> None:
    """Item 6: an error with a huge message becomes a short (still retryable) activity failure."""
    from temporalio.exceptions import ApplicationError

    from temporal_ml.activities._fail_fast import MAX_MESSAGE, fail_fast
    from temporal_ml.errors import StorageError

    @fail_fast
    def huge() -> None:
        raise OSError("x" * 100_000)

    @fail_fast
    def full() -> None:
        raise StorageError("cannot write checkpoint /x: No space left on device [ENOSPC]")

    with pytest.raises(ApplicationError) as info:
        huge()
    assert len(info.value.message) <= MAX_MESSAGE and not info.value.non_retryable
    with pytest.raises(ApplicationError) as info:
        full()
    assert info.value.non_retryable and info.value.type == "StorageError"


def test_storage_errors_are_classified(tmp_path: Path) -> None:
    import errno

    from temporal_ml.errors import (
        INFRASTRUCTURE_ERRORS,
        StorageError,
        StoreUnreachableError,
        permanent_error,
    )
    from temporal_ml.storage._fs import storage_errors

    with pytest.raises(StorageError, match=r"cannot write x: No space left on device \[ENOSPC\]"):
        with storage_errors("x"):
            raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(FileNotFoundError):  # not a "someone must act" error: left as is (retryable)
        with storage_errors("x"):
            raise FileNotFoundError(errno.ENOENT, "gone")
    for unreachable in (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), TimeoutError("timed out"),
                        OSError(errno.ESTALE, "Stale file handle")):
        with pytest.raises(StoreUnreachableError, match=r"cannot write x: the store is unreachable: ") as info:
            with storage_errors("x"):
                raise unreachable
        assert permanent_error(info.value) is None  # retried with backoff: it may come back
    assert "StoreUnreachableError" in INFRASTRUCTURE_ERRORS and "StorageError" in INFRASTRUCTURE_ERRORS
