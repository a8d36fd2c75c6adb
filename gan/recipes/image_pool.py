"""A history of generated images for the discriminator (Shrivastava et al. 2017; CycleGAN)."""

from __future__ import annotations

from typing import Any

import torch

SEED_OFFSET = 0x9001  # a pool's generator: its seed + this, apart from other seeded streams


class ImagePool:
    """Keeps up to `size` past generated images, on the device.

    `query(images)` returns a batch of the same size, image by image in order: while the pool
    fills, the new image itself (stored in the next free slot); once full, with probability
    0.5, a stored image drawn uniformly (the new image takes its slot), else the new image.
    That is the reference's rule (pytorch-CycleGAN-and-pix2pix `util/image_pool.py`).

    Every decision is a tensor operation on the pool's device: the fill count lives in a
    device tensor, and the draws come from the pool's own generator, seeded from `seed` and
    checkpointed. So no step waits for the host, a CUDA graph can capture the query (the
    recipe names `generator` in `device_generators()`), and a resume continues the same
    draws. One uniform and one slot are drawn for every image, filling or not. Size 0 turns
    the pool off.
    """

    def __init__(self, size: int = 50, device: torch.device | None = None, seed: int = 0):
        device = device or torch.device("cpu")
        self.size = size
        self.generator = torch.Generator(device=device).manual_seed(seed + SEED_OFFSET)
        self.images: torch.Tensor | None = None  # (size, C, H, W), made at the first query (eagerly)
        self.count = torch.zeros((), dtype=torch.long, device=device)  # slots filled

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        """images (N, C, H, W) -> (N, C, H, W), detached."""
        images = images.detach()
        if self.size == 0:
            return images
        if self.images is None:
            self.images = torch.zeros((self.size, *images.shape[1:]), dtype=images.dtype, device=images.device)
        swap_draws = torch.rand(len(images), generator=self.generator, device=images.device)
        slot_draws = torch.randint(self.size, (len(images),), generator=self.generator, device=images.device)
        returned = []
        for index in range(len(images)):  # in order: a later image may take the slot an earlier one filled
            image = images[index:index + 1]
            filling = self.count < self.size
            swap = ~filling & (swap_draws[index] < 0.5)
            slot = torch.where(filling, self.count.clamp(max=self.size - 1), slot_draws[index]).view(1)
            stored = self.images.index_select(0, slot)
            returned.append(torch.where(swap, stored, image))
            self.images.index_copy_(0, slot, torch.where(filling | swap, image, stored))
            self.count += filling
        return torch.cat(returned)

    def state_dict(self) -> dict[str, Any]:
        count = int(self.count)
        images = self.images[:count].cpu() if self.images is not None else torch.empty(0)
        return {"images": images, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        """Restores the stored images; a checkpoint from before the pool had its own generator keeps the seed's."""
        images = state["images"][:self.size]  # (a resume with a smaller loss.pool_size keeps the oldest)
        self.count.fill_(len(images))
        self.images = None
        if len(images):
            self.images = torch.zeros((self.size, *images.shape[1:]), dtype=images.dtype, device=device)
            self.images[:len(images)] = images.to(device)
        if "generator" in state:
            self.generator.set_state(state["generator"])
