"""Peak memory of one CPU pass of each image-to-image generator over its largest layer output: the
factor behind `gan translate`'s memory check (`live_layers` in gan/nets/running.py). Each network
runs in a process of its own, its peak taken from a clean baseline (Linux: /proc/self/clear_refs
resets VmHWM just before the pass, so the load's own peak is not counted).

    python benchmarks/pass_memory.py --side 1024
    python benchmarks/pass_memory.py --side 2048 --models unet_instance resnet9
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from two_trees import positive_count

ONE_PASS = """
import json, sys
import torch
from gan.nets.resnet import ResnetGenerator
from gan.nets.running import largest_layer_bytes_per_pixel, live_layers, run_padded
from gan.nets.srresnet import SRResNet
from gan.nets.unet import UNetGenerator

def status(key):
    return int(open("/proc/self/status").read().split(key + ":")[1].split()[0]) * 1024

name, side = sys.argv[1], int(sys.argv[2])
build, multiple = {
    "unet_batch": (lambda: UNetGenerator(norm="batch"), 256),
    "unet_instance": (lambda: UNetGenerator(norm="instance"), 256),
    "resnet9": (lambda: ResnetGenerator(), 4),
    "srresnet": (lambda: SRResNet(scale=4), 1),
    "edsr_x4": (lambda: SRResNet(scale=4, channels=32, num_blocks=8, batch_norm=False, residual=True), 1),
}[name]
generator = build().eval()
largest = largest_layer_bytes_per_pixel(generator, multiple, torch.device("cpu")) * side * side
image = torch.rand(1, 3, side, side) * 2 - 1
with torch.no_grad():
    open("/proc/self/clear_refs", "w").write("5")
    before = status("VmRSS")
    run_padded(generator, image, multiple)
    rise = status("VmHWM") - before
print(json.dumps({"largest_mib": largest / 2**20, "pass_mib": rise / 2**20, "ratio": rise / largest,
                  "estimated_as": live_layers(generator)}))
"""

MODELS = ("unet_batch", "unet_instance", "resnet9", "srresnet", "edsr_x4")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", type=positive_count, default=1024,  # (0 ended in the pass's traceback)
                        help="square input side in px (SRResNet x4: its LR side)")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if args.json and not os.access(Path(args.json).parent.resolve(), os.W_OK):  # (said now, not after the passes)
        parser.error(f"--json '{args.json}': its folder is missing or not writable")
    results = {}
    for name in args.models:
        done = subprocess.run([sys.executable, "-c", ONE_PASS, name, str(args.side)], capture_output=True, text=True)
        if done.returncode != 0:  # (its own error, not CalledProcessError's traceback over it)
            sys.exit(f"pass_memory: {name} at {args.side} px failed: {done.stderr.strip()[-2000:]}")
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
        row = results[name]
        print(f"{name} {args.side}px: largest layer {row['largest_mib']:.0f} MiB, pass {row['pass_mib']:.0f} MiB, "
              f"{row['ratio']:.2f}x it (estimated as {row['estimated_as']}x)")
    if args.json:  # (whole or not at all, as gan's own files)
        from gan.core.files import write_text_atomically

        write_text_atomically(Path(args.json), json.dumps({"side": args.side, "models": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
