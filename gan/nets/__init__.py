"""The network zoo: one registry from (role, name) to an `nn.Module` constructor.

A config names a network (`[model] generator = "dcgan"`) and may set any of the
constructor's keyword arguments that have defaults (`[model.generator_args]`).
Arguments without defaults (such as `resolution`) are supplied by the recipe from
other config sections, so they are never set twice. Adding an architecture is one
new module here and one `@register_network(...)` line.
"""

from __future__ import annotations

import functools
import inspect
import math
import re
import sys
import typing
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from gan.core.checkpoint import first_mismatch
from gan.core.registry import ConfigError, Registry, suggest
from gan.core.typecheck import coerce
from gan.core.wording import first_few

ROLES = ("generator", "discriminator", "feature_extractor")
_REGISTRIES: dict[str, Registry[Callable[..., nn.Module]]] = {role: Registry(role) for role in ROLES}

# Modules whose import registers networks; add new architecture files here.
_ZOO_MODULES = ("gan.nets.dcgan", "gan.nets.unet", "gan.nets.patchgan", "gan.nets.resnet", "gan.nets.srresnet",
                "gan.nets.vgg")


def register_network(role: str, name: str):
    """Class decorator: `@register_network("generator", "dcgan")`. A name the zoo has is refused at once
    (the zoo is imported first where it was not yet); the same class defined again (a notebook's cell
    run again) replaces its earlier definition."""
    if role not in _REGISTRIES:
        raise ValueError(f"register_network: unknown role {role!r}{suggest(role, list(ROLES))}; roles: "
                         f"{', '.join(ROLES)}")

    def register(constructor):
        # the zoo's own modules register as they import; any other caller (a partial of a zoo class too)
        # after the zoo, to meet a clash now
        if sys._getframe(1).f_globals.get("__name__") not in _ZOO_MODULES:
            _zoo(role)
        return _REGISTRIES[role].register(name, constructor)

    return register


def _zoo(role: str) -> Registry:
    """The registry of `role`, the _ZOO_MODULES imported (one that fails to is said with a name not found)."""
    _REGISTRIES[role].import_modules(_ZOO_MODULES, "_ZOO_MODULES", together=tuple(_REGISTRIES.values()))
    return _REGISTRIES[role]


def network_names(role: str) -> list[str]:
    return _zoo(role).names()


def unimported_networks(role: str) -> str:
    """"; <module> (listed in _ZOO_MODULES) failed to import: <why>" for each module of the zoo that failed to
    import (its networks missing), for a message naming a network not found; "" when none did."""
    return "".join(f"; {why}" for why in _zoo(role).unimported())


def _parameters(constructor: Callable) -> dict[str, inspect.Parameter]:
    """The constructor's parameters with resolved type hints.

    A `functools.partial` (an alias such as `unet_128` with other defaults) keeps
    its own signature, so its bound keywords show as defaults, but its type hints
    come from the class or function it wraps.
    """
    wrapped = constructor
    while isinstance(wrapped, functools.partial):
        wrapped = wrapped.func
    hinted = wrapped.__init__ if inspect.isclass(wrapped) else wrapped
    signed = constructor if isinstance(constructor, functools.partial) else hinted
    params = dict(inspect.signature(signed).parameters)
    params.pop("self", None)
    hints = typing.get_type_hints(hinted)
    # (*args and **kwargs, a subclass passing arguments on, are no arguments a config or recipe names)
    return {name: p.replace(annotation=hints.get(name, Any)) for name, p in params.items()
            if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)}


def network_defaults(role: str, name: str) -> dict[str, Any]:
    """The settable arguments of network `name` with their defaults (what `resolve_network_args` fills in)."""
    return {arg: param.default for arg, param in _parameters(_zoo(role).get(name)).items()
            if param.default is not inspect.Parameter.empty}


# Where the recipes take the zoo's arguments without defaults from (a network of one's own may have others).
SUPPLIED_FROM = {"resolution": "data.resolution", "scale": "data.scale",
                 "in_channels": "the data's channels: 3, or 6 for a pix2pix pair"}


