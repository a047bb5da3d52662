import json
import os
import random
from fractions import Fraction
from itertools import permutations, product
from pathlib import Path

import pytest
from transformers import PreTrainedTokenizerFast

from harness.backbones.embedded import ASSETS

from tasks.countdown import Countdown, evaluate, is_test_problem, problem_key, signed_sum

TRAIN_CHECKED = 5000


@pytest.fixture(scope="module")
def splits():
    task = Countdown()
    return task, task.load("test"), task.load("train", limit=TRAIN_CHECKED)


def make(numbers, target):
    return Countdown().example("x", numbers, target)


def brute_force_equation(numbers, target):
    """Some equation of the two shapes over all orders and operators that makes `target`, by
    Python's own arithmetic on Fractions (the reference the safe evaluator must agree with)."""
    for (a, b, c), (o1, o2) in product(permutations(numbers), product("+-*/", repeat=2)):
        for text in (f"({a}{o1}{b}){o2}{c}", f"{a}{o1}({b}{o2}{c})"):
            try:
                if eval(text.replace("/", "*Fraction(1)/"), {"Fraction": Fraction}) == target:
                    return text
            except ZeroDivisionError:
                pass
    return None


def test_scoring_accepts_right_equations_in_the_formats_a_model_writes():
    ex = make([12, 5, 3], 31)
    for completion in ("12*3-5", " 12*3-5 \n", "12 * 3 - 5 = 31", "because 12*3=36:\n(12*3)-5", "-5+12*3", "3*12-5=31"):
        score = Countdown().score(completion, ex)
        assert score.correct, completion
    assert Countdown().score("12*3-5 = 31", ex).extracted == "12*3-5"


def test_scoring_rejects_wrong_reused_missing_and_junk():
    task, ex = Countdown(), make([12, 5, 3], 31)
    for completion in (
        "12*3+5",            # wrong value
        "12*3-3",            # a number reused, another missing
        "12*3-5+3-3",        # extra numbers
        "36-5",              # numbers that were not given
        "12*(3-5)/(5-5)",    # division by zero
        "12**3-5",           # an operator that is not allowed
        "12//3-5",
        "12.0*3-5",          # not an integer literal
        "__import__('os').system('true')",
        "1_2*3-5",           # Python accepts the underscore; the game does not
        "(" * 200 + "12*3-5" + ")" * 200,
        "",
        "twelve times three",
    ):
        assert not task.score(completion, ex).correct, completion
    assert task.score("", ex).extracted is None
    # Each number once, but dividing by zero: wrong, not a crash.
    assert not task.score("7/(4-4)", make([4, 4, 7], 7)).correct
    assert task.score("7*(4/4)", make([4, 4, 7], 7)).correct


def test_evaluation_is_exact_not_floating_point():
    # 1/10*30 is 3.0000000000000004 in floats.
    assert evaluate("1/10*30") == (Fraction(3), [1, 10, 30])
    assert Countdown().score("1/10*30", make([30, 1, 10], 3)).correct


def test_evaluate_agrees_with_python_on_random_expressions():
    rng = random.Random(0)
    for _ in range(500):
        numbers = [rng.randint(1, 100) for _ in range(3)]
        ops = [rng.choice("+-*/") for _ in range(2)]
        a, b, c = numbers
        text = rng.choice([f"{a}{ops[0]}{b}{ops[1]}{c}", f"{a}{ops[0]}({b}{ops[1]}{c})", f"-({a}{ops[0]}{b}){ops[1]}{c}"])
        try:
            expected = eval(text.replace("/", "*Fraction(1)/"), {"Fraction": Fraction})
        except ZeroDivisionError:
            expected = None
        result = evaluate(text)
        assert (result and result[0]) == expected, text
        assert result is None or sorted(result[1]) == sorted(numbers)


