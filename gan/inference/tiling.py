"""Running an image-to-image generator on images of any size (what `gan translate` does).

Inputs are padded (reflection) to the network's size multiple and cropped back. By default an
image goes through the network whole, as training's validation runs it. With a tile size,
larger images are processed in overlapping tiles blended with ramps, so the network's memory
stays bounded whatever the image size (the full-size output, about 21 bytes a pixel while it is
blended and converted, must still fit); that is exact only for networks that see no further than a quarter of
the overlap and normalise nothing per image (InstanceNorm normalises each tile on its own).
"""

from __future__ import annotations

import itertools
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from PIL import Image
from torch import nn

from gan.core.checkpoint import CheckpointError
from gan.core.devices import select_device
from gan.core.images import pil_to_signed, signed_to_pil
from gan.core.memory import available_memory, format_bytes, out_of_memory
from gan.core.progress import DelayedProgress
from gan.data.super_resolution import bicubic_resize
from gan.inference.exported import generator_name, load_source
from gan.inference.generators import required_arguments_beside_input
from gan.nets.running import (
    LARGE_PASS_PIXELS,
    eval_mode,
    largest_layer_bytes_per_pixel,
    live_layers,
    require_finite,
    run_padded,
)
from gan.recipes.loading import build_generator


def _tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Tile offsets covering [0, length): every `stride`, the last one flush with the end."""
    if length <= tile:
        return [0]
    return [*range(0, length - tile, stride), length - tile]


def _edge_weights(length: int, overlap: int, rise: bool, fall: bool) -> torch.Tensor:
    """Blending weights along one side of a tile, for edges shared with a neighbour.

    The outer quarter of the overlap gets weight 0 (those pixels saw the tile's
    border padding) and the middle half a linear ramp; a neighbour's weights are
    the mirror image, so the two always sum to 1. Networks whose receptive radius
    is at most overlap/4 therefore give exactly the untiled result.
    """
    weights = torch.ones(length, dtype=torch.float32)  # (not the default dtype: float64 doubled the output's memory)
    margin = overlap // 4
    blend = overlap - 2 * margin
    edge = torch.cat([torch.zeros(margin, dtype=torch.float32),
                      torch.arange(1, blend + 1, dtype=torch.float32) / (blend + 1)])
    if rise:
        weights[: len(edge)] = edge
    if fall:
        weights[length - len(edge):] = edge.flip(0)
    return weights


DEFAULT_OVERLAP = 32  # pixels shared by neighbouring tiles (gan translate's --overlap default)


WHOLE = 0  # --tile 0: every image in one pass


class ImageTooLargeError(RuntimeError):
    """A whole image did not fit in memory in one pass through the network."""


class TiledNormalisationWarning(UserWarning):
    """Tiles pass separately through layers that normalise each image, so they differ from one pass."""


def check_tiling(tile: int, overlap: int | None, overlap_option: bool = False) -> None:
    """`--tile` and `--overlap` as a command takes them; `overlap` None tiles with DEFAULT_OVERLAP.
    `overlap_option`: the command has --overlap (gan translate), so a tile too small for the
    default overlap names both ways out; gan eval's message names --tile alone."""
    if tile < 0:
        raise ValueError(f"--tile must be 0 (whole images) or a positive number of pixels, got {tile}")
    if overlap is not None and overlap < 0:  # (a bad value even where images go whole)
        raise ValueError(f"--overlap must be at least 0, got {overlap}")
    if tile == WHOLE:
        return
    shared = DEFAULT_OVERLAP if overlap is None else overlap
    if 2 * shared < tile:
        return
    if overlap is None and not overlap_option:
        raise ValueError(f"--tile ({tile}) must be at least {2 * DEFAULT_OVERLAP + 1}: tiles overlap by "
                         f"{DEFAULT_OVERLAP} px, which must be less than half a tile")
    default = ", its default" if overlap is None else ""
    most = (tile - 1) // 2  # (the largest overlap a tile this size takes)
    overlap_way = f"--overlap {most} or less" if most > 0 else "--overlap 0"
    raise ValueError(f"--tile ({tile}) must be more than twice --overlap ({shared}{default}): give --tile "
                     f"{2 * shared + 1} or more, or {overlap_way}")


