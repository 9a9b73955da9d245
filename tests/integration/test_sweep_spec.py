"""A sweep from a spec file (``temporal-ml sweep start|validate SPEC``) on the user's own data folder:
a 4-class ``train.tsv`` + ``test.tsv`` built from the synthetic generator (no ``dev`` split), TPE with
an ASHA scheduler, tiny BERT. Bad specs fail in one line before any server starts; every trial's
final loss is the last line of its metrics log; the results columns are the same during and after."""

from __future__ import annotations

import asyncio
import contextlib
import json
import textwrap
import uuid
from pathlib import Path

import pytest

from temporal_ml import cli as tml_cli
from temporal_ml.client import connect
from temporal_ml.hf import sentiment_dataset
from temporal_ml.sweeps import SweepResult
from tests.integration.test_cli import cli, one_line

pytestmark = pytest.mark.integration

TOPICS = ("sports", "business")


def news_folder(root: Path) -> Path:
    """``train.tsv`` (600 rows) and ``test.tsv`` (120): the synthetic sentences, each under one of two
    topics, labelled ``<topic>-pos|neg``: four string classes, and no dev split."""
    folder = root / "news"
    folder.mkdir()
    tables = sentiment_dataset(n_train=600, n_dev=120, seed=5)
    for split, name in (("train", "train"), ("dev", "test")):
        lines = ["sentence\tlabel"]
        for i, row in enumerate(tables[split].to_pylist()):
            topic = TOPICS[i % 2]
            lines.append(f"{topic} news : {row['sentence']}\t{topic}-{'pos' if row['label'] else 'neg'}")
        (folder / f"{name}.tsv").write_text("\n".join(lines) + "\n")
    return folder


def spec_text(folder: Path, tag: str, **extra: str) -> str:
    text = textwrap.dedent(f"""\
        name: news-{tag}
        dataset: {folder}
        eval_split: test
        max_steps: 18
        batch_size: 16
        space:
          hparams.lr: {{type: float, low: 3.0e-4, high: 3.0e-3, log: true}}
          hparams.warmup_ratio: {{type: float, low: 0.0, high: 0.2}}
        searcher: {{type: tpe, n_startup: 2}}
        scheduler: {{type: asha, min_budget: 6, eta: 3}}
        trials: 4
        max_concurrency: 2
        """)
    return text + "".join(f"{key}: {value}\n" for key, value in extra.items())


