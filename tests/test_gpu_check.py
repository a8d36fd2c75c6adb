"""benchmarks/gpu_check.sh --dry-run: the GPU check's whole sequence on the CPU, so it cannot rot."""

import json
import subprocess

import pytest
from conftest import REPO


@pytest.mark.slow
def test_the_gpu_check_dry_run_runs_every_stage_and_writes_its_report(tmp_path):
    result = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--dry-run", str(tmp_path),
                             "--stages", "tests,bench,train,profile,ablation"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    for stage in ("tests", "bench", "train", "profile", "ablation"):
        assert "error" not in report[stage], report[stage]
    assert report["tests"]["exit_code"] == 0 and report["tests"]["counts"]["skipped"] >= 10  # CUDA tests, no GPU
    (row,) = report["bench"]["results"]["models"]
    assert row["model"] == "dcgan64" and row["ours_images_per_s"] > 0
    assert report["train"]["steps"] > 0 and report["train"]["images_per_s_median"] > 0
    assert (tmp_path / "dcgan128_samples.png").stat().st_size > 0
    assert 0 < report["profile"]["share_gemm_conv"] <= 1 and report["profile"]["top"]
    variants = report["ablation"]["variants"]
    assert variants["defaults"]["images_per_s"] > 0 and variants["compile off"]["images_per_s"] > 0
    assert "| pytest -m cuda |" in (tmp_path / "summary.md").read_text() and "| check |" in result.stdout
