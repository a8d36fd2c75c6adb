"""benchmarks/gpu_check.sh --dry-run: the GPU check's whole sequence on the CPU, so it cannot rot."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, random_rgb
from PIL import Image


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
    # the files a call writes are those its plan counts against the 8 a call brings back
    gpu_check = load_gpu_check()
    planned = gpu_check.call_plan(gpu_check.argparse.Namespace(
        tests_timeout=1, bench_timeout=1, train_seconds=1, flagship_seconds=1, flagship_label="flagship"),
        ["tests", "bench", "train", "profile", "ablation"])[1]
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(planned)


@pytest.mark.slow
def test_the_dry_run_prepares_faces_then_scales_the_batch_and_trains_the_flagship(tmp_path):
    source, faces, out = tmp_path / "crops", tmp_path / "faces128", tmp_path / "out"
    source.mkdir()
    for index in range(24):  # in-the-wild crops: not square, of varied size
        random_rgb((60 + index, 50 + 2 * index), seed=index).save(source / f"{index:03d}.png")
    script = str(REPO / "benchmarks" / "gpu_check.py")
    subprocess.run([sys.executable, script, "--prepare-faces", str(source), "--faces", str(faces), "--heldout", "8"],
                   check=True, capture_output=True, timeout=120)
    assert sorted(path.name for path in (faces / "heldout").iterdir()) == [f"{i:03d}.jpg" for i in range(16, 24)]
    assert len(list((faces / "train").iterdir())) == 16  # the held-out faces are never trained on
    with Image.open(faces / "train" / "005.jpg") as face:
        assert face.size == (128, 128)
    result = subprocess.run([sys.executable, script, "--dry-run", "--out", str(out), "--faces", str(faces),
                             "--stages", "scaling,flagship", "--flagship-label", "ada",
                             "--flagship-set", "loss.diffaugment=color", "--flagship-set", "loss.augment_p=adaptive"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "gpu_check.json").read_text())
    assert [row["batch_size"] for row in report["scaling"]["rows"]] == [8, 16]
    assert all(row["images_per_s"] > 0 for row in report["scaling"]["rows"])
    flagship = report["flagship"]
    assert "error" not in flagship, flagship
    assert flagship["steps"] == 12 and [row["step"] for row in flagship["swd_history"]] == [4, 8, 12]
    assert flagship["real_vs_real_floor"] > 0 and flagship["best_swd_heldout"] > 0 and flagship["best_swd_train"] > 0
    assert flagship["heldout_over_floor"] == pytest.approx(flagship["best_swd_heldout"] / flagship["real_vs_real_floor"])
    assert "loss.augment_p=adaptive" in flagship["overrides"]
    assert 'augment_p = "adaptive"' in (out / "ada-run" / "config.toml").read_text()
    assert list((out / "ada-run").glob("events.out.tfevents.*"))  # scalars for gan compare
    planned = load_gpu_check().call_plan(load_gpu_check().argparse.Namespace(
        tests_timeout=1, bench_timeout=1, train_seconds=1, flagship_seconds=1, flagship_label="ada"),
        ["scaling", "flagship"])[1]
    written = sorted(path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file())
    assert len(written) == len(planned) and all(Path(name).match(pattern) for name, pattern in
                                                zip(written, sorted(planned))), (written, planned)
    # the results say what ran, on which commit; no stage is left marked as cut short
    assert report["arguments"][:2] == ["--dry-run", "--out"] and report["commit"]
    assert all("status" not in report[stage] for stage in ("scaling", "flagship"))

    # a deadline before the first measurement: the newest checkpoint is scored, nothing crashes or stays behind
    import importlib.util
    import tempfile

    spec = importlib.util.spec_from_file_location("gpu_check", script)
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    before = set(Path(tempfile.gettempdir()).glob("gpu_check_flagship_*"))
    early = gpu_check.stage_flagship(out, "cpu", True, faces, steps=100000, metrics_every=100000, seconds=5,
                                     overrides=[], label="early")
    assert early["swd_history"] == [] and early["best"] is None
    assert early["best_checkpoint"] == f"checkpoint-{early['steps']:08d}.pt"  # the one the deadline's stop wrote
    assert early["best_swd_heldout"] > 0
    assert set(Path(tempfile.gettempdir()).glob("gpu_check_flagship_*")) == before
    for name in ("ada_best.png", "ada_progress.png"):
        assert (out / name).stat().st_size > 0
    assert "| ada: 12 steps" in (out / "summary.md").read_text()


def load_gpu_check():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_bench_stage_measures_the_models_named_and_refuses_a_typo_before_the_call(tmp_path, monkeypatch):
    gpu_check = load_gpu_check()
    commands = []
    monkeypatch.setattr(gpu_check, "run_stage", lambda command, timeout, log: commands.append(command) or {})
    gpu_check.stage_bench(tmp_path, 300, "cuda", False, tmp_path, gpu_check.bench_models("srgan4x, dcgan128"))
    (command,) = commands
    assert [command[i + 1] for i, arg in enumerate(command) if arg == "--model"] == ["srgan4x", "dcgan128"]
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--bench-models", "srgan4,dcgan128"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "srgan4: expected some of dcgan128," in result.stderr


def test_the_bench_stage_reports_no_earlier_calls_bench_json_as_its_own(tmp_path, monkeypatch):
    """`gan bench --json` refused the bench.json an earlier call left in the folder (no --overwrite),
    exit 2, and the stage then read that file as this call's figures."""
    gpu_check = load_gpu_check()
    (tmp_path / "bench.json").write_text('{"marker": "OLD FILE"}')
    commands = []
    monkeypatch.setattr(gpu_check, "run_stage", lambda command, timeout, log: commands.append(command) or {})
    assert "results" not in gpu_check.stage_bench(tmp_path, 300, "cuda", False, tmp_path)
    assert "--overwrite" in commands[0]

    def writes(command, timeout, log):
        (tmp_path / "bench.json").write_text('{"marker": "NEW"}')
        return {}

    monkeypatch.setattr(gpu_check, "run_stage", writes)
    assert gpu_check.stage_bench(tmp_path, 300, "cuda", False, tmp_path)["results"] == {"marker": "NEW"}


