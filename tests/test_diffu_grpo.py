"""diffu-GRPO: the loss against a hand computation, the estimator's masking, the rewards, a short
training run that must raise an easy reward, resumption, and the `diffu-grpo` sampler on a tiny
backbone with a LoRA adapter written here."""

from __future__ import annotations

import math
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch
from scipy import stats

from baselines.grpo.adapter import add_lora, adapted
from baselines.grpo.loss import group_advantages, grpo_loss, masked_input
from baselines.grpo.trainer import GRPOConfig, completion_logps, counted_tokens, train
from harness.backbones.embedded import EmbeddedBackbone
from harness.backbones.transformer import MaskedDiffusionTransformer, TransformerConfig
from harness.engine.decoding import DecodeConfig, generate
from harness.errors import HarnessError
from harness.runner import RunOptions, plan
from harness.engine.sampler import get_sampler
from tasks import get_task

VOCAB = 12
PAD, EOS, MASK = 9, 10, 11
TARGET_TOKEN = 3
DECODE = DecodeConfig(gen_length=8, steps=4, block_length=8, temperature=1.0, early_stop=False)


def tiny_backbone(seed: int = 0) -> EmbeddedBackbone:
    """A real (untrained) embedded transformer over a 12-token vocabulary; the tokenizer is only
    a holder of the special ids, which is all training and decoding read from it."""
    torch.manual_seed(seed)
    model = MaskedDiffusionTransformer(TransformerConfig(vocab_size=VOCAB, n_layer=1, n_head=2, d_model=16))
    ids = SimpleNamespace(mask_token_id=MASK, eos_token_id=EOS, pad_token_id=PAD)
    return EmbeddedBackbone(model, ids, f"tiny-embedded-{seed}")


def tiny_prompts(count: int, seed: int = 0) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, PAD, (int(torch.randint(2, 6, (1,), generator=g)),), generator=g).tolist()
            for _ in range(count)]


def rollouts(backbone, prompts, seed: int = 1) -> torch.Tensor:
    ids, mask = backbone.left_pad(prompts)
    generators = [torch.Generator().manual_seed(seed * 1000 + i) for i in range(len(prompts))]
    return generate(backbone, ids, mask, DECODE, generators).tokens


def count_target(_index: int, completion: list[int]) -> float:
    return float(completion.count(TARGET_TOKEN))


# --- the objective -------------------------------------------------------------------------------

def test_loss_equals_hand_computation():
    logps = torch.tensor([[-1.0, -2.0], [-0.5, -3.0]])
    old = torch.tensor([[-1.2, -1.0], [-0.5, -2.0]])
    ref = torch.tensor([[-0.9, -2.5], [-1.0, -3.0]])
    advantages = torch.tensor([0.5, -1.0])
    counted = torch.tensor([[True, True], [True, False]])
    eps, beta = 0.2, 0.1
    terms = []
    for b, t in [(0, 0), (0, 1), (1, 0)]:
        r = math.exp(logps[b, t] - old[b, t])
        a = float(advantages[b])
        surrogate = min(r * a, min(max(r, 1 - eps), 1 + eps) * a)
        d = float(ref[b, t] - logps[b, t])
        terms.append(-surrogate + beta * (math.exp(d) - d - 1))
    result = grpo_loss(logps, old, ref, advantages, counted, eps, beta)
    assert result.loss.item() == pytest.approx(sum(terms) / 3, rel=1e-6)
    # ratios e^0.2 = 1.22 and e^-1 = 0.37 fall outside [0.8, 1.2]; e^0 = 1 does not
    assert result.clipped == pytest.approx(2 / 3)


def test_group_advantages_centre_without_scaling():
    rewards = torch.tensor([1.0, 2.0, 6.0, 0.0, 0.0, 3.0])
    assert group_advantages(rewards, 3).tolist() == [-2.0, -1.0, 3.0, -1.0, -1.0, 2.0]


def test_identical_policies_give_ratio_one_and_zero_kl():
    backbone = tiny_backbone()
    policy = add_lora(backbone.model, rank=4, alpha=8)  # B starts at zero: the adapter changes nothing yet
    prompts = tiny_prompts(4)
    completions = rollouts(backbone, prompts)
    ids, prompt_mask = backbone.left_pad(prompts)
    sequence = torch.cat([ids, completions], 1)
    attention = torch.cat([prompt_mask, torch.ones_like(completions, dtype=torch.bool)], 1)
    completion = torch.cat([torch.zeros_like(prompt_mask), torch.ones_like(completions, dtype=torch.bool)], 1)
    x = masked_input(sequence, attention & ~completion, completion, MASK, 0.15, torch.Generator().manual_seed(0))
    logps = completion_logps(backbone, x, attention, completions)
    with torch.no_grad():
        old = completion_logps(backbone, x, attention, completions)
        with policy.disable_adapter():
            ref = completion_logps(backbone, x, attention, completions)
    advantages = torch.tensor([1.0, -1.0, 0.5, -0.5])
    counted = counted_tokens(completions, EOS)
    terms = grpo_loss(logps, old, ref, advantages, counted, clip_eps=0.5, beta=0.04)
    assert terms.ratio == pytest.approx(1.0, abs=1e-6) and terms.kl == pytest.approx(0.0, abs=1e-7)
    expected = -(advantages[:, None] * counted).sum() / counted.sum()
    assert terms.loss.item() == pytest.approx(expected.item(), abs=1e-6)
    terms.loss.backward()  # gradients reach the adapter only
    assert all((p.grad is not None) == p.requires_grad for p in policy.parameters())


