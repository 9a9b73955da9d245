"""Search spaces: validation that names the parameter, JSON round trips, mapping onto a config."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import TypeAdapter, ValidationError

import temporal_ml.search as search
from temporal_ml.search import (
    AnySearcher,
    Categorical,
    Fixed,
    Float,
    GridSearcher,
    Int,
    RandomSearcher,
    SearchSpace,
    TPESearcher,
)
from temporal_ml.types import TrainConfig

BASE = TrainConfig(trainable="tiny", max_steps=10)


@pytest.mark.parametrize(
    ("param", "fragment"),
    [
        (Float(1e-2, 1e-5, log=True), "low (0.01) must be less than high (1e-05)"),
        (Float(1.0, 1.0), "low (1.0) must be less than high (1.0)"),
        (Float(0.0, 1.0, log=True), "a log scale needs low > 0"),
        (Float(-1.0, 1.0, log=True), "a log scale needs low > 0"),
        (Float(0.0, 1.0, step=2.0), "step (2.0) is larger than the range"),
        (Float(0.0, 1.0, step=-0.1), "step must be > 0"),
        (Float(1e-3, 1.0, log=True, step=0.1), "step and log cannot be combined"),
        (Float(0.0, float("inf")), "bounds must be finite"),
        (Int(6, 1), "low (6) must be less than high (1)"),
        (Int(0, 8, log=True), "a log scale needs low > 0"),
        (Int(1, 8, step=0), "step must be >= 1"),
        (Categorical([]), "choices must not be empty"),
        (Categorical(["relu", "gelu", "relu"]), 'duplicate choice "relu"'),
        (Categorical([{"a": 1, "b": 2}, {"b": 2, "a": 1}]), "duplicate choice"),
    ],
)
def test_bad_parameters_are_refused_naming_the_parameter(param: object, fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        SearchSpace({"hparams.lr": param, "seed": Int(0, 3)})
    message = str(info.value)
    assert "parameter 'hparams.lr'" in message
    assert fragment in message


def test_an_empty_space_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least one parameter"):
        SearchSpace({})


def test_keys_must_address_the_config() -> None:
    space = SearchSpace({"lr": Float(1e-5, 1e-2, log=True)})
    with pytest.raises(ValueError, match="parameter 'lr' is not a field of TrainConfig; use 'hparams.lr'"):
        space.check_keys(BASE)
    with pytest.raises(ValueError, match="parameter 'trainable' is not a field"):
        SearchSpace({"trainable": Categorical(["a", "b"])}).check_keys(TrainConfig)
    with pytest.raises(ValueError, match="parameter 'batch_size': the config rejects 8.5"):
        SearchSpace({"batch_size": Float(8.5, 64.0)}).check_keys(BASE)
    with pytest.raises(ValueError, match="parameter 'batch_size': the config rejects 0"):
        SearchSpace({"batch_size": Int(0, 64)}).check_keys(BASE)
    good = SearchSpace(
        {"hparams.lr": Float(1e-5, 1e-2, log=True), "batch_size": Categorical([16, 32]),
         "seed": Int(0, 4), "hparams.layers": Fixed(2)}
    )
    good.check_keys(BASE)
    config = good.apply(BASE, {"hparams.lr": 1e-3, "batch_size": 32, "seed": 3, "hparams.layers": 2})
    assert config.hparams == {"lr": 1e-3, "layers": 2}
    assert (config.batch_size, config.seed, config.max_steps) == (32, 3, 10)


def test_apply_refuses_points_outside_the_space() -> None:
    space = SearchSpace({"hparams.lr": Float(1e-5, 1e-2, log=True), "batch_size": Categorical([16, 32])})
    with pytest.raises(ValueError, match="parameter 'hparams.lr': 0.5 is outside"):
        space.apply(BASE, {"hparams.lr": 0.5, "batch_size": 16})
    with pytest.raises(ValueError, match="missing parameter"):
        space.apply(BASE, {"hparams.lr": 1e-3})
    with pytest.raises(ValueError, match="unknown parameter"):
        space.apply(BASE, {"hparams.lr": 1e-3, "batch_size": 16, "seed": 1})


def test_spaces_and_searchers_round_trip_through_json() -> None:
    space = SearchSpace(
        {"x": Float(-5, 10), "lr": Float(1e-5, 1e-2, log=True), "layers": Int(1, 6),
         "w": Int(16, 512, log=True), "s": Float(0, 1, step=0.25),
         "act": Categorical(["relu", "gelu", None, [1, 2]]), "k": Fixed({"a": 1})}
    )
    assert SearchSpace.model_validate_json(space.model_dump_json()) == space
    adapter = TypeAdapter(AnySearcher)
    for searcher in (RandomSearcher(), GridSearcher(shuffle=True), TPESearcher(n_startup=5)):
        assert adapter.validate_json(adapter.dump_json(searcher)) == searcher
    # a space sent as raw JSON by another client is checked the same way
    with pytest.raises(ValidationError, match="parameter 'x': low"):
        SearchSpace.model_validate({"params": {"x": {"kind": "float", "low": 2, "high": 1}}})


def test_grids() -> None:
    space = SearchSpace({"a": Int(1, 7, step=3), "b": Float(0.0, 0.5, step=0.25), "c": Fixed("z")})
    assert space.grid() == [
        {"a": a, "b": b, "c": "z"} for a in (1, 4, 7) for b in (0.0, 0.25, 0.5)
    ]
    assert space.grid_size() == 9
    with pytest.raises(ValueError, match="parameter 'x': a grid needs finite values"):
        SearchSpace({"x": Float(0, 1)}).grid()


def test_unit_mapping_covers_integers_evenly() -> None:
    p = Int(1, 3)
    assert [p.from_unit(u) for u in (0.0, 0.33, 0.34, 0.66, 0.67, 1.0)] == [1, 1, 2, 2, 3, 3]
    lp = Float(1e-4, 1e-1, log=True)
    assert lp.from_unit(0.5) == pytest.approx(10 ** -2.5)
    assert lp.to_unit(1e-4) == 0.0 and lp.to_unit(1e-1) == 1.0


def test_public_names_and_no_heavy_imports() -> None:
    assert set(search.__all__) >= {
        "SearchSpace", "Float", "Int", "Categorical", "Fixed", "Study", "RandomSearcher",
        "GridSearcher", "TPESearcher", "AshaScheduler", "SuccessiveHalvingScheduler",
        "TrialRecord", "RungTable", "LadderDecision",
    }
    for name in search.__all__:
        assert getattr(search, name) is not None
    code = (
        "import sys, temporal_ml.search\n"
        "bad = [m for m in ('torch', 'temporalio', 'numpy') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_readme_search_example_runs() -> None:
    """The README's ask/tell example is real code: run it as it is written there."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    block = readme.split("<!-- readme-search-example -->\n```python\n", 1)[1].split("```", 1)[0]
    out = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, check=True)
    params, _, value = out.stdout.strip().rpartition("} ")
    assert params.startswith("{'x': ") and float(value) < 1.5, out.stdout  # it runs; optimum 0
