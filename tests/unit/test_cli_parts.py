"""The CLI's pure parts, without a server: one-line messages of real exceptions, exit codes, the
visibility query of ``runs``, output formats, run-id fingerprints, argument errors in one line."""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError, RetryState

from temporal_ml import cli
from temporal_ml.cli._common import format_table
from temporal_ml.cli._results import write_rows
from temporal_ml.cli._runs import runs_query
from temporal_ml.errors import ConfigError, MissingDependencyError
from temporal_ml.failures import (
    EXIT_FAILURE,
    EXIT_INPUT,
    OneLineArgumentParser,
    RunRefused,
    ServerUnreachable,
    exit_code,
    one_line,
)
from temporal_ml.runs import format_duration
from temporal_ml.starting import config_fingerprint
from temporal_ml.types import DatasetSource, ExperimentSpec, TrainConfig
from temporal_ml.workflows.coordinator import CoordinatorInput
from temporal_ml.workflows.training import TrainingInput

CONFIG = TrainConfig(trainable="mlp", max_steps=10)


def _failed_workflow() -> WorkflowFailureError:
    """The chain a client sees when an activity's ConfigError fails a workflow."""
    root = ApplicationError("hidden must be positive, got -1", type="ConfigError", non_retryable=True)
    activity = ActivityError("activity error", scheduled_event_id=5, started_event_id=6, identity="w",
                             activity_type="train", activity_id="1", retry_state=RetryState.NON_RETRYABLE_FAILURE)
    activity.__cause__ = root
    failure = WorkflowFailureError(cause=activity)
    return failure


def test_a_failed_workflow_is_its_root_cause() -> None:
    exc = _failed_workflow()
    assert one_line(exc) == "the run failed: hidden must be positive, got -1"
    assert exit_code(exc) == EXIT_FAILURE


def test_validation_errors_are_one_line_and_exit_2() -> None:
    with pytest.raises(ValidationError) as info:
        TrainConfig(trainable="mlp", max_steps=0, batch_size=0)
    line = one_line(info.value)
    assert line.startswith("invalid TrainConfig: ") and "max_steps" in line and "batch_size" in line
    assert "\n" not in line and exit_code(info.value) == EXIT_INPUT
    with pytest.raises(ValidationError) as info:
        TrainingInput(config=CONFIG, dataset=DatasetSource(generator="x"), run_id="../up")
    assert "Value error" not in one_line(info.value) and "invalid run id '../up'" in one_line(info.value)


@pytest.mark.parametrize(("exc", "code", "needle"), [
    (ConfigError("bad thing\nsecond line"), EXIT_INPUT, "bad thing"),
    (MissingDependencyError("pip install 'temporal-ml[ui]'"), EXIT_INPUT, "temporal-ml[ui]"),
    (ModuleNotFoundError("No module named 'torch'", name="torch"), EXIT_INPUT, "needs 'torch'"),
    (ServerUnreachable("no Temporal server at x"), EXIT_FAILURE, "no Temporal server"),
    (RunRefused("cannot resume"), EXIT_FAILURE, "cannot resume"),
    (RuntimeError("Failed client connect: Server connection error: tonic::transport::Error(Transport, "
                  "ConnectError(\"tcp connect error\", 127.0.0.1:7999, Os { code: 111, kind: "
                  "ConnectionRefused, message: \"Connection refused\" }))"), EXIT_FAILURE,
     "no Temporal server at 127.0.0.1:7999 (connection refused)"),
    (KeyError("x"), EXIT_FAILURE, "KeyError: 'x' (run with --verbose for the traceback)"),
    (KeyboardInterrupt(), 130, "interrupted"),
])
def test_messages_and_exit_codes(exc: BaseException, code: int, needle: str) -> None:
    line = one_line(exc)
    assert needle in line and "\n" not in line
    assert exit_code(exc) == code


def test_runs_query() -> None:
    def args(**kw: object) -> argparse.Namespace:
        base = dict(all=False, kind=[], state=[], snapshot=None, config_hash=None, experiment=None, query=None)
        return argparse.Namespace(**{**base, **kw})

    assert runs_query(args()) == "TmlKind IS NOT NULL"
    assert runs_query(args(all=True)) == ""
    query = runs_query(args(kind=["training", "experiment"], state=["running", "timed-out"],
                            config_hash="ABC", snapshot="f" * 64, experiment="it's"))
    assert query == ("TmlKind IS NOT NULL AND (TmlKind = 'train' OR TmlKind = 'coordinator') AND "
                     "(ExecutionStatus = 'Running' OR ExecutionStatus = 'TimedOut') AND "
                     f"TmlSnapshotId = '{'f' * 64}' AND TmlConfigHash STARTS_WITH 'abc' AND "
                     "(TmlExperiment = 'it\\'s' OR WorkflowId = 'it\\'s')")
    with pytest.raises(ConfigError, match="--state sleeping: unknown state"):
        runs_query(args(state=["sleeping"]))


