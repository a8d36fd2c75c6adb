"""What only a GPU can prove (`pytest -m cuda`; skipped without one). benchmarks/gpu_check.sh runs
these on a bare GPU machine: every recipe in bf16, compiled without recompiling and replayed as a
CUDA graph, compile against eager (WGAN-GP's double backward included), graphed steps against
eager ones, resume, the device cache, and steady-state steps that never make the host wait for
the GPU."""

import contextlib
import re
import socket
import warnings

import pytest
import torch
import torch.distributed as dist
from conftest import RECIPE_CONFIGS, random_rgb, tiny_config, tiny_recipe_config, write_recipe_data
from test_speed import first_steps

from gan.core.checkpoint import list_checkpoints, load_checkpoint
from gan.core.config import DataConfig
from gan.core.distributed import gradient_averager
from gan.data import build_dataset, training_batches
from gan.recipes import RECIPES
from gan.training.cuda_graphs import GraphedStep
from gan.training.device import make_autocast, seed_everything
from gan.training.loop import _host_syncs_forbidden, train
from gan.training.speed import accelerate, to_device, training_step

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
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # (srgan's randomly initialised VGG warns too)
        result = train(config, tmp_path / "run", CUDA)  # a non-finite loss would raise
    assert result.step == 4
    assert not [str(w.message) for w in caught if "capture" in str(w.message)]
    err = capsys.readouterr().err
    graphs, recompilations = map(int, REPORT.search(err).groups())
    assert graphs >= 1 and recompilations == 0
    # Steps 1-3 warm up, step 4 is captured and replayed (CycleGAN with its image pool too).
    assert "CUDA graph: 1 captured" in err
    state = torch.load(result.checkpoint, weights_only=True)
    for network in state["networks"].values():
        for value in network.values():
            assert torch.isfinite(value.float()).all()


@pytest.mark.parametrize("loss", [(), ("loss.adversarial=wgan-gp", "model.discriminator_args.norm=none")])
def test_compiled_steps_match_eager_ones_on_cuda(loss):
    exact = ("train.amp=false", "train.channels_last=off")  # fp32, to compare tightly
    with no_tf32():
        eager_losses, eager_weights = first_steps(*exact, *loss, "train.compile=off", device=CUDA)
        losses, weights = first_steps(*exact, *loss, "train.compile=on", device=CUDA)
    for eager_step, step in zip(eager_losses, losses):
        for name, value in eager_step.items():
            assert step[name] == pytest.approx(value, rel=1e-3, abs=1e-3), name
    for key, value in eager_weights.items():
        torch.testing.assert_close(weights[key], value, rtol=1e-2, atol=1e-3)


@contextlib.contextmanager
def no_tf32():
    previous = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = previous


@pytest.mark.parametrize("compile", ["off", "on"])
def test_graphed_steps_match_eager_ones_on_cuda(compile):
    # Steps 1-3 warm up eagerly, step 4 is captured, 4-8 are replays: fresh latents each step,
    # the learning rates and the EMA's warm-up read from the device.
    exact = ("train.amp=false", "train.channels_last=off", f"train.compile={compile}")
    networks = ("generator", "discriminator", "generator_ema")
    with no_tf32():
        eager_losses, eager_weights = first_steps(*exact, "train.cuda_graph=off", device=CUDA, steps=8,
                                                  networks=networks)
        losses, weights = first_steps(*exact, "train.cuda_graph=on", device=CUDA, steps=8, networks=networks)
    for eager_step, step in zip(eager_losses, losses):
        for name, value in eager_step.items():
            assert step[name] == pytest.approx(value, rel=1e-3, abs=1e-3), name
    for key, value in eager_weights.items():
        torch.testing.assert_close(weights[key], value, rtol=1e-2, atol=1e-3, msg=key)


def test_graphed_steps_read_the_annealed_instance_noise_as_eager_ones_do():
    # One graph for the whole anneal: the std is a device tensor that the loop fills before each step.
    exact = ("train.amp=false", "train.channels_last=off", "train.compile=off", "loss.instance_noise=0.1",
             "loss.instance_noise_steps=8")
    with no_tf32():
        eager_losses, eager_weights = first_steps(*exact, "train.cuda_graph=off", device=CUDA, steps=10)
        losses, weights = first_steps(*exact, "train.cuda_graph=on", device=CUDA, steps=10)
    for eager_step, step in zip(eager_losses, losses):
        for name, value in eager_step.items():
            assert step[name] == pytest.approx(value, rel=1e-3, abs=1e-3), name
    for key, value in eager_weights.items():
        torch.testing.assert_close(weights[key], value, rtol=1e-2, atol=1e-3, msg=key)


