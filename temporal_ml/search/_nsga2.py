"""NSGA-II (Deb, Pratap, Agarwal and Meyarivan, IEEE TEC 2002): a Pareto-front searcher.

Trials are taken in generations of ``population_size`` by index: trial ``i`` is a child of
generation ``i // population_size``. Generation 0 is drawn at random. The parents of generation
``g`` are NSGA-II's elitist population: starting empty, each earlier generation's completed trials
join the population and the best ``population_size`` of the union stay, by non-dominated rank and
then crowding distance. Each child comes from two binary tournaments (lower rank wins, then larger
crowding distance), simulated binary crossover (SBX) and polynomial mutation on the unit cube of
the space (so a log-scale parameter is crossed on its log scale); integers and stepped floats
snap to their grid (a mutated one moves at least one step), categoricals cross uniformly and mutate
to another choice.

What differs from a mutable sampler object: the population is rebuilt from the history at each
call, and the draws come from ``trial_rng(seed, index)``, so a suggestion is a pure function of
its inputs (replay-safe). Trials still running when a generation is bred are left out of the
parents (with a sweep's concurrency, the parents are the trials completed by then).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import ClassVar, Literal

from pydantic import Field, JsonValue

from temporal_ml.search._base import Directions, Searcher, TrialRecord, as_directions, trial_rng
from temporal_ml.search._pareto import crowding_distance, minimized, non_dominated_sort
from temporal_ml.search._space import SearchSpace
from temporal_ml.search._tpe import _Codec

__all__ = ["NSGAIISearcher"]

Genome = tuple[tuple[float, ...], tuple[int, ...]]  # unit coordinates, choice indices


class _Member:
    __slots__ = ("index", "genome", "objectives", "rank", "crowding")

    def __init__(self, index: int, genome: Genome, objectives: tuple[float, ...]) -> None:
        self.index, self.genome, self.objectives = index, genome, objectives
        self.rank, self.crowding = 0, 0.0


class NSGAIISearcher(Searcher):
    """NSGA-II for one or more objectives (``direction`` may be a tuple, one per objective).

    Attributes:
        population_size: trials per generation, and the size of the parent population.
        crossover_prob: probability that a child is bred by crossover (else it copies a parent).
        swap_prob: with crossover, the probability that each parameter is crossed (SBX, or a
            categorical taken from the other parent).
        eta_crossover: SBX distribution index (larger: children nearer their parents).
        mutation_prob: probability that each searched parameter mutates; ``None``: one over their
            number.
        eta_mutation: polynomial-mutation distribution index (larger: smaller steps).

    Example:
        >>> from temporal_ml.search import Float, SearchSpace, TrialRecord
        >>> space = SearchSpace({"x": Float(0, 1)})
        >>> history = [TrialRecord(index=i, params={"x": i / 9}, values=(i / 9, (1 - i / 9) ** 2))
        ...            for i in range(10)]
        >>> nsga = NSGAIISearcher(population_size=10)
        >>> a = nsga.suggest(space, history, seed=0, index=10, direction=("minimize", "minimize"))
        >>> a == nsga.suggest(space, history, seed=0, index=10, direction=("minimize", "minimize"))
        True
    """

    kind: Literal["nsga2"] = "nsga2"
    multi_objective: ClassVar[bool] = True
    population_size: int = Field(default=20, ge=2)
    crossover_prob: float = Field(default=0.9, ge=0, le=1)
    swap_prob: float = Field(default=0.5, ge=0, le=1)
    eta_crossover: float = Field(default=20.0, gt=0)
    mutation_prob: float | None = Field(default=None, gt=0, le=1)
    eta_mutation: float = Field(default=20.0, gt=0)

    def suggest(
        self,
        space: SearchSpace,
        history: Sequence[TrialRecord],
        *,
        seed: int,
        index: int,
        direction: Directions = "minimize",
    ) -> dict[str, JsonValue]:
        directions = as_directions(direction)
        generation = index // self.population_size
        parents = self.parents(space, history, directions, generation) if generation else []
        if not parents:
            return self.random_point(space, trial_rng(seed, index, "nsga2-init"))
        codec = _Codec(space)
        rng = trial_rng(seed, index, "nsga2")
        first, second = _tournament(rng, parents), _tournament(rng, parents)
        genome = first.genome
        if rng.random() < self.crossover_prob:
            genome = self._crossover(rng, first.genome, second.genome)
        genome = self._mutate(rng, genome, codec)
        return codec.decode(genome)

    def parents(
        self,
        space: SearchSpace,
        history: Sequence[TrialRecord],
        directions: Sequence[str],
        generation: int,
    ) -> list[_Member]:
        """The parent population of ``generation``: elitist selection over the generations before."""
        codec = _Codec(space)
        names = set(space.params)
        by_generation: list[list[_Member]] = [[] for _ in range(generation)]
        for trial in history:
            g = trial.index // self.population_size
            if g >= generation or trial.params.keys() != names:
                continue
            objectives = minimized(trial, directions)  # type: ignore[arg-type]
            if objectives is None or not codec._fits(trial.params):
                continue
            try:
                genome = codec.encode(trial.params)
            except (TypeError, ValueError, KeyError):
                continue
            by_generation[g].append(_Member(trial.index, genome, objectives))
        population: list[_Member] = []
        for children in by_generation:
            if children:
                population = _select(population + children, self.population_size)
        return population

    def _crossover(self, rng: random.Random, a: Genome, b: Genome) -> Genome:
        nums = []
        for x, y in zip(a[0], b[0], strict=True):
            if rng.random() < self.swap_prob:
                x = _sbx(rng, x, y, self.eta_crossover)
            nums.append(x)
        cats = tuple(y if rng.random() < self.swap_prob else x for x, y in zip(a[1], b[1], strict=True))
        return tuple(nums), cats

    def _mutate(self, rng: random.Random, genome: Genome, codec: _Codec) -> Genome:
        searched = codec.n_numeric + sum(1 for k in codec.n_choices if k > 1)
        prob = self.mutation_prob if self.mutation_prob is not None else 1.0 / max(1, searched)
        nums = []
        for u, snap, cell in zip(genome[0], codec.snappers, codec.cells, strict=True):
            if rng.random() < prob:
                moved = _polynomial(rng, u, self.eta_mutation)
                if cell and snap(moved) == snap(u):  # a discrete value moves at least one step
                    moved = u + cell if moved > u or (moved == u and rng.random() < 0.5) else u - cell
                    moved = min(1.0, max(0.0, moved))
                u = moved
            nums.append(snap(u))
        cats = []
        for c, k in zip(genome[1], codec.n_choices, strict=True):
            if k > 1 and rng.random() < prob:
                c = (c + 1 + rng.randrange(k - 1)) % k  # another choice, uniformly
            cats.append(c)
        return tuple(nums), tuple(cats)


def _select(members: list[_Member], size: int) -> list[_Member]:
    """NSGA-II's elitist step: whole fronts while they fit, then the least crowded of the next."""
    fronts = non_dominated_sort([m.objectives for m in members])
    chosen: list[_Member] = []
    for rank, front in enumerate(fronts):
        group = [members[i] for i in front]
        for m, d in zip(group, crowding_distance([m.objectives for m in group]), strict=True):
            m.rank, m.crowding = rank, d
        if len(chosen) + len(group) <= size:
            chosen += group
        else:
            group.sort(key=lambda m: (-m.crowding, m.index))
            chosen += group[: size - len(chosen)]
        if len(chosen) >= size:
            break
    return chosen


