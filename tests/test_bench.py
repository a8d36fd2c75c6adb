"""`gan bench`: the canonical configurations match the baseline's models, and the harness reports."""

import io
import json
import warnings
from types import SimpleNamespace

import pytest
import torch
from click.testing import CliRunner
from conftest import REPO, assert_one_error_line, damage_past_the_header, random_rgb
from PIL import Image

from gan.commands.main import main
from gan.recipes import RECIPES
from gan.tools.benchmark import CASES, bench_model, load_baseline, our_step
from gan.training.device import make_autocast
from gan.training.resolve import load_config
from gan.training.speed import Speed

CPU = torch.device("cpu")
SHARED_BASELINE = REPO.parent / "shared" / "bench" / "baseline.py"


@pytest.fixture(scope="module")
def baseline():
    if not SHARED_BASELINE.is_file():
        pytest.skip(f"the baseline {SHARED_BASELINE} is absent (it sits beside the checkout on project machines)")
    return load_baseline(SHARED_BASELINE)


def parameter_count(networks) -> int:
    return sum(parameter.numel() for network in networks for parameter in network.parameters())


@pytest.mark.parametrize("name", [name for name, case in CASES.items() if case.baseline])
def test_canonical_configs_have_the_baselines_parameter_counts(name, baseline):
    config = load_config(None, list(CASES[name].overrides))
    recipe = RECIPES.get(config.recipe)(config, CPU, make_autocast(CPU, False))
    generators = [net for key, net in recipe.networks.items() if key.startswith("generator") and "ema" not in key]
    discriminators = [net for key, net in recipe.networks.items() if key.startswith("discriminator")]
    batch, build = baseline.MODELS[CASES[name].baseline]
    assert config.train.batch_size == batch
    setup = build(batch, CPU, SimpleNamespace(vgg=False))
    # The pix2pix reference code gives the U-Net's first and innermost convolutions no bias under
    # BatchNorm (use_bias=False), as ours does; the baseline gives them one: 64 + 512 parameters.
    # SRResNet: our PReLUs learn one slope per channel (He et al.'s channel-wise form); the baseline's
    # one per layer: 19 layers x 63 parameters.
    convention = {"pix2pix256": 64 + 512, "srgan4x": -19 * 63}.get(name, 0)
    assert parameter_count(generators) + convention == parameter_count(setup["G"])
    if name == "srgan4x":
        # Our SRGAN discriminator averages its last 512-channel map before the dense layers, so it
        # takes any crop size; the paper flattens the 6x6 map of a 96 px crop: 35 x 512 x 1024 more
        # weights in the first dense layer, about 37 MFLOP per image against 9 GFLOP of convolutions.
        assert parameter_count(discriminators) + 35 * 512 * 1024 == parameter_count(setup["D"])
    else:
        assert parameter_count(discriminators) == parameter_count(setup["D"])


def test_bench_times_ours_and_the_baseline_and_reports_the_ratio(baseline):
    row = bench_model("dcgan64", CPU, baseline, rounds=2, iterations=1, warmup=0, fast=True, flops=True)
    assert row.ours_images_per_s > 0 and row.baseline_images_per_s > 0
    assert row.ratio == pytest.approx(row.ours_images_per_s / row.baseline_images_per_s)
    assert row.ours_tflops > 0 and row.baseline_tflops > 0
    assert row.ours_peak_mib is None  # CUDA only


def test_bench_cli_writes_json_without_a_baseline(tmp_path):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(main, ["bench", "--model", "dcgan64", "--rounds", "1", "--iters", "1", "--warmup", "0",
                                       "--json", str(out)])
    assert result.exit_code == 0, result.output
    # (the note was on stdout, under the table a script reads: notes are on stderr)
    assert "| dcgan64 |" in result.stdout and "baseline columns empty" not in result.stdout
    assert "(baseline columns empty: no --baseline file was given)" in result.stderr
    missing = CliRunner().invoke(main, ["bench", "--model", "dcgan64", "--baseline", str(tmp_path / "absent.py")])
    assert missing.exit_code == 2 and "no baseline file" in missing.output and "absent.py" in missing.output
    report = json.loads(out.read_text())
    assert report["models"][0]["model"] == "dcgan64" and report["models"][0]["ratio"] is None
    result = CliRunner().invoke(main, ["bench", "--model", "dcgan65"])
    assert result.exit_code == 2 and "unknown model(s) 'dcgan65'" in result.output
    result = CliRunner().invoke(main, ["bench", "--model", "DCGAN64"])
    assert result.exit_code == 2 and "unknown model(s) 'DCGAN64' (did you mean 'dcgan64'?)" in result.output
    result = CliRunner().invoke(main, ["bench", "--model", ""])  # (the empty name was invisible: "model(s) ;")
    assert result.exit_code == 2 and "unknown model(s) ''; known:" in result.output


def test_a_model_given_twice_is_timed_once(tmp_path, monkeypatch):
    import gan.tools.benchmark

    timed = []
    monkeypatch.setattr(gan.tools.benchmark, "bench_model", lambda name, *args, **kwargs: timed.append(name) or
                        gan.tools.benchmark.Row(name, 10.0, None, None, None, None, None, None, 1.0))
    result = CliRunner().invoke(main, ["bench", "--model", "dcgan64", "--model", "dcgan64", "--device", "cpu",
                                       "--data-root", "none", "--json", str(tmp_path / "b.json")])
    assert result.exit_code == 0 and timed == ["dcgan64"], result.output
    assert [row["model"] for row in json.loads((tmp_path / "b.json").read_text())["models"]] == ["dcgan64"]


