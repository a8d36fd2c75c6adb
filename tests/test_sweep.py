"""`gan sweep` and `gan train --run-dir`: grid expansion and names, the manifest, commands for a
job array, and a sweep run again that skips finished runs and resumes an interrupted one."""

import hashlib
import json
import os
import re
import shlex
import shutil
import sys
import tomllib
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import REPO, TINY, wait_for_no_writer

from gan.commands.main import main
from gan.core.checkpoint import list_checkpoints
from gan.core.config import dump_config
from gan.core.files import RunDirectoryBusy, RunLock
from gan.core.registry import ConfigError
from gan.tools.sweep import MANIFEST, SweepRun, expand, manifest_text, parse_grid, planned_steps, write_manifest
from gan.training.resolve import load_config
from gan.training.run_dir import start_or_resume

DEMO = REPO / "experiments" / "dcgan_demo.toml"


def test_a_grid_expands_to_named_runs_with_seeds_innermost():
    grid = [parse_grid("loss.adversarial=vanilla,hinge"), parse_grid("train.g_lr=1e-4,2e-4")]
    runs = expand(grid, seeds=2)
    assert len(runs) == 8
    assert runs[0].name == "00000-adversarial=vanilla-g_lr=1e-4-seed=0"
    assert runs[0].overrides == ("loss.adversarial=vanilla", "train.g_lr=1e-4", "train.seed=0")
    assert runs[1].name == "00001-adversarial=vanilla-g_lr=1e-4-seed=1"
    assert runs[7].name == "00007-adversarial=hinge-g_lr=2e-4-seed=1"
    assert len({run.name for run in runs}) == 8
    one_seed = expand([parse_grid("loss.adversarial=hinge,lsgan")], seeds=1)
    assert [run.overrides for run in one_seed] == [("loss.adversarial=hinge",), ("loss.adversarial=lsgan",)]
    # keys that end alike keep their full names; values that are not file-name safe are replaced
    alike = expand([parse_grid("model.generator_args.channels=8"), parse_grid("model.discriminator_args.channels=4"),
                    parse_grid("data.root=/data/a b")], seeds=1)
    assert alike[0].name == ("00000-model.generator_args.channels=8-model.discriminator_args.channels=4-"
                             "root=_data_a_b")


def test_a_grid_of_many_long_values_names_its_runs_within_a_file_names_bytes(tmp_path):
    """Each value's label was cut to 40 characters, the whole name not: six keys made names of 264
    bytes, and the sweep stopped at 'File name too long' before any run."""
    from gan.core.checkpoint import set_aside_path

    grid = [parse_grid(f"data.root=/tmp/{'d' * 45}"),
            parse_grid('loss.diffaugment="color,translation,cutout,color,translation,cutout",translation'),
            parse_grid(f"train.g_lr=0.0001{'0' * 40}1"), parse_grid(f"train.d_lr=0.0002{'0' * 40}1"),
            parse_grid(f"loss.r1_gamma=0.{'0' * 45}1"), parse_grid("loss.adversarial=hinge")]
    runs = expand(grid, seeds=2)
    names = [run.name for run in runs]
    assert names == [run.name for run in expand(grid, seeds=2)] and len(set(names)) == 4
    assert [name[:11] for name in names] == ["00000-root=", "00001-root=", "00002-root=", "00003-root="]
    for run in runs[:2]:  # (room left, within 255 bytes, for the mark of a start set aside)
        assert re.fullmatch(r"\d{5}-root=_tmp_d+-diffaugment=color_.*-[0-9a-f]{8}", run.name), run.name
        assert set_aside_path(tmp_path / run.name, 99).name == f"{run.name}.abandoned-99"
    for seed, run in enumerate(runs[2:]):  # (names that fit are as they were: a sweep begun with them goes on)
        assert run.name.endswith(f"-diffaugment=translation-g_lr=0.0001{'0' * 34}-d_lr=0.0002{'0' * 34}-r1_gamma=0."
                                 f"{'0' * 38}-adversarial=hinge-seed={seed}")
    for run in runs:
        (tmp_path / run.name).mkdir()
    assert runs[0].overrides[1] == "loss.diffaugment=color,translation,cutout,color,translation,cutout"
    from gan.tools.sweep import run_log  # (a run's log: `<name>.log`, of 259 bytes for a legal name)

    assert [run_log(tmp_path, run).name for run in runs[:2]] == [f"{run.name}.log" for run in runs[:2]]
    legal = SweepRun("00007-" + "x" * 249, ())
    assert run_log(tmp_path, legal).name == f"{legal.name[:251]}.log"


CHECKPOINTS_GRID = ("model.init_generator=runs/00007-dcgan_celeba64/checkpoint-00010000.pt,"
                    "runs/00007-dcgan_celeba64/checkpoint-00020000.pt")


def test_values_cut_alike_are_told_apart_in_their_runs_names(tmp_path):
    """Each value's label was its first 40 characters: a grid of one run's checkpoints named its runs
    `...-init_generator=runs_00007-dcgan_celeba64_checkpoint-000` but for their number, and TensorBoard's
    list of runs no longer said what differs. Labels cut alike keep their ends now; a sweep begun with the
    names of before goes on under them."""
    runs = expand([parse_grid(CHECKPOINTS_GRID)], seeds=1)
    assert [run.name for run in runs] == ["00000-init_generator=..-dcgan_celeba64_checkpoint-00010000.pt",
                                          "00001-init_generator=..-dcgan_celeba64_checkpoint-00020000.pt"]
    # alike at both ends (or made alike by the characters replaced): their start and a digest of the value
    middle = expand([parse_grid(f"data.root=/d/{'x' * 40}/a/{'y' * 40},/d/{'x' * 40}/b/{'y' * 40},a b,a_b")], 1)
    names = [run.name for run in middle]
    assert len(set(names)) == 4 and all(re.fullmatch(r"\d{5}-root=(_d_x{28}|a_b)-[0-9a-f]{8}", name) for name in names)
    # a label that tells its value apart is as it was, cut or not
    kept = expand([parse_grid(f"log.name={'q' * 40},{'q' * 45},{'r' * 45}")], 1)
    assert [run.name for run in kept] == [f"00000-name={'q' * 40}", f"00001-name=..{'q' * 38}",
                                          f"00002-name={'r' * 40}"]
    grid = [parse_grid(CHECKPOINTS_GRID)]
    begun = [SweepRun(f"{index:05d}-init_generator=runs_00007-dcgan_celeba64_checkpoint-000", run.overrides)
             for index, run in enumerate(runs)]
    write_manifest(tmp_path, manifest_text(DEMO, [], grid, 1, begun))
    result = CliRunner().invoke(main, ["sweep", str(DEMO), "--grid", CHECKPOINTS_GRID, "--out", str(tmp_path),
                                       "--print-commands"])
    assert result.exit_code == 0, result.output
    assert [shlex.split(line)[-1] for line in result.output.strip().splitlines()] == [
        str(tmp_path / run.name) for run in begun]
    # a name no run of a sweep has (edited by hand: a NUL in it was a traceback) is not taken
    edited = (tmp_path / "sweep.toml").read_text().replace(begun[0].name, "00000-a\\u0000b")
    (tmp_path / "sweep.toml").write_text(edited)
    refused = CliRunner().invoke(main, ["sweep", str(DEMO), "--grid", CHECKPOINTS_GRID, "--out", str(tmp_path),
                                        "--print-commands"])
    assert refused.exit_code == 2 and "Traceback" not in refused.output and "\n" not in refused.output.strip(), \
        refused.output


def test_grid_values_in_quotes_may_hold_commas_or_be_empty():
    key, values = parse_grid('loss.diffaugment="","color,translation,cutout", translation')
    assert key == "loss.diffaugment" and values == ["", "color,translation,cutout", "translation"]
    runs = expand([(key, values)], seeds=1)
    assert [run.name for run in runs] == ["00000-diffaugment=none", "00001-diffaugment=color_translation_cutout",
                                          "00002-diffaugment=translation"]
    assert runs[0].overrides == ("loss.diffaugment=",)
    assert parse_grid('train.lr_milestones="[1, 2]","[3]"') == ("train.lr_milestones", ["[1, 2]", "[3]"])


