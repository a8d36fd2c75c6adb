"""The network zoo: one registry from (role, name) to an `nn.Module` constructor.

A config names a network (`[model] generator = "dcgan"`) and may set any of the
constructor's keyword arguments that have defaults (`[model.generator_args]`).
Arguments without defaults (such as `resolution`) are supplied by the recipe from
other config sections, so they are never set twice. Adding an architecture is one
new module here and one `@register_network(...)` line.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import typing
from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

from gan.registry import ConfigError, Registry, suggest
from gan.typecheck import coerce

ROLES = ("generator", "discriminator", "feature_extractor")
_REGISTRIES: dict[str, Registry[Callable[..., nn.Module]]] = {role: Registry(role) for role in ROLES}

# Modules whose import registers networks; add new architecture files here.
_ZOO_MODULES = ("gan.nets.dcgan", "gan.nets.unet", "gan.nets.patchgan", "gan.nets.resnet", "gan.nets.srresnet",
                "gan.nets.vgg")


def register_network(role: str, name: str):
    """Class decorator: `@register_network("generator", "dcgan")`."""
    return _REGISTRIES[role].register(name)


def _zoo(role: str) -> Registry:
    for module in _ZOO_MODULES:
        importlib.import_module(module)
    return _REGISTRIES[role]


def network_names(role: str) -> list[str]:
    return _zoo(role).names()


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
    return {name: p.replace(annotation=hints.get(name, Any)) for name, p in params.items()}


def resolve_network_args(role: str, name: str, args: dict[str, Any], key: str) -> dict[str, Any]:
    """Check user-settable `args` of network `name` and fill in the constructor's defaults.

    `key` is the config key the args came from (`model.generator_args`), for messages.
    """
    constructor = _zoo(role).get(name)
    settable = {n: p for n, p in _parameters(constructor).items() if p.default is not inspect.Parameter.empty}
    resolved = {}
    for arg, value in args.items():
        if arg not in settable:
            valid = ", ".join(sorted(settable)) or "(none)"
            raise ConfigError(
                f"unknown key '{key}.{arg}' for {role} '{name}'{suggest(arg, list(settable))}; valid keys: {valid}"
            )
        resolved[arg] = coerce(value, settable[arg].annotation, f"{key}.{arg}")
    for arg, param in settable.items():
        resolved.setdefault(arg, param.default)
    return resolved


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
        return _zoo(self.role).get(self.name)(**self.kwargs)

    def load(self, state_dict: dict[str, Any], source: str) -> nn.Module:
        """Build the network and load `state_dict` into it; a mismatch raises ValueError naming `source`."""
        network = self.build()
        try:
            network.load_state_dict(state_dict)
        except RuntimeError as error:
            raise ValueError(f"the weights in {source} do not fit {self.role} '{self.name}': {error}") from None
        return network

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "name": self.name, "kwargs": dict(self.kwargs)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "NetworkSpec":
        return cls(data["role"], data["name"], dict(data["kwargs"]))


def network_spec(role: str, name: str, args: dict[str, Any], key: str, **supplied: Any) -> NetworkSpec:
    """The spec of network `name` from config `args` plus recipe-`supplied` arguments."""
    resolved = resolve_network_args(role, name, args, key)
    for arg in supplied:
        if arg in args:
            raise ConfigError(f"'{key}.{arg}' is set by the recipe from another config key; remove it")
    return NetworkSpec(role, name, {**resolved, **supplied})
