"""`gan export --format onnx`: generators as ONNX graphs that ONNX Runtime runs like PyTorch does (issue 28)."""

import json
import math
import os
import signal
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import tiny_recipe_config, write_recipe_data

from gan.commands.main import main
from gan.inference.generators import load_generator
from gan.inference.onnx_export import onnx_program, write_onnx
from gan.inference.tiling import load_translator
from gan.training.loop import train

CPU = torch.device("cpu")
TOLERANCE = 1e-4  # float32 kernels of two engines: the order of additions differs, nothing else


@pytest.fixture(scope="module")
def onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        pytest.skip('onnxruntime is not installed: pip install -e ".[onnx]" runs the ONNX parity tests')
    return onnxruntime


@pytest.fixture(scope="module")
def runs(tiny_demo_run, tmp_path_factory):
    """Tiny runs of each generator family: DCGAN, U-Net (pix2pix), ResNet (CycleGAN), SRResNet (x4)."""
    root = tmp_path_factory.mktemp("onnx")
    data = write_recipe_data(root / "data")
    made = {"dcgan": tiny_demo_run}
    for recipe in ("pix2pix", "cyclegan", "srresnet"):
        config = tiny_recipe_config(recipe, data, "train.steps=2", "train.keep_best=", "log.eval_every=0",
                                    "log.image_every=1000")
        made[recipe] = train(config, root / recipe, CPU, progress_stream=open(os.devnull, "w")).run_dir
    return made


@pytest.fixture(scope="module")
def exports(onnxruntime, runs, tmp_path_factory):
    """Each run's generator exported with the defaults: {recipe: (file, its sidecar JSON)}."""
    folder = tmp_path_factory.mktemp("exports")
    return {recipe: (folder / f"{recipe}.onnx", exported(run, folder / f"{recipe}.onnx")) for recipe, run in runs.items()}


def export(source, out, *options):
    return CliRunner().invoke(main, ["export", str(source), "--out", str(out), *map(str, options)])


def exported(source, out, *options):
    """Export `source` to `out` through the CLI; returns the JSON written beside it."""
    result = export(source, out, *options)
    assert result.exit_code == 0, result.output
    return json.loads(out.with_name(out.name + ".json").read_text())


