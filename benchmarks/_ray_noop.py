"""Ray Tune running N no-op trials at concurrency C (a subprocess of ``bench_sweep.py``).

    python benchmarks/_ray_noop.py N C STORAGE_DIR

Prints one JSON line: ``{"init": s, "fit": s, "trials": n, "errors": k}`` (``init``: ``ray.init``;
``fit``: ``Tuner.fit`` of a function trainable that reports one metric and returns).
"""

from __future__ import annotations

import json
import sys
import time


def main(n: int, c: int, storage: str) -> None:
    start = time.perf_counter()
    import ray
    from ray import tune

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    init = time.perf_counter() - start

    def objective(config: dict[str, float]) -> dict[str, float]:
        return {"score": config["x"]}

    tuner = tune.Tuner(
        tune.with_resources(objective, {"cpu": 0.01}),  # CPU is not what limits C no-op trials
        param_space={"x": tune.uniform(0.0, 1.0)},
        tune_config=tune.TuneConfig(num_samples=n, max_concurrent_trials=c, metric="score", mode="max"),
        run_config=tune.RunConfig(storage_path=storage, name="noop", verbose=0),
    )
    start = time.perf_counter()
    results = tuner.fit()
    fit = time.perf_counter() - start
    ray.shutdown()
    print(json.dumps({"init": init, "fit": fit, "trials": len(results), "errors": results.num_errors}))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
