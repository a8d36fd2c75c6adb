"""What is read of a trained generator from a checkpoint or export, checked once, where the file is read.

Checkpoints and exports are files people copy, edit and cut short. Before `gan sample`,
`translate`, `eval` or `export` uses one, or a run starts its generator from one
(`model.init_generator`, gan/recipes/base.py), `checked_state` checks the entries they read (a config
with a recipe and a [data] section, tables of network specs and weights, an integer step), and
`build_generator` builds a generator only from a spec whose arguments have the constructor's
types, with weights that fit it and are all finite. Each problem is one CheckpointError that
names the file and the entry, never a KeyError or TypeError from deep inside a command.
(Here, below training and inference: both read trained generators.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from gan.core.checkpoint import FORMAT, CheckpointError, refuse_non_finite
from gan.core.config import config_from_dict, config_to_dict
from gan.core.registry import ConfigError
from gan.core.wording import printable
from gan.nets import NetworkSpec, network_names, resolve_network_args, unimported_networks
from gan.recipes import RECIPES
from gan.recipes.base import require_rgb

# The entries every checkpoint and export holds, and what each is, for messages.
TABLES = {"config": "the run's config", "specs": "the network specs", "networks": "the weights by network"}


def damaged(path: Path, problem: str) -> CheckpointError:
    """The error for a file gan wrote that has since been edited or damaged: one line naming it (what
    it quotes of the file's values printable: `printable`)."""
    return CheckpointError(f"'{path}' is damaged or edited: {printable(problem, 2000)}")


def checked_state(state: dict[str, Any], path: Path) -> dict[str, Any]:
    """`state` (a loaded checkpoint or export, read from `path`) with its config rebuilt through
    gan's config schema, so that every key a command reads is there with its type. CheckpointError
    when an entry is missing or of the wrong kind."""
    for key, meaning in TABLES.items():
        if key not in state:
            raise damaged(path, f"it has no \"{key}\" entry ({meaning})")
        if not isinstance(state[key], dict):
            raise damaged(path, f"its \"{key}\" entry ({meaning}) is a {type(state[key]).__name__}, expected a table")
        named = next((name for name in state[key] if not isinstance(name, str)), None)
        if named is not None:
            raise damaged(path, f"its \"{key}\" entry ({meaning}) has the key {named!r}, expected names")
    step = state.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise damaged(path, f"its \"step\" entry is {str(step)[:40]!r}, expected a whole number of at least 0")
    config = checked_config(state["config"], path)
    _check_agreement(state, config, path)
    return {**state, "config": config}


def _check_agreement(state: dict[str, Any], config: dict[str, Any], path: Path) -> None:
    """The image size a generator spec makes must be its config's, else a command reads one as the other
    (scoring generated images against reals read at another size, say)."""
    resolution = config["data"]["resolution"]
    for name, spec in state["specs"].items():
        kwargs = spec.get("kwargs") if isinstance(spec, dict) else None
        made = kwargs.get("resolution") if isinstance(kwargs, dict) else None  # (a malformed spec: checked_spec's)
        if isinstance(made, int) and made != resolution:
            raise damaged(path, f"its {name} spec makes {made} px images, but its config's data.resolution is "
                                f"{resolution}")


def checked_config(config: dict[str, Any], path: Path) -> dict[str, Any]:
    """The stored config, complete, as `config_to_dict` writes it. Its recipe and data.dataset must be
    stated: filled in from defaults, they would read the file as another kind of model."""
    data = config.get("data")
    if not isinstance(config.get("recipe"), str):
        raise damaged(path, "its config has no recipe (config.recipe)")
    if config["recipe"] not in RECIPES and RECIPES.unimported():  # (the file is whole: a recipe module failed)
        raise CheckpointError(f"'{path}' was trained with recipe '{printable(config['recipe'], 40)}', which this gan "
                              f"does not have (it has {', '.join(RECIPES.names())}; {'; '.join(RECIPES.unimported())})")
    if config["recipe"] not in RECIPES:
        raise damaged(path, f"its config's recipe {config['recipe'][:40]!r} is not one gan has (known: "
                            f"{', '.join(RECIPES.names())})")
    if not isinstance(data, dict) or not isinstance(data.get("dataset"), str):
        raise damaged(path, "its config has no [data] section naming the dataset (config.data.dataset), which "
                            "says what the model takes")
    try:
        return config_to_dict(config_from_dict(config))
    except (ConfigError, TypeError, ValueError) as error:
        raise damaged(path, f"its config is not one gan reads: {error}") from None


def stored_weights_name(state: dict[str, Any], path: Path, name: str, which: str = "ema") -> str:
    """The entry of `state["networks"]` holding generator `name`'s weights: with `which="ema"` its
    EMA weights (`<name>_ema`) when the file has them, else the trained ones."""
    if which == "ema" and f"{name}_ema" in state["networks"]:
        return f"{name}_ema"
    config = state["config"]
    if (which == "ema" and state.get("format") == FORMAT and config["train"]["ema_decay"] > 0
            and name in RECIPES.get(config["recipe"]).averaged):  # (an export holds the one it was asked for)
        raise damaged(path, f"its config keeps an EMA of its {name} (train.ema_decay = {config['train']['ema_decay']}) "
                            f"but it holds no {name}_ema weights; --generator live reads the trained ones")
    if name in state["networks"]:
        return name
    if f"{name}_ema" in state["networks"]:  # an export of the EMA weights, asked for the trained ones
        raise CheckpointError(f"'{path}' holds only the EMA weights of its {name}; --generator live needs its "
                              "checkpoint, or an export written with --generator live")
    held = ", ".join(state["networks"]) or "none"
    raise damaged(path, f"it holds no weights for its {name} spec; the weights it holds: {held}")


def build_generator(state: dict[str, Any], path: Path, name: str, which: str = "ema") -> tuple[nn.Module, str]:
    """(generator `name` of `checked_state` output, in eval mode without gradients; the entry its
    weights came from). CheckpointError for a spec that does not build, weights that do not fit
    it, or weights that are not finite."""
    stored = stored_weights_name(state, path, name, which)
    spec = checked_spec(state["specs"].get(name), path, name)
    weights = state["networks"][stored]
    if not isinstance(weights, dict):
        raise damaged(path, f"its {stored} weights are a {type(weights).__name__}, expected a table of tensors")
    try:
        network = spec.load(weights, f"'{path}'")
    except ValueError as error:
        raise CheckpointError(str(error)) from None
    except TypeError as error:  # an argument the spec types cannot tell (one without a default)
        raise damaged(path, f"its {name} spec {spec.kwargs} does not build {spec.role} '{spec.name}': {error}") from None
    refuse_non_finite(weights, path, stored)
    return network.eval().requires_grad_(False), stored


def checked_spec(spec: Any, path: Path, name: str) -> NetworkSpec:
    """The NetworkSpec of specs[`name`]: a network gan has, arguments it takes of the constructor's
    types, sizes of at least 1 and a parameter count within bounds (`NetworkSpec.check`)."""
    if spec is None:
        raise damaged(path, f"it has no spec for its {name} (specs.{name}), which says how to build it")
    try:
        spec = NetworkSpec.from_dict(spec)
    except ValueError as error:
        raise damaged(path, f"specs.{name}: {error}") from None
    if spec.name not in network_names(spec.role):  # (the file is whole: this gan lacks the network)
        raise CheckpointError(f"'{path}' was trained with {spec.role} '{printable(spec.name)}', which this gan does not have "
                              f"(it has {', '.join(network_names(spec.role))}{unimported_networks(spec.role)}): a "
                              "network of one's own is found once its module is in gan/nets/ and listed in "
                              "_ZOO_MODULES (docs/layout.md)")
    try:
        settable = resolve_network_args(spec.role, spec.name, {}, f"specs.{name}.kwargs")
        resolve_network_args(spec.role, spec.name, {arg: value for arg, value in spec.kwargs.items()
                                                    if arg in settable}, f"specs.{name}.kwargs")
    except ConfigError as error:
        raise damaged(path, str(error)) from None
    try:
        spec.check()
        # every data set yields RGB images, and the commands feed and show RGB: a generator of other
        # channels ran into a traceback (translate) or a grid of the wrong colours (sample)
        require_rgb(spec, f"specs.{name}.kwargs", *(arg for arg in IMAGE_CHANNEL_ARGS if arg in spec.kwargs))
    except (ValueError, ConfigError) as error:
        raise damaged(path, f"specs.{name}: {error}" if isinstance(error, ValueError) else str(error)) from None
    return spec


# The arguments of gan's networks that count the channels of the images they take or make.
IMAGE_CHANNEL_ARGS = ("image_channels", "in_channels", "out_channels")
