"""Training the embedded model: tokenizer, LLaDA SFT loss, resumable loop, grid layout, `train` command."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

from harness.backbones.embedded import load_embedded_dir
from harness.backbones.transformer import MaskedDiffusionTransformer, TransformerConfig
from harness.cli import main as cli
from harness.commands.train import TOKENIZER_DIR
from harness.errors import HarnessError
from harness.report.compute import validation_curve
from harness.training.grid_layout import grid_regions
from harness.training.pairs import Pair, collate, make_pair
from harness.training.sft import EPS, BlockLayout, TrainConfig, sft_loss, train, validation_loss
from harness.backbones.tokenizer import EOS, MASK, PAD, load_tokenizer
from harness.training.tokenizer import train_tokenizer
from tasks import get_task

MASK_ID, EOS_ID, PAD_ID = 0, 1, 2
VOCAB = 24


def copy_pairs(n, seed):
    """Synthetic pairs (tokens 3-6) whose response is the prompt shifted by one, padded with EOS."""
    g = torch.Generator().manual_seed(seed)
    pairs = []
    for _ in range(n):
        prompt = torch.randint(3, 7, (int(torch.randint(3, 6, (1,), generator=g)),), generator=g).tolist()
        pairs.append(make_pair(prompt, [t + 1 for t in prompt], 6, EOS_ID))
    return pairs


def tiny_config():
    return TransformerConfig(vocab_size=VOCAB, n_layer=1, n_head=2, d_model=32)


def test_tokenizer_has_single_digits_special_tokens_and_a_generation_prompt(tmp_path):
    text = ["Solve 1234 + 56 = 1290.", "The answer is 42.", "New York and San Diego"] * 50
    train_tokenizer(text, 300).save_pretrained(str(tmp_path))
    tok = load_tokenizer(tmp_path)
    assert tok.tokenize("12345") == list("12345")
    ids = {tok.mask_token_id, tok.eos_token_id, tok.pad_token_id}
    assert len(ids) == 3 and tok.convert_ids_to_tokens(sorted(ids)) == sorted([MASK, EOS, PAD], key=tok.convert_tokens_to_ids)
    prompt = tok.apply_chat_template([{"role": "system", "content": "Be brief."},
                                      {"role": "user", "content": "Add 1 and 2."}], add_generation_prompt=True)
    assert tok.convert_ids_to_tokens(prompt[-1]) == "<|assistant|>"
    assert tok.decode(prompt) == "<|system|>Be brief.<|user|>Add 1 and 2.<|assistant|>"
    answer = tok("It is 3.", add_special_tokens=False)["input_ids"]
    whole = tok(tok.decode(prompt) + "It is 3.", add_special_tokens=False)["input_ids"]
    assert whole == prompt + answer  # the answer tokenizes the same after the prompt as alone
    with pytest.raises(HarnessError, match="tokenizer"):
        load_tokenizer(tmp_path / "missing")


def test_pairs_pad_with_eos_and_collate_left_pads_with_responses_at_the_end():
    assert make_pair([5, 6], [7, 8, 9], 5, EOS_ID) == Pair((5, 6), (7, 8, 9, EOS_ID, EOS_ID))
    assert make_pair([5, 6], [7, 8, 9], 2, EOS_ID) is None
    ids, attention, response = collate([Pair((5,), (7, 1)), Pair((5, 6, 6), (8, 1))], PAD_ID)
    assert ids.tolist() == [[PAD_ID, PAD_ID, 5, 7, 1], [5, 6, 6, 8, 1]]
    assert attention.tolist() == [[False, False, True, True, True], [True] * 5]
    assert response.tolist() == [[False, False, False, True, True], [False, False, False, True, True]]


def test_sft_loss_is_llada_objective_restated_per_sequence():
    torch.manual_seed(0)
    model = MaskedDiffusionTransformer(tiny_config()).eval()
    pairs = copy_pairs(5, seed=1)
    ids, attention, response = collate(pairs, PAD_ID)
    loss = sft_loss(model, ids, attention, response, MASK_ID, torch.Generator().manual_seed(7))

    g = torch.Generator().manual_seed(7)  # the same draws, in the same order
    t = EPS + (1 - EPS) * torch.rand((len(pairs), 1), generator=g)
    u = torch.rand(ids.shape, generator=g)
    total = 0.0
    for b in range(len(pairs)):
        noisy = ids[b].clone()
        masked = [i for i in range(ids.shape[1]) if response[b, i] and u[b, i] < t[b, 0]]
        noisy[masked] = MASK_ID
        log_p = F.log_softmax(model(noisy[None], attention[b][None])[0], -1)
        total += sum(-log_p[i, ids[b, i]].item() for i in masked) / t[b, 0].item() / len(pairs[b].response)
    assert loss.item() == pytest.approx(total / len(pairs), rel=1e-5)


def test_block_layout_is_the_decoders_state_restated_per_sequence():
    """Share 1: every sequence shows a clean prefix, block k partly masked and the rest masked, k among the
    blocks up to the one holding the first EOS, and is scored on the block's masked tokens only."""
    torch.manual_seed(0)
    model = MaskedDiffusionTransformer(tiny_config()).eval()
    pairs = [make_pair([3, 4, 5], [4, 5, 6, 4, 5], 8, EOS_ID), make_pair([3], [4] * 8, 8, EOS_ID),
             make_pair([5, 6], [6], 8, EOS_ID)]
    ids, attention, response = collate(pairs, PAD_ID)
    blocks = BlockLayout(share=1.0, length=2, eos_id=EOS_ID)
    start = ids.shape[1] - 8
    seen = [set() for _ in pairs]
    for seed in range(40):
        loss = sft_loss(model, ids, attention, response, MASK_ID, torch.Generator().manual_seed(seed), blocks)
        g = torch.Generator().manual_seed(seed)  # the same draws, in the same order
        t = EPS + (1 - EPS) * torch.rand((len(pairs), 1), generator=g)
        u = torch.rand(ids.shape, generator=g)
        assert (torch.rand((len(pairs), 1), generator=g) < 1).all()
        picks = torch.rand((len(pairs), 1), generator=g)
        total = 0.0
        for b, pair in enumerate(pairs):
            first_eos = pair.response.index(EOS_ID) if EOS_ID in pair.response else 8
            block = int(picks[b, 0] * min(first_eos // 2 + 1, 4))
            seen[b].add(block)
            in_block = range(start + 2 * block, start + 2 * block + 2)
            scored = [i for i in in_block if u[b, i] < t[b, 0]]
            noisy = ids[b].clone()
            noisy[scored] = MASK_ID
            noisy[start + 2 * block + 2:] = MASK_ID
            log_p = F.log_softmax(model(noisy[None], attention[b][None])[0], -1)
            total += sum(-log_p[i, ids[b, i]].item() for i in scored) / t[b, 0].item() / 2
        assert loss.item() == pytest.approx(total / len(pairs), rel=1e-5)
    # EOS at offset 5 (block 2), none (all 4 blocks), at offset 1 (block 0): no block after the first EOS's
    assert seen == [{0, 1, 2}, {0, 1, 2, 3}, {0}]


def test_block_layout_share_zero_is_llada_loss():
    model = MaskedDiffusionTransformer(tiny_config()).eval()
    ids, attention, response = collate(copy_pairs(6, seed=4), PAD_ID)
    plain = sft_loss(model, ids, attention, response, MASK_ID, torch.Generator().manual_seed(3))
    zero = sft_loss(model, ids, attention, response, MASK_ID, torch.Generator().manual_seed(3),
                    BlockLayout(share=0.0, length=2, eos_id=EOS_ID))
    assert zero.item() == plain.item()


def test_training_lowers_validation_loss_and_resumes_exactly(tmp_path):
    train_pairs, val_pairs = copy_pairs(200, seed=2), copy_pairs(32, seed=3)
    config = TrainConfig(steps=40, batch_size=16, lr=1e-2, seed=0, checkpoint_every=15, warmup_steps=5)
    torch.manual_seed(0)
    untrained = validation_loss(MaskedDiffusionTransformer(tiny_config()).eval(), val_pairs, 16, MASK_ID, PAD_ID)

    straight = train(tiny_config(), config, train_pairs, val_pairs, tmp_path / "a", MASK_ID, PAD_ID)
    assert straight.val_loss < 0.7 * untrained

    def kill_at_step_20(state, loss):
        if state.step == 20:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(), config, train_pairs, val_pairs, tmp_path / "b", MASK_ID, PAD_ID, on_step=kill_at_step_20)
    resumed = train(tiny_config(), config, train_pairs, val_pairs, tmp_path / "b", MASK_ID, PAD_ID)
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert resumed.tokens == straight.tokens

    with pytest.raises(HarnessError, match="lr"):
        train(tiny_config(), TrainConfig(**{**config.__dict__, "lr": 0.5}), train_pairs, val_pairs,
              tmp_path / "b", MASK_ID, PAD_ID)


def test_time_limited_chunks_end_where_one_run_ends_and_keep_the_validation_curve(tmp_path):
    train_pairs, val_pairs = copy_pairs(100, seed=4), copy_pairs(16, seed=5)
    config = TrainConfig(steps=12, batch_size=8, lr=1e-2, seed=0, checkpoint_every=4, warmup_steps=2,
                         autocast_bf16=True)
    straight = train(tiny_config(), config, train_pairs, val_pairs, tmp_path / "a", MASK_ID, PAD_ID)
    calls = 0
    while True:  # max_seconds=0: every call stops after one step
        calls += 1
        chunked = train(tiny_config(), config, train_pairs, val_pairs, tmp_path / "b", MASK_ID, PAD_ID, max_seconds=0)
        if chunked.step == config.steps:
            break
    assert calls == config.steps
    for (name, a), b in zip(straight.model.state_dict().items(), chunked.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert [point["step"] for point in chunked.curve] == [4, 8, 12]
    assert [point["val_loss"] for point in chunked.curve] == [point["val_loss"] for point in straight.curve]
    assert chunked.curve[-1]["val_loss"] < chunked.curve[0]["val_loss"]


def test_grid_regions_point_at_the_puzzle_and_answer_digits():
    tok = load_tokenizer(TOKENIZER_DIR)
    pairs, grids = [], []
    for name in ("sudoku4", "sudoku4-open"):
        task = get_task(name)
        for ex in task.load("train", limit=20):
            prompt = tok.apply_chat_template(task.prompt(ex), add_generation_prompt=True)
            pairs.append(make_pair(prompt, tok(task.target(ex), add_special_tokens=False)["input_ids"],
                                   task.gen_length, tok.eos_token_id))
            grids.append((ex.meta["puzzle"], task.target(ex)))
    puzzle_offsets, answer_offsets = grid_regions(pairs, tok)
    for pair, (puzzle, answer) in zip(pairs, grids):
        sequence = pair.prompt + pair.response
        assert tok.decode([sequence[-o] for o in puzzle_offsets]) == puzzle
        assert tok.decode([sequence[-o] for o in answer_offsets]) == answer
    extra = tuple(tok("x", add_special_tokens=False)["input_ids"])
    shifted = Pair(pairs[0].prompt[:-1] + extra + pairs[0].prompt[-1:], pairs[0].response)
    with pytest.raises(HarnessError, match="grid layout"):
        grid_regions(pairs + [shifted], tok)


def test_train_command_exports_a_loadable_model_and_its_compute_record(tmp_path, capsys):
    out = tmp_path / "names"
    command = ["train", "--family", "names", "--steps", "3", "--batch-size", "8", "--layers", "1", "--heads", "2",
               "--dim", "16", "--checkpoint-every", "2", "--out", str(out), "--quiet"]
    # A chunk that ends before the first validation, then one that finishes the run.
    assert cli(command + ["--max-minutes", "1e-9"]) == 0
    assert "stopped at step 1 of 3" in capsys.readouterr().out and not (out / "compute.json").exists()
    assert cli(command + ["--max-minutes", "1e-9"]) == 0
    assert cli(command) == 0
    backbone = load_embedded_dir(out)
    assert backbone.model.config.d_model == 16 and backbone.name == "embedded-names"
    record = json.loads((out / "compute.json").read_text())
    assert record["kind"] == "model" and record["task"] == "names" and record["steps"] == 3
    assert record["device_hours"] == pytest.approx(record["wall_seconds"] * record["device_count"] / 3600, rel=1e-3)
    assert record["trainable_params"] == backbone.model.num_params()
    assert record["flops_estimate"] == 6 * record["trainable_params"] * record["tokens"]
    assert record["command"].startswith("python -m harness train --family names") and "--dim 16" in record["command"]
    assert math.isfinite(record["val_loss"])
    assert [point["step"] for point in record["val_curve"]] == [2, 3]
    assert not (out / "checkpoint.pt").exists()


def test_train_init_from_continues_an_exported_model_and_counts_both_runs(tmp_path, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    tiny = ["--family", "names", "--batch-size", "8", "--quiet"]
    assert cli(["train", *tiny, "--steps", "3", "--layers", "1", "--heads", "2", "--dim", "16", "--out", str(first)]) == 0
    # A learning rate too small to move the weights: the continued model is the first one, not a new draw.
    assert cli(["train", *tiny, "--steps", "2", "--lr", "1e-9", "--init-from", str(first), "--out", str(second)]) == 0
    before, after = load_embedded_dir(first).model.state_dict(), load_embedded_dir(second).model.state_dict()
    for name in before:
        assert torch.allclose(before[name], after[name], atol=1e-3), name
    records = [json.loads((out / "compute.json").read_text()) for out in (first, second)]
    assert records[1]["steps"] == 5 and records[1]["tokens"] > records[0]["tokens"]
    assert records[1]["wall_seconds"] == pytest.approx(sum(s["wall_seconds"] for s in records[1]["stages"]))
    assert [s["steps"] for s in records[1]["stages"]] == [3, 2]
    assert "--init-from" in records[1]["command"]
    # The loss-vs-compute curve chains the stages: the second run's points come after all of the first's hours.
    first_curve, curve = validation_curve(records[0]), validation_curve(records[1])
    assert len(first_curve) == 1 and curve[0] == first_curve[0] and len(curve) == 2
    assert curve[1][0] > records[0]["device_hours"] and curve[1][1] == records[1]["val_loss"]

    assert cli(["train", *tiny, "--steps", "2", "--dim", "32", "--init-from", str(first), "--out", str(tmp_path / "x")]) == 2
    assert "--dim 32 differs from the --init-from model's 16" in capsys.readouterr().err


def test_a_continued_run_draws_other_batches_than_the_run_it_continues(tmp_path):
    train_pairs, val_pairs = copy_pairs(100, seed=6), copy_pairs(16, seed=7)
    torch.manual_seed(0)
    start = MaskedDiffusionTransformer(tiny_config()).state_dict()
    config = TrainConfig(steps=3, batch_size=8, lr=1e-2, seed=0, warmup_steps=1)
    replayed = train(tiny_config(), config, train_pairs, val_pairs, tmp_path / "a", MASK_ID, PAD_ID, init_weights=start)
    again = train(tiny_config(), config, train_pairs, val_pairs, tmp_path / "b", MASK_ID, PAD_ID, init_weights=start)
    continued = train(tiny_config(), TrainConfig(**{**config.__dict__, "stage": 1}), train_pairs, val_pairs,
                      tmp_path / "c", MASK_ID, PAD_ID, init_weights=start)
    assert replayed.tokens == again.tokens  # same stage, same draws
    assert any(not torch.equal(a, b) for a, b in zip(replayed.model.state_dict().values(),
                                                     continued.model.state_dict().values()))
