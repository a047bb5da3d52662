"""LLaDA's published generate loop, re-stated: the reference that tests/test_llada_reference.py holds
our engine to and benchmarks/bench_decode.py times it against.

`llada_generate` re-states the loop of `generate.py` in ML-GSAI/LLaDA as
literally as we can (written from reading it): its transfer-count schedule, its
float64 Gumbel noise, its loop over blocks and steps, its confidence and top-k
commit. One change lines up the random streams: LLaDA draws its uniforms with
`torch.rand_like` over the whole sequence from the global generator, and its
`random` confidences with `torch.rand` (float32). Only the current block's
masked positions can ever be committed, so only their draws matter; the
re-statement still draws the whole tensor, then overwrites the block's masked
positions with draws from the row's generator, in position order, Gumbel
uniforms first and confidences second, in float64: exactly what the engine
draws. Everything else is LLaDA's arithmetic.
"""

import numpy as np
import torch
import torch.nn.functional as F


def llada_transfer_counts(block_mask_index: torch.Tensor, steps: int) -> torch.Tensor:
    """[1, steps]: each step commits masks // steps, the first masks % steps steps one more."""
    masks = block_mask_index.sum(dim=1, keepdim=True)
    counts = torch.zeros(masks.shape[0], steps, dtype=torch.int64, device=masks.device) + masks // steps
    for row in range(masks.shape[0]):
        counts[row, : int(masks[row, 0] % steps)] += 1
    return counts


def llada_gumbel(logits: torch.Tensor, temperature: float, uniforms: torch.Tensor) -> torch.Tensor:
    """exp(logits) / (-log U)^T in float64; its argmax samples softmax(logits / T)."""
    return logits.to(torch.float64).exp() / (-torch.log(uniforms)) ** temperature


def llada_generate(model, prompt, steps, gen_length, block_length, temperature, cfg_scale, remasking,
                   mask_id, generator):
    x = torch.full((1, prompt.shape[1] + gen_length), mask_id, dtype=torch.long, device=prompt.device)
    x[:, : prompt.shape[1]] = prompt.clone()
    prompt_index = x != mask_id
    num_blocks = gen_length // block_length
    steps = steps // num_blocks
    for num_block in range(num_blocks):
        start = prompt.shape[1] + num_block * block_length
        end = start + block_length
        num_transfer_tokens = llada_transfer_counts(x[:, start:end] == mask_id, steps)
        for i in range(steps):
            mask_index = x == mask_id
            if cfg_scale > 0.0:
                un_x = x.clone()
                un_x[prompt_index] = mask_id
                logits, un_logits = torch.chunk(model(torch.cat([x, un_x], dim=0)), 2, dim=0)
                logits = un_logits + (cfg_scale + 1) * (logits - un_logits)
            else:
                logits = model(x)

            in_block = torch.zeros_like(mask_index)
            in_block[:, start:end] = True
            drawn = mask_index & in_block  # the only positions whose draws matter (see module docstring)
            if temperature > 0:
                uniforms = torch.rand_like(logits, dtype=torch.float64)
                uniforms[drawn] = torch.rand(int(drawn.sum()), logits.shape[-1], generator=generator,
                                             dtype=torch.float64).to(logits.device)
                x0 = torch.argmax(llada_gumbel(logits, temperature, uniforms), dim=-1)
            else:
                x0 = torch.argmax(logits, dim=-1)  # LLaDA's add_gumbel_noise returns the logits at T = 0

            if remasking == "low_confidence":
                p = F.softmax(logits.to(torch.float64), dim=-1)
                x0_p = torch.squeeze(torch.gather(p, dim=-1, index=torch.unsqueeze(x0, -1)), -1)
            elif remasking == "random":
                x0_p = torch.rand(x0.shape, dtype=torch.float64, device=x0.device)
                x0_p[drawn] = torch.rand(int(drawn.sum()), generator=generator, dtype=torch.float64).to(x0.device)
            else:
                raise NotImplementedError(remasking)
            x0_p[:, end:] = -np.inf

            x0 = torch.where(mask_index, x0, x)
            confidence = torch.where(mask_index, x0_p, -np.inf)
            transfer_index = torch.zeros_like(x0, dtype=torch.bool)
            for j in range(confidence.shape[0]):
                _, select_index = torch.topk(confidence[j], k=int(num_transfer_tokens[j, i]))
                transfer_index[j, select_index] = True
            x[transfer_index] = x0[transfer_index]
    return x[:, prompt.shape[1]:]
