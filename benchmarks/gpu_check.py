"""The one-call GPU check: proves the CUDA path and measures it, on a bare GPU machine.

Run through benchmarks/gpu_check.sh, which installs the project offline first. Stages, each
with a time limit, results written to OUT/gpu_check.json after every stage (so a stage that
runs out of time still leaves the others' figures):

1. `pytest -m cuda`: bf16 steps of every recipe, compile against eager, no recompilation,
   resume, the device cache, steady-state steps without a host sync.
2. `gan bench --json` for every model beside the plain baseline, in one process.
3. DCGAN-128 trained for `--train-seconds` on real faces with the default speed switches
   and `train.sync_debug` on: images/s, peak memory, the last sample grid (PNG).
4. A torch.profiler summary of DCGAN-128 steps: top kernels, share of GPU time in GEMM/conv,
   GPU busy time against the step's wall time (host- or device-bound), top host operators.
5. Only when asked (`--stages ...,ablation`): DCGAN-128 against the baseline with each speed
   switch off in turn, and with inductor's autotuned kernels (compile mode max-autotune).
6. Only when asked (`scaling`): DCGAN-128 at batch 64, 128 and 256 beside the baseline at the
   same batch, with the GPU's busy share of each step.
7. Only when asked (`flagship`): experiments/dcgan_celeba128.toml for `--flagship-steps` on the
   prepared 4,500 training faces at 128 px, SWD against the 500 held-out faces every
   `--flagship-metrics-every` steps; then SWD of the best checkpoint's EMA generator against the
   held-out and the training faces, the real-vs-real floor (held-out against training faces), a
   progress strip and the best checkpoint's sample grid (PNG), and the run's scalars and
   config.toml for `gan compare`. `--flagship-set KEY=VALUE` (repeatable) changes the config
   (DiffAugment, say) and `--flagship-label` names its outputs.

`--dry-run` runs the same stages on the CPU at toy sizes, so the script cannot rot.
`--prepare-faces SOURCE` (what `gpu_check.sh --prepare` runs) writes the 128-px faces.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # gan itself, installed or not
PREPARED = REPO / "benchmarks" / ".gpu_check"
FACES128 = PREPARED / "faces128"  # train/ and heldout/: CelebA crops at 128 px (--prepare-faces)
HELDOUT_FACES = 500  # the last faces by name, never trained on
# Goals of the issue that asked for this check (ratios against the baseline, same run).
GOALS = {"dcgan128": 3.0, "pix2pix256": 2.0, "cyclegan256": 2.0, "srgan4x": 2.0}
DCGAN128_IMAGES_PER_S_GOAL = 20000
BENCH_ORDER = ("dcgan128", "pix2pix256", "cyclegan256", "srgan4x", "dcgan64", "srresnet4x")
BENCH_GOALS = tuple(model for model in BENCH_ORDER if model in GOALS)  # the default: what fits a call's bench
# What one device call allows (the device tool: 600 s a command, 8 files back), and what its start
# costs before the first stage (the offline install, imports, CUDA's start).
CALL_LIMIT_S = 600
CALL_START_S = 40
RETURNED_FILES = 8
MATRIX_KERNELS = ("gemm", "conv", "cutlass", "xmma", "cudnn", "wgrad", "dgrad", "sm90", "sm80", "implicit")
# Kernels whose names hold one of those words but do no matrix work: cuDNN's NHWC padding of the input
# (`nhwcAddPaddingKernel<..., cudnnKernelDataType_t>`: 3.4% of the 2026-12-04 profile, counted in its 65%).
NOT_MATRIX_KERNELS = ("padding", "transpose", "nchwtonhwc", "nhwctonchw")


def is_matrix_kernel(name: str) -> bool:
    """Whether a CUDA kernel's name is of a convolution or matrix product (cuDNN's, cuBLAS's, CUTLASS's)."""
    lowered = name.lower()
    return any(word in lowered for word in MATRIX_KERNELS) and not any(word in lowered for word in NOT_MATRIX_KERNELS)


def log(message: str) -> None:
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except OSError:  # (gone already)
        pass


def run_stage(command: list[str], timeout: float, log_path: Path) -> dict:
    """Run `command`, teeing its output to `log_path`; its exit code, time and output tail."""
    start = time.perf_counter()
    with open(log_path, "w") as handle:
        # (a group of its own, killed whole at the limit: a child it left holding the pipe kept the read going)
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
        timer = threading.Timer(timeout, lambda: _kill_group(process))
        timer.start()
        for line in process.stdout:
            handle.write(line)
            sys.stderr.write(line)
        code = process.wait()
        timer.cancel()
    seconds = time.perf_counter() - start
    tail = log_path.read_text()[-3000:]
    return {"command": " ".join(command), "exit_code": code, "seconds": round(seconds, 1),
            "timed_out": seconds >= timeout, "output_tail": tail}


def stage_tests(out: Path, timeout: float) -> dict:
    result = run_stage([sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider", "-rfEs"],
                       timeout, out / "cuda_tests.log")
    counts = {}
    for word in ("passed", "failed", "skipped", "error", "errors"):
        for line in result["output_tail"].splitlines()[-3:]:
            for part in line.replace("=", "").split(","):
                part = part.strip().split(" in ")[0]
                if part.endswith(" " + word) and part.split()[0].isdigit():
                    counts[word] = int(part.split()[0])
    return {**result, "counts": counts}


def baseline_file() -> Path | None:
    """The prepared copy of the baseline, or the one beside the checkout; None when neither is there."""
    for path in (PREPARED / "baseline.py", REPO.parent / "shared" / "bench" / "baseline.py"):
        if path.is_file():
            return path
    return None


def stage_bench(out: Path, timeout: float, device: str, dry_run: bool, faces: Path,
                models: tuple[str, ...] = BENCH_ORDER) -> dict:
    baseline = baseline_file()
    command = [sys.executable, "-m", "gan", "bench", "--device", device, "--json", str(out / "bench.json"),
               *(["--baseline", str(baseline)] if baseline else []),
               "--data-root", str(faces) if faces.is_dir() and dry_run else "none"]
    if dry_run:
        command += ["--model", "dcgan64", "--rounds", "1", "--iters", "1", "--warmup", "0", "--eager"]
    else:  # the goals first, should the stage run out of time
        command += [arg for model in models for arg in ("--model", model)] + ["--rounds", "2"]
    # (the call's own folder: an earlier call's bench.json there is replaced, never reported as this one's)
    command.append("--overwrite")
    began = time.time_ns()
    result = run_stage(command, timeout, out / "bench.log")
    written = out / "bench.json"
    if written.is_file() and written.stat().st_mtime_ns >= began:  # (a stage that timed out keeps what it measured)
        result["results"] = json.loads(written.read_text())
    return result


STAGES = ("tests", "bench", "train", "profile", "ablation", "scaling", "flagship")


def stage_names(text: str) -> list[str]:
    """--stages, refused at parse time (a typo found after the machine started cost minutes of its budget)."""
    chosen = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in STAGES]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"{', '.join(unknown) or 'no stage'}: expected some of {', '.join(STAGES)}")
    return chosen


def seconds_above_0(text: str) -> float:
    """A stage's limit in seconds (a negative one passed the plan's sum of limits)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds above 0, got {text}")
    return value