def test_a_stopped_bench_says_what_its_json_holds(tmp_path, monkeypatch):
    # stopped at its second model, it said "stopped by Ctrl-C" alone, and a retry was refused for b.json
    # without a word that it was this bench's partial result
    import gan.tools.benchmark

    def stopped_at_the_second(name, *args, **kwargs):
        if name == "pix2pix256":
            raise KeyboardInterrupt
        return gan.tools.benchmark.Row(name, 10.0, None, None, None, None, None, None, 1.0)

    monkeypatch.setattr(gan.tools.benchmark, "bench_model", stopped_at_the_second)
    result = CliRunner().invoke(main, ["bench", "--model", "dcgan64", "--model", "pix2pix256", "--device", "cpu",
                                       "--data-root", "none", "--json", str(tmp_path / "b.json")])
    assert result.exit_code == 130 and f"stopped: '{tmp_path / 'b.json'}' holds what was measured before the stop " \
        "(dcgan64: its \"measured\" list); pass --overwrite to measure again into it" in result.output, result.output
    assert json.loads((tmp_path / "b.json").read_text())["settings"]["measured"] == ["dcgan64"]


def test_a_json_another_bench_wrote_meanwhile_is_not_replaced(tmp_path, monkeypatch):
    """Two benches given one --json, both started before either wrote it: each exited 0 saying "wrote"
    it, and it held the last one's models alone (a second writer, as a run directory has none)."""
    import gan.tools.benchmark

    other = json.dumps({"settings": {"measured": ["srresnet4x"]}, "models": [{"model": "srresnet4x"}]})

    def other_bench_writes_first(name, *args, **kwargs):
        if name == "dcgan64":  # (while this one measured its first model, the other wrote its results)
            (tmp_path / "b.json").write_text(other)
        return gan.tools.benchmark.Row(name, 10.0, None, None, None, None, None, None, 1.0)

    monkeypatch.setattr(gan.tools.benchmark, "bench_model", other_bench_writes_first)
    result = CliRunner().invoke(main, ["bench", "--model", "dcgan64", "--model", "pix2pix256", "--device", "cpu",
                                       "--data-root", "none", "--json", str(tmp_path / "b.json")])
    assert_one_error_line(result, f"'{tmp_path / 'b.json'}' was written by another command since this bench began "
                                  "(another gan bench with the same --json?): not replaced; the figures are in the "
                                  "table above")
    assert (tmp_path / "b.json").read_text() == other and "dcgan64" in result.output
    # rewritten in place (the same inode), as `echo > b.json` does: not replaced either; removed: written anew
    written = {"n": 0}

    def rewritten_in_place_then_removed(name, *args, **kwargs):
        written["n"] += 1
        if written["n"] == 2:
            with open(tmp_path / "c.json", "w") as handle:
                handle.write(other)
        return gan.tools.benchmark.Row(name, 10.0, None, None, None, None, None, None, 1.0)

    monkeypatch.setattr(gan.tools.benchmark, "bench_model", rewritten_in_place_then_removed)
    models = ["--model", "dcgan64", "--model", "pix2pix256", "--device", "cpu", "--data-root", "none", "--json"]
    result = CliRunner().invoke(main, ["bench", *models, str(tmp_path / "c.json")])
    assert result.exit_code == 2 and (tmp_path / "c.json").read_text() == other, result.output
    (tmp_path / "c.json").unlink()
    written["n"] = 0
    monkeypatch.setattr(gan.tools.benchmark, "bench_model", lambda name, *args, **kwargs: (
        name == "pix2pix256" and (tmp_path / "d.json").unlink()) or gan.tools.benchmark.Row(
        name, 10.0, None, None, None, None, None, None, 1.0))
    result = CliRunner().invoke(main, ["bench", *models, str(tmp_path / "d.json")])
    assert result.exit_code == 0, result.output
    assert [row["model"] for row in json.loads((tmp_path / "d.json").read_text())["models"]] == ["dcgan64", "pix2pix256"]


def test_a_model_that_fails_is_reported_and_the_others_are_still_measured(tmp_path, monkeypatch):
    import gan.tools.benchmark

    def fake_bench_model(name, *args, **kwargs):
        if name == "pix2pix256":
            raise RuntimeError("an inductor stride assertion")
        return gan.tools.benchmark.Row(name, 10.0, None, None, None, None, None, None, 1.0)

    monkeypatch.setattr(gan.tools.benchmark, "bench_model", fake_bench_model)
    result = CliRunner().invoke(main, ["bench", "--model", "pix2pix256", "--model", "dcgan64", "--device", "cpu",
                                       "--data-root", "none", "--json", str(tmp_path / "b.json")])
    assert result.exit_code == 2 and "RuntimeError: an inductor stride assertion" in result.output, result.output
    assert result.output.splitlines()[-1] == "error: failed: pix2pix256 (said above)"  # (not twice in full)
    written = json.loads((tmp_path / "b.json").read_text())
    assert [row["model"] for row in written["models"]] == ["dcgan64"]
    assert written["failures"] == {"pix2pix256": "RuntimeError: an inductor stride assertion"}


def test_an_override_a_models_recipe_refuses_is_one_line_not_a_traceback():
    result = CliRunner().invoke(main, ["bench", "--model", "dcgan64", "--device", "cpu", "--data-root", "none",
                                       "--rounds", "1", "--iters", "1", "--warmup", "0",
                                       "--set", "train.adversarial_start=10"])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "error: dcgan64: train.adversarial_start is for recipes with a reconstruction loss" in result.output
    assert "| model |" not in result.output  # nothing measured: no empty table