ROWS = [{"name": "a", "value": 0.5, "params": {"x": 1}, "error": None},
        {"name": "b", "value": 0.25, "params": {"x": 2}, "error": "boom"}]


def test_output_formats() -> None:
    table = write_rows(ROWS, ["name", "value", "error"], "table")
    assert table == "NAME  VALUE  ERROR\na     0.5    -\nb     0.25   boom"
    records = json.loads(write_rows(ROWS, ["name", "value", "params"], "json"))
    assert records[1] == {"name": "b", "value": 0.25, "params": {"x": 2}}
    parsed = list(csv.DictReader(io.StringIO(str(write_rows(ROWS, ["name", "error"], "csv")))))
    assert parsed == [{"name": "a", "error": ""}, {"name": "b", "error": "boom"}]
    data = write_rows(ROWS, ["name", "value", "params"], "parquet")
    assert isinstance(data, bytes)
    frame = pq.read_table(pa.BufferReader(data))
    assert frame.column("value").to_pylist() == [0.5, 0.25]
    assert frame.column("params").to_pylist() == ['{"x": 1}', '{"x": 2}']  # nested values as JSON text


def test_table_cells_and_durations() -> None:
    assert format_table([{"a": 1.23456789, "b": [1, 2]}], ["a", "b", "c"]) == "A      B       C\n1.235  [1, 2]  -"
    assert [format_duration(s) for s in (None, 5.25, 125, 3725)] == ["-", "5.2s", "2m05s", "1h02m"]


def test_config_fingerprint_is_the_trajectory_hash() -> None:
    dataset = DatasetSource(generator="x")
    one = TrainingInput(config=CONFIG, dataset=dataset, run_id="a")
    same = TrainingInput(config=CONFIG.model_copy(update={"keep_last": 5}), dataset=dataset, run_id="b")
    other = TrainingInput(config=CONFIG.model_copy(update={"seed": 1}), dataset=dataset, run_id="a")
    assert config_fingerprint(one) == config_fingerprint(same) == CONFIG.config_hash()
    assert config_fingerprint(one) != config_fingerprint(other)
    coordinator = CoordinatorInput(experiments=[ExperimentSpec(name="e", config=CONFIG)], dataset=dataset)
    renamed = CoordinatorInput(experiments=[ExperimentSpec(name="f", config=CONFIG)], dataset=dataset)
    assert config_fingerprint(coordinator) != config_fingerprint(renamed)


def test_argument_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    parser = OneLineArgumentParser(prog="temporal-ml sweep enqueue")
    parser.add_argument("--n", type=int)
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["--n", "x"])
    assert info.value.code == EXIT_INPUT
    err = capsys.readouterr().err
    assert err == ("temporal-ml: error: argument --n: invalid int value: 'x' "
                   "(see temporal-ml sweep enqueue --help)\n")


