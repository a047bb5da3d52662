"""The `codd` sampler on a tiny real backbone with small HMMs, against brute-force enumeration
of the product distribution p(x) ∝ p_hmm(x) prod_t q_t(x_t)^(1/tau)."""

import pytest
import torch
from test_hmm_exact import chi_square_p, enumerate_product, sequence_index
from tiny_backbone import TinyBackbone

from codd import HMM, save_pc
from codd.proposals import Latent, Product
from codd.windows import cover
from harness.engine.decoding import DecodeConfig
from harness.engine.sampler import get_sampler
from harness.errors import HarnessError

DRAWS = 20_000
VOCAB = 6  # TinyBackbone: ids 0-2 plain, 3 pad, 4 eos, 5 mask (never predicted)


def sticky_hmm(seed, states=3, window=3):
    """States that persist and prefer distinct tokens: neighbouring positions are strongly coupled."""
    g = torch.Generator().manual_seed(seed)
    base = HMM.random(states, VOCAB, generator=g, dtype=torch.float64, scale=1.0)
    return HMM(base.pi_logits, base.alpha_logits + 3 * torch.eye(states, dtype=torch.float64),
               base.beta_logits + 3 * torch.eye(states, VOCAB, dtype=torch.float64), window=window)


@pytest.fixture(scope="module")
def backbone():
    return TinyBackbone(vocab_size=VOCAB, seed=3)


def saved(hmm, tmp_path, **metadata):
    return str(save_pc(hmm, tmp_path / "pc", **metadata))


def generators(count, offset=0):
    return [torch.Generator().manual_seed(offset + i) for i in range(count)]


def one_prompt(count):
    ids = torch.tensor([[0, 2, 1, 0]]).expand(count, -1).clone()
    return ids, torch.ones_like(ids, dtype=torch.bool)


def window_log_q(backbone, gen_length, tau=1.0):
    """The backbone's log-probabilities over the all-masked generation of `one_prompt`, / tau."""
    ids, _ = one_prompt(1)
    x = torch.cat([ids, torch.full((1, gen_length), backbone.mask_id)], 1)
    return backbone.logits(x)[0, ids.shape[1]:].double().log_softmax(-1) / tau


def product_distribution(hmm, log_q):
    """Probabilities of every completion of an all-masked window and their cell indices."""
    joint, xs, _ = enumerate_product(hmm, log_q, torch.full((log_q.shape[0],), -1))
    return joint.sum(0) / joint.sum(), sequence_index(xs, VOCAB)


def decode(spec, backbone, config, count, ids=None):
    """`count` decodes of one prompt, or of the prompts `ids`."""
    ids = one_prompt(count)[0] if ids is None else ids
    mask = torch.ones_like(ids, dtype=torch.bool)
    return get_sampler(spec).generate(backbone, ids, mask, config, generators(count)).tokens


@pytest.mark.parametrize("mode,proposal,tau", [("block", "latent", 1.0), ("block", "latent", 0.5), ("block", "ao", 1.0),
                                               ("full", "latent", 0.5), ("full", "ao", 1.0)])
def test_one_step_samples_the_product_distribution(backbone, tmp_path, mode, proposal, tau):
    hmm = sticky_hmm(seed=1)
    log_q = window_log_q(backbone, 3, tau)
    product, cells = product_distribution(hmm, log_q)
    factorized = product_distribution(HMM.random(1, VOCAB, dtype=torch.float64, scale=0.0), log_q)[0]
    assert (product - factorized).abs().sum() / 2 > 0.1  # else a sampler ignoring the PC would pass
    config = DecodeConfig(gen_length=3, steps=1, block_length=3, mode=mode, temperature=1.0, early_stop=False)
    tokens = decode(f"codd:proposal={proposal},gamma=1,tau={tau},pc={saved(hmm, tmp_path)}", backbone, config, DRAWS)
    assert chi_square_p(sequence_index(tokens, VOCAB), cells, product) > 1e-3