@pytest.mark.parametrize("option, message", [
    ('loss.diffaugment="color', "KEY=V1,V2"), ("loss.diffaugment=,color", "KEY=V1,V2"),
    ("loss.adversarial", "KEY=V1,V2"), ("=a,b", "KEY=V1,V2"), ("loss.adversarial=hinge,", "KEY=V1,V2"),
    ("loss.adversarial=hinge,hinge", "listed twice"),
    # (its hint was --set's, to close the bracket, where the grid's comma had cut the list)
    ("train.lr_milestones=[1,2],[3]", "'\\[1' is part of a list, as --grid splits its values at every comma"),
    # (its example was of numbers, and quoted so that a list of strings could not follow it)
    ('metrics.names=["swd"],["swd","pr"]', re.escape("its strings in single ones: --grid \"metrics.names=\\\"['a']\\\","
                                                     "\\\"['a', 'b']\\\"\"")),
    # (a value TOML cannot read named the key alone, as if the config file were wrong)
    ("data.hflip=true,True", re.escape("--grid data.hflip: expected bool, got 'True'; TOML writes booleans")),
    ("train.g_lr=1e-4,abc", re.escape("--grid train.g_lr: expected float, got 'abc'")),
    # (lists of one string each: the hint was --set's spelling, which the user had typed)
    ('metrics.names=["swd"],["fid"]', re.escape("--grid takes off a value's double quotes: quote each list whole")),
    # (a whole section ended in a traceback)
    ("train=1,2", re.escape("--grid train: 'train' is a section; grid one of its keys, e.g. --grid train.steps=")),
])
def test_a_malformed_grid_is_named(option, message):
    with pytest.raises(ConfigError, match=message):
        parse_grid(option)


def test_a_grid_may_not_set_a_key_twice_or_fight_the_seeds():
    with pytest.raises(ConfigError, match="names a key twice: loss.adversarial"):
        expand([parse_grid("loss.adversarial=a,b"), parse_grid("loss.adversarial=c,d")], seeds=1)
    with pytest.raises(ConfigError, match="--seeds"):
        expand([parse_grid("train.seed=1,2")], seeds=2)


@pytest.mark.parametrize("grid, sets, expected", [
    # a key the recipe does not read: 10 is cycle_weight's default, 5 is ignored
    (["loss.cycle_weight=10,5"], [], "runs 00000-cycle_weight=10 and 00001-cycle_weight=5 would train the same "
                                     "(recipe 'dcgan' ignores loss.cycle_weight = 5.0 (cyclegan only))"),
    # a key another key turns off, crossed with one that changes the run: the pairs in each hflip are the same
    (["data.hflip=true,false", "loss.instance_noise_steps=0,100"], [],
     "runs 00000-hflip=true-instance_noise_steps=0 and 00001-hflip=true-instance_noise_steps=100 would train the "
     "same (loss.instance_noise_steps = 100 changes nothing: it is read only when loss.instance_noise is above 0"),
    (["metrics.num_samples=256,512"], ["metrics.every=0"], "metrics.num_samples = 512 changes nothing"),
    # DiffAugment's augmentations run in one order, each once: the two lists are one policy
    (['loss.diffaugment="color,cutout","cutout,cutout,color"'], [],
     "runs 00000-diffaugment=color_cutout and 00001-diffaugment=cutout_cutout_color would train the same (their "
     "configs are the same once read"),
    # settings that the run's length leaves without effect (the demo trains 1,500 steps)
    (["train.ema_decay=0.9999,0.99995"], [], "runs 00000-ema_decay=0.9999 and 00001-ema_decay=0.99995 would train "
     "the same (train.ema_decay = 0.99995 (an average over about 20,000 steps) is never reached"),
    (["loss.r1_every=2000,4000"], ["loss.r1_gamma=1"], "runs 00000-r1_every=2000 and 00001-r1_every=4000 would train "
     "the same (loss.r1_every = 4000 is above train.steps = 1500: R1 is due every 4000 steps, so it never runs"),
    (["loss.augment_interval=2000,4000"], ["loss.diffaugment=color", "loss.augment_p=adaptive"],
     "(loss.augment_interval = 4000 is not below the 1500 discriminator steps this run has"),
    (["train.lr_gamma=0.5,0.1"], ["train.lr_schedule=step", "train.lr_milestones=[2000]"],
     "runs 00000-lr_gamma=0.5 and 00001-lr_gamma=0.1 would train the same (train.lr_schedule = 'step' with no "
     "train.lr_milestones below train.steps: the learning rates never change"),
    (["train.lr_schedule=linear_decay,step"], [], "would train the same (train.lr_schedule = 'step' with no "
     "train.lr_milestones: the learning rates never change"),
])
def test_grid_values_that_change_nothing_are_refused_before_any_run(tmp_path, grid, sets, expected):
    # each value made a run of its own, training the same as the others
    out = tmp_path / "sweep"
    result = CliRunner().invoke(main, ["sweep", str(DEMO), *[word for key in grid for word in ("--grid", key)],
                                       *[word for key in sets for word in ("--set", key)], "--out", str(out)])
    assert result.exit_code == 2 and expected in " ".join(result.output.split()), result.output
    assert "drop the value that changes nothing from --grid, or sweep those settings separately" in \
        " ".join(result.output.split())
    assert not out.exists()


@pytest.mark.parametrize("failing", ["lock", "manifest"])
def test_a_sweep_that_cannot_write_its_folder_leaves_no_folder(tmp_path, monkeypatch, failing):
    # a full disk while the lock was written left an empty folder holding .sweep.lock
    from gan.core.files import SweepLock, WriteError
    from gan.tools import sweep as sweep_module

    def full(*args, **kwargs):
        raise WriteError(f"could not write the {failing} (0 B free)")

    if failing == "lock":
        monkeypatch.setattr(SweepLock, "__enter__", lambda self: (self.run_dir.mkdir(parents=True),
                                                                  (self.run_dir / ".sweep.lock").touch(), full()))
    else:
        monkeypatch.setattr(sweep_module, "write_text_atomically", full)
    out = tmp_path / "sweep"
    result = CliRunner().invoke(main, ["sweep", str(DEMO), "--grid", "loss.adversarial=vanilla,hinge", "--out",
                                       str(out), "--print-commands"])
    assert result.exit_code == 2 and f"could not write the {failing}" in result.output, result.output
    assert not out.exists()


@pytest.mark.parametrize("config, grid, expected", [
    (DEMO, "data.resolution=32,48", "run 00001-resolution=48 (data.resolution=48): data.resolution: "
                                    "resolution must be a power of two from 32 to 256, got 48"),
    (REPO / "experiments" / "pix2pix_facades.toml", "model.discriminator_args.n_layers=3,7",
     "run 00001-n_layers=7 (model.discriminator_args.n_layers=7): model.discriminator_args.n_layers = 7 is too deep "
     "for data.resolution = 256"),
    (REPO / "experiments" / "cyclegan_horse2zebra.toml", "data.resolution=256,250",
     "data.resolution (250) must be a multiple of 4 for generator 'resnet_9blocks'"),
    # what a recipe refuses or never reads as configured: checked by the recipe, not only when its run starts
    (REPO / "experiments" / "srresnet_x4.toml", "train.d_lr=1e-4,1e-3", "runs 00000-d_lr=1e-4 and 00001-d_lr=1e-3 "
     "would train the same (recipe 'srresnet' ignores train.d_lr = 0.001)"),
    # (a network's argument was looked up among the config's defaults: KeyError, a traceback)
    (REPO / "experiments" / "srresnet_x4.toml", "model.discriminator_args.channels=8,16", "runs "
     "00000-channels=8 and 00001-channels=16 would train the same (recipe 'srresnet' ignores "
     "model.discriminator_args.channels = 16)"),
    (REPO / "experiments" / "srresnet_x4.toml", "model.discriminator=srgan,patchgan", "runs 00000-discriminator=srgan "
     "and 00001-discriminator=patchgan would train the same (recipe 'srresnet' ignores model.discriminator = "
     "'patchgan'):"),
    # past the run's length, the linear decay spans the whole run (the demo trains 1,500 steps)
    (DEMO, "train.lr_decay_steps=2000,3000", "runs 00000-lr_decay_steps=2000 and 00001-lr_decay_steps=3000 would "
     "train the same (train.lr_decay_steps = 3000 is past train.steps = 1500: the rates decay over the whole run"),
    (REPO / "experiments" / "srresnet_x4.toml", "loss.r1_gamma=0,1", "run 00001-r1_gamma=1 (loss.r1_gamma=1): "
     "loss.r1_gamma regularises a discriminator, and loss.adversarial_weight = 0 trains no discriminator"),
    (REPO / "experiments" / "pix2pix_facades.toml", "metrics.every=0,100", "run 00001-every=100 (metrics.every=100): "
     "metrics.every: generative metrics are for unconditional recipes such as dcgan"),
    # a value the grid gives is named as the grid's (it said --set loss.preset)
    (DEMO, "loss.preset=hinge,foo", "run 00001-preset=foo (loss.preset=foo): --grid loss.preset = 'foo' is no preset"),
    # data folders, from their paths alone: the runs before the one that named none had trained
    (DEMO, "data.dataset=synthetic,folder", "run 00001-dataset=folder (data.dataset=folder): data.root is empty"),
    (REPO / "experiments" / "dcgan_celeba64.toml", f"data.root={REPO / 'datasets'},/nonexistent/faces",
     "run 00001-root=_nonexistent_faces (data.root=/nonexistent/faces): data.root '/nonexistent/faces' does not exist"),
])
def test_a_grid_value_the_networks_refuse_is_named_before_any_run(tmp_path, config, grid, expected):
    # only the run of that value failed, when it started, after the others had trained
    out = tmp_path / "sweep"
    result = CliRunner().invoke(main, ["sweep", str(config), "--grid", grid, "--out", str(out)])
    assert result.exit_code == 2 and expected in " ".join(result.output.split()), result.output
    assert not out.exists()


