"""A history of generated images for the discriminator (Shrivastava et al. 2017; CycleGAN)."""

from __future__ import annotations

from typing import Any

import torch


class ImagePool:
    """Keeps up to `size` past generated images.

    `query(images)` returns a batch of the same size: while the pool fills, the new
    images themselves; once full, each image is, with probability 0.5, swapped for a
    random stored one (which the new image replaces in the pool), else returned as
    is. Draws come from the global torch RNG, so checkpoints restore them exactly.
    Size 0 turns the pool off.
    """

    def __init__(self, size: int = 50):
        self.size = size
        self.images: list[torch.Tensor] = []

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        """images (N, C, H, W) -> (N, C, H, W), detached."""
        if self.size == 0:
            return images.detach()
        returned = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                returned.append(image)
            elif torch.rand(()).item() < 0.5:
                slot = int(torch.randint(len(self.images), ()).item())
                returned.append(self.images[slot].clone())
                self.images[slot] = image.clone()
            else:
                returned.append(image)
        return torch.stack(returned)

    def state_dict(self) -> dict[str, Any]:
        return {"images": torch.stack(self.images).cpu() if self.images else torch.empty(0)}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        self.images = [image.to(device) for image in state["images"]]
