"""The HMM's inference and samplers against brute-force enumeration of every token
sequence x and hidden path z (the product distribution written out literally)."""

import copy

import pytest
import torch
from scipy.stats import chisquare

from codd import HMM

DRAWS = 20_000


def random_evidence(batch, width, vocab, seed, observed_rate=0.3):
    """Unnormalised log-potentials and a random set of observed positions (at least one masked)."""
    g = torch.Generator().manual_seed(seed)
    log_q = torch.randn(batch, width, vocab, generator=g, dtype=torch.float64) * 2 + 3
    tokens = torch.randint(vocab, (batch, width), generator=g)
    hide = torch.rand(batch, width, generator=g) >= observed_rate
    hide[:, 0] = True
    return log_q, torch.where(hide, tokens.new_tensor(-1), tokens)


def enumerate_product(hmm, log_q, observed):
    """For one row: joint[z, x] = pi(z_1) prod alpha(z_t, z_t+1) prod beta(z_t, x_t) q_t(x_t)
    over all paths z and all x consistent with `observed`, in probability space."""
    n, v = hmm.num_states, hmm.vocab_size
    width = observed.shape[0]
    xs = torch.cartesian_prod(*[torch.arange(v) if o < 0 else o.reshape(1) for o in observed])
    zs = torch.cartesian_prod(*[torch.arange(n)] * width)
    pi, alpha, beta = (p.detach() for p in (hmm.pi, hmm.alpha, hmm.beta))
    path = pi[zs[:, 0]] * torch.stack([alpha[zs[:, t], zs[:, t + 1]] for t in range(width - 1)]).prod(0)
    emit = torch.stack([beta[zs[:, t]][:, xs[:, t]] for t in range(width)]).prod(0)
    soft = torch.stack([log_q[t, xs[:, t]].exp() for t in range(width)]).prod(0)
    return path[:, None] * emit * soft[None, :], xs, zs


def sequence_index(x, vocab):
    """Each row of x as one integer in base `vocab`, for counting draws."""
    return (x * vocab ** torch.arange(x.shape[-1] - 1, -1, -1)).sum(-1)


def chi_square_p(draws, cells, probs):
    """Goodness of fit of integer draws to probs over cells; cells expecting < 5 draws are pooled."""
    counts = (draws[:, None] == cells[None, :]).sum(0).double()
    expected = probs * len(draws)
    assert counts.sum() == len(draws), "a draw fell outside the support"
    small = expected < 5
    observed_counts = torch.cat([counts[~small], counts[small].sum().reshape(1)])
    expected_counts = torch.cat([expected[~small], expected[small].sum().reshape(1)])
    return chisquare(observed_counts.numpy(), expected_counts.numpy()).pvalue


def generators(count, offset=0):
    return [torch.Generator().manual_seed(offset + i) for i in range(count)]