def test_masked_input_hides_every_completion_token_and_a_share_of_the_prompt():
    ids = torch.arange(4).repeat(2000, 1).remainder(9)
    ids = torch.cat([torch.full((2000, 1), PAD), ids, torch.ones(2000, 3, dtype=torch.long)], 1)
    prompt = torch.zeros_like(ids, dtype=torch.bool)
    prompt[:, 1:5] = True
    completion = torch.zeros_like(prompt)
    completion[:, 5:] = True
    x = masked_input(ids, prompt, completion, MASK, 0.15, torch.Generator().manual_seed(0))
    assert (x[:, 5:] == MASK).all() and (x[:, 0] == PAD).all()
    share = (x[:, 1:5] == MASK).float().mean().item()
    assert abs(share - 0.15) < 4 * math.sqrt(0.15 * 0.85 / 8000)
    assert ((x[:, 1:5] == MASK) | (x[:, 1:5] == ids[:, 1:5])).all()


def test_counted_tokens_stop_after_the_first_eos():
    completions = torch.tensor([[1, EOS, 2, EOS], [1, 2, 3, 4]])
    assert counted_tokens(completions, EOS).tolist() == [[True, True, False, False], [True] * 4]


# --- rewards -------------------------------------------------------------------------------------

def test_rewards_follow_d1_shaping_without_its_defects():
    countdown = get_task("countdown")
    ex = countdown.example("c", [3, 5, 7], 22)
    assert countdown.reward("3*5+7", ex) == 1.0
    assert countdown.reward("3+5+7", ex) == pytest.approx(0.1)   # well-formed, wrong value
    assert countdown.reward("3+", ex) == 0.0

    sudoku = get_task("sudoku4")
    puzzle, solution = "1234341221434321", "1234341221434321"
    ex = sudoku.example("s", "0234341221434300", solution)
    assert sudoku.reward("1234341221434312", ex) == pytest.approx(1 / 3)  # one of three blanks right

    gsm8k = get_task("gsm8k")
    ex = SimpleNamespace(reference="-3")
    assert gsm8k.reward("so #### -3", ex) == 2.5     # d1's regex dropped the minus sign
    assert gsm8k.reward("the answer is -3", ex) == 2.0
    assert gsm8k.reward("#### 3", ex) == 0.5

    math500 = get_task("math500")
    ex = SimpleNamespace(reference="\\frac{1}{2}")
    assert math500.reward("so $\\boxed{\\frac12}$", ex) == 2.5   # d1 never detected \boxed
    assert math500.reward("so $\\boxed{3}$", ex) == 0.5

    names = get_task("names")  # no shaping of its own: the task's verdict
    ex = names.load(limit=1)[0]
    assert (names.reward("New York", ex), names.reward("San York", ex)) == (1.0, 0.0)


# --- training ------------------------------------------------------------------------------------

def test_short_run_raises_an_easy_reward_significantly(tmp_path):
    """Reward = how often TARGET_TOKEN appears. Paired test: the same prompts and random
    streams decoded by the base and by the trained policy."""
    backbone = tiny_backbone()
    prompts = tiny_prompts(32)
    before = rollouts(backbone, prompts * 2)
    config = GRPOConfig(steps=12, prompts_per_step=8, group_size=4, inner_updates=2, lr=2e-2, lora_rank=4,
                        lora_alpha=8, checkpoint_every=100)
    state = train(backbone, prompts, count_target, config, DECODE, tmp_path)
    after = rollouts(backbone, prompts * 2)
    base = (before == TARGET_TOKEN).sum(1).float()
    tuned = (after == TARGET_TOKEN).sum(1).float()
    test = stats.ttest_rel(tuned.numpy(), base.numpy(), alternative="greater")
    assert tuned.mean() > base.mean() + 1 and test.pvalue < 1e-6, (base.mean(), tuned.mean(), test.pvalue)
    assert state.mean_rewards[-1] > state.mean_rewards[0]
    assert (tmp_path / "adapter_config.json").is_file() and (tmp_path / "adapter_model.safetensors").is_file()


