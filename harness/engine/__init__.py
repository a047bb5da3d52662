"""The decoding engine: masked-diffusion schedules and the step loop (decoding), confidence rules
(remasking), step budgets (budget) and the sampler registry (sampler). It depends on backbones only;
samplers (baselines/, codd/) plug their proposal rules into it."""