def resolve_network_args(role: str, name: str, args: dict[str, Any], key: str,
                         supplied: tuple[str, ...] = ()) -> dict[str, Any]:
    """Check user-settable `args` of network `name` and fill in the constructor's defaults.

    `key` is the config key the args came from (`model.generator_args`), for messages. `supplied`
    are the arguments the recipe gives (`RecipeBase.supplied_args`): neither filled nor settable,
    also where the constructor has a default of its own (the SRGAN discriminator's in_channels).
    """
    try:
        constructor = _zoo(role).get(name)
    except ConfigError as error:  # (no close name: a network of one's own, its module not listed, say)
        if "did you mean" in str(error) or unimported_networks(role):  # (a module that failed to import: said)
            raise
        raise ConfigError(f"{error}; a network of one's own is found once its module is in gan/nets/ and listed in "
                          "_ZOO_MODULES (docs/layout.md)") from None
    parameters = _parameters(constructor)
    settable = {n: p for n, p in parameters.items() if p.default is not inspect.Parameter.empty}
    resolved = {}
    for arg, value in args.items():
        if arg in parameters and (arg not in settable or arg in supplied):  # (resolution, a pair's in_channels)
            raise ConfigError(f"'{key}.{arg}' is set by the recipe from another config key "
                              f"({SUPPLIED_FROM.get(arg, 'data.resolution, the data channels, ...')}); remove it")
        if arg not in settable:
            valid = ", ".join(sorted(name for name in settable if name not in supplied)) or "(none)"
            others = [other for other in network_names(role) if other != name and arg in _parameters(_zoo(role).get(other))]
            hint = (f" (an argument of {role} {first_few(others, 3)}: {key} keeps what was written for another "
                    "network when the network changes; remove this one)" if others else suggest(arg, list(settable)))
            raise ConfigError(f"unknown key '{key}.{arg}' for {role} '{name}'{hint}; valid keys: {valid}")
        resolved[arg] = coerce(value, settable[arg].annotation, f"{key}.{arg}")
        try:
            _check_size(arg, resolved[arg], f"{key}.{arg}", settable[arg].default)
        except ValueError as error:
            raise ConfigError(str(error)) from None
    for arg, param in settable.items():
        if arg in resolved or arg in supplied or param.default is None:  # (TOML has no null: the constructor's holds)
            continue
        if not _config_value(param.default):
            raise ConfigError(f"{key}.{arg}: {role} '{name}' gives it the default {param.default!r}, which no config "
                              "can hold (numbers, strings, booleans and lists of them), so config.toml could not "
                              "say how the run was built; give it a default a config can say (a name such as "
                              "\"relu\" that the constructor looks up)")
        # (unhinted, a tuple default is held as the list the config gives back, so that --run-dir repeats see
        # one value; the network gets it as a tuple again, `_as_hinted`)
        resolved[arg] = _as_listed(param.default) if param.annotation is Any else param.default
    return resolved


def _as_listed(value: Any) -> Any:
    """`value` with its tuples as lists, as TOML reads them back."""
    return [_as_listed(item) for item in value] if isinstance(value, (list, tuple)) else value


def _as_tupled(value: Any) -> Any:
    """`value` with its lists as tuples."""
    return tuple(_as_tupled(item) for item in value) if isinstance(value, (list, tuple)) else value


def _as_hinted(value: Any, parameter: inspect.Parameter, name: str) -> Any:
    """`value` (of argument `name`) as `parameter`'s type hint names it; unhinted, with a tuple default
    (of no lists), as tuples: the config holds such a default as a list (`_as_listed`), and the network
    gets the type it wrote. ConfigError when the hint does not take it."""
    default = parameter.default
    if parameter.annotation is Any and isinstance(default, tuple) and _as_tupled(default) == default:
        return _as_tupled(value) if isinstance(value, (list, tuple)) else value
    return coerce(value, parameter.annotation, name)


def _config_value(value: Any) -> bool:
    """Whether `value` is one TOML can hold: a bool, number or string, or a list or tuple of them."""
    if isinstance(value, (list, tuple)):
        return all(_config_value(item) for item in value)
    return isinstance(value, (bool, int, float, str))


MAX_PARAMETERS = 2_000_000_000  # 8 GiB of fp32 weights: far beyond this zoo, far below a typo's 200000 channels
COUNTS_FROM_ZERO = ("num_blocks",)  # integer arguments for which 0 makes a network (no residual blocks)
# Integer arguments that count layers, and the most of them any network here is built with: the parameter
# count, found by building on the meta device, came too late for them (num_downs = 10**9 never finished
# building; 10**5 residual blocks took two minutes and 3 GB before a refusal). 2**16 px is the U-Net's
# input multiple at num_downs = 16; a PatchGAN deeper than its crops is refused with the depth that fits.
DEPTHS = {"num_downs": 16, "num_blocks": 1000, "n_layers": 64}


