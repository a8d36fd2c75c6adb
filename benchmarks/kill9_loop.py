#!/usr/bin/env python3
"""Kill -9 a short CPU training run at random moments, resume it each time, and check that it
ends with the weights of an uninterrupted run.

    python benchmarks/kill9_loop.py --kills 20 --out /tmp/kill9
    python benchmarks/kill9_loop.py --kills 9 --workers 2 --out /tmp/kill9-workers

Each restart follows its kill at once. With `--workers`, each kill lands once the run has
reported a random step from 1 to 40 (counted from its start), so its workers are running. Prints, per kill, the last step the run reported and
the step it resumed from (the steps lost), how many restarts were refused because the run
directory still looked locked (with `--workers`, DataLoader workers outlive their killed
parent for a few seconds), then whether the final checkpoint equals the uninterrupted run's:
every network, optimizer moment and the step, bit for bit.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
BUSY = "in use by another gan process"
SETTINGS = ["model.generator_args.channels=16", "model.discriminator_args.channels=16",
            "train.batch_size=32", "train.checkpoint_every=10", "train.keep_checkpoints=2",
            "log.every=1", "log.image_every=100", "metrics.every=0", "loss.instance_noise=0.1",
            "loss.label_smoothing=0.1"]


def gan_train(args: list[str], log_path: Path, workers: int = 0, steps: int = 2000) -> subprocess.Popen:
    sets = [arg for item in (*SETTINGS, f"data.num_workers={workers}", f"train.steps={steps}")
            for arg in ("--set", item)]
    with open(log_path, "w") as log:
        return subprocess.Popen([sys.executable, "-m", "gan", "train", *args, *sets, "--device", "cpu"],
                                stdout=log, stderr=subprocess.STDOUT, cwd=REPO)


def last_reported_step(log_path: Path) -> int:
    steps = [int(match) for match in re.findall(r"step (\d+)/", log_path.read_text())]
    return max(steps, default=0)


def resumed_from(log_path: Path) -> int:
    match = re.search(r"at step (\d+)", log_path.read_text())
    return int(match.group(1)) if match else 0


def final_state(run_dir: Path) -> dict:
    newest = sorted(run_dir.glob("checkpoint-*.pt"))[-1]
    state = torch.load(newest, weights_only=True)
    return {"step": state["step"], "networks": state["networks"], "optimizers": state["optimizers"]}


def identical(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(identical(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(identical(x, y) for x, y in zip(a, b))
    return a == b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("/tmp/kill9"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes of each run")
    parser.add_argument("--steps", type=int, default=2000, help="the run's length")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    config = str(REPO / "experiments" / "dcgan_demo.toml")
    args.out.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    straight = gan_train([config, "--out", str(args.out / "straight")], args.out / "straight.log", args.workers,
                         args.steps)
    if straight.wait() != 0:
        sys.exit(f"the uninterrupted run failed; see {args.out / 'straight.log'}")
    print(f"uninterrupted run: {time.perf_counter() - started:.0f} s", flush=True)
    straight_dir = next(p for p in (args.out / "straight").iterdir() if p.is_dir())

    # --run-dir starts the run, or resumes it once it has a checkpoint: the same line after every kill.
    run_dir, lost, history, refused = args.out / "killed", [], [], 0
    launch = [config, "--run-dir", str(run_dir)]
    for kill in range(args.kills):
        log_path = args.out / f"kill{kill:02d}.log"
        process = gan_train(launch, log_path, args.workers, args.steps)
        if args.workers:  # mid-epoch, with the workers running: once the run reports a random step
            target, deadline = rng.randint(1, 40), time.perf_counter() + 120
            while process.poll() is None and last_reported_step(log_path) < target and time.perf_counter() < deadline:
                time.sleep(0.05)
        else:
            time.sleep(rng.uniform(1.0, 6.0))  # start-up included: some kills land before the first step
        if process.poll() is not None:
            if BUSY in log_path.read_text():  # the restart was refused: a stale lock
                refused += 1
                history.append(f"kill {kill + 1:2d}: the restart was refused: {BUSY}")
                continue
            history.append(f"kill {kill + 1:2d}: the run had already finished")
            break
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        checkpoints = sorted(run_dir.glob("checkpoint-*.pt"))
        saved = int(checkpoints[-1].stem.split("-")[1]) if checkpoints else 0
        reached = max(last_reported_step(log_path), resumed_from(log_path), saved)
        lost.append(reached - saved)
        history.append(f"kill {kill + 1:2d}: reached step {reached:3d}, newest checkpoint {saved:3d}, "
                       f"{reached - saved} steps to redo; leftover temp files: {len(list(run_dir.glob('*.tmp')))}")
    final_log = args.out / "final.log"
    process = gan_train(launch, final_log, args.workers, args.steps)
    if process.wait() != 0:
        sys.exit(f"the final resume failed; see {final_log}")
    print("\n".join(history))
    print(f"restarts refused as 'in use by another gan process': {refused} of {len(history)}"
          f" ({args.workers} loader workers per run)")
    print(f"final resume from step {resumed_from(final_log)}; steps redone after a kill: at most "
          f"{max(lost, default=0)}, mean {sum(lost) / max(len(lost), 1):.1f} (checkpoint every 10 steps)")
    same = identical(final_state(straight_dir), final_state(run_dir))
    print(f"final weights, optimizer states and step equal the uninterrupted run's: {same}")
    sys.exit(0 if same and not refused else 1)


if __name__ == "__main__":
    main()
