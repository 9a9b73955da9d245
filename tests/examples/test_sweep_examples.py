"""The bert_sweeps example end to end (tiny BERT, synthetic data, embedded server): a sweep with an
ASHA scheduler (``--mode ladder``) whose promoted trials continue their runs, and a TPE sweep, each
printing only its typed result."""

from __future__ import annotations

from pathlib import Path

import pytest

from temporal_ml.sweeps import SweepResult
from tests.examples.test_eval_parallel_examples import _run

pytestmark = pytest.mark.integration


def test_sweeps_starter_help() -> None:
    out = _run("examples.bert_sweeps.starter", "--help").stdout
    assert all(opt in out for opt in ("--embedded", "--json", "--mode", "--searcher", "--trials",
                                      "--max-concurrency", "--min-budget", "--eta", "--interval", "--dataset"))


@pytest.mark.slow
def test_ladder_example_embedded_json(tmp_path: Path) -> None:
    proc = _run("examples.bert_sweeps.starter", "--embedded", "--json", "--trials", "4", "--steps", "45",
                "--min-budget", "15", "--run-id", "ladder-test", tmp_path=tmp_path)
    result = SweepResult.model_validate_json(proc.stdout)  # stdout is only the typed result
    assert result.scheduled is not None
    rungs = result.scheduled.rungs
    assert [r.budget for r in rungs] == [15, 45] and rungs[0].results == 4 and rungs[1].results
    assert result.n_trials == 4 and result.n_done == 4
    assert result.best is not None and result.best_budget == 45 and result.best.row.step == 45
    assert result.best.row.rung == 1 and not result.best.row.deleted  # its checkpoint is kept
    assert result.best.row.resumes == 0  # the promotion continued its rung checkpoint as planned: no recovery
    assert result.best.lineage is not None and result.best.lineage.checkpoint_sha256 == result.best.row.model_sha256
    assert sum(len(t.row.decisions) for t in result.trials) == 4 + rungs[0].promoted


@pytest.mark.slow
def test_tpe_sweep_example_embedded_json(tmp_path: Path) -> None:
    proc = _run("examples.bert_sweeps.starter", "--embedded", "--json", "--mode", "sweep", "--trials", "3",
                "--steps", "30", "--max-concurrency", "2", "--run-id", "sweep-test", tmp_path=tmp_path)
    result = SweepResult.model_validate_json(proc.stdout)
    assert result.n_trials == 3 and result.n_done == 3 and len(result.leaderboard) == 3
    assert all(t.row.step == 30 and t.row.audit is not None for t in result.trials)


@pytest.mark.slow
def test_pbt_example_embedded_json(tmp_path: Path) -> None:
    """``--mode pbt``: 4 members, rounds of 10 steps to 30; after each of the first two rounds the worst
    member exploits a better one, and the result's audit lists it."""
    proc = _run("examples.bert_sweeps.starter", "--embedded", "--json", "--mode", "pbt", "--trials", "4",
                "--steps", "30", "--interval", "10", "--max-concurrency", "2", "--run-id", "pbt-test",
                tmp_path=tmp_path)
    result = SweepResult.model_validate_json(proc.stdout)
    assert result.scheduled is not None and [r.budget for r in result.scheduled.rungs] == [10, 20, 30]
    assert result.n_done == 4 and all(t.row.step == 30 for t in result.trials)
    exploits = [line for line in result.scheduled.decisions if " exploits " in line]
    assert len(exploits) == 2 and all("verified" in line for line in exploits), result.scheduled.decisions
    assert any(t.row.branch is not None for t in result.trials)