@pytest.mark.parametrize(("change", "message"), [
    (("max_steps: 18", "max_steps: 18\nmax_step: 3"), r"spec.yaml: max_step: unknown key"),
    (("low: 3.0e-4, high: 3.0e-3", "low: 3.0e-2, high: 3.0e-3"),
     r"spec.yaml: space.hparams.lr: low \(0.03\) must be less than high \(0.003\)"),
    (("eval_split: test", "eval_split: dev"),
     r"spec.yaml: dataset: the evaluation split 'dev' is not in the dataset \(it has test, train\)"),
    (("type: tpe", "type: bayes"), r"spec.yaml: searcher.type: 'bayes' is not one of random, grid, tpe, nsga2 or bohb"),
    (("min_budget: 6", "min_budget: 60"), r"spec.yaml: scheduler: min_budget \(60\) must be less than"),
    (("type: asha, min_budget: 6, eta: 3", "type: pbt, perturbation_interval: 18"),
     r"spec.yaml: scheduler: perturbation_interval \(18\) must be less than max_budget \(18\): PBT needs"),
    (("hparams.warmup_ratio", "hparams.warmup"), r"spec.yaml: space.hparams.warmup: not a hyperparameter"),
])
def test_a_bad_spec_fails_in_one_line_before_any_server(tmp_path: Path, change: tuple[str, str], message: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    import re

    spec = tmp_path / "spec.yaml"
    text = spec_text(news_folder(tmp_path), "x")
    assert change[0] in text
    spec.write_text(text.replace(change[0], change[1]))
    for command in (["sweep", "validate", str(spec)], ["sweep", "start", str(spec), "--embedded"]):
        assert tml_cli.main(command) == 2
        out, err = capsys.readouterr()
        assert re.search(message, one_line(err)), err
        assert "embedded Temporal server" not in out + err  # refused before anything started


def test_a_valid_spec_says_what_would_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(textwrap.dedent(f"""\
        name = "news"
        dataset = "{news_folder(tmp_path)}"
        max_steps = 18
        trials = 3
        [space."hparams.lr"]
        type = "float"
        low = 1e-4
        high = 1e-2
        log = true
        """))
    assert tml_cli.main(["sweep", "validate", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "objective: maximize accuracy on 'test'" in out  # no dev or validation split: test
    assert "4 classes (business-neg, business-pos, sports-neg, sports-pos)" in out and "valid" in out


def test_a_multi_objective_spec_says_its_objectives(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.yaml"
    text = spec_text(news_folder(tmp_path), "m").replace("type: tpe, n_startup: 2", "type: nsga2").replace(
        "scheduler: {type: asha, min_budget: 6, eta: 3}\n", "")
    spec.write_text(text + "metrics: [accuracy, loss]\ndirections: [maximize, minimize]\n")
    assert tml_cli.main(["sweep", "validate", str(spec)]) == 0
    assert "objectives: maximize accuracy, minimize loss on 'test' (the result is their Pareto front)" in \
        capsys.readouterr().out
    spec.write_text(text + "metrics: [accuracy, loss]\ndirections: [maximize]\n")
    assert tml_cli.main(["sweep", "validate", str(spec)]) == 2
    assert "spec.yaml: directions: one per objective (2 objectives, 1 directions)" in one_line(capsys.readouterr().err)
    spec.write_text(text + "metric: loss\nmetrics: [accuracy, loss]\ndirections: [maximize, minimize]\n")
    assert tml_cli.main(["sweep", "validate", str(spec)]) == 2
    assert "metrics: give metric/direction (one objective) or metrics/directions, not both" in \
        one_line(capsys.readouterr().err)


def test_a_pbt_spec_says_its_rounds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text(news_folder(tmp_path), "p").replace(
        "type: asha, min_budget: 6, eta: 3", "type: pbt, perturbation_interval: 6, quantile: 0.5"))
    assert tml_cli.main(["sweep", "validate", str(spec)]) == 0
    assert "population-based training in rounds to 6, 12, 18 steps" in capsys.readouterr().out


def _last_train_loss(log: Path) -> float:
    events = [json.loads(line) for line in log.read_text().splitlines()]
    return float([e for e in events if e["event"] == "train"][-1]["loss"])


async def test_sweep_start_embedded_runs_tpe_with_asha_on_a_folder(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    tag = uuid.uuid4().hex[:6]
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text(news_folder(tmp_path), tag))
    env = {**subprocess_env, "TEMPORAL_ML_STORE": str(tmp_path / "store")}
    code, out, err = await cli("sweep", "start", str(spec), "--embedded", "--json", env=env, timeout=300)
    assert code == 0, err
    result = SweepResult.model_validate_json(out)  # stdout is the typed result alone
    assert result.scheduled is not None and [r.budget for r in result.scheduled.rungs] == [6, 18], result.scheduled
    assert "4 classes" in err and "embedded Temporal server at" in err and "best t000" in err, err
    assert result.run_id.startswith(f"news-{tag}-") and len(result.leaderboard) == 4
    assert all(e.budget in (6, 18) for e in result.leaderboard)
    assert [e.budget for e in result.leaderboard] == sorted((e.budget for e in result.leaderboard), reverse=True)
    for trial in result.trials:
        row = trial.row
        assert row.state == "done" and row.metrics["examples"] == 120, row  # evaluated on test.tsv
        assert trial.lineage is not None and trial.lineage.config.hparams["model"] == "tiny-bert"
        log = tmp_path / "store" / "metrics" / f"{result.run_id}--{trial.name}" / "metrics.jsonl"
        assert row.loss == _last_train_loss(log), trial.name  # the final loss, not a progress report
    assert {t.row.audit.searcher for t in result.trials if t.row.audit} == {"tpe"}


async def test_sweep_start_on_a_server_keeps_its_results_columns(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    from temporal_ml.results import results
    from temporal_ml.roles import Role, WorkerSpec, build_workers
    from temporal_ml.workflows.builtin import BUILTIN_WORKFLOWS

    tag = uuid.uuid4().hex[:6]
    queues = {Role.ORCHESTRATION: f"spec-{tag}", Role.TRAIN: f"spec-{tag}-train", Role.EVAL: f"spec-{tag}-eval"}
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text(news_folder(tmp_path), tag, task_queue=queues[Role.ORCHESTRATION],
                              train_task_queue=queues[Role.TRAIN], eval_task_queue=queues[Role.EVAL]))
    client = await connect()
    from temporal_ml.hf import TextClassificationTrainable

    workers = build_workers(client, WorkerSpec(
        roles=list(queues), store=str(tmp_path / "store"), task_queues=queues, workflows=BUILTIN_WORKFLOWS,
        trainables={"text-classification": TextClassificationTrainable()}, max_concurrent_trainings=2))
    run_id = f"news-{tag}"
    async with contextlib.AsyncExitStack() as stack:
        for worker in workers:
            await stack.enter_async_context(worker)
        started = asyncio.ensure_future(cli("sweep", "start", str(spec), "--run-id", run_id, "--json",
                                             env=subprocess_env, timeout=300))
        during = None
        while not started.done():  # the columns while it runs, once a trial is done
            with contextlib.suppress(Exception):
                frame = await results(client, run_id)
                if (frame["status"] == "done").any() and (frame["status"] != "done").any():
                    during = frame
            await asyncio.sleep(0.5)
        code, out, err = started.result()
        assert code == 0, err
        after = await results(client, run_id)
        kind = (await client.get_workflow_handle(run_id).describe()).workflow_type
    assert kind == "TmlSweep", kind  # a spec with a scheduler starts the one sweep workflow
    assert during is not None, "never saw the sweep with some trials done and some not"
    assert list(during.columns) == list(after.columns)
    for column in ("rank", "budget", "train_workflow_id", "config_hash", "snapshot_id", "seed", "train.loss"):
        assert column in after.columns
    assert after["train_workflow_id"].notna().all() and after["budget"].notna().all()
    final = SweepResult.model_validate_json(out)
    assert final.run_id == run_id and final.scheduled is not None
