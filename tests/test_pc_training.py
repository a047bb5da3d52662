"""PC training: the cached backbone evidence, the objective on data from a known HMM, exact
resumption, the choice of gamma, and the train-pc command's bad-input contract."""

import math

import pytest
import torch
from tiny_backbone import TinyBackbone

from codd import HMM
from codd.training import (PCTrainConfig, WindowSet, _compress, cache_windows, choose_gamma, conditional_log_likelihood,
                           evaluate, random_masks, ratio_masks, train_pc)
from harness.cli import main as cli
from harness.training.pairs import Pair

VOCAB, WIDTH = 5, 4


def known_hmm():
    """A sticky HMM whose states prefer distinct tokens: strong coupling between positions."""
    g = torch.Generator().manual_seed(0)
    base = HMM.random(3, VOCAB, generator=g, dtype=torch.float64, scale=1.0)
    return HMM(base.pi_logits, base.alpha_logits + 3 * torch.eye(3, dtype=torch.float64),
               base.beta_logits + 3 * torch.eye(3, VOCAB, dtype=torch.float64), window=WIDTH)


def ancestral_samples(hmm, count, seed):
    """x [count, WIDTH] drawn from the HMM by its generative story, z_1 ~ pi, z_t+1 ~ alpha[z_t], x_t ~ beta[z_t]."""
    g = torch.Generator().manual_seed(seed)
    pi, alpha, beta = (p.detach() for p in (hmm.pi, hmm.alpha, hmm.beta))
    z = torch.multinomial(pi.expand(count, -1), 1, generator=g).squeeze(1)
    xs = []
    for t in range(WIDTH):
        if t:
            z = torch.multinomial(alpha[z], 1, generator=g).squeeze(1)
        xs.append(torch.multinomial(beta[z], 1, generator=g).squeeze(1))
    return torch.stack(xs, 1)


def uniform_evidence_windows(tokens, seed):
    """Windows whose backbone knows nothing (uniform q): the product is the PC itself."""
    g = torch.Generator().manual_seed(seed)
    masked = torch.stack([random_masks(WIDTH, g) for _ in tokens])
    masked[~masked.any(1), 0] = True
    n = len(tokens)
    return WindowSet(tokens, masked, torch.arange(VOCAB).int().expand(n, WIDTH, -1).clone(),
                     torch.full((n, WIDTH, VOCAB), -math.log(VOCAB)), torch.full((n, WIDTH), -math.inf), VOCAB)


@pytest.fixture(scope="module")
def data():
    truth = known_hmm()
    return truth, uniform_evidence_windows(ancestral_samples(truth, 1500, 1), 2), \
        uniform_evidence_windows(ancestral_samples(truth, 1000, 3), 4)


CONFIG = PCTrainConfig(states=3, window=WIDTH, epochs=6, batch_size=50, lr=0.2, patience=3, seed=0, top_k=VOCAB)


def test_training_on_a_known_hmms_data_approaches_its_held_out_cll(data, tmp_path):
    truth, train, val = data
    initial = evaluate(HMM.random(3, VOCAB, generator=torch.Generator().manual_seed(0), scale=0.5), val)
    state = train_pc(CONFIG, train, val, tmp_path)
    trained, ideal = evaluate(state.hmm, val), evaluate(truth, val)
    assert trained["factorized"] == pytest.approx(-math.log(VOCAB))
    assert ideal["pc"] > trained["factorized"] + 0.3  # the coupling is worth learning
    assert trained["pc"] > initial["pc"] + 0.25
    assert trained["pc"] > ideal["pc"] - 0.05
    assert state.best_val == max(h["val_pc"] for h in state.history)  # the best epoch's parameters are kept
    assert trained["pc"] == pytest.approx(state.best_val, abs=1e-5)


def test_an_interrupted_run_resumes_to_the_uninterrupted_result(data, tmp_path):
    _, train, val = data
    config = PCTrainConfig(**{**CONFIG.__dict__, "epochs": 3, "patience": 10})
    straight = train_pc(config, train, val, tmp_path / "straight")

    def stop_after_two(state):
        if state.epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_pc(config, train, val, tmp_path / "resumed", on_epoch=stop_after_two)
    resumed = train_pc(config, train, val, tmp_path / "resumed")
    assert resumed.history == straight.history and resumed.steps == straight.steps
    for name, value in straight.hmm.state_dict().items():
        assert torch.equal(resumed.hmm.state_dict()[name], value)


def test_the_objective_is_the_products_conditional_log_likelihood():
    """log p^(x_masked | x_observed) against the product written out by enumeration."""
    hmm = known_hmm()
    g = torch.Generator().manual_seed(5)
    log_q = torch.randn(1, 3, VOCAB, generator=g, dtype=torch.float64).log_softmax(-1)
    tokens, masked = torch.tensor([[1, 4, 2]]), torch.tensor([[True, False, True]])
    pi, alpha, beta = (p.detach() for p in (hmm.pi, hmm.alpha, hmm.beta))
    q = log_q[0].exp()

    def joint(x):
        return sum(pi[a] * beta[a, x[0]] * alpha[a, b] * beta[b, x[1]] * alpha[b, c] * beta[c, x[2]]
                   for a in range(3) for b in range(3) for c in range(3)) * q[0, x[0]] * q[1, x[1]] * q[2, x[2]]

    total = sum(joint((a, 4, c)) for a in range(VOCAB) for c in range(VOCAB))
    expected = math.log(joint((1, 4, 2)) / total)
    assert conditional_log_likelihood(hmm, log_q, tokens, masked).item() == pytest.approx(expected, rel=1e-10)


