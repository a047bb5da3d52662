"""The homogeneous HMM circuit of CoDD and its exact inference (DESIGN.md 4.2).

The HMM is multiplied into a backbone's per-position distributions: over a window
of W tokens,

    p(x) ∝ p_hmm(x) * prod_t q_t(x_t),

where q_t = exp(log_q[:, t]) is soft evidence (not necessarily normalised), and an
observed position (token id >= 0 in `observed`, -1 where masked) fixes x_t. The
evidence enters the HMM as one local factor per position and hidden state h,

    masked:   sum_v beta[h, v] q_t(v)      (a [W, V] x [V, N] matmul)
    observed: beta[h, x_t] q_t(x_t)

and every quantity below is an exact forward-backward over those factors in log
space, O(W N^2 + W N V) per row, never materialising a [B, W, N, V] tensor.

The parameters are unconstrained logits normalised by log_softmax, so any
gradient step keeps a valid HMM and `log_evidence` can be trained directly.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn


def _log_matmul_exp(log_x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """log(exp(log_x) @ y) for non-negative y, stable: each row of log_x is shifted
    by its max before the matmul and the shift is added back in log space. Terms
    below the dtype's smallest normal number relative to a row's largest term are lost.
    The product runs in y's dtype (HMM.emission_dtype's bfloat16 table) and is read back in
    log_x's, where the shift is added back."""
    shift = log_x.detach().amax(-1, keepdim=True).nan_to_num_(0.0, 0.0, 0.0)  # an all -inf row: no shift
    return torch.log(((log_x - shift).exp().to(y.dtype) @ y).to(log_x.dtype)) + shift


def _path_uniforms(generators: list[torch.Generator], count: int, like: torch.Tensor) -> torch.Tensor:
    """[B, count] draws from U(0, 1]; row b consumes only generators[b], so a row's
    samples never depend on its batch mates."""
    return torch.stack([1 - torch.rand(count, generator=g, device=like.device, dtype=like.dtype)
                        for g in generators])


