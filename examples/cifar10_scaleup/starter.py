"""Train a ResNet on CIFAR-10 at world sizes 1 and 2 (DDP ranks) and report the scaling.

    python -m examples.cifar10_scaleup.starter --embedded              # self-contained, ~3 minutes
    python -m examples.cifar10_scaleup.starter --world-sizes 1,2,4,8   # against a running worker

Each scale is a durable child run with the same global batch, steps, seed and data; the report gives
per scale the wall time, samples/s (end to end and in steady-state training), speed-up, scaling
efficiency and test accuracy/loss, and a PNG chart of throughput and accuracy against world size.
"""

from __future__ import annotations

import argparse
import uuid
from pathlib import Path
from typing import Any

from temporal_ml.errors import ConfigError, MissingDependencyError
from temporal_ml.follow import follow
from temporal_ml.progress import RunProgress
from temporal_ml.starting import start_or_attach
from temporal_ml.types import DatasetSource, TrainConfig

from .._shared import add_verbose, base_parser, emit, environment, main_of, say, store_dir
from .model import GENERATOR, TRAINABLE, data_dir
from .worker import EXAMPLE, worker
from .workflows import TASK_QUEUE, ScaleUpInput, ScaleUpResult, ScaleUpWorkflow


def _ints(value: str) -> list[int]:
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {value!r}") from None


parser = base_parser(__doc__.splitlines()[0])
parser.add_argument("--world-sizes", type=_ints, default=[1, 2],
                    help="comma-separated world sizes to compare (default 1,2; e.g. 1,2,4,8 on a GPU box)")
parser.add_argument("--steps", type=int, default=450, help="optimizer steps of every scale (default 450)")
parser.add_argument("--batch-size", type=int, default=128, help="global batch (default 128)")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--lr", type=float, default=0.05, help="peak learning rate (one-cycle, default 0.05)")
parser.add_argument("--width", type=int, default=16, help="channels of the first stage (default 16)")
parser.add_argument("--threads-per-rank", type=int, default=1, help="torch threads per rank (default 1)")
parser.add_argument("--device", default="cpu", help="'cpu' (default), 'cuda' (nccl, one GPU per rank) or 'auto'")
parser.add_argument("--data", default=None,
                    help="directory with train*.npz and test.npz (default: $CIFAR10_DIR or ../shared/data/cifar10)")
parser.add_argument("--train-limit", type=int, default=10000, help="training images to use (default 10000)")
parser.add_argument("--test-limit", type=int, default=2000, help="test images to evaluate on (default 2000)")
parser.add_argument("--chart", default=None,
                    help="where to write the PNG chart (default: <store>/scaleup-<run id>.png)")
parser.add_argument("--run-id", default=None, help="workflow / run id (default: generated)")
parser.add_argument("--queue", default=TASK_QUEUE, help=f"task queue (default {TASK_QUEUE!r})")
add_verbose(parser)