def test_too_few_metric_samples_for_one_grid_value_are_named_before_any_run(tmp_path):
    # checked only at that run's pre-flight, after the runs before it had trained
    out = tmp_path / "sweep"
    result = CliRunner().invoke(main, ["sweep", str(DEMO), "--grid", "metrics.num_samples=64,3", "--set",
                                       "metrics.names=['swd', 'pr']", "--out", str(out)])
    assert result.exit_code == 2 and ("run 00001-num_samples=3 (metrics.num_samples=3): metrics.num_samples = 3 is "
                                      "too few for metrics.names = ['swd', 'pr']: at least 4") in " ".join(
        result.output.split()), result.output
    assert not out.exists()


def test_the_manifest_guards_the_folder_against_another_sweep(tmp_path):
    grid = [parse_grid("loss.adversarial=vanilla,hinge")]
    text = manifest_text(DEMO, ["train.steps=3"], grid, 2, expand(grid, 2))
    write_manifest(tmp_path, text)
    write_manifest(tmp_path, text)  # the same sweep again: fine
    # which --set values differ, each with both values (it said only "differs in the --set values")
    other = manifest_text(DEMO, ["train.steps=2", "train.g_lr=1e-3", f"data.root={'x' * 200}"], grid, 2, expand(grid, 2))
    with pytest.raises(ConfigError, match=r"holds another sweep \(.*sweep.toml differs in the --set values \(data.root "
                                          r"\(unset\) -> 'x{79}\.\.\. \(122 more characters\); train.g_lr \(unset\) -> "
                                          r"0.001; train.steps 3 -> 2\)\): use another --out"):
        write_manifest(tmp_path, other)
    assert (tmp_path / MANIFEST).read_text() == text


def test_the_manifest_reads_back_whatever_its_strings_hold(tmp_path):
    """sweep.toml wrote JSON's strings as TOML's: a config path of bytes that are not UTF-8 became a lone
    surrogate (`\\udce9`), TOML no reader takes, so the same command again was refused ('is not a sweep
    manifest') and the sweep could not go on."""
    grid = [parse_grid("loss.adversarial=vanilla,hinge")]
    sets = ["train.steps=3", "log.name=a\x7fb\tc\u00e9"]  # (control characters: TOML's escapes)
    text = manifest_text(DEMO, sets, grid, 1, expand(grid, 1))
    assert tomllib.loads(text)["sets"] == sets
    # a config path sweep.toml cannot record is refused before anything is checked or written
    folder = tmp_path / os.fsdecode(b"exp_\xe9")
    folder.mkdir()
    config = Path(shutil.copy(DEMO, folder / "demo.toml"))
    with pytest.raises(ConfigError, match=r"exp_\\xe9/demo.toml' has a path that is not UTF-8 text"):
        manifest_text(config, [], grid, 1, expand(grid, 1))
    out = tmp_path / "unrecorded"
    result = CliRunner().invoke(main, ["sweep", str(config), "--grid", "loss.adversarial=vanilla,hinge", "--out",
                                       str(out), "--print-commands"])
    assert result.exit_code == 2 and "sweep.toml cannot record: copy the config to a path that is" in " ".join(
        result.output.split()), result.output
    assert not out.exists()


def test_an_earlier_gans_sweep_goes_on_only_where_its_started_runs_trained_with_the_settings_given(
        tiny_demo_run, tmp_path):
    """Its runs read as their resumes read them: a config.toml gone (the checkpoint's), rates an
    --on-nan rollback halved (as noted), and their length, which a config edited in train.steps alone
    changed (one run of 4 steps beside runs of 2 in one sweep)."""
    from gan.tools.sweep import _settings_kept
    from gan.training.run_dir import rollback_note

    out = tmp_path / "sweep"
    run = Path(shutil.copytree(tiny_demo_run, out / "00000-demo"))
    stored = {"config": str(DEMO), "config_sha256": "0" * 64, "runs": {"00000-demo": []}, "sets": TINY}
    asked = {"config": str(DEMO), "sets": TINY}
    assert _settings_kept(stored, asked, "", out) == \
        "the 1 run it started trained with the settings this command gives them"
    assert _settings_kept(stored, {**asked, "sets": [*TINY, "train.steps=2"]}, "", out) is None
    assert _settings_kept(stored, {**asked, "sets": [*TINY, "train.d_lr=1e-3"]}, "", out) is None
    written = (run / "config.toml").read_text()
    halved = written.replace("g_lr = 0.0002", "g_lr = 0.0001").replace("d_lr = 0.0002", "d_lr = 0.0001")
    assert halved != written
    (run / "config.toml").write_text(rollback_note(1) + halved)
    assert _settings_kept(stored, asked, "", out) is not None
    (run / "config.toml").write_text(halved)  # (halved, but noted nowhere: another experiment's rates)
    assert _settings_kept(stored, asked, "", out) is None
    (run / "config.toml").unlink()  # (the checkpoint's config: the run's settings all the same)
    assert _settings_kept(stored, asked, "", out) is not None
    assert _settings_kept(stored, {**asked, "sets": [*TINY, "train.d_lr=1e-3"]}, "", out) is None


def test_a_sweep_that_cannot_run_says_its_error_without_the_settings_warnings_above_it():
    # The EMA warm-up's warning of train.steps = 2 came first, then the error of data.resolution = 16
    import warnings

    runs = expand([parse_grid("loss.adversarial=vanilla,hinge")], 1)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        with pytest.raises(ConfigError, match="data.resolution: resolution must be a power of two"):
            planned_steps(DEMO, ["train.steps=2", "data.resolution=16"], runs)
    assert not said, [str(warning.message) for warning in said]
    with pytest.warns(UserWarning, match="train.ema_decay = 0.995 .* is never reached"):  # (one that runs: said)
        assert planned_steps(DEMO, ["train.steps=2"], runs) == {run.name: 2 for run in runs}


def test_a_sweep_of_another_config_file_is_not_said_to_be_an_edit(tmp_path):
    # another file named into a sweep's folder was said to differ in "the config file's settings (edited since the
    # sweep began ...)", and advised to put the file's text back
    grid = [parse_grid("loss.adversarial=vanilla,hinge")]
    write_manifest(tmp_path, manifest_text(DEMO, [], grid, 1, expand(grid, 1)))
    other = REPO / "experiments" / "dcgan_celeba64.toml"
    with pytest.raises(ConfigError) as error:
        write_manifest(tmp_path, manifest_text(other, [], grid, 1, expand(grid, 1)))
    assert f"differs in the config file (it began with '{DEMO}'))" in str(error.value) and "edited" not in \
        str(error.value), str(error.value)


def test_a_sweep_begun_before_its_runs_were_refused_as_the_same_goes_on_with_a_warning(tmp_path):
    # train.lr_decay_steps past train.steps trains the same since this gan: a sweep of such values begun by an
    # earlier one could neither go on (refused) nor drop a value (another sweep's folder)
    grid = [parse_grid("train.lr_decay_steps=2000,3000")]
    runs = expand(grid, 1)
    with pytest.raises(ConfigError, match="would train the same"):
        planned_steps(DEMO, [], runs, out=tmp_path)
    write_manifest(tmp_path, manifest_text(DEMO, [], grid, 1, runs))
    with pytest.warns(UserWarning, match=r"runs 00000-lr_decay_steps=2000 and 00001-lr_decay_steps=3000 would train "
                                         r"the same .*: this sweep began before such runs were refused, so it goes on"):
        assert set(planned_steps(DEMO, [], runs, out=tmp_path)) == {run.name for run in runs}


def test_the_same_set_values_in_another_order_are_the_same_sweep(tmp_path):
    # the same command with its --set options reordered was refused as another sweep
    grid = [parse_grid("loss.adversarial=vanilla,hinge")]
    text = manifest_text(DEMO, ["train.steps=3", "train.g_lr=1e-4"], grid, 1, expand(grid, 1))
    write_manifest(tmp_path, text)
    write_manifest(tmp_path, manifest_text(DEMO, ["train.g_lr = 1e-4", "train.steps=3"], grid, 1, expand(grid, 1)))
    assert (tmp_path / MANIFEST).read_text() == text
    # where a key is set twice the last value counts, so there the order does matter
    twice = manifest_text(DEMO, ["train.steps=3", "train.g_lr=1e-4", "train.steps=2"], grid, 1, expand(grid, 1))
    with pytest.raises(ConfigError, match=r"differs in the --set values \(train.steps 3 -> 2\)"):
        write_manifest(tmp_path, twice)


