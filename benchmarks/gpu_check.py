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
   switch off in turn, and with CUDA graphs (compile mode reduce-overhead).

`--dry-run` runs the same stages on the CPU at toy sizes, so the script cannot rot.
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
# Goals of the issue that asked for this check (ratios against the baseline, same run).
GOALS = {"dcgan128": 3.0, "pix2pix256": 2.0, "cyclegan256": 2.0, "srgan4x": 2.0}
DCGAN128_IMAGES_PER_S_GOAL = 20000
BENCH_ORDER = ("dcgan128", "pix2pix256", "cyclegan256", "srgan4x", "dcgan64", "srresnet4x")
MATRIX_KERNELS = ("gemm", "conv", "cutlass", "xmma", "cudnn", "wgrad", "dgrad", "sm90", "sm80", "implicit")


def log(message: str) -> None:
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_stage(command: list[str], timeout: float, log_path: Path) -> dict:
    """Run `command`, teeing its output to `log_path`; its exit code, time and output tail."""
    start = time.perf_counter()
    with open(log_path, "w") as handle:
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
        timer = threading.Timer(timeout, process.kill)
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


def stage_bench(out: Path, timeout: float, device: str, dry_run: bool) -> dict:
    baseline = baseline_file()
    faces = PREPARED / "faces"
    command = [sys.executable, "-m", "gan", "bench", "--device", device, "--json", str(out / "bench.json"),
               *(["--baseline", str(baseline)] if baseline else []),
               "--data-root", str(faces) if faces.is_dir() and dry_run else "none"]
    if dry_run:
        command += ["--model", "dcgan64", "--rounds", "1", "--iters", "1", "--warmup", "0", "--eager"]
    else:  # the goals first, should the stage run out of time
        command += [arg for model in BENCH_ORDER for arg in ("--model", model)] + ["--rounds", "2"]
    result = run_stage(command, timeout, out / "bench.log")
    if (out / "bench.json").is_file():
        result["results"] = json.loads((out / "bench.json").read_text())
    return result


def dcgan128_config(dry_run: bool, data_root: Path | None, cache_dir: Path, sync_debug: bool):
    from gan.resolve import load_config

    if dry_run or data_root is None:
        data = ["data.dataset=synthetic", "data.num_workers=0", "data.cache=off"]
    else:
        data = ["data.dataset=folder", f"data.root={data_root}", "data.cache=device", f"data.cache_dir={cache_dir}"]
    toy = ["data.resolution=32", "model.generator_args.channels=8", "model.discriminator_args.channels=8",
           "train.batch_size=16", "log.every=5", "log.image_every=20", "log.num_samples=16"] if dry_run else \
        ["log.every=100", "log.image_every=4000"]
    return load_config(REPO / "experiments" / "dcgan_celeba128.toml", [
        *data, *toy, "train.steps=100000000", "train.checkpoint_every=100000000", "metrics.every=0",
        f"train.sync_debug={'true' if sync_debug else 'false'}"])


def stage_train(out: Path, seconds: float, device_name: str, dry_run: bool) -> dict:
    """Train DCGAN-128 for `seconds` with host syncs forbidden in steady-state steps; should one
    happen, the error is recorded and the speed measured again without the check."""
    try:
        return train_for(out, seconds, device_name, dry_run, sync_debug=not dry_run)
    except RuntimeError as error:
        if "synchroniz" not in str(error):
            raise
        return {**train_for(out, seconds / 2, device_name, dry_run, sync_debug=False), "sync_error": str(error)}


def train_for(out: Path, seconds: float, device_name: str, dry_run: bool, sync_debug: bool) -> dict:
    """Train DCGAN-128 for `seconds` (then SIGTERM: the loop saves and stops), read what it logged."""
    import tempfile

    import torch
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from gan.train import train

    device = torch.device(device_name)
    faces = PREPARED / "faces" / "train"
    work = Path(tempfile.mkdtemp(prefix="gpu_check_train_"))  # out gets back only a few files
    config = dcgan128_config(dry_run, faces if faces.is_dir() else None, work / "cache", sync_debug)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGTERM))
    start = time.perf_counter()
    timer.start()
    try:
        result = train(config, work / "run", device)
    finally:
        timer.cancel()
    wall = time.perf_counter() - start
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