def test_networks_a_set_does_not_fit_and_a_batch_past_memory_are_refused_before_any_timing():
    # srresnet4x was timed in full before dcgan64 refused a resolution of 48; a batch far past memory
    # was killed by the kernel without a word, where gan train refuses it.
    result = CliRunner().invoke(main, ["bench", "--model", "srresnet4x", "--model", "dcgan64", "--device", "cpu",
                                       "--data-root", "none", "--rounds", "1", "--iters", "1", "--warmup", "0",
                                       "--set", "data.resolution=48"])
    assert result.exit_code == 2 and "timing" not in result.output, result.output
    assert "error: dcgan64: data.resolution: resolution must be a power of two" in result.output
    result = CliRunner().invoke(main, ["bench", "--model", "dcgan64", "--device", "cpu", "--data-root", "none",
                                       "--rounds", "1", "--iters", "1", "--warmup", "0",
                                       "--set", "train.batch_size=100000000"])
    assert result.exit_code == 2 and "error: dcgan64: train.batch_size 100000000 needs at least" in result.output
    assert "round 1/1" not in result.output, result.output


def test_a_json_path_that_cannot_be_written_costs_no_measurement(tmp_path, monkeypatch):
    import os

    import gan.tools.benchmark
    from gan.core.files import WriteError
    from gan.inference import outputs

    def fake_bench_model(name, *args, **kwargs):
        return gan.tools.benchmark.Row(name, 10.0, None, None, None, None, None, None, 1.0)

    monkeypatch.setattr(gan.tools.benchmark, "bench_model", fake_bench_model)
    args = ["bench", "--model", "dcgan64", "--device", "cpu", "--data-root", "none"]
    real_access = os.access  # a read-only folder (root ignores permissions): refused before measuring
    monkeypatch.setattr(outputs.os, "access", lambda path, mode: False if str(path) == str(tmp_path) and
                        mode & os.W_OK else real_access(path, mode))
    refused = CliRunner().invoke(main, [*args, "--json", str(tmp_path / "b.json")])
    assert refused.exit_code == 2 and f"'{tmp_path}' is read-only" in refused.output, refused.output
    assert "| dcgan64 |" not in refused.output
    monkeypatch.setattr(outputs.os, "access", real_access)

    def full_disk(path, *args, **kwargs):
        raise WriteError(f"could not write '{path}' (0.0 MiB free): [Errno 28] No space left on device")

    monkeypatch.setattr(gan.tools.benchmark, "write_json", full_disk)  # the disk fills while measuring
    result = CliRunner().invoke(main, [*args, "--json", str(tmp_path / "b.json")])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "| dcgan64 |" in result.output  # the figures reach the terminal
    assert "No space left on device; the figures are in the table above" in result.output


@pytest.mark.parametrize("name", ["000001.jpg", "results", "bench.json.bak"])
def test_a_json_path_not_named_json_is_refused_before_measuring(tmp_path, monkeypatch, name):
    """`--json photos/000001.jpg --overwrite` replaced the JPEG (read-only too) with the results."""
    import gan.tools.benchmark

    measured = []
    monkeypatch.setattr(gan.tools.benchmark, "bench_model", lambda name, *args, **kwargs: measured.append(name))
    photo = tmp_path / name
    photo.write_bytes(b"\xff\xd8 a photo")
    photo.chmod(0o444)
    result = CliRunner().invoke(main, ["bench", "--model", "dcgan64", "--device", "cpu", "--data-root", "none",
                                       "--json", str(photo), "--overwrite"])
    assert result.exit_code == 2 and f"'{photo}' has " in result.output and "need .json" in result.output, \
        result.output
    assert measured == [] and photo.read_bytes() == b"\xff\xd8 a photo"


def test_a_warm_up_too_short_for_compilation_says_the_first_round_times_it():
    """0.07 img/s and 0.000 TFLOP/s came with no word that --warmup 0 timed the compilation."""
    command = ["bench", "--model", "dcgan64", "--device", "cpu", "--data-root", "none", "--rounds", "1", "--iters", "1",
               "--set", "train.batch_size=2"]
    compiled = ["--set", "train.compile=on", "--set", "train.compile_backend=eager"]  # (dynamo alone: seconds)
    short = CliRunner().invoke(main, [*command, "--warmup", "0", *compiled])
    assert short.exit_code == 0, short.output
    assert "dcgan64: --warmup 0 leaves compilation (done by step 1) in the first timed round" in short.output
    for enough in (["--warmup", "1", *compiled], ["--warmup", "0", "--set", "train.compile=off"]):
        result = CliRunner().invoke(main, [*command, *enough])
        assert result.exit_code == 0 and "in the first timed round" not in result.output, result.output


def test_bench_set_overrides_reach_our_side_and_bad_ones_stop_at_once(tmp_path):
    runner = CliRunner()
    bad = runner.invoke(main, ["bench", "--model", "dcgan64", "--device", "cpu", "--set", "train.compile=sometimes"])
    assert bad.exit_code == 2 and "train.compile must be one of auto, on, off; got 'sometimes'" in bad.output
    step, batch, _ = our_step("dcgan64", CPU, True, ("train.batch_size=4",))
    assert batch == 4
    from gan.tools.benchmark import unmeasured_overrides

    assert unmeasured_overrides(["log.every=5", "data.root=/faces", "data.resolution=64", "train.compile=off",
                                 "train.checkpoint_every=9", "metrics.every=1"]) == [
        "log.every", "data.root", "train.checkpoint_every", "metrics.every"]


