"""A generator as an ONNX graph, for ONNX Runtime and other engines that have neither gan nor torch.

torch's export-based ONNX exporter writes it (it needs onnxscript; the TorchScript exporter
it replaced is deprecated). The batch axis is dynamic. An image-to-image generator also
takes any H and W that are multiples of its `size_multiple` (U-Net: 2**num_downs, the ResNet:
4, SRResNet: any size) and at least its `smallest_size` (the ResNet: 8, whose residual blocks'
reflection pads need 2 px at 1/4 scale): they are declared as `size_multiple * k`, k from
`smallest_size / size_multiple` up, so `torch.export` proves the graph valid for every such
size, and the graph's input shape names the multiple ("32*height_blocks"). ONNX has no way
to refuse other sizes up front; a U-Net fails on them in its skip connections, a ResNet
below its smallest size in a reflection pad, other networks may return a wrongly sized image.
"""

from __future__ import annotations

import contextlib
import logging
import re
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from gan.core.json_text import standard_json
from gan.core.processes import interrupt_of, stops_noted
from gan.inference.generators import required_arguments_beside_input

# How images go in and come out, for engines that read pixels otherwise: OpenCV's are BGR, and its bicubic
# (as torch's) is the cubic of a = -0.75, whose upsampled Set5 is 0.2 dB PSNR from Pillow's
CHANNEL_ORDER = "RGB"
BICUBIC_RESAMPLING = ("Pillow's Image.resize(size, Image.Resampling.BICUBIC) (cubic convolution, a = -0.5) of the "
                      "8-bit RGB image, before it is scaled to [-1, 1]; not torch's or OpenCV's bicubic (a = -0.75)")
INSTALL_HINT = "pip install onnx onnxscript onnxruntime"  # (gan's `onnx` extra; in a checkout, pip install -e ".[onnx]")
EXAMPLE_BATCH = 2  # not 1: torch.export takes a size-1 dimension for a constant
# The heading in torch's exporter's errors above the line naming the exception, and the colours its text holds
EXCEPTION_SUMMARY = "## Exception summary"
ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


class OnnxUnavailable(RuntimeError):
    """The packages ONNX export needs (the `onnx` extra) are not installed."""


class OnnxExportFailed(RuntimeError):
    """torch's exporter could not turn the generator into an ONNX graph."""