def recipe_steps(config, steps: int, average_gradients: bool = False) -> tuple[list[dict[str, float]], object]:
    """The losses of `steps` steps of `config`'s recipe on one fixed random batch, and the step runner;
    `average_gradients`: through torchrun's gradient all-reduce (in an initialised process group of one)."""
    seed_everything(0)
    recipe = RECIPES.get(config.recipe)(config, CUDA, make_autocast(CUDA, config.train.amp))
    if average_gradients:
        for optimizer in recipe.optimizers.values():
            optimizer.register_step_pre_hook(gradient_averager(world_size=1))
    speed = accelerate(recipe, config.train, CUDA)
    run_step = training_step(recipe, speed, CUDA)
    size, generator = config.data.resolution, torch.Generator().manual_seed(1)
    keys = ("a", "b") if config.recipe == "cyclegan" else ("input", "target")
    batch = {key: torch.rand(config.train.batch_size, 3, size, size, generator=generator) * 2 - 1 for key in keys}
    return [{name: float(value) for name, value in run_step(to_device(batch, CUDA, speed), step).items()}
            for step in range(1, steps + 1)], run_step


def test_a_graph_per_key_follows_the_adversarial_start(recipe_data):
    # pix2pix trains on L1 alone for 4 steps, then with its discriminator: two graphs, each
    # captured after its own warm-up, and the losses of eager steps throughout.
    exact = ("train.amp=false", "train.channels_last=off", "train.adversarial_start=4")
    with no_tf32():
        eager, _ = recipe_steps(tiny_recipe_config("pix2pix", recipe_data, *exact, "train.cuda_graph=off"), 10)
        graphed, run_step = recipe_steps(tiny_recipe_config("pix2pix", recipe_data, *exact, "train.cuda_graph=on"), 10)
    assert isinstance(run_step, GraphedStep) and run_step.graphs == 2 and not run_step.failed
    for eager_step, step in zip(eager, graphed):
        for name, value in eager_step.items():
            assert step[name] == pytest.approx(value, rel=1e-3, abs=1e-3), name


@pytest.mark.parametrize("compile", ["off", "on"])
def test_graphed_steps_with_diffaugment_r1_and_spectral_norm_match_eager_ones(recipe_data, compile):
    # DiffAugment draws from its own generator: each replay must advance it (registered with the
    # graph), or the replays would repeat the captured draws and drift from the eager steps. R1 every
    # other step: two graphs, one with the double backward.
    settings = ("train.amp=false", "train.channels_last=off", f"train.compile={compile}", "loss.r1_gamma=1",
                "loss.r1_every=2", "loss.diffaugment=color,translation,cutout",
                "model.discriminator_args.spectral_norm=true")
    with no_tf32():
        eager, _ = recipe_steps(tiny_recipe_config("pix2pix", recipe_data, *settings, "train.cuda_graph=off"), 12)
        graphed, run_step = recipe_steps(tiny_recipe_config("pix2pix", recipe_data, *settings, "train.cuda_graph=on"),
                                         12)
    assert isinstance(run_step, GraphedStep) and run_step.graphs == 2 and not run_step.failed
    for eager_step, step in zip(eager, graphed):
        for name, value in eager_step.items():
            assert step[name] == pytest.approx(value, rel=1e-3, abs=1e-3), name


def test_graphed_cyclegan_steps_with_the_image_pool_match_eager_ones(recipe_data):
    # Batches of 2 fill the pool over steps 1-5 (captured at 4), then it swaps inside replays: its draws come from its
    # own generator, which each replay must advance, and its fill count is a device tensor.
    settings = ("train.amp=false", "train.channels_last=off", "train.compile=off", "loss.pool_size=10")
    with no_tf32():
        eager, _ = recipe_steps(tiny_recipe_config("cyclegan", recipe_data, *settings, "train.cuda_graph=off"), 12)
        graphed, run_step = recipe_steps(tiny_recipe_config("cyclegan", recipe_data, *settings,
                                                            "train.cuda_graph=on"), 12)
    assert isinstance(run_step, GraphedStep) and run_step.graphs == 1 and not run_step.failed
    for eager_step, step in zip(eager, graphed):
        for name, value in eager_step.items():
            assert step[name] == pytest.approx(value, rel=1e-3, abs=1e-3), name