def test_generated_problems_are_in_range_and_their_equations_score_correct(splits):
    task, test, train = splits
    for ex in test + train:
        numbers, target = ex.meta["numbers"], ex.meta["target"]
        assert len(numbers) == 3 and all(1 <= n <= 100 for n in numbers) and 1 <= target <= 100
        assert ex.reference == str(target) and ex.question == f"Using the numbers {', '.join(map(str, numbers))}, make {target}."
        assert task.score(task.target(ex), ex).correct
        assert " " not in task.target(ex) and len(task.target(ex)) <= task.gen_length


def test_signed_sums_keep_the_prompt_order_and_are_the_canonical_training_target(splits):
    assert signed_sum([30, 100, 93], 23) == "30-100+93"
    assert signed_sum([100, 30, 93], 23) == "-100+30+93"
    assert signed_sum([1, 2, 3], 6) == "1+2+3" and signed_sum([2, 3, 5], 4) == "2-3+5"
    assert signed_sum([2, 3, 7], 42) is None
    task, test, train = splits
    canonical = 0
    for ex in test + train:
        numbers, target = ex.meta["numbers"], ex.meta["target"]
        equation = task.target(ex).splitlines()[-1]
        sums = [sum(s * n for s, n in zip(signs, numbers)) for signs in product((1, -1), repeat=3)]
        if target in sums:
            # the numbers appear in the prompt's order, each once, joined by signs
            assert equation == signed_sum(numbers, target)
            assert [int(n) for n in equation.replace("-", "+").split("+") if n] == numbers
            canonical += 1
        else:
            assert signed_sum(numbers, target) is None and any(op in equation for op in "*/")
    assert 0.75 < canonical / len(test + train) < 0.9


def test_the_target_writes_above_its_equation_the_sums_that_decide_the_signs(splits):
    task, test, train = splits
    ex = task.example("x", [30, 100, 93], 23, "30-100+93")
    assert task.target(ex) == "100+093=193\n100-093=007\n023-030=-007\n023+030=053\n30-100+93"
    assert task.score(task.target(ex), ex).correct and task.score(task.target(ex), ex).extracted == "30-100+93"
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(ASSETS / "tokenizer"))
    for ex in test + train:
        target = task.target(ex)
        assert task.score(target, ex).correct
        *sums, equation = target.splitlines()
        for line in sums:
            x, op, y, right = line[:3], line[3], line[4:7], line[8:]
            assert int(x) + (int(y) if op == "+" else -int(y)) == int(right)
            # one layout for every problem: each digit of the sums at the same token offset
            assert len(tokenizer(line + "\n", add_special_tokens=False)["input_ids"]) == 12
        # the whole target fits the generation length, so training drops none of it
        assert len(tokenizer(target, add_special_tokens=False)["input_ids"]) <= task.gen_length


def test_splits_are_disjoint_by_problem_and_deterministic(splits):
    task, test, train = splits
    test_keys = {problem_key(ex.meta["numbers"], ex.meta["target"]) for ex in test}
    train_keys = {problem_key(ex.meta["numbers"], ex.meta["target"]) for ex in train}
    assert len(test_keys) == len(test) == 1000
    assert not test_keys & train_keys
    assert all(is_test_problem(*key) for key in test_keys)
    assert task.load("test", limit=10) == test[:10] and Countdown().load("train", limit=TRAIN_CHECKED) == train
    assert test[0].id == "countdown-test-00000"


def test_d1_items_are_solvable_and_our_scorer_agrees():
    data_dir = Path(os.environ.get("HARNESS_DATA_DIR", Path(__file__).parents[2] / "shared" / "data"))
    with open(data_dir / "d1" / "countdown_cd3_test.jsonl") as f:
        items = [json.loads(line) for line in f]
    task = Countdown()
    for item in items:
        ex = task.example("d1", [int(n) for n in item["input"].split(",")], int(item["output"]))
        equation = brute_force_equation(ex.meta["numbers"], ex.meta["target"])
        assert equation is not None and task.score(equation, ex).correct
    assert len(items) == 256
