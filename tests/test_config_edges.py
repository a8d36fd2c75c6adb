"""Config values at the edges: `--set` text, TOML files a person wrote oddly, keys that change
nothing, and the refusals of settings that cannot run (network channels and depths, torchrun's
environment, sweeps, bench, compare), each named in one line."""

import re
import warnings
from pathlib import Path

import pytest
from conftest import TINY, assert_one_error_line, invoke, random_vgg_state, tiny_config
from PIL import Image

from gan.core.registry import ConfigError
from gan.training.resolve import load_config

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted((REPO / "experiments").glob("*.toml"))
DEMO = REPO / "experiments" / "dcgan_demo.toml"


def messages_of_warnings(path, overrides) -> list[str]:
    """Every warning `load_config(path, overrides)` gives, as text."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_config(path, overrides)
    return [str(warning.message) for warning in caught]


# ----------------------------------------------------------------------------- --set text


@pytest.mark.parametrize("text", ["2024_01", "1e3", "0x10", "inf"])
def test_a_text_key_keeps_the_text_as_written(text):
    """Read as TOML, 2024_01 would be 202401 and 1e3 1000.0: a path named so is another folder."""
    assert load_config(None, [f"data.root={text}"]).data.root == text


@pytest.mark.parametrize("spelling", ["2024_01", "1e3", "0x1F", "2024-01-05"])
def test_a_number_for_a_text_key_in_a_file_is_refused_as_toml_loses_its_spelling(tmp_path, spelling):
    config = tmp_path / "c.toml"
    config.write_text(f'recipe = "dcgan"\n[data]\ndataset = "folder"\nroot = {spelling}\n')
    with pytest.raises(ConfigError, match=r"data.root: expected text, got the (number|date or time) .*"
                       + re.escape('write text in quotes: root = "..."')):
        load_config(config)


@pytest.mark.parametrize("assignment, expected", [
    ("model.generator_args={channels=8}", "--set model.generator_args={channels=8} would replace all of "
                                          "[model.generator_args], dropping the keys the config file sets there; "
                                          "set one key at a time: --set model.generator_args.channels=8"),
    ("data={}", "would replace all of [data]"),
])
def test_a_table_value_is_refused_as_it_would_drop_the_files_keys(assignment, expected):
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_config(DEMO, [assignment])


@pytest.mark.parametrize("assignment, expected", [
    ("train.g_lr=.5", "train.g_lr: expected float, got '.5'; TOML needs a digit before the point: train.g_lr=0.5"),
    ("train.g_lr=5.", "TOML needs a digit after the point: train.g_lr=5.0"),
    ("loss.augment_p=.5", "TOML needs a digit before the point: loss.augment_p=0.5"),
    ("metrics.names=[swd, fid]", "strings in a TOML list need quotes: --set 'metrics.names=[\"swd\", \"fid\"]'"),
    ("data.hflip=True", "TOML writes booleans in lower case: data.hflip=true"),
    ('data.hflip="true"', "data.hflip: expected bool, got 'true'; in quotes it is text: give true without them"),
    ("train.steps='1_000'", "in quotes it is text: give 1_000 without them"),
    ('train.g_lr="1e-4"', "in quotes it is text: give 1e-4 without them"),
    ("metrics.names=swd", "a TOML list is written in brackets: --set 'metrics.names=[\"swd\"]'"),
    ("train.lr_milestones=100,200", "a TOML list is written in brackets: --set 'train.lr_milestones=[100, 200]'"),
    ("train.lr_milestones=[100,200", "brackets, opened and closed: --set 'train.lr_milestones=[100, 200]'"),
    ("metrics.names=swd,fid]", "brackets, opened and closed: --set 'metrics.names=[\"swd\", \"fid\"]'"),
])
def test_a_value_written_as_other_languages_allow_gets_the_toml_spelling(assignment, expected):
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_config(None, ["loss.diffaugment=color", assignment])


def test_a_value_nested_thousands_deep_is_one_line():
    with pytest.raises(ConfigError, match=re.escape("--set train.steps: the value is nested too deeply to read")):
        load_config(None, ["train.steps=" + "[" * 5000 + "]" * 5000])


@pytest.mark.parametrize("key", ["model.generator_args.norm", "train.lr_milestones", "loss.augment_p"])
def test_a_value_nested_hundreds_deep_is_one_line(key):
    """Between ~330 and ~490 levels TOML read the value and gan's own checks (coercing it, showing it
    in a message) overflowed their recursion: a RecursionError traceback of 2,000 lines."""
    with pytest.raises(ConfigError, match=re.escape(f"--set {key}: the value is nested too deeply to read")):
        load_config(DEMO, [f"{key}={'[' * 400}{']' * 400}"])
    with pytest.raises(ConfigError, match="expected"):  # (a few levels: the type error, as before)
        load_config(DEMO, [f"{key}={'[' * 3}1{']' * 3}"])
    assert load_config(DEMO, [f"data.root={'[' * 100}{']' * 100}"]).data.root == "[" * 100 + "]" * 100  # (text)


# ----------------------------------------------------------------------------- TOML files


def test_a_file_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_text("\ufeff[train]\nsteps = 7\n", encoding="utf-8")
    assert load_config(path).train.steps == 7


def test_a_file_nested_thousands_deep_is_one_line_naming_it(tmp_path):
    path = tmp_path / "deep.toml"
    path.write_text("[train]\nsteps = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: nested too deeply to read")):
        load_config(path)


@pytest.mark.parametrize("depth", [17, 400])
def test_a_file_nested_hundreds_deep_is_one_line_naming_it_and_the_key(tmp_path, depth):
    """At 400 levels TOML read the file and gan's checks overflowed their recursion (a 2,000-line
    RecursionError traceback); now any value deeper than MAX_NESTING is refused where it is read."""
    path = tmp_path / "deep.toml"
    path.write_text("[data]\nroot = " + "[" * depth + "]" * depth + "\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: data.root is nested too deeply to read")):
        load_config(path)


@pytest.mark.parametrize("text, expected", [
    ("data = 3\n", "[data] is a section, but the file sets data = 3"),
    ("[[data]]\nroot = \"x\"\n", "[data] is a section, but the file writes [[data]]"),
    ("[model]\ngenerator_args = 5\n", "[model.generator_args] is a section, but the file sets model.generator_args = 5"),
    # (only these, and TOML syntax, named the file; a key or value it holds read as if a --set's)
    ("[Train]\nsteps = 4\n", "unknown config key 'Train' (did you mean 'train'?)"),
    ("[data]\nresolution = 32.0\n", "data.resolution: expected int, got 32.0"),
    ("[train]\nsteps = -3\n", "train.steps must be >= 1, got -3"),
    # (names checked against the registries did not name the file either)
    ("[model.generator_args]\nlatent_dimm = 3\n", "unknown key 'model.generator_args.latent_dimm' for generator"),
    ("[loss]\nadversarial = \"hinje\"\n", "unknown loss.adversarial 'hinje' (did you mean 'hinge'?)"),
    ("[metrics]\nnames = [\"swdd\"]\n", "metrics.names: unknown metric 'swdd' (did you mean 'swd'?)"),
])
def test_a_section_the_file_writes_as_a_value_blames_the_file_not_the_set(tmp_path, text, expected):
    path = tmp_path / "odd.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(f"{path}: {expected}")):
        load_config(path, ["data.root=x", "model.generator_args.channels=8"])


@pytest.mark.parametrize("text, expected", [
    ("[train]\nlr_milestones = [" + ", ".join(["5"] * 200_000) + "]\n",
     "train.lr_milestones must be increasing steps >= 1, got [5, 5, 5,"),
    ("[data]\nlayout = \"" + "x" * 300_000 + "\"\n", "data.layout must be one of auto, aligned, folders; got 'xxx"),
    ("[data]\n" + "k" * 300_000 + " = 1\n", "unknown config key 'data.kkk"),
    ("[model]\ngenerator = \"" + "g" * 300_000 + "\"\n", "unknown generator 'ggg"),
    ("[data]\nresolution = [" + ", ".join(["5"] * 200_000) + "]\n", "data.resolution: expected int, got [5, 5,"),
    ("[metrics]\nnames = [\"" + "s" * 300_000 + "\"]\n", "metrics.names: unknown metric 'sss"),
])
def test_a_value_of_megabytes_is_cut_in_its_error_line(tmp_path, text, expected):
    """Each message printed the whole value: 200,000 milestones made a 1.5 MB error line, a name or
    key of 3 million characters a 3 MB one."""
    path = tmp_path / "big.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(expected)) as caught:
        load_config(path)
    assert len(str(caught.value)) < 600 and "more characters)" in str(caught.value)


def test_the_warning_of_two_million_milestones_past_the_end_is_one_short_line(tmp_path):
    """A valid config's `train.lr_milestones [...] change nothing` warning listed every late
    milestone: 16.9 MB of warning for 2 million of them."""
    path = tmp_path / "late.toml"
    path.write_text("[train]\nsteps = 2\nlr_schedule = \"step\"\nlr_milestones = ["
                    + ", ".join(map(str, range(3, 300_003))) + "]\n")
    said = [message for message in messages_of_warnings(path, ["data.dataset=synthetic"])
            if message.startswith("train.lr_milestones [3, 4, 5,")]
    assert len(said) == 1 and len(said[0]) < 400 and said[0].endswith("the run ends at train.steps = 2"), said


def test_only_a_runs_own_config_is_upgraded_and_with_a_warning(tmp_path):
    """A pix2pix config.toml from before train.adversarial_start recorded a weight it ignored; a
    config a person writes with 1e-3, even named config.toml, means 1e-3."""
    written = 'recipe = "pix2pix"\n\n[loss]\nadversarial_weight = 0.001\n\n[train]\nsteps = 5\n'
    path = tmp_path / "config.toml"
    path.write_text(written)
    assert load_config(path).loss.adversarial_weight == 0.001
    (tmp_path / "checkpoint-00000010.pt").write_bytes(b"")
    with pytest.warns(UserWarning, match=re.escape("the run goes on with weight 1.0, as it trained")):
        assert load_config(path).loss.adversarial_weight == 1.0


def test_a_crop_of_zero_is_refused():
    with pytest.raises(ConfigError, match=re.escape("data.crop must be >= 1, got 0")):
        load_config(None, ["data.crop=0"])


@pytest.mark.parametrize("assignment, expected", [
    ("data.num_workers=100000", "data.num_workers must be in [0, 256], got 100000"),
    ("data.synthetic_size=10000000000", "data.synthetic_size must be in [1, 10000000], got 10000000000"),
    ("train.d_steps=1000000", "train.d_steps must be in [1, 100], got 1000000"),
    ("train.ema_bn_batches=100000000", "train.ema_bn_batches must be in [0, 10000], got 100000000"),
    ("data.load_size=100000", "data.load_size must be in [0, 8192], got 100000"),  # a 10^10-pixel resize
    ("data.blur_sigma=1e308", "data.blur_sigma must be in [0.0, 100.0], got 1e+308"),
    ("data.noise_std=300", "data.noise_std must be in [0.0, 255.0], got 300.0"),
    # (D saw noise alone: zero gradients, frozen losses, and no word)
    ("loss.instance_noise=1e30", "loss.instance_noise must be in [0.0, 10.0], got 1e+30"),
    ("train.steps=9223372036854775808", "train.steps = 9223372036854775808 does not fit in 64 bits"),
    ("model.generator_args.channels=999999999999999999999999999999", "model.generator_args.channels = "
     "999999999999999999999999999999 does not fit in 64 bits"),
])
def test_a_count_that_would_exhaust_the_machine_is_refused(assignment, expected):
    """Each is a typo's value: forking 100,000 workers, or an epoch order of ten billion, would
    stop the machine rather than train."""
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_config(None, [assignment])


@pytest.mark.parametrize("sets", [["loss.adversarial=wgan-gp", "loss.gp_weight=0"],
                                  ["loss.preset=wgan-gp", "loss.gp_weight=0"]])
def test_wgan_gp_without_its_penalty_is_refused(sets):
    # It trained an unconstrained critic in silence (a recipe without the penalty is refused for that)
    with pytest.raises(ConfigError, match=r"loss.adversarial = 'wgan-gp' with loss.gp_weight = 0 trains its critic "
                                          "unconstrained"):
        load_config(None, sets)
    assert load_config(None, [sets[0], "loss.gp_weight=1"]).loss.gp_weight == 1


def test_dcgan_channels_beyond_max_channels_are_refused_not_capped():
    from gan.nets.dcgan import DCGANGenerator

    with pytest.raises(ValueError, match=r"channels \(2000\) is more than max_channels \(1024\), which caps"):
        DCGANGenerator(resolution=32, channels=2000)


# ----------------------------------------------------------------------------- keys that change nothing


@pytest.mark.parametrize("overrides, expected", [
    (["data.dataset=folder", "data.crop=100"], "data.crop = 100 changes nothing: it is read only when data.dataset "
                                               "is 'celeba', and this config has data.dataset = 'folder'"),
    (["data.dataset=synthetic", "data.max_images=10"], "data.max_images = 10 changes nothing"),
    (["data.dataset=folder", "data.rot90=true"], "data.rot90 = true changes nothing: it is read only when data.dataset "
                                                 "is 'sr_pairs'"),
    (["data.dataset=celeba", "data.synthetic_size=10"], "data.synthetic_size = 10 changes nothing"),
    (["data.dataset=folder", "data.split=train"], "data.split = 'train' changes nothing"),
    (["data.dataset=celeba", "data.val_root=/x"], "data.val_root = '/x' changes nothing"),
    (["data.dataset=folder", "data.load_size=300"], "data.load_size = 300 changes nothing"),
    (["train.lr_schedule=cosine", "train.lr_decay_steps=10"], "train.lr_decay_steps = 10 changes nothing"),
    (["train.lr_milestones=[10]"], "train.lr_milestones = [10] changes nothing: it is read only when "
                                   "train.lr_schedule is 'step'"),
    (["log.eval_every=5"], "recipe 'dcgan' ignores log.eval_every = 5"),
    (["train.g_lr=0", "train.d_lr=0"], "train.g_lr and train.d_lr are both 0: no network learns anything"),
    (["train.g_lr=0"], "train.g_lr = 0: the generator never learns"),  # (an SRResNet trained nothing, unsaid)
    (["train.d_lr=0"], "train.d_lr = 0: the discriminator, where there is one, never learns"),
    (["train.steps=10", "loss.r1_gamma=1", "loss.r1_every=16"],
     "loss.r1_every = 16 is above train.steps = 10: R1 is due every 16 steps, so it never runs"),
    (["train.lr_schedule=step", "train.lr_gamma=0.1"], "train.lr_schedule = 'step' with no train.lr_milestones: the "
                                                       "learning rates never change"),
    (["train.lr_schedule=step", "train.lr_milestones=[5]", "train.lr_gamma=1"],
     "train.lr_schedule = 'step' with train.lr_gamma = 1: the learning rates never change"),
    (["recipe=srresnet", "data.dataset=sr_pairs", "loss.content=l1", "loss.vgg_layer=relu2_2"],
     "loss.vgg_layer = 'relu2_2' changes nothing: it is read only when loss.content is 'vgg'"),
    (["recipe=srgan", "data.dataset=sr_pairs", "loss.content=mse", "loss.vgg_arch=vgg16"],
     "loss.vgg_arch = 'vgg16' changes nothing: it is read only when loss.content is 'vgg'"),
    (["train.steps=10", "train.warmup_steps=10"], "train.warmup_steps = 10 is not below train.steps = 10"),
    (["train.steps=10", "train.lr_schedule=step", "train.lr_milestones=[5, 10]"],
     "train.lr_milestones [10] change nothing: the rates change after a milestone's step, and the run ends at "
     "train.steps = 10"),
    (["loss.diffaugment=color", "loss.augment_p=0"], "loss.diffaugment = 'color' changes nothing: loss.augment_p = 0"),
    (["loss.gp_weight=5"], "loss.gp_weight = 5.0 changes nothing: it is read only when loss.adversarial is 'wgan-gp'"),
    (["loss.diffaugment=color", "loss.augment_target=0.5"],
     "loss.augment_target = 0.5 changes nothing: it is read only when loss.augment_p is 'adaptive'"),
    (["loss.augment_images=1000"], "loss.augment_images = 1000 changes nothing"),
    (["loss.r1_every=4"], "loss.r1_every = 4 changes nothing: it is read only when loss.r1_gamma is above 0 (on), "
                          "and this config has loss.r1_gamma = 0"),
    (["loss.instance_noise_steps=100"], "loss.instance_noise_steps = 100 changes nothing: it is read only when "
                                        "loss.instance_noise is above 0"),
    (["train.ema_decay=0", "train.ema_bn_batches=8"], "train.ema_bn_batches = 8 changes nothing: it is read only "
                                                      "when train.ema_decay is above 0 (on)"),
    (["metrics.every=0", "metrics.num_samples=512"], "metrics.num_samples = 512 changes nothing: it is read only "
                                                     "when metrics.every is above 0 (on)"),
    (["recipe=pix2pix", "data.dataset=paired", "train.steps=10", "train.adversarial_start=10"],
     "train.adversarial_start = 10 is not below train.steps = 10: the adversarial term never turns on"),
    (["data.dataset=synthetic", "data.root=/faces"], "data.root = '/faces' changes nothing: it is read only when "
                                                     "data.dataset is 'celeba' or 'folder'"),
    (["data.dataset=synthetic", "data.strict=true"], "data.strict = true changes nothing"),
    (["data.dataset=folder", "data.root=/faces", "data.cache_verify=true"],
     "data.cache_verify = true changes nothing: it is read only when data.cache is 'mmap' or 'device'"),
    (["train.compile=off", "train.compile_mode=max-autotune-no-cudagraphs"],
     "train.compile_mode = 'max-autotune-no-cudagraphs' changes nothing: it is read only when train.compile is"),
    # R1 regularises D, which trains only after adversarial_start: its one due step (16) fell before it
    (["recipe=pix2pix", "data.dataset=paired", "train.steps=20", "train.adversarial_start=17", "loss.r1_gamma=10",
      "loss.r1_every=16"], "loss.r1_every = 16: R1 is due at its multiples, and none falls after "
                           "train.adversarial_start = 17 (when the discriminator trains) up to train.steps = 20"),
    # adaptive p starts at 0 and first moves after augment_interval D steps (dcgan: d_steps each step)
    (["train.steps=30", "train.d_steps=3", "loss.diffaugment=color", "loss.augment_p=adaptive",
      "loss.augment_interval=100"], "loss.augment_interval = 100 is not below the 90 discriminator steps this run "
                                    "has: adaptive p starts at 0 and is first moved after that many, so it never "
                                    "leaves 0"),
    (["recipe=cyclegan", "data.dataset=unpaired", "train.steps=30", "loss.diffaugment=color",
      "loss.augment_p=adaptive", "loss.augment_interval=64"], "is not below the 60 discriminator steps"),  # two Ds
    # CycleGAN trains D after the generators: p's first move at its very last D step reaches no image
    (["recipe=cyclegan", "data.dataset=unpaired", "train.steps=30", "loss.diffaugment=color",
      "loss.augment_p=adaptive", "loss.augment_interval=60"], "is not below the 60 discriminator steps"),
    # the EMA's decay warms up as (1 + n) / (10 + n): 0.9999 at 1,500 steps averaged as 0.995 did
    (["train.steps=1500", "train.ema_decay=0.9999"], "train.ema_decay = 0.9999 (an average over about 10,000 steps) "
                                                     "is never reached: the decay warms up as (1 + n) / (10 + n) after "
                                                     "n steps, and ends this run's 1500 at 0.9940 (about 168 steps)"),
])
def test_a_key_set_to_no_effect_is_warned_of_by_name(overrides, expected):
    assert any(expected in message for message in messages_of_warnings(None, overrides)), expected


@pytest.mark.parametrize("overrides", [
    ["recipe=pix2pix", "data.dataset=paired", "train.steps=20", "train.adversarial_start=15", "loss.r1_gamma=10",
     "loss.r1_every=16", "train.ema_decay=0"],  # step 16 is after the adversarial start
    ["train.steps=30", "train.d_steps=4", "loss.diffaugment=color", "loss.augment_p=adaptive",
     "loss.augment_interval=100", "train.ema_decay=0"],  # 120 D steps
    ["train.steps=1500", "train.ema_decay=0.995"],  # ends at 0.994: near enough that another value would differ
    # p first moves at the last D step: dcgan's generator step after it, and CycleGAN's R1 at it, augment with it
    ["train.steps=30", "train.d_steps=3", "loss.diffaugment=color", "loss.augment_p=adaptive",
     "loss.augment_interval=90", "train.ema_decay=0"],
    ["recipe=cyclegan", "data.dataset=unpaired", "train.steps=30", "loss.diffaugment=color", "loss.augment_p=adaptive",
     "loss.augment_interval=60", "loss.r1_gamma=1", "loss.r1_every=10"],
    ["recipe=cyclegan", "data.dataset=unpaired", "train.steps=30", "loss.diffaugment=color", "loss.augment_p=adaptive",
     "loss.augment_interval=59"],  # the second discriminator of the last step sees p's first move
    ["recipe=pix2pix", "data.dataset=paired", "train.steps=100"],  # keeps no EMA generator: its ema_decay is unread
])
def test_a_key_that_takes_effect_late_in_the_run_is_not_warned_of(overrides):
    assert not [message for message in messages_of_warnings(None, overrides)
                if "never" in message or "changes nothing" in message]


def test_metrics_keys_a_file_keeps_for_later_are_warned_of_only_when_given():
    # the demo keeps metrics.names and num_samples; turning metrics off warned of keys never given
    demo = REPO / "experiments" / "dcgan_demo.toml"
    assert not [message for message in messages_of_warnings(demo, ["metrics.every=0"]) if "changes nothing" in message]
    given = messages_of_warnings(demo, ["metrics.every=0", "metrics.num_samples=100"])
    assert [message for message in given if "changes nothing" in message] == [
        "metrics.num_samples = 100 changes nothing: it is read only when metrics.every is above 0 (on), and this "
        "config has metrics.every = 0"]


def test_metrics_names_are_read_by_the_validation_of_translations_for_what_it_scores():
    # pix2pix of A|B pairs and CycleGAN score their translations by swd, fid, kid of metrics.names
    # (metrics.every being for unconditional runs); no other validation reads the list
    pix2pix = ["recipe=pix2pix", "data.dataset=paired", "log.eval_every=5", "data.load_size=143"]
    assert messages_of_warnings(None, [*pix2pix, "metrics.names=['pr', 'swd']"]) == [
        "metrics.names = ['pr', 'swd']: 'pr' changes nothing: with metrics.every = 0, only the validation of "
        "translations reads metrics.names, and it scores by swd, fid, kid"]
    # what it trains as: the names it reads (a sweep of ['swd', 'pr'] and ['swd', 'fid', 'kid'] differs)
    from gan.core.inert import inert_settings

    assert [inert.trains_as for inert in inert_settings(load_config(None, [*pix2pix, "metrics.names=['swd', 'pr']"]))
            ] == [(("metrics.names", ["swd"]),)]
    assert messages_of_warnings(None, [*pix2pix, "metrics.names=['pr']"]) == [
        "metrics.names = ['pr']: 'pr' changes nothing: with metrics.every = 0, only the validation of translations "
        "reads metrics.names, and it scores by swd, fid, kid (this list leaves it none of them to compute)"]
    for unread in (["recipe=pix2pix", "data.dataset=sr_pairs", "log.eval_every=5"],  # PSNR/SSIM of SR outputs
                   [*pix2pix[:2], "log.eval_every=0", "data.load_size=143"]):
        assert messages_of_warnings(None, [*unread, "metrics.names=['swd']"]) == [
            "metrics.names = ['swd'] changes nothing: it is read when metrics.every is above 0 (on), and by the "
            "validation of pix2pix (A|B pairs) and CycleGAN runs (log.eval_every above 0); this config has "
            f"metrics.every = 0 and recipe pix2pix, data.dataset {unread[1][13:]}, log.eval_every {unread[2][15:]}"]


@pytest.mark.parametrize("overrides", [
    ["data.dataset=paired", "data.split=train", "data.val_split=val", "data.load_size=140"],
    ["data.dataset=unpaired", "data.max_images=10", "data.strict=true", "data.load_size=143"],
    ["data.dataset=sr_pairs", "data.val_root=/x", "data.scale=2", "data.jpeg_quality=90"],
    ["train.lr_schedule=step", "train.lr_milestones=[5]", "train.lr_gamma=0.1", "train.steps=10", "train.ema_decay=0"],
    ["recipe=pix2pix", "data.dataset=paired", "log.eval_every=5", "data.load_size=143"],
    ["recipe=cyclegan", "data.dataset=unpaired", "log.eval_every=5", "metrics.names=['swd']",  # (its validation's)
     "data.load_size=143"],
    ["recipe=pix2pix", "data.dataset=paired", "train.steps=10", "train.adversarial_start=9", "train.ema_decay=0",
     "data.load_size=143"],
    ["loss.adversarial=wgan-gp", "loss.gp_weight=5"],
    ["loss.diffaugment=color", "loss.augment_p=adaptive", "loss.augment_target=0.5", "loss.augment_images=1000"],
    ["loss.r1_gamma=1", "loss.r1_every=4"],
    ["loss.instance_noise=0.1", "loss.instance_noise_steps=100"],
])
def test_keys_read_by_the_settings_in_use_are_not_warned_of(overrides):
    assert messages_of_warnings(None, overrides) == []


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
def test_no_shipped_config_sets_a_key_to_no_effect(path, tmp_path):
    reads_files = 'dataset = "synthetic"' not in path.read_text()  # (the demo draws its faces)
    assert messages_of_warnings(path, [f"data.root={tmp_path}"] if reads_files else []) == []


def test_the_empty_choice_of_keep_best_is_shown_and_said():
    """R9: "must be one of , swd/mean" hid the choice that turns best.pt off."""
    with pytest.raises(ConfigError, match=re.escape('train.keep_best must be one of "" (empty: no best.pt), swd/mean, ')):
        load_config(None, ["train.keep_best=none"])


# ----------------------------------------------------------------------------- gan sweep (R1)


def sweep_cli(*args: str):
    from click.testing import CliRunner

    from gan.commands.main import main

    return CliRunner().invoke(main, ["sweep", str(DEMO), *args])


@pytest.mark.parametrize("args, expected", [
    (["--grid", "loss.adversarial=hinge,lsgan", "--set", "loss.adversarial=vanilla"],
     "--set loss.adversarial=vanilla and --grid loss.adversarial both set loss.adversarial"),
    (["--seeds", "2", "--set", "train.seed=3"], "--set train.seed=3 and --seeds 2 both set train.seed"),
    (["--grid", "train.g_lr=1e-4,0.0001"], "--grid train.g_lr: 1e-4 and 0.0001 are the same value (0.0001), which "
                                           "would make two identical runs"),
    (["--grid", "data.hflip=true,false,true"], "a value is listed twice"),
    (["--grid", "train.steps=2,2.0"], "--grid train.steps: expected int, got 2.0"),  # (not "the same value")
    (["--grid", "train.g_lr=1,1.0"], "--grid train.g_lr: 1 and 1.0 are the same value (1.0)"),
    (["--grid", "train.steps=1,2,3,4,5,6,7,8,9,10", "--grid", "train.batch_size=1,2,3,4,5,6,7,8,9,10",
      "--grid", "log.every=1,2,3,4,5,6,7,8,9,10", "--seeds", "2"],
     "this sweep is 2000 runs (10 values of train.steps x 10 values of train.batch_size x 10 values of log.every x "
     "2 seeds), more than --max-runs 1000: check the grid, or pass --max-runs 2000 to run them all"),
    (["--grid", "loss.adversarial=hinge,lsgan", "--max-runs", "1"], "this sweep is 2 runs"),
])
def test_a_sweep_whose_runs_would_not_differ_or_are_too_many_is_refused(tmp_path, args, expected):
    result = sweep_cli(*args, "--out", str(tmp_path / "sweep"), "--print-commands")
    assert result.exit_code == 2 and expected in result.output, result.output
    assert not (tmp_path / "sweep").exists()


def test_max_runs_allows_a_larger_sweep_and_the_size_is_said_before_the_configs_are_checked(tmp_path):
    grid = ["--grid", "train.steps=1,2,3", "--seeds", "2"]
    allowed = sweep_cli(*grid, "--max-runs", "6", "--out", str(tmp_path / "a"), "--print-commands")
    assert allowed.exit_code == 0 and len(allowed.output.strip().splitlines()) == 6, allowed.output
    checked = sweep_cli(*grid, "--set", "train.batch_size=0", "--out", str(tmp_path / "b"))
    assert checked.exit_code == 2, checked.output
    assert "sweep: 6 runs (3 values of train.steps x 2 seeds); checking their configs" in checked.output
    assert checked.output.index("sweep: 6 runs") < checked.output.index("train.batch_size must be >= 1")


# ----------------------------------------------------------------------------- networks that do not fit (R2-R4)

QUICK = ["train.steps=2", "log.image_every=1000", "metrics.every=0", "data.num_workers=0", "train.batch_size=4",
         "data.synthetic_size=16"]


def build_recipe(config):
    import contextlib

    import torch

    from gan.recipes import RECIPES

    return RECIPES.get(config.recipe)(config, torch.device("cpu"), contextlib.nullcontext)


@pytest.mark.parametrize("assignment", ["model.generator_args.image_channels=1", "model.generator_args.image_channels=4",
                                        "model.discriminator_args.image_channels=1"])
def test_dcgan_networks_whose_channels_do_not_fit_rgb_images_are_refused(assignment):
    key, value = assignment.split("=")
    config = load_config(DEMO, [*QUICK, assignment])
    with pytest.raises(ConfigError, match=re.escape(f"{key} = {value} does not fit the data: its images are RGB "
                                                    f"(3 channels); set {key} = 3 or leave it out")):
        build_recipe(config)


@pytest.mark.parametrize("recipe, assignment", [
    ("pix2pix", "model.generator_args.in_channels=1"), ("pix2pix", "model.generator_args.out_channels=4"),
    ("cyclegan", "model.generator_args.out_channels=1"),
])
def test_image_to_image_generators_whose_channels_do_not_fit_are_refused(tmp_path, recipe, assignment):
    from conftest import RECIPE_CONFIGS

    config = load_config(REPO / "experiments" / RECIPE_CONFIGS[recipe], [f"data.root={tmp_path}", assignment])
    with pytest.raises(ConfigError, match=re.escape(f"{assignment.split('=')[0]} = ")):
        build_recipe(config)


def test_a_channel_mismatch_is_one_error_line_from_gan_train(tmp_path):
    from click.testing import CliRunner

    from gan.commands.main import main

    sets = [word for assignment in [*QUICK, "model.generator_args.image_channels=1"] for word in ("--set", assignment)]
    result = CliRunner().invoke(main, ["train", str(DEMO), *sets, "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "error: model.generator_args.image_channels = 1 does not fit the data" in result.output
    assert "Traceback" not in result.output and "RuntimeError" not in result.output


@pytest.mark.parametrize("assignment, expected", [
    ("recipe=pix2pix data.dataset=paired", "model.generator = 'dcgan' does not fit this recipe: it needs resolution, "
                                           "which the recipe does not supply; generators that fit: resnet, "),
    ("recipe=cyclegan data.dataset=unpaired", "model.generator = 'dcgan' does not fit this recipe: it needs resolution"),
    ("model.discriminator=patchgan", "model.discriminator = 'patchgan' does not fit this recipe: it needs in_channels, "
                                     "which the recipe does not supply; the recipe supplies resolution, which it does "
                                     "not take; discriminators that fit: dcgan"),
])
def test_a_network_made_for_another_recipe_is_named_with_those_that_fit(assignment, expected):
    config = load_config(DEMO, [*QUICK, *assignment.split()])
    with pytest.raises(ConfigError, match=re.escape(expected)):
        build_recipe(config)


@pytest.mark.parametrize("config, assignment, expected", [
    (REPO / "experiments" / "cyclegan_photo2manga128.toml", "model.discriminator=dcgan",
     "model.discriminator = 'dcgan' does not fit this recipe: it needs resolution"),
    (REPO / "experiments" / "pix2pix_facades.toml", "model.generator=srresnet",
     "model.generator = 'srresnet' does not fit this recipe: it needs scale"),
    (DEMO, "model.generator=unet", "model.generator = 'unet' does not fit this recipe"),
])
def test_a_network_swapped_in_is_refused_as_a_misfit_before_its_arguments(config, assignment, expected):
    # The config's arguments are the old network's: "unknown key 'model.discriminator_args.n_layers' for
    # discriminator 'dcgan'" came first, and once fixed, the network's misfit.
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_config(config, [assignment])
    with pytest.raises(ConfigError, match=re.escape("unknown key 'model.generator_args.nrom' for generator "
                                                    "'unet_256' (did you mean 'norm'?)")):  # (a typo is still one)
        load_config(REPO / "experiments" / "pix2pix_facades.toml", ["model.generator_args.nrom=batch"])


def test_a_patchgan_too_deep_for_the_crops_is_refused_with_the_deepest_that_fits():
    sets = ["data.root=/work/shared/data/sr/T91", "data.val_root=/work/shared/data/sr/Set5"]
    config = load_config(REPO / "experiments" / "sr_pix2pix_x4.toml", [*sets, "model.discriminator_args.n_layers=30"])
    with pytest.raises(ConfigError, match=re.escape("model.discriminator_args.n_layers = 30 is too deep for "
                                                    "data.resolution = 64: each layer halves the image, and n layers "
                                                    "need at least 3 x 2^n px; the most that fits is 4")):
        build_recipe(config)
    # (the zoo's pix2pix generators refuse 4 px crops first: the ResNet's smallest is 8)
    from gan.nets import NetworkSpec
    from gan.recipes.image_to_image import check_discriminator_depth

    patchgan = NetworkSpec("discriminator", "patchgan", {"in_channels": 6, "n_layers": 3})
    with pytest.raises(ConfigError, match=re.escape("none fits: a PatchGAN needs data.resolution >= 6")):
        check_discriminator_depth(patchgan, 4)


@pytest.mark.parametrize("n_layers, size", [(1, 6), (2, 12), (3, 24), (4, 48), (4, 95)])
def test_the_deepest_patchgan_that_fits_reads_its_crops(n_layers, size):
    """The bound the refusal names is the network's own: that depth runs at that size, one deeper does not."""
    import torch

    from gan.nets.patchgan import PatchDiscriminator, deepest_for

    assert deepest_for(size) == n_layers
    PatchDiscriminator(6, 2, n_layers, norm="none")(torch.zeros(1, 6, size, size))
    with pytest.raises(ValueError, match=rf"a PatchGAN of n_layers = {n_layers + 1} reads images of at least"):
        PatchDiscriminator(6, 2, n_layers + 1, norm="none")(torch.zeros(1, 6, size, size))


