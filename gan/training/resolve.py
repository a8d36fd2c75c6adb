"""A config checked against the registries: the one validation step between reading a
TOML file (`gan.core.config`, which imports neither torch nor any recipe) and running it.

It sits above the registries it asks (recipes, datasets, networks, losses, metrics), so
none of them has to know about it.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gan.core.config import (
    Config,
    config_to_dict,
    flatten_config,
    naming_the_file,
    override_list,
    read_config_and_given_keys,
)
from gan.core.inert import warn_about_inert_keys
from gan.core.registry import ConfigError, suggest
from gan.core.typecheck import shown
from gan.core.wording import printable
from gan.data import DATASETS
from gan.metrics.generative import check_metric_names, smallest_count
from gan.nets import resolve_network_args
from gan.recipes import RECIPES
from gan.recipes.augment import AUGMENTATIONS, parse_policy
from gan.recipes.losses import ADVERSARIAL_LOSSES

# Keys that only some of gan's own recipes read: set away from their default for another, they
# would change nothing, which a user who set them cannot tell from the run. A recipe of one's own
# (one not in this table's OWN_RECIPES) is taken to read them all, as gan cannot know what its code reads.
RECIPE_KEYS = {
    "loss.instance_noise": ("dcgan",), "loss.instance_noise_steps": ("dcgan",), "train.d_steps": ("dcgan",),
    "loss.adversarial_weight": ("pix2pix", "srgan", "srresnet"),
    "loss.l1_weight": ("pix2pix",),
    "loss.cycle_weight": ("cyclegan",), "loss.identity_weight": ("cyclegan",), "loss.pool_size": ("cyclegan",),
    **{key: ("srgan", "srresnet") for key in ("loss.content", "loss.vgg_layer", "loss.vgg_arch", "loss.vgg_weights",
                                              "loss.vgg_feature_scale")},
}  # (model.init_generator: read by every recipe with one network named generator, refused by the others)
OWN_RECIPES = ("dcgan", "pix2pix", "cyclegan", "srgan", "srresnet")
# Keys any recipe reads by what it has (gan/recipes/base.py): an averaged network (the EMA and its
# BatchNorm statistics), or `validation_metrics`.
READ_BY_WHAT_IT_HAS = {"train.ema_decay": lambda recipe: bool(recipe.averaged),
                       "train.ema_bn_batches": lambda recipe: bool(recipe.averaged),
                       "log.eval_every": lambda recipe: hasattr(recipe, "validation_metrics")}


def recipe_reads(name: str, key: str) -> bool:
    """Whether the recipe registered as `name` reads `key` (True for a key every recipe reads)."""
    if key in READ_BY_WHAT_IT_HAS:
        return READ_BY_WHAT_IT_HAS[key](RECIPES.get(name))
    return key not in RECIPE_KEYS or name in RECIPE_KEYS[key] or name not in OWN_RECIPES


# Values of those keys that ask for nothing (an EMA turned off, the recipe's own adversarial weight):
# a config may spell them out for any recipe.
ASKS_NOTHING = {"train.ema_decay": (0.0,), "loss.adversarial_weight": (-1.0, 1.0)}


def ignored_keys(config: Config) -> dict[str, str]:
    """key -> `key = value (recipes only)`, for each key set for another recipe than `config.recipe`."""
    defaults, values = flatten_config(config_to_dict(Config())), flatten_config(config_to_dict(config))
    ignored = {}
    for key in [*RECIPE_KEYS, *READ_BY_WHAT_IT_HAS]:
        if (not recipe_reads(config.recipe, key) and values[key] != defaults[key]
                and values[key] not in ASKS_NOTHING.get(key, ())):
            readers = [name for name in RECIPES.names() if recipe_reads(name, key)]
            ignored[key] = f"{key} = {shown(values[key])} ({' and '.join(readers)} only)"
    return ignored


def warn_about_ignored_keys(config: Config) -> None:
    """One warning naming every key set for another recipe than `config.recipe`."""
    ignored = ignored_keys(config)
    if ignored:
        warnings.warn(f"recipe '{config.recipe}' ignores {'; '.join(ignored.values())}", stacklevel=3)


def resolve_names(config: Config) -> Config:
    """Check every name against its registry and fill the network arguments with their
    constructors' defaults (in place; returns `config`)."""
    recipe = RECIPES.get(config.recipe)
    if config.loss.adversarial_weight == -1.0:  # "the recipe's default"
        config.loss.adversarial_weight = recipe.adversarial_weight_default(config.recipe)
    DATASETS.get(config.data.dataset)
    model = config.model
    model.generator_args = _network_args(config, "generator")
    model.discriminator_args = _network_args(config, "discriminator")
    adversarial = config.loss.adversarial
    if adversarial not in ADVERSARIAL_LOSSES:
        raise ConfigError(f"unknown loss.adversarial '{printable(adversarial, 80)}'"
                          f"{suggest(adversarial, list(ADVERSARIAL_LOSSES))}; "
                          f"known: {', '.join(ADVERSARIAL_LOSSES)}")
    if adversarial == "wgan-gp" and not getattr(recipe, "gradient_penalty", False):  # a critic without its penalty
        raise ConfigError(f"loss.adversarial = 'wgan-gp': recipe '{config.recipe}' applies no gradient penalty "
                          "(dcgan does), so its critic would train unconstrained; use vanilla, lsgan or hinge")
    metrics = config.metrics
    metrics.names = list(dict.fromkeys(check_metric_names(metrics.names, "metrics.names")))  # (as config.toml shows)
    fewest, why = smallest_count(metrics.names)
    if metrics.every and metrics.num_samples < fewest:  # (a sweep's grid value is then refused before any run)
        raise ConfigError(f"metrics.num_samples = {metrics.num_samples} is too few for metrics.names = "
                          f"{list(metrics.names)}: at least {fewest} ({why})")
    policy = parse_policy(config.loss.diffaugment, "loss.diffaugment")
    written = [name.strip().lower() for name in config.loss.diffaugment.split(",") if name.strip()]
    if written != list(policy):  # (config.toml and a sweep's runs then show what trains)
        warnings.warn(f"loss.diffaugment = {config.loss.diffaugment!r} is applied as {','.join(policy)!r}: the "
                      f"augmentations run in the order {', '.join(AUGMENTATIONS)}, each once", stacklevel=3)
    config.loss.diffaugment = ",".join(policy)
    warn_about_ignored_keys(config)
    return config