def _tournament(rng: random.Random, population: list[_Member]) -> _Member:
    """Binary tournament by the crowded comparison: lower rank, then larger crowding distance."""
    a = population[rng.randrange(len(population))]
    b = population[rng.randrange(len(population))]
    if (a.rank, -a.crowding, a.index) <= (b.rank, -b.crowding, b.index):
        return a
    return b


def _sbx(rng: random.Random, x: float, y: float, eta: float) -> float:
    """One child of simulated binary crossover on [0, 1] (Deb and Agrawal 1995, bounded form)."""
    if abs(x - y) < 1e-14:
        return x
    low, high = min(x, y), max(x, y)
    r = rng.random()
    children = []
    for spread in (1.0 + 2.0 * low / (high - low), 1.0 + 2.0 * (1.0 - high) / (high - low)):
        alpha = 2.0 - spread ** -(eta + 1.0)
        if r <= 1.0 / alpha:
            beta = (r * alpha) ** (1.0 / (eta + 1.0))
        else:
            beta = (1.0 / (2.0 - r * alpha)) ** (1.0 / (eta + 1.0))
        children.append(beta)
    c1 = 0.5 * ((low + high) - children[0] * (high - low))
    c2 = 0.5 * ((low + high) + children[1] * (high - low))
    child = c1 if rng.random() < 0.5 else c2
    return min(1.0, max(0.0, child))


def _polynomial(rng: random.Random, u: float, eta: float) -> float:
    """Polynomial mutation of ``u`` on [0, 1] (Deb and Goyal 1996, bounded form)."""
    r = rng.random()
    power = 1.0 / (eta + 1.0)
    if r < 0.5:
        value = 2.0 * r + (1.0 - 2.0 * r) * (1.0 - u) ** (eta + 1.0)
        delta = value**power - 1.0
    else:
        value = 2.0 * (1.0 - r) + 2.0 * (r - 0.5) * u ** (eta + 1.0)
        delta = 1.0 - value**power
    return min(1.0, max(0.0, u + delta))

