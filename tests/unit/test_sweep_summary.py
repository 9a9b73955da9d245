"""The one-line views of a sweep: ``SweepStatus.summary`` (``temporal-ml status``, ``sweep start``'s
progress) and the result summary of ``temporal-ml sweep start`` (leaderboard with budgets, stopped
trials listed apart, numbers with 4 significant digits)."""

from __future__ import annotations

from temporal_ml.cli._spec import _summary
from temporal_ml.sweeps import SweepResult, SweepStatus, TrialResult, TrialRow, duration_text
from temporal_ml.types import LeaderboardEntry, SnapshotRef

SNAPSHOT = SnapshotRef(id="a" * 64, root="file:///tmp/store", splits={"train": 10})


def _status(**changes: object) -> SweepStatus:
    base: dict[str, object] = dict(phase="running", n_trials=12, max_concurrency=2, running=2, queued=0,
                                   exhausted=False, runs=1, trials=[], objective="accuracy")
    return SweepStatus(**{**base, **changes})


def test_status_line_counts_best_and_time_left() -> None:
    best = TrialRow(index=3, params={}, state="done", value=0.912345, step=90)
    status = _status(n_done=5, n_failed=1, queued=3, best=best)
    assert status.summary(130) == ("running · 5/12 done, 2 running, 1 failed, 3 queued · best t0003 accuracy "
                                   "0.9123 at 90 steps · 2m10s elapsed, about 2m10s left")  # 6 finished, 6 left
    assert status.summary() == "running · 5/12 done, 2 running, 1 failed, 3 queued · best t0003 accuracy 0.9123 at 90 steps"


def test_status_line_says_why_it_is_paused_and_gives_no_estimate_before_a_result() -> None:
    status = _status(phase="paused", pause_reason="t0002: No space left on device", running=0, retrying=1)
    assert status.summary(30) == ("paused: t0002: No space left on device · 0/12 done, 0 running, 1 to retry "
                                  "· 30s elapsed")
    assert _status(phase="stopping", n_done=4).eta_seconds(100) is None  # nothing more will start


def test_durations() -> None:
    assert [duration_text(s) for s in (0, 59.4, 61, 3599, 7620)] == ["0s", "59s", "1m01s", "59m59s", "2h07m"]


def test_result_summary_ranks_with_budgets_and_lists_stopped_trials_apart() -> None:
    row = TrialRow(index=1, params={"hparams.lr": 0.0012345678901, "hparams.layers": 2}, state="done",
                   value=0.87654321, step=270, model_sha256="b" * 64)
    result = SweepResult(
        run_id="s1", snapshot=SNAPSHOT, objective="accuracy", direction="maximize",
        best=TrialResult(name="t0001", row=row, train_workflow_id="x", eval_workflow_id="y"),
        leaderboard=[LeaderboardEntry(rank=1, name="t0001", metric="accuracy", value=0.87654321, budget=270)],
        trials=[], n_trials=3, n_done=1, n_failed=0, n_stopped=2)
    text = _summary(result)
    assert "  1   t0001  0.8765  at 270 steps" in text
    assert "not ranked: 2 stopped before their budget" in text
    assert "best: t0001 accuracy 0.8765 after 270 steps (hparams.layers=2, hparams.lr=0.001235)" in text