def _normalises_each_image(generator: nn.Module) -> bool:
    """Whether some layer normalises by statistics of the image itself (InstanceNorm without
    running statistics, GroupNorm, LayerNorm), so that a tile is normalised differently."""
    return any((isinstance(module, nn.modules.instancenorm._InstanceNorm) and not module.track_running_stats)
               or isinstance(module, (nn.GroupNorm, nn.LayerNorm)) for module in generator.modules())


@contextmanager
def fitting_in_memory(width: int, height: int, device: torch.device, tile: int,
                      name: str | None = None) -> Iterator[None]:
    """The work on one `width` x `height` image: an allocation that fails in it (`out_of_memory`)
    becomes an ImageTooLargeError with the way round it. With `name`, the error names the image,
    also one raised by a nested such block (a Translator's, inside a command's per-image work)."""
    named = f"'{name}': " if name else ""
    try:
        yield
    except ImageTooLargeError as error:
        if not named:
            raise
        raise ImageTooLargeError(f"{named}{error}") from error
    except Exception as error:
        if not out_of_memory(error):
            raise
        way = ("pass --tile 512 (or smaller) to process it in overlapping tiles" if tile == WHOLE
               else f"pass a smaller --tile than {tile} (the whole output must fit too, whatever the tile)")
        raise ImageTooLargeError(f"{named}a {width}x{height} px image does not fit in {device.type} memory "
                                 f"({type(error).__name__}): {way}") from error


@torch.no_grad()
def translate_tensor(generator: nn.Module, images: torch.Tensor, size_multiple: int = 1, tile: int = WHOLE,
                     overlap: int = DEFAULT_OVERLAP, show_tiles: bool = False) -> torch.Tensor:
    """(N, C, H, W) in [-1, 1] -> the generator's output for the whole images: in one pass, or tile
    by tile when the images are larger than a `tile` other than WHOLE (`show_tiles`: a progress line of
    them once they take over 2 s, as one large image may take minutes). NonFiniteOutput when it holds
    NaN or infinite values. The generator runs in eval mode (its mode restored after), as a
    translation is not a training step: no dropout, and its running statistics neither used up nor moved."""
    check_tiling(tile, overlap)
    with eval_mode(generator):
        return _translated(generator, images, size_multiple, tile, overlap, show_tiles)


def _translated(generator: nn.Module, images: torch.Tensor, size_multiple: int, tile: int,
                overlap: int, show_tiles: bool = False) -> torch.Tensor:
    height, width = images.shape[-2:]
    if tile == WHOLE or (height <= tile and width <= tile):
        return require_finite(run_padded(generator, images, size_multiple))
    if _normalises_each_image(generator):
        warnings.warn(f"tiles of {tile} px are normalised one by one by this network's per-image normalisation "
                      "(InstanceNorm), so their tones can differ from one pass over the whole image: use --tile 0 "
                      "(whole images) where memory allows", TiledNormalisationWarning, stacklevel=4)
    output = weights = None
    starts = list(itertools.product(_tile_starts(height, tile, tile - overlap), _tile_starts(width, tile, tile - overlap)))
    progress = DelayedProgress(len(starts), unit="tile", rate_unit="tile") if show_tiles else None
    try:
        for done, (top, left) in enumerate(starts, 1):
            patch = images[..., top: top + tile, left: left + tile]
            result = require_finite(run_padded(generator, patch, size_multiple).float())
            upscale = result.shape[-1] // patch.shape[-1]
            if output is None:
                # (a batch's images tiled together: one of 1 was made for a batch of 2, a broadcast error)
                # (in the result's float32, not the default dtype: float64 doubled TILED_OUTPUT_BYTES_PER_PIXEL)
                output = torch.zeros(*result.shape[:2], height * upscale, width * upscale, dtype=result.dtype,
                                     device=result.device)
                weights = torch.zeros(1, 1, height * upscale, width * upscale, dtype=result.dtype, device=result.device)
            # ramps only on edges shared with another tile, so the image border keeps full weight
            mask = (_edge_weights(result.shape[-2], overlap * upscale, top > 0, top + tile < height)[:, None]
                    * _edge_weights(result.shape[-1], overlap * upscale, left > 0, left + tile < width)[None, :])
            mask = mask.to(result.device)
            rows = slice(top * upscale, top * upscale + result.shape[-2])
            columns = slice(left * upscale, left * upscale + result.shape[-1])
            output[..., rows, columns] += result * mask
            weights[..., rows, columns] += mask
            if progress is not None:
                progress.update(done)
    finally:
        if progress is not None:
            progress.close()
    return output.div_(weights)  # (in place: the output is the one full-size buffer a tiled pass keeps)


