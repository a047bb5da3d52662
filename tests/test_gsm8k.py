"""GSM8K: loading the real files, numeric answer extraction, and the scorer on every reference answer."""

import pytest

from harness.errors import HarnessError
from tasks.base import Example
from tasks.gsm8k import GSM8K

TASK = GSM8K()


def example(reference):
    return Example(id="x", question="q", reference=reference)


def test_loads_the_real_splits_with_stable_ids_and_clean_targets(data_dir):
    test = TASK.load("test", data_dir=data_dir)
    assert len(test) == 1319 and len(TASK.load("train", data_dir=data_dir)) == 7473
    assert [ex.id for ex in test[:2]] == ["gsm8k-test-00000", "gsm8k-test-00001"]
    assert test[0].reference == "18" and test[0].question.startswith("Janet")
    assert TASK.load("test", limit=3, data_dir=data_dir) == test[:3]
    references = {ex.reference for ex in test}
    assert {"-10", "-3", "2125"} <= references  # negatives kept, "2,125" without its comma
    for ex in test:
        assert "<<" not in ex.solution and ex.solution.endswith("\n#### " + ex.solution.split("#### ")[-1])
    assert test[0].solution == ("Janet sells 16 - 3 - 4 = 9 duck eggs a day.\n"
                                "She makes 9 * 2 = $18 every day at the farmer\u2019s market.\n#### 18")


def test_every_reference_answer_scores_correct(data_dir):
    for split in ("test", "train"):
        for ex in TASK.load(split, data_dir=data_dir):
            score = TASK.score(ex.solution, ex)
            assert score.correct and score.details["well_formed"], ex.id


@pytest.mark.parametrize("completion, well_formed", [
    ("She pays 3 * 4 = 12 dollars.\n#### 12", True),
    ("Total: 1,250 - 50 = 1,200\n#### 1,200\n\n", True),      # trailing blank lines are padding
    ("He is 5 - 8 = -3 degrees.\n#### -3", True),
    ("#### 12\nShe pays 12 dollars.", False),                     # the answer line must close the solution
    ("She pays 12 dollars.", False),                               # an answer, but not a solution's layout
    ("She pays 3 * 4 = 12 dollars.\n#### twelve", False),         # no number on the answer line
    ("#### 12 #### 12", False),
    ("", False),
])
def test_well_formed_means_a_closing_answer_line(completion, well_formed):
    assert TASK.score(completion, example("12")).details["well_formed"] is well_formed


def test_summary_is_the_well_formed_share_with_its_interval():
    scores = [TASK.score(text, example("12")) for text in ["a\n#### 12", "#### 7", "12", "none"]]
    summary = TASK.summarize(scores)
    assert summary["well_formed"] == 0.5
    assert summary["well_formed/ci_low"] < 0.5 < summary["well_formed/ci_high"]
    assert TASK.summarize([]) == {}


def test_bad_split_limit_and_gold_are_clear_errors(tmp_path):
    with pytest.raises(HarnessError, match="valid splits: train, test"):
        TASK.load("validation", data_dir=tmp_path)
    with pytest.raises(HarnessError, match="positive"):
        TASK.load("test", limit=0, data_dir=tmp_path)
    (tmp_path / "gsm8k").mkdir()
    (tmp_path / "gsm8k" / "test.jsonl").write_text('{"question": "q", "answer": "no final line"}\n')
    with pytest.raises(HarnessError, match=r"gsm8k/test.jsonl record 1: .*####"):
        TASK.load("test", data_dir=tmp_path)


