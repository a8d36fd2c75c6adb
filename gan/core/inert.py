"""Settings that change nothing in the run a config describes: a key read only under another
setting, a schedule the run ends before, an EMA decay its warm-up never reaches. Training warns of
them (a user who set one cannot tell from the run), and `gan sweep` refuses grid points that differ
only in them (they would train the same)."""

from __future__ import annotations

import typing
import warnings
from typing import Any, Iterable

from gan.core.config import IMAGE_FOLDER_DATASETS, Config, config_to_dict, flatten_config
from gan.core.typecheck import shown

# Settings that change how a run is carried out or recorded, not what it trains: a resume that changes
# these alone continues the same experiment (a longer train.steps shows in the curve itself), and
# runs apart in them alone are seeds of one experiment. (A key, or a section's prefix ending in ".")
HOW_IT_RUNS = ("train.steps", "train.checkpoint_every", "train.keep_checkpoints", "train.keep_best",
               "train.dist_timeout_s", "train.sync_debug", "train.divergence_bound", "train.compile",
               "train.compile_backend", "train.compile_mode", "train.cuda_graph", "train.channels_last",
               "train.optimizer_kernel", "train.cudnn_benchmark", "data.num_workers", "data.cache", "data.cache_dir",
               "data.cache_verify", "metrics.every", "metrics.cache_dir", "log.")


def how_it_runs(key: str) -> bool:
    """Whether `key` (dotted) is one of HOW_IT_RUNS."""
    return any(key == name or (name.endswith(".") and key.startswith(name)) for name in HOW_IT_RUNS)


# Keys that only some settings read: set away from their default under others, they change nothing,
# which a user who set them cannot tell from the run. key -> (the key that decides, the values of it
# under which the key is read): datasets in gan/data/__init__.py, schedules in gan/recipes/schedules.py.
# (Keys only some recipes read are warned of by `gan.training.resolve`, which knows the recipes.)
READ_ONLY_WITH = {
    "data.crop": ("data.dataset", ("celeba",)),
    "data.split": ("data.dataset", ("celeba", "paired", "unpaired")),
    "data.val_split": ("data.dataset", ("paired", "unpaired")),
    "data.layout": ("data.dataset", ("paired",)),
    "data.direction": ("data.dataset", ("paired",)),
    "data.load_size": ("data.dataset", ("paired", "unpaired")),
    "data.a_root": ("data.dataset", ("unpaired",)),
    "data.b_root": ("data.dataset", ("unpaired",)),
    **{key: ("data.dataset", ("sr_pairs",)) for key in ("data.val_root", "data.scale", "data.upsample_input",
                                                        "data.blur_sigma", "data.noise_std", "data.jpeg_quality")},
    "data.max_images": ("data.dataset", ("celeba", "folder", "paired", "sr_pairs", "unpaired")),
    "data.synthetic_size": ("data.dataset", ("synthetic",)),
    "data.cache": ("data.dataset", IMAGE_FOLDER_DATASETS),  # (decoded images of one folder's files)
    "data.rot90": ("data.dataset", ("sr_pairs",)),
    **{key: ("data.dataset", ("celeba", "folder", "paired", "sr_pairs", "unpaired"))  # files to read
       for key in ("data.root", "data.strict")},
    **{key: ("data.cache", ("mmap", "device")) for key in ("data.cache_dir", "data.cache_verify")},
    **{key: ("train.compile", ("auto", "on")) for key in ("train.compile_backend", "train.compile_mode")},
    "train.lr_decay_steps": ("train.lr_schedule", ("linear_decay",)),
    "train.lr_milestones": ("train.lr_schedule", ("step",)),
    "train.lr_gamma": ("train.lr_schedule", ("step",)),
    "loss.gp_weight": ("loss.adversarial", ("wgan-gp",)),
    **{key: ("loss.content", ("vgg",)) for key in ("loss.vgg_layer", "loss.vgg_arch", "loss.vgg_weights",
                                                    "loss.vgg_feature_scale")},
    **{key: ("loss.augment_p", ("adaptive",)) for key in ("loss.augment_target", "loss.augment_interval",
                                                          "loss.augment_images")},
}

# The data sets READ_ONLY_WITH describes: one registered by a user's own module may read any data key.
OWN_DATASETS = ("celeba", "folder", "synthetic", "paired", "sr_pairs", "unpaired")