def run_onnx(onnxruntime, path, array: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (single_input,) = session.get_inputs()
    return session.run(None, {single_input.name: array})[0]


def max_difference(onnxruntime, path, generator, array: np.ndarray) -> float:
    with torch.no_grad():
        expected = generator(torch.from_numpy(array)).numpy()
    actual = run_onnx(onnxruntime, path, array)
    assert actual.shape == expected.shape
    return float(np.abs(actual - expected).max())


def test_an_unconditional_generator_matches_pytorch_at_two_batch_sizes(onnxruntime, runs, exports):
    out, sidecar = exports["dcgan"]
    generator = load_generator(runs["dcgan"], CPU).generator
    assert sidecar["network"] == "generator_ema" and sidecar["onnx"]["input"]["shape"] == ["batch", 100]
    for batch in (1, 5):
        latents = np.random.default_rng(batch).standard_normal((batch, generator.latent_dim), dtype=np.float32)
        assert max_difference(onnxruntime, out, generator, latents) <= TOLERANCE


@pytest.mark.parametrize("recipe,sizes", [
    ("pix2pix", [(32, 64), (64, 32)]),  # U-Net, num_downs=5: multiples of 32
    ("cyclegan", [(16, 20), (24, 12)]),  # ResNet: multiples of 4
    ("srresnet", [(8, 12), (13, 7)]),  # SRResNet x4: any LR size
])
def test_an_image_to_image_generator_matches_pytorch_at_two_batch_sizes_and_two_sizes(onnxruntime, runs, exports,
                                                                                      recipe, sizes):
    out = exports[recipe][0]
    generator = load_translator(runs[recipe], CPU).generator
    for batch, (height, width) in zip((1, 3), sizes, strict=True):
        images = np.random.default_rng(height).uniform(-1, 1, (batch, 3, height, width)).astype(np.float32)
        assert max_difference(onnxruntime, out, generator, images) <= TOLERANCE


def test_the_trained_weights_are_exported_with_generator_live(onnxruntime, runs, tmp_path):
    out = tmp_path / "live.onnx"
    assert exported(runs["dcgan"], out, "--generator", "live")["network"] == "generator"
    live, averaged = (load_generator(runs["dcgan"], CPU, which).generator for which in ("live", "ema"))
    latents = np.random.default_rng(0).standard_normal((2, live.latent_dim), dtype=np.float32)
    assert max_difference(onnxruntime, out, live, latents) <= TOLERANCE
    assert max_difference(onnxruntime, out, averaged, latents) > TOLERANCE  # not the EMA weights after all


def test_the_size_multiple_is_stated_and_other_sizes_are_refused(onnxruntime, exports):
    described = {recipe: exports[recipe][1]["onnx"] for recipe in ("pix2pix", "cyclegan", "srresnet", "dcgan")}
    assert [described[recipe].get("size_multiple") for recipe in described] == [32, 4, 1, None]
    assert [described[recipe].get("smallest_size") for recipe in described] == [32, 8, 1, None]
    assert described["cyclegan"]["input"]["shape"] == ["batch", 3, "4*height_blocks", "4*width_blocks"]
    assert described["pix2pix"]["input"]["shape"] == ["batch", 3, "32*height_blocks", "32*width_blocks"]
    assert described["srresnet"]["output"]["shape"] == ["batch", 3, "4*height", "4*width"]
    unet = exports["pix2pix"][0]
    session = onnxruntime.InferenceSession(str(unet), providers=["CPUExecutionProvider"])
    metadata = json.loads(session.get_modelmeta().custom_metadata_map["gan"])  # the sidecar travels in the file
    assert metadata == exports["pix2pix"][1]
    with pytest.raises(Exception, match="(?i)concat|dimension|shape"):  # 48 is not a multiple of 32
        run_onnx(onnxruntime, unet, np.zeros((1, 3, 48, 64), np.float32))
    with pytest.raises(Exception, match="(?i)pad"):  # a multiple of 4, but below the ResNet's smallest 8
        run_onnx(onnxruntime, exports["cyclegan"][0], np.zeros((1, 3, 4, 4), np.float32))
    help_text = CliRunner().invoke(main, ["export", "--help"]).output
    assert "2**num_downs" in help_text and "multiple" in help_text


def test_the_description_says_the_channel_order_and_the_bicubic_that_sr_inputs_need(onnxruntime, runs, exports):
    """An OpenCV user reads images as BGR and upsamples with OpenCV's bicubic (a = -0.75, 0.2 dB PSNR from Pillow's
    a = -0.5 on Set5): the description said neither which channel order nor which bicubic."""
    described = {recipe: exports[recipe][1]["onnx"] for recipe in ("pix2pix", "cyclegan", "srresnet", "dcgan")}
    assert [described[recipe]["input"].get("channel_order") for recipe in described] == ["RGB", "RGB", "RGB", None]
    assert [described[recipe]["output"]["channel_order"] for recipe in described] == ["RGB"] * 4
    assert "bicubic_resampling" not in described["pix2pix"]["input"]
    generator = load_translator(runs["pix2pix"], CPU).generator  # (as a pix2pix-style x4 super-resolution's)
    _, upsampling = onnx_program(generator, {"data": {"dataset": "sr_pairs", "scale": 4, "upsample_input": True}})
    assert upsampling["input"]["bicubic_upsample_first"] == 4
    assert "Image.Resampling.BICUBIC" in upsampling["input"]["bicubic_resampling"] and \
        "a = -0.5" in upsampling["input"]["bicubic_resampling"]


def test_the_onnx_extension_decides_the_format(runs, tmp_path):
    result = export(runs["dcgan"], tmp_path / "g.pt", "--format", "onnx")
    assert result.exit_code == 2 and "name it .onnx" in result.output
    (tmp_path / "g.onnx").write_bytes(b"not a model")
    result = CliRunner().invoke(main, ["sample", str(tmp_path / "g.onnx"), "--out", str(tmp_path / "s.png")])
    assert result.exit_code == 2 and "ONNX Runtime" in result.output


def test_an_existing_onnx_file_is_replaced_only_with_overwrite(onnxruntime, runs, tmp_path):
    out = tmp_path / "g.onnx"
    out.write_bytes(b"keep me")
    result = export(runs["dcgan"], out)
    assert result.exit_code == 2 and out.read_bytes() == b"keep me"
    assert export(runs["dcgan"], out, "--overwrite").exit_code == 0 and out.read_bytes() != b"keep me"


def test_without_the_onnx_extra_the_error_is_one_line_naming_the_install(runs, tmp_path, monkeypatch):
    for module in ("onnx", "onnxscript"):
        monkeypatch.setitem(sys.modules, module, None)  # any import of it now fails, as when it is not installed
    result = export(runs["dcgan"], tmp_path / "g.onnx")
    assert result.exit_code == 2 and not (tmp_path / "g.onnx").exists()
    assert len(result.output.strip().splitlines()) == 1 and 'pip install onnx onnxscript onnxruntime' in result.output


def test_a_failed_export_names_its_cause_in_one_line(onnxruntime, tiny_demo_run, tmp_path, monkeypatch):
    """torch's exporter's first line was all that was said: "could not export CondGenerator to ONNX: Failed to
    export the model with torch.export. This is step 1/3 of exporting the model to ONNX. Next steps:", the
    cause (a forward that takes labels beside its latents) further down its message."""
    from conftest import assert_one_error_line

    from gan.nets.dcgan import DCGANGenerator

    plain_forward = DCGANGenerator.forward

    def conditional_forward(self, latents, labels):
        return plain_forward(self, latents)

    def failing_forward(self, latents):
        raise ValueError("this layer needs a label")

    monkeypatch.setattr(DCGANGenerator, "forward", conditional_forward)
    assert_one_error_line(export(tiny_demo_run, tmp_path / "g.onnx"), "could not export DCGANGenerator to ONNX: its "
                          "forward takes labels beside its latents", "NAME.safetensors")
    monkeypatch.setattr(DCGANGenerator, "forward", failing_forward)  # (a failure found by tracing: torch's summary)
    line = assert_one_error_line(export(tiny_demo_run, tmp_path / "g.onnx"))
    assert line == "error: could not export DCGANGenerator to ONNX: ValueError: this layer needs a label", line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("stop,status,said", [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "Ctrl-C")])