def test_a_misspelt_stage_or_a_limit_below_1_is_refused_by_the_plan(tmp_path):
    """`--plan --stages tests,bnech` planned 220 s and said nothing (the real call refused it after the
    machine started); a negative --tests-timeout lowered the planned total past the device's guard."""
    script = str(REPO / "benchmarks" / "gpu_check.py")
    for arguments, said in ((["--stages", "tests,bnech"], "argument --stages: bnech: expected some of tests, bench"),
                            (["--tests-timeout", "-400"], "argument --tests-timeout: expected seconds above 0"),
                            (["--flagship-seconds", "nan"], "expected seconds above 0")):
        planned = subprocess.run([sys.executable, script, "--plan", *arguments], capture_output=True, text=True,
                                 timeout=60)
        assert planned.returncode == 2 and said in planned.stderr, planned.stderr


def test_the_share_of_matrix_kernels_leaves_out_cudnns_padding():
    """cuDNN's NHWC padding kernel (its name holds `cudnn`) was counted among the convolutions: 3.4
    points of the profile's 65%."""
    gpu_check = load_gpu_check()
    assert gpu_check.is_matrix_kernel("sm90_xmma_dgrad_implicit_gemm_indexed_bf16bf16_bf16f32_f32_nhwckrsc_nhwc")
    assert gpu_check.is_matrix_kernel("void cutlass::Kernel<cutlass_80_tensorop_s1688gemm_128x128_32x3_nn_align4>")
    assert not gpu_check.is_matrix_kernel("void nhwcAddPaddingKernel<__nv_bfloat16, __nv_bfloat16, float, true, "
                                          "(cudnnKernelDataType_t)0>(int, int, int, int, int, ")
    assert not gpu_check.is_matrix_kernel("void at::native::multi_tensor_apply_kernel<FusedOptimizerTensorListMetadata>")


def test_the_script_prints_its_usage_and_refuses_an_unknown_option_without_installing(tmp_path):
    # --help ran the GPU path: pip-installed the project into whatever python3 was first, then failed
    # on `--out --help`
    script = REPO / "benchmarks" / "gpu_check.sh"
    shown = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert shown.returncode == 0 and "benchmarks/gpu_check.sh --prepare" in shown.stdout, shown.stderr
    assert "usage: gpu_check.py" in shown.stdout and not (REPO / "--help").exists()
    typo = subprocess.run(["bash", str(script), "--prepar"], capture_output=True, text=True, timeout=60)
    assert typo.returncode == 2 and "unknown option '--prepar'" in typo.stderr
    # --prepare beside no ../shared: said first, before its folder is emptied
    checkout = tmp_path / "checkout"
    (checkout / "benchmarks" / ".gpu_check").mkdir(parents=True)
    (checkout / "benchmarks" / ".gpu_check" / "commit.txt").write_text("prepared before")
    copy = checkout / "benchmarks" / "gpu_check.sh"
    copy.write_text(script.read_text())
    prepared = subprocess.run(["bash", str(copy), "--prepare"], capture_output=True, text=True, timeout=60)
    assert prepared.returncode == 2 and "../shared/bench/baseline.py' is missing" in prepared.stderr, prepared.stderr
    assert (checkout / "benchmarks" / ".gpu_check" / "commit.txt").read_text() == "prepared before"


