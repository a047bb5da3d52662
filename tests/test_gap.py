"""The perplexity gap against brute force: exact chain rule, exact factorized marginals and the
exact normalised product, on backbones whose conditionals are known in closed form."""

import itertools
import json
import math
import random

import numpy as np
import pytest
import torch

from codd import HMM
from harness.backbones.base import Backbone
from harness.errors import HarnessError
from harness.gap import METHODS, RATIOS, GapWindow, masked_count, measure_gap, window_nll

PROMPT, AFTER = [0, 1], [2, 2]


class JointBackbone(Backbone):
    """The exact conditionals of a known joint over a window: at every masked window position
    the logits are the log-marginal given the window's visible tokens (by enumeration), so the
    chain rule over its calls is the joint itself. Outside the window it predicts uniformly."""

    def __init__(self, joint: np.ndarray, start: int):
        self.name, self.tokenizer = "joint", None
        self.vocab_size, self.width = joint.shape[0], joint.ndim
        self.mask_id = self.pad_id = self.eos_id = self.vocab_size  # a token the window never holds
        self.vocab_size += 1
        self.joint, self.start = joint, start

    def logits(self, ids, attention_mask=None):
        out = torch.zeros(*ids.shape, self.vocab_size, dtype=torch.float64)
        out[..., self.mask_id] = -torch.inf
        for row, window in enumerate(ids[:, self.start:self.start + self.width].tolist()):
            table = self.joint
            index = tuple(slice(None) if t == self.mask_id else t for t in window)
            conditional = table[index]  # over the masked positions only
            masked = [i for i, t in enumerate(window) if t == self.mask_id]
            for axis, offset in enumerate(masked):
                others = tuple(a for a in range(len(masked)) if a != axis)
                marginal = conditional.sum(axis=others) / conditional.sum()
                out[row, self.start + offset, :-1] = torch.from_numpy(np.log(marginal))
        return out.float()


class PositionalBackbone(Backbone):
    """A context-free model: fixed logits per position whatever the input. Data drawn from its
    product with an HMM then has the product's conditionals as its true conditionals."""

    def __init__(self, position_logits: torch.Tensor, start: int, length: int):
        self.name, self.tokenizer = "positional", None
        self.vocab_size = position_logits.shape[1] + 1
        self.mask_id = self.pad_id = self.eos_id = self.vocab_size - 1
        self.table = torch.zeros(length, self.vocab_size)
        self.table[start:start + len(position_logits), :-1] = position_logits
        self.table[:, -1] = -torch.inf

    def logits(self, ids, attention_mask=None):
        return self.table.expand(ids.shape[0], -1, -1).clone()


def _window(tokens, order) -> GapWindow:
    ids = torch.tensor(PROMPT + list(tokens) + AFTER)
    return GapWindow("x", ids, len(PROMPT), len(PROMPT), len(tokens), tuple(order))


def _brute_conditional(weights: np.ndarray, tokens, masked) -> float:
    """log P(x_masked | x_visible) under unnormalised `weights` over the window."""
    visible = tuple(slice(None) if i in masked else t for i, t in enumerate(tokens))
    return math.log(weights[tuple(tokens)] / weights[visible].sum())


def test_sequential_and_factorized_equal_the_known_joint():
    vocab, width = 3, 5
    rng = np.random.default_rng(0)
    joint = rng.gamma(0.5, size=(vocab,) * width)
    joint /= joint.sum()
    backbone = JointBackbone(joint, start=len(PROMPT))
    pc = HMM.random(2, backbone.vocab_size, torch.Generator().manual_seed(0), dtype=torch.float64)
    for trial in range(3):
        tokens = rng.integers(vocab, size=width).tolist()
        window = _window(tokens, rng.permutation(width).tolist())
        nll = window_nll(backbone, pc, window, batch_size=4)
        for r, ratio in enumerate(RATIOS):
            masked = window.masked_offsets(ratio)
            assert len(masked) == masked_count(ratio, width)
            # Chain rule of a consistent model = the joint's conditional, in any order.
            assert nll[r, 0] == pytest.approx(-_brute_conditional(joint, tokens, masked), abs=1e-4)
            factorized = 0.0
            for offset in masked:
                alone = [o for o in masked if o != offset]
                visible = tuple(slice(None) if i in masked else t for i, t in enumerate(tokens))
                marginal = joint[visible].sum(axis=tuple(masked.index(o) for o in alone))
                factorized -= math.log(marginal[tokens[offset]] / marginal.sum())
            assert nll[r, 1] == pytest.approx(factorized, abs=1e-4)
            # One masked token: all three agree only if the PC adds nothing; chain = factorized always.
            if len(masked) == 1:
                assert nll[r, 0] == pytest.approx(nll[r, 1], abs=1e-5)


def test_codd_is_the_normalised_product_by_brute_force():
    vocab, width, states = 3, 4, 3
    rng = np.random.default_rng(1)
    joint = rng.gamma(0.7, size=(vocab,) * width)
    joint /= joint.sum()
    backbone = JointBackbone(joint, start=len(PROMPT))
    g = torch.Generator().manual_seed(3)
    pc = HMM.random(states, backbone.vocab_size, g, dtype=torch.float64)
    tau = 0.5
    pi, alpha, beta = (t.detach().numpy() for t in (pc.pi, pc.alpha, pc.beta))
    p_hmm = np.zeros((vocab,) * width)
    for x in itertools.product(range(vocab), repeat=width):
        for z in itertools.product(range(states), repeat=width):
            p = pi[z[0]] * beta[z[0], x[0]]
            for t in range(1, width):
                p *= alpha[z[t - 1], z[t]] * beta[z[t], x[t]]
            p_hmm[x] += p
    tokens = [2, 0, 1, 1]
    window = _window(tokens, [3, 0, 2, 1])
    nll = window_nll(backbone, pc, window, tau=tau)
    for r, ratio in enumerate(RATIOS):
        masked = window.masked_offsets(ratio)
        # The PC's evidence: the all-masked state's log-probs / tau at every window position.
        state = window.ids.clone()
        state[[len(PROMPT) + o for o in masked]] = backbone.mask_id
        state[len(PROMPT) + width:] = backbone.mask_id
        q = np.exp(backbone.logits(state[None])[0, len(PROMPT):len(PROMPT) + width, :vocab].double()
                   .log_softmax(-1).numpy() / tau)
        weights = p_hmm.copy()
        for t in range(width):
            shape = [1] * width
            shape[t] = vocab
            weights = weights * q[t].reshape(shape)
        assert nll[r, 2] == pytest.approx(-_brute_conditional(weights, tokens, masked), abs=1e-4)