def test_a_stop_while_tracing_ends_the_command_as_stopped_not_as_a_failed_export(onnxruntime, tiny_demo_run, tmp_path,
                                                                               monkeypatch, stop, status, said):
    """torch's C++ turns the KeyboardInterrupt a stop raises in Python code it calls into a RuntimeError, which its
    exporter wraps: a SIGTERM during tracing said "could not export UNetGenerator to ONNX: Failed to decompose the
    FX graph" (exit 2), after 60 lines of torch's log of the error."""
    import logging

    def stopped_while_tracing(*args, **kwargs):
        try:
            signal.raise_signal(stop)
        except KeyboardInterrupt as interrupt:  # (torch's log of it, then its C++ error, which keeps no link to it)
            logging.getLogger("torch._subclasses.fake_tensor").exception("failed while attempting to run meta")
            converted = RuntimeError(f"{type(interrupt).__name__}: {interrupt}")
        raise RuntimeError("Failed to decompose the FX graph for ONNX compatibility.") from converted

    monkeypatch.setattr(torch.onnx, "export", stopped_while_tracing)
    result = export(tiny_demo_run, tmp_path / "g.onnx")
    assert result.exit_code == status and result.output == f"error: stopped by {said}\n", result.output
    assert list(tmp_path.iterdir()) == []


def test_the_onnx_metadata_entry_is_standard_json(tmp_path):
    """An infinite config value (train.divergence_bound = inf) went into metadata_props["gan"] as
    Infinity, which strict JSON readers of the graph's custom metadata refuse."""
    program = SimpleNamespace(model=SimpleNamespace(metadata_props={}), save=lambda path, external_data: None)
    write_onnx(program, {"config": {"train": {"divergence_bound": math.inf}}, "nan": math.nan}, tmp_path / "g.onnx")
    text = program.model.metadata_props["gan"]
    assert "Infinity" not in text and "NaN" not in text
    assert json.loads(text) == {"config": {"train": {"divergence_bound": "inf"}}, "nan": "nan"}


def test_an_onnx_export_follows_the_umask(onnxruntime, runs, tmp_path):
    previous = os.umask(0o027)
    try:
        exported(runs["dcgan"], tmp_path / "g.onnx")
    finally:
        os.umask(previous)
    assert [oct(path.stat().st_mode & 0o777) for path in (tmp_path / "g.onnx", tmp_path / "g.onnx.json")] == \
           [oct(0o640)] * 2
