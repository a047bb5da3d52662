"""The decoding engine: schedules, remasking rules, sampling, per-row randomness, early stop,
classifier-free guidance, Dream's shifted logits, the proposal hook and the two baseline samplers."""

import math
from dataclasses import replace

import pytest
import torch

from harness.backbones.base import Backbone
from harness.engine.decoding import DecodeConfig, Proposal, block_schedule, filter_logits, full_schedule, generate
from harness.errors import HarnessError
from harness.engine.remasking import entropy, low_confidence, margin, topprob
from harness.engine.sampler import get_sampler
from tiny_backbone import TinyBackbone


class Recorder(Proposal):
    """An identity proposal that keeps what the engine showed it at each step."""

    def __init__(self):
        self.calls = []

    def __call__(self, logits, tokens, generators):
        self.calls.append((logits.clone(), tokens.clone()))
        return logits


def prompts(backbone, lengths, seed=0):
    """Random left-padded prompts of the given lengths, and each one unpadded."""
    g = torch.Generator().manual_seed(seed)
    rows = [torch.randint(0, backbone.pad_id, (n,), generator=g).tolist() for n in lengths]
    ids, mask = backbone.left_pad(rows)
    return ids, mask, rows


def generators(seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


def decode(backbone, ids, mask, config, seeds=None, proposal=None):
    return generate(backbone, ids, mask, config, generators(seeds or range(len(ids))), proposal)


# ---- schedules -------------------------------------------------------------------------------


def test_block_schedule_spreads_masks_evenly_largest_steps_first():
    masks = torch.arange(1, 41)
    for steps in range(1, 41):
        counts = block_schedule(masks, steps)
        assert torch.equal(counts.sum(1), masks)
        assert (counts.max(1).values - counts.min(1).values <= 1).all()
        assert (counts[:, :-1] >= counts[:, 1:]).all()  # the extra tokens go to the first steps


def test_full_schedule_follows_the_timesteps_and_commits_everything():
    for length in (1, 7, 32, 100, 256):
        for steps in sorted({1, 2, 3, length // 4 or 1, length // 2 or 1, length}):
            counts = full_schedule(torch.tensor([length]), steps, 1e-3)[0].tolist()
            assert sum(counts) == length and min(counts) >= 0
            t = [1 - i * (1 - 1e-3) / steps for i in range(steps + 1)]
            left = length
            for i, k in enumerate(counts[:-1]):
                exact = left * (1 - t[i + 1] / t[i])
                assert exact - 1 - 1e-4 < k <= exact + 1e-4  # its floor, up to float32 rounding
                left -= k


@pytest.mark.parametrize("mode,gen_length,block_length,steps", [
    ("block", 24, 8, 9), ("block", 16, 16, 5), ("full", 24, 24, 7), ("full", 16, 16, 16)])
def test_each_step_commits_what_the_schedule_says(mode, gen_length, block_length, steps):
    backbone = TinyBackbone()
    ids, mask, _ = prompts(backbone, [4, 6])
    config = DecodeConfig(gen_length, steps, block_length, mode=mode, temperature=0.8, early_stop=False)
    recorder = Recorder()
    out = decode(backbone, ids, mask, config, proposal=recorder)
    windows = gen_length // block_length if mode == "block" else 1
    per_window = steps // windows
    width = block_length if mode == "block" else gen_length
    schedule = (block_schedule(torch.tensor([width] * 2), per_window) if mode == "block"
                else full_schedule(torch.tensor([width] * 2), per_window, config.eps))
    active_steps = int((schedule[0] > 0).sum())  # a step that commits nothing skips the forward pass
    assert len(recorder.calls) == windows * active_steps
    assert out.nfe == [windows * active_steps] * 2
    masks = [(tokens == backbone.mask_id).sum(1) for _, tokens in recorder.calls]
    for w in range(windows):
        seen = masks[w * active_steps:(w + 1) * active_steps] + [torch.zeros(2, dtype=torch.long)]
        committed = torch.stack([seen[i] - seen[i + 1] for i in range(active_steps)], 1)
        assert torch.equal(committed, schedule[:, schedule[0] > 0])
    assert not (out.tokens == backbone.mask_id).any()


# ---- remasking rules, candidates and sampling -------------------------------------------------


def test_confidence_rules_by_hand():
    probs = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [0.6, 0.0, 0.4]], dtype=torch.float64)
    candidates = torch.tensor([1, 2, 0])
    assert torch.allclose(low_confidence(probs, candidates), torch.tensor([0.3, 0.8, 0.6], dtype=torch.float64))
    assert torch.allclose(margin(probs, candidates), torch.tensor([0.2, 0.7, 0.2], dtype=torch.float64))
    assert torch.allclose(topprob(probs, candidates), torch.tensor([0.5, 0.8, 0.6], dtype=torch.float64))
    by_hand = [0.5 * math.log(0.5) + 0.3 * math.log(0.3) + 0.2 * math.log(0.2),
               2 * 0.1 * math.log(0.1) + 0.8 * math.log(0.8),
               0.6 * math.log(0.6) + 0.4 * math.log(0.4)]  # 0 log 0 = 0
    assert torch.allclose(entropy(probs, candidates), torch.tensor(by_hand, dtype=torch.float64))


def _nucleus_by_hand(scores, top_p):
    """Tokens in decreasing probability, kept until the mass ranked above them exceeds top_p."""
    probs = scores.softmax(-1)
    kept, mass = set(), 0.0
    for token in probs.argsort(descending=True).tolist():
        if mass > top_p:
            break
        kept.add(token)
        mass += probs[token].item()
    return kept


def test_filter_keeps_dreams_nucleus_and_top_k():
    g = torch.Generator().manual_seed(0)
    # Small and large vocabularies, peaked and flat distributions (a nucleus of hundreds of tokens).
    sizes = set()
    for vocab, spread in ((9, 2.0), (300, 4.0), (300, 0.2)):
        scores = torch.randn(40, vocab, generator=g, dtype=torch.float64) * spread
        for top_p in (0.05, 0.3, 0.7, 0.95):
            kept = filter_logits(scores, None, top_p) > -math.inf
            for row in range(len(scores)):
                assert set(kept[row].nonzero().squeeze(1).tolist()) == _nucleus_by_hand(scores[row], top_p)
            sizes.update(kept.sum(1).tolist())
    assert max(sizes) > 64  # the nucleus outgrew the first ranking
    scores = torch.randn(200, 9, generator=g, dtype=torch.float64)
    for top_k in (1, 3, 9, 20):
        kept = filter_logits(scores, top_k, None) > -math.inf
        assert (kept.sum(1) == min(top_k, 9)).all()
        lowest_kept = scores.masked_fill(~kept, math.inf).min(1).values
        assert (lowest_kept >= scores.masked_fill(kept, -math.inf).max(1).values).all()


@pytest.mark.parametrize("mode,remasking,temperature", [
    ("full", "low_confidence", 0.0), ("full", "margin", 0.0), ("full", "entropy", 0.0), ("full", "topprob", 0.0),
    ("block", "margin", 0.0), ("block", "entropy", 0.0),
    # Dream reads confidences off the tempered distribution; LLaDA off the raw one.
    ("full", "margin", 0.5), ("full", "entropy", 0.5), ("full", "topprob", 2.0), ("block", "topprob", 2.0)])
def test_commits_the_most_confident_positions_under_the_rule(mode, remasking, temperature):
    backbone = TinyBackbone(vocab_size=16, seed=3)
    ids, mask, _ = prompts(backbone, [5])
    config = DecodeConfig(gen_length=24, steps=6, block_length=12, mode=mode, temperature=temperature,
                          remasking=remasking, early_stop=False)
    recorder = Recorder()
    out = decode(backbone, ids, mask, config, proposal=recorder)
    rule = {"low_confidence": low_confidence, "margin": margin, "entropy": entropy, "topprob": topprob}[remasking]
    finals = out.tokens.view(-1, len(recorder.calls[0][1][0]))  # each window's final state
    per_window = len(recorder.calls) // len(finals)
    for i, (logits, before) in enumerate(recorder.calls):
        last = (i + 1) % per_window == 0
        after = finals[i // per_window] if last else recorder.calls[i + 1][1][0]
        before = before[0]
        masked = before == backbone.mask_id
        scale = temperature if mode == "full" and temperature > 0 else 1.0
        probs = (logits[0][masked].double() / scale).softmax(-1)
        candidates = probs.argmax(-1)
        confidence = rule(probs, candidates)
        committed = masked & (after != backbone.mask_id)
        k = int(committed.sum())
        assert k > 0
        expected = masked.nonzero().squeeze(1)[confidence.topk(k).indices]
        assert set(committed.nonzero().squeeze(1).tolist()) == set(expected.tolist())
        if temperature == 0:
            assert torch.equal(after[masked & committed], candidates[committed[masked]])


@pytest.mark.parametrize("mode,top_p", [("block", None), ("full", None), ("full", 0.6)])
def test_candidates_are_samples_of_the_tempered_distribution(mode, top_p):
    """One masked position, many rows: the committed tokens follow softmax(logits / T),
    restricted to the nucleus when top-p is set."""
    backbone, rows, temperature = TinyBackbone(vocab_size=10, seed=1), 20000, 0.7
    ids = torch.tensor([[1, 2, 3]]).expand(rows, 3)
    config = DecodeConfig(gen_length=1, steps=1, block_length=1, mode=mode, temperature=temperature,
                          top_p=top_p, early_stop=False)
    out = decode(backbone, ids, torch.ones_like(ids, dtype=torch.bool), config)
    x = torch.cat([ids[:1], torch.tensor([[backbone.mask_id]])], 1)
    target = filter_logits(backbone.logits(x)[0, -1:].double() / temperature, None, top_p).softmax(-1)[0]
    frequencies = torch.bincount(out.tokens[:, 0], minlength=10).double() / rows
    assert (frequencies[target == 0] == 0).all()
    assert 0.5 * (frequencies - target).abs().sum() < 0.02


def test_greedy_decoding_is_deterministic_and_ignores_the_seed():
    backbone = TinyBackbone()
    ids, mask, _ = prompts(backbone, [3, 5, 4])
    config = DecodeConfig(gen_length=16, steps=8, block_length=8)
    assert torch.equal(decode(backbone, ids, mask, config, [0, 1, 2]).tokens,
                       decode(backbone, ids, mask, config, [7, 8, 9]).tokens)


# ---- per-row randomness, padding, early stop ---------------------------------------------------


@pytest.mark.parametrize("mode,remasking", [("block", "random"), ("full", "random"), ("block", "low_confidence"),
                                            ("full", "entropy")])
def test_a_row_decodes_the_same_alone_as_in_a_batch(mode, remasking):
    backbone = TinyBackbone(seed=2, eos_bias=1.0)
    ids, mask, rows = prompts(backbone, [3, 7, 5, 4])
    seeds = [11, 12, 13, 14]
    config = DecodeConfig(gen_length=16, steps=8, block_length=4, mode=mode, temperature=0.9, remasking=remasking)
    batched = decode(backbone, ids, mask, config, seeds)
    for row, prompt in enumerate(rows):
        alone_ids = torch.tensor([prompt])
        alone = decode(backbone, alone_ids, torch.ones_like(alone_ids, dtype=torch.bool), config, [seeds[row]])
        assert torch.equal(alone.tokens[0], batched.tokens[row])
        assert alone.nfe[0] == batched.nfe[row]
    assert len(set(map(tuple, batched.tokens.tolist()))) > 1


@pytest.mark.parametrize("mode,remasking,temperature", [("block", "low_confidence", 0.0), ("block", "random", 0.8),
                                                        ("full", "low_confidence", 0.0), ("full", "topprob", 0.5),
                                                        ("block", "margin", 0.0)])
def test_early_stop_keeps_every_token_up_to_the_eos_and_saves_forward_passes(mode, remasking, temperature):
    backbone = TinyBackbone(vocab_size=12, seed=4, eos_bias=1.5)
    ids, mask, _ = prompts(backbone, [3, 4, 5, 6, 3, 4, 5, 6], seed=1)
    config = DecodeConfig(gen_length=32, steps=16, block_length=8, mode=mode, temperature=temperature,
                          remasking=remasking, early_stop=False)
    full = decode(backbone, ids, mask, config)
    early = decode(backbone, ids, mask, replace(config, early_stop=True))
    eos = backbone.eos_id
    saved = 0
    for row in range(len(ids)):
        tokens = full.tokens[row].tolist()
        cut = tokens.index(eos) + 1 if eos in tokens else len(tokens)
        assert early.tokens[row].tolist() == tokens[:cut] + [eos] * (len(tokens) - cut)
        assert early.nfe[row] <= full.nfe[row]
        saved += full.nfe[row] - early.nfe[row]
    assert saved > 0
    assert not (early.tokens == backbone.mask_id).any()


def test_a_row_stops_only_when_nothing_before_its_eos_is_masked():
    """Full diffusion commits EOS early at the end of the generation: that alone must not stop a row,
    and a row that is done never reaches the backbone again."""
    backbone = TinyBackbone(vocab_size=12, seed=4, eos_bias=1.5)
    ids, mask, _ = prompts(backbone, [3, 4, 5, 6], seed=1)
    config = DecodeConfig(gen_length=16, steps=8, mode="full", temperature=0.5, remasking="entropy")
    recorder = Recorder()
    decode(backbone, ids, mask, config, proposal=recorder)
    eos_with_masks_before = 0
    for _, tokens in recorder.calls:  # the window is the whole generation
        for row in tokens.tolist():
            if backbone.eos_id in row:
                assert backbone.mask_id in row[:row.index(backbone.eos_id)]
                eos_with_masks_before += 1
    assert eos_with_masks_before > 0


# ---- guidance, shifted logits, proposal hook ----------------------------------------------------


def test_classifier_free_guidance_costs_two_passes_per_step_and_changes_the_output():
    backbone = TinyBackbone(seed=5)
    ids, mask, _ = prompts(backbone, [4, 6])
    config = DecodeConfig(gen_length=16, steps=8, block_length=8, early_stop=False)
    plain = decode(backbone, ids, mask, config)
    guided = decode(backbone, ids, mask, replace(config, cfg_scale=2.0))
    assert plain.nfe == [8, 8] and guided.nfe == [16, 16]
    assert not torch.equal(plain.tokens, guided.tokens)


class LeftShifted(Backbone):
    """A Dream-style backbone made from a plain one: its logits at j predict token j + 1."""

    def __init__(self, plain: TinyBackbone):
        self.plain = plain
        self.name, self.tokenizer, self.vocab_size = "left-shifted", None, plain.vocab_size
        self.mask_id, self.eos_id, self.pad_id = plain.mask_id, plain.eos_id, plain.pad_id
        self.shifted_logits = True

    def logits(self, ids, attention_mask=None):
        logits = self.plain.logits(ids, attention_mask)
        return torch.cat([logits[:, 1:], torch.zeros_like(logits[:, :1])], dim=1)


@pytest.mark.parametrize("mode", ["block", "full"])
def test_shifted_logits_are_read_one_position_to_the_left(mode):
    plain = TinyBackbone(seed=6)
    ids, mask, _ = prompts(plain, [3, 5])
    config = DecodeConfig(gen_length=16, steps=8, block_length=8, mode=mode, temperature=0.7, remasking="random")
    assert torch.equal(decode(LeftShifted(plain), ids, mask, config).tokens, decode(plain, ids, mask, config).tokens)


@pytest.mark.parametrize("mode,width", [("block", 8), ("full", 24)])
def test_the_proposal_sees_the_window_and_its_rows_generators_and_decides_the_tokens(mode, width):
    backbone = TinyBackbone(seed=7)
    ids, mask, _ = prompts(backbone, [3, 5, 4])
    config = DecodeConfig(gen_length=24, steps=12, block_length=8, mode=mode, temperature=1.0)
    row_generators = generators([1, 2, 3])
    seen = []

    class ForbidLowIds(Proposal):
        def __call__(self, logits, tokens, gens):
            seen.append((logits.shape, tokens.shape, gens))
            return logits.index_fill(-1, torch.arange(5), -math.inf)

    out = generate(backbone, ids, mask, config, row_generators, ForbidLowIds())
    assert (out.tokens >= 5).all()
    for logits_shape, tokens_shape, gens in seen:
        assert logits_shape[1:] == (width, backbone.vocab_size) and tokens_shape[1] == width
        rows = [next(i for i, r in enumerate(row_generators) if r is g) for g in gens]
        assert rows == sorted(set(rows)) and len(rows) == logits_shape[0]  # each row's own, in batch order
    identity = Recorder()
    assert torch.equal(decode(backbone, ids, mask, config, proposal=identity).tokens,
                       decode(backbone, ids, mask, config).tokens)


# ---- configuration and samplers ----------------------------------------------------------------


@pytest.mark.parametrize("changes,fragment", [
    ({"mode": "diagonal"}, "valid modes: block, full"),
    ({"remasking": "lowest"}, "low_confidence, margin, entropy, topprob, random"),
    ({"block_length": 24}, "not a multiple of block length"),
    ({"steps": 6}, "multiple of the 4 blocks"),
    ({"steps": 0}, "between 1 and the gen length 64"),
    ({"steps": 128}, "between 1 and the gen length 64"),
    ({"gen_length": 0}, "gen length must be positive"),
    ({"temperature": -1.0}, "temperature"),
    ({"top_p": 0.0}, "top-p"),
    ({"top_k": 0}, "top-k"),
    ({"cfg_scale": -1.0}, "cfg scale"),
    ({"eps": 0.0}, "eps"),
])
def test_impossible_configs_are_one_line_harness_errors(changes, fragment):
    config = replace(DecodeConfig(gen_length=64, steps=16, block_length=16), **changes)
    with pytest.raises(HarnessError, match=fragment) as err:
        config.validate()
    assert "\n" not in str(err.value)


def test_full_mode_needs_no_block_fit():
    DecodeConfig(gen_length=20, steps=7, block_length=32, mode="full").validate()


def test_factorized_sampler_is_the_engine():
    backbone = TinyBackbone(seed=8)
    ids, mask, _ = prompts(backbone, [3, 5])
    config = DecodeConfig(gen_length=16, steps=4, block_length=8, temperature=0.8)
    sampler = get_sampler("factorized")
    out = sampler.generate(backbone, ids, mask, config, generators([0, 1]))
    assert torch.equal(out.tokens, decode(backbone, ids, mask, config).tokens)
    with pytest.raises(HarnessError, match="factorized"):
        get_sampler("factorized:proposal=ao")


@pytest.mark.parametrize("mode", ["block", "full"])
def test_sequential_commits_one_token_per_step(mode):
    backbone = TinyBackbone(seed=9)
    ids, mask, _ = prompts(backbone, [3, 5])
    config = DecodeConfig(gen_length=16, steps=4, block_length=8, mode=mode, early_stop=False)
    sampler = get_sampler("sequential")
    assert not sampler.uses_budget
    out = sampler.generate(backbone, ids, mask, config, generators([0, 1]))
    assert out.nfe == [16, 16]
    block_length = 8 if mode == "block" else 16
    expected = decode(backbone, ids, mask, replace(config, steps=16, mode="block", block_length=block_length))
    assert torch.equal(out.tokens, expected.tokens)
