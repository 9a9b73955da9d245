"""Which errors no retry can fix (issue 18, item 4): ours, a name too long for the filesystem and a
pickle that safe loading refuses fail an activity at once with one short line; others retry."""

from __future__ import annotations

import errno
import os
import pickle
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from temporal_ml.activities._fail_fast import fail_fast
from temporal_ml.errors import ConfigError, DivergedError, permanent_error


def test_a_real_too_long_file_name_is_permanent_and_not_echoed(tmp_path: Path) -> None:
    with pytest.raises(OSError) as info:
        (tmp_path / ("n" * 1_500_000)).exists()  # what a 1.5 MB model name did on every retry
    assert info.value.errno == errno.ENAMETOOLONG

    @fail_fast
    def activity() -> None:
        os.stat(tmp_path / ("n" * 1_500_000))

    with pytest.raises(ApplicationError) as failure:
        activity()
    assert failure.value.non_retryable and failure.value.type == "ConfigError"
    assert "File name too long" in failure.value.message and len(failure.value.message) < 200
    assert failure.value.__cause__ is None  # the original (with the whole name) is not carried


def test_a_refused_pickle_is_permanent() -> None:
    @fail_fast
    def activity() -> None:
        pickle.loads(b"\x80\x05K")  # truncated: UnpicklingError

    with pytest.raises(ApplicationError) as failure:
        activity()
    assert failure.value.non_retryable and "refused to unpickle" in failure.value.message


@pytest.mark.parametrize("exc", [ConfigError("bad"), DivergedError("diverged: loss nan at step 3")])
def test_our_errors_are_permanent_as_they_are(exc: Exception) -> None:
    assert permanent_error(exc) is exc


@pytest.mark.parametrize("exc", [ConnectionResetError(), TimeoutError(), RuntimeError("worker lost"),
                                 OSError(errno.EIO, "I/O error")])
def test_other_errors_keep_retrying(exc: Exception) -> None:
    assert permanent_error(exc) is None

    @fail_fast
    def activity() -> None:
        raise exc

    with pytest.raises(type(exc)):
        activity()