def require_onnx() -> None:
    """Raise OnnxUnavailable, naming the install command, unless the exporter's packages import."""
    missing = []
    for module in ("onnx", "onnxscript"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise OnnxUnavailable(f"ONNX export needs {' and '.join(missing)}, which this Python lacks: run "
                              f"{INSTALL_HINT} (gan's onnx extra)")


def example_and_dynamic_shapes(generator: nn.Module) -> tuple[str, torch.Tensor, dict[int, Any]]:
    """(input name, an example input, its dynamic dimensions) for tracing `generator`: latents
    (N, latent_dim) for unconditional generators, images (N, C, H, W) for the others; float32 as the
    networks are (the caller's default dtype, float64 say, traced a graph the weights refuse)."""
    from torch.export import Dim

    batch = Dim("batch", min=1)
    if hasattr(generator, "latent_dim"):
        return "latents", torch.zeros(EXAMPLE_BATCH, generator.latent_dim, dtype=torch.float32), {0: batch}
    # Every image-to-image generator of the zoo registers the convolution that reads the image first.
    channels = next(module for module in generator.modules() if isinstance(module, nn.Conv2d)).in_channels
    multiple, fewest = size_multiple_of(generator), smallest_size_of(generator) // size_multiple_of(generator)
    if multiple > 1:
        height, width = multiple * Dim("height_blocks", min=fewest), multiple * Dim("width_blocks", min=fewest)
    else:
        height, width = Dim("height", min=fewest), Dim("width", min=fewest)
    # Unequal H and W, so that no guard ties the two together.
    example = torch.zeros(EXAMPLE_BATCH, channels, 2 * fewest * multiple, 3 * fewest * multiple, dtype=torch.float32)
    return "images", example, {0: batch, 2: height, 3: width}


def size_multiple_of(generator: nn.Module) -> int:
    """What H and W of the generator's input must be multiples of (1: any size)."""
    return getattr(generator, "size_multiple", 1)


def smallest_size_of(generator: nn.Module) -> int:
    """The smallest H and W the generator's input may have: its `smallest_input` rounded up to its
    size multiple, else the size multiple."""
    multiple = size_multiple_of(generator)
    return -(-getattr(generator, "smallest_input", multiple) // multiple) * multiple


def input_upscale(config: dict[str, Any]) -> int:
    """By how much inputs are bicubic-upsampled before the network sees them: the data's scale for
    pix2pix-style super-resolution (`gan translate` does the same), else 1."""
    data = config.get("data", {})
    return data["scale"] if data.get("dataset") == "sr_pairs" and data.get("upsample_input") else 1


def _shape(value: Any) -> list[int | str]:
    """A graph input's or output's shape: sizes, and names (`batch`, `4*height`) for dynamic ones."""
    return [dim if isinstance(dim, int) else str(dim.value) for dim in value.shape]


def onnx_program(generator: nn.Module, config: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """(the exported program, a description of its input and output for the sidecar) of an
    eval-mode `generator` trained with the run config `config`."""
    input_name, example, dynamic = example_and_dynamic_shapes(generator)
    others = required_arguments_beside_input(generator)
    if others:  # (torch's exporter failed on the call, its first line naming no cause)
        raise OnnxExportFailed(f"could not export {type(generator).__name__} to ONNX: its forward takes "
                               f"{', '.join(others)} beside its {input_name}, and gan's ONNX graph takes {input_name} "
                               f"alone: export its weights (--out NAME.safetensors or NAME.pt) for one's own code")
    with stops_noted() as stops, _torch_logs_dropped_after_a_stop(stops):
        try:
            program = torch.onnx.export(generator, (example,), None, input_names=[input_name],
                                        output_names=["generated"], dynamic_shapes=(dynamic,), dynamo=True,
                                        external_data=False, verbose=False)
        except Exception as error:  # the exporter raises many types; each is one failure to trace or translate
            if not stops:
                reason = _failure_reason(error)
                raise OnnxExportFailed(f"could not export {type(generator).__name__} to ONNX: {reason}") from error
        if stops:  # (torch's C++ made the stop's KeyboardInterrupt a RuntimeError: "Failed to decompose the FX graph")
            raise interrupt_of(stops[0]) from None
    graph = program.model.graph
    value_range = [-1.0, 1.0]
    description: dict[str, Any] = {
        "opset": program.model.opset_imports[""],
        "input": {"name": input_name, "shape": _shape(graph.inputs[0]),
                  **({"distribution": "standard normal"} if input_name == "latents" else
                     {"range": value_range, "channel_order": CHANNEL_ORDER})},
        # Residual and super-resolution outputs are linear and may overshoot: clip before making pixels.
        "output": {"name": "generated", "shape": _shape(graph.outputs[0]), "range": value_range,
                   "channel_order": CHANNEL_ORDER},
    }
    if input_name == "images":
        description["size_multiple"] = size_multiple_of(generator)
        description["smallest_size"] = smallest_size_of(generator)
        if input_upscale(config) > 1:
            description["input"]["bicubic_upsample_first"] = input_upscale(config)
            description["input"]["bicubic_resampling"] = BICUBIC_RESAMPLING
    return program, description


def _failure_reason(error: Exception) -> str:
    """The line of torch's exporter's `error` that names its cause: the one under its "## Exception summary"
    (`TypeError: missing a required argument: 'labels'`), else its first. (Its first alone said "Failed
    to export the model with torch.export. This is step 1/3 of exporting the model to ONNX. Next steps:".)"""
    lines = [line.strip() for line in ANSI_COLOUR.sub("", str(error)).splitlines() if line.strip()]
    if EXCEPTION_SUMMARY in lines[:-1]:
        return re.sub(r"^<class '(?:\w+\.)*(\w+)'>", r"\1", lines[lines.index(EXCEPTION_SUMMARY) + 1])
    return (lines or [type(error).__name__])[0]


@contextlib.contextmanager
def _torch_logs_dropped_after_a_stop(stops: list[int]) -> Iterator[None]:
    """torch's log records dropped once one of `stops` came (`stops_noted`): torch logs the error it
    makes of the stop's KeyboardInterrupt with its traceback (60 lines from fake_tensor.py) before
    gan hears of it, and gan says the stop in one line."""
    def before_a_stop(record: logging.LogRecord) -> bool:
        return not stops

    # (torch's loggers each keep their own handlers, and pass nothing on to the root logger's)
    handlers = {handler for name, logger in logging.Logger.manager.loggerDict.items()
                if name.partition(".")[0] == "torch" and isinstance(logger, logging.Logger) for handler in logger.handlers}
    for handler in handlers:
        handler.addFilter(before_a_stop)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(before_a_stop)


def write_onnx(program: Any, metadata: dict[str, Any], path: Path) -> None:
    """Write `program` to `path` as one self-contained file, with `metadata` (the sidecar's JSON)
    as its "gan" metadata entry, which ONNX Runtime reads back as custom metadata."""
    program.model.metadata_props["gan"] = standard_json(metadata)
    program.save(path, external_data=False)
