"""A plug-in as another package would write one: a task and a sampler that register themselves on import,
touching nothing in the core (tests/test_registry.py runs them through `run`)."""

from dataclasses import replace

from harness.engine.decoding import generate
from harness.engine.sampler import Sampler, register_sampler
from tasks import Example, Score, Task, register
from tasks.answer_rule import FLEXIBLE
from tasks.names import CATEGORIES, read_name


@register
class Cities(Task):
    name = "test-cities"
    description = "a US city, decoded by the embedded names model; correct if it is one"
    family = "names"
    gen_length = 2
    block_length = 2
    splits = ("test",)

    def load(self, split="test", limit=None, data_dir=None) -> list[Example]:
        self.check_load_args(split, limit)
        prompt, names = CATEGORIES["city"]
        return [Example(f"city-{i}", prompt, "any city") for i in range(limit or 4)]

    def score(self, completion: str, ex: Example, rule: str = FLEXIBLE) -> Score:
        name = read_name(completion)
        return Score(name in CATEGORIES["city"][1], name)


@register_sampler
class Greedy(Sampler):
    name = "test-greedy"
    description = "factorized decoding at temperature 0, whatever the task asks for"

    def generate(self, backbone, prompt_ids, attention_mask, config, generators):
        return generate(backbone, prompt_ids, attention_mask, replace(config, temperature=0.0), generators)
