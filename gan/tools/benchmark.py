"""`gan bench`: training-step speed of each recipe's canonical configuration, side by side
with a plain eager fp32 baseline (`--baseline baseline.py`, a file of the same models written
without gan; see docs/performance.md), and the data path.

Both sides run in this process on random tensors made once on the device, in
alternating rounds, so machine noise hits them alike; the figure to read is the ratio.
"Ours" is what the training loop does per step: set the learning rates, run the
recipe's step, add its metrics to the on-device watch.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Callable

import torch

from gan.core.config import DataConfig
from gan.core.files import write_text_atomically
from gan.core.registry import ConfigError
from gan.recipes import RECIPES
from gan.recipes.schedules import lr_factor
from gan.training.cuda_graphs import EAGER_STEPS_BEFORE_CAPTURE, set_learning_rates
from gan.training.device import make_autocast, seed_everything
from gan.training.metric_watch import MetricWatch
from gan.training.preflight import check_batch_fits, check_pools_fit
from gan.training.resolve import load_config
from gan.training.speed import Speed, accelerate, to_device, training_step


@dataclass(frozen=True)
class Case:
    overrides: tuple[str, ...]  # on top of the config defaults
    baseline: str | None  # the same model in baseline.py, if it has one


# The papers' settings; each matches its baseline.py counterpart in shapes, batch and parameters.
_DCGAN = ("recipe=dcgan", "data.dataset=synthetic", "train.batch_size=64", "model.generator_args.latent_dim=100",
          "model.generator_args.channels=64", "model.discriminator_args.channels=64")
_SR = ("model.generator=srresnet", "data.dataset=sr_pairs", "data.resolution=96", "data.scale=4",
       "data.upsample_input=false", "train.batch_size=16", "train.g_lr=1e-4", "train.beta1=0.9", "train.ema_decay=0")
CASES = {
    "dcgan64": Case((*_DCGAN, "data.resolution=64"), "dcgan64"),
    "dcgan128": Case((*_DCGAN, "data.resolution=128"), "dcgan128"),
    "pix2pix256": Case(("recipe=pix2pix", "data.dataset=paired", "data.resolution=256", "model.generator=unet_256",
                        "model.discriminator=patchgan", "train.batch_size=1", "train.ema_decay=0"), "pix2pix256"),
    "cyclegan256": Case(("recipe=cyclegan", "data.dataset=unpaired", "data.resolution=256",
                         "model.generator=resnet_9blocks", "model.discriminator=patchgan",
                         "model.discriminator_args.norm=instance", "loss.adversarial=lsgan",
                         "train.batch_size=1", "train.ema_decay=0"), "cyclegan256"),
    "srresnet4x": Case(("recipe=srresnet", *_SR, "loss.adversarial_weight=0"), None),
    "srgan4x": Case(("recipe=srgan", "model.discriminator=srgan", "model.init_generator=none", *_SR, "train.d_lr=1e-4"),
                    "srgan4x"),
}


def synthetic_batch(recipe_name: str, batch_size: int, data: DataConfig, device: torch.device) -> dict:
    """Random tensors in each recipe's batch layout, at the sizes `data` gives them."""
    def images(size: int) -> torch.Tensor:
        # (float32 as the networks: a caller's float64 default dtype gave batches they refuse)
        return torch.rand(batch_size, 3, size, size, device=device, dtype=torch.float32) * 2 - 1

    resolution = data.resolution
    if recipe_name == "dcgan":
        return {"image": images(resolution)}
    if recipe_name == "cyclegan":
        return {"a": images(resolution), "b": images(resolution)}
    if recipe_name in ("srgan", "srresnet"):  # (a --set data.scale=2 tried a x2 net on x4 inputs: a traceback)
        if resolution % data.scale:  # (as the data set refuses it in training)
            raise ConfigError(f"data.resolution ({resolution}) must be a multiple of data.scale ({data.scale})")
        return {"input": images(resolution if data.upsample_input else resolution // data.scale),
                "target": images(resolution)}
    return {"input": images(resolution), "target": images(resolution)}


# The step by which ours is warm: compiled at its first, captured after the CUDA graph's eager steps.
COMPILED_AT, CAPTURED_AT = 1, EAGER_STEPS_BEFORE_CAPTURE + 1


def our_step(name: str, device: torch.device, fast: bool, overrides: tuple[str, ...] = (),
             counted: bool = False) -> tuple[Callable[[], None], int, Speed]:
    """(one training iteration as the loop runs it, batch size, the speed switches on).

    `fast` keeps the speed switches at their defaults; otherwise they are all off
    (eager fp32, as the baseline runs). `overrides` (`train.compile=off`, ...) come last, but
    for a step `counted` by the FLOP counter: eager whatever they say (a CUDA-graph replay runs
    no operator the counter sees; `--set train.compile=on` compiled again only to count)."""
    switches = () if fast else ("train.amp=false", "train.compile=off", "train.channels_last=off", "train.cuda_graph=off")
    settings = [*overrides, *switches] if counted else [*switches, *overrides]
    config = load_config(None, [*CASES[name].overrides, "train.steps=1000000", *settings])
    seed_everything(0)
    recipe = RECIPES.get(config.recipe)(config, device, make_autocast(device, config.train.amp))
    check_pools_fit(getattr(recipe, "pools", {}), config, device)  # (as gan train does: else the kernel kills it,
    check_batch_fits(recipe.networks, config, device)  # silently)
    for optimizer in recipe.optimizers.values():
        for group in optimizer.param_groups:
            group.setdefault("base_lr", group["lr"])
    speed = accelerate(recipe, config.train, device)
    batch = to_device(synthetic_batch(config.recipe, config.train.batch_size, config.data, device),
                      device, speed)
    watch = MetricWatch(device)
    run_step = training_step(recipe, speed, device)
    counter = {"step": 0}

    def step() -> None:
        counter["step"] += 1
        set_learning_rates(recipe.optimizers, lr_factor(counter["step"], config.train))
        recipe.before_step(counter["step"])
        watch.add(counter["step"], run_step(batch, counter["step"]))

    return step, config.train.batch_size, speed


# What one timed training step on a synthetic batch reads of [data], and the [train] keys it does not.
BENCH_DATA_KEYS = ("data.resolution", "data.scale", "data.upsample_input")
BENCH_UNREAD_TRAIN_KEYS = ("train.steps", "train.checkpoint_every", "train.keep_checkpoints", "train.keep_best",
                           "train.dist_timeout_s", "train.seed")


def unmeasured_overrides(overrides: tuple[str, ...] | list[str]) -> list[str]:
    """The keys of `overrides` that change nothing a bench measures: logging, metrics, the data
    set's files (the batch is synthetic), the run's length and checkpoints."""
    keys = [override.split("=", 1)[0].strip() for override in overrides]
    return [key for key in keys if key.startswith(("log.", "metrics.")) or key in BENCH_UNREAD_TRAIN_KEYS
            or (key.startswith("data.") and key not in BENCH_DATA_KEYS)]


# How fast our step runs, not what it computes: the switches whose share a bench measures.
BENCH_SPEED_KEYS = ("train.amp", "train.channels_last", "train.compile", "train.compile_backend", "train.compile_mode",
                    "train.cuda_graph", "train.optimizer_kernel", "train.cudnn_benchmark", "train.sync_debug")


def workload_overrides(overrides: tuple[str, ...] | list[str]) -> list[str]:
    """The keys of `overrides` that change the work of our step, which the baseline's canonical step
    does not follow: a ratio then compares two workloads. Every key is taken to change it but the speed
    switches, the batch (set on both sides) and those that change nothing a bench measures."""
    unmeasured = set(unmeasured_overrides(overrides))
    keys = [override.split("=", 1)[0].strip() for override in overrides]
    return [key for key in keys if key not in unmeasured and key not in BENCH_SPEED_KEYS
            and key != "train.batch_size"]


def batch_override(overrides: tuple[str, ...] | list[str]) -> tuple[int | None, tuple[str, ...]]:
    """(the batch size a `--set train.batch_size=N` asks for, or None; the other overrides): the batch
    is set on both sides, ours and the baseline's, so that their ratio compares the same work."""
    batch, others = None, []
    for override in overrides:
        if override.partition("=")[0].strip() == "train.batch_size":
            batch = load_config(None, [override]).train.batch_size  # (as TOML reads it: 0x40 too)
        else:
            others.append(override)
    return batch, tuple(others)


class BaselineError(ValueError):
    """The --baseline file is not a module of the plain models that bench can time."""


def load_baseline(path: Path, names: list[str] | tuple[str, ...] = ()) -> ModuleType:
    """The baseline module at `path`, which must define MODELS = {name: (batch size, build)} with each
    of `names`; FileNotFoundError naming it when absent, BaselineError when it is not such a module."""
    if not path.is_file():
        raise FileNotFoundError(f"no baseline file '{path}' (--baseline names a Python file of the plain models)")
    if path.suffix != ".py":
        raise BaselineError(f"--baseline '{path}' is not a Python file (.py): it names the file of the plain models, "
                            "such as baseline.py")
    module = _import_file(path)
    models = getattr(module, "MODELS", None)
    if not isinstance(models, dict):
        raise BaselineError(f"--baseline '{path}' defines no MODELS dict ({{name: (batch size, build function)}}), "
                            "which bench times")
    missing = [name for name in names if name not in models]
    if missing:
        raise BaselineError(f"--baseline '{path}' has no MODELS entry for {', '.join(missing)} (it has "
                            f"{', '.join(map(str, models)) or 'none'}); leave --baseline out to time ours alone")
    unusable = [name for name in names if not _usable_entry(models[name])]
    if unusable:
        raise BaselineError(f"--baseline '{path}': MODELS[{unusable[0]!r}] is not a (batch size, build function) pair "
                            f"with a positive int batch size: {models[unusable[0]]!r}")
    return module


def _usable_entry(entry: object) -> bool:
    """Whether a MODELS entry is (a positive int batch size, a build function); True is no batch size."""
    return (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], int)
            and not isinstance(entry[0], bool) and entry[0] > 0 and callable(entry[1]))


