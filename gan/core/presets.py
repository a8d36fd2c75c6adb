"""Loss presets: each adversarial loss with the settings it was published with.

A loss compared at another loss's hyperparameters is not a fair comparison (WGAN-GP at DCGAN's one
critic step and Adam beta1 = 0.5 trails; at its own 5 critic steps and beta = (0, 0.9) it is what
its paper measured). `loss.preset = NAME` sets every key below at once, so a config or a sweep grid
(`--grid loss.preset=vanilla,lsgan,hinge,wgan-gp`) selects a whole recipe as one value.

Where a preset applies (`gan.core.config.read_config`):
- named in a config file, it fills its keys under the file's own: the file refines its preset;
- named with `--set`, it fills them over the file, and every other `--set` still overrides it.
The resolved config.toml holds the name and every value, so a run reads back the same.

Every preset sets the same keys (a switch from one to another leaves nothing of the first), except
`loss.gp_weight`, which only wgan-gp reads. Pure data: no torch, read with the config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LossPreset:
    source: str  # the paper (and code) the values come from
    values: dict[str, Any]  # dotted config key -> value


def _preset(source: str, adversarial: str, g_lr: float, d_lr: float, betas: tuple[float, float], d_steps: int,
            norm: str, spectral_norm: bool, **extra: Any) -> LossPreset:
    return LossPreset(source, {
        "loss.adversarial": adversarial, "loss.label_smoothing": 0.0, "loss.instance_noise": 0.0,
        "train.g_lr": g_lr, "train.d_lr": d_lr, "train.beta1": betas[0], "train.beta2": betas[1],
        "train.d_steps": d_steps,
        "model.discriminator_args.norm": norm, "model.discriminator_args.spectral_norm": spectral_norm,
        **extra,
    })


LOSS_PRESETS = {
    "vanilla": _preset("DCGAN, Radford et al. 2016: Adam lr 2e-4 for both, beta1 0.5, BatchNorm in D",
                       "vanilla", 2e-4, 2e-4, (0.5, 0.999), 1, "batch", False),
    "lsgan": _preset("LSGAN, Mao et al. 2017 and its code (xudonmao/LSGAN): targets a = 0, b = 1, c = 1, "
                     "Adam lr 1e-3 for both, beta1 0.5, BatchNorm in D",
                     "lsgan", 1e-3, 1e-3, (0.5, 0.999), 1, "batch", False),
    "hinge": _preset("SAGAN, Zhang et al. 2019 (after SNGAN, Miyato et al. 2018): hinge loss, spectral norm in D "
                     "without BatchNorm, two time-scale rates G 1e-4 / D 4e-4, Adam beta (0, 0.9)",
                     "hinge", 1e-4, 4e-4, (0.0, 0.9), 1, "none", True),
    "wgan-gp": _preset("WGAN-GP, Gulrajani et al. 2017: 5 critic steps per G step, lambda 10, Adam lr 1e-4, "
                       "beta (0, 0.9), no BatchNorm in the critic",
                       "wgan-gp", 1e-4, 1e-4, (0.0, 0.9), 5, "none", False, **{"loss.gp_weight": 10.0}),
}