def _check_size(arg: str, value: Any, name: str, default: Any = inspect.Parameter.empty) -> None:
    """Integer arguments are sizes and counts: at least 1, or 0 for COUNTS_FROM_ZERO and those
    whose default is 0 (a count of extra layers). One whose default is negative (-1 for "none", say)
    is the network's own to check."""
    if not isinstance(value, int) or isinstance(value, bool):
        return
    counts_from_zero = arg in COUNTS_FROM_ZERO or (type(default) is int and default == 0)
    if type(default) is int and default < 0:
        return
    smallest = 0 if counts_from_zero else 1
    if value < smallest:
        raise ValueError(f"{name} must be at least {smallest}, got {value}")
    if arg in DEPTHS and value > DEPTHS[arg]:
        raise ValueError(f"{name} must be at most {DEPTHS[arg]}, got {value}: it counts layers")


@dataclass(frozen=True)
class NetworkSpec:
    """Everything needed to rebuild a network: role, registered name, all constructor kwargs.

    Stored in checkpoints (as a plain dict) so `gan sample` can rebuild a generator
    without the recipe or its data.
    """

    role: str
    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def build(self) -> nn.Module:
        """The network in float32, after `check`: a spec read from a file builds nothing unreasonable.
        (Built in the caller's default dtype, then cast: a notebook's float64 default gave a float64
        generator, other images from the same seed; the default dtype is the process's, left as it is.)"""
        arguments = self._checked_arguments()  # (first: an unknown name is its ValueError)
        return _zoo(self.role).get(self.name)(**arguments).float()

    def check(self) -> None:
        """Known arguments, sizes of at least 1, and a parameter count within MAX_PARAMETERS,
        counted on the meta device before any memory is allocated. Raises ValueError."""
        self._checked_arguments()

    def _checked_arguments(self) -> dict[str, Any]:
        """`check`, giving `kwargs` as the constructor is given them: each of the type its hint names (or,
        unhinted, its tuple default's). A spec read from JSON (an export's) or TOML holds lists, and a
        `tuple[int, ...]` argument reached the network as one: `widths + (4,)` failed in `gan sample`."""
        try:
            parameters = _parameters(_zoo(self.role).get(self.name))
        except ConfigError as error:  # (unknown: a module of the zoo that failed to import is said)
            raise ValueError(str(error)) from None
        unknown = sorted(set(self.kwargs) - set(parameters))
        if unknown:
            raise ValueError(f"{self.role} '{self.name}' takes no argument {', '.join(map(repr, unknown))}; "
                             f"it takes {', '.join(parameters)}")
        missing = [arg for arg in _required(parameters) if arg not in self.kwargs]
        if missing:
            raise ValueError(f"{self.role} '{self.name}' needs {', '.join(map(repr, missing))}, which it lacks")
        arguments = {}
        for arg, value in self.kwargs.items():
            try:  # (a spec read from a file: a float where an int belongs failed as a TypeError deep inside)
                arguments[arg] = _as_hinted(value, parameters[arg], f"{self.role} '{self.name}': {arg}")
            except ConfigError as error:
                raise ValueError(str(error)) from None
            _check_size(arg, arguments[arg], f"{self.role} '{self.name}': {arg}", parameters[arg].default)
        if self.role == "feature_extractor":  # fixed architectures that read weight files when built
            return arguments
        try:
            with torch.device("meta"):
                count = sum(parameter.numel() for parameter in _zoo(self.role).get(self.name)(**arguments).parameters()
                            if not isinstance(parameter, nn.parameter.UninitializedParameter))  # (lazy: sized later)
        except (RuntimeError, TypeError) as error:  # a tensor too large for even torch to size (2^63 elements;
            if "overflow" not in str(error).lower():  # a size past 2^63 itself: "Overflow when unpacking long")
                raise
            count = math.inf
        if count > MAX_PARAMETERS:
            if count == math.inf:
                raise ValueError(f"{self.role} '{self.name}' with {self.kwargs} would have more parameters than "
                                 f"torch can count, more than the {MAX_PARAMETERS:,} gan builds")
            raise ValueError(f"{self.role} '{self.name}' with {self.kwargs} would have {count:,} parameters "
                             f"({count * 4 / 2**30:,.0f} GiB in fp32), more than the {MAX_PARAMETERS:,} gan builds")
        return arguments

    def load(self, state_dict: dict[str, Any], source: str) -> nn.Module:
        """Build the network and load `state_dict` into it; a mismatch raises ValueError naming
        `source`, the first parameter that differs and both shapes. The global random stream is left
        as it was: the random initial weights it would draw are replaced at once."""
        with torch.random.fork_rng(devices=[]):
            network = self.build()
        mismatch = first_mismatch(network.state_dict(), state_dict)
        if mismatch:
            raise ValueError(f"the weights in {source} do not fit {self.role} '{self.name}' {self.kwargs}: {mismatch}")
        network.load_state_dict(state_dict)
        return network

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "name": self.name, "kwargs": dict(self.kwargs)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "NetworkSpec":
        """A spec read from a file; ValueError when it is not one."""
        try:
            role, name, kwargs = data["role"], data["name"], data["kwargs"]
        except (KeyError, TypeError):
            raise ValueError(f"not a network spec (role, name, kwargs): {str(data)[:200]}") from None
        if not isinstance(kwargs, dict):
            raise ValueError(f"its kwargs are {type(kwargs).__name__} {str(kwargs)[:80]}, not a table of arguments")
        if role not in ROLES:
            raise ValueError(f"unknown network role '{role}'; known: {', '.join(ROLES)}")
        return cls(role, name, kwargs)