def scaleup_input(args: argparse.Namespace, run_id: str) -> ScaleUpInput:
    if any(w < 1 for w in args.world_sizes):
        raise ConfigError("--world-sizes must be positive integers")
    folder = Path(args.data).expanduser().resolve() if args.data else data_dir()
    if not (folder / "test.npz").is_file() or not list(folder.glob("train*.npz")):
        raise ConfigError(f"no CIFAR-10 train*.npz and test.npz in {folder}: pass --data DIR or set CIFAR10_DIR")
    config = TrainConfig(
        trainable=TRAINABLE, max_steps=args.steps, batch_size=args.batch_size, seed=args.seed,
        checkpoint_every_steps=max(1, args.steps // 4), log_every_steps=10, eval_split="test",
        device=args.device, threads_per_rank=args.threads_per_rank,
        hparams={"width": args.width, "lr": args.lr},
    )
    dataset = DatasetSource(generator=GENERATOR, params={
        "dir": str(folder), "n_train": args.train_limit, "n_test": args.test_limit})
    return ScaleUpInput(config=config, dataset=dataset, world_sizes=args.world_sizes, run_id=run_id,
                        task_queue=args.queue)


def table(result: ScaleUpResult) -> str:
    rows = [f"{'ranks':>5} {'wall s':>7} {'samples/s':>9} {'train s/s':>9} {'speed-up':>8} "
            f"{'effic.':>6} {'tr.eff.':>7} {'test acc':>8} {'test loss':>9}"]
    for s in result.scales:
        def f(v: float | None, fmt: str) -> str:
            return format(v, fmt) if v is not None else "-"
        rows.append(f"{s.world_size:>5} {s.wall_seconds:>7.1f} {s.samples_per_second:>9.1f} "
                    f"{f(s.train_samples_per_second, '9.1f'):>9} {s.speedup:>8.2f} {s.efficiency:>6.2f} "
                    f"{f(s.train_efficiency, '7.2f'):>7} {f(s.test_accuracy, '8.4f'):>8} "
                    f"{f(s.test_loss, '9.4f'):>9}")
    return "\n".join(rows)


def chart(result: ScaleUpResult, path: Path) -> Path:
    """Throughput (end to end and steady state) and test accuracy against world size, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    worlds = [s.world_size for s in result.scales]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(worlds, [s.samples_per_second for s in result.scales], "o-", label="end to end")
    if all(s.train_samples_per_second for s in result.scales):
        ax1.plot(worlds, [s.train_samples_per_second for s in result.scales], "s-", label="training")
    base = result.scales[0]
    ideal = [base.samples_per_second * w / base.world_size for w in worlds]
    ax1.plot(worlds, ideal, "k:", label="linear (end to end)")
    ax1.set(xlabel="world size (ranks)", ylabel="samples / s", title="throughput", xticks=worlds)
    ax1.legend()
    ax2.plot(worlds, [s.test_accuracy or 0.0 for s in result.scales], "o-", color="tab:green")
    ax2.set(xlabel="world size (ranks)", ylabel="test accuracy", xticks=worlds,
            title=f"{result.steps} steps x global batch {result.global_batch}")
    fig.suptitle(f"CIFAR-10 scale-up ({result.run_id})")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


async def _progress(handle: Any) -> dict[str, RunProgress]:
    """Each scale's progress: the ones done, and the one training now."""
    s = await handle.query(ScaleUpWorkflow.status)
    shown = {f"world size {w}": RunProgress(state="done", step=s.max_steps, max_steps=s.max_steps) for w in s.done}
    if s.world_size:
        shown[f"world size {s.world_size}"] = RunProgress(state="training", step=s.step, max_steps=s.max_steps)
    return shown


def require_chart() -> None:
    """Fail before training, in one line, when the final chart cannot be drawn (no matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            "the scale-up chart needs matplotlib, which is not installed: "
            "pip install 'temporal-ml[ui]' (or 'temporal-ml[examples]', which includes it)") from None


async def run(args: argparse.Namespace) -> int:
    require_chart()  # before minutes of training, not after them
    run_id = args.run_id or f"cifar10-scaleup-{uuid.uuid4().hex[:8]}"
    inp = scaleup_input(args, run_id)
    async with environment(args, EXAMPLE, lambda client: [worker(client, args.queue)]) as client:
        handle = await start_or_attach(client, ScaleUpWorkflow.run, inp, id=run_id, task_queue=args.queue, say=say)
        say(f"started {run_id}: world sizes {args.world_sizes}, {args.steps} steps of global "
            f"batch {args.batch_size} each, on {args.queue!r}")
        result = await follow(handle, lambda: _progress(handle))
    path = chart(result, Path(args.chart) if args.chart else store_dir(EXAMPLE) / f"scaleup-{run_id}.png")
    emit(args, result, f"done: {run_id} (snapshot {result.snapshot.short_id})\n{table(result)}\n"
                       f"chart: {path}")
    if args.json:
        say(f"chart: {path}")
    return 0


main = main_of(run, parser)

if __name__ == "__main__":
    main()
