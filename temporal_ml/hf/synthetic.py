"""A generated (synthetic) sentiment task that needs context to solve.

The sentences are made up by templates, not collected from people: they exist so that examples and
tests can train a real text classifier offline, in seconds, on a task where a model that reads words
in context does measurably better than one that counts words. Three kinds of sentence, mixed
50/25/25:

* **plain**: ``"the plot was very clever ."`` -> the adjective's polarity (intensifiers such as
  ``very``/``extremely`` carry no sentiment of their own);
* **negated**: ``"the acting was not good ."``, ``"the ending was never boring ."`` -> the opposite
  of the adjective's polarity;
* **contrast**: ``"the cast was great but the script was dull ."`` -> the clause after ``but``
  decides; ``"although the script was dull , the cast was great ."`` -> the main clause (after the
  comma) decides. Either clause may itself be negated (one in four); the two clauses always
  disagree.

Every adjective therefore appears under both labels, and a contrast sentence contains the same
words whichever label it has, so a bag-of-words model cannot fully solve the task: with the default
sizes a unigram naive Bayes classifier reaches about 0.6 dev accuracy (bigram logistic regression
about 0.8), while ``"tiny-bert"`` reaches about 0.9-0.99 after 300 steps of batch 32.

Labels are exactly balanced (``0`` negative, ``1`` positive, ``n // 2`` of each, the odd one
positive) and the output is a pure function of ``(n_train, n_dev, seed)``. Train and dev are drawn
independently, so a short sentence may occur in both.
"""

from __future__ import annotations

import random

import pyarrow as pa

from temporal_ml.errors import ConfigError

__all__ = ["sentiment_dataset", "POSITIVE", "NEGATIVE", "INTENSIFIERS", "NEGATORS"]

POSITIVE = (
    "good", "great", "brilliant", "charming", "delightful",
    "wonderful", "clever", "moving", "superb", "enjoyable",
)  # fmt: skip
"""Adjectives of positive polarity."""

NEGATIVE = (
    "bad", "awful", "boring", "dull", "terrible",
    "clumsy", "tedious", "weak", "bland", "messy",
)  # fmt: skip
"""Adjectives of negative polarity."""

INTENSIFIERS = ("very", "really", "extremely", "truly", "incredibly", "quite")
"""Words that strengthen an adjective without changing its polarity."""

NEGATORS = ("not", "never", "hardly", "not at all")
"""Words that flip an adjective's polarity."""

_SUBJECTS = (
    "the movie", "this film", "the plot", "the acting", "the soundtrack", "the ending",
    "the story", "the cast", "the script", "the pacing", "the dialogue", "the director's work",
)  # fmt: skip
_VERBS = ("was", "is", "felt", "seemed")
_OPENERS = ("", "", "", "honestly ,", "overall ,", "i think", "to be fair ,")
_KINDS = ("plain", "negated", "contrast")
_KIND_WEIGHTS = (0.5, 0.25, 0.25)


def _clause(rng: random.Random, polarity: int, *, negated: bool) -> str:
    """A clause ``subject verb [negator] [intensifier] adjective`` of the given polarity."""
    adjectives = POSITIVE if bool(polarity) != negated else NEGATIVE
    words = [rng.choice(_SUBJECTS), rng.choice(_VERBS)]
    if negated:
        words.append(rng.choice(NEGATORS))
    if rng.random() < 0.4:
        words.append(rng.choice(INTENSIFIERS))
    words.append(rng.choice(adjectives))
    return " ".join(words)


def _sentence(rng: random.Random, label: int) -> str:
    kind = rng.choices(_KINDS, weights=_KIND_WEIGHTS)[0]
    if kind == "contrast":
        deciding = _clause(rng, label, negated=rng.random() < 0.25)
        other = _clause(rng, 1 - label, negated=rng.random() < 0.25)
        if rng.random() < 0.5:
            body = f"{other} but {deciding}"
        else:
            body = f"although {other} , {deciding}"
    else:
        body = _clause(rng, label, negated=kind == "negated")
    opener = rng.choice(_OPENERS)
    return f"{opener} {body} .".strip()


def _split(n: int, seed: int, name: str) -> pa.Table:
    rng = random.Random(f"temporal-ml-sentiment:{seed}:{name}")
    labels = [1] * (n - n // 2) + [0] * (n // 2)
    rng.shuffle(labels)
    sentences = [_sentence(rng, label) for label in labels]
    return pa.table(
        {"sentence": pa.array(sentences, pa.string()), "label": pa.array(labels, pa.int64())}
    )


def sentiment_dataset(n_train: int = 2000, n_dev: int = 400, seed: int = 0) -> dict[str, pa.Table]:
    """Generate the synthetic sentiment task (see the module docstring).

    Args:
        n_train: rows of the ``train`` split.
        n_dev: rows of the ``dev`` split.
        seed: the generator's seed; equal arguments give equal tables.

    Returns:
        ``{"train": table, "dev": table}``, each with columns ``sentence`` (string) and ``label``
        (int64: 0 negative, 1 positive).

    Raises:
        ConfigError: for a negative size.
    """
    if n_train < 0 or n_dev < 0:
        raise ConfigError(f"sizes must be non-negative, got n_train={n_train}, n_dev={n_dev}")
    return {"train": _split(n_train, seed, "train"), "dev": _split(n_dev, seed, "dev")}