def _network_args(config: Config, role: str) -> dict[str, Any]:
    """model.<role>_args checked and filled (`resolve_network_args`). When they do not fit the network
    because the network does not fit the recipe (model.generator swapped in a config whose arguments
    are the old network's), that is said instead: fixing the arguments first would only meet it next."""
    name, args = getattr(config.model, role), getattr(config.model, f"{role}_args")
    try:
        return resolve_network_args(role, name, args, f"model.{role}_args",
                                    RECIPES.get(config.recipe).supplied_args.get(role, ()))
    except ConfigError as error:
        bare = dataclasses.replace(config, model=dataclasses.replace(config.model, generator_args={},
                                                                     discriminator_args={}))
        try:
            RECIPES.get(config.recipe).check(bare)
        except ConfigError as misfit:
            if str(misfit).startswith(f"model.{role} = '{name}' does not fit this recipe"):
                raise misfit from None
        except Exception:  # noqa: BLE001 - (any other complaint of the bare networks is not this one's)
            pass
        raise error from None


def check_networks(config: Config) -> None:
    """What building the recipe's networks would refuse in a resolved `config` (a DCGAN resolution
    that is not a power of two, a PatchGAN too deep for the crops), without building anything."""
    RECIPES.get(config.recipe).check(config)


def load_config(path: str | Path | None, overrides: Iterable[str] = (),
                trained: tuple[Path, dict[str, Any]] | None = None, at_step: int = 0) -> Config:
    """Read a TOML config (or the defaults when `path` is None) with `--set` overrides, and check
    it whole: keys, types, ranges and names. `trained`: (checkpoint, its config) of a run whose
    config.toml this is, for the settings that file lacks; `at_step`: the step that run is at, where
    a train.steps no larger leaves nothing to train (no setting's effect on the run to warn of)."""
    overrides = override_list(overrides, "load_config")
    config, set_keys = read_config_and_given_keys(path, overrides, trained)
    try:
        resolve_names(config)
    except ConfigError as error:
        raise naming_the_file(error, None if path is None else Path(path),
                              lambda: resolve_names(read_config_and_given_keys(path, [], trained)[0])) from None
    # (once the config is known to run: warnings about the settings of one that cannot would bury its error)
    if config.train.steps > at_step:  # (a key the recipe ignores is said as such, not also as read under another)
        warn_about_inert_keys(config, set_keys, said=ignored_keys(config))
    return config
