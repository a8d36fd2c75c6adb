"""What only a GPU can prove (`pytest -m cuda`; skipped without one). benchmarks/gpu_check.sh runs
these on a bare GPU machine: every recipe in bf16 and compiled without recompiling, compile
against eager (WGAN-GP's double backward included), resume, the device cache, and steady-state
steps that never make the host wait for the GPU."""

import re
import warnings

import pytest
import torch
from conftest import RECIPE_CONFIGS, random_rgb, tiny_config, tiny_recipe_config, write_recipe_data
from test_speed import two_steps

from gan.config import DataConfig
from gan.data import build_dataset, training_batches
from gan.train import _host_syncs_forbidden, train

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU (benchmarks/gpu_check.sh runs these on one)")]
CUDA = torch.device("cuda")
REPORT = re.compile(r"torch\.compile: (\d+) graphs compiled, (\d+) recompilations after warm-up")


@pytest.fixture(scope="module")
def recipe_data(tmp_path_factory):
    return write_recipe_data(tmp_path_factory.mktemp("data"))


@pytest.fixture
def face_folder(tmp_path):
    for index in range(24):
        random_rgb((40 + index, 36 + index), seed=index).save(tmp_path / f"{index:02d}.png")
    return tmp_path


@pytest.mark.parametrize("recipe", sorted(RECIPE_CONFIGS))
def test_each_recipe_trains_in_bf16_compiled_without_recompiling(recipe, recipe_data, tmp_path, capsys):
    config = tiny_recipe_config(recipe, recipe_data, "train.steps=4")  # CUDA defaults: bf16, compile, NHWC, fused
    assert config.train.amp and config.train.compile == "auto"
    torch._dynamo.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # srgan's randomly initialised VGG says so
        result = train(config, tmp_path / "run", CUDA)  # a non-finite loss would raise
    assert result.step == 4
    graphs, recompilations = map(int, REPORT.search(capsys.readouterr().err).groups())
    assert graphs >= 1 and recompilations == 0
    state = torch.load(result.checkpoint, weights_only=True)
    for network in state["networks"].values():
        for value in network.values():
            assert torch.isfinite(value.float()).all()


@pytest.mark.parametrize("loss", [(), ("loss.adversarial=wgan-gp", "model.discriminator_args.norm=none")])
def test_compiled_steps_match_eager_ones_on_cuda(loss):
    exact = ("train.amp=false", "train.channels_last=off")  # fp32, to compare tightly
    previous = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        eager_losses, eager_weights = two_steps(*exact, *loss, "train.compile=off", device=CUDA)
        losses, weights = two_steps(*exact, *loss, "train.compile=on", device=CUDA)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = previous
    for eager_step, step in zip(eager_losses, losses):
        for name, value in eager_step.items():
            assert step[name] == pytest.approx(value, rel=1e-3, abs=1e-3), name
    for key, value in eager_weights.items():
        torch.testing.assert_close(weights[key], value, rtol=1e-2, atol=1e-3)


def test_a_resume_on_cuda_continues_within_tolerance(tmp_path):
    common = ("train.checkpoint_every=2", "train.compile=off")
    straight = train(tiny_config(*common, "train.steps=4"), tmp_path / "straight", CUDA)
    train(tiny_config(*common, "train.steps=2"), tmp_path / "resumed", CUDA)
    resumed = train(tiny_config(*common, "train.steps=4"), tmp_path / "resumed", CUDA, resume=True)
    assert resumed.step == straight.step == 4
    one = torch.load(straight.checkpoint, weights_only=True)["networks"]
    two = torch.load(resumed.checkpoint, weights_only=True)["networks"]
    for name in one:
        for key, value in one[name].items():  # bf16 and cuDNN's algorithm choice: close, not equal
            torch.testing.assert_close(two[name][key].float(), value.float(), rtol=5e-2, atol=5e-3,
                                       msg=f"{name}.{key}")


def test_the_device_cache_gives_the_batches_of_the_ram_cache(face_folder, tmp_path):
    def batches(cache: str, device: torch.device) -> list[torch.Tensor]:
        config = DataConfig(dataset="folder", root=str(face_folder), resolution=16, num_workers=0, cache=cache,
                            cache_dir=str(tmp_path / "cache"), hflip=True)
        stream = training_batches(config, build_dataset(config), 8, 3, 5, device)
        return [next(stream)["image"].cpu().clone() for _ in range(7)]

    on_device, in_ram, on_cpu = batches("device", CUDA), batches("mmap", CUDA), batches("off", torch.device("cpu"))
    for a, b, c in zip(on_device, in_ram, on_cpu):
        assert torch.equal(a, b) and torch.equal(a, c)


def test_the_sync_check_catches_a_sync():
    with _host_syncs_forbidden(True), pytest.raises(RuntimeError, match="synchroniz"):
        torch.ones(1, device=CUDA).sum().item()


@pytest.mark.parametrize("cache", ["off", "mmap", "device"])
def test_steady_state_steps_never_wait_for_the_gpu(cache, face_folder, tmp_path):
    config = tiny_config("data.dataset=folder", f"data.root={face_folder}", f"data.cache={cache}",
                         f"data.cache_dir={tmp_path / 'cache'}", "train.sync_debug=true", "train.steps=12",
                         "log.every=5", "log.image_every=6", "train.checkpoint_every=6")
    assert train(config, tmp_path / "run", CUDA).step == 12  # a host sync inside a step would have raised