def test_the_flops_are_counted_on_an_eager_step_whatever_set_turns_on():
    """--set train.compile=on (or, on CUDA, train.cuda_graph=on) came after the counted step's switches:
    it compiled again only to count, and a graph replay would have counted nothing."""
    settings = ("train.compile=on", "train.channels_last=on", "train.batch_size=2")
    _, _, speed = our_step("dcgan64", CPU, False, settings, counted=True)
    assert not speed.compiled and not speed.cuda_graph and speed.memory_format == torch.contiguous_format
    _, _, timed = our_step("dcgan64", CPU, False, ("train.channels_last=on", "train.batch_size=2"))
    assert timed.memory_format == torch.channels_last  # (the timed step keeps what --set asks)


def test_our_steps_run_under_a_callers_float64_default_dtype():
    """Networks are built in float32 whatever the default dtype, but the synthetic batches and DCGAN's
    latents were drawn in the caller's float64: every bench in a notebook that had set it failed
    ("Input type (double) and bias type (float) should be the same")."""
    torch.set_default_dtype(torch.float64)
    try:
        for name, overrides in (("dcgan64", ("train.batch_size=2", "data.resolution=32")),
                                ("pix2pix256", ("data.resolution=64", "model.generator=unet",
                                                "model.generator_args.num_downs=6", "model.generator_args.channels=4",
                                                "model.discriminator_args.channels=4"))):
            step, _, _ = our_step(name, CPU, False, overrides)
            step()
        assert torch.get_default_dtype() == torch.float64
    finally:
        torch.set_default_dtype(torch.float32)


def test_a_set_batch_reaches_both_sides_and_a_set_workload_of_ours_alone_is_warned_of(baseline, tmp_path, monkeypatch):
    """--set train.batch_size changed our side alone: the ratio divided a batch of 8 by the baseline's 64."""
    from gan.tools import benchmark

    asked = []
    real_baseline_step = benchmark.baseline_step
    monkeypatch.setattr(benchmark, "baseline_step", lambda module, name, device, batch_size=None: (
        asked.append(batch_size) or real_baseline_step(module, name, device, batch_size)))
    command = ["bench", "--model", "dcgan64", "--rounds", "1", "--iters", "1", "--warmup", "0", "--device", "cpu",
               "--baseline", str(SHARED_BASELINE), "--json", str(tmp_path / "b.json")]
    result = CliRunner().invoke(main, [*command, "--set", "train.batch_size=4"])
    assert result.exit_code == 0, result.output
    assert asked == [4] and "two different workloads" not in result.output
    settings = json.loads((tmp_path / "b.json").read_text())["settings"]
    assert settings["batch_size"] == 4
    # what reproduces the figures, and which of the models asked for were measured (a run cut short: fewer)
    import gan

    assert settings["models"] == settings["measured"] == ["dcgan64"] and settings["warmup"] == 0
    assert settings["gan"] == gan.__version__ and settings["baseline"] == str(SHARED_BASELINE)
    narrower = CliRunner().invoke(main, [*command, "--overwrite", "--set", "train.batch_size=4", "--set",
                                         "model.generator_args.channels=16"])
    assert narrower.exit_code == 0 and "--set model.generator_args.channels changes the work of gan's step alone; " \
        "the baseline runs its canonical model, so the ratio compares two different workloads" in narrower.output


BENCH = ["bench", "--model", "dcgan64", "--device", "cpu", "--rounds", "1", "--iters", "1", "--warmup", "0",
         "--set", "train.batch_size=2", "--data-root", "none"]


def write_baseline(path, models: str, prelude: str = ""):
    """A baseline file at `path` whose MODELS is `models`, after `prelude`."""
    path.write_text(f"import torch\n{prelude}\nMODELS = {models}\n")
    return path


@pytest.mark.parametrize("prelude, code", [("import sys\nsys.exit(0)", "0"),
                                           ("import argparse\nargparse.ArgumentParser().parse_args(['-x'])", "2")])
def test_a_baseline_that_exits_at_import_is_one_line_naming_the_file(tmp_path, prelude, code):
    """sys.exit at import ended bench with that exit code, even 0, and no word."""
    path = write_baseline(tmp_path / "exits.py", "{}", prelude)
    result = CliRunner().invoke(main, [*BENCH, "--baseline", str(path)])
    assert result.exit_code == 2 and f"error: --baseline '{path}' cannot be imported: it exits at import " \
        f"(SystemExit: {code})" in result.output, result.output


def test_a_baseline_with_dataclasses_and_string_annotations_loads(tmp_path):
    """@dataclass under `from __future__ import annotations` looks its module up in sys.modules."""
    path = tmp_path / "typed.py"
    path.write_text("from __future__ import annotations\nfrom dataclasses import dataclass\n\n\n@dataclass\n"
                    "class Setting:\n    batch: int = 4\n\n\nMODELS = {'dcgan64': (Setting().batch, print)}\n")
    assert load_baseline(path, ["dcgan64"]).MODELS["dcgan64"][0] == 4


@pytest.mark.parametrize("entry", ["(0, print)", "(True, print)", "(-2, print)"])
def test_a_baseline_entry_without_a_positive_batch_or_a_build_is_refused_up_front(tmp_path, entry):
    """A batch of 0 ended in a ZeroDivisionError, a batch of True in torch's TypeError, mid-run."""
    path = write_baseline(tmp_path / "odd.py", f"{{'dcgan64': {entry}}}")
    result = CliRunner().invoke(main, [*BENCH, "--baseline", str(path)])
    assert result.exit_code == 2 and f"error: --baseline '{path}': MODELS['dcgan64'] is not a (batch size, build " \
        "function) pair with a positive int batch size" in result.output and "round" not in result.output, result.output