# ----------------------------------------------------------------------------- torchrun's environment (R5)

TORCHRUN = {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}


@pytest.mark.parametrize("changes, expected", [
    ({"RANK": None}, "WORLD_SIZE = 2 in the environment, but RANK is not set: torchrun sets both"),
    ({"MASTER_ADDR": None}, "but MASTER_ADDR is not set"),
    ({"WORLD_SIZE": "0"}, "WORLD_SIZE = '0' in the environment: expected the number of processes, >= 1"),
    ({"WORLD_SIZE": "-1"}, "WORLD_SIZE = '-1' in the environment: expected the number of processes, >= 1"),
    ({"WORLD_SIZE": "abc"}, "WORLD_SIZE = 'abc' in the environment: expected the number of processes, >= 1"),
    ({"RANK": "2"}, "RANK = '2' in the environment: expected this process's rank, 0 to WORLD_SIZE - 1 = 1"),
    ({"RANK": "x"}, "RANK = 'x' in the environment"),
    ({"LOCAL_RANK": "-1"}, "LOCAL_RANK = '-1' in the environment"),
    ({"MASTER_PORT": "http"}, "MASTER_PORT = 'http' in the environment: expected a TCP port, 1 to 65535"),
])
def test_torchruns_environment_is_checked_naming_the_variable(monkeypatch, changes, expected):
    from gan.core.distributed import from_environment

    for name, value in {**TORCHRUN, **changes}.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=re.escape(expected)):
        from_environment()