EXTRACTION = [
    # (completion, extracted, reference, correct)
    ("She makes 9 * 2 = $18 every day.\n#### 18", "18", "18", True),
    ("#### 1,234", "1234", "1234", True),
    ("The total is $1,234.", "1234", "1234", True),
    ("The answer is 5.0", "5.0", "5", True),
    ("It costs $0.50 each, so 2.50 in total", "2.50", "2.5", True),
    ("She has 18 dollars left.", "18", "18", True),
    ("The temperature drops to -3 degrees.", "-3", "-3", True),
    ("The temperature drops to -3 degrees.", "-3", "3", False),
    ("#### -10", "-10", "-10", True),
    ("He loses -$5 overall", "-5", "-5", True),
    ("First 3 apples, then 4 pears, finally 12 fruits", "12", "12", True),
    ("First 3 apples, then 4 pears, finally 12 fruits", "12", "3", False),
    ("So the answer is \\boxed{42}. Check: 6 * 7 = 42, and 1 more is 43", "42", "42", True),
    ("\\boxed{\\$1,000} dollars, not 900", "1000", "1000", True),
    ("\\boxed{3} then \\boxed{18 \\text{ dollars}}", "18", "18", True),
    ("#### 7\nand the box says \\boxed{8}", "7", "7", True),
    ("#### 7\nlater text #### 9", "7", "7", True),
    ("5-3=2", "2", "2", True),
    ("a 3-year-old and a 5-year-old", "5", "5", True),
    ("12 pieces...", "12", "12", True),
    ("The counts were 7,12", "12", "12", True),  # a comma outside groups of three separates numbers
    ("I do not know.", None, "5", False),
    ("", None, "0", False),
    ("\\boxed{x} but 4 earlier", "4", "4", True),
]


@pytest.mark.parametrize("completion, extracted, reference, correct", EXTRACTION)
def test_extraction_and_numeric_comparison(completion, extracted, reference, correct):
    score = TASK.score(completion, example(reference))
    assert (score.extracted, score.correct) == (extracted, correct)


# Edge cases from graded model solutions (issue 14). Each verdict follows from the problem and what
# the completion states as its answer, not from what the scorer happens to return.
EDGE_CASES = [
    # (completion, reference, extracted, correct, answer_from)
    # "The temperature is 3 degrees and falls by 8; what is it now?" 3 - 8 = -5, written with
    # LaTeX's Unicode minus: the answer is -5, so it matches gold -5 and not gold 5.
    ("3 \u2212 8 = \u22125 degrees", "-5", "-5", True, "last number"),
    ("3 \u2212 8 = \u22125 degrees", "5", "-5", False, "last number"),
    ("#### \u221212", "-12", "-12", True, "####"),
    # "How many friends share the pizza?" (gold 5): the completion answers that each gets 1/5 of
    # it, a fifth and not five; the same holds for 2/3 against gold 3.
    ("So each friend gets 1/5 of the pizza.", "5", "1/5", False, "last number"),
    ("She drinks \\frac{2}{3} of the bottle.", "3", "2/3", False, "last number"),
    ("She drinks -\\frac{2}{3} litres net.", "3", "-2/3", False, "last number"),
    # A fraction or decimal that equals the gold is the gold: 12/4 is 3, 15/2 is 7.5 (not 7).
    ("\\boxed{\\dfrac{12}{4}}", "3", "12/4", True, "box"),
    ("#### 15/2", "7", "15/2", False, "####"),
    ("It is 0.5 of the total.", "5", "0.5", False, "last number"),
    # GSM8K test item "Jasmine gets off of work at 4:00 pm ..." has gold 7 and its own solution
    # ends "4+3 = 7:00 pm": a clock time is its hour; 7:30 pm is half an hour later, not 7.
    ("she won't eat until 4+3 = 7:00 pm", "7", "7:00", True, "last number"),
    ("\\boxed{7:30 p.m.}", "7", "7:30", False, "box"),
    # Gold 0 ("how many are left?"): "2:00 pm" says two o'clock, not zero (the old reading was "00").
    ("They finish at 2:00 pm", "0", "2:00", False, "last number"),
    # A ratio is not a number: no answer, not its last digit (gold 2 would otherwise match).
    ("The ratio of boys to girls is 3:2", "2", None, False, "last number"),
    # Empty, placeholder and unclosed boxes carry no answer of their own; the flexible rule falls
    # back to the last number written ("She has 12 apples", gold 12).
    ("She has 12 apples. \\boxed{}", "12", "12", True, "last number"),
    ("She has 12 apples. \\boxed{...}", "12", "12", True, "last number"),
    ("She has 12 apples. \\boxed{x}", "12", "12", True, "last number"),
    ("She has 12 apples, so \\boxed{12", "12", "12", True, "last number"),
    ("Nothing to say.", "12", None, False, None),
]


@pytest.mark.parametrize("completion, reference, extracted, correct, answer_from", EDGE_CASES)
def test_edge_cases_are_read_as_their_value(completion, reference, extracted, correct, answer_from):
    score = TASK.score(completion, example(reference))
    assert (score.extracted, score.correct, score.details["answer_from"]) == (extracted, correct, answer_from)