@pytest.mark.parametrize("built, expected", [
    ("{'step': lambda: None}", "returned no 'G' list of networks"),
    ("{'G': [torch.nn.Linear(1, 1)], 'D': [torch.nn.Linear(1, 1)], 'step': None}", "returned no 'step' function"),
    # (empty lists and a step of nothing timed 500,000 img/s, reported as a ratio of 0.000)
    ("{'G': [], 'D': [], 'step': lambda: None}", "returned no network with parameters in 'G'"),
    ("{'G': [torch.nn.ReLU()], 'D': [torch.nn.Linear(1, 1)], 'step': lambda: None}",
     "returned no network with parameters in 'G'"),
    ("None", "returned a NoneType, not a dict of 'G', 'D' and 'step'")])
def test_a_baseline_build_that_returns_the_wrong_thing_is_one_line_before_timing(tmp_path, built, expected):
    """A build without 'G' ended in a KeyError traceback from baseline_step."""
    path = write_baseline(tmp_path / "odd.py", f"{{'dcgan64': (4, lambda batch, device, args: {built})}}")
    result = CliRunner().invoke(main, [*BENCH, "--baseline", str(path)])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert f"error: dcgan64: --baseline '{path}': MODELS['dcgan64']'s build {expected}" in result.output
    assert "round 1" not in result.output
    # the JSON names the error as what it is (it said ConfigError)
    report = tmp_path / "bench.json"
    CliRunner().invoke(main, [*BENCH, "--baseline", str(path), "--json", str(report)])
    assert json.loads(report.read_text())["failures"]["dcgan64"].startswith("BaselineError: ")


TINY_BUILD = '''
BUILT = []


def build(batch, device, args):
    BUILT.append(batch)
    return {"G": [torch.nn.Linear(1, 1)], "D": [torch.nn.Linear(1, 1)], "step": lambda: None}
'''


def test_the_baseline_runs_at_our_batch_whatever_its_models_default(tmp_path):
    """A baseline whose MODELS said batch 2 ran at 2 beside ours at 64: a ratio of different work, unsaid."""
    import io

    module = load_baseline(write_baseline(tmp_path / "small.py", "{'dcgan64': (2, build)}", TINY_BUILD))
    log = io.StringIO()
    row = bench_model("dcgan64", CPU, module, rounds=1, iterations=1, warmup=0, fast=False, flops=False, log=log,
                      overrides=("model.generator_args.channels=4", "model.discriminator_args.channels=4"))
    assert module.BUILT == [64] and row.batch_size == 64
    assert "dcgan64: the baseline's MODELS batch is 2; both sides run at ours, 64" in log.getvalue()


def test_each_model_says_when_it_starts_before_its_silent_warm_up():
    import io

    log = io.StringIO()
    bench_model("dcgan64", CPU, None, rounds=1, iterations=1, warmup=0, fast=False, flops=False, log=log,
                overrides=("model.generator_args.channels=4", "model.discriminator_args.channels=4"), batch_size=2)
    assert log.getvalue().startswith("  timing dcgan64 ...\n  dcgan64 round 1/1: ours ")


@pytest.mark.parametrize("penalty", ["loss.preset=wgan-gp", "loss.r1_gamma=1"])
def test_a_step_that_differentiates_twice_is_timed_though_its_flops_cannot_be_counted(penalty):
    """torch's FLOP counter cannot follow autograd.grad's double backward: `gan bench --set
    loss.preset=wgan-gp` failed after timing the step."""
    with pytest.warns(UserWarning, match="dcgan64: TFLOP/s not counted: torch's FLOP counter cannot follow"):
        row = bench_model("dcgan64", CPU, None, rounds=1, iterations=1, warmup=0, fast=False, flops=True,
                          overrides=("model.generator_args.channels=4", "model.discriminator_args.channels=4",
                                     penalty, *(("loss.r1_every=1",) if "r1" in penalty else ())), batch_size=2)
    assert row.ours_images_per_s > 0 and row.ours_tflops is None


def test_every_set_key_but_the_speed_switches_is_warned_of_as_ours_alone():
    """train.adversarial_start, ema_decay, lr_* changed our side's work alone, with no warning."""
    from gan.tools.benchmark import workload_overrides

    assert workload_overrides(["train.adversarial_start=5", "train.ema_decay=0", "train.g_lr=1e-3", "recipe=srgan",
                               "model.generator_args.channels=8", "data.resolution=32", "train.compile=off",
                               "train.amp=false", "train.cuda_graph=on", "train.batch_size=4", "data.num_workers=0",
                               "log.every=5", "train.seed=3"]) == [
        "train.adversarial_start", "train.ema_decay", "train.g_lr", "recipe", "model.generator_args.channels",
        "data.resolution"]


def test_a_set_of_the_ema_is_warned_of_on_the_command_line(tmp_path):
    path = write_baseline(tmp_path / "small.py", "{'dcgan64': (2, build)}", TINY_BUILD)
    result = CliRunner().invoke(main, [*BENCH, "--eager", "--set", "train.ema_decay=0", "--set",
                                       "model.generator_args.channels=4", "--set", "model.discriminator_args.channels=4",
                                       "--baseline", str(path)])
    assert result.exit_code == 0, result.output
    assert "warning: --set train.ema_decay, model.generator_args.channels, model.discriminator_args.channels changes " \
        "the work of gan's step alone" in result.output