def _import_file(path: Path, name: str = "gan_bench_baseline") -> ModuleType:
    """The module at `path`, imported as `name`; BaselineError for any failure of the user's code."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    # registered first, as an import does: @dataclass looks its module up there (string annotations)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SystemExit as error:  # sys.exit, or argparse reading bench's own command line, at import
        sys.modules.pop(name, None)
        raise BaselineError(f"--baseline '{path}' cannot be imported: it exits at import (SystemExit: {error.code}); "
                            "keep its command line under `if __name__ == \"__main__\":`") from None
    except Exception as error:  # any error of the user's own module, reported in one line
        sys.modules.pop(name, None)
        raise BaselineError(f"--baseline '{path}' cannot be imported: {type(error).__name__}: {error}") from None
    return module


def baseline_step(module: ModuleType, name: str, device: torch.device, batch_size: int) -> Callable[[], None]:
    """One training iteration of the baseline's `name` at `batch_size` (ours: its MODELS default
    batch is not used, so that the ratio compares the same work)."""
    build = module.MODELS[name][1]
    entry = f"--baseline '{module.__file__}': MODELS[{name!r}]"
    torch.manual_seed(0)
    try:
        setup = build(batch_size, device, SimpleNamespace(vgg=False))
    except Exception as error:  # noqa: BLE001 - the baseline's own code: said in a line naming it
        raise BaselineError(f"{entry}'s build(batch, device, options) failed: {_in_a_line(error)}") from None
    _check_setup(setup, entry)
    for network in [*setup["G"], *setup["D"]]:
        network.train()
    step = setup["step"]

    def baseline_training_step() -> None:
        try:
            step()
        except Exception as error:  # noqa: BLE001
            raise BaselineError(f"{entry}'s step() failed: {_in_a_line(error)}") from None
    return baseline_training_step


def _in_a_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0]}"


def _check_setup(setup: object, entry: str) -> None:
    """BaselineError naming `entry` unless its build returned what a timing needs: {"G": [networks],
    "D": [networks], "step": function}."""
    if not isinstance(setup, dict):
        raise BaselineError(f"{entry}'s build returned a {type(setup).__name__}, not a dict of 'G', 'D' and 'step'")
    for key in ("G", "D"):
        networks = setup.get(key)
        if not isinstance(networks, (list, tuple)) or not all(isinstance(net, torch.nn.Module) for net in networks):
            raise BaselineError(f"{entry}'s build returned no '{key}' list of networks (torch.nn.Module)")
        if not any(parameter.numel() for net in networks for parameter in net.parameters()):
            # (empty lists and a step of nothing timed 500,000 img/s: a ratio of 0.000 that passed for one)
            raise BaselineError(f"{entry}'s build returned no network with parameters in '{key}'; the baseline "
                                "must train the model it names")
    if not callable(setup.get("step")):
        raise BaselineError(f"{entry}'s build returned no 'step' function")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _flops_per_image(step: Callable[[], None], batch: int, name: str) -> float | None:
    """FLOPs of one `step` per image; None, said, where torch's counter cannot follow the step (the
    step itself ran in the timed rounds)."""
    from torch.utils.flop_counter import FlopCounterMode

    try:
        with FlopCounterMode(display=False) as counter:
            step()
    except RuntimeError as error:  # (a penalty that differentiates twice: WGAN-GP, R1)
        warnings.warn(f"{name}: TFLOP/s not counted: torch's FLOP counter cannot follow this step "
                      f"({str(error).splitlines()[0][:160]}); its images/s stand", stacklevel=2)
        return None
    return counter.get_total_flops() / batch


@dataclass
class Row:
    model: str
    ours_images_per_s: float
    baseline_images_per_s: float | None
    ratio: float | None
    ours_peak_mib: float | None  # CUDA: peak allocated; CPU: None (see the process peak RSS)
    baseline_peak_mib: float | None
    ours_tflops: float | None  # achieved, from FlopCounterMode's count of one step
    baseline_tflops: float | None
    process_peak_rss_mib: float | None  # (None: the system does not say, Windows)
    batch_size: int | None = None  # of both sides: the baseline runs at ours


class _Side:
    """One contender: its step, batch, and timing accumulated over rounds (the figure reported) and of
    the last round alone (the progress line: a running average would hide a slow or noisy round).
    `cudnn_benchmark`: its setting of cuDNN's autotuner, a process-wide switch that each side's rounds
    set for themselves (ours turns it on as training does; a plain PyTorch baseline runs without it)."""

    def __init__(self, step: Callable[[], None], batch: int, device: torch.device, cudnn_benchmark: bool):
        self.step, self.batch, self.device = step, batch, device
        self.cudnn_benchmark = cudnn_benchmark
        self.seconds, self.iterations, self.peak = 0.0, 0, 0
        self.round_images_per_second = 0.0

    def warm_up(self, iterations: int, what: str, log) -> None:
        """`iterations` untimed steps, counted on `log` once they take over 2 s (a CycleGAN-256's on a CPU:
        minutes of compilation and steps without a word)."""
        from gan.core.progress import DelayedProgress

        torch.backends.cudnn.benchmark = self.cudnn_benchmark
        progress = DelayedProgress(iterations, unit=f"{what} warm-up step", rate_unit="step", stream=log)
        for done in range(1, iterations + 1):
            self.step()
            progress.update(done)
        progress.close()

    def run(self, iterations: int) -> None:
        torch.backends.cudnn.benchmark = self.cudnn_benchmark
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        _sync(self.device)
        start = time.perf_counter()
        for _ in range(iterations):
            self.step()
        _sync(self.device)
        elapsed = time.perf_counter() - start
        self.seconds += elapsed
        self.iterations += iterations
        self.round_images_per_second = self.batch * iterations / elapsed
        if self.device.type == "cuda":
            self.peak = max(self.peak, torch.cuda.max_memory_allocated(self.device))

    @property
    def images_per_second(self) -> float:
        return self.batch * self.iterations / self.seconds

    @property
    def peak_mib(self) -> float | None:
        return self.peak / 2**20 if self.device.type == "cuda" else None


def bench_model(name: str, device: torch.device, baseline: ModuleType | None, rounds: int, iterations: int,
                warmup: int, fast: bool, flops: bool, round_seconds: float = 2.0, log=None,
                overrides: tuple[str, ...] = (), batch_size: int | None = None) -> Row:
    """Time `name`, ours (with config `overrides`) and the baseline's, in `rounds` alternating rounds
    of `iterations` steps (0: as many as take about `round_seconds`, judged from one timed step of ours).
    `batch_size` replaces our canonical batch; the baseline always runs at ours."""
    log = log or sys.stderr  # (the stream of the moment: a caller may have replaced it since import)
    print(f"  timing {name} ...", file=log, flush=True)  # (a big model's build and warm-up take a while, silent)
    if batch_size:
        overrides = (*overrides, f"train.batch_size={batch_size}")
    if fast:  # compile afresh, as a training run does: another model's or batch's graphs would be reused with
        torch._dynamo.reset()  # dynamic shapes (automatic dynamic), which no run of this model would get
    plain_cudnn = torch.backends.cudnn.benchmark  # (the process's own, before our step sets it)
    try:
        step, batch, speed = our_step(name, device, fast, overrides)
        warm_at = CAPTURED_AT if speed.cuda_graph else COMPILED_AT if speed.compiled else 0
        if warmup < warm_at:
            print(f"  {name}: --warmup {warmup} leaves {'the CUDA graph capture' if speed.cuda_graph else 'compilation'} "
                  f"(done by step {warm_at}) in the first timed round, which it slows", file=log, flush=True)
        sides = {"ours": _Side(step, batch, device, torch.backends.cudnn.benchmark)}
        baseline_name = CASES[name].baseline
        if baseline is not None and baseline_name is not None:
            torch.backends.cudnn.benchmark = plain_cudnn
            sides["baseline"] = _Side(baseline_step(baseline, baseline_name, device, batch), batch, device, plain_cudnn)
            if baseline.MODELS[baseline_name][0] != batch:
                print(f"  {name}: the baseline's MODELS batch is {baseline.MODELS[baseline_name][0]}; both sides run "
                      f"at ours, {batch}", file=log, flush=True)
        for label, side in sides.items():
            side.warm_up(warmup, f"{name} {label}", log)
        if iterations < 1:
            _sync(device)
            start = time.perf_counter()
            sides["ours"].step()
            _sync(device)
            iterations = max(1, round(round_seconds / (time.perf_counter() - start)))
        for index in range(rounds):
            order = list(sides.values()) if index % 2 == 0 else list(sides.values())[::-1]
            for side in order:
                side.run(iterations)
            print(f"  {name} round {index + 1}/{rounds}: " + "  ".join(
                f"{label} {side.round_images_per_second:.2f} img/s" for label, side in sides.items()), file=log, flush=True)
        achieved = {}
        if flops:  # (an eager step of each side more, under the FLOP counter: a big model's takes a while)
            print(f"  {name}: counting the FLOPs of a step of each side ...", file=log, flush=True)
        for label, side in sides.items():
            # ours is counted on an eager step of the same arithmetic: a CUDA-graph replay runs no operator
            # that FlopCounterMode can see
            counted = our_step(name, device, False, overrides, counted=True)[0] if label == "ours" else side.step
            per_image = _flops_per_image(counted, side.batch, name) if flops else None
            achieved[label] = per_image * side.images_per_second / 1e12 if per_image is not None else None
        ours, base = sides["ours"], sides.get("baseline")
        return Row(
            model=name,
            ours_images_per_s=ours.images_per_second,
            baseline_images_per_s=base.images_per_second if base else None,
            ratio=ours.images_per_second / base.images_per_second if base else None,
            ours_peak_mib=ours.peak_mib,
            baseline_peak_mib=base.peak_mib if base else None,
            ours_tflops=achieved["ours"],
            baseline_tflops=achieved.get("baseline"),
            process_peak_rss_mib=process_peak_rss_mib(),
            batch_size=batch,
        )
    finally:  # (the next model's sides start from the process's own setting)
        torch.backends.cudnn.benchmark = plain_cudnn


def format_table(rows: list[Row]) -> str:
    def number(value: float | None, digits: int = 2) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    header = "| model | ours img/s | baseline img/s | ratio | peak MiB ours / base | TFLOP/s ours / base |"
    lines = [header, "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row.model} | {number(row.ours_images_per_s)} | {number(row.baseline_images_per_s)} | "
                     f"{number(row.ratio, 3)} | {number(row.ours_peak_mib, 0)} / {number(row.baseline_peak_mib, 0)} | "
                     f"{number(row.ours_tflops, 3)} / {number(row.baseline_tflops, 3)} |")
    return "\n".join(lines)


def write_json(path: Path, rows: list[Row], data_rows: list[dict], settings: dict,
               failures: dict[str, str] | None = None) -> None:
    """The results; `failures` names each model that could not be measured, with its error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, json.dumps({"settings": settings, "models": [asdict(row) for row in rows],
                                            "data": data_rows, "failures": failures or {}}, indent=2) + "\n")