def test_codd_beats_factorized_on_data_from_the_product():
    vocab, width, windows = 6, 8, 200
    g = torch.Generator().manual_seed(0)
    backbone = PositionalBackbone(torch.randn(width, vocab, generator=g), len(PROMPT), len(PROMPT) + width + 2)
    pc = HMM.random(4, backbone.vocab_size, g, scale=3.0)
    pc.beta_logits.data[:, -1] = -30.0  # the mask token never appears in data
    log_q = backbone.logits(torch.zeros(1, len(PROMPT) + width + 2, dtype=torch.long))[:, len(PROMPT):-2]
    log_q = log_q.log_softmax(-1).expand(windows, -1, -1)
    every_position = torch.arange(width).expand(windows, -1)
    samples = pc.sample_any_order(log_q, torch.full((windows, width), -1), every_position,
                                  [torch.Generator().manual_seed(i) for i in range(windows)])
    rng = random.Random(0)
    total = np.zeros((len(RATIOS), len(METHODS)))
    for tokens in samples.tolist():
        total += window_nll(backbone, pc, _window(tokens, rng.sample(range(width), width)))
    sequential, factorized, codd = total.T
    # A context-free backbone gains nothing from the chain rule; the product is the data's law.
    np.testing.assert_allclose(sequential, factorized, rtol=1e-5)
    assert (codd < factorized).all(), (codd, factorized)


class _Tokenizer:
    """Whitespace-separated integers as token ids, for laying out solutions without a trained tokenizer."""

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [int(t) for t in text.split()]}


def test_measure_gap_skips_solutions_that_do_not_fit_and_rejects_a_foreign_pc():
    from tasks import Example, Task

    class Digits(Task):
        name, description, family, gen_length = "digits", "test task", "test", 12

        def load(self, split="test", limit=None, data_dir=None):
            return []

        def score(self, completion, ex):
            raise NotImplementedError

    vocab, width = 5, 4
    g = torch.Generator().manual_seed(0)
    backbone = PositionalBackbone(torch.randn(16, vocab, generator=g), 0, 64)
    backbone.tokenizer = _Tokenizer()
    backbone.encode_chat = lambda messages: [0, 1, 2]
    pc = HMM.random(3, backbone.vocab_size, g)
    examples = [Example("short", "q", "1 2"), Example("long", "q", " ".join(["1"] * 13)),
                Example("a", "q", "1 2 3 4 0 1 2 3 4"), Example("b", "q", "0 0 1 1 2 2 3 3")]
    result = measure_gap(Digits(), backbone, pc, examples, width=width)
    assert result["solutions"] == 2 and result["skipped"] == 2
    assert result["per_example"]["example_ids"] == ["a", "b"]
    assert [row["ratio"] for row in result["rows"]] == list(RATIOS)
    again = measure_gap(Digits(), backbone, pc, examples[2:3], width=width)
    assert again["per_example"]["nll_per_token"][0] == result["per_example"]["nll_per_token"][0]
    with pytest.raises(HarnessError, match="vocabulary"):
        measure_gap(Digits(), backbone, HMM.random(3, vocab + 7, g), examples, width=width)


def test_gap_command_writes_json_csv_and_figures(tmp_path):
    from codd import save_pc
    from codd.choice import shipped_pcs
    from harness.backbones import load_backbone
    from harness.cli import main as cli

    vocab = load_backbone("embedded", "names").vocab_size
    save_pc(HMM.random(4, vocab, torch.Generator().manual_seed(0)), tmp_path / "pc", tau=0.5)
    out = tmp_path / "gap"
    args = ["gap", "--task", "names", "--window", "2", "--limit", "30", "--pc", str(tmp_path / "pc"), "--quiet"]
    assert cli(args + ["--out", str(out)]) == 0
    result = json.loads((out / "gap.json").read_text())
    assert result["solutions"] == 30 and result["skipped"] == 0 and result["width"] == 2
    assert result["tau"] == 0.5  # without --tau, the PC's own, as the codd sampler would use it
    for row in result["rows"]:
        assert row["perplexity"]["factorized"] == pytest.approx(math.exp(row["nll"]["factorized"]), rel=1e-5)
    assert len((out / "gap.csv").read_text().splitlines()) == 1 + len(RATIOS)
    for ext in ("png", "svg", "md"):
        assert (out / f"gap.{ext}").stat().st_size > 100
    assert cli(args[:-3] + ["--pc", str(tmp_path / "absent"), "--quiet"]) == 2
    # Without --pc: the PC shipped for the backbone, or a clear error while none is.
    shipped = shipped_pcs().get("embedded-names")
    code = cli(args[:-3] + ["--quiet", "--limit", "4", "--out", str(tmp_path / "default")])
    if shipped is None:
        assert code == 2
    else:
        assert code == 0 and json.loads((tmp_path / "default" / "gap.json").read_text())["pc"] == str(shipped)