def test_a_captured_step_holds_the_nccl_gradient_all_reduce(recipe_data, monkeypatch):
    # torchrun's path: gradients averaged by an NCCL all-reduce before each Adam step, captured with
    # the step. One process is a group of one, so its average is the gradient itself and the graphed
    # steps must give the eager steps' losses (several GPUs: benchmarks/gpu_check.sh on a bigger machine).
    settings = ("train.amp=false", "train.channels_last=off", "train.compile=off")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    dist.init_process_group("nccl", rank=0, world_size=1, device_id=torch.device("cuda", 0))
    try:
        with no_tf32():
            eager, _ = recipe_steps(tiny_recipe_config("pix2pix", recipe_data, *settings, "train.cuda_graph=off"), 8,
                                    average_gradients=True)
            graphed, run_step = recipe_steps(tiny_recipe_config("pix2pix", recipe_data, *settings,
                                                                "train.cuda_graph=on"), 8, average_gradients=True)
    finally:
        dist.destroy_process_group()
    assert isinstance(run_step, GraphedStep) and run_step.graphs == 1 and not run_step.failed
    for eager_step, step in zip(eager, graphed):
        for name, value in eager_step.items():
            assert step[name] == pytest.approx(value, rel=1e-3, abs=1e-3), name


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_graphed_steps_adapt_the_augment_probability_as_eager_ones_do(recipe_data):
    # ADA's p and its counts are device tensors updated in place inside the captured step.
    settings = ("train.amp=false", "train.channels_last=off", "train.compile=off",
                "loss.diffaugment=color,translation,cutout", "loss.augment_p=adaptive", "loss.augment_interval=1",
                "loss.augment_target=0.01", "loss.augment_images=8")
    with no_tf32():
        eager, _ = recipe_steps(tiny_recipe_config("pix2pix", recipe_data, *settings, "train.cuda_graph=off"), 12)
        graphed, run_step = recipe_steps(tiny_recipe_config("pix2pix", recipe_data, *settings, "train.cuda_graph=on"),
                                         12)
    assert isinstance(run_step, GraphedStep) and run_step.graphs == 1 and not run_step.failed
    assert len({step["augment/p"] for step in eager}) > 1  # p moved
    for eager_step, step in zip(eager, graphed):
        for name, value in eager_step.items():
            assert step[name] == pytest.approx(value, rel=1e-3, abs=1e-3), name


def test_spectral_norm_r1_and_diffaugment_train_in_bf16(recipe_data, tmp_path):
    config = tiny_recipe_config("dcgan", recipe_data, "loss.r1_gamma=1", "loss.r1_every=2",
                                "loss.diffaugment=color,translation,cutout", "model.discriminator_args.norm=none",
                                "model.discriminator_args.spectral_norm=true", "train.steps=8")
    result = train(config, tmp_path / "run", CUDA)
    state = load_checkpoint(list_checkpoints(result.run_dir)[-1])
    assert all(torch.isfinite(value).all() for value in state["networks"]["discriminator"].values())


def test_a_resume_on_cuda_continues_within_tolerance(tmp_path):
    # 8 steps straight (4-8 replayed as a CUDA graph) against 4 + 4 (each run warms up eagerly again).
    common = ("train.checkpoint_every=4", "train.compile=off")
    straight = train(tiny_config(*common, "train.steps=8"), tmp_path / "straight", CUDA)
    train(tiny_config(*common, "train.steps=4"), tmp_path / "resumed", CUDA)
    resumed = train(tiny_config(*common, "train.steps=8"), tmp_path / "resumed", CUDA, resume=True)
    assert resumed.step == straight.step == 8
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


def test_swd_on_the_gpu_gives_the_cpus_score():
    """The flagship's SWD measurements sort on the GPU (seconds instead of minutes of a call): the
    same patches and directions, so the same score up to float rounding."""
    from gan.metrics.swd import patch_descriptors, swd_from_descriptors

    generator = torch.Generator().manual_seed(0)
    real = torch.randint(0, 256, (64, 3, 64, 64), dtype=torch.uint8, generator=generator)
    fake = (real.float() * 0.8 + 20).round().byte()
    scores = {}
    for device in (torch.device("cpu"), CUDA):
        reference = patch_descriptors(real, device=device)
        scores[device.type] = swd_from_descriptors(reference, patch_descriptors(fake, seed=1, device=device), 64,
                                                   device=device)
    for name, value in scores["cpu"].items():
        assert scores["cuda"][name] == pytest.approx(value, rel=1e-3), name