def test_the_json_never_replaces_the_baseline_and_an_existing_file_only_with_overwrite(tmp_path, monkeypatch):
    """--json silently overwrote any file, even the --baseline file itself (named .json now: through a link)."""
    import gan.tools.benchmark

    monkeypatch.setattr(gan.tools.benchmark, "bench_model", lambda name, *args, **kwargs: gan.tools.benchmark.Row(
        name, 10.0, None, None, None, None, None, None, 1.0))
    path = write_baseline(tmp_path / "base.py", "{'dcgan64': (2, build)}", TINY_BUILD)
    text = path.read_text()
    link = tmp_path / "base.json"
    link.symlink_to(path)
    itself = CliRunner().invoke(main, [*BENCH, "--baseline", str(path), "--json", str(link), "--overwrite"])
    assert itself.exit_code == 2 and f"would overwrite the input '{path}'" in itself.output, itself.output
    assert path.read_text() == text and "| dcgan64 |" not in itself.output
    notes = tmp_path / "notes.json"
    notes.write_text("mine\n")
    kept = CliRunner().invoke(main, [*BENCH, "--json", str(notes)])
    assert kept.exit_code == 2 and "pass --overwrite to replace them" in kept.output and notes.read_text() == "mine\n"
    replaced = CliRunner().invoke(main, [*BENCH, "--json", str(notes), "--overwrite"])
    assert replaced.exit_code == 0 and json.loads(notes.read_text())["models"][0]["model"] == "dcgan64"


def image_folder(folder, count: int):
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        Image.new("RGB", (8, 8)).save(folder / f"{index}.png")


def test_a_data_root_with_fewer_than_a_batch_in_its_subfolders_is_refused(tmp_path):
    """70 images in ROOT and 2 in ROOT/sub passed the check; ImageFolder read 2, and the timing waited forever."""
    from gan.tools.benchmark import DataRootError, check_data_root

    image_folder(tmp_path, 70)
    image_folder(tmp_path / "sub", 2)
    with pytest.raises(DataRootError, match=r"holds 2 images; the data-path benchmark needs at least 64 \(one batch\) "
                                            "in its subfolders, which torchvision's ImageFolder reads"):
        check_data_root(tmp_path)
    (tmp_path / "empty").mkdir()  # (ImageFolder refused a subfolder without images, which gan reads past)
    image_folder(tmp_path / "sub", 64)
    check_data_root(tmp_path)


def test_a_data_root_whose_first_images_are_at_its_top_is_one_line_not_a_traceback(tmp_path):
    """The check counts every image in the subfolders, but the timing reads gan's first images by path:
    those at the top came first, ImageFolder got none, and DataLoader raised "num_samples=0"."""
    from gan.tools.benchmark import DataRootError, bench_data, check_data_root

    image_folder(tmp_path / "faces", 12)
    image_folder(tmp_path / "faces" / "zz", 8)
    check_data_root(tmp_path / "faces", batch_size=4)
    with pytest.raises(DataRootError, match=r"of the first 12 images gan reads there \(by path\), 0 are in its "
                                            "subfolders, which torchvision's ImageFolder reads, and a batch needs 4"):
        bench_data(tmp_path / "faces", 8, 4, 2, 0, tmp_path / "cache", log=io.StringIO())


def test_the_torchvision_comparison_reads_the_files_gan_reads(tmp_path):
    # a FIFO named x.png, which gan passes over, kept ImageFolder's loader waiting forever; macOS's ._0.png,
    # hidden to gan, stopped it as undecodable
    import os

    from gan.tools.benchmark import bench_data

    image_folder(tmp_path / "faces" / "class", 12)
    (tmp_path / "faces" / "class" / "._0.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    os.mkfifo(tmp_path / "faces" / "class" / "fifo.png")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (gan names the FIFO it passes over)
        result = bench_data(tmp_path / "faces", 8, 4, 2, 0, tmp_path / "cache", log=io.StringIO())
    assert result["images"] == 12 and result["imagefolder_images_per_s"] > 0


def test_a_data_root_with_links_to_a_parent_is_read_as_gan_lists_it_not_walked_without_end(tmp_path):
    # ImageFolder walks linked folders with no guard: two links to a parent in one folder made it walk
    # about 2**40 folders, and gan bench sat silent for ever before timing anything
    import subprocess
    import sys

    image_folder(tmp_path / "faces" / "class", 8)
    for name in ("up1", "up2"):
        (tmp_path / "faces" / "class" / name).symlink_to("..", target_is_directory=True)
    script = ("import sys; from pathlib import Path; from gan.tools.benchmark import check_data_root; "
              "check_data_root(Path(sys.argv[1]), batch_size=4); print('checked')")
    try:
        done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "faces")], capture_output=True,
                              text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("the data root's check was still walking its linked folders after 120 s")
    assert done.returncode == 0 and "checked" in done.stdout, done.stderr[-2000:]


def test_an_empty_loader_raises_instead_of_looping_forever():
    from gan.tools.benchmark import DataRootError, _endless

    class Empty:
        passes = 0

        def __iter__(self):
            self.passes += 1
            if self.passes > 3:
                raise AssertionError("looped over an empty loader")
            return iter(())

    with pytest.raises(DataRootError, match="gave no batch"):
        next(_endless(Empty()))


@pytest.mark.filterwarnings("ignore")  # (ours warns of the undecodable file and skips it)
def test_an_undecodable_image_in_the_data_root_is_one_line_after_the_models_table(tmp_path, monkeypatch):
    """ImageFolder's PIL.UnidentifiedImageError ended bench in a traceback after every model was timed."""
    import gan.tools.benchmark

    monkeypatch.setattr(gan.tools.benchmark, "bench_model", lambda name, *args, **kwargs: gan.tools.benchmark.Row(
        name, 10.0, None, None, None, None, None, None, 1.0))
    image_folder(tmp_path / "faces" / "class", 64)
    random_rgb((16, 16), 0).save(tmp_path / "faces" / "class" / "0-broken.jpg")  # (first: among the images read)
    damage_past_the_header(tmp_path / "faces" / "class" / "0-broken.jpg")  # (passes gan's header check)
    result = CliRunner().invoke(main, [*BENCH[:-2], "--data-root", str(tmp_path / "faces"), "--data-workers", "0",
                                       "--json", str(tmp_path / "b.json")])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    # (once, after the table: it was said before the table, then again in the last line)
    said = f"data path (DataRootError: --data-root '{tmp_path / 'faces'}': torchvision's ImageFolder cannot read an " \
        "image there (broken data stream"
    assert result.output.count("broken data stream") == 1 and said in result.output.splitlines()[-1]
    assert result.output.index("| dcgan64 |") < result.output.index(said), result.output
    assert "DataRootError" in json.loads((tmp_path / "b.json").read_text())["failures"]["data path"]