def stage_profile(out: Path, device_name: str, dry_run: bool) -> dict:
    """torch.profiler over DCGAN-128 training steps (bench's canonical setup, default switches)."""
    import torch
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    from gan.benchmark import our_step

    device = torch.device(device_name)
    step, batch = our_step("dcgan64" if dry_run else "dcgan128", device, fast=not dry_run)
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
    matrix = sum(timed(event) for event in kernels if any(word in event.key.lower() for word in MATRIX_KERNELS))
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
    "compile reduce-overhead (CUDA graphs per network)": (True, ("train.compile_mode=reduce-overhead",)),
    "all off (eager fp32)": (False, ()),
}


def stage_ablation(out: Path, device_name: str, dry_run: bool) -> dict:
    import torch

    from gan.benchmark import bench_model, load_baseline

    device = torch.device(device_name)
    baseline = load_baseline(baseline_file()) if baseline_file() else None
    model, rounds = ("dcgan64", 1) if dry_run else ("dcgan128", 2)
    variants = {"defaults": ABLATION["defaults"], "compile off": ABLATION["compile off"]} if dry_run else ABLATION
    results = {}
    for label, (fast, overrides) in variants.items():
        log(f"ablation: {model} {label}")
        try:
            row = bench_model(model, device, baseline, rounds, 1 if dry_run else 0, 0 if dry_run else 5, fast=fast,
                              flops=False, overrides=overrides)
            results[label] = {"images_per_s": row.ours_images_per_s, "baseline_images_per_s":
                              row.baseline_images_per_s, "ratio": row.ratio, "peak_mib": row.ours_peak_mib}
        except Exception as error:  # a variant that fails is a finding, not the end of the check
            results[label] = {"error": f"{type(error).__name__}: {str(error)[:500]}"}
    return {"model": model, "variants": results}


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
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}x"
        lines.append(f"| bench {row['model']} | {row['ours_images_per_s']:.0f} img/s, {ratio} baseline "
                     f"({row['baseline_images_per_s'] or 0:.0f}) | {f'>= {goal}x' if goal else '-'} |")
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
        result = variant.get("error") or (f"{variant['images_per_s']:.0f} img/s, "
                                          f"{variant['ratio'] or 0:.2f}x baseline")
        lines.append(f"| ablation {report['ablation']['model']}: {label} | {result} | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or REPO / "gpu_check_out"))
    parser.add_argument("--dry-run", action="store_true", help="the same stages on the CPU at toy sizes")
    parser.add_argument("--train-seconds", type=float, default=120.0)
    parser.add_argument("--tests-timeout", type=float, default=180.0)
    parser.add_argument("--bench-timeout", type=float, default=200.0)
    parser.add_argument("--stages", default="tests,bench,train,profile",
                        help="comma-separated, of tests, bench, train, profile, ablation (default: all but "
                             "ablation, which is for diagnosing a missed goal: about 2 more minutes)")
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)

    import torch

    device = "cpu" if args.dry_run else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_check: PyTorch sees no CUDA GPU here; use --dry-run for the CPU rehearsal")
    report = {"dry_run": args.dry_run, "environment": environment(device), "goals": {
        "ratio_vs_baseline": GOALS, "dcgan128_images_per_s": DCGAN128_IMAGES_PER_S_GOAL}}

    def save() -> None:
        (out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")

    stages = [
        ("tests", lambda: stage_tests(out, args.tests_timeout)),
        ("bench", lambda: stage_bench(out, args.bench_timeout, device, args.dry_run)),
        ("train", lambda: stage_train(out, 8.0 if args.dry_run else args.train_seconds, device, args.dry_run)),
        ("profile", lambda: stage_profile(out, device, args.dry_run)),
        ("ablation", lambda: stage_ablation(out, device, args.dry_run)),
    ]
    chosen = args.stages.split(",")
    unknown = set(chosen) - {name for name, _ in stages}
    if unknown:
        parser.error(f"unknown stage(s) {', '.join(sorted(unknown))}")
    for name, stage in stages:
        if name not in chosen:
            continue
        log(f"stage {name}")
        start = time.perf_counter()
        try:
            report[name] = stage()
        except Exception as error:  # one stage's failure must not cost the others' figures
            import traceback

            report[name] = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()[-3000:]}
            log(f"stage {name} failed: {error}")
        report[name]["stage_seconds"] = round(time.perf_counter() - start, 1)
        save()
    text = summary(report)
    (out / "summary.md").write_text(text + "\n")
    print(text)
    log(f"wrote {out / 'gpu_check.json'}")


if __name__ == "__main__":
    main()
