"""What changes with the step: the learning-rate factor and whether the adversarial term is on.

Both are pure functions of the step, so a resumed run follows them exactly.
"""

from __future__ import annotations

import math

from gan.core.config import TrainConfig

LR_SCHEDULES = ("linear_decay", "cosine", "step")


def lr_scale(step: int, total_steps: int, decay_steps: int) -> float:
    """Constant, then linear decay over the last `decay_steps` steps (pix2pix's schedule);
    over the whole run when `decay_steps` exceeds it (a shortened smoke run, say)."""
    decay_steps = min(decay_steps, total_steps)
    return 1.0 - max(0, step - (total_steps - decay_steps)) / (decay_steps + 1)


def lr_factor(step: int, train: TrainConfig) -> float:
    """The factor on the base learning rates at (1-based) `step`: a linear warm-up over
    `train.warmup_steps`, times the schedule `train.lr_schedule`:

    - linear_decay: constant, then linear towards 0 over the last `train.lr_decay_steps` N, at 1/(N + 1)
      on the last step, as the pix2pix/CycleGAN reference's rule (0 = constant);
    - cosine: half a cosine from 1 after the warm-up to 0 at `train.steps`;
    - step: times `train.lr_gamma` at each of `train.lr_milestones` (BasicSR's MultiStepLR).
    """
    warmup = min(1.0, step / train.warmup_steps) if train.warmup_steps else 1.0
    if train.lr_schedule == "linear_decay":
        return warmup * lr_scale(step, train.steps, train.lr_decay_steps)
    if train.lr_schedule == "cosine":
        span = max(1, train.steps - train.warmup_steps)
        progress = min(1.0, max(0, step - train.warmup_steps) / span)
        return warmup * 0.5 * (1.0 + math.cos(math.pi * progress))
    if train.lr_schedule == "step":
        return warmup * train.lr_gamma ** sum(step > milestone for milestone in train.lr_milestones)
    raise ValueError(f"unknown train.lr_schedule '{train.lr_schedule}'; known: {', '.join(LR_SCHEDULES)}")


def adversarial_on(step: int, train: TrainConfig) -> bool:
    """Whether the adversarial term and the discriminator's updates run at `step`: after
    `train.adversarial_start` steps of reconstruction loss alone (BasicSR's net_d_init_iters)."""
    return step > train.adversarial_start