def test_every_command_is_wired(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for command in ("runs", "status", "results", "plot", "report", "pause", "resume", "stop", "replay",
                    "setup", "sweep", "server", "worker", "example", "version"):
        assert f"    {command} " in out, command
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.startswith("temporal-ml ")


def test_figure_and_report_of_a_ladder(tmp_path: Path) -> None:
    """The plot panels of an ASHA ladder (objective per trial, history, parallel coordinates, rung
    chart; learning curves from real metrics logs) and a self-contained HTML report."""
    pytest.importorskip("matplotlib")
    from temporal_ml.plots import figure, html_report
    from temporal_ml.runs import RunInfo
    from temporal_ml.search import AshaScheduler, Float, SearchSpace

    table = AshaScheduler(min_budget=10, max_budget=90, eta=3).new_table()
    rows = []
    for i, value in enumerate([0.5, 0.7, 0.6]):
        name = f"t{i:04d}"
        table.start(name)
        table.brackets[0].rungs[0].results[name] = value
        rows.append({"name": name, "index": i, "status": "done", "value": value, "params.lr": 0.01 * (i + 1),
                     "finished": f"2026-01-01T00:00:0{i}"})
        log = tmp_path / "metrics" / f"lad--{name}" / "metrics.jsonl"
        log.parent.mkdir(parents=True)
        log.write_text("".join(json.dumps({"event": "train", "step": s, "loss": 1 / s}) + "\n" for s in (5, 10)))
    table.brackets[0].rungs[1].results["t0001"] = 0.8
    info = RunInfo(id="lad", type="Ladder", status="completed", kind="ladder")
    space = SearchSpace({"hparams.lr": Float(0.001, 0.1, log=True)})
    fig = figure(info, rows, tmp_path / "metrics", rungs=table, space=space)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "learning curves" and len(fig.axes[0].get_lines()) == 3
    assert titles[1:3] == ["value per trial", "optimization history"]
    assert titles[3].startswith("parameters against value") and titles[4].startswith("ASHA rungs")
    # parameter importance: |rank correlation| of lr (0.01, 0.02, 0.03) with value (0.5, 0.7, 0.6): 0.5
    assert titles[5].startswith("parameter importance") and len(titles) == 6
    [bar] = fig.axes[5].patches
    assert abs(bar.get_width() - 0.5) < 1e-9
    # a log-scaled parameter is on a log axis: 0.02 sits at log(2)/log(3) of the way from 0.01 to 0.03
    assert [t.get_text() for t in fig.axes[3].get_xticklabels()] == ["lr (log)", "value"]
    middle = fig.axes[3].get_lines()[1].get_ydata()[0]
    assert abs(middle - math.log(2) / math.log(3)) < 1e-9
    linear = figure(info, rows, None, space=SearchSpace({"hparams.lr": Float(0.001, 0.1)}))
    assert [t.get_text() for t in linear.axes[2].get_xticklabels()] == ["lr", "value"]
    assert abs(linear.axes[2].get_lines()[1].get_ydata()[0] - 0.5) < 1e-9
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    # lineage: recorded for two trials (one with markup in a field, shown as text), not for the third
    rows[0].update({"config_hash": "c" * 64, "snapshot_id": "snap-0", "seed": 7, "library_version": "0.1.0",
                    "checkpoint_sha256": "a" * 64})
    rows[1].update({"config_hash": "d" * 64, "snapshot_id": "<b>snap&1</b>", "seed": 8,
                    "library_version": "0.1.0"})
    page = html_report(info, rows, buffer.getvalue())
    assert page.count("data:image/png;base64,") == 1 and "http" not in page.replace("http-equiv", "")
    # the run's facts, the results' header and one row per trial, the lineage's header and rows
    assert page.count("<tr>") == 8 + 1 + 3 + 1 + 3
    lineage = page.split("<h2>Lineage</h2>", 1)[1]
    for heading in ("config sha256", "snapshot", "seed", "temporal-ml", "weights sha256"):
        assert f"<th>{heading}</th>" in lineage
    first, second, third = lineage.split("<tbody>", 1)[1].split("</tbody>", 1)[0].split("</tr>")[:3]
    assert all(f"<code>{v}</code>" in first for v in ("c" * 64, "snap-0", "7", "0.1.0", "a" * 64))
    assert "<code>&lt;b&gt;snap&amp;1&lt;/b&gt;</code>" in second and "<b>snap" not in page
    assert "<td>t0001</td>" in second and second.count("<code>-</code>") == 1  # no weights digest
    assert "<td>t0002</td>" in third and third.count("<code>-</code>") == 5


def test_progress_lines_only_on_changes() -> None:
    """Without a terminal: a line per change of state, checkpoint, resumes or note; never per step."""
    from temporal_ml.progress import ProgressView, RunProgress

    out = io.StringIO()
    with ProgressView(stream=out, live=False) as view:
        view.update("r", RunProgress(state="training", step=0, max_steps=100))
        view.update("r", RunProgress(state="training", step=10, max_steps=100, loss=0.5))  # steps: quiet
        view.update("r", RunProgress(state="training", step=20, max_steps=100, checkpoint_step=20))
        view.note("r", "worker lost (no heartbeat from its worker); resuming from step 20 when ...")
        view.update("r", RunProgress(state="done", step=100, max_steps=100, checkpoint_step=100))
    lines = out.getvalue().splitlines()
    assert lines == [
        "r: [training] step 0/100",
        "r: [training] step 20/100  checkpoint @ 20",
        "r: [training] step 20/100  checkpoint @ 20  (worker lost (no heartbeat from its worker); "
        "resuming from step 20 when ...)",
        "r: [done] step 100/100  checkpoint @ 100",
    ]


def test_evaluation_rows_make_a_line_per_tenth() -> None:
    """An evaluating run's rows done show in its line; a new line only when a tenth more is done."""
    from temporal_ml.progress import ProgressView, RunProgress
    from temporal_ml.training.progress import RowProgress

    out = io.StringIO()
    with ProgressView(stream=out, live=False) as view:
        for done in (64, 128, 832, 1600):
            rows = RowProgress(rows_done=done, rows_total=7600, rows_per_second=412.3)
            view.update("e", RunProgress(state="evaluating", step=300, max_steps=300, loss=0.123456, eval_rows=rows))
    assert out.getvalue().splitlines() == [
        "e: [evaluating] step 300/300  loss 0.1235  evaluated 64/7,600 rows (412 rows/s)",
        "e: [evaluating] step 300/300  loss 0.1235  evaluated 832/7,600 rows (412 rows/s)",
        "e: [evaluating] step 300/300  loss 0.1235  evaluated 1,600/7,600 rows (412 rows/s)",
    ]


def test_metrics_logs_are_found_without_metrics_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """plot/report find a run's metrics logs: in the store of its checkpoints, the default store or
    the bundled examples' stores; with none found, the note names where they looked."""
    from temporal_ml.plots import _no_curves_note, find_metrics_dir
    from temporal_ml.runs import RunInfo

    home = tmp_path / "home"
    monkeypatch.setenv("TEMPORAL_ML_HOME", str(home))
    monkeypatch.delenv("TEMPORAL_ML_STORE", raising=False)
    info = RunInfo(id="sw", type="Sweep", status="completed", kind="sweep")
    rows: list[dict[str, object]] = [{"name": "t0000"}]
    assert find_metrics_dir(info, rows) is None
    note = _no_curves_note(info, rows, None)
    assert note is not None and str(home / "store" / "metrics") in note and "--metrics-dir" in note

    def log(metrics: Path) -> None:
        path = metrics / "sw--t0000" / "metrics.jsonl"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"event": "train", "step": 1, "loss": 0.5}) + "\n")

    log(home / "examples" / "bert_sweeps" / "metrics")  # where the examples write
    assert find_metrics_dir(info, rows) == (home / "examples" / "bert_sweeps" / "metrics").resolve()
    store = tmp_path / "elsewhere"
    log(store / "metrics")  # the store the trial's checkpoints are in comes first
    rows = [{"name": "t0000", "checkpoint": f"file://{store}/checkpoints/sw--t0000/step-000000000010"}]
    assert find_metrics_dir(info, rows) == store / "metrics"
    assert _no_curves_note(info, rows, store / "metrics") is None