@pytest.mark.filterwarnings("ignore")
def test_the_data_path_reads_as_many_images_as_it_times_and_a_full_temp_disk_names_tmpdir(tmp_path, monkeypatch):
    # all 202,599 CelebA faces went into a 9.3 GiB cache in the temp folder to time 40 batches, and a
    # full disk's advice named data.cache_dir, which bench does not take
    import gan.data
    from gan.core.files import WriteError
    from gan.tools.benchmark import DataRootError, bench_data

    image_folder(tmp_path / "faces" / "class", 30)
    result = bench_data(tmp_path / "faces", 8, 4, 2, 0, tmp_path / "cache")
    assert result["images"] == 12 and result["cached_images_per_s"] > 0 and result["imagefolder_images_per_s"] > 0
    (cache,) = (tmp_path / "cache").glob("*.npy")
    assert cache.stat().st_size < 13 * 3 * 8 * 8

    def full(*args, **kwargs):
        raise WriteError("could not write the decoded-image cache") from OSError(28, "No space left on device")

    monkeypatch.setattr(gan.data, "training_batches", full)
    with pytest.raises(DataRootError, match=r"temp folder .*No space left on device.*: set TMPDIR to a folder on a "
                                            r"disk with room"):
        bench_data(tmp_path / "faces", 8, 4, 2, 0, tmp_path / "cache")


def test_each_round_line_reports_that_round_and_the_result_all_rounds():
    """The round lines were running averages: a slow round was hidden in the next lines' figures."""
    import time

    from gan.tools.benchmark import _Side

    delays = iter([0.05, 0.05, 0.0, 0.0])
    side = _Side(lambda: time.sleep(next(delays)), batch=10, device=CPU, cudnn_benchmark=False)
    side.run(2)
    slow = side.round_images_per_second
    side.run(2)
    assert slow < 250 and side.round_images_per_second > 1000  # 20 images in 0.1 s, then in no time
    assert side.images_per_second == pytest.approx(40 / side.seconds) and side.images_per_second < 500


def test_the_sr_model_without_a_baseline_is_benched_without_warnings_of_its_own_settings(baseline, tmp_path):
    # srresnet4x carried the discriminator's train.d_lr it shares with srgan4x ("changes nothing"),
    # and a workload --set warned of "the ratio" where this model has no baseline and no ratio.
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(main, ["bench", "--model", "srresnet4x", "--device", "cpu", "--rounds", "1",
                                           "--iters", "1", "--warmup", "0", "--baseline", str(SHARED_BASELINE),
                                           "--set", "train.batch_size=1", "--set", "data.resolution=16"])
    assert result.exit_code == 0, result.output
    said = result.output + "".join(str(warning.message) for warning in caught)
    assert "train.d_lr" not in said and "two different workloads" not in said, said


def test_a_model_the_baseline_has_none_of_is_said_under_the_table(tmp_path):
    # srresnet4x's baseline columns showed "-" with no word, beside a --baseline that was given
    path = write_baseline(tmp_path / "small.py", "{'dcgan64': (2, build)}", TINY_BUILD)
    result = CliRunner().invoke(main, ["bench", "--model", "srresnet4x", "--device", "cpu", "--rounds", "1", "--iters",
                                       "1", "--warmup", "0", "--baseline", str(path), "--set", "train.batch_size=2",
                                       "--set", "model.generator_args.channels=4",
                                       "--set", "model.generator_args.num_blocks=1"])
    assert result.exit_code == 0, result.output
    assert "(baseline columns empty for srresnet4x: the baseline has no such model)" in result.stderr


@pytest.mark.parametrize("models, expected", [
    ("{'dcgan64': (4, lambda batch, device, args: 1 / 0)}",
     "MODELS['dcgan64']'s build(batch, device, options) failed: ZeroDivisionError: division by zero"),
    ("{'dcgan64': (4, lambda batch, device: None)}", "MODELS['dcgan64']'s build(batch, device, options) failed: "
                                                      "TypeError: "),
    ("{'dcgan64': (4, lambda batch, device, args: {'G': [torch.nn.Linear(1, 1)], 'D': [torch.nn.Linear(1, 1)], "
     "'step': lambda extra: None})}", "MODELS['dcgan64']'s step() failed: TypeError: ")])
def test_a_baseline_whose_build_or_step_fails_is_one_line_naming_the_file(tmp_path, models, expected):
    """Each printed a traceback, then 'failed: dcgan64 (said above)', which named no file."""
    path = write_baseline(tmp_path / "odd.py", models)
    result = CliRunner().invoke(main, [*BENCH, "--baseline", str(path)])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert f"error: dcgan64: --baseline '{path}': {expected}" in result.output, result.output