@pytest.mark.parametrize("grid, expected", [
    ("train.amp=true,false", "train.amp = false changes nothing on the CPU, where every run of this sweep trains: "
                             "bf16 autocast acts on CUDA only"),
    ("train.cudnn_benchmark=true,false", "cuDNN's autotuning acts on CUDA only"),
    ("train.compile=auto,off", "train.compile 'auto' is 'off' on the CPU, where every run of this sweep trains"),
])
def test_grid_values_of_cuda_only_switches_are_refused_for_a_sweep_on_the_cpu(tmp_path, grid, expected):
    # each value trained a run of its own on the CPU, the same as the others
    out = tmp_path / "sweep"
    result = CliRunner().invoke(main, ["sweep", str(DEMO), "--grid", grid, "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 2 and expected in " ".join(result.output.split()), result.output
    assert not out.exists()
    # while commands printed for a cluster's GPUs are made, and compile=on does act on the CPU
    printed = CliRunner().invoke(main, ["sweep", str(DEMO), "--grid", grid, "--out", str(tmp_path / "printed"),
                                        "--print-commands"])
    assert printed.exit_code == 0 and len(printed.output.splitlines()) == 2, printed.output
    acting = expand([parse_grid("train.compile=on,off")], 1)
    assert set(planned_steps(DEMO, [], acting, on_cpu=True)) == {run.name for run in acting}


def test_a_config_file_edited_between_two_starts_of_a_sweep_is_refused(tmp_path, capsys):
    """sweep.toml recorded the config's path alone: after an edit, the same command kept the runs
    trained and trained the rest with the new text, one sweep mixing two experiments."""
    config = tmp_path / "demo.toml"
    config.write_text(DEMO.read_text())
    grid = [parse_grid("loss.adversarial=vanilla,hinge")]
    write_manifest(tmp_path / "sweep", manifest_text(config, [], grid, 1, expand(grid, 1)))
    config.write_text(DEMO.read_text().replace("g_lr = 2e-4", "g_lr = 3e-4"))
    assert "g_lr = 3e-4" in config.read_text()
    with pytest.raises(ConfigError, match=r"differs in the config file's settings \(edited since the sweep began: "
                                          r".*; to go on with this sweep, put the config file's text back"):
        write_manifest(tmp_path / "sweep", manifest_text(config, [], grid, 1, expand(grid, 1)))
    # a comment edited (a shipped config's, by an upgrade of gan) changes no run: the sweep goes on
    config.write_text(DEMO.read_text().replace("g_lr = 2e-4", "g_lr = 2e-4  # the DCGAN paper's"))
    write_manifest(tmp_path / "sweep", manifest_text(config, [], grid, 1, expand(grid, 1)))
    # a sweep begun by a gan that recorded the text alone: compared by its text, with the way on said
    manifest = tmp_path / "sweep" / "sweep.toml"
    digest = hashlib.sha256(config.read_bytes()).hexdigest()
    manifest.write_text(re.sub(r'config_settings_sha256 = "\w+"', f'config_sha256 = "{digest}"', manifest.read_text()))
    write_manifest(tmp_path / "sweep", manifest_text(config, [], grid, 1, expand(grid, 1)))
    # its project moved: the same text elsewhere is its config, and the manifest names it anew
    earlier = manifest.read_text()
    (tmp_path / "moved").mkdir()
    moved = Path(shutil.copy(config, tmp_path / "moved" / "demo.toml"))
    write_manifest(tmp_path / "sweep", manifest_text(moved, [], grid, 1, expand(grid, 1)))
    assert json.dumps(str(moved)) in manifest.read_text()
    manifest.write_text(earlier)
    config.write_text(config.read_text() + "# a comment\n")
    # its text edited (an upgrade of gan edits a shipped config's comments): a run it started that trained
    # with other settings refuses it, with the way on said ...
    (started := tmp_path / "sweep" / "00000-adversarial=vanilla").mkdir()
    other = load_config(config, ["loss.adversarial=vanilla", "train.g_lr=3e-4"])
    (started / "config.toml").write_text(dump_config(other))
    with pytest.raises(ConfigError, match=r"differs in the config file's text \(edited since the sweep began, if only "
                                          r"in a comment\)\): .* put the config file's text back as it was"):
        write_manifest(tmp_path / "sweep", manifest_text(config, [], grid, 1, expand(grid, 1)))
    # ... while runs that trained with the settings it gives them now go on: it was refused for good (and so
    # were its runs never started, which no `gan train --resume` reaches)
    (started / "config.toml").write_text(dump_config(load_config(config, ["loss.adversarial=vanilla"])))
    capsys.readouterr()
    write_manifest(tmp_path / "sweep", manifest_text(config, [], grid, 1, expand(grid, 1)))
    assert "begun by an earlier gan, whose sweep.toml records no digest of its config's settings; the 1 run it " \
        "started trained with the settings this command gives them: it goes on" in capsys.readouterr().err
    assert "config_settings_sha256" in manifest.read_text()
    # one that recorded no digest at all, begun with a config another checkout holds: its settings compared
    manifest.write_text(re.sub(r'config_sha256 = "\w+"\n', "", earlier))
    shutil.rmtree(started)
    write_manifest(tmp_path / "sweep", manifest_text(moved, [], grid, 1, expand(grid, 1)))
    assert f"the config it began with, '{config}', sets what '{moved}' sets" in capsys.readouterr().err
    manifest.write_text(re.sub(r'config_sha256 = "\w+"\n', "", earlier))
    moved.write_text(moved.read_text().replace("g_lr = 2e-4", "g_lr = 3e-4"))
    (started := tmp_path / "sweep" / "00000-adversarial=vanilla").mkdir()
    (started / "config.toml").write_text(dump_config(load_config(config, ["loss.adversarial=vanilla"])))
    with pytest.raises(ConfigError, match=rf"differs in the config file \(it began with '{re.escape(str(config))}'\)\)"):
        write_manifest(tmp_path / "sweep", manifest_text(moved, [], grid, 1, expand(grid, 1)))
    shutil.rmtree(started)
    manifest.write_bytes(b'config = "\xff\xfe"\n')  # not UTF-8: a traceback
    with pytest.raises(ConfigError, match=r"is not a sweep manifest .*; use another --out"):
        write_manifest(tmp_path / "sweep", manifest_text(config, [], grid, 1, expand(grid, 1)))
    # emptied, or a folder: said to hold "another sweep", differing in every part, or runs "no sweep made"
    manifest.write_bytes(b"")
    with pytest.raises(ConfigError, match=r"is not a sweep manifest \(it records no config, sets, seeds, grid, runs\): "
                                          r"use another --out \(each run in .* goes on with `gan train --resume`\)"):
        write_manifest(tmp_path / "sweep", manifest_text(config, [], grid, 1, expand(grid, 1)))
    manifest.unlink()
    manifest.mkdir()
    with pytest.raises(ConfigError, match=r"is not a sweep manifest \(it is not a file\)"):
        write_manifest(tmp_path / "sweep", manifest_text(config, [], grid, 1, expand(grid, 1)))


def test_the_manifest_is_written_only_by_the_sweep_that_holds_the_folder(tmp_path):
    """Two sweeps started into one new folder at once used to both write sweep.toml before either
    took the folder's lock: the one refused could leave its manifest over the other's runs."""
    from gan.core.files import SweepLock

    out = tmp_path / "sweep"
    with SweepLock(out):  # another sweep, between taking the folder and writing its manifest
        result = CliRunner().invoke(main, ["sweep", str(DEMO), "--grid", "loss.adversarial=vanilla,lsgan",
                                           "--set", "train.steps=10", "--out", str(out), "--print-commands"])
    assert result.exit_code == 2 and "in use by another gan sweep" in result.output, result.output
    assert not (out / MANIFEST).exists()


def test_print_commands_gives_one_train_line_per_run(tmp_path):
    result = CliRunner().invoke(main, ["sweep", str(DEMO), "--grid", "loss.adversarial=vanilla,lsgan", "--seeds", "2",
                                       "--set", "train.steps=10", "--out", str(tmp_path / "sweep"),
                                       "--print-commands"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 4
    words = shlex.split(lines[3])
    assert words[:3] == ["gan", "train", str(DEMO)]
    assert words[words.index("--run-dir") + 1] == str(tmp_path / "sweep" / "00003-adversarial=lsgan-seed=1")
    sets = [words[i + 1] for i, word in enumerate(words) if word == "--set"]
    assert sets == ["train.steps=10", "loss.adversarial=lsgan", "train.seed=1"]
    assert (tmp_path / "sweep" / MANIFEST).is_file()
    assert not list((tmp_path / "sweep").glob("0000*"))  # nothing trained
    other = CliRunner().invoke(main, ["sweep", str(DEMO), "--grid", "loss.adversarial=hinge", "--out",
                                      str(tmp_path / "sweep"), "--print-commands"])
    assert other.exit_code == 2 and "holds another sweep" in other.output
    assert "gan train" not in other.output  # no line a job array would run into another sweep's folder


def config_copied_away(project: Path, tmp_path: Path) -> Path:
    """The project's config copied to a folder of its own: the same settings at another path."""
    (tmp_path / "copy").mkdir(exist_ok=True)
    return Path(shutil.copy(project / "demo.toml", tmp_path / "copy" / "demo.toml"))


def test_a_sweep_goes_on_after_its_project_moved(tmp_path):
    """The manifest names the config by its absolute path: the same command after `mv proj3 proj4`
    was "holds another sweep (sweep.toml differs in the config file)", its settings the same."""
    before, after = tmp_path / "proj3", tmp_path / "proj4"
    before.mkdir()
    shutil.copy(DEMO, before / "demo.toml")
    command = ["--grid", "loss.adversarial=vanilla,hinge", "--set", "train.steps=10", "--print-commands"]
    first = CliRunner().invoke(main, ["sweep", str(before / "demo.toml"), *command, "--out", str(before / "sweeps")])
    assert first.exit_code == 0, first.output
    shutil.move(before, after)
    again = CliRunner().invoke(main, ["sweep", str(after / "demo.toml"), *command, "--out", str(after / "sweeps")])
    assert again.exit_code == 0 and f"its config is now '{after / 'demo.toml'}'" in again.output, again.output
    said_once = CliRunner().invoke(main, ["sweep", str(after / "demo.toml"), *command, "--out", str(after / "sweeps")])
    assert said_once.exit_code == 0 and "its config is now" not in said_once.output  # (the manifest names it now)
    other_grid = CliRunner().invoke(main, ["sweep", str(config_copied_away(after, tmp_path)), "--grid", "loss.adversarial=lsgan",
                                           "--set", "train.steps=10", "--print-commands", "--out", str(after / "sweeps")])
    assert other_grid.exit_code == 2 and "holds another sweep" in other_grid.output, other_grid.output
    (after / "demo.toml").write_text((after / "demo.toml").read_text().replace("g_lr = 2e-4", "g_lr = 1e-4"))
    edited = CliRunner().invoke(main, ["sweep", str(after / "demo.toml"), *command, "--out", str(after / "sweeps")])
    assert edited.exit_code == 2 and "holds another sweep" in edited.output, edited.output


def test_run_dir_starts_resumes_and_sets_aside_a_start_that_died(tmp_path):
    run_dir = tmp_path / "run"
    assert start_or_resume(run_dir) is False and not run_dir.exists()
    run_dir.mkdir()
    (run_dir / "config.toml").write_text("recipe = 'dcgan'\n")  # died before its first checkpoint,
    (run_dir / ".lock").write_text("12345")  # and after taking the lock, as every start does first
    assert start_or_resume(run_dir) is False
    assert not run_dir.exists() and (tmp_path / "run.abandoned-0" / "config.toml").is_file()
    run_dir.mkdir()
    (run_dir / "checkpoint-00000002.pt").write_bytes(b"")
    assert start_or_resume(run_dir) is True
    (run_dir / "checkpoint-00000002.pt").unlink()
    (run_dir / "config.toml").write_text("")
    with RunLock(run_dir), pytest.raises(RunDirectoryBusy):  # another writer is training there
        start_or_resume(run_dir)
    assert (run_dir / "config.toml").is_file()


def test_a_sweep_run_again_skips_finished_runs_and_resumes_an_interrupted_one(tmp_path):
    out = tmp_path / "sweep"
    command = ["sweep", str(DEMO), "--grid", "loss.adversarial=vanilla,hinge",
               *[arg for item in TINY for arg in ("--set", item)], "--out", str(out), "--device", "cpu"]
    first = CliRunner().invoke(main, command)
    assert first.exit_code == 0, first.output
    names = ["00000-adversarial=vanilla", "00001-adversarial=hinge"]
    for name in names:
        assert [path.name for path in list_checkpoints(out / name)] == ["checkpoint-00000002.pt",
                                                                        "checkpoint-00000004.pt"]
    finished = (out / names[0] / "checkpoint-00000004.pt").stat().st_mtime_ns
    halfway = (out / names[1] / "checkpoint-00000002.pt").stat().st_mtime_ns
    (out / names[1] / "checkpoint-00000004.pt").unlink()  # as if stopped after step 2
    again = CliRunner().invoke(main, command)
    assert again.exit_code == 0, again.output
    assert "2 runs, 1 finished, 1 to do" in again.output
    assert f"run {names[1]} started" in again.output and f"run {names[0]} started" not in again.output
    assert (out / names[0] / "checkpoint-00000004.pt").stat().st_mtime_ns == finished
    assert (out / names[1] / "checkpoint-00000004.pt").is_file()
    # resumed from step 2, not started over (which would have rewritten step 2's checkpoint)
    assert (out / names[1] / "checkpoint-00000002.pt").stat().st_mtime_ns == halfway
    # a run none of whose checkpoints loads is named before any trains, with the way on
    for checkpoint in list_checkpoints(out / names[0]):
        checkpoint.write_bytes(b"")
    refused = CliRunner().invoke(main, command)
    assert refused.exit_code == 2 and f"run {names[0]} holds 2 checkpoints and none loads" in refused.output
    assert f"run {names[1]} started" not in refused.output


def test_a_run_whose_last_checkpoint_is_cut_short_is_not_finished_and_one_with_none_that_loads_is_named(
        tiny_demo_run, tmp_path):
    # A truncated checkpoint-00000004.pt kept the step of its name: "2 runs, 2 finished, 0 to do", and the run
    # never trained again to replace it (its resume falls back to the checkpoint before)
    import shutil

    from gan.tools.sweep import finished, refuse_runs_it_cannot_resume

    run = Path(shutil.copytree(tiny_demo_run, tmp_path / "sweep" / "00000-demo"))
    last = run / "checkpoint-00000004.pt"
    assert finished(run, 4) and not finished(run, 5)
    last.write_bytes(last.read_bytes()[:5000])
    assert not finished(run, 4)
    runs = [SweepRun("00000-demo", ())]
    refuse_runs_it_cannot_resume(runs, tmp_path / "sweep")  # (the resume falls back to step 2's)
    # With none that loads, its resume failed at each start of the sweep, advising "another --out"
    for checkpoint in list_checkpoints(run):
        checkpoint.write_bytes(b"")
    with pytest.raises(ConfigError, match=r"run 00000-demo holds 2 checkpoints and none loads \(the newest: '.*"
                                          r"checkpoint-00000004.pt', cut short or damaged\), so the sweep cannot resume "
                                          r"it: restore a copy of it, or move '.*00000-demo' out of '.*sweep' for the "
                                          "sweep to train that run again"):
        refuse_runs_it_cannot_resume(runs, tmp_path / "sweep")


def test_the_same_sweep_with_train_steps_raised_trains_its_runs_longer(tmp_path):
    """The "train the whole sweep longer" step was refused: "holds another sweep (sweep.toml differs in the
    --set values)". A larger train.steps alone goes on with every run, as each one's --run-dir line may."""
    out = tmp_path / "sweep"
    command = ["sweep", str(DEMO), "--grid", "loss.adversarial=vanilla", *[arg for item in TINY for arg in ("--set", item)],
               "--out", str(out), "--device", "cpu"]
    assert CliRunner().invoke(main, command).exit_code == 0
    run = out / "00000-adversarial=vanilla"
    halfway = (run / "checkpoint-00000004.pt").stat().st_mtime_ns
    longer = CliRunner().invoke(main, [*command, "--set", "train.steps=6"])
    assert longer.exit_code == 0 and f"sweep '{out}': train.steps 4 -> 6: its runs go on to step 6" in longer.output, \
        longer.output
    assert [path.name for path in list_checkpoints(run)][-1] == "checkpoint-00000006.pt"
    assert (run / "checkpoint-00000004.pt").stat().st_mtime_ns == halfway  # (resumed, not trained again)
    assert "train.steps=6" in tomllib.loads((out / MANIFEST).read_text())["sets"]
    shorter = CliRunner().invoke(main, [*command, "--set", "train.steps=5"])
    assert shorter.exit_code == 2 and "differs in the --set values (train.steps 6 -> 5)" in shorter.output


def _grid_run_resumed_by_hand(tmp_path, *sets: str) -> tuple[list[str], Path]:
    """A finished sweep of two tiny runs whose second went back a checkpoint and was resumed by hand
    with `sets`: (the sweep's command, that run)."""
    out = tmp_path / "sweep"
    command = ["sweep", str(DEMO), "--grid", "train.g_lr=1e-4,2e-4",
               *[arg for item in TINY for arg in ("--set", item)], "--out", str(out), "--device", "cpu"]
    assert CliRunner().invoke(main, command).exit_code == 0
    run = out / "00001-g_lr=2e-4"
    (run / "checkpoint-00000004.pt").unlink()
    resumed = CliRunner().invoke(main, ["train", "--resume", str(run), *[arg for item in sets for arg in ("--set", item)]])
    assert resumed.exit_code == 0, resumed.output
    return command, run


def test_a_finished_run_resumed_by_hand_with_other_settings_is_not_counted_as_the_grids(tmp_path):
    # "2 runs, 2 finished, 0 to do", and gan compare labelled it with settings it trained only part of
    command, run = _grid_run_resumed_by_hand(tmp_path, "train.d_lr=1e-3")
    again = CliRunner().invoke(main, command)
    assert again.exit_code == 2 and "error: run 00001-g_lr=2e-4 finished with settings other than this sweep gives " \
        f"it (train.d_lr 0.001 -> 0.0002: '{DEMO}' edited since, or the run resumed with --set by hand), so it is " \
        "not the grid's run: put the config back as it was, or move" in again.output, again.output
    assert "started" not in again.output


def test_a_finished_run_resumed_with_settings_of_how_it_runs_alone_is_still_the_grids(tmp_path):
    # Resumed with --set train.checkpoint_every (which trains the same), it blocked the sweep for good:
    # "put the config back" could not help, and a resume setting it back had nothing to do.
    command, run = _grid_run_resumed_by_hand(tmp_path, "train.checkpoint_every=1", "log.every=1", "data.num_workers=0")
    assert "train.checkpoint_every 2 -> 1" in (run / "config.toml").read_text()  # (what the refusal was made of)
    again = CliRunner().invoke(main, command)
    assert again.exit_code == 0 and "2 runs, 2 finished, 0 to do" in again.output, again.output


def test_sigterm_reaches_the_runs_which_checkpoint_and_the_same_command_resumes(tmp_path):
    """`kill` (or a scheduler ending the job) stops the sweep as Ctrl-C does: the running run gets
    the signal, checkpoints and exits, and no run is left training without its sweep."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "sweep"
    sets = [*TINY, "train.steps=100000", "train.checkpoint_every=100000", "log.every=100000", "log.image_every=100000"]
    command = [sys.executable, "-m", "gan", "sweep", str(DEMO), "--grid", "loss.adversarial=vanilla,hinge",
               *[arg for item in sets for arg in ("--set", item)], "--out", str(out), "--device", "cpu"]
    sweep = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    run_dir = out / "00000-adversarial=vanilla"
    deadline = time.monotonic() + 120
    while not list(run_dir.glob("events.out.tfevents.*")) and time.monotonic() < deadline:
        time.sleep(0.2)  # the run has started training
    time.sleep(1)
    sweep.send_signal(signal.SIGTERM)
    _, errors = sweep.communicate(timeout=120)
    assert sweep.returncode == 128 + signal.SIGTERM, errors
    assert "interrupted; the same command resumes it" in errors
    (checkpoint,) = list_checkpoints(run_dir)  # written by the run on the signal
    assert 0 < int(checkpoint.stem.split("-")[1]) < 100000
    assert not (out / "00001-adversarial=hinge").exists()  # no new run started after the signal
    with RunLock(run_dir):  # nothing trains there any more
        pass


class _FinishedProcess:
    def __init__(self, command, env, **kwargs):
        self.env = env
        _FinishedProcess.started.append(self)

    def poll(self):
        return 0

    started: list = []


@pytest.mark.parametrize("user_threads, expected", [(None, "1"), ("1", "1"), ("3", "3")])
def test_runs_on_the_cpu_share_the_cores_unless_the_user_set_the_threads(user_threads, expected, tmp_path,
                                                                           monkeypatch):
    """Two jobs on a CPU get cores / 2 threads each; an OMP_NUM_THREADS the user set is kept (the
    sweep once replaced it, and three 2-thread runs on 2 cores ran at a quarter of their speed). The
    cores are those the sweep may use (a job's 2 CPUs of a 64-core node gave each run 32 threads)."""
    import gan.core.processes
    import gan.tools.sweep

    monkeypatch.setattr(os, "cpu_count", lambda: 64)  # (the host's)
    quota = tmp_path / "cpu.max"
    quota.write_text("200000 100000\n")  # (the job's: 2 CPUs' time)
    monkeypatch.setattr(gan.core.processes, "CGROUP_CPU_MAX", quota)
    if user_threads is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", user_threads)
    _FinishedProcess.started = []
    monkeypatch.setattr(gan.tools.sweep, "same_gan", lambda environment: environment)  # (it starts a Python)
    monkeypatch.setattr(gan.tools.sweep.subprocess, "Popen", _FinishedProcess)
    runs = expand([parse_grid("train.g_lr=1e-4,2e-4")], seeds=1)
    (tmp_path / "sweep").mkdir()
    failed = gan.tools.sweep.run_sweep(DEMO, [*TINY], runs, tmp_path / "sweep", jobs=2, devices=[], say=lambda line: None)
    assert len(_FinishedProcess.started) == 2
    assert failed == [run.name for run in runs]  # (the stand-in exits 0 having trained nothing)
    assert [process.env["OMP_NUM_THREADS"] for process in _FinishedProcess.started] == [expected, expected]


class _TrainingProcess:
    """A run that trains until it is sent a signal."""

    def __init__(self, command, env, **kwargs):
        self.signals = []
        _TrainingProcess.started.append(self)

    def poll(self):
        return -self.signals[-1] if self.signals else None

    def send_signal(self, signum):
        self.signals.append(signum)

    def wait(self):
        return self.poll()

    started: list = []


@pytest.mark.parametrize("thread", ["main", "another"])
def test_a_sweep_ended_by_its_callers_own_exception_stops_its_runs(tmp_path, monkeypatch, thread):
    """Only Ctrl-C stopped the runs: a notebook's timeout (any other exception) left them training
    on, holding their run directories. From another thread no handler is set, so a stop comes as the
    caller's own exception there too (ignoring the stop signals raised ValueError, and the runs trained on)."""
    import signal
    from concurrent.futures import ThreadPoolExecutor

    import gan.tools.sweep

    class Timeout(Exception):
        pass

    def say(line):
        if "started" in line:
            raise Timeout

    _TrainingProcess.started = []
    monkeypatch.setattr(gan.tools.sweep, "same_gan", lambda environment: environment)  # (it starts a Python)
    monkeypatch.setattr(gan.tools.sweep.subprocess, "Popen", _TrainingProcess)
    runs = expand([parse_grid("train.g_lr=1e-4,2e-4")], seeds=1)
    (tmp_path / "sweep").mkdir()
    before = {signum: signal.getsignal(signum) for signum in gan.tools.sweep.STOP_SIGNALS}

    def sweep():
        gan.tools.sweep.run_sweep(DEMO, [*TINY], runs, tmp_path / "sweep", jobs=1, devices=[], say=say)
    with pytest.raises(Timeout):
        if thread == "main":
            sweep()
        else:
            with ThreadPoolExecutor(1) as executor:
                executor.submit(sweep).result()
    (process,) = _TrainingProcess.started
    assert process.signals == [signal.SIGTERM]
    assert {signum: signal.getsignal(signum) for signum in gan.tools.sweep.STOP_SIGNALS} == before


def test_a_sweep_started_from_another_thread_trains_its_runs(tmp_path):
    """Signal handlers may be set in the main thread alone: a sweep from a thread (a notebook's
    executor, click's CliRunner in one) printed its first line, then ended on "ValueError: signal only
    works in main thread" (exit 1, no message)."""
    from concurrent.futures import ThreadPoolExecutor

    out = tmp_path / "sweep"
    command = ["sweep", str(DEMO), "--grid", "train.g_lr=1e-4", *[arg for item in TINY for arg in ("--set", item)],
               "--out", str(out), "--device", "cpu"]
    with ThreadPoolExecutor(1) as executor:
        result = executor.submit(CliRunner().invoke, main, command).result()
    assert result.exit_code == 0, result.output
    assert "run 00000-g_lr=1e-4 finished" in result.output
    assert (out / "00000-g_lr=1e-4" / "checkpoint-00000004.pt").is_file()


def test_ctrl_c_in_a_terminal_stops_the_runs_with_a_checkpoint(tmp_path):
    """A terminal's Ctrl-C goes to its whole process group, the sweep and its runs alike: the sweep
    must not add a second SIGINT, which tells a run to abort without saving."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "sweep"
    sets = [*TINY, "train.steps=100000", "train.checkpoint_every=100000", "log.every=100000", "log.image_every=100000"]
    command = [sys.executable, "-m", "gan", "sweep", str(DEMO), "--grid", "loss.adversarial=vanilla,hinge",
               *[arg for item in sets for arg in ("--set", item)], "--out", str(out), "--device", "cpu"]
    sweep = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, start_new_session=True)  # as a terminal's job
    run_dir = out / "00000-adversarial=vanilla"
    deadline = time.monotonic() + 120
    while not list(run_dir.glob("events.out.tfevents.*")) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1)
    os.killpg(sweep.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
    _, errors = sweep.communicate(timeout=120)
    assert "interrupted; the same command resumes it" in errors, errors
    (checkpoint,) = list_checkpoints(run_dir)  # the run saved its step
    assert 0 < int(checkpoint.stem.split("-")[1]) < 100000


def _start_sweep(out, *extra, **popen):
    """A sweep of two long tiny runs in a subprocess, returned once its first run trains."""
    import subprocess
    import sys
    import time

    sets = [*TINY, "train.steps=100000", "train.checkpoint_every=100000", "log.every=100000", "log.image_every=100000"]
    command = [sys.executable, "-m", "gan", "sweep", str(DEMO), "--grid", "loss.adversarial=vanilla,hinge",
               *[arg for item in sets for arg in ("--set", item)], "--out", str(out), "--device", "cpu", *extra]
    sweep = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, **popen)
    run_dir = out / "00000-adversarial=vanilla"
    deadline = time.monotonic() + 120
    while not list(run_dir.glob("events.out.tfevents.*")) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1)
    return sweep, command, run_dir


def test_a_run_stops_with_a_checkpoint_when_its_sweep_is_killed_outright(tmp_path):
    """kill -9 of the sweep gives it no chance to pass the stop on: its runs used to train on alone,
    holding their locks, so the sweep run again called them failed. Now the kernel sends each run
    SIGTERM when its sweep dies; it checkpoints and frees its directory for the same command."""
    sweep, _, run_dir = _start_sweep(tmp_path / "sweep", "--jobs", "2")
    sweep.kill()
    sweep.communicate(timeout=60)
    if not wait_for_no_writer(run_dir):
        pytest.fail(f"the run in {run_dir} kept training after its sweep was killed")
    (checkpoint,) = list_checkpoints(run_dir)  # it saved its step on the way out
    assert 0 < int(checkpoint.stem.split("-")[1]) < 100000
    log = (tmp_path / "sweep" / "logs" / f"{run_dir.name}.log").read_text()
    assert "received SIGTERM" in log, log


def test_a_second_sweep_into_the_same_folder_is_refused_while_the_first_runs(tmp_path):
    """Two sweeps into one --out would each start the same runs, and the second's lock errors would
    land in the first's logs: the second is refused at once, naming the first."""
    import signal
    import subprocess

    out = tmp_path / "sweep"
    first, command, run_dir = _start_sweep(out, "--jobs", "2")
    try:
        log = out / "logs" / f"{run_dir.name}.log"
        before = log.read_text()
        second = subprocess.run(command[:-2] + ["--jobs", "2"], capture_output=True, text=True, timeout=120)
        assert second.returncode == 2, second.stderr
        assert f"sweep folder '{out}' is in use by another gan sweep (pid {first.pid})" in second.stderr
        assert "started" not in second.stderr
        assert "in use by another" not in log.read_text()[len(before):]
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=120)


def test_a_training_run_leaves_an_ignored_ctrl_c_ignored():
    """A sweep or run started in the background of a script has SIGINT ignored, so the terminal's
    Ctrl-C is not its to act on; the loop's handler used to replace that and stop the run."""
    import signal

    from gan.commands.train import interrupt_on_sigterm
    from gan.core.processes import STOP_SIGNALS
    from gan.training.stop import StopRequest

    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        interrupt_on_sigterm()
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        with StopRequest():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        with StopRequest():  # a signal that is not ignored is still the loop's
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class _EndedProcess(_FinishedProcess):
    code = 0

    def poll(self):
        return _EndedProcess.code


@pytest.mark.parametrize("code, said", [
    (143, "was stopped by a signal (exit 143); the same command starts it again"),
    (-15, "was stopped by a signal (exit -15); the same command starts it again"),
    (129, "was stopped by a signal (exit 129); the same command starts it again"),  # its terminal closed
    (-9, "was killed (SIGKILL: by hand, or by the kernel when the system ran out of memory); the same command "
         "starts it again"),
    (-11, "crashed (SIGSEGV)"),
    (1, "failed (exit 1)"),
])
def test_how_a_run_ended_is_told_apart(code, said, tmp_path, monkeypatch):
    """A run stopped by a signal is not broken; one the OOM killer ended, or that crashed, is."""
    import gan.tools.sweep

    _EndedProcess.code = code
    monkeypatch.setattr(gan.tools.sweep, "same_gan", lambda environment: environment)  # (it starts a Python)
    monkeypatch.setattr(gan.tools.sweep.subprocess, "Popen", _EndedProcess)
    runs = expand([parse_grid("train.g_lr=1e-4")], seeds=1)
    (tmp_path / "sweep").mkdir()
    lines = []
    failed = gan.tools.sweep.run_sweep(DEMO, [*TINY], runs, tmp_path / "sweep", jobs=1, devices=[], say=lines.append)
    assert failed == [runs[0].name]  # not finished: the sweep still ends with an error
    assert f"run {runs[0].name} {said}" in lines[-1]


@pytest.mark.parametrize("device, expected", [("foo", "unknown device 'foo'"), ("cuda:7", "cuda:7")])
def test_a_device_this_machine_lacks_is_refused_before_the_sweep_folder_is_made(tmp_path, device, expected):
    # Every run was started, to fail alike, and sweep.toml was left in a folder of nothing else.
    import torch

    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    out = tmp_path / "sweep"
    result = CliRunner().invoke(main, ["sweep", str(DEMO), "--grid", "loss.adversarial=vanilla,hinge", "--device",
                                       device, "--out", str(out)])
    assert result.exit_code == 2 and expected in result.output, result.output
    assert result.output.count("error:") == 1 and "started" not in result.output, result.output
    assert not out.exists()


def test_a_run_whose_last_step_left_side_tasks_undone_is_resumed_not_skipped(tmp_path, monkeypatch):
    # Its checkpoint of the last step records previews that failed (a full disk, say): the sweep run
    # again counted it finished, and that step's grids, metrics and best.pt were never made.
    import gan.training.loop as loop_module
    from gan.training.resolve import load_config

    out = tmp_path / "sweep"
    command = ["sweep", str(DEMO), "--grid", "loss.adversarial=vanilla,hinge",
               *[arg for item in TINY for arg in ("--set", item)], "--out", str(out), "--device", "cpu"]
    assert CliRunner().invoke(main, command).exit_code == 0
    run_dir = out / "00001-adversarial=hinge"
    (run_dir / "checkpoint-00000004.pt").unlink()
    grids = sorted(path.name for path in (run_dir / "samples").iterdir())
    for path in (run_dir / "samples").glob("*00000004*"):
        path.unlink()

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(loop_module, "_write_previews", full_disk)
    with pytest.raises(Exception, match="previews failed at step 4"):
        loop_module.train(load_config(run_dir / "config.toml", []), run_dir, torch.device("cpu"), resume=True)
    monkeypatch.undo()
    assert [path.name for path in list_checkpoints(run_dir)][-1] == "checkpoint-00000004.pt"
    again = CliRunner().invoke(main, command)
    assert again.exit_code == 0 and "2 runs, 1 finished, 1 to do" in again.output, again.output
    assert sorted(path.name for path in (run_dir / "samples").iterdir()) == grids


def test_a_new_sweep_into_a_folder_of_other_runs_is_refused(tmp_path):
    # A run under a sweep run's name counted as that run, finished, whatever it trained; any
    # other joined the sweep's comparison.
    out = tmp_path / "runs"
    foreign = out / "00000-adversarial=vanilla"
    foreign.mkdir(parents=True)
    (foreign / "config.toml").write_text(DEMO.read_text().replace('adversarial = "vanilla"', 'adversarial = "hinge"'))
    (out / "notes").mkdir()  # (a folder that holds no run is no matter)
    result = CliRunner().invoke(main, ["sweep", str(DEMO), "--grid", "loss.adversarial=vanilla,hinge",
                                       "--out", str(out), "--print-commands"])
    assert result.exit_code == 2, result.output
    assert f"'{out}' holds 1 run(s) that no sweep made there ('00000-adversarial=vanilla'): use another --out" \
        in " ".join(result.output.split())
    assert sorted(path.name for path in out.iterdir()) == ["00000-adversarial=vanilla", "notes"]


@pytest.mark.parametrize("rank, local_rank, said", [("0", "0", True), ("1", "1", False), ("2", "0", True)])
def test_a_sweep_under_torchrun_is_refused_by_rank_0_alone(tmp_path, monkeypatch, rank, local_rank, said):
    # Each process ran the whole sweep; the second was refused by the first's lock, with no word of why. And
    # on another machine (rank 2, LOCAL_RANK 0) no process said it: only torchrun's ChildFailedError showed.
    for name, value in (("WORLD_SIZE", "4"), ("RANK", rank), ("LOCAL_RANK", local_rank),
                        ("MASTER_ADDR", "localhost"), ("MASTER_PORT", "29500")):
        monkeypatch.setenv(name, value)
    out = tmp_path / "sweep"
    result = CliRunner().invoke(main, ["sweep", str(DEMO), "--grid", "train.seed=1,2", "--out", str(out)])
    assert result.exit_code == 2 and not out.exists()
    assert ("torchrun would start one sweep per process" in result.output) == said, result.output


def test_the_data_folder_check_reads_the_folders_each_run_reads_and_skips_runs_already_started(tmp_path):
    # Unpaired data with both domain folders never reads data.root, yet the sweep refused the config
    # gan train trains; and a sweep run again was refused for a finished run whose data had moved.
    from gan.core.config import DataConfig
    from gan.data import check_data_folders

    (tmp_path / "A").mkdir()
    (tmp_path / "B").mkdir()
    check_data_folders(DataConfig(dataset="unpaired", root=str(tmp_path / "gone"), a_root=str(tmp_path / "A"),
                                  b_root=str(tmp_path / "B"), val_split=""))
    with pytest.raises(ConfigError, match="data.root '.*gone' does not exist"):  # (val_split's folders are in it)
        check_data_folders(DataConfig(dataset="unpaired", root=str(tmp_path / "gone"), a_root=str(tmp_path / "A"),
                                      b_root=str(tmp_path / "B"), val_split="test"))
    celeba = REPO / "experiments" / "dcgan_celeba64.toml"
    runs = expand([("train.seed", ["1", "2"])], 1, 10)
    sets = [f"data.root={tmp_path / 'moved'}"]
    with pytest.raises(ConfigError, match="does not exist"):
        planned_steps(celeba, sets, runs, out=tmp_path / "sweep")
    for run in runs:
        (tmp_path / "sweep" / run.name).mkdir(parents=True)  # (both started: they read their data then)
    assert set(planned_steps(celeba, sets, runs, out=tmp_path / "sweep")) == {run.name for run in runs}


@pytest.mark.parametrize("stand_in", ["gan.py", "gan/__main__.py"])
def test_the_runs_import_the_sweeps_own_gan_not_one_in_the_working_directory(stand_in, tmp_path, monkeypatch):
    # `python -m gan` puts the working directory first on the path: a user's own gan.py (or another
    # checkout) ran in place of every run, exited 0, and the sweep counted runs it never trained
    work = tmp_path / "project"
    (work / stand_in).parent.mkdir(parents=True, exist_ok=True)
    (work / stand_in).write_text("print('the working directory\\'s gan ran')\n")
    (work / "gan" / "__init__.py").write_text("") if stand_in.startswith("gan/") else None
    monkeypatch.chdir(work)
    out = tmp_path / "sweep"
    result = CliRunner().invoke(main, ["sweep", str(DEMO), "--grid", "loss.adversarial=vanilla,hinge",
                                       *[arg for item in TINY for arg in ("--set", item)], "--out", str(out),
                                       "--device", "cpu"])
    assert result.exit_code == 0, result.output
    for name in ("00000-adversarial=vanilla", "00001-adversarial=hinge"):
        assert (out / name / "checkpoint-00000004.pt").is_file()


def test_the_runs_path_is_left_as_it_is_where_their_python_finds_the_sweeps_gan(tmp_path):
    # gan's folder went first on every run's PYTHONPATH: for an installed gan, site-packages, ahead of the
    # user's own PYTHONPATH and of the standard library
    import os

    import gan
    from gan.tools.sweep import same_gan

    ours = str(Path(gan.__file__).resolve().parent.parent)
    finding_ours = {**os.environ, "PYTHONPATH": ours}
    assert same_gan(finding_ours) == finding_ours  # (the runs' Python finds this gan: nothing to add)
    # another gan found first through PYTHONPATH, in a folder whose name is no UTF-8 (a traceback)
    elsewhere = tmp_path / os.fsdecode(b"caf\xe9")
    (elsewhere / "gan").mkdir(parents=True)
    (elsewhere / "gan" / "__init__.py").write_text("")
    other = {**os.environ, "PYTHONPATH": str(elsewhere)}
    assert same_gan(other)["PYTHONPATH"] == os.pathsep.join([ours, str(elsewhere)])


def test_a_run_that_exits_0_without_its_last_checkpoint_is_counted_as_failed(tmp_path, monkeypatch):
    import gan.tools.sweep as sweep

    monkeypatch.setattr(sweep, "train_command", lambda *args: [sys.executable, "-c", "pass"])
    out = tmp_path / "sweep"
    result = CliRunner().invoke(main, ["sweep", str(DEMO), "--grid", "loss.adversarial=vanilla,hinge",
                                       *[arg for item in TINY for arg in ("--set", item)], "--out", str(out),
                                       "--device", "cpu"])
    assert result.exit_code != 0
    assert "run 00000-adversarial=vanilla exited 0 without a checkpoint of its step 4: counted as failed" in \
        result.output
    assert "2/2 done" not in result.output


def test_a_failed_run_is_said_where_the_system_has_no_sigkill(tmp_path, monkeypatch):
    # Windows: signal.SIGKILL is missing, and the first run that failed ended the sweep in an AttributeError
    import signal

    from gan.tools.sweep import _how_it_ended

    monkeypatch.delattr(signal, "SIGKILL")
    assert _how_it_ended(1, tmp_path / "run") == "failed (exit 1)"


def test_an_unfinished_sweep_run_resumed_with_settings_of_how_it_runs_goes_on_with_them(tmp_path):
    # Resumed by hand with --set train.checkpoint_every and stopped, it failed the sweep's resume: "holds a
    # run started with other settings ... give another --run-dir", which a sweep cannot.
    command, run = _grid_run_resumed_by_hand(tmp_path, "train.checkpoint_every=1")
    (run / "checkpoint-00000004.pt").unlink()  # (stopped after step 3, its checkpoint there)
    again = CliRunner().invoke(main, command)
    assert again.exit_code == 0 and "2 runs, 1 finished, 1 to do" in again.output, again.output
    assert (run / "checkpoint-00000004.pt").is_file() and "checkpoint_every = 1" in (run / "config.toml").read_text()
    (run / "checkpoint-00000004.pt").unlink()  # the run's own line, as the sweep gives it, says so
    line = CliRunner().invoke(main, ["train", str(DEMO), *[arg for item in [*TINY, "train.g_lr=2e-4"]
                                                           for arg in ("--set", item)], "--run-dir", str(run)])
    assert line.exit_code == 0 and "with the settings of how it runs that its config.toml holds, not this line's " \
        "(train.checkpoint_every 1 -> 2: the first goes on)" in line.output, line.output


def test_the_sweeps_eta_counts_what_its_running_runs_have_left():
    # "run 00000 finished in 0m34s (1/2 done, about 0m34s to go)", and the other finished 0.5 s later: each
    # running run was counted whole (10-hour runs: "about 10h to go" a minute before the end).
    from gan.tools.sweep import sweep_eta

    assert sweep_eta(34.0, [33.5], queued=0, jobs=2) == pytest.approx(0.5)
    assert sweep_eta(10.0, [9.5], queued=3, jobs=2) == pytest.approx(20.0)  # slots free at 0.5 and 0: +10 each
    assert sweep_eta(10.0, [], queued=4, jobs=1) == pytest.approx(40.0)
    assert sweep_eta(10.0, [25.0], queued=0, jobs=1) == 0.0  # (past the mean: its rest cannot be told)


def test_a_sweep_of_several_at_a_time_says_where_its_runs_stand(tmp_path, monkeypatch):
    # Several at a time, the runs' output goes to OUT/logs: the terminal was silent from their start to their end.
    import gan.tools.sweep

    monkeypatch.setattr(gan.tools.sweep, "STATUS_EVERY_S", 0.0)
    runs = expand([parse_grid("train.g_lr=1e-4,2e-4")], seeds=1)
    (tmp_path / "sweep").mkdir()
    said = []
    failed = gan.tools.sweep.run_sweep(DEMO, [*TINY, "train.steps=40", "log.every=2"], runs, tmp_path / "sweep",
                                       jobs=2, devices=[], say=said.append)
    assert failed == [], said
    status = [line for line in said if line.startswith("sweep: 0000") and " started" not in line
              and " finished" not in line]
    assert status and all(re.fullmatch(r"sweep: (0000[01]-g_lr=[0-9e-]+: (step \d+/40|starting) \(\d+m\d\ds\)(; )?)+",
                                       line) for line in status), status
    assert any("step " in line for line in status), status