def _categorical(log_weights: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF draw from unnormalised log-weights [..., K] with one U(0, 1] per row;
    an entry of zero weight is never drawn."""
    weights = (log_weights - log_weights.amax(-1, keepdim=True)).exp()
    cdf = weights.cumsum(-1)
    target = (uniform * cdf[..., -1]).unsqueeze(-1)
    return torch.searchsorted(cdf, target).squeeze(-1).clamp_max(log_weights.shape[-1] - 1)


def _check_log_table(name: str, table: torch.Tensor) -> None:
    if torch.isnan(table).any() or (table == float("inf")).any():
        raise ValueError(f"{name} has negative, NaN or infinite probabilities")
    # At least float32, without a copy of a float32 table (a float64 copy of beta is 1 GB at real scale).
    sums = table.to(torch.promote_types(table.dtype, torch.float32)).logsumexp(-1).exp().reshape(-1)
    worst = sums[(sums - 1).abs().argmax()].item()
    if not abs(worst - 1) <= 1e-3:
        raise ValueError(f"{name} is not normalised: a row sums to {worst:.6g}, not 1")


class Tables(NamedTuple):
    """The normalised parameters inference reads. A frozen HMM keeps no log_beta: the
    emission table is held once, as probabilities, and its logarithm is taken only of the
    rows or columns a gather picks."""

    log_pi: torch.Tensor
    log_alpha: torch.Tensor
    alpha: torch.Tensor
    beta: torch.Tensor
    log_beta: torch.Tensor | None

    def log_emissions_of(self, states: torch.Tensor) -> torch.Tensor:
        """log beta[states]: [..., V]."""
        return self.beta[states].log() if self.log_beta is None else self.log_beta[states]

    def log_emissions_for(self, tokens: torch.Tensor) -> torch.Tensor:
        """log beta[:, tokens] with the states last: [..., N]."""
        return self.beta.T[tokens].log() if self.log_beta is None else self.log_beta.T[tokens]


class HMM(nn.Module):
    """Homogeneous HMM: initial pi [N], transitions alpha [N, N] with
    alpha[i, j] = P(z_{t+1} = j | z_t = i), emissions beta [N, V].

    `window` is the number of positions W the circuit was built or trained for;
    inference works on whatever W the evidence has. `metadata` travels with saved files.
    Trainable as built; `freeze()` turns it into an inference-only circuit that holds
    its [N, V] emission table once.

    `emission_dtype` (None: the tables' own) is the dtype of the soft-evidence product
    sum_v beta[h, v] q_t(v), the one O(W N V) step of every inference: bfloat16 runs it on a
    bfloat16 copy of the table (made once, kept beside the float table) with the matmul's own
    float32 accumulation, the result rounded to bfloat16 (8 significant bits) and read back in
    the tables' dtype, in which the forward-backward recursion, the hard evidence and every
    other product stay. Approximate: see tests/test_hmm_exact.py for the tolerance it keeps.
    """

    def __init__(self, pi_logits: torch.Tensor, alpha_logits: torch.Tensor, beta_logits: torch.Tensor,
                 window: int = 32, metadata: dict | None = None):
        super().__init__()
        n = pi_logits.shape[0]
        if alpha_logits.shape != (n, n) or beta_logits.dim() != 2 or beta_logits.shape[0] != n:
            raise ValueError(f"inconsistent HMM shapes: pi {tuple(pi_logits.shape)}, "
                             f"alpha {tuple(alpha_logits.shape)}, beta {tuple(beta_logits.shape)}")
        self.pi_logits = nn.Parameter(pi_logits.detach().clone())
        self.alpha_logits = nn.Parameter(alpha_logits.detach().clone())
        self.beta_logits = nn.Parameter(beta_logits.detach().clone())
        self.num_states, self.vocab_size = beta_logits.shape
        self.window = window
        self.metadata = dict(metadata or {})
        self._cached_tables: tuple[tuple, Tables] | None = None
        self.emission_dtype: torch.dtype | None = None
        self._cached_emission: tuple[torch.Tensor, int, torch.Tensor] | None = None

    @classmethod
    def random(cls, num_states: int, vocab_size: int, generator: torch.Generator | None = None,
               dtype: torch.dtype = torch.float32, window: int = 32, scale: float = 2.0) -> "HMM":
        """Random parameters with logits ~ N(0, scale^2): varied, strictly positive distributions."""
        def logits(*shape):
            return torch.randn(*shape, generator=generator, dtype=dtype) * scale
        return cls(logits(num_states), logits(num_states, num_states), logits(num_states, vocab_size), window)

    @classmethod
    def from_log_probabilities(cls, log_pi: torch.Tensor, log_alpha: torch.Tensor, log_beta: torch.Tensor,
                               window: int, metadata: dict | None = None) -> "HMM":
        """From log-probability tables; ValueError unless every row is a distribution (to 1e-3)."""
        for name, table in (("pi", log_pi), ("alpha", log_alpha), ("beta", log_beta)):
            _check_log_table(name, table)
        return cls(log_pi, log_alpha, log_beta, window, metadata)

    @classmethod
    def from_probabilities(cls, pi: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor,
                           window: int, metadata: dict | None = None) -> "HMM":
        """From probability tables (zeros allowed); ValueError unless every row is a distribution."""
        return cls.from_log_probabilities(pi.log(), alpha.log(), beta.log(), window, metadata)

    @property
    def frozen(self) -> bool:
        return not hasattr(self, "beta_logits")

    @property
    def log_pi(self) -> torch.Tensor:
        return self.tables().log_pi

    @property
    def log_alpha(self) -> torch.Tensor:
        return self.tables().log_alpha

    @property
    def log_beta(self) -> torch.Tensor:
        tables = self.tables()
        return tables.beta.log() if tables.log_beta is None else tables.log_beta

    @property
    def pi(self) -> torch.Tensor:
        return self.log_pi.exp()

    @property
    def alpha(self) -> torch.Tensor:
        return self.tables().alpha

    @property
    def beta(self) -> torch.Tensor:
        return self.tables().beta

    @torch.no_grad()
    def freeze(self) -> "HMM":
        """Inference only from here on: normalise once and keep just what inference reads,
        the emission table once, as probabilities (the logits, their log-softmax and its exp
        were three [N, V] copies: 1.5 GB at N = 1024, V = 126464). Call it before moving
        the circuit to its device, so that only the one copy ever lands there."""
        if not self.frozen:
            tables = self._normalise()
            self._cached_tables = None
            del self.pi_logits, self.alpha_logits, self.beta_logits
            for name in ("log_pi", "log_alpha", "alpha", "beta"):
                self.register_buffer(f"frozen_{name}", getattr(tables, name).contiguous())
        return self

    def tables(self) -> Tables:
        """The normalised tables. Without gradients they are cached until a parameter
        changes (in-place updates bump a tensor's version): at real scale (N = 1024,
        V = 126464) normalising beta costs as much as a whole block's inference."""
        if self.frozen:
            return Tables(self.frozen_log_pi, self.frozen_log_alpha, self.frozen_alpha, self.frozen_beta, None)
        parameters = (self.pi_logits, self.alpha_logits, self.beta_logits)
        if torch.is_grad_enabled() and any(p.requires_grad for p in parameters):
            return self._normalise()
        key = tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in parameters)
        if self._cached_tables is None or self._cached_tables[0] != key:
            with torch.no_grad():
                self._cached_tables = (key, self._normalise())
        return self._cached_tables[1]

    def emission_table(self, tables: Tables) -> torch.Tensor:
        """beta.T [V, N] in emission_dtype, as the soft-evidence product reads it: the table
        itself, else a copy, made once per table (and again after an in-place change)."""
        beta_t = tables.beta.T
        if self.emission_dtype is None or self.emission_dtype == beta_t.dtype:
            return beta_t
        if torch.is_grad_enabled() and beta_t.requires_grad:
            return beta_t.to(self.emission_dtype)
        cached = self._cached_emission
        if cached is None or cached[0] is not tables.beta or cached[1] != tables.beta._version:
            self._cached_emission = cached = (tables.beta, tables.beta._version, beta_t.to(self.emission_dtype))
        return cached[2]

    def _normalise(self) -> Tables:
        log_alpha = torch.log_softmax(self.alpha_logits, -1)
        log_beta = torch.log_softmax(self.beta_logits, -1)
        return Tables(torch.log_softmax(self.pi_logits, -1), log_alpha, log_alpha.exp(), log_beta.exp(), log_beta)

    # --- message passing over local log-factors [B, W, N] ---------------------------

    def _local_log_factors(self, log_q, observed, tables):
        masked = observed < 0
        token = observed.clamp_min(0)
        hard = tables.log_emissions_for(token) + log_q.gather(-1, token.unsqueeze(-1))
        # The [W, V] x [V, N] product only over masked positions: observed ones never need it.
        soft = _log_matmul_exp(log_q[masked], self.emission_table(tables))
        return hard.masked_scatter(masked.unsqueeze(-1), soft)

    @staticmethod
    def _forward(local, log_pi, alpha):
        """log_pred[:, t, h] = log of the evidence before t jointly with z_t = h (excludes t's own factor)."""
        preds = [log_pi.expand(local.shape[0], -1)]
        for t in range(1, local.shape[1]):
            preds.append(_log_matmul_exp(preds[-1] + local[:, t - 1], alpha))
        return torch.stack(preds, 1)

    @staticmethod
    def _backward(local, alpha):
        """log_back[:, t, h] = log of the evidence after t given z_t = h."""
        backs = [torch.zeros_like(local[:, 0])]
        for t in range(local.shape[1] - 1, 0, -1):
            backs.append(_log_matmul_exp(local[:, t] + backs[-1], alpha.T))
        return torch.stack(backs[::-1], 1)

    def _prepare(self, log_q, observed):
        tables = self.tables()
        log_q = log_q.to(tables.log_pi.dtype)
        return log_q, tables, self._local_log_factors(log_q, observed, tables)

    # --- public inference ------------------------------------------------------------

    def log_evidence(self, log_q: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """log Z = log sum_x p_hmm(x) prod_t q_t(x_t) over x consistent with `observed`: [B]."""
        _, tables, local = self._prepare(log_q, observed)
        log_pred = self._forward(local, tables.log_pi, tables.alpha)
        return torch.logsumexp(log_pred[:, -1] + local[:, -1], -1)

    def hidden_posteriors(self, log_q: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """P(z_t = h | evidence): [B, W, N]."""
        _, tables, local = self._prepare(log_q, observed)
        joint = self._forward(local, tables.log_pi, tables.alpha) + local + self._backward(local, tables.alpha)
        return torch.softmax(joint, -1)

    def token_marginals(self, log_q: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """log P(x_t = v) under the product, for every position: [B, W, V]. An observed
        position puts all mass on its token. One forward-backward pass, then the
        [B, W, N] messages times beta."""
        log_q, tables, local = self._prepare(log_q, observed)
        around = self._forward(local, tables.log_pi, tables.alpha) + self._backward(local, tables.alpha)
        marginals = torch.log_softmax(log_q + _log_matmul_exp(around, tables.beta), -1)
        token = observed.clamp_min(0).unsqueeze(-1)
        certain = torch.full_like(marginals, float("-inf")).scatter(-1, token, 0.0)
        return torch.where((observed >= 0).unsqueeze(-1), certain, marginals)

    @torch.no_grad()
    def sample_hidden(self, log_q: torch.Tensor, observed: torch.Tensor,
                      generators: list[torch.Generator]) -> torch.Tensor:
        """A hidden path z [B, W] drawn from its exact posterior (forward filtering,
        backward sampling); row b draws only from generators[b]."""
        _, tables, local = self._prepare(log_q, observed)
        log_alpha = tables.log_alpha
        filtered = self._forward(local, tables.log_pi, tables.alpha) + local
        width = local.shape[1]
        uniform = _path_uniforms(generators, width, local)
        path = [_categorical(filtered[:, -1], uniform[:, -1])]
        for t in range(width - 2, -1, -1):
            path.append(_categorical(filtered[:, t] + log_alpha.T[path[-1]], uniform[:, t]))
        return torch.stack(path[::-1], 1)

    def latent_proposal_logits(self, log_q: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log q_t(v) + log beta[z_t, v]: [B, W, V]. Given z the positions are
        independent, so sampling each from these logits after `sample_hidden` is exact
        ancestral sampling of the product (the paper's latent-variable proposal)."""
        tables = self.tables()
        return log_q.to(tables.log_pi.dtype) + tables.log_emissions_of(z)

    @torch.no_grad()
    def sample_any_order(self, log_q: torch.Tensor, observed: torch.Tensor, order: torch.Tensor,
                         generators: list[torch.Generator], temperature: float = 1.0) -> torch.Tensor:
        """Commit masked positions one at a time, each drawn from its exact conditional
        under the product given the evidence and every earlier commit (the any-order
        autoregressive proposal). `order` [B, K] lists each row's positions in commit
        order, -1 for no commit; temperature divides the conditional log-probabilities,
        0 means argmax. Returns `observed` with the committed tokens filled in.

        The local factors are computed once and a commit replaces only its position's
        factor, so the messages are kept between commits and extended only as far as the
        next position needs (`_Messages`): a commit costs |p' - p| message steps and one
        O(N V) product, not a whole forward-backward."""
        chosen = order.clamp_min(0)
        if ((observed.gather(1, chosen) >= 0) & (order >= 0)).any():
            raise ValueError("sample_any_order: every position in `order` must be masked (-1 in observed)")
        log_q, tables, local = self._prepare(log_q, observed)
        messages = _Messages(local, tables)
        rows = torch.arange(observed.shape[0], device=observed.device)
        uniform = _path_uniforms(generators, order.shape[1], local)
        observed = observed.clone()
        for k in range(order.shape[1]):
            position, active = chosen[:, k], order[:, k] >= 0
            if not active.any():
                continue  # the engine pads every row's order to the window width
            around = messages.around(position, active)
            conditional = torch.log_softmax(log_q[rows, position] + _log_matmul_exp(around, tables.beta), -1)
            if temperature == 0:
                token = conditional.argmax(-1)
            else:
                token = _categorical(conditional / temperature, uniform[:, k])
            observed[rows, position] = torch.where(active, token, observed[rows, position])
            committed = tables.log_emissions_for(token) + log_q[rows, position, token].unsqueeze(-1)
            messages.replace(position, active, committed)
        return observed


class _Messages:
    """Forward and backward messages over local log-factors [B, W, N] that change one
    position at a time. Changing t's factor leaves the forward messages at s <= t and the
    backward messages at s >= t as they were (each excludes its own position's factor), so
    every row keeps how far its messages are valid and a query recomputes only the steps
    between there and the queried position, for the rows that need them."""

    def __init__(self, local: torch.Tensor, tables: Tables):
        self.local, self.alpha = local, tables.alpha
        batch, width, _ = local.shape
        self.log_pred = torch.zeros_like(local)
        self.log_pred[:, 0] = tables.log_pi
        self.log_back = torch.zeros_like(local)
        self.rows = torch.arange(batch, device=local.device)
        self.forward_valid = torch.zeros(batch, dtype=torch.long, device=local.device)        # log_pred[:, :fv + 1]
        self.backward_valid = torch.full_like(self.forward_valid, width - 1)                  # log_back[:, bv:]

    def around(self, position: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        """log_pred + log_back at each row's position [B, N]; only the active rows' are brought up to date."""
        reach = torch.where(active, torch.maximum(self.forward_valid, position), self.forward_valid)
        behind = reach > self.forward_valid
        if behind.any():
            for t in range(int(self.forward_valid[behind].min()) + 1, int(reach.max()) + 1):
                stale = ((self.forward_valid < t) & (t <= reach)).unsqueeze(-1)
                step = _log_matmul_exp(self.log_pred[:, t - 1] + self.local[:, t - 1], self.alpha)
                self.log_pred[:, t] = torch.where(stale, step, self.log_pred[:, t])
            self.forward_valid = reach
        reach = torch.where(active, torch.minimum(self.backward_valid, position), self.backward_valid)
        behind = reach < self.backward_valid
        if behind.any():
            for t in range(int(self.backward_valid[behind].max()) - 1, int(reach.min()) - 1, -1):
                stale = ((reach <= t) & (t < self.backward_valid)).unsqueeze(-1)
                step = _log_matmul_exp(self.local[:, t + 1] + self.log_back[:, t + 1], self.alpha.T)
                self.log_back[:, t] = torch.where(stale, step, self.log_back[:, t])
            self.backward_valid = reach
        return self.log_pred[self.rows, position] + self.log_back[self.rows, position]

    def replace(self, position: torch.Tensor, active: torch.Tensor, factor: torch.Tensor) -> None:
        """Set each active row's local factor at `position` [B] to `factor` [B, N]."""
        self.local[self.rows, position] = torch.where(active.unsqueeze(-1), factor, self.local[self.rows, position])
        self.forward_valid = torch.where(active, torch.minimum(self.forward_valid, position), self.forward_valid)
        self.backward_valid = torch.where(active, torch.maximum(self.backward_valid, position), self.backward_valid)