def bench_models(text: str) -> tuple[str, ...]:
    """--bench-models: a measurement the call would spend minutes on must not fail on a typo at its end."""
    models = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in models if name not in BENCH_ORDER]
    if unknown or not models:
        raise argparse.ArgumentTypeError(f"{', '.join(unknown) or 'no model'}: expected some of {', '.join(BENCH_ORDER)}")
    return models


def dcgan128_config(dry_run: bool, data_root: Path | None, cache_dir: Path, sync_debug: bool):
    from gan.training.resolve import load_config

    if dry_run or data_root is None:
        data = ["data.dataset=synthetic", "data.num_workers=0", "data.cache=off"]
    else:
        data = ["data.dataset=folder", f"data.root={data_root}", "data.cache=device", f"data.cache_dir={cache_dir}"]
    toy = ["data.resolution=32", "model.generator_args.channels=8", "model.discriminator_args.channels=8",
           "train.batch_size=16", "log.every=5", "log.image_every=5", "log.num_samples=16"] if dry_run else \
        ["log.every=100", "log.image_every=4000"]
    return load_config(REPO / "experiments" / "dcgan_celeba128.toml", [
        *data, *toy, "train.steps=100000000", "train.checkpoint_every=100000000", "metrics.every=0",
        f"train.sync_debug={'true' if sync_debug else 'false'}"])


def stage_train(out: Path, seconds: float, device_name: str, dry_run: bool, faces: Path) -> dict:
    """Train DCGAN-128 for `seconds` with host syncs forbidden in steady-state steps; should one
    happen, the error is recorded and the speed measured again without the check."""
    try:
        return train_for(out, seconds, device_name, dry_run, faces, sync_debug=not dry_run)
    except RuntimeError as error:
        if "synchroniz" not in str(error):
            raise
        return {**train_for(out, seconds / 2, device_name, dry_run, faces, sync_debug=False),
                "sync_error": str(error)}


def train_for(out: Path, seconds: float, device_name: str, dry_run: bool, faces: Path, sync_debug: bool) -> dict:
    """Train DCGAN-128 for `seconds` (then SIGTERM: the loop saves and stops), read what it logged."""
    import tempfile

    import torch
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


    device = torch.device(device_name)
    work = Path(tempfile.mkdtemp(prefix="gpu_check_train_"))  # out gets back only a few files
    train_faces = faces / "train"
    config = dcgan128_config(dry_run, train_faces if train_faces.is_dir() else None, work / "cache", sync_debug)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    result, wall = train_with_deadline(config, work / "run", device, seconds)
    scalars = EventAccumulator(str(work / "run"), size_guidance={"scalars": 0}).Reload()
    logged = [event.value for event in scalars.Scalars("perf/images_per_s")]
    rates = logged[2:] or logged  # the first include compiling (a short dry run on a busy CPU may log no more)
    grids = sorted((work / "run" / "samples").glob("*-generator_ema.png"))
    if grids:
        shutil.copy(grids[-1], out / "dcgan128_samples.png")
    losses = {tag: scalars.Scalars(tag)[-1].value for tag in ("loss/d", "loss/g") if tag in scalars.Tags()["scalars"]}
    report = {
        "data": config.data.root or config.data.dataset, "images": config.data.dataset,
        "resolution": config.data.resolution, "batch_size": config.train.batch_size, "steps": result.step,
        "wall_seconds": round(wall, 1), "images_per_s_median": statistics.median(rates) if rates else None,
        "images_per_s_max": max(rates) if rates else None, "sync_debug": config.train.sync_debug,
        "peak_memory_mib": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
        "last_losses": losses, "sample_grid": grids[-1].name if grids else None,
    }
    shutil.rmtree(work, ignore_errors=True)
    return report


