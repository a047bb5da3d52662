"""The incremental any-order sampler against a plain re-statement of the algorithm it
replaced: one whole forward-backward pass per commit. Same factors, same recursions, same
uniforms, so the tokens must agree exactly, at temperature 0 and above."""

import pytest
import torch

from codd import HMM
from codd.hmm import _categorical, _log_matmul_exp, _path_uniforms


def whole_pass_any_order(hmm, log_q, observed, order, generators, temperature):
    """Before each commit, every message from scratch (HMM._forward and HMM._backward)."""
    log_q, tables, local = hmm._prepare(log_q, observed)
    rows = torch.arange(observed.shape[0])
    uniform = _path_uniforms(generators, order.shape[1], local)
    observed = observed.clone()
    for k in range(order.shape[1]):
        position, active = order[:, k].clamp_min(0), order[:, k] >= 0
        around = (hmm._forward(local, tables.log_pi, tables.alpha) + hmm._backward(local, tables.alpha))[rows, position]
        conditional = torch.log_softmax(log_q[rows, position] + _log_matmul_exp(around, tables.beta), -1)
        token = conditional.argmax(-1) if temperature == 0 else _categorical(conditional / temperature, uniform[:, k])
        observed[rows, position] = torch.where(active, token, observed[rows, position])
        committed = tables.log_emissions_for(token) + log_q[rows, position, token].unsqueeze(-1)
        local[rows, position] = torch.where(active.unsqueeze(-1), committed, local[rows, position])
    return observed


def random_case(seed, batch=6, width=12, states=5, vocab=7, dtype=torch.float64):
    """A random HMM, peaked evidence, some positions observed and, per row, a random order over
    a random number of its masked positions (-1 after the last; one row commits nothing)."""
    g = torch.Generator().manual_seed(seed)
    hmm = HMM.random(states, vocab, generator=g, dtype=dtype)
    log_q = (torch.randn(batch, width, vocab, generator=g, dtype=torch.float64) * 3).to(dtype)
    observed = torch.where(torch.rand(batch, width, generator=g) < 0.3,
                           torch.randint(vocab, (batch, width), generator=g), -1)
    order = torch.full((batch, width), -1)
    for b in range(1, batch):
        masked = (observed[b] < 0).nonzero().squeeze(1)
        picked = masked[torch.randperm(len(masked), generator=g)][: int(torch.randint(len(masked) + 1, (1,), generator=g))]
        order[b, : len(picked)] = picked
    return hmm, log_q, observed, order


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_incremental_any_order_commits_what_whole_passes_commit(seed, temperature):
    hmm, log_q, observed, order = random_case(seed, dtype=torch.float64 if seed % 2 else torch.float32)
    draws = [torch.Generator().manual_seed(seed * 10 + b) for b in range(len(order))]
    same = [torch.Generator().manual_seed(seed * 10 + b) for b in range(len(order))]
    ours = hmm.sample_any_order(log_q, observed, order, draws, temperature)
    reference = whole_pass_any_order(hmm, log_q, observed, order, same, temperature)
    assert torch.equal(ours, reference)
    assert torch.equal(ours[0], observed[0])  # the row without commits is untouched
