"""The library's helpers for programs that run work (no server here): the default store, a result
row in the progress view, and the input checks that run before anything starts."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from temporal_ml.errors import ConfigError
from temporal_ml.progress import ProgressView, RunProgress
from temporal_ml.roles import default_store
from temporal_ml.sources import TEXT_CLASSIFICATION, check_input, dataset_source
from temporal_ml.sweeps import SweepInput
from temporal_ml.types import ExperimentSpec, TrainConfig
from temporal_ml.workflows.coordinator import CoordinatorInput
from temporal_ml.workflows.training import TrainingInput


def test_default_store_is_a_folder_of_the_home_unless_the_store_is_set(monkeypatch: pytest.MonkeyPatch,
                                                                         tmp_path: Path) -> None:
    monkeypatch.delenv("TEMPORAL_ML_STORE", raising=False)
    monkeypatch.setenv("TEMPORAL_ML_HOME", str(tmp_path))
    assert default_store() == str(tmp_path / "store")
    assert default_store("examples/bert_eval") == str(tmp_path / "examples" / "bert_eval")
    monkeypatch.delenv("TEMPORAL_ML_HOME")
    assert default_store("mine") == str(Path.home() / ".temporal-ml" / "mine")
    monkeypatch.setenv("TEMPORAL_ML_STORE", "s3://bucket/runs")
    assert default_store("mine") == "s3://bucket/runs"


def test_a_result_row_in_the_view_makes_a_line_per_change_of_state_not_per_step() -> None:
    out = io.StringIO()
    row = {"name": "lr0.01", "status": "training", "step": 10, "max_steps": 40, "train.loss": 0.6931,
           "eval_rows": None, "eval.accuracy": None, "error": None}
    with ProgressView(out, live=False) as view:
        view.update("lr0.01", RunProgress.of_row(row))
        view.update("lr0.01", RunProgress.of_row({**row, "step": 20}))  # a step: no line
        view.say("2/2 running")
        view.update("lr0.01", RunProgress.of_row({**row, "status": "evaluating", "step": 40,
                                                  "eval_rows": "64/128 rows"}))
        view.update("lr0.01", RunProgress.of_row({**row, "status": "done", "step": 40, "train.loss": 0.25,
                                                  "eval.accuracy": 0.9375}))
    assert out.getvalue().splitlines() == [
        "lr0.01: [training] step 10/40  loss 0.6931",
        "2/2 running",
        "lr0.01: [evaluating] step 40/40  loss 0.6931  evaluated 64/128 rows",
        "lr0.01: [done] step 40/40  loss 0.25  accuracy 0.9375",
    ]


def test_a_training_row_shows_its_state_checkpoint_resumes_and_note() -> None:
    progress = RunProgress.of_row({"name": "r1", "status": "running", "state": "training", "step": 60,
                                   "max_steps": 600, "metrics.loss": 0.5, "checkpoint_step": 50, "resumes": 1,
                                   "note": "worker lost (no heartbeat from its worker)"})
    assert progress.line("r1") == ("r1: [training] step 60/600  loss 0.5  checkpoint @ 50  resumes 1  "
                                   "(worker lost (no heartbeat from its worker))")
    trial = RunProgress.of_row({"name": "t0003", "status": "failed", "step": 7, "max_steps": 30, "rung": 1,
                                "value": None, "error": "diverged: loss is NaN"})
    assert trial.line("t0003") == "t0003: [failed] step 7/30  rung 1  (diverged: loss is NaN)"


def _folder(tmp_path: Path) -> Path:
    (tmp_path / "train.tsv").write_text("sentence\tlabel\ngood\t1\nbad\t0\nfine\t1\n")
    (tmp_path / "dev.tsv").write_text("sentence\tlabel\nnice\t1\nawful\t0\n")
    return tmp_path


def _config(**hparams: object) -> TrainConfig:
    return TrainConfig(trainable=TEXT_CLASSIFICATION, max_steps=10, batch_size=2, eval_split="dev",
                       hparams={"model": "tiny-bert", **hparams})


def test_check_input_says_the_dataset_in_one_line_for_every_kind_of_input(tmp_path: Path) -> None:
    source = dataset_source(str(_folder(tmp_path)))
    said: list[str] = []
    summary = check_input(TrainingInput(config=_config(), dataset=source), say=said.append)
    assert summary is not None and summary.rows == {"train": 3, "dev": 2}
    assert said == ["dataset: train 3 rows, dev 2 rows; 2 classes (0, 1); evaluating on 'dev'"]
    coordinator = CoordinatorInput(experiments=[ExperimentSpec(name="a", config=_config())], dataset=source,
                                   eval_split="dev")
    assert check_input(coordinator) == summary
    from temporal_ml.search import Float, SearchSpace

    sweep = SweepInput(base=_config(), space=SearchSpace({"hparams.lr": Float(1e-4, 1e-2, log=True)}),
                       n_trials=2, objective="accuracy", dataset=source, eval_split="dev")
    assert check_input(sweep) == summary


def test_check_input_refuses_a_missing_split_and_bad_hyperparameters(tmp_path: Path) -> None:
    source = dataset_source(str(_folder(tmp_path)))
    config = _config().model_copy(update={"eval_split": "test"})
    with pytest.raises(ConfigError, match=r"^--dataset: the evaluation split 'test' is not in the dataset"):
        check_input(TrainingInput(config=config, dataset=source))
    with pytest.raises(ConfigError, match="lr"):
        check_input(TrainingInput(config=_config(lr=5), dataset=source))


def test_a_hub_model_out_of_reach_is_refused_only_where_this_machine_is_the_worker(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    inp = TrainingInput(config=_config(model="temporal-ml-tests/no-such-model"),
                        dataset=dataset_source(str(_folder(tmp_path))))
    check_input(inp)  # the worker is elsewhere: it may have the model
    with pytest.raises(ConfigError) as refused:
        check_input(inp, local_worker=True)
    assert str(refused.value) == (
        "--model temporal-ml-tests/no-such-model: cannot be downloaded (offline (HF_HUB_OFFLINE is set)) and "
        "is not in the local Hugging Face cache: pass a local model directory, e.g. --model minilm")
    check_input(inp.model_copy(update={"config": _config()}), local_worker=True)  # tiny-bert: built here
    hub_data = TrainingInput(config=_config(), dataset=dataset_source("temporal-ml-tests/no-such-dataset"))
    check_input(hub_data, local_worker=True)  # offline: the worker's cache decides, in its snapshot


def test_a_followed_trial_shows_its_value_or_every_objective() -> None:
    from temporal_ml.follow import _trial_progress
    from temporal_ml.sweeps import TrialRow

    one = TrialRow(index=0, params={"hparams.lr": 0.01}, state="done", value=0.9)
    assert _trial_progress(one, "accuracy", None).extra == "accuracy 0.9  hparams.lr=0.01"
    several = TrialRow(index=1, params={"hparams.lr": 0.01}, state="done", values=[0.91, 0.3211])
    assert _trial_progress(several, "accuracy", None).extra == "values 0.91, 0.3211  hparams.lr=0.01"