# Keys that tune something another key turns on: set while it is off (0), they change nothing.
READ_ONLY_WHEN_ON = {"loss.r1_every": "loss.r1_gamma", "loss.instance_noise_steps": "loss.instance_noise",
                     "train.ema_bn_batches": "train.ema_decay",
                     **{key: "metrics.every" for key in ("metrics.num_samples", "metrics.root", "metrics.cache_dir")}}
# A config file may keep these ready for when metrics.every turns them on: warned of only when --set gives them.
WARNED_WHEN_GIVEN = ("metrics.names", "metrics.num_samples", "metrics.root", "metrics.cache_dir")


# What validation scores translations by: the generative metrics of metrics.names that compare two image sets.
TRANSLATION_METRICS = ("swd", "fid", "kid")


def scores_translations(config: Config) -> bool:
    """Whether the run's validation scores its translations as distributions (those of metrics.names
    among TRANSLATION_METRICS): CycleGAN's, and pix2pix's of A|B pairs (SR outputs differ in size)."""
    return bool(config.log.eval_every) and (config.recipe == "cyclegan" or
                                            (config.recipe == "pix2pix" and config.data.dataset == "paired"))


def warn_about_inert_keys(config: Config, given: set[str], said: Iterable[str] = ()) -> None:
    """One warning for each key set to a value that changes nothing, naming it and why (the keys of
    WARNED_WHEN_GIVEN only when among `given`, those --set gives; none of `said`, warned of already)."""
    quiet = [key for key in WARNED_WHEN_GIVEN if key not in given] + list(said)
    for inert in inert_settings(config):
        if inert.warn and inert.key not in quiet:
            warnings.warn(inert.message, stacklevel=3)


def _steps(count: float) -> str:
    """`count` rounded, with its noun: '1 step', '1,000 steps'."""
    return f"{count:,.0f} step{'' if round(count) == 1 else 's'}"


def inert_keys(config: Config) -> dict[str, str]:
    """key -> a sentence saying why, for each key of `config` set to a value that changes nothing in
    the run it describes (runs that differ only in such keys train the same)."""
    defaults, values = flatten_config(config_to_dict(Config())), flatten_config(config_to_dict(config))
    found = {key: f"{key} = {shown(values[key])} changes nothing: it is read only when {decider} is "
                  f"{' or '.join(map(shown, readers))}, and this config has {decider} = {shown(values[decider])}"
             for key, (decider, readers) in READ_ONLY_WITH.items()
             if values[decider] not in readers and values[key] != defaults[key]
             and (decider != "data.dataset" or values[decider] in OWN_DATASETS)}
    found |= {key: f"{key} = {shown(values[key])} changes nothing: it is read only when {switch} is above 0 (on), and "
                   f"this config has {switch} = 0"
              for key, switch in READ_ONLY_WHEN_ON.items() if values[switch] == 0 and values[key] != defaults[key]}
    names = config.metrics.names
    if not config.metrics.every and names != defaults["metrics.names"]:
        validated = scores_translations(config)
        unread = [name for name in names if name not in TRANSLATION_METRICS] if validated else names
        if unread and validated:
            found["metrics.names"] = (
                f"metrics.names = {shown(names)}: {', '.join(map(shown, unread))} changes nothing: with metrics.every "
                f"= 0, only the validation of translations reads metrics.names, and it scores by "
                f"{', '.join(TRANSLATION_METRICS)}" + ("" if unread != names else
                                                       " (this list leaves it none of them to compute)"))
        elif unread:
            found["metrics.names"] = (
                f"metrics.names = {shown(names)} changes nothing: it is read when metrics.every is above 0 (on), and "
                f"by the validation of pix2pix (A|B pairs) and CycleGAN runs (log.eval_every above 0); this config has "
                f"metrics.every = 0 and recipe {config.recipe}, data.dataset {config.data.dataset}, "
                f"log.eval_every {config.log.eval_every}")
    if config.loss.diffaugment and config.loss.augment_p == 0:
        found["loss.diffaugment"] = (f"loss.diffaugment = {shown(config.loss.diffaugment)} changes nothing: "
                                     "loss.augment_p = 0 applies it to no image")
    return found