def test_torchruns_environment_describes_the_group(monkeypatch):
    from gan.core.distributed import SINGLE_PROCESS, ProcessGroup, from_environment

    for name, value in TORCHRUN.items():
        monkeypatch.setenv(name, value)
    assert from_environment() == ProcessGroup(1, 2, 1)
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "whatever")  # one process: the rest is not read
    assert from_environment() is SINGLE_PROCESS


def test_gan_train_reports_a_bad_torchrun_environment_as_one_line(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from gan.commands.main import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK", raising=False)
    result = CliRunner().invoke(main, ["train", str(DEMO), "--set", "train.steps=1", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "error: WORLD_SIZE = 2 in the environment, but RANK is not set" in result.output


# ----------------------------------------------------------------------------- gan bench (R6)


def bench_cli(*args: str):
    from click.testing import CliRunner

    from gan.commands.main import main

    return CliRunner().invoke(main, ["bench", "--device", "cpu", "--model", "dcgan64", *args])


@pytest.mark.parametrize("name, text, expected", [
    ("baseline.txt", "MODELS = {}\n", "is not a Python file (.py)"),
    ("broken.py", "import a_module_that_is_not_there\n", "cannot be imported: ModuleNotFoundError: No module named "
                                                          "'a_module_that_is_not_there'"),
    ("syntax.py", "def (\n", "cannot be imported: SyntaxError"),
    ("empty.py", "x = 1\n", "defines no MODELS dict"),
    ("partial.py", "MODELS = {'dcgan128': (64, print)}\n", "has no MODELS entry for dcgan64 (it has dcgan128)"),
    ("odd.py", "MODELS = {'dcgan64': 64}\n", "MODELS['dcgan64'] is not a (batch size, build function) pair"),
])
def test_a_baseline_bench_cannot_use_is_one_line_naming_the_file(tmp_path, name, text, expected):
    path = tmp_path / name
    path.write_text(text)
    result = bench_cli("--baseline", str(path))
    assert result.exit_code == 2, result.output
    assert f"error: --baseline '{path}'" in result.output and expected in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("option, value", [("--data-workers", "-1"), ("--rounds", "0"), ("--iters", "-1"),
                                           ("--warmup", "-2"), ("--threads", "0")])
def test_bench_numbers_out_of_range_are_refused_by_option(option, value):
    result = bench_cli(option, value)
    assert result.exit_code == 2 and f"Invalid value for '{option}': {value} is not in the range" in result.output


# ----------------------------------------------------------------------------- --tile of gan eval and translate (R7)


@pytest.fixture(scope="module")
def pix2pix_run(tmp_path_factory):
    """A two-step pix2pix run on tiny paired images: (run directory, data folder)."""
    from click.testing import CliRunner
    from conftest import TINY_PIX2PIX, write_recipe_data

    from gan.commands.main import main

    data = write_recipe_data(tmp_path_factory.mktemp("data"))
    out = tmp_path_factory.mktemp("runs")
    sets = [word for item in [*TINY_PIX2PIX, f"data.root={data['paired']}"] for word in ("--set", item)]
    result = CliRunner().invoke(main, ["train", str(REPO / "experiments" / "pix2pix_facades.toml"), *sets,
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    return next(out.iterdir()), data["paired"]


@pytest.mark.parametrize("tile, expected", [
    ("-5", "--tile must be 0 (whole images) or a positive number of pixels, got -5"),
    ("3", "--tile (3) must be at least 65: tiles overlap by 32 px, which must be less than half a tile"),
])
def test_gan_eval_names_only_the_tile_option_it_has(pix2pix_run, tile, expected):
    from click.testing import CliRunner

    from gan.commands.main import main

    run_dir, data = pix2pix_run
    result = CliRunner().invoke(main, ["eval", str(run_dir), "--data", str(data), "--tile", tile])
    assert result.exit_code == 2 and expected in result.output, result.output
    assert "--overlap" not in result.output


def test_an_empty_split_is_refused_rather_than_scoring_train_and_val_together(pix2pix_run):
    from click.testing import CliRunner

    from gan.commands.main import main

    run_dir, data = pix2pix_run
    result = CliRunner().invoke(main, ["eval", str(run_dir), "--data", str(data), "--split", ""])
    assert result.exit_code == 2 and "--split is empty: name a split subfolder" in result.output, result.output
    # the splits named are those there are
    assert f"('{data}' has train, val), or all for every pair" in " ".join(result.output.split())
    other = CliRunner().invoke(main, ["eval", str(run_dir), "--data", str(data), "--split", "test"])
    assert other.exit_code == 2 and f"does not exist ('{data}' has train, val; --split all" in \
        " ".join(other.output.split()), other.output


def test_a_missing_validation_split_is_blamed_on_data_val_split(tmp_path):
    from conftest import tiny_recipe_config, write_recipe_data

    from gan.data import build_dataset

    data = write_recipe_data(tmp_path)
    config = tiny_recipe_config("pix2pix", data, "data.val_split=nosuch").data
    with pytest.raises(FileNotFoundError, match=r"paired/nosuch' does not exist .*it is set by data.root with "
                                                r"data.val_split \(--set data.root"):
        build_dataset(config, train=False)


def test_gan_translate_names_its_overlap_and_tile(pix2pix_run, tmp_path):
    from click.testing import CliRunner

    from gan.commands.main import main

    run_dir, data = pix2pix_run
    common = ["translate", str(run_dir), str(data / "val"), str(tmp_path / "out")]
    too_wide = CliRunner().invoke(main, [*common, "--tile", "16", "--overlap", "8"])
    assert too_wide.exit_code == 2 and ("--tile (16) must be more than twice --overlap (8): give --tile 17 or more, "
                                        "or --overlap 7 or less") in too_wide.output
    # a tile too small for the default overlap named --tile alone, though --overlap is the other way out
    small = CliRunner().invoke(main, [*common, "--tile", "40"])
    assert small.exit_code == 2 and ("--tile (40) must be more than twice --overlap (32, its default): give --tile "
                                     "65 or more, or --overlap 19 or less") in small.output, small.output
    no_tile = CliRunner().invoke(main, [*common, "--overlap", "-5"])  # images go whole: still a bad value
    assert no_tile.exit_code == 2 and "--overlap must be at least 0, got -5" in no_tile.output
    with pytest.warns(UserWarning, match="--overlap 8 changes nothing without --tile"):
        unused = CliRunner().invoke(main, [*common[:3], str(tmp_path / "whole"), "--overlap", "8", "--whole-input"])
    assert unused.exit_code == 0, unused.output
    negative = CliRunner().invoke(main, [*common, "--tile", "-1"])
    assert negative.exit_code == 2 and "--tile must be 0 (whole images) or a positive number" in negative.output


# ----------------------------------------------------------------------------- gan compare (R8)


def logged_run(folder: Path, name: str, seed: int, swd: list[float], steps: int = 300) -> Path:
    """A run directory whose config plans `steps` steps and whose events log swd/mean at 100, 200, ..."""
    from torch.utils.tensorboard import SummaryWriter

    run = folder / name
    run.mkdir(parents=True)
    (run / "config.toml").write_text(f'recipe = "dcgan"\n\n[train]\nseed = {seed}\nsteps = {steps}\n')
    writer = SummaryWriter(str(run))
    for index, value in enumerate(swd):
        writer.add_scalar("metrics/swd/mean", value, 100 * (index + 1))
        writer.add_scalar("loss/d", 1.0, 100 * (index + 1))
    writer.close()
    return run


def test_a_metric_no_run_has_is_one_sentence_with_its_guess(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    from gan.tools.compare import CompareError, compare

    logged_run(tmp_path / "sweep", "00000-seed=0", 0, [3.0, 2.0, 1.0])
    with pytest.raises(CompareError) as error:
        compare([tmp_path / "sweep"], "swd/maen", tmp_path / "out")
    assert str(error.value) == ("no run has the scalar 'swd/maen' (did you mean 'swd/mean'?); the runs have: loss/d, "
                                "swd/mean")
    with pytest.raises(CompareError, match=r"no run has the scalar 'swd' \(did you mean 'swd/mean'\?\)"):
        compare([tmp_path / "sweep"], "swd", tmp_path / "out")  # a part of the name, too short for difflib
    scales = logged_run(tmp_path / "scales", "00000-seed=0", 0, [3.0])
    writer = SummaryWriter(str(scales))
    writer.add_scalar("metrics/swd/16px", 1.0, 100)  # a scale's swd, sorted before the mean
    writer.close()
    with pytest.raises(CompareError, match=r"no run has the scalar 'swd' \(did you mean 'swd/mean'\?\)"):
        compare([tmp_path / "scales"], "swd", tmp_path / "out")


def test_runs_still_short_of_their_steps_are_marked_in_the_table(tmp_path):
    import csv

    from gan.tools.compare import compare

    sweep = tmp_path / "sweep"
    logged_run(sweep, "00000-seed=0", 0, [3.0, 2.0, 1.0])  # steps 100, 200, 300 of 300: finished
    logged_run(sweep, "00001-seed=1", 1, [3.0, 2.5])  # 200 of 300: still training
    logged_run(sweep, "00002-seed=2", 2, [4.0], steps=400)  # another group: 100 of 400
    table, summaries = compare([sweep], None, tmp_path / "out")
    assert "(1 of 2 runs unfinished: steps 200 of 300)" in table
    assert "4 (one seed) (step 100 of 400)" in table
    rows = list(csv.DictReader((tmp_path / "out" / "compare.csv").open()))
    assert [row["unfinished"] for row in rows] == ["1 of 2 runs unfinished: steps 200 of 300", "step 100 of 400"]
    finished = compare([sweep / "00000-seed=0"], None, tmp_path / "one")[0]
    assert "unfinished" not in finished and "of 300)" not in finished


def test_a_loss_compared_on_is_not_shown_a_second_time(tmp_path):
    import csv

    from gan.tools.compare import compare

    logged_run(tmp_path / "sweep", "00000-seed=0", 0, [3.0, 2.0])
    table, _ = compare([tmp_path / "sweep"], "loss/d", tmp_path / "out")
    header = table.splitlines()[0]
    assert header.count("loss/d") == 2 and "best loss/d" in header and "final loss/d" in header, header
    assert "final loss/g" in header
    columns = next(csv.reader((tmp_path / "out" / "compare.csv").open()))
    assert "final_loss_d" not in columns and "final_loss_g" in columns, columns


# ----------------------------------------------------------------------------- weights files


def test_vgg_weights_that_are_not_vgg19s_are_one_line_saying_what_they_are(tmp_path):
    import torch
    import torchvision

    from gan.nets.vgg import VGGFeatures

    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "resnet18.pth")
    torch.save({"state_dict": random_vgg_state(features_only=True)}, tmp_path / "nested.pth")
    nan = random_vgg_state(features_only=True)
    nan["features.0.bias"] = nan["features.0.bias"].clone()
    nan["features.0.bias"][0] = float("nan")
    torch.save(nan, tmp_path / "nan.pth")
    # integer weights loaded as truncated floats (the first convolution all zeros) without a word; a gan checkpoint
    # was said to hold weights nested under 'config'; an empty file was "not a torch file"
    integer = random_vgg_state(features_only=True)
    integer["features.0.weight"] = integer["features.0.weight"].to(torch.int64)
    torch.save(integer, tmp_path / "integer.pth")
    torch.save({"format": "gan.checkpoint/1", "config": {"recipe": "edsr"}, "networks": {}}, tmp_path / "run.pt")
    (tmp_path / "empty.pth").write_bytes(b"")
    for file, expected in (("resnet18.pth", "is it another network's?"), ("nested.pth", "nested under 'state_dict'"),
                           ("nan.pth", "non-finite (NaN or inf) weights (features.0.bias)"), ("", "is a folder"),
                           ("integer.pth", "parameter 'features.0.weight' is torch.int64 in the file and torch.float32"),
                           ("run.pt", "is a checkpoint written by `gan train`"),
                           ("empty.pth", "it is empty (0 bytes)")):
        with pytest.raises(ValueError, match=re.escape(expected)) as caught:
            VGGFeatures("relu2_2", "vgg19", str(tmp_path / file))
        assert "\n" not in str(caught.value) and len(str(caught.value)) < 600


def test_vgg_weights_of_the_other_vgg_or_saved_from_dataparallel_say_so(tmp_path):
    """A VGG16 file where loss.vgg_arch is vgg19 (or the reverse), or one saved from DataParallel (every key
    prefixed "module."), was asked "is it another network's?", which sent the user looking for another file."""
    import torch

    from gan.nets.vgg import VGGFeatures

    vgg19 = random_vgg_state(features_only=True)
    torch.save(random_vgg_state("vgg16", features_only=True), tmp_path / "vgg16.pth")
    torch.save(vgg19, tmp_path / "vgg19.pth")
    torch.save({f"module.{key}": value for key, value in vgg19.items()}, tmp_path / "parallel.pth")
    for file, arch, expected in (("vgg16.pth", "vgg19", "; this is VGG16's: set loss.vgg_arch = \"vgg16\""),
                                 ("vgg19.pth", "vgg16", "; this is VGG19's: set loss.vgg_arch = \"vgg19\""),
                                 ("parallel.pth", "vgg19", "; every key starts with 'module.' (DataParallel's): save the "
                                  "weights without it ({k.removeprefix('module.'): v for k, v in state.items()})")):
        with pytest.raises(ValueError, match=re.escape(expected) + "$") as caught:
            VGGFeatures("relu2_2", arch, str(tmp_path / file))
        assert f"'{tmp_path / file}' is not a torchvision {arch} state dict (loss.vgg_weights)" in str(caught.value)


def test_a_training_checkpoint_given_as_vgg_weights_is_named_as_one(tiny_demo_run):
    """A gan checkpoint as loss.vgg_weights was said to have "its weights may be nested under 'rng': save
    that entry alone" (its random generators' states, no VGG weights at all)."""
    from gan.core.checkpoint import list_checkpoints
    from gan.nets.vgg import VGGFeatures

    checkpoint = list_checkpoints(tiny_demo_run)[-1]
    with pytest.raises(ValueError) as caught:
        VGGFeatures("relu2_2", "vgg19", str(checkpoint))
    assert "is a checkpoint written by `gan train` (checkpoint-*.pt, best.pt), not torchvision's vgg19 weights " \
           "(loss.vgg_weights): give the ImageNet weights file vgg19-dcbb9e9d.pth" in str(caught.value), caught.value
    assert "nested" not in str(caught.value)


def test_an_inception_weights_folder_is_named_as_a_folder_in_one_error_line(tmp_path):
    from click.testing import CliRunner

    from gan.commands.main import main

    result = CliRunner().invoke(main, ["train", str(REPO / "experiments" / "dcgan_demo.toml"),
                                       *[arg for item in (*TINY, 'metrics.names=["fid", "swd"]', "metrics.every=2",
                                                          f"metrics.inception_weights={tmp_path}")
                                         for arg in ("--set", item)], "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2 and "is a folder; it names the file itself" in result.output, result.output


def test_a_data_root_bench_cannot_read_is_refused_before_anything_is_timed(tmp_path):
    from click.testing import CliRunner

    from gan.commands.main import main

    flat, few = tmp_path / "flat", tmp_path / "few" / "class"
    for folder, count in ((flat, 2), (few, 3)):
        folder.mkdir(parents=True)
        for index in range(count):
            Image.new("RGB", (8, 8)).save(folder / f"{index}.png")
    for root, expected in ((flat, "has no subfolders"), (few.parent, "holds 3 images; the data-path benchmark needs at "
                                                                       "least 64")):
        result = CliRunner().invoke(main, ["bench", "--model", "dcgan64", "--device", "cpu", "--rounds", "1",
                                           "--iters", "1", "--warmup", "0", "--data-root", str(root)])
        assert result.exit_code == 2 and expected in result.output and "img/s" not in result.output, result.output


def test_a_path_key_starting_with_a_tilde_is_the_home_folders(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    config = load_config(DEMO, ["data.cache_dir=~/cache", "metrics.cache_dir=~", "data.root=not~home"])
    assert config.data.cache_dir == str(tmp_path / "cache") and config.metrics.cache_dir == str(tmp_path)
    assert config.data.root == "not~home"


@pytest.mark.parametrize("recipe, overrides, expected", [
    ("cyclegan", ["data.dataset=paired"], "recipe 'cyclegan' trains on data.dataset 'unpaired', not 'paired'"),
    ("dcgan", ["data.dataset=paired"], "recipe 'dcgan' trains on data.dataset 'synthetic' or 'folder' or 'celeba'"),
    ("dcgan", ["data.dataset=sr_pairs"], "not 'sr_pairs'"),
    ("pix2pix", ["data.dataset=unpaired"], "recipe 'pix2pix' trains on data.dataset 'paired' or 'sr_pairs'"),
    ("pix2pix", ["data.dataset=sr_pairs", "data.upsample_input=false"], "needs data.upsample_input = true"),
    ("pix2pix", ["loss.adversarial=wgan-gp"], "applies no gradient penalty"),
    ("cyclegan", ["loss.adversarial=wgan-gp"], "applies no gradient penalty"),
])
def test_a_recipe_refuses_data_and_losses_it_cannot_train_on_before_step_1(tmp_path, recipe, overrides, expected):
    """Each was a traceback deep in step 1 (a batch without the recipe's keys, a U-Net fed LR
    images) or, for wgan-gp, a critic trained without its penalty."""
    from conftest import tiny_recipe_config, write_recipe_data

    data = write_recipe_data(tmp_path / "data")
    with pytest.raises(ConfigError, match=re.escape(expected)):
        build_recipe(tiny_recipe_config(recipe, data, *overrides))


@pytest.mark.parametrize("recipe, key, value", [("pix2pix", "train.ema_decay", "0.9"),
                                                ("dcgan", "loss.adversarial_weight", "0.5"),
                                                ("cyclegan", "loss.adversarial_weight", "0.5")])
def test_keys_a_recipe_ignores_are_named_and_their_off_values_are_not(tmp_path, recipe, key, value):
    from conftest import tiny_recipe_config, write_recipe_data

    data = write_recipe_data(tmp_path / "data")
    with pytest.warns(UserWarning, match=f"recipe '{recipe}' ignores {re.escape(key)} = {value}"):
        tiny_recipe_config(recipe, data, f"{key}={value}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # the shipped configs spell out ema_decay = 0 and adversarial_weight = 1
        tiny_recipe_config(recipe, data)
    assert not [str(w.message) for w in caught if "ignores" in str(w.message)]


def test_a_key_the_recipe_ignores_is_not_also_said_to_be_read_only_under_another(tmp_path):
    # pix2pix with train.ema_bn_batches = 4 said "ignores ... (dcgan only)" and then "changes nothing: it is read
    # only when train.ema_decay is above 0", which set as well would still change nothing
    from conftest import tiny_recipe_config, write_recipe_data

    data = write_recipe_data(tmp_path / "data")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tiny_recipe_config("pix2pix", data, "train.ema_bn_batches=4")
    assert [str(w.message) for w in caught if "ema_bn_batches" in str(w.message)] == [
        "recipe 'pix2pix' ignores train.ema_bn_batches = 4 (dcgan only)"]
    with pytest.warns(UserWarning, match=r"train.ema_bn_batches = 4 changes nothing: it is read only when "
                                         r"train.ema_decay is above 0"):  # (where the recipe reads it: said)
        tiny_recipe_config("dcgan", data, "train.ema_bn_batches=4", "train.ema_decay=0")


def test_a_config_path_that_is_no_regular_file_is_named_as_such():
    """`gan train /dev/null` was told the file does not exist."""
    with pytest.raises(ConfigError, match=r"config file '/dev/null' is not a regular file \(a device, a pipe or a "
                                          r"folder\)"):
        load_config(Path("/dev/null"))


def test_a_config_file_of_gigabytes_is_refused_by_its_size_before_it_is_read(tmp_path):
    """Read whole before TOML judged it: `gan train huge.toml` (8 GB) took 17.5 GB of memory, and so
    did `gan sweep`'s digest of the file."""
    from gan.core.config import MAX_CONFIG_BYTES
    from gan.tools.sweep import config_settings_digest

    huge = tmp_path / "huge.toml"
    with open(huge, "wb") as handle:
        handle.truncate(MAX_CONFIG_BYTES + 1)  # (sparse: no disk used)
    for read in (load_config, config_settings_digest):
        with pytest.raises(ConfigError, match=r"config file '.*huge.toml' is 16.0 MiB, not a config \(a few KB"):
            read(huge)


def test_inception_weights_of_gigabytes_or_no_regular_file_are_refused_before_they_are_read(tmp_path):
    """A 20 GB file given as the weights was read whole (21 GB of memory, then killed); /dev/zero was
    "not found"."""
    from gan.metrics.inception import MAX_WEIGHTS_BYTES, InceptionWeightsDamaged, read_inception_weights

    huge = tmp_path / "huge.pth"
    with open(huge, "wb") as handle:
        handle.truncate(MAX_WEIGHTS_BYTES + 1)
    with pytest.raises(InceptionWeightsDamaged, match=r"'.*huge.pth' is 0.5 GiB, not torch-fidelity's Inception-v3 "):
        read_inception_weights(huge)
    with pytest.raises(ValueError, match=r"'/dev/zero' is not a regular file \(a device or a pipe\)"):
        read_inception_weights("/dev/zero")


def test_vgg_weights_that_are_a_pipe_or_a_device_are_named_so_not_missing(tmp_path):
    """loss.vgg_weights naming a FIFO or /dev/urandom said "vgg19 weights not found at '/tmp/fifo'. Put
    ... at '~/.cache/torch/hub/...'": the path is there, and is no regular file (as the Inception
    weights' check says, which this one now shares)."""
    import os

    from gan.nets.vgg import resolve_weights

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in (str(fifo), "/dev/urandom"):
        with pytest.raises(ValueError, match=rf"^loss.vgg_weights '{re.escape(path)}' is not a regular file \(a device "
                                             r"or a pipe\); it names the file itself \(vgg19-dcbb9e9d.pth\)$"):
            resolve_weights("vgg19", path)


def test_a_value_that_is_text_only_by_its_quotes_gets_no_false_hint():
    with pytest.raises(ConfigError) as error:
        load_config(None, ['train.steps="many"'])
    assert str(error.value) == "train.steps: expected int, got 'many'"
    with pytest.raises(ConfigError) as error:  # a number is no bool
        load_config(None, ['data.hflip="1"'])
    assert str(error.value) == "data.hflip: expected bool, got '1'"


def test_a_celeba_crop_wider_than_the_faces_is_refused():
    """data.crop = 300 trained exactly as 178 would: cut to the width without a word."""
    with pytest.raises(ConfigError, match=r"data.crop = 300 is wider than CelebA's aligned faces \(178 px"):
        tiny_config("data.dataset=celeba", "data.root=x", "data.crop=300")
    assert tiny_config("data.dataset=celeba", "data.root=x", "data.crop=178").data.crop == 178
    # Another data set reads no crop: warned of as changing nothing, not refused as too wide for CelebA
    with pytest.warns(UserWarning, match="data.crop = 300 changes nothing: it is read only when data.dataset is 'celeba'"):
        assert tiny_config("data.dataset=folder", "data.root=x", "data.crop=300").data.crop == 300


def test_a_diffaugment_list_recorded_in_another_order_is_no_changed_setting_on_resume():
    """A run from before the list was recorded as it trains resumed as if its config.toml was edited."""
    from gan.training.state import changed_keys

    assert changed_keys({"loss": {"diffaugment": "cutout,color"}}, {"loss": {"diffaugment": "color,cutout"}}) == []
    assert changed_keys({"loss": {"diffaugment": "cutout"}}, {"loss": {"diffaugment": "color,cutout"}}) == [
        "loss.diffaugment 'cutout' -> 'color,cutout'"]


def test_a_metric_that_ends_before_the_runs_other_scalars_marks_it_unfinished(tmp_path):
    # An event file cut short mid-way (TensorBoard's reader stops there without a word) kept the
    # losses of the last step and lost its SWD: the group's "final" mixed step 200 and step 300.
    from torch.utils.tensorboard import SummaryWriter

    from gan.tools.compare import CompareWarning, compare

    sweep = tmp_path / "sweep"
    logged_run(sweep, "00000-seed=0", 0, [3.0, 2.0, 1.0])
    cut = logged_run(sweep, "00001-seed=1", 1, [3.0, 2.5])  # swd at 100, 200
    for run in sweep.iterdir():  # (scored every 100 steps: so at the last step too)
        (run / "config.toml").write_text((run / "config.toml").read_text() + "\n[metrics]\nevery = 100\n")
    writer = SummaryWriter(str(cut))
    writer.add_scalar("loss/d", 1.0, 300)  # ... and its losses at the last step
    writer.close()
    with pytest.warns(CompareWarning, match=r"00001-seed=1' logged swd/mean up to step 200, its other scalars up to "
                                            "its last step 300: its event file may be cut short"):
        table, _ = compare([sweep], None, tmp_path / "out")
    assert "(1 of 2 runs unfinished: steps 200 of 300)" in table


def test_a_sets_own_value_names_no_file():
    with pytest.raises(ConfigError) as error:  # (a --set's own value: no file to name)
        load_config(DEMO, ["train.steps=-1"])
    assert str(error.value) == "train.steps must be >= 1, got -1"
    with pytest.raises(ConfigError) as error:
        load_config(DEMO, ["loss.adversarial=hinje"])
    assert str(error.value).startswith("unknown loss.adversarial 'hinje'")


def test_a_config_that_cannot_run_is_refused_without_the_warnings_about_its_settings():
    # The EMA warm-up's long warning came first and buried the one line that said what was wrong.
    settings = ["train.steps=10", "train.ema_decay=0.995"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ConfigError, match="unknown loss.adversarial 'hinje'"):
            load_config(DEMO, [*settings, "loss.adversarial=hinje"])
    assert not caught, [str(warning.message) for warning in caught]
    with pytest.warns(UserWarning, match="train.ema_decay = 0.995 .* is never reached"):
        assert load_config(DEMO, settings).train.ema_decay == 0.995
    with warnings.catch_warnings(record=True) as caught:  # (a sweep reads a config per run: said once, as before)
        warnings.simplefilter("default")
        for _ in range(3):
            load_config(DEMO, settings)
    assert len([warning for warning in caught if "is never reached" in str(warning.message)]) == 1


def test_a_resume_with_nothing_to_train_gives_no_warning_about_the_length_it_will_not_train(tiny_demo_run, tmp_path):
    # --resume RUN --set train.steps=3 on a run at step 4 warned of the EMA warm-up of "this run's 3", then
    # said "nothing to do"
    import shutil

    from conftest import invoke

    run = Path(shutil.copytree(tiny_demo_run, tmp_path / "run"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nothing = invoke("train", "--resume", run, "--set", "train.steps=3")
    assert nothing.exit_code == 0 and "nothing to do: the run is at step 4" in nothing.output, nothing.output
    assert not [str(warning.message) for warning in caught if "is never reached" in str(warning.message)]
    with pytest.warns(UserWarning, match=r"train.ema_decay = 0.995 .* is never reached: .* ends this run's 5"):
        assert invoke("train", "--resume", run, "--set", "train.steps=5").exit_code == 0


def test_metric_names_are_kept_as_they_are_computed_and_a_network_argument_is_named_in_full():
    # ["SWD", "swd"] was computed once as swd and written to config.toml as given; a bad norm was
    # "model.generator_args: unknown norm 'foo'", without the key's last part.
    assert load_config(DEMO, ["metrics.names=['SWD', 'swd']"]).metrics.names == ["swd"]
    config = load_config(REPO / "experiments" / "pix2pix_facades.toml", ["model.generator_args.norm=foo"])
    with pytest.raises(ConfigError, match=re.escape("model.generator_args.norm: unknown norm 'foo'; valid: batch")):
        build_recipe(config)


def test_a_run_whose_metrics_a_resume_switched_off_is_not_called_cut_short(tmp_path):
    # `--resume --set metrics.every=0` (which a metrics failure offers) left swd at step 200 of 300:
    # it was warned of as an event file cut short, and the finished run marked unfinished.
    from torch.utils.tensorboard import SummaryWriter

    from gan.tools.compare import compare

    run = logged_run(tmp_path / "sweep", "00000-seed=0", 0, [3.0, 2.5])
    (run / "config.toml").write_text('recipe = "dcgan"\n\n[train]\nseed = 0\nsteps = 300\n\n[metrics]\nevery = 0\n')
    writer = SummaryWriter(str(run))
    writer.add_scalar("loss/d", 1.0, 300)
    writer.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table, _ = compare([tmp_path / "sweep"], "swd/mean", tmp_path / "out")
    assert "unfinished" not in table and "of 300)" not in table, table


@pytest.mark.parametrize("recipe, channels", [("pix2pix", 6), ("cyclegan", 3)])
def test_the_srgan_discriminator_that_image_to_image_recipes_list_as_fitting_is_built_with_their_channels(
        tmp_path, recipe, channels):
    """Listed among the discriminators that fit, it was refused with "'model.discriminator_args.in_channels'
    is set by the recipe from another config key; remove it", though no one had set it: resolving
    the config filled its own default (3), which then read as the user's."""
    from conftest import tiny_recipe_config, write_recipe_data

    from gan.core.config import config_to_dict
    from gan.recipes import RECIPES
    from gan.training.resolve import resolve_names

    config = tiny_recipe_config(recipe, write_recipe_data(tmp_path))  # (its PatchGAN's arguments replaced:)
    config.model.discriminator, config.model.discriminator_args = "srgan", {"channels": 4}
    resolve_names(config)
    specs = RECIPES.get(recipe).check(config)
    assert {spec.kwargs["in_channels"] for name, spec in specs.items() if name.startswith("discriminator")} \
        == {channels}
    assert "in_channels" not in config_to_dict(config)["model"]["discriminator_args"]  # (config.toml: the recipe's)
    config.model.discriminator_args = {"channels": 4, "in_channels": channels}
    with pytest.raises(ConfigError, match=re.escape("'model.discriminator_args.in_channels' is set by the recipe")):
        resolve_names(config)
    config.model.discriminator_args = {"channels": 4, "n_layers": 3}  # (the list of valid keys leaves it out)
    with pytest.raises(ConfigError, match=re.escape("valid keys: channels, spectral_norm")):
        resolve_names(config)


@pytest.mark.parametrize("sets, shown", [(["train.d_lr=1e39"], "train.d_lr = 1e+39 with train.beta1 = 0.5"),
                                         (["train.g_lr=1e38", "train.beta1=0.9"], "train.g_lr = 1e+38 with "
                                                                                  "train.beta1 = 0.9")])
def test_a_learning_rate_whose_first_adam_step_overflows_float32_is_refused(sets, shown):
    """It passed the range check (any finite rate >= 0) and stopped at step 1 with a traceback in
    torch's Adam kernel ("value cannot be converted to type float without overflow")."""
    with pytest.raises(ConfigError, match=re.escape(f"{shown} makes Adam's first step, lr / (1 - beta1) = ")):
        load_config(None, sets)
    load_config(None, ["train.d_lr=1e30"])  # (absurd, yet a step that runs: NaN stops it, as any divergence)


def test_a_set_value_with_a_line_break_and_more_toml_is_refused_not_cut():
    """`--set "train.steps=$(cat file)"` of a two-line file trained train.steps = 2, and the key on the
    second line (train.batch_size = 4) was dropped without a word."""
    with pytest.raises(ConfigError, match=re.escape("--set train.steps: the value '2\\ntrain.batch_size=4' holds a "
                                                    "line break followed by more TOML")):
        load_config(None, ["train.steps=2\ntrain.batch_size=4"])
    assert load_config(None, ["train.lr_milestones=[2,\n3]"]).train.lr_milestones == [2, 3]  # (one value still)


def test_a_set_value_with_a_line_break_is_not_called_an_integer_too_long():
    """The line-break refusal (a ConfigError, so a ValueError) was raised inside the `try` whose
    `except ValueError` is for Python's 4,300-digit limit: it came out wrapped in "an integer too long
    to read (...); a 64-bit integer has at most 19 digits"."""
    with pytest.raises(ConfigError) as caught:
        load_config(None, ["train.steps=5000\nbatch_size = 32"])
    assert str(caught.value).startswith("--set train.steps: the value '5000\\nbatch_size = 32' holds a line break")
    assert "integer too long" not in str(caught.value)


@pytest.mark.parametrize("value, expected", [
    ("$HOME/gan-cache", "data.cache_dir = '$HOME/gan-cache': gan expands no environment variables in paths"),
    ("${DATA}/cache", "data.cache_dir = '${DATA}/cache': gan expands no environment variables"),
    ("~nosuchuser29/cache", "data.cache_dir = '~nosuchuser29/cache': this machine has no user 'nosuchuser29'"),
])
def test_a_path_a_shell_would_expand_but_gan_cannot_is_refused(tmp_path, monkeypatch, value, expected):
    """A TOML file's `cache_dir = "$HOME/gan-cache"` built the cache in a folder literally named `$HOME`
    in the working folder, and `~nosuchuser/` one named `~nosuchuser`, without a word."""
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "c.toml"
    config.write_text(f'[data]\ncache = "mmap"\ncache_dir = "{value}"\n')
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_config(config, [])
    (tmp_path / "$HOME" / "gan-cache").mkdir(parents=True)  # (a folder of that very name: taken as written)
    if value.startswith("$HOME"):
        assert load_config(config, []).data.cache_dir == value


def test_a_run_config_with_a_byte_order_mark_is_read_by_every_command(tmp_path):
    """gan train --resume read a config.toml a Windows editor saved with a BOM; gan compare refused it
    ("Invalid statement (at line 1, column 1)"), and a resume with nothing to do rewrote it as cut short."""
    from conftest import REPO, invoke

    tiny = [arg for item in TINY for arg in ("--set", item)]
    assert invoke("train", REPO / "experiments" / "dcgan_demo.toml", *tiny, "--run-dir", tmp_path / "run").exit_code == 0
    config = tmp_path / "run" / "config.toml"
    config.write_bytes(b"\xef\xbb\xbf# mine\n" + config.read_bytes())
    marked = config.read_bytes()
    compared = invoke("compare", tmp_path / "run", "--out", tmp_path / "cmp")
    assert compared.exit_code == 0, compared.output
    resumed = invoke("train", "--resume", tmp_path / "run")  # (nothing to do: the file left as it is)
    assert resumed.exit_code == 0, resumed.output
    assert config.read_bytes() == marked


def test_a_hand_edited_run_config_without_a_last_line_end_keeps_tomls_place_of_the_error(tmp_path):
    """An invalid line before the last of a file saved without a final line end said "not valid TOML,
    before its last line too", dropping tomllib's line and column."""
    from conftest import REPO, invoke

    tiny = [arg for item in TINY for arg in ("--set", item)]
    assert invoke("train", REPO / "experiments" / "dcgan_demo.toml", *tiny, "--run-dir", tmp_path / "run").exit_code == 0
    config = tmp_path / "run" / "config.toml"
    config.write_text(config.read_text().replace("g_lr = 0.0002", "g_lr == 0.0002").rstrip("\n"))
    resumed = invoke("train", "--resume", tmp_path / "run", "--set", "train.steps=6")
    assert resumed.exit_code == 2 and re.search(r"config.toml: not valid TOML: .*\(at line \d+, column \d+\)",
                                                resumed.output), resumed.output


@pytest.mark.parametrize("text, expected", [
    ('"train.steps" = 5\n', "unknown config key 'train.steps' (a quoted key is one name, dots and all: write "
                            "train.steps = ... unquoted, or steps = ... under [train])"),
    ('[train]\nsteps = 5\nrecipe = "pix2pix"\n', "unknown config key 'train.recipe' (recipe is a top-level key: in a "
                                                 "file, before the first [section] line"),
    # (under its section it was named 'train.train.d_lr', a key no one wrote, with no hint)
    ('[train]\n"train.d_lr" = 1e-4\n', 'unknown config key "train.d_lr" under [train] (a quoted key is one name, dots '
                                       'and all: write d_lr = ... under [train])'),
    ('[train]\n"train.dlr" = 1e-4\n', 'unknown config key "train.dlr" under [train] (did you mean \'d_lr\'?)'),
    ('[train]\n"loss.adversarial" = "hinge"\n', 'unknown config key "loss.adversarial" under [train] (a quoted key is '
                                                'one name, dots and all, and under [train] it is that section\'s: '
                                                'write adversarial = ... under [loss])'),
])
def test_the_two_classic_toml_slips_are_named_as_such(tmp_path, text, expected):
    """They were "unknown config key 'train.steps' (did you mean 'train'?)", though the docs name the key
    so, and "unknown config key 'train.recipe'" without a word of where recipe goes."""
    config = tmp_path / "c.toml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_config(config, [])


def test_a_key_that_contradicts_the_files_own_preset_is_named_as_the_files(tmp_path):
    """The file's preset was applied before the file alone was checked for the error, so the error
    was not the file's: no file name on it."""
    config = tmp_path / "c.toml"
    config.write_text('[loss]\npreset = "hinge"\nlabel_smoothing = 0.1\n')
    with pytest.raises(ConfigError, match=f"^{re.escape(str(config))}: loss.label_smoothing applies to vanilla"):
        load_config(config, [])


def test_a_set_value_keeps_its_own_unicode_spaces():
    """`--set data.root=$'\\u2028sep'` gave 'sep': str.strip removed characters of the value itself."""
    assert load_config(None, ["data.root=imgs\u00a0"]).data.root == "imgs\u00a0"
    assert load_config(None, ["data.root = imgs "]).data.root == "imgs"  # (spaces around the = still go)


@pytest.mark.parametrize("metric, steps", [("perf/first_step_s", [1]), ("health/growth/loss/d", [100, 200])])
def test_a_finished_run_is_not_called_cut_short_by_a_scalar_not_logged_at_every_log(tmp_path, metric, steps):
    """`--metric perf/first_step_s` (logged at each start's first step) marked every finished run
    unfinished ("steps 1, 1, 1 of 20") with a warning of its event file cut short; so did
    health/growth/* (logged at the end of a span of windows) on a run of 330 steps."""
    from torch.utils.tensorboard import SummaryWriter

    from gan.tools.compare import compare

    run = logged_run(tmp_path / "sweep", "00000-seed=0", 0, [3.0, 2.5, 2.0])
    writer = SummaryWriter(str(run))
    for step in steps:
        writer.add_scalar(metric, 0.5, step)
    writer.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table, _ = compare([tmp_path / "sweep"], metric, tmp_path / "out", better="lower")
    assert "unfinished" not in table and "of 300)" not in table, table


def test_a_lower_resolution_with_the_256_px_load_size_is_warned_of():
    """pix2pix_facades.toml with data.resolution = 128 kept data.load_size = 286: crops of 45% of the
    side, trained at 2.2x the scale that validation and gan eval score, unsaid."""
    config = REPO / "experiments" / "pix2pix_facades.toml"
    with pytest.warns(UserWarning, match=r"data.load_size = 286 with data.resolution = 128: each training crop is "
                                         r"45% .* trains at 2.2x the scale it is scored at; the reference's jitter at "
                                         r"this size is data.load_size = 143"):
        load_config(config, ["data.resolution=128", "model.generator=unet_128"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (the reference's own 286 for 256, and 143 for 128)
        for name in ("pix2pix_facades", "pix2pix_facades128", "cyclegan_horse2zebra", "cyclegan_photo2manga128"):
            load_config(REPO / "experiments" / f"{name}.toml", [])
        load_config(config, ["data.resolution=128", "model.generator=unet_128", "data.load_size=143"])


def test_a_new_runs_missing_data_is_said_without_the_settings_warnings_before_it(tmp_path):
    """`--set data.root=` printed the EMA warm-up's warning (of a run that cannot start) above the
    error that stops it, and so did networks that do not fit; a run that starts still shows the warning."""
    celeba = REPO / "experiments" / "dcgan_celeba64.toml"
    for root, error in (("", "data.root is empty"), (tmp_path / "none", f"image folder '{tmp_path / 'none'}' does not exist")):
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            result = invoke("train", celeba, "--set", f"data.root={root}", "--set", "train.steps=10", "--out", tmp_path)
        assert_one_error_line(result, error)
        assert not said, [str(warning.message) for warning in said]
    # Networks that cannot be built for the data: the load_size warning of 32 px crops came first
    (tmp_path / "pairs").mkdir()
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        result = invoke("train", REPO / "experiments" / "pix2pix_facades.toml", "--set", f"data.root={tmp_path / 'pairs'}",
                        "--set", "data.resolution=32", "--out", tmp_path)
    assert_one_error_line(result, "data.resolution (32) must be a multiple of 256 for generator 'unet_256'")
    assert not said, [str(warning.message) for warning in said]
    tiny = [arg for item in TINY for arg in ("--set", item)]
    with pytest.warns(UserWarning, match=r"train.ema_decay = 0.9999 \(an average over about 10,000 steps\) is never"):
        started = invoke("train", DEMO, *tiny, "--set", "train.ema_decay=0.9999", "--out", tmp_path / "runs")
    assert started.exit_code == 0, started.output
