"""The side-by-side benchmarks of two checkouts (benchmarks/two_trees.py and its scripts): fair
rounds, and one-line refusals of what cannot be timed."""

import subprocess
import sys
from types import SimpleNamespace

from conftest import REPO, random_rgb

sys.path.insert(0, str(REPO / "benchmarks"))
from two_trees import best_of_rounds  # noqa: E402


def test_rounds_warm_each_version_up_then_alternate_their_order():
    calls = []
    versions = {"before": SimpleNamespace(name="before"), "after": SimpleNamespace(name="after")}
    best, results = best_of_rounds(versions, lambda module: calls.append(module.name) or module.name, rounds=3)
    assert calls == ["before", "after",  # the untimed warm-up
                     "before", "after", "after", "before", "before", "after"]
    assert results == {"before": "before", "after": "after"}
    assert set(best) == {"before", "after"} and all(0 <= seconds < 1 for seconds in best.values())


def run_decode_speed(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "benchmarks" / "decode_speed.py"), str(REPO), str(REPO), *args],
                          capture_output=True, text=True, timeout=120)


def test_decode_speed_times_both_trees_and_refuses_what_it_cannot_time(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for index in range(2):
        random_rgb((16, 16), seed=index).save(images / f"{index}.png")
    timed = run_decode_speed("--images", str(images), "--rounds", "1")
    assert timed.returncode == 0, timed.stderr
    assert "before:" in timed.stdout and "after/before time:" in timed.stdout

    for args, expected in ((("--images", str(images), "--rounds", "0"), "--rounds: expected a whole number of at least 1, got '0'"),
                           (("--images", str(images), "--count", "0"), "--count: expected a whole number of at least 1"),
                           (("--images", str(tmp_path / "none")), "--images: image folder")):
        refused = run_decode_speed(*args)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr
        assert expected in refused.stderr.splitlines()[-1], refused.stderr


def test_a_missing_checkout_or_a_malformed_size_is_refused_in_one_line(tmp_path):
    # They ended in tracebacks (a FileNotFoundError of gan/data/decode.py; int('a') of --size).
    def run(script: str, before: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(REPO / "benchmarks" / script), before, str(REPO), *args],
                              capture_output=True, text=True, timeout=120)

    cases = [("decode_speed.py", str(tmp_path / "none"), ("--images", str(tmp_path)), "expected a checkout of gan"),
             *[("ssim_speed.py", str(REPO), (f"--size={size}",), "--size: expected WIDTHxHEIGHT, each at least 11")
               for size in ("100", "axb", "-5x10", "10x10")]]
    for script, before, args, expected in cases:
        refused = run(script, before, *args)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
        assert expected in refused.stderr.splitlines()[-1], refused.stderr
    timed = run("ssim_speed.py", str(REPO), "--size", "16x12", "--rounds", "1")
    assert timed.returncode == 0 and "RGB SSIM of one 16x12 pair" in timed.stdout, timed.stderr