def test_the_summary_says_no_baseline_rather_than_a_measured_zero_and_files_are_written_whole(tmp_path):
    """A model without a baseline read "baseline (0)"; gpu_check.json was written in place, so a call
    killed at its limit mid-write left a JSON cut short."""
    gpu_check = load_gpu_check()
    row = {"model": "dcgan64", "ours_images_per_s": 100.0, "ratio": None, "baseline_images_per_s": None}
    text = gpu_check.summary({"environment": {"device": "cpu", "torch": "2"}, "bench": {"results": {"models": [row]}}})
    assert "100 img/s, no baseline" in text and "(0)" not in text
    gpu_check.write_whole(tmp_path / "gpu_check.json", "{}\n")
    assert [path.name for path in tmp_path.iterdir()] == ["gpu_check.json"]


def test_a_stage_past_its_limit_ends_with_the_children_it_started(tmp_path):
    """The stage's own process was killed at its limit, but a child it left holding the output pipe kept
    the read going: a 2 s limit returned after 30 s."""
    import time

    gpu_check = load_gpu_check()
    started = time.perf_counter()
    result = gpu_check.run_stage(["bash", "-c", "sleep 30 & echo child; sleep 30"], 2, tmp_path / "stage.log")
    assert time.perf_counter() - started < 15 and result["timed_out"]


def test_a_call_past_the_devices_limits_is_refused_before_any_gpu_time_and_plan_says_so(tmp_path):
    # The default stages could run 11 minutes against the device's 10 (the call killed, its bench half
    # done); the ablation kept its variants until its 7 minutes ended; 11 files where a call brings 8 back.
    script = str(REPO / "benchmarks" / "gpu_check.py")
    default = subprocess.run([sys.executable, script, "--plan"], capture_output=True, text=True, timeout=60)
    assert default.returncode == 0 and "refused" not in default.stdout, default.stdout
    assert "files: gpu_check.json, summary.md, cuda_tests.log, bench.json, bench.log" in default.stdout
    short = ["--bench-timeout", "10", "--train-seconds", "10", "--flagship-seconds", "10"]
    for stages, limits, said in (("tests,bench,train,profile", [], "past the device's 600 s a call: split them over"),
                                 ("bench,train,profile,flagship", short, "these stages write 10 files")):
        real = subprocess.run([sys.executable, script, "--stages", stages, "--out", str(tmp_path / "out"), *limits],
                              capture_output=True, text=True, timeout=60)
        assert real.returncode == 1 and said in real.stderr and "no CUDA GPU" not in real.stderr, real.stderr
        assert not (tmp_path / "out").exists()  # (nothing begun)
        planned = subprocess.run([sys.executable, script, "--plan", "--stages", stages, *limits],
                                 capture_output=True, text=True, timeout=60)
        assert planned.returncode == 0 and "refused in a real call: these stages" in planned.stdout
        assert said in planned.stdout, planned.stdout


def test_the_results_name_files_changed_since_prepare_on_a_machine_without_git(tmp_path, monkeypatch):
    # --prepare recorded `git describe` once, and .gpu_check outlives later commits: results measured
    # on changed code named the commit of --prepare's time.
    gpu_check = load_gpu_check()
    tree = tmp_path / "tree"
    (tree / "gan").mkdir(parents=True)
    (tree / "gan" / "loop.py").write_text("steps = 1\n")
    (tree / "README.md").write_text("# gan\n")
    prepared = tree / "benchmarks" / ".gpu_check"
    prepared.mkdir(parents=True)
    (prepared / "commit.txt").write_text("abc1234\n")
    monkeypatch.setattr(gpu_check, "REPO", tree)
    monkeypatch.setattr(gpu_check, "PREPARED", prepared)
    assert gpu_check.source_commit().startswith("abc1234 (prepared by an older gpu_check.sh")
    listing = "".join(f"100644 blob {gpu_check.blob_sha1(tree / name)}\t{name}\n" for name in ("gan/loop.py", "README.md"))
    if subprocess.run(["git", "--version"], capture_output=True).returncode == 0:  # (git's own hash, where git is)
        blob = subprocess.run(["git", "hash-object", str(tree / "gan" / "loop.py")], capture_output=True, text=True)
        assert blob.stdout.strip() == gpu_check.blob_sha1(tree / "gan" / "loop.py")
    (prepared / "tree.txt").write_text(listing + "160000 commit 0123\tshared\n")
    assert gpu_check.source_commit() == "abc1234"
    (tree / "gan" / "loop.py").write_text("steps = 2\n")  # an edit after --prepare
    assert gpu_check.source_commit() == "abc1234+1 files changed (gan/loop.py)"
    (tree / ".git").mkdir()  # a .git that git gives nothing for (not a repository; "dubious ownership"): as without
    assert gpu_check.source_commit() == "abc1234+1 files changed (gan/loop.py)"
