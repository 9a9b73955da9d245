"""Train and evaluate a BERT classifier as one durable experiment; print its result and lineage.

    python -m examples.bert_eval.starter --embedded            # self-contained
    python -m examples.bert_eval.starter --run-id demo          # against a running server + worker
"""

from __future__ import annotations

import argparse
import uuid

from temporal_ml.follow import follow_experiments
from temporal_ml.starting import start_or_attach
from temporal_ml.types import CoordinatorResult, ExperimentResult, ExperimentSpec, TrainConfig
from temporal_ml.workflows.coordinator import CoordinatorInput

from .._shared import (
    TRAINABLE,
    check_input,
    dataset_source,
    emit,
    environment,
    eval_split_of,
    experiment_summary,
    main_of,
    model_name,
    say,
    starter_parser,
)
from .worker import EXAMPLE, workers
from .workflows import TASK_QUEUE, BertExperiment

parser = starter_parser(__doc__.splitlines()[0])
parser.add_argument("--lr", type=float, default=None, help="learning rate (default: the trainable's)")
parser.add_argument("--seed", type=int, default=0, help="seed of the run (weights init, data order)")
parser.add_argument("--name", default="bert", help="experiment name, part of the child workflow ids")


async def run(args: argparse.Namespace) -> int:
    hparams: dict = {"model": model_name(args.model)}
    if args.lr is not None:
        hparams["lr"] = args.lr
    config = TrainConfig(trainable=TRAINABLE, max_steps=args.steps, batch_size=args.batch_size,
                         seed=args.seed, checkpoint_every_steps=100, hparams=hparams,
                         metric_sinks=args.metric_sinks)
    source = dataset_source(args.dataset, args.train_limit)
    run_id = args.run_id or f"bert-eval-{uuid.uuid4().hex[:8]}"
    inp = CoordinatorInput(experiments=[ExperimentSpec(name=args.name, config=config)], dataset=source,
                           run_id=run_id, max_concurrency=1, eval_split=eval_split_of(source, args.eval_split),
                           progress_every_seconds=2, heartbeat_timeout_seconds=20)
    check_input(args, inp)
    async with environment(args, EXAMPLE, workers) as client:
        handle = await start_or_attach(client, BertExperiment.run, inp, id=run_id, task_queue=TASK_QUEUE, say=say)
        say(f"started experiment {run_id} (workflow {handle.id} on {TASK_QUEUE!r})")
        result: CoordinatorResult = await follow_experiments(client, handle, BertExperiment.status)
    experiment: ExperimentResult = result.experiments[0]
    emit(args, experiment, f"done: run {result.run_id}\n{experiment_summary(experiment)}")
    return 0 if experiment.status == "done" else 1


main = main_of(run, parser)

if __name__ == "__main__":
    main()