@dataclass
class Translator:
    """A loaded generator plus what its training implies about inputs."""

    generator: nn.Module
    device: torch.device
    input_upscale: int = 1  # bicubic-upsample inputs by this first (pix2pix-style super-resolution)
    output_upscale: int = 1  # the network's own upscaling (SRResNet, EDSR): its output over its input side
    size_multiple: int = 1  # H and W the network needs to divide (U-Net-256: 256)
    tile: int = WHOLE  # pixels per tile; WHOLE: one pass per image
    overlap: int = DEFAULT_OVERLAP
    checkpoint: Path | None = None  # where the weights came from
    config: dict | None = None  # the training config stored in the checkpoint
    step: int = 0  # training steps behind the weights
    bytes_per_pixel: float | None = None  # of its largest layer output, measured when first needed
    show_tiles: bool = False  # a progress line of a tiled image's tiles once they take over 2 s (gan translate)
    data_record: dict | None = None  # the checkpoint's record of its data: "folders" absolute ("data.root": ...), ...
    network: str = "generator"  # the network of the checkpoint it runs (a CycleGAN's: generator_AtoB or _BtoA)

    def prepare(self, image: Image.Image) -> Image.Image:
        """The image as the network sees it (upsampled for pix2pix-style SR)."""
        if self.input_upscale > 1:
            return bicubic_resize(image, (image.width * self.input_upscale, image.height * self.input_upscale))
        return image

    def __call__(self, image: Image.Image) -> Image.Image:
        """RGB image of any size -> RGB output image; ImageTooLargeError when memory runs out, or (on
        the CPU) before, when the pass would need more than the memory available."""
        with fitting_in_memory(image.width, image.height, self.device, self.tile):
            prepared = self.prepare(image)
            if self.device.type == "cpu":
                self._refuse_what_memory_cannot_hold(prepared.width, prepared.height, image.size)
            tensor = pil_to_signed(prepared)[None].to(self.device)
            output = translate_tensor(self.generator, tensor, self.size_multiple, self.tile, self.overlap,
                                      self.show_tiles)
            return signed_to_pil(output[0], in_place=True)  # (rounded and clamped in the output's own buffer)

    def _refuse_what_memory_cannot_hold(self, width: int, height: int, size: tuple[int, int]) -> None:
        """On the CPU, an allocation too large for memory does not fail: the kernel's out-of-memory
        killer ends the process, mid-folder, without a word. So a pass of more than a megapixel is
        first estimated (`live_layers` x the largest layer output) against the memory available, and
        so is a tiled image's full-size output (which no tile size makes smaller), and refused with
        the way round."""
        tiled = self.tile != WHOLE
        pass_height, pass_width = (min(height, self.tile), min(width, self.tile)) if tiled else (height, width)
        pixels = _rounded_up(pass_height, self.size_multiple) * _rounded_up(pass_width, self.size_multiple)
        # (a whole pass's output is within its `live_layers` estimate; a tiled one's outlives every pass)
        output_pixels = width * height * self.output_upscale**2 if tiled else 0
        if pixels <= LARGE_PASS_PIXELS and output_pixels <= LARGE_PASS_PIXELS:  # (most images: nothing run)
            return
        available = available_memory(self.device)
        if available is None:
            return
        output_bytes = output_pixels * TILED_OUTPUT_BYTES_PER_PIXEL
        if output_bytes > available:
            output_size = f"{width * self.output_upscale}x{height * self.output_upscale}"
            raise ImageTooLargeError(f"a {size[0]}x{size[1]} px image makes a {output_size} px output, which alone "
                                     f"needs about {format_bytes(output_bytes)} of memory as it is blended from "
                                     f"tiles, and {format_bytes(available)} are available: no --tile makes that "
                                     "smaller; translate a crop of it, or on a machine with more memory")
        if pixels > LARGE_PASS_PIXELS and self.bytes_per_pixel is None:
            self.bytes_per_pixel = largest_layer_bytes_per_pixel(self.generator, self.size_multiple, self.device)
        needed = ((pixels * self.bytes_per_pixel * live_layers(self.generator) if pixels > LARGE_PASS_PIXELS else 0)
                  + output_bytes)
        if needed > available:
            way = ("pass --tile 512 (or smaller) to process it in overlapping tiles" if self.tile == WHOLE
                   else f"pass a smaller --tile than {self.tile}" + (
                       f", no smaller than the network's size multiple, {self.size_multiple} px, which each tile is "
                       "padded to" if self.size_multiple > 1 else ""))
            raise ImageTooLargeError(f"a {size[0]}x{size[1]} px image would need about {format_bytes(needed)} of "
                                     f"memory in one pass, and {format_bytes(available)} are available: {way}")