# ----------------------------------------------------------------------------- the data path


DATA_BATCH = 64  # the data-path benchmark's batch size


class DataRootError(ValueError):
    """The --data-root folder is not one the data-path benchmark can read."""


def check_data_root(root: Path, batch_size: int = DATA_BATCH) -> None:
    """DataRootError, before anything is timed, for a --data-root the data-path benchmark cannot
    read: torchvision's ImageFolder (its comparison) needs ROOT/<subfolder>/images, and a batch
    needs `batch_size` images (fewer would leave its loader empty, and the timing loop waiting)."""
    from gan.data.decode import IMAGE_EXTENSIONS, find_images
    from gan.tools.listed_folder import ListedImageFolder

    if not root.is_dir():
        raise FileNotFoundError(f"--data-root '{root}' is not a folder")
    subfolders = [folder for folder in root.iterdir() if folder.is_dir() and not folder.name.startswith(".")]
    if not subfolders:
        raise DataRootError(f"--data-root '{root}' has no subfolders: the data-path benchmark compares with "
                            f"torchvision's ImageFolder, which reads ROOT/<subfolder>/*{IMAGE_EXTENSIONS[0]} (the "
                            f"folder holding img_align_celeba/, say)")
    # both paths need a batch: ours reads every image under ROOT, ImageFolder only those in subfolders
    count = len(ListedImageFolder(root, find_images(root)))
    if count < batch_size:
        raise DataRootError(f"--data-root '{root}' holds {count} images; the data-path benchmark needs at least "
                            f"{batch_size} (one batch) in its subfolders, which torchvision's ImageFolder reads")


