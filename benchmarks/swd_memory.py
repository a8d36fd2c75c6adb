"""Peak memory of SWD's patch descriptors in two versions of gan, each in a process of its own
(peak RSS is a process's): `patch_descriptors` of each tree's gan/metrics/swd.py over the same
images, with the rise of the peak over the images alone, and whether the descriptors are equal.

    git worktree add /tmp/old REV
    python benchmarks/swd_memory.py /tmp/old . --count 4000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from two_trees import checkout, positive_count

ONE_SIDE = """
import hashlib, importlib.util, json, resource, sys
import torch
spec = importlib.util.spec_from_file_location("swd", sys.argv[1])
swd = importlib.util.module_from_spec(spec)
spec.loader.exec_module(swd)
images = torch.randint(0, 256, (int(sys.argv[2]), 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
levels = swd.patch_descriptors(images)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
digest = hashlib.sha256(b"".join(level.numpy().tobytes() for level in levels)).hexdigest()
print(json.dumps({"rise_mb": (peak - before) / 1024, "descriptors_mb": sum(l.numel() * 2 for l in levels) / 2**20,
                  "digest": digest}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=checkout, help="a checkout of the older version")
    parser.add_argument("after", type=checkout, help="a checkout of the newer version")
    parser.add_argument("--count", type=positive_count, default=4000, help="64 px images, at least 1")
    args = parser.parse_args()
    sides = {}
    for label, tree in (("before", args.before), ("after", args.after)):
        done = subprocess.run([sys.executable, "-c", ONE_SIDE, str(tree / "gan/metrics/swd.py"), str(args.count)],
                              capture_output=True, text=True, check=True)
        sides[label] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{label}: peak rises {sides[label]['rise_mb']:.0f} MB for {sides[label]['descriptors_mb']:.0f} MB "
              f"of descriptors ({args.count} images)")
    print(f"after/before rise: {sides['after']['rise_mb'] / sides['before']['rise_mb']:.2f}; descriptors "
          f"{'equal' if sides['after']['digest'] == sides['before']['digest'] else 'DIFFER'}")


if __name__ == "__main__":
    main()