def test_parameter_columns_are_named_alike_for_every_run_kind() -> None:
    """``params.<hparam>`` for a sweep's trial (space key ``hparams.<name>``) as for an experiment;
    searched ``TrainConfig`` fields under their own names."""
    from temporal_ml.results import _params, param_column
    from temporal_ml.sweep_results import _trial_row
    from temporal_ml.sweeps import TrialRow

    trial = _trial_row(TrialRow(index=0, params={"hparams.lr": 0.01, "batch_size": 16}, state="done",
                                value=0.9, result_seq=1))
    experiment = _params(TrainConfig(trainable="m", max_steps=5, batch_size=16, hparams={"lr": 0.01}))
    assert trial["params.lr"] == experiment["params.lr"] == 0.01
    assert trial["batch_size"] == experiment["batch_size"] == 16
    assert not any(key.startswith("params.hparams.") for key in trial)
    assert [param_column(k) for k in ("hparams.lr", "hparams.opt.beta", "seed")] == [
        "params.lr", "params.opt.beta", "seed"]


def test_every_command_that_talks_to_a_server_leaves_without_finalizing() -> None:
    """A short-lived client process can crash in interpreter finalization (the SDK's runtime threads
    outlive it): ``main`` leaves those commands with ``os._exit``. A new subcommand must be listed
    (``retry`` once was not, and its process died with SIGABRT after printing its answer)."""
    from temporal_ml.cli._main import _CLIENT_COMMANDS, build_parser

    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")  # noqa: SLF001
    assert set(sub.choices) - _CLIENT_COMMANDS == {"example", "server", "version"}