def test_a_data_root_none_of_whose_images_decode_is_one_line_after_the_models_table(tmp_path, monkeypatch):
    """Files named as images passed the check by name, then a NoReadableImages traceback lost the table."""
    import gan.tools.benchmark

    monkeypatch.setattr(gan.tools.benchmark, "bench_model", lambda name, *args, **kwargs: gan.tools.benchmark.Row(
        name, 10.0, None, None, None, None, None, None, 1.0))
    folder = tmp_path / "faces" / "class"
    folder.mkdir(parents=True)
    for index in range(70):
        (folder / f"{index}.jpg").write_bytes(b"")
    result = CliRunner().invoke(main, [*BENCH[:-2], "--data-root", str(tmp_path / "faces"), "--data-workers", "0",
                                       "--json", str(tmp_path / "b.json")])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "| dcgan64 |" in result.output and "could be read; the folder is set by --data-root" in \
        result.output.splitlines()[-1], result.output
    assert "DataRootError" in json.loads((tmp_path / "b.json").read_text())["failures"]["data path"]


def test_the_super_resolution_batch_follows_a_set_scale():
    """`--set data.scale=2` timed a x2 network on x4 inputs: a size-mismatch traceback."""
    from gan.core.config import DataConfig
    from gan.core.registry import ConfigError
    from gan.tools.benchmark import synthetic_batch

    for scale, upsample, size in ((2, False, 48), (4, False, 24), (8, False, 12), (4, True, 96)):
        batch = synthetic_batch("srresnet", 2, DataConfig(resolution=96, scale=scale, upsample_input=upsample), CPU)
        assert batch["input"].shape == (2, 3, size, size) and batch["target"].shape == (2, 3, 96, 96)
    with pytest.raises(ConfigError, match=r"data.resolution \(100\) must be a multiple of data.scale \(8\)"):
        synthetic_batch("srresnet", 2, DataConfig(resolution=100, scale=8, upsample_input=False), CPU)


def test_each_side_runs_with_its_own_cudnn_autotuning_and_the_process_keeps_its_own(tmp_path, monkeypatch):
    """Our step turns cuDNN's benchmark on for the process, and the baseline, built after it, then
    autotuned too: a plain PyTorch run does not (a --set train.cudnn_benchmark=false changed both)."""
    import gan.tools.benchmark as benchmark_module

    seen = []
    path = write_baseline(tmp_path / "plain.py", "{'dcgan64': (4, lambda batch, device, args: {'G': [torch.nn.Linear("
                          "1, 1)], 'D': [torch.nn.Linear(1, 1)], 'step': lambda: SEEN.append(torch.backends.cudnn."
                          "benchmark)})}", prelude="SEEN = []")
    module = load_baseline(path)
    before = torch.backends.cudnn.benchmark
    monkeypatch.setattr(benchmark_module, "our_step", lambda *args, **kwargs: (
        setattr(torch.backends.cudnn, "benchmark", True) or (lambda: seen.append(torch.backends.cudnn.benchmark), 4,
                                                             Speed(torch.contiguous_format, None))))
    try:
        torch.backends.cudnn.benchmark = False
        bench_model("dcgan64", CPU, module, rounds=2, iterations=1, warmup=1, fast=False, flops=False)
        assert set(seen) == {True} and set(module.SEEN) == {False} and not torch.backends.cudnn.benchmark
    finally:
        torch.backends.cudnn.benchmark = before


def test_a_slow_warm_up_shows_its_steps(monkeypatch):
    """bench said `timing srgan4x ...` and then nothing for minutes: the warm-up steps (and the FLOP
    count after the rounds) ran without a word."""
    from gan.core import progress as progress_module
    from gan.tools.benchmark import _Side

    now = [0.0]
    monkeypatch.setattr(progress_module.time, "perf_counter", lambda: now[0])

    def slow_step():
        now[0] += 1.5

    log = io.StringIO()
    _Side(slow_step, 4, torch.device("cpu"), False).warm_up(4, "dcgan64 ours", log)
    assert "dcgan64 ours warm-up step 4/4 (100%)" in log.getvalue(), log.getvalue()


def test_the_baselines_image_folder_pickles_for_workers_started_by_spawn(tmp_path):
    # a class made inside a function: "Can't pickle local object" under spawn or forkserver (macOS,
    # Windows, Linux from Python 3.14), the command ending in a traceback
    import pickle

    from gan.tools.listed_folder import ListedImageFolder

    image_folder(tmp_path / "faces" / "class", 3)
    folder = ListedImageFolder(tmp_path / "faces", sorted((tmp_path / "faces" / "class").iterdir()))
    copy = pickle.loads(pickle.dumps(folder))
    assert copy.samples == folder.samples and len(copy) == 3 and copy[0][0].size == (8, 8)


def test_the_pass_memory_script_refuses_a_side_below_1_and_writes_its_json_whole(tmp_path):
    """`--side 0` ended in CalledProcessError's traceback over the pass's own error, and --json was
    written in place (a stop mid-write left half a file)."""
    import subprocess
    import sys

    script = REPO / "benchmarks" / "pass_memory.py"
    refused = subprocess.run([sys.executable, str(script), "--side", "0"], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "argument --side: expected a whole number of at least 1, got '0'" \
        in refused.stderr and "Traceback" not in refused.stderr, refused.stderr
    nowhere = subprocess.run([sys.executable, str(script), "--side", "64", "--json", str(tmp_path / "no" / "m.json")],
                             capture_output=True, text=True, timeout=60)  # (said before minutes of passes)
    assert nowhere.returncode == 2 and "its folder is missing or not writable" in nowhere.stderr, nowhere.stderr
    done = subprocess.run([sys.executable, str(script), "--side", "64", "--models", "srresnet", "--json",
                           str(tmp_path / "m.json")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "m.json").read_text())["models"]["srresnet"]["pass_mib"] >= 0
    assert [path.name for path in tmp_path.iterdir()] == ["m.json"]
