"""The shipped embedded models and tokenizer: they load, fit their tasks, and bad files are clear errors."""

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from harness.backbones.embedded import ASSETS, load_embedded, load_embedded_dir
from harness.engine.decoding import DecodeConfig, generate
from harness.errors import HarnessError
from harness.backbones.tokenizer import load_tokenizer
from harness.training.family_data import family_pairs, held_out_split
from harness.training.sft import validation_loss
from tasks import get_task
from tasks.names import CATEGORIES

DATA_DIR = os.environ.get("HARNESS_DATA_DIR") or str(Path(__file__).parents[2] / "shared" / "data")


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(ASSETS / "tokenizer")


@pytest.fixture(scope="module")
def sudoku():
    return load_embedded("sudoku")


def test_every_family_loads_with_the_shared_tokenizer(tokenizer):
    for family, task_name in (("math", "gsm8k"), ("sudoku", "sudoku4"), ("countdown", "countdown"), ("names", "names")):
        backbone = load_embedded(family)
        assert backbone.vocab_size == len(tokenizer) == backbone.model.embed_tokens.num_embeddings
        assert len({backbone.mask_id, backbone.eos_id, backbone.pad_id}) == 3
        task = get_task(task_name)
        assert task.family == family
        prompt = backbone.encode_chat(task.prompt(task.load("test", limit=1, data_dir=DATA_DIR)[0]))
        assert prompt[-1] == tokenizer.convert_tokens_to_ids("<|assistant|>")


def test_names_answer_words_are_single_tokens(tokenizer):
    for _, distribution in CATEGORIES.values():
        for name in distribution:
            first, second = name.split()
            assert tokenizer.tokenize(name) == [first, "Ġ" + second]


def test_sudoku_prompts_have_one_length_and_countdown_numbers_one_token_per_digit(tokenizer):
    lengths = set()
    for name in ("sudoku4", "sudoku4-open"):
        task = get_task(name)
        for split in ("train", "test"):
            for ex in task.load(split, limit=50):
                lengths.add(len(tokenizer.apply_chat_template(task.prompt(ex), add_generation_prompt=True)))
    assert len(lengths) == 1
    task = get_task("countdown")
    for ex in task.load("test", limit=50):
        tokens = tokenizer.tokenize(task.prompt(ex)[-1]["content"] + task.target(ex))
        assert all(len(t.lstrip("Ġ")) == 1 for t in tokens if t.lstrip("Ġ").isdigit())


def sudoku_batch(backbone, examples):
    """Prompts followed by the 16 masked answer cells, as decoding starts: (prompt ids, mask, x, attention)."""
    task = get_task("sudoku4")
    ids, mask = backbone.left_pad([backbone.encode_chat(task.prompt(ex)) for ex in examples])
    x = torch.cat([ids, torch.full((len(examples), task.gen_length), backbone.mask_id)], 1)
    attention = torch.cat([mask, torch.ones(len(examples), task.gen_length, dtype=torch.bool)], 1)
    return ids, mask, x, attention


def test_sudoku_model_logits_and_sequential_solves(sudoku):
    task = get_task("sudoku4")
    examples = task.load("test", limit=32)
    ids, mask, x, attention = sudoku_batch(sudoku, examples)
    logits = sudoku.logits(x, attention)
    assert logits.shape == (len(examples), x.shape[1], sudoku.vocab_size) and logits.dtype == torch.float32
    assert [len(region) for region in sudoku.model.config.grid_regions] == [16, 16]
    config = DecodeConfig(gen_length=16, steps=16, block_length=16)
    out = generate(sudoku, ids, mask, config, [torch.Generator().manual_seed(i) for i in range(len(examples))])
    solved = sum(task.score(sudoku.decode(row), ex).correct for row, ex in zip(out.tokens.tolist(), examples))
    assert solved >= 0.8 * len(examples)


def test_logits_at_a_span_are_the_full_logits_there_to_the_bit(sudoku):
    """The engine reads only the window's logits (`logits_at` skips the output head elsewhere):
    exactly the columns of the full pass, padding included, so decoding is unchanged."""
    _, _, x, attention = sudoku_batch(sudoku, get_task("sudoku4").load("test", limit=8))
    attention[0, :3] = False  # left padding in one row
    start = x.shape[1] - 16
    for span in (slice(start, start + 16), slice(start + 4, start + 8)):
        assert torch.equal(sudoku.logits_at(x, attention, span), sudoku.logits(x, attention)[:, span])


def test_bfloat16_backbone_gives_close_logits(sudoku):
    half = load_embedded("sudoku", dtype=torch.bfloat16)
    _, _, x, attention = sudoku_batch(sudoku, get_task("sudoku4").load("test", limit=8))
    full, low = sudoku.logits(x, attention), half.logits(x, attention)
    assert low.dtype == torch.float32
    assert (full - low).abs().max() < 0.05 * full.abs().max()
    assert (full.argmax(-1) == low.argmax(-1)).float().mean() > 0.95


def copy_model(tmp_path, family="names"):
    shutil.copytree(ASSETS / "tokenizer", tmp_path / "tokenizer")
    shutil.copytree(ASSETS / family, tmp_path / family)
    return tmp_path / family


def test_corrupt_or_missing_files_are_one_line_errors_naming_the_file(tmp_path):
    model_dir = copy_model(tmp_path)
    load_embedded_dir(model_dir)  # the intact copy loads
    weights = model_dir / "model.safetensors"
    data = weights.read_bytes()
    for broken in (b"not a safetensors file", data[: len(data) // 2]):
        weights.write_bytes(broken)
        with pytest.raises(HarnessError, match="model.safetensors") as err:
            load_embedded_dir(model_dir)
        assert "\n" not in str(err.value)
    weights.unlink()
    with pytest.raises(HarnessError, match="missing model weights .*model.safetensors"):
        load_embedded_dir(model_dir)
    (model_dir / "config.json").write_text("{not json")
    with pytest.raises(HarnessError, match="config.json"):
        load_embedded_dir(model_dir)
    with pytest.raises(HarnessError, match="shipped families: countdown, math, names, sudoku"):
        load_embedded("chess")


def test_math_model_reproduces_the_held_out_loss_its_compute_record_states():
    """The shipped weights are the ones `compute.json` describes: rebuilt from the recorded seed, the
    held-out split gives the recorded validation loss (in the recorded precision), so its curve and costs
    belong to it."""
    math = load_embedded("math")
    record = json.loads((ASSETS / "math" / "compute.json").read_text())
    val_pairs, train_pairs = held_out_split(family_pairs("math", math.tokenizer, DATA_DIR), seed=0)
    assert (len(val_pairs), len(train_pairs)) == (record["val_pairs"], record["train_pairs"])
    assert "--seed 0" in record["command"]
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=record["precision"] == "bfloat16"):
        loss = validation_loss(math.model, val_pairs, 32, math.mask_id, math.pad_id)
    assert loss == pytest.approx(record["val_loss"], rel=2e-3)
    assert record["val_curve"][-1]["val_loss"] == record["val_loss"]