def test_full_diffusion_windows_past_the_end_sample_each_windows_product(backbone, tmp_path):
    """Five positions decoded in one step by windows of two: [0, 2), [2, 4) and [4, 6), the last
    one padded, so the draw is the product of three independent window products."""
    hmm = sticky_hmm(seed=2, window=2)
    log_q = window_log_q(backbone, 5)
    past_the_end = torch.cat([log_q[4:], torch.zeros(1, VOCAB, dtype=torch.float64)])  # summed out below
    windows = [product_distribution(hmm, log_q[0:2])[0], product_distribution(hmm, log_q[2:4])[0],
               product_distribution(hmm, past_the_end)[0].reshape(VOCAB, VOCAB).sum(1)]
    config = DecodeConfig(gen_length=5, steps=1, mode="full", temperature=1.0, early_stop=False)
    tokens = decode(f"codd:gamma=1,tau=1,pc={saved(hmm, tmp_path)}", backbone, config, DRAWS)
    probs = torch.ones(1, dtype=torch.float64)
    for window_probs in windows:
        probs = (probs[:, None] * window_probs[None, :]).reshape(-1)
    cells = torch.arange(VOCAB ** 5)  # window cells are in base-VOCAB order, so their outer product is too
    assert chi_square_p(sequence_index(tokens, VOCAB), cells, probs) > 1e-3


def greedy_marginal_reference(backbone, hmm, ids, gen_length):
    """Greedy decoding from the exact marginals, one token per step, written out by enumeration:
    each step commits the argmax at the masked position whose largest marginal is largest."""
    x = torch.cat([ids, torch.full((1, gen_length), backbone.mask_id)], 1)[0]
    observed = torch.full((gen_length,), -1)
    for _ in range(gen_length):
        log_q = backbone.logits(x[None])[0, ids.shape[1]:].double().log_softmax(-1)
        joint, xs, _ = enumerate_product(hmm, log_q, observed)
        probs = joint.sum(0) / joint.sum()
        marginals = torch.stack([torch.zeros(VOCAB, dtype=torch.float64).index_add(0, xs[:, t], probs)
                                 for t in range(gen_length)])
        confidence = marginals.max(-1).values.masked_fill(observed >= 0, -1)
        position = confidence.argmax()
        observed[position] = marginals[position].argmax()
        x[ids.shape[1] + position] = observed[position]
    return observed


@pytest.mark.parametrize("seed", [7, 8, 9])
def test_marginal_proposal_commits_the_argmax_of_the_exact_marginals_most_confident_first(backbone, tmp_path, seed):
    hmm = sticky_hmm(seed=seed)
    config = DecodeConfig(gen_length=3, steps=3, block_length=3, temperature=0.0, early_stop=False)
    tokens = decode(f"codd:proposal=marginal,gamma=1,tau=1,pc={saved(hmm, tmp_path)}", backbone, config, 1)
    assert torch.equal(tokens[0], greedy_marginal_reference(backbone, hmm, one_prompt(1)[0], 3))


@pytest.mark.parametrize("mode", ["block", "full"])
@pytest.mark.parametrize("proposal", ["latent", "marginal", "ao"])
@pytest.mark.parametrize("temperature,remasking", [(0.0, "low_confidence"), (1.0, "margin"), (0.7, "random")])
def test_never_active_equals_factorized_token_for_token(backbone, tmp_path, mode, proposal, temperature, remasking):
    config = DecodeConfig(gen_length=8, steps=4, block_length=4, mode=mode, temperature=temperature,
                          remasking=remasking, early_stop=False)
    pc = saved(sticky_hmm(seed=4, window=4), tmp_path)
    ids = torch.randint(3, (8, 4), generator=torch.Generator().manual_seed(0))
    codd = decode(f"codd:proposal={proposal},gamma=0,pc={pc}", backbone, config, 8, ids)
    assert torch.equal(codd, decode("factorized", backbone, config, 8, ids))
    assert not torch.equal(decode(f"codd:proposal={proposal},gamma=1,tau=1,pc={pc}", backbone, config, 8, ids), codd)


@pytest.mark.parametrize("mode", ["block", "full"])
@pytest.mark.parametrize("proposal", ["latent", "ao"])
def test_a_row_decodes_the_same_alone_as_in_a_batch(backbone, tmp_path, mode, proposal):
    config = DecodeConfig(gen_length=8, steps=4, block_length=4, mode=mode, temperature=1.0, early_stop=False)
    spec = f"codd:proposal={proposal},gamma=0.6,pc={saved(sticky_hmm(seed=5, window=3), tmp_path)}"
    ids = torch.tensor([[3, 0, 1, 2], [3, 3, 2, 2], [1, 1, 0, 2]])
    mask = ids != 3
    sampler = get_sampler(spec)
    together = sampler.generate(backbone, ids, mask, config, generators(3, 10)).tokens
    for row in range(3):
        alone = sampler.generate(backbone, ids[row:row + 1, (~mask[row]).sum():], mask[row:row + 1, (~mask[row]).sum():],
                                 config, generators(1, 10 + row)).tokens
        assert torch.equal(together[row], alone[0])