def process_peak_rss_mib() -> float | None:
    """This process's peak resident memory so far (None where the system does not say: Windows)."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # (macOS counts bytes, Linux KiB)


def bench_data(root: Path, resolution: int, batch_size: int, batches: int, workers: int,
               cache_dir: Path, log=None) -> dict:
    """Images/s of the cached path against torchvision ImageFolder + transforms with `workers` workers,
    both over the folder's first images, as many as the timed batches take (of all 202,599 CelebA
    faces, the cache alone was 9.3 GiB in the temp folder, for 40 batches)."""
    from torchvision import transforms

    from gan.core.config import DataConfig
    from gan.core.files import WriteError
    from gan.data import build_dataset, training_batches
    from gan.data.decode import DECODE_ERRORS, ImageReadError
    from gan.tools.listed_folder import ListedImageFolder

    log = log or sys.stderr  # (the stream of the moment: a caller may have replaced it since import)

    data = DataConfig(dataset="folder", root=str(root), resolution=resolution, num_workers=workers,
                      cache="mmap", cache_dir=str(cache_dir), hflip=True, max_images=(batches + 1) * batch_size)
    start = time.perf_counter()
    try:
        dataset = build_dataset(data, root_key="--data-root")
        stream = training_batches(data, dataset, batch_size, 0, 0, torch.device("cpu"))
    except ImageReadError as error:  # (a folder of files none of which decode passes the check by name)
        raise DataRootError(str(error)) from None
    except WriteError as error:  # (its advice names data.cache_dir, which bench does not take)
        raise DataRootError(f"could not write the data-path benchmark's cache in the temp folder '{cache_dir}' "
                            f"({error.__cause__ or error}): set TMPDIR to a folder on a disk with room") from None
    build_seconds = time.perf_counter() - start

    def timed(make_iterator: Callable[[], object]) -> float:
        iterator = iter(make_iterator())
        next(iterator)  # workers started, first batch in
        start = time.perf_counter()
        for _ in range(batches):
            next(iterator)
        return batches * batch_size / (time.perf_counter() - start)

    cached = timed(lambda: stream)
    transform = transforms.Compose([
        transforms.Resize(resolution), transforms.CenterCrop(resolution), transforms.RandomHorizontalFlip(),
        transforms.ToTensor(), transforms.Normalize([0.5] * 3, [0.5] * 3)])
    folder = ListedImageFolder(root, dataset.paths, transform)  # (root holds class folders)
    if len(folder) < batch_size:  # (images at the top sort first: the subfolders' may be none of those read)
        raise DataRootError(f"--data-root '{root}': of the first {len(dataset)} images gan reads there (by path), "
                            f"{len(folder)} are in its subfolders, which torchvision's ImageFolder reads, and a batch "
                            f"needs {batch_size}: time a folder whose images are in subfolders (ROOT/images/*.jpg)")
    loader = torch.utils.data.DataLoader(folder, batch_size=batch_size, shuffle=True, num_workers=workers,
                                         drop_last=True, persistent_workers=workers > 0)
    try:
        torchvision_rate = timed(lambda: _endless(loader))
    except DECODE_ERRORS as error:  # ours skips such a file with a warning; ImageFolder stops at it
        last_line = str(error).strip().splitlines()[-1]  # (a worker's error carries its traceback)
        raise DataRootError(f"--data-root '{root}': torchvision's ImageFolder cannot read an image there "
                            f"({last_line}); remove the undecodable files to time the data path") from None
    result = {"root": str(root), "images": len(dataset), "resolution": resolution, "batch_size": batch_size,
              "workers": workers, "cache_build_s": build_seconds, "cached_images_per_s": cached,
              "imagefolder_images_per_s": torchvision_rate, "ratio": cached / torchvision_rate}
    print(f"  data: cached {cached:.0f} img/s, ImageFolder+transforms {torchvision_rate:.0f} img/s "
          f"({workers} workers), ratio {cached / torchvision_rate:.1f}; cache built in {build_seconds:.1f} s",
          file=log, flush=True)
    return result


def _endless(loader):
    """The batches of `loader`, pass after pass; DataRootError for a pass with none, which would
    otherwise loop forever."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise DataRootError("torchvision's ImageFolder loader gave no batch: fewer images than one batch")


@contextlib.contextmanager
def threads(count: int | None):
    previous = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
