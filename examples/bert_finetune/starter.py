"""Fine-tune a BERT-family classifier, then predict sentences with the final checkpoint.

    python -m examples.bert_finetune.starter --embedded
    python -m examples.bert_finetune.starter --embedded --model minilm --dataset ../shared/data/sst2 \\
        --train-limit 4000 --steps 250 --batch-size 32
"""

from __future__ import annotations

import argparse
import uuid

from pydantic import BaseModel

from temporal_ml.follow import follow_training
from temporal_ml.starting import start_or_attach
from temporal_ml.types import PredictionResult, TrainConfig, TrainResult
from temporal_ml.workflows.inference import InferenceInput
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
from .workflows import TASK_QUEUE, BertFineTuneWorkflow, BertInferenceWorkflow

SENTENCES = [  # in the style of the synthetic data set (see temporal_ml/hf/synthetic.py)
    "the movie was truly wonderful .",
    "the plot was not good .",
    "the acting was never boring .",
    "the plot was dull but the acting was great .",
]

parser = starter_parser(__doc__.splitlines()[0])
parser.add_argument("--predict", nargs="*", default=SENTENCES, metavar="TEXT",
                    help="sentences to classify with the fine-tuned model")
parser.add_argument("--lr", type=float, default=None, help="learning rate (default: the trainable's)")


class FineTuneResult(BaseModel):
    """What the starter prints with ``--json``."""

    training: TrainResult
    predictions: PredictionResult
    inputs: list[str]


async def run(args: argparse.Namespace) -> int:
    hparams: dict = {"model": model_name(args.model)}
    if args.lr is not None:
        hparams["lr"] = args.lr
    config = TrainConfig(trainable=TRAINABLE, max_steps=args.steps, batch_size=args.batch_size,
                         checkpoint_every_steps=100, eval_split=_eval_split(args), hparams=hparams,
                         metric_sinks=args.metric_sinks)
    run_id = args.run_id or f"bert-finetune-{uuid.uuid4().hex[:8]}"
    inp = TrainingInput(config=config, dataset=dataset_source(args.dataset, args.train_limit),
                        run_id=run_id, progress_every_seconds=2)
    check_input(args, inp)
    async with environment(args, EXAMPLE, workers) as client:
        handle = await start_or_attach(client, BertFineTuneWorkflow.run, inp, id=run_id, task_queue=TASK_QUEUE,
                                       say=say)
        training: TrainResult = await follow_training(handle, BertFineTuneWorkflow.progress)
        predictions = await client.execute_workflow(
            BertInferenceWorkflow.run, InferenceInput.from_result(config, training, list(args.predict)),
            id=f"{run_id}-predict", task_queue=TASK_QUEUE,
        )
    lines = [f"fine-tuned {training.steps} steps in run {training.run_id}: "
             + "  ".join(f"{k} {v:.4g}" for k, v in sorted(training.metrics.items())),
             f"weights sha256 {training.checkpoint.model_sha256}", "predictions:"]
    for text, label, conf in zip(args.predict, predictions.labels, predictions.confidences, strict=True):
        lines.append(f"  {label}  ({conf:.2f})  {text}")
    emit(args, FineTuneResult(training=training, predictions=predictions, inputs=list(args.predict)),
         "\n".join(lines))
    return 0


def _eval_split(args: argparse.Namespace) -> str | None:
    """``--eval-split``, else dev/validation/test (whichever the data has; generated data: dev); a
    hub dataset is not evaluated unless named."""
    source = dataset_source(args.dataset, None)
    if args.eval_split or not source.hub:
        return eval_split_of(source, args.eval_split)
    return None


main = main_of(run, parser)

if __name__ == "__main__":
    main()
