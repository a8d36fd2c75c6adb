"""Running a network for its outputs rather than to train it, shared by recipes (previews,
validation), metrics and commands: eval mode for a block, and any image size through the
network's size multiple, latents and batched generation. It sits below all of them and
imports none of them."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn


@contextmanager
def eval_mode(network: nn.Module) -> Iterator[nn.Module]:
    """Run `network` in eval mode (running norm statistics, no dropout) inside the block, then
    restore its mode; for previews, which must not change training state."""
    was_training = network.training
    network.eval()
    try:
        yield network
    finally:
        network.train(was_training)


@torch.no_grad()
def layer_output_bytes(network: nn.Module, forward: Callable[[], object]) -> list[int]:
    """Bytes of each leaf module's output while `forward()` runs `network` once: what its layers
    allocate, which grows with the input. In-place layers are left out (their output is their input)."""
    sizes: list[int] = []

    def record(module: nn.Module, args: object, output: object) -> None:
        tensors = output if isinstance(output, (tuple, list)) else [output]
        sizes.append(sum(tensor.numel() * tensor.element_size() for tensor in tensors if isinstance(tensor, torch.Tensor)))

    hooks = [module.register_forward_hook(record) for module in network.modules()
             if not list(module.children()) and not getattr(module, "inplace", False)]
    try:
        forward()
    finally:
        for hook in hooks:
            hook.remove()
    return sizes


def run_padded(generator: nn.Module, images: torch.Tensor, size_multiple: int) -> torch.Tensor:
    """generator(images) for any H, W: pad bottom/right to `size_multiple` (and to the network's
    `smallest_input`, where it has one), then crop the result back."""
    height, width = images.shape[-2:]
    smallest = getattr(generator, "smallest_input", 1)
    pad_height, pad_width = (-max(side, smallest) // size_multiple * -size_multiple - side for side in (height, width))
    if pad_height or pad_width:
        # reflection needs the pad to be smaller than the side; tiny images fall back to edge replication
        mode = "reflect" if pad_height < height and pad_width < width else "replicate"
        images = F.pad(images, (0, pad_width, 0, pad_height), mode=mode)
    output = generator(images)
    upscale = output.shape[-1] // images.shape[-1]
    return output[..., : height * upscale, : width * upscale]


NORMAL_BLOCK = 16  # torch's CPU normal sampler transforms uniforms in blocks of 16 values


def random_latents(count: int, latent_dim: int, seed: int) -> torch.Tensor:
    """(count, latent_dim) standard normal latents, reproducible from `seed` on any device, latent i
    the same whatever `count` is (`gan sample --n 4` begins with `--n 1`'s image). torch fills a last
    partial block of 16 values from fresh uniforms, so a draw of another size would differ there:
    whole blocks are drawn and the rest dropped (the same values as a plain draw when
    count x latent_dim is a multiple of 16). Always float32: a caller's float64 default dtype drew
    other numbers from the same seed."""
    numel = count * latent_dim
    drawn = torch.randn(-(-numel // NORMAL_BLOCK) * NORMAL_BLOCK, generator=torch.Generator().manual_seed(seed),
                        dtype=torch.float32)
    return drawn[:numel].view(count, latent_dim)


class NonFiniteOutput(ValueError):
    """A network's output holds NaN or infinite values: finite weights that overflow float32."""


def require_finite(output: torch.Tensor) -> torch.Tensor:
    """`output` as it is; NonFiniteOutput when any value is NaN or infinite. Written as an image,
    NaN turns black and infinity saturates without a word, so such an output is never used."""
    non_finite = int((~torch.isfinite(output)).sum())
    if non_finite:
        raise NonFiniteOutput(f"the network gave {non_finite:,} NaN or infinite value(s) among its {output.numel():,} "
                              "outputs (its finite weights overflow float32 on this input): images would show them "
                              "as black or saturated pixels, so none is written")
    return output


@torch.no_grad()
def in_chunks(forward: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor, size: int) -> torch.Tensor:
    """`forward(inputs)` computed `size` rows at a time and concatenated, so that memory holds one
    chunk's activations (a preview of 1,024 images at 256 px took ~17 GiB in one pass). The rows one
    pass gives where they never meet, as in a network in eval mode (BatchNorm on its running
    statistics); equal to float rounding, as kernels may sum in another order for another batch."""
    return torch.cat([forward(chunk) for chunk in inputs.split(size)])


def generate(generator: nn.Module, latents: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Images (N, 3, H, W) in [-1, 1] on the CPU, generated in batches by the generator in eval mode
    (its mode restored after: a batch's statistics would make image i depend on the others, and
    update the running ones); NonFiniteOutput for NaN or infinite outputs, which clamping would
    pass on as black or saturated pixels."""
    device = next(generator.parameters()).device
    with eval_mode(generator):
        images = in_chunks(lambda chunk: require_finite(generator(chunk.to(device)).float().cpu()), latents, batch_size)
    return images.clamp_(-1, 1)


def slerp(start: torch.Tensor, end: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between rows of `start` and `end` (N, D) at fractions `t` (K,) -> (N, K, D).

    For Gaussian latents it keeps intermediate points at a typical norm (White 2016).
    """
    start_unit = start / start.norm(dim=1, keepdim=True)
    end_unit = end / end.norm(dim=1, keepdim=True)
    omega = torch.acos((start_unit * end_unit).sum(1).clamp(-1 + 1e-7, 1 - 1e-7))[:, None]  # (N, 1)
    t = t[None, :]  # (1, K)
    sin_omega = torch.sin(omega)
    start_weight = (torch.sin((1 - t) * omega) / sin_omega)[..., None]
    end_weight = (torch.sin(t * omega) / sin_omega)[..., None]
    return start_weight * start[:, None] + end_weight * end[:, None]


def interpolation_latents(rows: int, steps: int, latent_dim: int, seed: int) -> torch.Tensor:
    """(rows * steps, latent_dim): row i walks in `steps` from latent 2i of `seed`'s draw to latent 2i + 1
    (those of `gan sample` images 2i and 2i + 1), so a row is the same whatever the number of rows."""
    endpoints = random_latents(2 * rows, latent_dim, seed)
    # (the fractions in the latents' float32: a caller's float64 default gave float64 latents, which a
    # float32 generator refuses)
    path = slerp(endpoints[0::2], endpoints[1::2], torch.linspace(0, 1, steps, dtype=endpoints.dtype))
    return path.reshape(rows * steps, latent_dim)


# A pass over this many pixels or fewer is not estimated (gan translate, SR validation): a few GiB at most.
LARGE_PASS_PIXELS = 2**20
# A pass's peak memory over its largest layer output, with the input and the next layer's output alive
# beside it: measured on the CPU from a clean baseline (VmHWM reset) at 1024 and 2048 px, 2.4 (SRResNet
# x4) to 2.9 (ResNet-9) (benchmarks/pass_memory.py). A network whose skip connections keep more alive
# says so in its `peak_layer_outputs` (the U-Net: 10), which `live_layers` reads.
LIVE_LAYERS = 4


def live_layers(generator: nn.Module) -> float:
    """The generator's pass peak over its largest layer output: its own `peak_layer_outputs`, else
    LIVE_LAYERS."""
    return getattr(generator, "peak_layer_outputs", LIVE_LAYERS)


def largest_layer_bytes_per_pixel(generator: nn.Module, size_multiple: int, device: torch.device) -> float:
    """Bytes of the generator's largest layer output per input pixel, from one pass over a small
    probe image: every layer's output grows with the input's area."""
    side = -(-64 // size_multiple) * size_multiple
    probe = torch.zeros(1, 3, side, side, device=device, dtype=torch.float32)  # (as images reach it)
    return max(layer_output_bytes(generator, lambda: run_padded(generator, probe, size_multiple))) / side**2
