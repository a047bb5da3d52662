"""names: the CoDD paper's Fig. 1 toy, a prompt and a two-word name from a known distribution.

Each category has one fixed prompt and a fixed non-uniform distribution over
valid two-word names whose first words are shared across names ("New York",
"New Orleans", "San Diego", ...). A model that learns the distribution well
still mixes modes when it samples the two words independently ("San York"):
the invalid rate and the total-variation distance of the sampled names to the
true distribution measure the factorization barrier directly. Decode at
temperature 1: greedy decoding would hide the distribution.

Every example of a category has the same prompt, so a train/test split cannot
separate problems: both splits are i.i.d. draws from the true distribution
(with different seeds), and the test split is simply 2000 prompts to sample.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator

from tasks import Example, Score, register
from tasks.answer_rule import FLEXIBLE
from tasks.generated import GeneratedTask

# category -> (prompt, {name: probability}). Every word is a common capitalised
# word, so a tokenizer trained on this text gives each word one token.
CATEGORIES: dict[str, tuple[str, dict[str, float]]] = {
    "city": ("Name a US city.", {
        "New York": 0.30, "Los Angeles": 0.20, "San Francisco": 0.15, "New Orleans": 0.10,
        "Las Vegas": 0.10, "San Diego": 0.10, "San Jose": 0.05,
    }),
    "state": ("Name a US state with a two-word name.", {
        "New York": 0.25, "New Jersey": 0.15, "North Carolina": 0.15, "New Mexico": 0.10,
        "South Carolina": 0.10, "South Dakota": 0.10, "West Virginia": 0.10, "North Dakota": 0.05,
    }),
}


def read_name(completion: str) -> str:
    """The completion with surrounding whitespace stripped and inner runs of it made one space."""
    return " ".join(completion.split())


def tv_distance(sampled: Counter, true: dict[str, float]) -> float:
    """Total variation between the empirical distribution of `sampled` names and
    `true`; names outside the support (invalid ones) count with true mass 0."""
    total = sum(sampled.values())
    outcomes = sorted(set(sampled) | set(true))  # a fixed order: set order varies between processes
    return 0.5 * sum(abs(sampled[o] / total - true.get(o, 0.0)) for o in outcomes)


@register
class Names(GeneratedTask):
    name = "names"
    description = "The CoDD paper's toy: a two-word US city or state name, scored by validity and by TV distance to the true distribution"
    family = "names"
    gen_length = 2
    block_length = 2
    temperature = 1.0
    test_size = 2000

    def problem_key(self, ex: Example) -> None:
        return None

    def draws(self, split: str, rng: random.Random) -> Iterator[Example]:
        """Categories in turn, each example's reference a name drawn from the true distribution."""
        while True:
            for category, (prompt, distribution) in CATEGORIES.items():
                name = rng.choices(list(distribution), weights=list(distribution.values()))[0]
                yield Example(id="", question=prompt, reference=name, meta={"category": category})

    def score(self, completion: str, ex: Example, rule: str = FLEXIBLE) -> Score:
        """Correct iff the completion is one of the category's valid names."""
        category = ex.meta["category"]
        name = read_name(completion)
        return Score(correct=name in CATEGORIES[category][1], extracted=name, details={"category": category})

    def summarize(self, scores: list[Score]) -> dict:
        """Invalid rate and TV distance to the true distribution, per category and
        overall (the TV of each category weighted by its share of the samples)."""
        if not scores:
            return {}
        summary = {"invalid_rate": sum(not s.correct for s in scores) / len(scores), "tv_distance": 0.0}
        for category, (_, distribution) in CATEGORIES.items():
            mine = [s for s in scores if s.details["category"] == category]
            if not mine:
                continue
            tv = tv_distance(Counter(s.extracted for s in mine), distribution)
            summary[f"invalid_rate/{category}"] = sum(not s.correct for s in mine) / len(mine)
            summary[f"tv_distance/{category}"] = tv
            summary["tv_distance"] += tv * len(mine) / len(scores)
        return summary