# A tiled image's peak memory per output pixel beyond its passes: the float32 sum and weights it
# is blended in, then its 8-bit copies. Measured 21 (x4 SR, 4800x4800 output).
TILED_OUTPUT_BYTES_PER_PIXEL = 24


def _rounded_up(length: int, multiple: int) -> int:
    return -(-length // multiple) * multiple


def image_to_image_generator(state: dict, path: Path, direction: str | None = None) -> nn.Module:
    """The generator of a loaded checkpoint `state` (read from `path`), built; CheckpointError where it takes
    latents, not images (a config naming another recipe: the spec says what the network is)."""
    generator, _ = build_generator(state, path, generator_name(state["specs"], direction, path))
    if not hasattr(generator, "latent_dim"):
        return generator
    others = required_arguments_beside_input(generator)
    if not others:
        raise _unconditional(path)
    # (gan sample refuses it too: not the command to send it to)
    raise CheckpointError(f"'{path}' holds a generator that takes latents and {', '.join(others)}, not images: gan "
                          f"translate serves image-to-image generators, gan sample unconditional ones that take "
                          f"latents alone, and gan eval both, so none of them serves it; `gan export` writes its "
                          f"weights for one's own code")


def _unconditional(path: Path) -> CheckpointError:
    return CheckpointError(f"'{path}' is an unconditional generator (it takes latents, not images); use `gan sample`")


def load_translator(source: str | Path, device: torch.device, tile: int = WHOLE, overlap: int | None = None,
                    direction: str | None = None) -> Translator:
    """The image-to-image generator of a run directory (newest checkpoint) or checkpoint file.

    `overlap` None: DEFAULT_OVERLAP, for a command without an --overlap option.
    `direction` ("AtoB" or "BtoA") picks one of a CycleGAN checkpoint's two generators
    (AtoB when not given); checkpoints with one generator take no direction.
    """
    check_tiling(tile, overlap)
    overlap = DEFAULT_OVERLAP if overlap is None else overlap
    device = select_device(str(device), given_as="device=")  # (as load_generator: before the file is read)
    path, state = load_source(source, unconditional=False)
    config = state["config"]
    from gan.recipes import trains_unconditional  # (here: translating needs no recipe but to ask this)

    if trains_unconditional(config["recipe"]):
        raise _unconditional(path)
    network = generator_name(state["specs"], direction, path)
    generator = image_to_image_generator(state, path, direction).to(device)
    data = config["data"]
    super_resolution = data["dataset"] == "sr_pairs"
    input_upscale = data["scale"] if super_resolution and data["upsample_input"] else 1
    output_upscale = data["scale"] if super_resolution and not data["upsample_input"] else 1
    record = state.get("data")
    size_multiple = getattr(generator, "size_multiple", 1)
    if WHOLE < tile < size_multiple:  # (--tile 8 on a U-Net of multiple 32: 8x the passes, 5x the time, no memory saved)
        warnings.warn(f"--tile {tile} is smaller than the network's size multiple, {size_multiple} px, which each tile "
                      f"is padded to: smaller tiles take no less memory each, only more passes; give --tile "
                      f"{size_multiple} or more", stacklevel=2)
    return Translator(generator, device, input_upscale, output_upscale, size_multiple, tile,
                      overlap, path, config, state["step"], data_record=record if isinstance(record, dict) else None,
                      network=network)
