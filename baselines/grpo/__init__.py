"""diffu-GRPO (d1, Zhao et al. 2025): GRPO for masked diffusion LMs, trained as a LoRA adapter
(DESIGN.md section 4.3). loss.py holds the objective (each task shapes its own reward, Task.reward), adapter.py
the LoRA plumbing shared with the `diffu-grpo` sampler, trainer.py the training loop."""