def test_activation_follows_the_windows_mask_ratio():
    product = Product(hmm=None, rule=Latent(), gamma=0.5, tau=1.0, mask_id=9, temperature=1.0)
    tokens = torch.tensor([[9, 9, 9, 9], [9, 9, 1, 1], [9, 1, 1, 1], [9, 9, 9, 1]])
    assert product.active_rows(tokens).tolist() == [1, 2]


def test_cover_uses_the_fewest_windows_and_keeps_clusters_apart():
    assert cover([0, 1, 3], 4) == [0]
    assert cover([0, 4, 5, 9, 30], 4) == [0, 4, 9, 30]
    assert cover([2, 5, 6, 17, 18, 20], 4) == [2, 6, 17]
    assert cover([], 4) == []


def test_gamma_and_tau_default_to_the_pcs_metadata(backbone, tmp_path):
    pc = saved(sticky_hmm(seed=6), tmp_path, gamma=0.7, tau=0.3)
    chosen = get_sampler(f"codd:pc={pc}").chosen(backbone)
    assert (chosen.gamma, chosen.tau, chosen.source) == (0.7, 0.3, str(pc))
    sampler = get_sampler(f"codd:pc={pc},gamma=0.2")
    assert (sampler.chosen(backbone).gamma, sampler.chosen(backbone).tau) == (0.2, 0.3)
    assert sampler.spec == f"codd:gamma=0.2,pc={pc}"


@pytest.mark.parametrize("options,fragment", [
    ("proposal=beam", "valid proposals: latent, marginal, ao"),
    ("gamma=1.5", "gamma must be a number in [0, 1]"),
    ("gamma=high", "gamma must be a number in [0, 1]"),
    ("tau=0", "tau must be a number in (0, inf]"),
    ("pc=/nonexistent/pc", "no PC at /nonexistent/pc"),
    ("window=4", "bad options for sampler 'codd'"),
    ("emission=float16", "emission must be one of float32, bfloat16"),
])
def test_bad_options_are_one_line_errors(options, fragment):
    with pytest.raises(HarnessError, match=fragment.replace("(", r"\(").replace("[", r"\[")) as err:
        get_sampler(f"codd:{options}")
    assert "\n" not in str(err.value)


def test_a_pc_for_another_vocabulary_or_backbone_is_refused(backbone, tmp_path):
    wrong = HMM.random(2, VOCAB + 1, dtype=torch.float64)
    with pytest.raises(HarnessError, match=f"vocabulary of {VOCAB + 1} tokens but backbone"):
        get_sampler(f"codd:pc={saved(wrong, tmp_path)}").check(backbone)
    with pytest.raises(HarnessError, match="no shipped CoDD PC for backbone 'tiny-6-3'"):
        get_sampler("codd").check(backbone)
    assert not get_sampler("codd").applies_to(backbone)  # so a default run leaves codd out here
    assert get_sampler(f"codd:pc={saved(sticky_hmm(seed=0), tmp_path / 'own')}").applies_to(backbone)


def test_emission_bfloat16_runs_the_pcs_product_in_bfloat16_and_is_recorded_in_the_spec(backbone, tmp_path):
    pc = saved(sticky_hmm(seed=2), tmp_path)
    exact, half = get_sampler(f"codd:pc={pc}"), get_sampler(f"codd:pc={pc},emission=bfloat16")
    assert exact.spec == f"codd:pc={pc}" and half.spec == f"codd:emission=bfloat16,pc={pc}"
    assert exact.chosen(backbone).hmm.emission_dtype is None
    assert half.chosen(backbone).hmm.emission_dtype == torch.bfloat16
    assert half.for_task("names", backbone).emission == "bfloat16"
    log_q = window_log_q(backbone, 3).unsqueeze(0)
    observed = torch.full((1, 3), -1)
    with torch.no_grad():
        log_z = [s.chosen(backbone).hmm.log_evidence(log_q, observed) for s in (exact, half)]
    assert 0 < (log_z[0] - log_z[1]).abs().item() < 3 * 3 * 2**-9
    # Greedy decoding keeps its commits where no two candidates are within the rounding of each other.
    config = DecodeConfig(gen_length=3, steps=3, block_length=3, temperature=0.0)
    ids = torch.tensor([[0, 2, 1, 0], [1, 1, 0, 2], [2, 0, 0, 1]])
    tokens = [decode(f"codd:pc={pc},proposal=marginal,gamma=1{extra}", backbone, config, 3, ids)
              for extra in ("", ",emission=bfloat16")]
    torch.testing.assert_close(tokens[0], tokens[1], rtol=0, atol=0)
