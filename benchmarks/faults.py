#!/usr/bin/env python3
"""Attack a short CPU training run the ways users' machines do, and count what is lost.

1. Two writers: while a run trains, `gan train --resume` on its directory is started again
   and again. Each must be refused at once; afterwards every checkpoint must equal the one
   an undisturbed run writes at that step (a checkpoint mixing two writers' tensors would not).
2. A full disk: the run trains on a small tmpfs that a filler file fills after its first
   checkpoint. Mid-run saves fail (warned); the filler is removed and the run must end with
   the undisturbed run's final checkpoint: no steps lost beyond the failed saves, no temp
   files left. Then the disk is filled for good before the final save, which must stop the
   run with one error line naming the file and the free space.

    sudo python benchmarks/faults.py --out /tmp/faults      # part 2 mounts a tmpfs: needs root

Prints one line per figure; exits 1 when any must-be-zero figure is not zero.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kill9_loop import REPO, SETTINGS, identical, last_reported_step  # noqa: E402

STEPS = 400  # checkpoints every 10 steps (kill9_loop's settings)
CONFIG = str(REPO / "experiments" / "dcgan_demo.toml")


def gan_train(args: list[str], log_path: Path, **settings: object) -> subprocess.Popen:
    """`gan train` with kill9_loop's small settings, `train.steps` = STEPS, all checkpoints kept,
    and `settings` (dotted keys with "__" for ".") last."""
    chosen = {item.split("=")[0]: item.split("=", 1)[1] for item in SETTINGS}
    chosen.update({"train.steps": STEPS, "train.keep_checkpoints": STEPS})
    chosen.update({key.replace("__", "."): value for key, value in settings.items()})
    sets = [arg for key, value in chosen.items() for arg in ("--set", f"{key}={value}")]
    with open(log_path, "w") as log:
        return subprocess.Popen([sys.executable, "-m", "gan", "train", *args, *sets, "--device", "cpu"],
                                stdout=log, stderr=subprocess.STDOUT, cwd=REPO)


def run_dir_in(out: Path) -> Path:
    return next(path for path in out.iterdir() if path.is_dir())


def checkpoints_by_step(run_dir: Path) -> dict[int, Path]:
    return {int(path.stem.split("-")[1]): path for path in run_dir.glob("checkpoint-*.pt")}


def training_state(path: Path) -> dict:
    state = torch.load(path, weights_only=True)
    return {"step": state["step"], "networks": state["networks"], "optimizers": state["optimizers"]}


def wait_for(condition, timeout: float = 300.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def two_writers(out: Path, reference: Path, attempts: int) -> dict[str, int]:
    out.mkdir()
    first = gan_train([CONFIG, "--out", str(out / "runs")], out / "writer1.log")
    assert wait_for(lambda: (out / "runs").is_dir() and any((out / "runs").glob("*/checkpoint-*.pt")))
    run_dir = run_dir_in(out / "runs")
    refused = 0
    for attempt in range(attempts):
        second = gan_train(["--resume", str(run_dir)], out / f"writer2-{attempt}.log")
        code = second.wait()
        refused += code == 2 and "is in use by another gan process" in (out / f"writer2-{attempt}.log").read_text()
    if first.wait() != 0:
        sys.exit(f"the first writer failed; see {out / 'writer1.log'}")
    expected = checkpoints_by_step(reference)
    written = checkpoints_by_step(run_dir)
    mixed = sum(not identical(training_state(path), training_state(expected[step])) for step, path in written.items())
    return {"second writers started": attempts, "second writers refused": refused,
            "checkpoints compared": len(written), "checkpoints mixed": mixed,
            "temp files left": len(list(run_dir.rglob("*.tmp")))}


def fill(folder: Path) -> Path:
    """A file that takes all the free space of `folder`'s file system."""
    filler = folder / "filler"
    with open(filler, "wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 2**16)
                handle.flush()
        except OSError:
            pass
    return filler


def full_disk(out: Path, reference: Path, size_mib: int) -> dict[str, int]:
    mount = out / "tmpfs"
    mount.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mib}m", "tmpfs", str(mount)], check=True)
    try:
        log = out / "full-disk.log"
        process = gan_train([CONFIG, "--out", str(mount / "runs")], log, train__keep_checkpoints=2)
        assert wait_for(lambda: (mount / "runs").is_dir() and any((mount / "runs").glob("*/checkpoint-*.pt")))
        filler = fill(mount)
        first_failure = last_reported_step(log)
        assert wait_for(lambda: log.read_text().count("could not write") >= 3)  # three failed saves
        filler.unlink()
        code = process.wait()
        run_dir = run_dir_in(mount / "runs")
        final = checkpoints_by_step(run_dir)
        newest = max(final)
        same = identical(training_state(final[newest]), training_state(checkpoints_by_step(reference)[STEPS]))
        mid_run = {"exit code (mid-run full disk)": code, "failed saves warned": log.read_text().count("could not write"),
                   "disk filled at step": first_failure, "final step": newest,
                   "steps lost after the full disk": STEPS - newest,
                   "final checkpoint mixed (differs from the undisturbed run's)": int(not same),
                   "temp files left": len(list(mount.rglob("*.tmp")))}

        # The final save on a full disk: the run must stop with one error line, leaving no temp file.
        log = out / "full-disk-final.log"
        process = gan_train(["--resume", str(run_dir)], log, train__steps=STEPS + 200,
                            train__checkpoint_every=10_000, train__keep_checkpoints=2)
        assert wait_for(lambda: f"step {STEPS + 1}/" in log.read_text())
        filler = fill(mount)
        code = process.wait()
        filler.unlink()
        errors = [line for line in log.read_text().splitlines() if line.startswith("error:")]
        return {**mid_run, "exit code (final save on a full disk)": code, "error lines": len(errors),
                "tracebacks": log.read_text().count("Traceback"),
                "temp files left after the failed final save": len(list(mount.rglob("*.tmp")))}
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/faults"))
    parser.add_argument("--attempts", type=int, default=5, help="second writers started during the run")
    parser.add_argument("--tmpfs-mib", type=int, default=64)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    straight = gan_train([CONFIG, "--out", str(args.out / "straight")], args.out / "straight.log")
    if straight.wait() != 0:
        sys.exit(f"the undisturbed run failed; see {args.out / 'straight.log'}")
    reference = run_dir_in(args.out / "straight")
    figures = two_writers(args.out / "writers", reference, args.attempts)
    try:
        (args.out / "disk").mkdir()
        figures.update({f"full disk: {key}": value
                        for key, value in full_disk(args.out / "disk", reference, args.tmpfs_mib).items()})
    except (subprocess.CalledProcessError, PermissionError) as error:
        print(f"full-disk part skipped: cannot mount a tmpfs here ({error}); run as root", file=sys.stderr)
    for key, value in figures.items():
        print(f"{key}: {value}")
    must_be_zero = [key for key in figures if ("mixed" in key or "left" in key or "lost" in key or "tracebacks" in key)]
    bad = [key for key in must_be_zero if figures[key]]
    refused = figures.get("second writers refused") == figures.get("second writers started")
    sys.exit(1 if bad or not refused else 0)


if __name__ == "__main__":
    main()
