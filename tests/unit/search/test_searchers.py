"""Searchers: every suggestion inside the space, pure and deterministic, grids exhaustive, TPE sane."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from temporal_ml.search import (
    Categorical,
    Fixed,
    Float,
    GridSearcher,
    Int,
    RandomSearcher,
    SearchExhausted,
    SearchSpace,
    Study,
    TPESearcher,
    TrialRecord,
)

# ------------------------------------------------------------------ strategies


@st.composite
def floats(draw: Any) -> Float:
    log = draw(st.booleans())
    if log:
        low = draw(st.floats(1e-8, 1e3))
        high = low * draw(st.floats(1.01, 1e6))
        return Float(low, high, log=True)
    low = draw(st.floats(-1e6, 1e6))
    high = low + draw(st.floats(1e-3, 1e6))
    step = draw(st.none() | st.sampled_from([0.5, 0.1, 1.0])) if high - low >= 1.0 else None
    return Float(low, high, step=step)


@st.composite
def ints(draw: Any) -> Int:
    if draw(st.booleans()):
        low = draw(st.integers(1, 1000))
        return Int(low, low + draw(st.integers(1, 10_000)), log=True)
    low = draw(st.integers(-1000, 1000))
    high = low + draw(st.integers(1, 1000))
    return Int(low, high, step=draw(st.integers(1, max(1, min(7, high - low)))))


choices = st.lists(
    st.one_of(st.text(max_size=5), st.integers(-5, 5), st.booleans(), st.none()),
    min_size=1, max_size=5, unique_by=lambda v: (type(v).__name__, v),
)
params = st.one_of(floats(), ints(), choices.map(Categorical), st.integers().map(Fixed))
spaces = st.dictionaries(st.sampled_from(list("abcdef")), params, min_size=1, max_size=4).map(
    SearchSpace
)


def histories(space: SearchSpace, n: int, seed: int) -> list[TrialRecord]:
    """n trials: random points, most complete, some failed, the last few pending."""
    out = []
    for i in range(n):
        point = RandomSearcher().suggest(space, [], seed=seed + 1000, index=i)
        state = "pending" if i >= n - 2 else ("failed" if i % 7 == 3 else "complete")
        value = float((i * 7919) % 101) if state == "complete" else None
        out.append(TrialRecord(index=i, params=point, state=state, value=value))
    return out


SEARCHERS = [RandomSearcher(), TPESearcher(n_startup=3), TPESearcher(n_startup=3, multivariate=False)]

# ------------------------------------------------------------------ properties


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(space=spaces, n=st.integers(0, 25), seed=st.integers(0, 2**31), which=st.integers(0, 2),
       direction=st.sampled_from(["minimize", "maximize"]))
def test_suggestions_lie_in_the_space_and_are_pure(
    space: SearchSpace, n: int, seed: int, which: int, direction: Any
) -> None:
    searcher = SEARCHERS[which]
    history = histories(space, n, seed)
    point = searcher.suggest(space, history, seed=seed, index=n, direction=direction)
    assert space.problem_with(point) is None, (point, space.problem_with(point))
    for name, param in space.params.items():  # steps and log bounds hold exactly
        value = point[name]
        if isinstance(param, Int):
            assert isinstance(value, int) and (value - param.low) % param.step == 0
        if isinstance(param, Float) and param.step:
            k = (value - param.low) / param.step
            assert math.isclose(k, round(k), abs_tol=1e-6)
    again = searcher.suggest(space, list(history), seed=seed, index=n, direction=direction)
    assert again == point


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(0, 30), which=st.integers(0, 2))
def test_another_seed_changes_the_suggestion(seed: int, n: int, which: int) -> None:
    space = SearchSpace({"x": Float(0, 1), "y": Float(-3, 3), "lr": Float(1e-6, 1, log=True)})
    history = histories(space, n, 0)
    a = SEARCHERS[which].suggest(space, history, seed=seed, index=n)
    b = SEARCHERS[which].suggest(space, history, seed=seed + 1, index=n)
    c = SEARCHERS[which].suggest(space, history, seed=seed, index=n + 1)
    assert a != b and a != c


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(1, 4), min_size=1, max_size=3), shuffle=st.booleans(),
       seed=st.integers(0, 100))
def test_grid_enumerates_every_point_exactly_once(sizes: list[int], shuffle: bool, seed: int) -> None:
    space = SearchSpace(
        {f"p{i}": Categorical(list(range(k))) if i % 2 else Int(0, k) for i, k in enumerate(sizes)}
    )
    study = Study(space, GridSearcher(shuffle=shuffle), seed=seed)
    seen = []
    while True:
        try:
            trial = study.ask()
        except SearchExhausted:
            break
        seen.append(tuple(sorted(trial.params.items())))
        if len(seen) % 3 == 0:
            study.tell(trial, failed=True)  # failed and pending points are not repeated either
        elif len(seen) % 3 == 1:
            study.tell(trial, 1.0)
    expected = {tuple(sorted(p.items())) for p in space.grid()}
    assert len(seen) == len(expected) == space.grid_size()
    assert set(seen) == expected


def test_grid_refuses_continuous_spaces_up_front() -> None:
    with pytest.raises(ValueError, match="parameter 'x': a grid needs finite values"):
        Study(SearchSpace({"x": Float(0, 1)}), GridSearcher())


# ------------------------------------------------------------------ TPE behaviour


def _quadratic(p: dict[str, Any]) -> float:
    return (p["x"] - 0.7) ** 2 + (math.log10(p["lr"]) + 3) ** 2 + (p["n"] - 5) ** 2 / 10 + (
        0.0 if p["act"] == "gelu" else 0.5
    )


QSPACE = SearchSpace({"x": Float(-2, 2), "lr": Float(1e-6, 1, log=True), "n": Int(1, 10),
                      "act": Categorical(["relu", "gelu", "tanh"])})


def test_tpe_beats_random_search_on_a_bowl() -> None:
    tpe, rnd = [], []
    for seed in range(5):
        tpe.append(Study(QSPACE, TPESearcher(), seed=seed).optimize(_quadratic, 60).value)
        rnd.append(Study(QSPACE, RandomSearcher(), seed=seed).optimize(_quadratic, 60).value)
    assert sorted(tpe)[2] < sorted(rnd)[2] / 2, (tpe, rnd)


def test_maximize_is_minimize_of_the_negation() -> None:
    lo = Study(QSPACE, TPESearcher(), seed=3, direction="minimize")
    hi = Study(QSPACE, TPESearcher(), seed=3, direction="maximize")
    for _ in range(25):
        a, b = lo.ask(), hi.ask()
        assert a.params == b.params
        lo.tell(a, _quadratic(a.params))
        hi.tell(b, -_quadratic(b.params))
    assert hi.best_trial.index == lo.best_trial.index


def test_pending_trials_spread_parallel_suggestions() -> None:
    study = Study(QSPACE, TPESearcher(), seed=0)
    study.optimize(_quadratic, 30)
    batch = [study.ask() for _ in range(6)]  # six parallel workers, nothing told yet
    points = {tuple(sorted(t.params.items())) for t in batch}
    assert len(points) == 6
    # without the constant liar the same history gives the same point six times
    liarless = TPESearcher(constant_liar=False)
    history = study.trials
    same = {str(liarless.suggest(QSPACE, history[: 30 + k], seed=0, index=30)) for k in range(6)}
    assert len(same) == 1


def test_failed_trials_steer_tpe_away() -> None:
    """Runs with lr > 1e-2 crash: TPE learns to stay below, random search keeps crashing."""

    def objective(p: dict[str, Any]) -> float:
        if p["lr"] > 1e-2:
            raise FloatingPointError("loss is NaN")
        return _quadratic(p)

    tpe = Study(QSPACE, TPESearcher(), seed=1)
    tpe.optimize(objective, 60, catch=(FloatingPointError,))
    late = tpe.trials[30:]
    crashes = sum(t.state == "failed" for t in late)
    assert crashes <= 10, crashes  # random search crashes on ~1/3 of its points
    assert tpe.best_value < 1.0


def test_history_from_another_space_is_ignored() -> None:
    old = [TrialRecord(index=i, params={"x": 0.1 * i}, value=float(i)) for i in range(15)]
    old += [TrialRecord(index=15, params={"x": 0.2, "act": "swish"}, value=0.0)]
    space = SearchSpace({"x": Float(0, 2), "act": Categorical(["relu", "gelu"])})
    point = TPESearcher(n_startup=2).suggest(space, old, seed=0, index=16)
    assert space.problem_with(point) is None


def test_study_tell_rules_and_resume() -> None:
    study = Study(QSPACE, TPESearcher(), seed=5)
    t = study.ask()
    with pytest.raises(ValueError, match="either a value or failed=True"):
        study.tell(t)
    study.tell(t, float("nan"))
    assert study.trials[0].state == "failed"
    with pytest.raises(ValueError, match="already told"):
        study.tell(t, 1.0)
    with pytest.raises(ValueError, match="no trial has completed"):
        _ = study.best_trial
    study.optimize(_quadratic, 20)
    # a study rebuilt from the trials continues exactly like the original
    copy = Study(QSPACE, TPESearcher(), seed=5, trials=study.trials)
    assert copy.ask().params == study.ask().params
    with pytest.raises(ValueError, match="parameter 'n': 11 is outside"):
        study.enqueue({"x": 0.0, "lr": 1e-3, "n": 11, "act": "relu"})
    study.enqueue({"x": 0.0, "lr": 1e-3, "n": 3, "act": "relu"})
    assert study.ask().params["n"] == 3


# ------------------------------------------------------------------ exactness of the fast paths


@settings(max_examples=25, deadline=None)
@given(n=st.integers(64, 700), dims=st.integers(0, 6), cats=st.lists(st.integers(2, 5), max_size=2),
       sharp=st.booleans(), seed=st.integers(0, 1000))
def test_pruned_densities_equal_brute_force(
    n: int, dims: int, cats: list[int], sharp: bool, seed: int
) -> None:
    """Bucketing and kernel pruning change a log density by at most a few ulps, never more."""
    import random

    from temporal_ml.search._parzen import ParzenEstimator

    if dims == 0 and not cats:
        cats = [3]
    rng = random.Random(seed)
    points = [(tuple(rng.random() for _ in range(dims)), tuple(rng.randrange(k) for k in cats))
              for _ in range(n)]
    est = ParzenEstimator(points, n_numeric=dims, n_choices=cats, prior_weight=1.0,
                          min_sigma=[0.01] * dims if sharp else None)
    probes = est.sample(rng, 40) + [
        (tuple(rng.random() for _ in range(dims)), tuple(rng.randrange(k) for k in cats))
        for _ in range(20)
    ]
    fast = est.log_pdf(probes)
    for value, probe in zip(fast, probes, strict=True):
        exact = est._log_pdf_all(*probe)
        assert abs(value - exact) <= 1e-12 * max(1.0, abs(exact))
        assert value >= est.log_prior_term(probe)  # the bound the candidate search relies on


def test_branch_and_bound_picks_the_brute_force_argmax() -> None:
    from temporal_ml.search import _tpe

    def brute(log_l: list[float], above: Any, candidates: list[Any]) -> int:
        scores = [lo - hi for lo, hi in zip(log_l, above.log_pdf(candidates), strict=True)]
        return max(range(len(scores)), key=lambda i: (scores[i], -i))

    for seed in range(3):
        history = histories(QSPACE, 200, seed)
        done = [TrialRecord(index=t.index, params=t.params, value=_quadratic(t.params))
                for t in history]
        for k in (15, 80, 200):
            fast = TPESearcher().suggest(QSPACE, done[:k], seed=seed, index=k)
            original = _tpe._argmax_ratio
            _tpe._argmax_ratio = brute  # type: ignore[assignment]
            try:
                slow = TPESearcher().suggest(QSPACE, done[:k], seed=seed, index=k)
            finally:
                _tpe._argmax_ratio = original
            assert fast == slow