def test_cached_windows_hold_the_backbones_log_probabilities(tmp_path):
    backbone = TinyBackbone(vocab_size=8, seed=2)
    eos = backbone.eos_id
    pairs = [Pair((0, 1, 2), (3, 4, 0, 1, eos, eos, eos, eos)), Pair((1, 2), (0, eos, eos, eos, eos, eos, eos, eos))]
    everything = lambda length, generator: torch.ones(length, dtype=torch.bool)  # noqa: E731
    exact = cache_windows(backbone, pairs, 2, everything, torch.Generator(), top_k=8)
    # Windows start at 0, 2, 4, 6; kept while the start is at most the first EOS: 3 for pair 0, 1 for pair 1.
    assert exact.tokens.tolist() == [[3, 4], [0, 1], [eos, eos], [0, eos]]
    x = torch.tensor([[0, 1, 2] + [backbone.mask_id] * 8])
    log_q, tokens, masked = exact.batch(torch.arange(3))
    torch.testing.assert_close(log_q.reshape(6, 8), backbone.logits(x)[0, 3:9].log_softmax(-1))
    assert masked.all()
    compressed = cache_windows(backbone, pairs, 2, everything, torch.Generator(), top_k=3)
    log_q3 = compressed.batch(torch.arange(4))[0]
    torch.testing.assert_close(log_q3.exp().sum(-1), torch.ones(4, 2))
    top = exact.batch(torch.arange(4))[0].topk(3, dim=-1)
    torch.testing.assert_close(log_q3.gather(-1, top.indices), top.values)


def test_ratio_masks_hide_a_fixed_count_per_window_nested_across_ratios():
    masks = {r: ratio_masks(r, 4)(8, torch.Generator().manual_seed(1)) for r in (0.1, 0.5, 1.0)}
    assert [m.view(2, 4).sum(1).tolist() for m in masks.values()] == [[1, 1], [2, 2], [4, 4]]
    assert (masks[0.5] | masks[0.1]).equal(masks[0.5]) and (masks[1.0] | masks[0.5]).equal(masks[1.0])


def test_gamma_is_the_last_ratio_before_the_pc_first_loses_significantly():
    intervals = {"win": [0.5, 1.5], "noise": [-0.2, 0.1], "loss": [-1.5, -0.5]}

    def curve(outcomes):
        return [{"ratio": 0.1 * (i + 1), "difference_ci95": intervals[o]} for i, o in enumerate(outcomes)]
    assert choose_gamma(curve(["win"] * 10)) == pytest.approx(1.0)
    assert choose_gamma(curve(["win"] * 7 + ["loss", "win", "loss"])) == pytest.approx(0.7)
    assert choose_gamma(curve(["loss"] + ["win"] * 9)) == 0.0
    assert choose_gamma(curve(["noise"] + ["win"] * 9)) == pytest.approx(1.0)  # a loss within noise keeps it on


def test_the_held_out_difference_interval_brackets_the_difference(data):
    truth, _, val = data
    scores = evaluate(truth, val, interval=True)
    low, high = scores["difference_ci95"]
    assert 0 < low < scores["pc"] - scores["factorized"] < high  # the true circuit wins, significantly
    useless = evaluate(HMM.random(3, VOCAB, generator=torch.Generator().manual_seed(0), scale=0.0), val, interval=True)
    assert useless["difference_ci95"][0] <= 1e-9  # a uniform circuit adds nothing: no significant gain


@pytest.mark.parametrize("args,fragment", [
    (["--family", "names", "--window", "3"], "--window 3 must divide the gen length 2 of task names"),
    (["--family", "names", "--lr", "-1"], "--lr must be positive"),
    (["--family", "nosuch"], "invalid choice: 'nosuch'"),
    (["--family", "names", "--states", "0"], "--states"),
])
def test_train_pc_bad_input_is_one_line_exit_2_and_writes_nothing(args, fragment, tmp_path, capsys):
    try:
        code = cli(["train-pc", *args, "--out", str(tmp_path / "pc")])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "pc").exists()


def test_a_backbone_sure_of_its_top_k_leaves_a_finite_tail_and_finite_gradients():
    """All the mass in the top k (float32 sums it to exactly 1): the tail is floored, not log 0, so an observed
    token outside the top k still gives a finite CLL and gradient (the scratchpad countdown PC went NaN)."""
    log_q = torch.full((1, WIDTH, VOCAB), -200.0)
    log_q[..., 0] = 0.0
    ids, values, log_tail = _compress(log_q, 2)
    assert torch.isfinite(log_tail).all()
    windows = WindowSet(torch.tensor([[0, 4, 0, 0]]), torch.tensor([[True, False, False, False]]),
                        ids, values, log_tail, VOCAB)
    hmm = known_hmm()
    hmm.beta_logits.requires_grad_(True)
    cll = conditional_log_likelihood(hmm, *windows.batch(torch.tensor([0])))
    cll.sum().backward()
    assert torch.isfinite(cll).all() and torch.isfinite(hmm.beta_logits.grad).all()