def discriminator_steps(config: Config, step: int) -> int:
    """The discriminator steps a run has taken by the end of `step` (adaptive p counts them): none
    before train.adversarial_start, then train.d_steps a step for dcgan, and CycleGAN's two
    discriminators each count."""
    per_step = {"dcgan": config.train.d_steps, "cyclegan": 2}.get(config.recipe, 1)
    return max(0, step - config.train.adversarial_start) * per_step


class InertSetting(typing.NamedTuple):
    """A setting that changes nothing in the run it describes: the key, a sentence saying why,
    the values the run trains the same with (key -> value: what the sweep compares grid points
    by), and whether the run warns of it."""
    key: str
    message: str
    trains_as: tuple[tuple[str, Any], ...] = ()
    warn: bool = True


def inert_settings(config: Config) -> list[InertSetting]:
    """Each setting of `config` that changes nothing in the run it describes: the keys of
    `inert_keys`, and those that the run's length, warm-ups and schedules leave without effect."""
    defaults = flatten_config(config_to_dict(Config()))
    found = []
    for key, message in inert_keys(config).items():
        trains_as = defaults[key]
        if key == "metrics.names" and scores_translations(config):  # (read in part: as with the names it reads)
            trains_as = [name for name in config.metrics.names if name in TRANSLATION_METRICS]
        found.append(InertSetting(key, message, ((key, trains_as),)))
    return (found + _inert_training(config) + _inert_regularisers(config, defaults) + _inert_ema(config)
            + _inert_schedules(config, defaults))


def _inert_training(config: Config) -> list[InertSetting]:
    """Settings the adversarial start and the learning rates leave without effect."""
    train = config.train
    found = []
    if 0 < train.steps <= train.adversarial_start:
        found.append(InertSetting(
            "train.adversarial_start",
            f"train.adversarial_start = {train.adversarial_start} is not below train.steps = {train.steps}: "
            "the adversarial term never turns on, and the discriminator never trains",
            (("train.adversarial_start", train.steps),)))
    if train.g_lr == 0:
        found.append(InertSetting("train.g_lr", "train.g_lr and train.d_lr are both 0: no network learns anything"
                                  if train.d_lr == 0 else
                                  "train.g_lr = 0: the generator never learns (only a discriminator, where there is one)"))
    elif train.d_lr == 0:
        found.append(InertSetting("train.d_lr", "train.d_lr = 0: the discriminator, where there is one, never learns, "
                                                "and the generator is trained against its random initial weights"))
    return found


def _inert_regularisers(config: Config, defaults: dict[str, Any]) -> list[InertSetting]:
    """R1 and adaptive augmentation settings that the run never reaches."""
    train, loss = config.train, config.loss
    found = []
    r1_off = (("loss.r1_gamma", 0.0), ("loss.r1_every", defaults["loss.r1_every"]))
    if loss.r1_gamma and train.steps < loss.r1_every:
        found.append(InertSetting("loss.r1_every", f"loss.r1_every = {loss.r1_every} is above train.steps = "
                                  f"{train.steps}: R1 is due every {loss.r1_every} steps, so it never runs, and "
                                  f"loss.r1_gamma = {loss.r1_gamma:g} changes nothing", r1_off))
    elif loss.r1_gamma and train.steps // loss.r1_every * loss.r1_every <= train.adversarial_start < train.steps:
        # (R1 regularises D, which trains only after adversarial_start)
        found.append(InertSetting(
            "loss.r1_every", f"loss.r1_every = {loss.r1_every}: R1 is due at its multiples, and none falls after "
            f"train.adversarial_start = {train.adversarial_start} (when the discriminator trains) up to train.steps = "
            f"{train.steps}, so R1 never runs, and loss.r1_gamma = {loss.r1_gamma:g} changes nothing", r1_off))
    if loss.diffaugment and loss.augment_p == "adaptive" and _adaptive_p_stays_zero(config):
        found.append(InertSetting(
            "loss.augment_interval",
            f"loss.augment_interval = {loss.augment_interval} is not below the {discriminator_steps(config, train.steps)} "
            "discriminator steps this run has: adaptive p starts at 0 and is first moved after that many, so it "
            f"never leaves 0 for an image D sees, and loss.diffaugment = {shown(loss.diffaugment)} changes nothing",
            tuple((key, defaults[key]) for key in ("loss.diffaugment", "loss.augment_p", "loss.augment_target",
                                                   "loss.augment_interval", "loss.augment_images"))))
    return found