def _required(parameters: dict[str, inspect.Parameter]) -> list[str]:
    """The names of the parameters without a default."""
    return [arg for arg, parameter in parameters.items() if parameter.default is inspect.Parameter.empty]


def _misfit(role: str, name: str, supplied: dict[str, Any]) -> str:
    """Why network `name` cannot be built from what a recipe supplies ('' when it can): an argument
    without a default that the recipe does not supply, or one the recipe supplies that it does not take."""
    parameters = _parameters(_zoo(role).get(name))
    needed = [arg for arg in _required(parameters) if arg not in supplied]
    unknown = [arg for arg in supplied if arg not in parameters]
    reasons = [f"it needs {', '.join(needed)}, which the recipe does not supply"] if needed else []
    reasons += [f"the recipe supplies {', '.join(unknown)}, which it does not take"] if unknown else []
    return "; ".join(reasons)


def _check_fit(role: str, name: str, key: str, supplied: dict[str, Any]) -> None:
    """A network made for another recipe (dcgan's generator, which needs `resolution`, under pix2pix)
    is refused naming the config key and the networks that do fit, before a constructor's TypeError."""
    misfit = _misfit(role, name, supplied)
    if misfit:
        fitting = [other for other in network_names(role) if not _misfit(role, other, supplied)]
        raise ConfigError(f"{key.removesuffix('_args')} = '{name}' does not fit this recipe: {misfit}; "
                          f"{role}s that fit: {', '.join(fitting) or 'none'}")


def network_spec(role: str, name: str, args: dict[str, Any], key: str, supplied_from: dict[str, str] | None = None,
                 **supplied: Any) -> NetworkSpec:
    """The spec of network `name` from config `args` plus recipe-`supplied` arguments; `supplied_from`
    names the config key each supplied argument comes from (resolution: data.resolution), for errors."""
    resolved = resolve_network_args(role, name, args, key)
    _check_fit(role, name, key, supplied)
    for arg in supplied:
        if arg in args:
            raise ConfigError(f"'{key}.{arg}' is set by the recipe from another config key; remove it")
    spec = NetworkSpec(role, name, {**resolved, **supplied})
    try:
        spec.check()
    except ValueError as error:  # (a network's own errors start with the argument they refuse)
        named = [arg for arg in args if re.search(rf"\b{re.escape(arg)}\b", str(error))]
        source = next((config_key for arg, config_key in (supplied_from or {}).items() if str(error).startswith(arg)),
                      f"{key}.{named[0]}" if len(named) == 1 else key)  # (the one argument of the user's it names)
        raise ConfigError(f"{source}: {error}") from None
    constructor = _zoo(role).get(name)  # (unet_128 is a functools.partial of the U-Net: its own word is the U-Net's)
    inert_args = getattr(getattr(constructor, "func", constructor), "inert_args", None)
    built_with = {**getattr(constructor, "keywords", {}), **spec.kwargs}
    for arg, why in (inert_args(**built_with) if inert_args else {}).items():
        if arg in args:  # (a default that changes nothing is no one's choice)
            warnings.warn(f"{key}.{arg} = {args[arg]!r} changes nothing: {why}", stacklevel=2)
    return spec