def test_interrupted_run_resumes_to_the_same_adapter(tmp_path):
    config = GRPOConfig(steps=4, prompts_per_step=2, group_size=2, inner_updates=2, lr=1e-2, lora_rank=2,
                        lora_alpha=4, checkpoint_every=2)
    prompts = tiny_prompts(8)
    straight = train(tiny_backbone(), prompts, count_target, config, DECODE, tmp_path / "straight")

    def stop_at_three(state, _terms):
        if state.step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tiny_backbone(), prompts, count_target, config, DECODE, tmp_path / "resumed", on_step=stop_at_three)
    resumed = train(tiny_backbone(), prompts, count_target, config, DECODE, tmp_path / "resumed")
    assert resumed.mean_rewards == straight.mean_rewards and resumed.rollouts == straight.rollouts == 16
    for (name, a), (_, b) in zip(straight.policy.named_parameters(), resumed.policy.named_parameters()):
        assert torch.equal(a, b), name
    with pytest.raises(HarnessError, match="other settings"):
        train(tiny_backbone(), prompts, count_target, replace(config, steps=5, lr=0.5), DECODE, tmp_path / "resumed")
    # A longer run continues a shorter one.
    train(tiny_backbone(), prompts, count_target, replace(config, steps=2), DECODE, tmp_path / "extended")
    extended = train(tiny_backbone(), prompts, count_target, config, DECODE, tmp_path / "extended")
    assert extended.mean_rewards == straight.mean_rewards
    with pytest.raises(HarnessError, match="already at step 4"):
        train(tiny_backbone(), prompts, count_target, replace(config, steps=3), DECODE, tmp_path / "extended")


def test_greedy_rollouts_are_refused(tmp_path):
    with pytest.raises(HarnessError, match="temperature"):
        train(tiny_backbone(), tiny_prompts(2), count_target, GRPOConfig(steps=1), replace(DECODE, temperature=0.0),
              tmp_path)


# --- the sampler ---------------------------------------------------------------------------------

def written_adapter(path) -> dict[str, torch.Tensor]:
    """A LoRA adapter with non-zero weights saved by peft at `path`; returns its lora tensors."""
    policy = add_lora(tiny_backbone().model, rank=2, alpha=4)
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_" in name:
                p.normal_(0, 0.5)
    policy.save_pretrained(str(path))
    return {n: p.detach().clone() for n, p in policy.named_parameters() if "lora_" in n}


def test_sampler_decodes_with_the_adapter_merged(tmp_path):
    lora = written_adapter(tmp_path / "adapter")
    backbone = tiny_backbone()
    sampler = get_sampler(f"diffu-grpo:adapter={tmp_path / 'adapter'}")
    assert sampler.spec == f"diffu-grpo:adapter={tmp_path / 'adapter'}" and sampler.applies_to(backbone)
    tuned = sampler.tuned(backbone)
    # The merged weight is W + (alpha / r) B A, for every adapted projection.
    a = lora["base_model.model.blocks.0.attn.qkv.lora_A.default.weight"]
    b = lora["base_model.model.blocks.0.attn.qkv.lora_B.default.weight"]
    expected = backbone.model.blocks[0].attn.qkv.weight + (4 / 2) * b @ a
    assert torch.allclose(tuned.model.blocks[0].attn.qkv.weight, expected, atol=1e-6)
    assert not torch.allclose(backbone.model.blocks[0].attn.qkv.weight, expected)  # the base is untouched

    prompts = tiny_prompts(3)
    ids, mask = backbone.left_pad(prompts)
    config = replace(DECODE, temperature=0.0)
    out = sampler.generate(backbone, ids, mask, config, [torch.Generator() for _ in prompts])
    manual = tiny_backbone()
    with torch.no_grad():
        for name, module in manual.model.named_modules():
            key = f"base_model.model.{name}.lora_A.default.weight"
            if key in lora:
                module.weight += 2 * lora[key.replace("lora_A", "lora_B")] @ lora[key]
    reference = generate(manual, ids, mask, config, [torch.Generator() for _ in prompts])
    assert torch.equal(out.tokens, reference.tokens)
    base = generate(backbone, ids, mask, config, [torch.Generator() for _ in prompts])
    assert not torch.equal(out.tokens, base.tokens)


def test_sampler_errors_name_what_is_missing(tmp_path):
    backbone = tiny_backbone()
    default = get_sampler("diffu-grpo")
    assert not default.applies_to(backbone)
    with pytest.raises(HarnessError, match="no shipped diffu-GRPO adapter for backbone 'tiny-embedded-0'"):
        default.check(backbone)
    with pytest.raises(HarnessError, match="no LoRA adapter at"):
        get_sampler(f"diffu-grpo:adapter={tmp_path}").check(backbone)
    with pytest.raises(HarnessError, match="bad options"):
        get_sampler("diffu-grpo:rank=3")


def test_default_run_leaves_out_samplers_that_do_not_apply():
    """The names model has no shipped adapter: a default run skips diffu-grpo there, an explicit one fails."""
    options = RunOptions(tasks=("names",), samplers=("factorized", "diffu-grpo"), limit=2)
    assert {c.sampler.name for c in plan(options, only_applicable=True)} == {"factorized"}
    with pytest.raises(HarnessError, match="no shipped diffu-GRPO adapter"):
        plan(options)
