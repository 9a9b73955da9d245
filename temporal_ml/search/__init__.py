"""Hyperparameter search: spaces, searchers and multi-fidelity schedulers.

Plain Python with no torch or Temporal import, so it runs inside workflow code (deterministic and
replay-safe) and in any script. Searchers are pure: a suggestion depends only on the space, the
seed, the trial index and the history passed in.

Example (ask/tell, no Temporal):
    >>> from temporal_ml.search import (Categorical, Float, Int, SearchSpace, Study,
    ...                                 TPESearcher)
    >>> space = SearchSpace({"x": Float(-5, 10), "lr": Float(1e-5, 1e-2, log=True),
    ...                      "layers": Int(1, 6), "act": Categorical(["relu", "gelu"])})
    >>> study = Study(space, searcher=TPESearcher(), seed=0, direction="minimize")
    >>> trial = study.ask()
    >>> _ = study.tell(trial, trial.params["x"] ** 2)
    >>> study.best_trial.index
    0
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from temporal_ml.search._base import (
    Direction,
    Directions,
    Searcher,
    SearchExhausted,
    TrialRecord,
    TrialState,
    trial_rng,
)
from temporal_ml.search._bohb import BOHBSearcher, bohb
from temporal_ml.search._grid import GridSearcher
from temporal_ml.search._nsga2 import NSGAIISearcher
from temporal_ml.search._pareto import (
    crowding_distance,
    dominates,
    hypervolume,
    non_dominated_sort,
    pareto_front,
)
from temporal_ml.search._pbt import PbtDecision, PbtScheduler, explore, pbt_round
from temporal_ml.search._random import RandomSearcher
from temporal_ml.search._registry import (
    AnySearcher,
    register_searcher,
    searcher_from_json,
    searcher_kinds,
)
from temporal_ml.search._rungs import Bracket, Rung, RungTable
from temporal_ml.search._schedulers import (
    AshaScheduler,
    LadderDecision,
    SuccessiveHalvingScheduler,
    ladder_budgets,
)
from temporal_ml.search._space import Categorical, Fixed, Float, Int, Param, SearchSpace
from temporal_ml.search._study import Study
from temporal_ml.search._tpe import TPESearcher

BaseSearcher = Searcher
"""The base of a searcher of your own (see :func:`register_searcher`): settings as pydantic fields,
a ``kind``, and ``suggest``."""

for _builtin in (RandomSearcher, GridSearcher, TPESearcher, NSGAIISearcher, BOHBSearcher):
    register_searcher(_builtin)

AnyScheduler = Annotated[AshaScheduler | SuccessiveHalvingScheduler, Field(discriminator="kind")]
"""Any built-in multi-fidelity scheduler, as a field type (JSON carries its ``kind``)."""

SweepScheduler = Annotated[AshaScheduler | PbtScheduler, Field(discriminator="kind")]
"""A durable sweep's scheduler (``SweepInput.scheduler``): ASHA or population-based training."""

__all__ = [
    # spaces
    "Float",
    "Int",
    "Categorical",
    "Fixed",
    "Param",
    "SearchSpace",
    # searchers
    "Searcher",
    "BaseSearcher",
    "register_searcher",
    "searcher_kinds",
    "searcher_from_json",
    "RandomSearcher",
    "GridSearcher",
    "TPESearcher",
    "NSGAIISearcher",
    "BOHBSearcher",
    "AnySearcher",
    "TrialRecord",
    "TrialState",
    "Direction",
    "Directions",
    "SearchExhausted",
    "trial_rng",
    # ask/tell
    "Study",
    # multi-objective
    "pareto_front",
    "hypervolume",
    "non_dominated_sort",
    "crowding_distance",
    "dominates",
    # multi-fidelity
    "AshaScheduler",
    "SuccessiveHalvingScheduler",
    "AnyScheduler",
    "LadderDecision",
    "RungTable",
    "Bracket",
    "Rung",
    "ladder_budgets",
    # population-based training
    "PbtScheduler",
    "PbtDecision",
    "pbt_round",
    "explore",
    "SweepScheduler",
    "bohb",
]
