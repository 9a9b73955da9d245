"""Start a durable BERT fine-tuning run and follow it: progress, checkpoints, resumes, result.

    python -m examples.bert_checkpointing.starter --embedded          # self-contained
    python -m examples.bert_checkpointing.starter --run-id demo       # against a running server+worker
"""

from __future__ import annotations

import argparse
import uuid

from temporal_ml.follow import follow_training
from temporal_ml.starting import start_or_attach
from temporal_ml.types import TrainConfig
from temporal_ml.workflows.training import TrainingInput

from .._shared import (
    TRAINABLE,
    check_input,
    dataset_source,
    emit,
    environment,
    eval_split_of,
    main_of,
    model_name,
    say,
    starter_parser,
)
from .worker import EXAMPLE, workers
from .workflows import TASK_QUEUE, BertCheckpointingWorkflow

parser = starter_parser(__doc__.splitlines()[0])
parser.add_argument("--checkpoint-every", type=int, default=50, help="checkpoint every N steps (default 50)")


async def run(args: argparse.Namespace) -> int:
    source = dataset_source(args.dataset, args.train_limit)
    config = TrainConfig(
        trainable=TRAINABLE, max_steps=args.steps, batch_size=args.batch_size, seed=0,
        checkpoint_every_steps=args.checkpoint_every, eval_split=eval_split_of(source, args.eval_split),
        hparams={"model": model_name(args.model)}, metric_sinks=args.metric_sinks,
    )
    run_id = args.run_id or f"bert-ckpt-{uuid.uuid4().hex[:8]}"
    inp = TrainingInput(config=config, dataset=source,
                        run_id=run_id, progress_every_seconds=2, heartbeat_timeout_seconds=20)
    check_input(args, inp)
    async with environment(args, EXAMPLE, workers) as client:
        handle = await start_or_attach(client, BertCheckpointingWorkflow.run, inp, id=run_id,
                                       task_queue=TASK_QUEUE, say=say)
        say(f"started run {run_id} (workflow {handle.id} on {TASK_QUEUE!r})")
        result = await follow_training(handle, BertCheckpointingWorkflow.progress)
    metrics = "  ".join(f"{k} {v:.4g}" for k, v in sorted(result.metrics.items()))
    emit(args, result, (
        f"done: run {result.run_id}, {result.steps} steps, resumes {result.resumes}"
        f"{' (stopped early)' if result.stopped_early else ''}\n"
        f"  snapshot   {result.snapshot.id}\n"
        f"  checkpoint {result.checkpoint.uri}\n"
        f"  weights    sha256 {result.checkpoint.model_sha256}\n"
        f"  metrics    {metrics}"
    ))
    return 0


main = main_of(run, parser)

if __name__ == "__main__":
    main()