def train_with_deadline(config, run_dir: Path, device, seconds: float):
    """(the training result, wall seconds) of `config`, stopped by SIGTERM after `seconds` at the
    latest: the loop writes a checkpoint and stops, as on a preempted cluster job."""
    from gan.training.loop import train

    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGTERM))
    start = time.perf_counter()
    timer.start()
    try:
        result = train(config, run_dir, device)
    finally:
        timer.cancel()
    return result, time.perf_counter() - start


def stage_profile(out: Path, device_name: str, dry_run: bool) -> dict:
    """torch.profiler over DCGAN-128 training steps (bench's canonical setup, default switches)."""
    import torch
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    from gan.tools.benchmark import our_step

    device = torch.device(device_name)
    step, batch, _ = our_step("dcgan64" if dry_run else "dcgan128", device, fast=not dry_run)
    for _ in range(1 if dry_run else 10):  # compile, autotune
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    steps = 1 if dry_run else 10
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall = time.perf_counter() - start
    with profile(activities=activities) as profiler:
        for _ in range(steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    events = profiler.key_averages()
    host_ops = [event for event in events if event.key.startswith("aten::")]
    host_time = sum(event.self_cpu_time_total for event in host_ops)
    if device.type == "cuda":
        # Kernels (and copies/memsets) only: operator rows also carry their kernels' device time.
        kernels = [event for event in events if event.device_type == DeviceType.CUDA]
        timed = _device_time
    else:
        kernels, timed = host_ops, (lambda event: event.self_cpu_time_total)  # noqa: E731
    total = sum(timed(event) for event in kernels) or 1.0
    ranked = sorted(kernels, key=timed, reverse=True)
    matrix = sum(timed(event) for event in kernels if is_matrix_kernel(event.key))
    sort_by = "self_cpu_time_total"
    if device.type == "cuda":
        sort_by = "self_device_time_total" if hasattr(events[0], "self_device_time_total") else "self_cuda_time_total"
    (out / "profile.txt").write_text(events.table(sort_by=sort_by, row_limit=40) + "\n\nby host time:\n" +
                                     events.table(sort_by="self_cpu_time_total", row_limit=30))
    return {
        "steps_profiled": steps, "batch_size": batch,
        "step_ms": wall / steps * 1000,  # unprofiled, for comparison with the two below
        "device_busy_ms_per_step": total / steps / 1000 if device.type == "cuda" else None,
        "host_op_ms_per_step": host_time / steps / 1000,  # inflated by the profiler's own overhead
        "share_gemm_conv": matrix / total,
        "kernel_launches_per_step": sum(event.count for event in kernels) / steps if device.type == "cuda" else None,
        "top": [{"name": event.key[:120], "share": timed(event) / total, "calls": event.count}
                for event in ranked[:12]],
        "top_host": [{"name": event.key[:80], "ms_per_step": event.self_cpu_time_total / steps / 1000,
                      "calls_per_step": event.count / steps}
                     for event in sorted(host_ops, key=lambda e: e.self_cpu_time_total, reverse=True)[:12]],
    }


def _device_time(event) -> float:
    return getattr(event, "self_device_time_total", None) or getattr(event, "self_cuda_time_total", 0.0)


# Each speed switch off in turn, and CUDA graphs on, for DCGAN-128 against the baseline: where
# the time goes when the defaults fall short of a goal.
ABLATION = {
    "defaults": (True, ()),
    "compile off": (True, ("train.compile=off",)),
    "bf16 off": (True, ("train.amp=false",)),
    "channels_last off": (True, ("train.channels_last=off",)),
    "EMA off": (True, ("train.ema_decay=0",)),
    "CUDA graph of the step off": (True, ("train.cuda_graph=off",)),
    "compile max-autotune (inductor's timed kernels, the step still one graph)":
        (True, ("train.compile_mode=max-autotune-no-cudagraphs",)),
    "all off (eager fp32)": (False, ()),
}


def stage_ablation(out: Path, device_name: str, dry_run: bool, report: dict, save) -> dict:
    """DCGAN-128 with each speed switch off in turn (and max-autotune): each variant goes into
    `report` and is saved as it comes (the stage takes about 7 minutes, mostly compiling)."""
    import torch

    from gan.tools.benchmark import bench_model, load_baseline

    device = torch.device(device_name)
    baseline = load_baseline(baseline_file()) if baseline_file() else None
    model, rounds = ("dcgan64", 1) if dry_run else ("dcgan128", 2)
    variants = {"defaults": ABLATION["defaults"], "compile off": ABLATION["compile off"]} if dry_run else ABLATION
    report["model"] = model
    results = report.setdefault("variants", {})
    for label, (fast, overrides) in variants.items():
        log(f"ablation: {model} {label}")
        try:
            row = bench_model(model, device, baseline, rounds, 1 if dry_run else 0, 0 if dry_run else 5, fast=fast,
                              flops=False, overrides=overrides)
            results[label] = {"images_per_s": row.ours_images_per_s, "baseline_images_per_s":
                              row.baseline_images_per_s, "ratio": row.ratio, "peak_mib": row.ours_peak_mib}
        except Exception as error:  # a variant that fails is a finding, not the end of the check
            results[label] = {"error": f"{type(error).__name__}: {str(error)[:500]}"}
        save()
    return report


def prepare_faces(source: Path, destination: Path, size: int = 128, heldout: int = HELDOUT_FACES) -> dict:
    """The face crops of `source` (sorted by name) as `size`-px squares (centre square, bicubic),
    JPEG quality 95: the last `heldout` into heldout/, the rest into train/."""
    from PIL import Image

    paths = sorted(path for path in source.iterdir() if path.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if len(paths) <= heldout:
        sys.exit(f"gpu_check: '{source}' holds {len(paths)} images; more than {heldout} are needed")
    shutil.rmtree(destination, ignore_errors=True)
    for split, chosen in (("train", paths[:-heldout]), ("heldout", paths[-heldout:])):
        (destination / split).mkdir(parents=True)
        for path in chosen:
            with Image.open(path) as image:
                image = image.convert("RGB")
                side = min(image.size)
                left, top = (image.width - side) // 2, (image.height - side) // 2
                square = image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BICUBIC)
                square.save(destination / split / f"{path.stem}.jpg", quality=95)
    counts = {split: len(list((destination / split).iterdir())) for split in ("train", "heldout")}
    log(f"prepared {counts['train']} training and {counts['heldout']} held-out faces at {size} px in {destination}")
    return counts


def busy_share(model: str, device_name: str, overrides: tuple[str, ...], steps: int) -> dict:
    """Wall time of `steps` training steps of bench's `model` (default switches) and the GPU's busy
    time in them, from torch.profiler's kernel times; on the CPU, the wall time alone."""
    import torch
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    from gan.tools.benchmark import our_step

    device = torch.device(device_name)
    if device.type == "cuda":
        torch._dynamo.reset()  # static shapes for this batch, as its own training run would compile
    step, _, _ = our_step(model, device, fast=device.type == "cuda", overrides=overrides)
    for _ in range(max(3, steps)):  # compile, autotune, capture
        step()

    def timed() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    wall = timed()
    if device.type != "cuda":
        return {"step_ms": wall / steps * 1000, "gpu_busy_ms": None, "gpu_busy_share": None}
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as profiler:
        timed()
    busy = sum(_device_time(event) for event in profiler.key_averages() if event.device_type == DeviceType.CUDA)
    busy_ms = busy / steps / 1000
    return {"step_ms": wall / steps * 1000, "gpu_busy_ms": busy_ms, "gpu_busy_share": busy_ms / (wall / steps * 1000)}


def stage_scaling(device_name: str, dry_run: bool, report: dict, save) -> dict:
    """DCGAN-128 images/s at growing batches, beside the baseline at the same batch, and how busy
    the GPU is in a step: what a bigger batch buys on a big GPU. Each row goes into `report` and
    is saved as it comes, so a call cut short keeps the rows it measured."""
    import torch

    from gan.tools.benchmark import bench_model, load_baseline

    device = torch.device(device_name)
    baseline = load_baseline(baseline_file()) if baseline_file() else None
    model, batches = ("dcgan64", (8, 16)) if dry_run else ("dcgan128", (64, 128, 256))
    rows = report.setdefault("rows", [])
    report["model"] = model
    for batch in batches:
        log(f"scaling: {model} at batch {batch}")
        row = bench_model(model, device, baseline, 1 if dry_run else 2, 1 if dry_run else 0, 0 if dry_run else 5,
                          fast=not dry_run, flops=False, batch_size=batch)
        busy = busy_share(model, device_name, (f"train.batch_size={batch}",), 2 if dry_run else 20)
        rows.append({"batch_size": batch, "images_per_s": row.ours_images_per_s,
                     "baseline_images_per_s": row.baseline_images_per_s, "ratio": row.ratio,
                     "peak_mib": row.ours_peak_mib, **busy})
        save()
    return report


def flagship_config(dry_run: bool, faces: Path, work: Path, steps: int, metrics_every: int, overrides: list[str]):
    """experiments/dcgan_celeba128.toml on the prepared faces (toy sizes for a dry run), with SWD
    against the held-out faces; `overrides` last."""
    from gan.training.resolve import load_config

    toy = ["data.resolution=32", "model.generator_args.channels=8", "model.discriminator_args.channels=8",
           "train.batch_size=16", "log.num_samples=16", "data.cache=off", "data.num_workers=0"] if dry_run else \
        ["data.cache=device", f"data.cache_dir={work / 'cache'}"]
    return load_config(REPO / "experiments" / "dcgan_celeba128.toml", [f"metrics.cache_dir={work / 'reference'}",
        "data.dataset=folder", f"data.root={faces / 'train'}", f"metrics.root={faces / 'heldout'}",
        f"metrics.num_samples={count_images(faces / 'heldout')}", "metrics.names=[\"swd\"]", f"train.steps={steps}",
        f"metrics.every={metrics_every}", f"log.image_every={metrics_every}", f"train.checkpoint_every={metrics_every}",
        "log.every=100", *toy, *overrides])


def stage_flagship(out: Path, device_name: str, dry_run: bool, faces: Path, steps: int, metrics_every: int,
                   seconds: float, overrides: list[str], label: str) -> dict:
    """Train the flagship config on the prepared faces (stopped by SIGTERM after `seconds` at the
    latest: the loop checkpoints and stops), then score its best checkpoint."""
    import tempfile

    import torch

    if not (faces / "heldout").is_dir():
        raise FileNotFoundError(f"no prepared faces in {faces}: run benchmarks/gpu_check.sh --prepare first")
    device = torch.device(device_name)
    work = Path(tempfile.mkdtemp(prefix="gpu_check_flagship_"))
    try:  # best.pt (hundreds of MB) cannot come back: the figures and grids do; the temp goes whatever happens
        return _flagship(out, device, dry_run, faces, work, steps, metrics_every, seconds, overrides, label)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _flagship(out: Path, device, dry_run: bool, faces: Path, work: Path, steps: int, metrics_every: int,
              seconds: float, overrides: list[str], label: str) -> dict:
    from gan.core.checkpoint import BEST_NAME, best_checkpoint, resolve_checkpoint
    from gan.core.images import save_image_grid
    from gan.inference.generators import load_generator
    from gan.inference.scoring import evaluate_generative
    from gan.nets.running import generate, random_latents

    config = flagship_config(dry_run, faces, work, steps, metrics_every, overrides)
    heldout = count_images(faces / "heldout")
    result, wall = train_with_deadline(config, work / "run", device, seconds)
    run = work / "run"
    records = run / "metrics.jsonl"  # absent when the deadline came before the first measurement
    history = [json.loads(line) for line in records.read_text().splitlines() if line.strip()] if records.is_file() else []
    best = best_checkpoint(run) if (run / BEST_NAME).is_file() else resolve_checkpoint(run)  # else the newest
    loaded = load_generator(best, device)
    scores = {split: evaluate_generative(loaded, ["swd"], heldout, device, data_root=faces / split,
                                         cache_dir=str(work / "reference"))["swd/mean"] for split in ("heldout", "train")}
    scores["floor"] = real_vs_real_swd(config, faces, work / "reference", device)
    save_image_grid(generate(loaded.generator, random_latents(32, loaded.generator.latent_dim, seed=0)).float().cpu(),
                    out / f"{label}_best.png", num_columns=8)
    progress_strip(run / "samples", out / f"{label}_progress.png", config.data.resolution)
    scalars_for_compare(run, out / f"{label}-run")
    report = {"label": label, "overrides": overrides, "steps": result.step, "planned_steps": steps,
              "wall_seconds": round(wall, 1), "images_seen": result.step * config.train.batch_size,
              "epochs": result.step * config.train.batch_size / count_images(faces / "train"),
              "best": json.loads((run / "best.json").read_text()) if (run / "best.json").is_file() else None,
              "best_checkpoint": best.name,
              "swd_history": [{"step": row.get("step"), "swd_mean": row.get("swd/mean")} for row in history],
              "best_swd_heldout": scores["heldout"], "best_swd_train": scores["train"],
              "real_vs_real_floor": scores["floor"], "heldout_over_floor": scores["heldout"] / scores["floor"]}
    return report


def count_images(folder: Path) -> int:
    return sum(1 for path in folder.iterdir() if path.suffix.lower() in (".jpg", ".jpeg", ".png"))


def real_vs_real_swd(config, faces: Path, cache_dir: Path, device) -> float:
    """SWD of the held-out faces against as many training faces: the floor a generator can reach."""
    import dataclasses

    from gan.metrics.generative import GenerativeEvaluator, load_reference_images

    heldout = load_reference_images(dataclasses.replace(config.data, root=str(faces / "heldout")),
                                    count_images(faces / "heldout"))
    evaluator = GenerativeEvaluator(dataclasses.replace(config.data, root=str(faces / "train")), ["swd"],
                                    len(heldout), device, cache_dir=cache_dir)
    return evaluator.score(heldout)["swd/mean"]


def progress_strip(samples: Path, path: Path, resolution: int, rows: int = 6) -> None:
    """The first row of up to `rows` EMA sample grids spread over the run, top to bottom: the same
    latents as training went on."""
    from PIL import Image

    grids = sorted(samples.glob("*-generator_ema.png"))
    if not grids:
        return
    chosen = [grids[round(i * (len(grids) - 1) / max(1, rows - 1))] for i in range(min(rows, len(grids)))]
    strips = []
    for grid in dict.fromkeys(chosen):
        with Image.open(grid) as image:  # make_grid's rows: 2 px of padding above and below each
            strips.append(image.convert("RGB").crop((0, 0, image.width, resolution + 4)))
    strip = Image.new("RGB", (strips[0].width, sum(part.height for part in strips)))
    for index, part in enumerate(strips):
        strip.paste(part, (0, sum(p.height for p in strips[:index])))
    strip.save(path)


def scalars_for_compare(run: Path, destination: Path) -> None:
    """The run's config.toml and its scalars (no images) as a TensorBoard run `gan compare` reads:
    small enough to come back from the GPU machine."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    destination.mkdir(parents=True, exist_ok=True)
    shutil.copy(run / "config.toml", destination / "config.toml")
    events = EventAccumulator(str(run), size_guidance={"scalars": 0}).Reload()
    writer = SummaryWriter(str(destination))
    for tag in events.Tags()["scalars"]:
        for event in events.Scalars(tag):
            writer.add_scalar(tag, event.value, event.step, walltime=event.wall_time)
    writer.close()


def write_whole(path: Path, text: str) -> None:
    """`text` into `path` under a temp name, then renamed: a call killed at its limit mid-write leaves the
    last whole file, not a JSON cut short."""
    temp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    temp.write_text(text)
    os.replace(temp, path)


def source_commit() -> str | None:
    """The code measured: asked of git where the checkout has it; on the GPU machine (a copy of the
    working tree without .git) the commit --prepare recorded, with `+N files changed` when files
    differ from that commit's (a commit or an edit since --prepare, which .gpu_check outlives)."""
    if (REPO / ".git").exists():
        try:  # (git may give nothing: a tree owned by another user is "dubious" to it; then as without .git)
            described = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True,
                                       text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            described = ""
        if described:
            return described
    prepared = PREPARED / "commit.txt"
    if not prepared.is_file():
        return None
    commit = prepared.read_text().strip()
    listing = PREPARED / "tree.txt"  # `git ls-tree -r HEAD`: mode, type, blob SHA-1, path
    if not listing.is_file():
        return f"{commit} (prepared by an older gpu_check.sh: the tree is not compared with it)"
    changed = [path for path, blob in tree_blobs(listing.read_text()).items() if blob_sha1(REPO / path) != blob]
    return f"{commit}+{len(changed)} files changed ({', '.join(changed[:5])})" if changed else commit


def tree_blobs(listing: str) -> dict[str, str]:
    """`git ls-tree -r` output as path -> blob SHA-1 (the files alone: submodules have no blob)."""
    blobs = {}
    for line in listing.splitlines():
        meta, _, path = line.partition("\t")
        parts = meta.split()
        if len(parts) == 3 and parts[1] == "blob":
            blobs[path] = parts[2]
    return blobs


def blob_sha1(path: Path) -> str | None:
    """The SHA-1 git gives `path`'s contents as a blob (a link: its target's name); None when gone."""
    import hashlib

    try:
        data = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
    except OSError:
        return None
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def environment(device_name: str) -> dict:
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "device": device_name}
    if device_name.startswith("cuda"):
        properties = torch.cuda.get_device_properties(0)
        info.update(gpu=properties.name, gpu_memory_gib=round(properties.total_memory / 2**30, 1),
                    capability=f"{properties.major}.{properties.minor}", multiprocessors=properties.multi_processor_count,
                    cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
    return info


def summary(report: dict) -> str:
    lines = [f"GPU check on {report['environment'].get('gpu', report['environment']['device'])} "
             f"(torch {report['environment']['torch']})", "", "| check | result | goal |", "|---|---|---|"]
    tests = report.get("tests", {})
    if tests:
        lines.append(f"| pytest -m cuda | {tests.get('counts')} (exit {tests.get('exit_code')}) | all pass |")
    for row in report.get("bench", {}).get("results", {}).get("models", []):
        goal = GOALS.get(row["model"])
        against = ("no baseline" if row["baseline_images_per_s"] is None  # (not a measured 0)
                   else f"{row['ratio']:.2f}x baseline ({row['baseline_images_per_s']:.0f})")
        lines.append(f"| bench {row['model']} | {row['ours_images_per_s']:.0f} img/s, {against} | "
                     f"{f'>= {goal}x' if goal else '-'} |")
    for model, error in report.get("bench", {}).get("results", {}).get("failures", {}).items():
        lines.append(f"| bench {model} | failed: {error[:200]} | |")
    train = report.get("train", {})
    if train.get("images_per_s_median"):
        lines.append(f"| DCGAN-128 training, {train['wall_seconds']} s | {train['images_per_s_median']:.0f} img/s "
                     f"median, {train['steps']} steps, peak {train['peak_memory_mib'] or 0:.0f} MiB | "
                     f">= {DCGAN128_IMAGES_PER_S_GOAL} img/s |")
    elif "error" in train:
        lines.append(f"| DCGAN-128 training | error: {train['error'][:200]} | |")
    profile_report = report.get("profile", {})
    if profile_report.get("top"):
        busy = profile_report["device_busy_ms_per_step"]
        lines.append(f"| profile DCGAN step | {profile_report['step_ms']:.2f} ms/step"
                     f"{f', GPU busy {busy:.2f} ms' if busy else ''}, {100 * profile_report['share_gemm_conv']:.0f}% "
                     "of kernel time in GEMM/conv | |")
    for label, variant in report.get("ablation", {}).get("variants", {}).items():
        result = variant.get("error") or (f"{variant['images_per_s']:.0f} img/s, " + (
            "no baseline" if variant["ratio"] is None else f"{variant['ratio']:.2f}x baseline"))
        lines.append(f"| ablation {report['ablation']['model']}: {label} | {result} | |")
    scaling = report.get("scaling", {})
    for row in scaling.get("rows", []):
        busy = "" if row["gpu_busy_share"] is None else f", GPU busy {100 * row['gpu_busy_share']:.0f}% of the step"
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}x"
        lines.append(f"| scaling {scaling['model']} batch {row['batch_size']} | {row['images_per_s']:.0f} img/s, "
                     f"{ratio} baseline{busy} | |")
    flagship = report.get("flagship", {})
    if "best_swd_heldout" in flagship:
        lines.append(f"| {flagship['label']}: {flagship['steps']} steps, {flagship['epochs']:.0f} epochs, "
                     f"{flagship['wall_seconds']} s | best SWD {flagship['best_swd_heldout']:.2f} held-out, "
                     f"{flagship['best_swd_train']:.2f} train, floor {flagship['real_vs_real_floor']:.2f} "
                     f"({flagship['heldout_over_floor']:.2f}x) | held-out <= 3x floor |")
    elif "error" in flagship:
        lines.append(f"| flagship | error: {flagship['error'][:200]} | |")
    return "\n".join(lines)