@pytest.mark.parametrize("vocab, width, states", [(5, 4, 4), (3, 6, 3), (4, 5, 2), (2, 2, 4)])
def test_inference_matches_enumeration(vocab, width, states):
    hmm = HMM.random(states, vocab, generator=torch.Generator().manual_seed(vocab * 100 + width), dtype=torch.float64)
    log_q, observed = random_evidence(4, width, vocab, seed=width)
    log_z = hmm.log_evidence(log_q, observed)
    posteriors = hmm.hidden_posteriors(log_q, observed)
    marginals = hmm.token_marginals(log_q, observed).exp()
    for row in range(len(observed)):
        joint, xs, zs = enumerate_product(hmm, log_q[row], observed[row])
        total = joint.sum()
        torch.testing.assert_close(log_z[row], total.log(), rtol=1e-12, atol=1e-12)
        for t in range(width):
            hidden = torch.zeros(states, dtype=torch.float64).index_add(0, zs[:, t], joint.sum(1)) / total
            token = torch.zeros(vocab, dtype=torch.float64).index_add(0, xs[:, t], joint.sum(0)) / total
            torch.testing.assert_close(posteriors[row, t], hidden, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(marginals[row, t], token, rtol=1e-12, atol=1e-12)


def test_log_evidence_gradient_matches_finite_differences():
    hmm = HMM.random(3, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    log_q, observed = random_evidence(2, 4, 4, seed=2)
    hmm.log_evidence(log_q, observed).sum().backward()
    for parameter in hmm.parameters():
        numeric = torch.zeros_like(parameter)
        for i in range(parameter.numel()):
            with torch.no_grad():
                flat = parameter.view(-1)
                flat[i] += 1e-6
                up = hmm.log_evidence(log_q, observed).sum()
                flat[i] -= 2e-6
                down = hmm.log_evidence(log_q, observed).sum()
                flat[i] += 1e-6
            numeric.view(-1)[i] = (up - down) / 2e-6
        torch.testing.assert_close(parameter.grad, numeric, rtol=1e-6, atol=1e-8)


@pytest.fixture(scope="module")
def sampling_case():
    """One row replicated DRAWS times: a sticky HMM whose states prefer distinct tokens
    (so positions are strongly coupled), soft evidence, position 2 observed."""
    vocab, width, states = 3, 5, 3
    g = torch.Generator().manual_seed(7)
    sticky = HMM.random(states, vocab, generator=g, dtype=torch.float64, scale=1.0)
    hmm = HMM(sticky.pi_logits, sticky.alpha_logits + 3 * torch.eye(states, dtype=torch.float64),
              sticky.beta_logits + 2 * torch.eye(states, vocab, dtype=torch.float64))
    log_q, observed = random_evidence(1, width, vocab, seed=11, observed_rate=0.0)
    log_q = log_q / 8
    observed[0, 2] = 1
    joint, xs, zs = enumerate_product(hmm, log_q[0], observed[0])
    product = joint.sum(0) / joint.sum()
    independent = torch.ones_like(product)
    for t in range(width):
        independent *= torch.zeros(vocab, dtype=torch.float64).index_add(0, xs[:, t], product)[xs[:, t]]
    # The product must be far from the product of its own marginals, or these tests
    # could not tell a sampler that ignores the coupling from an exact one.
    assert (product - independent).abs().sum() / 2 > 0.1
    return dict(hmm=hmm, log_q=log_q.expand(DRAWS, -1, -1), observed=observed.expand(DRAWS, -1).clone(),
                product=product, cells=sequence_index(xs, vocab), paths=joint.sum(1) / joint.sum(),
                path_cells=sequence_index(zs, states), vocab=vocab, states=states)


def test_ffbs_draws_paths_from_their_posterior(sampling_case):
    c = sampling_case
    z = c["hmm"].sample_hidden(c["log_q"], c["observed"], generators(DRAWS))
    assert chi_square_p(sequence_index(z, c["states"]), c["path_cells"], c["paths"]) > 1e-3


def test_latent_proposal_samples_the_product(sampling_case):
    c = sampling_case
    hmm, observed = c["hmm"], c["observed"]
    z = hmm.sample_hidden(c["log_q"], observed, generators(DRAWS))
    logits = hmm.latent_proposal_logits(c["log_q"], z)
    tokens = torch.multinomial(logits.softmax(-1).reshape(-1, c["vocab"]), 1,
                               generator=torch.Generator().manual_seed(3)).reshape(observed.shape)
    x = torch.where(observed >= 0, observed, tokens)
    assert chi_square_p(sequence_index(x, c["vocab"]), c["cells"], c["product"]) > 1e-3


def test_any_order_commits_sample_the_product(sampling_case):
    c = sampling_case
    masked = (c["observed"][0] < 0).nonzero().squeeze(1)
    shuffle = torch.rand(DRAWS, len(masked), generator=torch.Generator().manual_seed(5)).argsort(1)
    x = c["hmm"].sample_any_order(c["log_q"], c["observed"], masked[shuffle], generators(DRAWS))
    assert chi_square_p(sequence_index(x, c["vocab"]), c["cells"], c["product"]) > 1e-3


def test_any_order_at_zero_temperature_takes_the_exact_argmax_and_skips_minus_one():
    hmm = HMM.random(4, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    log_q, observed = random_evidence(3, 5, 6, seed=4, observed_rate=0.0)
    order = torch.tensor([[3], [0], [-1]])
    committed = hmm.sample_any_order(log_q, observed, order, generators(3), temperature=0)
    best = hmm.token_marginals(log_q, observed).argmax(-1)
    assert committed[0, 3] == best[0, 3] and committed[1, 0] == best[1, 0]
    expected = observed.clone()
    expected[0, 3], expected[1, 0] = best[0, 3], best[1, 0]
    assert torch.equal(committed, expected)


def test_any_order_refuses_an_observed_position():
    hmm = HMM.random(2, 3, dtype=torch.float64)
    log_q, observed = random_evidence(1, 3, 3, seed=0, observed_rate=0.0)
    observed[0, 1] = 2
    with pytest.raises(ValueError, match="must be masked"):
        hmm.sample_any_order(log_q, observed, torch.tensor([[1]]), generators(1))


def test_a_row_gives_the_same_results_alone_as_in_a_batch():
    hmm = HMM.random(6, 10, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    log_q, observed = random_evidence(4, 7, 10, seed=6)
    order = torch.stack([(observed[b] < 0).nonzero().squeeze(1)[:2] for b in range(4)])
    batch = [hmm.log_evidence(log_q, observed), hmm.hidden_posteriors(log_q, observed),
             hmm.token_marginals(log_q, observed), hmm.sample_hidden(log_q, observed, generators(4, 50)),
             hmm.sample_any_order(log_q, observed, order, generators(4, 80))]
    for b in range(4):
        one = slice(b, b + 1)
        alone = [hmm.log_evidence(log_q[one], observed[one]), hmm.hidden_posteriors(log_q[one], observed[one]),
                 hmm.token_marginals(log_q[one], observed[one]),
                 hmm.sample_hidden(log_q[one], observed[one], generators(1, 50 + b)),
                 hmm.sample_any_order(log_q[one], observed[one], order[one], generators(1, 80 + b))]
        for together, single in zip(batch, alone):
            torch.testing.assert_close(together[one], single, rtol=1e-12, atol=1e-12)


def test_peaked_evidence_at_full_width_stays_finite_and_accurate():
    width, states, vocab = 32, 1024, 1000
    hmm64 = HMM.random(states, vocab, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    hmm32 = copy.deepcopy(hmm64).float()
    g = torch.Generator().manual_seed(1)
    log_q = -1e4 * torch.rand(2, width, vocab, generator=g, dtype=torch.float64)  # range ~1e4: near one-hot
    observed = torch.full((2, width), -1)
    observed[0, 5], observed[1, 20] = 3, 999
    log_z = hmm32.log_evidence(log_q, observed)
    assert torch.isfinite(log_z).all()
    torch.testing.assert_close(log_z.double(), hmm64.log_evidence(log_q, observed), rtol=1e-5, atol=0)
    posteriors = hmm32.hidden_posteriors(log_q, observed)
    assert torch.isfinite(posteriors).all()
    torch.testing.assert_close(posteriors.sum(-1), torch.ones(2, width))
    marginals = hmm32.token_marginals(log_q, observed)
    assert not marginals.isnan().any()
    torch.testing.assert_close(marginals.logsumexp(-1), torch.zeros(2, width), atol=1e-4, rtol=0)
    z = hmm32.sample_hidden(log_q, observed, generators(2))
    assert z.min() >= 0 and z.max() < states
    assert torch.isfinite(hmm32.latent_proposal_logits(log_q, z).amax(-1)).all()


def test_from_probabilities_refuses_tables_that_are_not_distributions():
    pi, alpha, beta = torch.tensor([0.5, 0.5]), torch.eye(2), torch.tensor([[0.2, 0.8], [1.0, 0.0]])
    hmm = HMM.from_probabilities(pi, alpha, beta, window=4)
    torch.testing.assert_close(hmm.beta, beta)
    with pytest.raises(ValueError, match="beta is not normalised"):
        HMM.from_probabilities(pi, alpha, beta * 1.1, window=4)
    with pytest.raises(ValueError, match="alpha has negative"):
        HMM.from_probabilities(pi, torch.tensor([[1.5, -0.5], [0.0, 1.0]]), beta, window=4)


def emission_sized_tensors(hmm):
    """The distinct [N, V] tensors the module keeps: parameters, buffers and cached tables."""
    held = [*hmm.parameters(), *hmm.buffers(), *(hmm._cached_tables[1] if hmm._cached_tables else ())]
    return {t.untyped_storage().data_ptr() for t in held
            if t is not None and t.shape == (hmm.num_states, hmm.vocab_size)}


def test_a_frozen_hmm_keeps_one_emission_table_and_gives_the_same_results():
    trainable = HMM.random(5, 9, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    frozen = copy.deepcopy(trainable).freeze()
    log_q, observed = random_evidence(3, 6, 9, seed=8)
    order = torch.stack([(observed[b] < 0).nonzero().squeeze(1)[:3] for b in range(3)])

    def results(hmm):
        with torch.no_grad():
            z = hmm.sample_hidden(log_q, observed, generators(3, 10))
            return [hmm.log_evidence(log_q, observed), hmm.hidden_posteriors(log_q, observed),
                    hmm.token_marginals(log_q, observed), z, hmm.latent_proposal_logits(log_q, z),
                    hmm.sample_any_order(log_q, observed, order, generators(3, 20), temperature=0.7)]

    for mine, reference in zip(results(frozen), results(trainable)):
        torch.testing.assert_close(mine, reference, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(frozen.log_beta, trainable.log_beta.detach(), rtol=1e-12, atol=1e-12)
    assert len(emission_sized_tensors(trainable)) == 3  # logits, log-probabilities, probabilities
    assert len(emission_sized_tensors(frozen)) == 1
    assert list(frozen.parameters()) == []


def test_bfloat16_emission_product_keeps_log_z_within_its_rounding_bound():
    """emission_dtype=bfloat16 rounds q, beta and each soft factor sum_v beta[h, v] q(v) to 8 significant
    bits (relative error <= 2^-9 each), so every masked position moves log Z by at most about 3 * 2^-9;
    the recursion stays in float32. Stated tolerance: |error| <= 3 * 2^-9 per masked position, and a
    relative error below 1e-3 (bench_codd.py measures it at the real shape)."""
    batch, width, states, vocab = 4, 16, 16, 300
    hmm = HMM.random(states, vocab, generator=torch.Generator().manual_seed(5), scale=1.0).freeze()
    exact = copy.deepcopy(hmm).double()
    g = torch.Generator().manual_seed(6)
    log_q = (torch.randn(batch, width, vocab, generator=g) * 3).log_softmax(-1)
    observed = torch.where(torch.rand(batch, width, generator=g) < 0.25, torch.randint(vocab, (batch, width), generator=g), -1)
    with torch.no_grad():
        reference = exact.log_evidence(log_q.double(), observed)
        float32 = hmm.log_evidence(log_q, observed)
        hmm.emission_dtype = torch.bfloat16
        half = hmm.log_evidence(log_q, observed)
    assert half.dtype == torch.float32
    error = (half.double() - reference).abs()
    assert (error <= 3 * 2**-9 * (observed < 0).sum(1)).all()
    assert (error / reference.abs()).max() < 1e-3
    assert error.min() > 10 * (float32.double() - reference).abs().max()  # the product did run in bfloat16
    # The copy is made once and follows the table: an in-place change of beta is seen.
    assert hmm.emission_table(hmm.tables()) is hmm.emission_table(hmm.tables())
    with torch.no_grad():
        hmm.frozen_beta.copy_(hmm.frozen_beta.roll(1, 0))
        moved = hmm.log_evidence(log_q, observed)
    assert not torch.allclose(moved, half)