def _inert_ema(config: Config) -> list[InertSetting]:
    """An EMA decay the warm-up never reaches."""
    train = config.train
    found = []
    if train.ema_decay > 0 and config.recipe == "dcgan":  # (the recipe that keeps an EMA generator)
        reached = (1 + train.steps) / (10 + train.steps)  # the EMA's warm-up after the run's last update
        if reached <= train.ema_decay:  # every update blends by the warm-up alone
            found.append(InertSetting(
                "train.ema_decay",
                f"train.ema_decay = {train.ema_decay:g} (an average over about {_steps(1 / (1 - train.ema_decay))}) "
                "is never reached: the decay warms up as (1 + n) / (10 + n) after n steps, and ends this run's "
                f"{train.steps} at {reached:.4f} (about {_steps(1 / (1 - reached))}), so any train.ema_decay above "
                f"{reached:.4f} gives the same EMA generator",
                (("train.ema_decay", f"the warm-up's, at least {reached!r}"),),
                # warned of only when far off: a smoke run a little short of its decay is no mistake
                warn=1 / (1 - reached) < 0.5 / (1 - train.ema_decay)))
    return found


def _inert_schedules(config: Config, defaults: dict[str, Any]) -> list[InertSetting]:
    """Learning-rate schedule settings the run ends before."""
    train = config.train
    found = []
    late = [milestone for milestone in train.lr_milestones if milestone >= train.steps]
    if late and train.lr_schedule == "step":
        found.append(InertSetting(
            "train.lr_milestones", f"train.lr_milestones {shown(late)} change nothing: the rates change after a "
            f"milestone's step, and the run ends at train.steps = {train.steps}",
            (("train.lr_milestones", [milestone for milestone in train.lr_milestones if milestone < train.steps]),)))
    if train.lr_schedule == "step" and (len(late) == len(train.lr_milestones) or train.lr_gamma == 1):
        found.append(InertSetting(
            "train.lr_schedule",
            "train.lr_schedule = 'step' " + ("with no train.lr_milestones" if not train.lr_milestones
                                             else "with train.lr_gamma = 1" if train.lr_gamma == 1
                                             else "with no train.lr_milestones below train.steps") +
            ": the learning rates never change (set train.lr_milestones, the steps after which they are multiplied "
            "by train.lr_gamma)",
            # the same rates as linear_decay over no steps (a constant rate)
            (("train.lr_schedule", "linear_decay"), ("train.lr_decay_steps", 0), ("train.lr_milestones", []),
             ("train.lr_gamma", defaults["train.lr_gamma"])),
            warn=not late))  # (the milestones' own warning says it)
    if train.lr_schedule == "linear_decay" and train.lr_decay_steps > train.steps:
        found.append(InertSetting(  # (a smoke run of a long recipe's config: no warning, the decay is as documented)
            "train.lr_decay_steps", f"train.lr_decay_steps = {train.lr_decay_steps} is past train.steps = "
            f"{train.steps}: the rates decay over the whole run, as with {train.steps}",
            (("train.lr_decay_steps", train.steps),), warn=False))
    if train.warmup_steps >= train.steps:
        reach = ("reach the values set only at the last step" if train.warmup_steps == train.steps
                 else "never reach the values set")
        found.append(InertSetting(
            "train.warmup_steps", f"train.warmup_steps = {train.warmup_steps} is not below train.steps = "
            f"{train.steps}: the learning rates rise from 0 over the whole run and {reach}"))
    return found


def _adaptive_p_stays_zero(config: Config) -> bool:
    """Whether adaptive p is still 0 whenever D sees an image: its first move comes after
    `loss.augment_interval` D steps, which CycleGAN (generators first, then D) may reach at its very
    last D step, unless R1, which augments too, is due at that step."""
    run_d_steps, interval = discriminator_steps(config, config.train.steps), config.loss.augment_interval
    if config.recipe != "cyclegan" or interval != run_d_steps:
        return 0 < run_d_steps < interval
    return not (config.loss.r1_gamma and config.train.steps % config.loss.r1_every == 0)