def call_plan(args: argparse.Namespace, chosen: list[str]) -> tuple[dict[str, float], list[str]]:
    """Each chosen stage's longest time in a real call (its own limit, or what it took on an H200
    on 2026-12-04 with room to spare) and the files the call writes under OUT."""
    longest = {"tests": args.tests_timeout, "bench": args.bench_timeout,
               "train": 1.5 * args.train_seconds + 30,  # (a host sync found: measured again for half as long)
               "profile": 60.0, "ablation": 450.0, "scaling": 180.0, "flagship": args.flagship_seconds + 30}
    label = args.flagship_label
    files = {"tests": ["cuda_tests.log"], "bench": ["bench.json", "bench.log"], "train": ["dcgan128_samples.png"],
             "profile": ["profile.txt"], "ablation": [], "scaling": [],
             "flagship": [f"{label}_best.png", f"{label}_progress.png", f"{label}-run/config.toml",
                          f"{label}-run/events.out.tfevents.*"]}
    return ({stage: longest[stage] for stage in chosen if stage in longest},
            ["gpu_check.json", "summary.md", *(name for stage in chosen for name in files.get(stage, []))])


def refuse_a_call_past_its_limits(seconds: dict[str, float], files: list[str]) -> str | None:
    """Why a real call with these stages would lose what it measured (killed at the device's limit,
    or files left behind), or None: said before any GPU time is spent."""
    total = CALL_START_S + sum(seconds.values())
    if total > CALL_LIMIT_S:
        parts = " + ".join(f"{stage} {limit:.0f}" for stage, limit in seconds.items())
        return (f"these stages may take {total:.0f} s (start {CALL_START_S} + {parts}), past the device's "
                f"{CALL_LIMIT_S} s a call: split them over calls, or lower their limits (--tests-timeout, "
                "--bench-timeout, --train-seconds, --flagship-seconds)")
    if len(files) > RETURNED_FILES:
        return (f"these stages write {len(files)} files ({', '.join(files)}), and a call brings back "
                f"{RETURNED_FILES}: split them over calls")
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or REPO / "gpu_check_out"))
    parser.add_argument("--dry-run", action="store_true", help="the same stages on the CPU at toy sizes")
    parser.add_argument("--train-seconds", type=seconds_above_0, default=120.0)
    parser.add_argument("--tests-timeout", type=seconds_above_0, default=180.0)
    parser.add_argument("--bench-timeout", type=seconds_above_0, default=330.0)
    parser.add_argument("--bench-models", type=bench_models, default=BENCH_GOALS, metavar="A,B",
                        help=f"the bench stage's models, in this order (default: those with goals, "
                             f"{','.join(BENCH_GOALS)}; of {','.join(BENCH_ORDER)})")
    parser.add_argument("--stages", type=stage_names, default="tests,bench",
                        help="comma-separated, of tests, bench, train, profile, ablation, scaling, flagship (default: "
                             "tests,bench, what fits one call; train about 1.5x --train-seconds; profile 1 minute; "
                             "ablation diagnoses a missed goal, about 7 minutes (it compiles with max-autotune); "
                             "scaling 1-3 minutes (it compiles 6 times); flagship --flagship-seconds)")
    parser.add_argument("--plan", action="store_true",
                        help="say how long these stages may take and which files they write, then exit (here, "
                             "before a call: a real call past the device's limits is refused before it starts)")
    parser.add_argument("--flagship-steps", type=int, default=40000, help="planned length (instance noise anneals over it)")
    parser.add_argument("--flagship-metrics-every", type=int, default=4000)
    parser.add_argument("--flagship-seconds", type=seconds_above_0, default=420.0, help="stop (with a checkpoint) after this")
    parser.add_argument("--flagship-set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override for the flagship run (repeatable)")
    parser.add_argument("--flagship-label", default="flagship", help="names the flagship's output files")
    parser.add_argument("--faces", type=Path, default=FACES128,
                        help="the prepared faces: train/ and heldout/ (default: benchmarks/.gpu_check/faces128)")
    parser.add_argument("--prepare-faces", type=Path, metavar="SOURCE",
                        help="write SOURCE's faces at 128 px into --faces (the last --heldout by name held out) and exit")
    parser.add_argument("--heldout", type=int, default=HELDOUT_FACES)
    args = parser.parse_args()
    if args.prepare_faces:
        prepare_faces(args.prepare_faces, args.faces, heldout=args.heldout)
        return
    chosen = args.stages
    seconds, files = call_plan(args, chosen)
    past_limits = refuse_a_call_past_its_limits(seconds, files)
    if args.plan:
        print(f"{CALL_START_S + sum(seconds.values()):.0f} s at most ({', '.join(f'{k} {v:.0f}' for k, v in seconds.items())}"
              f", start {CALL_START_S}); files: {', '.join(files)}" + (f"\nrefused in a real call: {past_limits}"
                                                                      if past_limits else ""))
        return
    if past_limits and not args.dry_run:
        sys.exit(f"gpu_check: {past_limits}")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)

    import torch

    device = "cpu" if args.dry_run else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_check: PyTorch sees no CUDA GPU here; use --dry-run for the CPU rehearsal")
    if not args.dry_run:  # minutes of a scarce GPU are not spent on a check that cannot give its figures
        if {"bench", "scaling"} & set(chosen) and baseline_file() is None:
            sys.exit("gpu_check: no baseline.py in benchmarks/.gpu_check: run benchmarks/gpu_check.sh --prepare "
                     "before the call and carry benchmarks/.gpu_check")
        if "flagship" in chosen and not (args.faces / "heldout").is_dir():
            sys.exit(f"gpu_check: no prepared faces in {args.faces}: run benchmarks/gpu_check.sh --prepare first")
    report = {"commit": source_commit(), "arguments": sys.argv[1:], "dry_run": args.dry_run,
              "environment": environment(device),
              "goals": {"ratio_vs_baseline": GOALS, "dcgan128_images_per_s": DCGAN128_IMAGES_PER_S_GOAL}}

    def save() -> None:  # after every stage (and scaling row): a call cut short keeps what it measured
        write_whole(out / "gpu_check.json", json.dumps(report, indent=2) + "\n")

    save()

    stages = [
        ("tests", lambda: stage_tests(out, args.tests_timeout)),
        ("bench", lambda: stage_bench(out, args.bench_timeout, device, args.dry_run, args.faces, args.bench_models)),
        ("train", lambda: stage_train(out, 8.0 if args.dry_run else args.train_seconds, device, args.dry_run,
                                      args.faces)),
        ("profile", lambda: stage_profile(out, device, args.dry_run)),
        ("ablation", lambda: stage_ablation(out, device, args.dry_run, report.setdefault("ablation", {}), save)),
        ("scaling", lambda: stage_scaling(device, args.dry_run, report.setdefault("scaling", {}), save)),
        ("flagship", lambda: stage_flagship(
            out, device, args.dry_run, args.faces, 12 if args.dry_run else args.flagship_steps,
            4 if args.dry_run else args.flagship_metrics_every, 120.0 if args.dry_run else args.flagship_seconds,
            args.flagship_set, args.flagship_label)),
    ]
    assert {name for name, _ in stages} == set(STAGES)  # (--stages is checked against STAGES)
    for name, stage in stages:
        if name not in chosen:
            continue
        log(f"stage {name}")
        start = time.perf_counter()
        report.setdefault(name, {})["status"] = "started (the call ended before this stage did)"
        save()
        try:
            report[name] = stage()
            report[name].pop("status", None)
        except Exception as error:  # one stage's failure must not cost the others' figures
            import traceback

            report[name] = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()[-3000:]}
            log(f"stage {name} failed: {error}")
        report[name]["stage_seconds"] = round(time.perf_counter() - start, 1)
        save()
    text = summary(report)
    write_whole(out / "summary.md", text + "\n")
    print(text)
    log(f"wrote {out / 'gpu_check.json'}")


if __name__ == "__main__":
    main()
