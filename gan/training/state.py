"""The training state a checkpoint holds: what the loop saves, and what a resume checks and
restores (weights, optimizers, the recipe's own state, random generators), with a clear error
when this config builds a network differently from the run's."""

from __future__ import annotations

import dataclasses
import os
import socket
import warnings
from pathlib import Path
from typing import Any, Callable

import torch

from gan.core.checkpoint import (
    BEST_NAME,
    FORMAT,
    CheckpointError,
    capture_rng_state,
    checkpoints_by_content,
    first_mismatch,
    load_checkpoint,
    refuse_non_finite,
    resolve_checkpoint,
    restore_rng_state,
    rng_state_problem,
    writers_of,
    written_by,
)
from gan.core.config import PATH_KEYS, Config, config_to_dict, flatten_config
from gan.core.distributed import ProcessGroup, gather_objects
from gan.core.registry import ConfigError
from gan.core.wording import first_few, printable
from gan.recipes.augment import parse_policy
from gan.recipes.base import RANDOM_START, Recipe
from gan.training.cuda_graphs import plain_optimizer_state
from gan.training.resolve import recipe_reads


def newest_loadable_checkpoint(run_dir: Path, restore: Callable[[dict[str, Any], Path], None] | None = None
                               ) -> tuple[Path, dict[str, Any]]:
    """The newest checkpoint in `run_dir` that loads and holds a whole training state, restored by
    `restore` (state, path) where given (`restore_training_state`: what only the recipe can tell of its
    state); warns about any newer broken ones."""
    found = [path for _, path in checkpoints_by_content(run_dir)]  # by the step each holds, not its name
    if not found:
        raise CheckpointError(f"cannot resume: no checkpoint-*.pt in '{run_dir}'")
    for path in reversed(found):
        try:
            state = load_checkpoint(path)
            check_training_state(state, path)
            check_finite_state(state, path)
            if restore is not None:  # (a CheckpointError of its own falls back as well: a ConfigError does not)
                restore(state, path)
            return path, state
        except CheckpointError as error:
            if path != found[0]:  # (the oldest has none to fall back to: the error below says what then)
                warnings.warn(f"{error}; falling back to an older checkpoint", stacklevel=2)
            else:
                warnings.warn(str(error), stacklevel=2)
    best = run_dir / BEST_NAME
    kept = (f"; its best.pt may still load for gan sample, translate or export ('{best}')" if best.is_file() else "")
    raise CheckpointError(f"cannot resume: none of the {len(found)} checkpoints in '{run_dir}' loads (each is named "
                          f"above){kept}; train a new run (another --out), or restore a copy of a checkpoint")


def refuse_other_checkpoints(path: Path, step: int, group: ProcessGroup) -> None:
    """ConfigError on every process of a torchrun run whose processes resumed other checkpoints (each
    machine lists its own copy of the run directory, or a shared one whose listing lags): one that
    lacked the newest resumed an older one in silence, its gradients were averaged into rank 0's, and
    rank 0 saved the mix as the run's. Told apart by file name, step and size, before step 1."""
    if not group.distributed:
        return
    size = path.stat().st_size if path.is_file() else None
    every = gather_objects({"host": socket.gethostname(), "file": str(path), "step": step, "size": size}, group)
    identity = [(Path(restored["file"]).name, restored["step"], restored["size"]) for restored in every]
    differing, named = [], set()
    for rank in range(1, len(every)):
        machine = (every[rank]["host"], identity[rank])
        if identity[rank] != identity[0] and machine not in named:  # (each machine once, not each of its processes)
            differing.append(rank)
            named.add(machine)
    if not differing:
        return
    # (the sizes only where they alone tell the files apart: copies of one name and step that differ)
    sized = any(identity[rank][:2] == identity[0][:2] for rank in differing)

    def described(rank: int) -> str:
        restored = every[rank]
        size = f", {restored['size']} bytes" if sized else ""
        return f"rank {rank} on {restored['host']}: '{restored['file']}' of step {restored['step']}{size}"

    raise ConfigError(f"the processes of this torchrun run resumed other checkpoints ({described(0)}; "
                      f"{first_few([described(rank) for rank in differing], 3, '; ')}): every machine must read the "
                      "same run directory, on a file system they share (rank 0 alone writes it: a copy on each "
                      "machine's own disk falls behind, and a shared one whose listing lags shows the newest later); "
                      "nothing was trained: resume again once every machine lists the same checkpoints")


def started_from_one_file(config: Config) -> Config:
    """`config` with model.init_generator resolved to one checkpoint file (a run directory's newest,
    now), which config.toml and the run's checkpoints then record: the directory alone names other
    weights once its run trains on, and two runs begun from it then read as one experiment."""
    source = config.model.init_generator
    if source in RANDOM_START:
        return config
    try:
        path = resolve_checkpoint(Path(source))
    except CheckpointError as error:  # (which key gave the path: a run has several)
        raise ConfigError(f"model.init_generator: {error}") from None
    return _with_start(config, str(path))


def keeps_its_start(config: Config, recorded: object) -> Config:
    """`config` with the start its run recorded (`recorded`: model.init_generator of its checkpoints and
    config.toml) where `config` gives the run directory that checkpoint was read from: the same start,
    given as it was first given (a sweep's line again, say), not another."""
    given = config.model.init_generator
    if (isinstance(recorded, str) and recorded not in RANDOM_START and given not in RANDOM_START
            and os.path.abspath(Path(recorded).parent) == os.path.abspath(given)):
        return _with_start(config, recorded)
    return config


def _with_start(config: Config, start: str) -> Config:
    return dataclasses.replace(config, model=dataclasses.replace(config.model, init_generator=start))


def changed_keys(before: Config | dict[str, Any], after: Config | dict[str, Any]) -> list[str]:
    """`key old -> new` for every setting two configs (or config dicts) disagree on."""
    old, new = (flatten_config(config if isinstance(config, dict) else config_to_dict(config))
                for config in (before, after))
    return [f"{key} {old.get(key)!r} -> {new.get(key)!r}" for key in sorted(set(old) | set(new))
            if not _same_setting(key, old.get(key), new.get(key))]


def changes_since(trained: dict[str, Any], config: Config) -> list[str]:
    """What `config` changes of the settings a checkpoint trained with (`trained`, its config):
    `changed_keys` of the keys it records (a key newer than the checkpoint's gan is no change)."""
    recorded = flatten_config(trained)
    return [change for change in changed_keys(trained, config) if change.split(" ", 1)[0] in recorded]


def _same_setting(key: str, old: Any, new: Any) -> bool:
    """A DiffAugment list is read in one order, each name once: a run's 'cutout,color' (written
    before it was recorded so) is the 'color,cutout' it resumes with."""
    if key == "loss.diffaugment" and isinstance(old, str) and isinstance(new, str):
        try:
            return parse_policy(old) == parse_policy(new)
        except ConfigError:
            return False
    if key in PATH_KEYS and isinstance(old, str) and isinstance(new, str) and old and new and old != new:
        # one folder spelled two ways ('imgs/', './imgs', its absolute path) is the same setting
        return Path(old).expanduser().resolve() == Path(new).expanduser().resolve()
    return old == new


def _changed_model_keys(saved: dict[str, Any], config: Config, versions: dict[str, str] | None = None) -> str:
    """Which keys that shape the networks differ between the run's saved config and this one
    (`versions`: the checkpoint's `written_by`, named when no key differs)."""
    def shaping(tree: dict[str, Any]) -> dict[str, Any]:
        values = flatten_config(tree.get("model", {}), "model.")
        for key in ("data.resolution", "data.scale", "train.ema_decay"):
            section, name = key.split(".")
            values[key] = tree.get(section, {}).get(name)
        return values

    if saved.get("recipe") != config.recipe:  # a file of another run: listing every key would hide that
        return (f"The checkpoint was trained by recipe '{saved.get('recipe')}', this config is '{config.recipe}': it "
                "belongs to another run; move it out of this run directory.")
    then, now = shaping(saved), shaping(config_to_dict(config))
    changed = [key for key in sorted(set(then) | set(now)) if then.get(key) != now.get(key)]
    # (a discriminator is built for any weight but 0, by the recipes that read it: named when one of the two is 0)
    weights = [tree.get("loss", {}).get("adversarial_weight") for tree in (saved, config_to_dict(config))]
    reads_it = recipe_reads(config.recipe, "loss.adversarial_weight")
    if reads_it and None not in weights and (weights[0] == 0) != (weights[1] == 0):
        then["loss.adversarial_weight"], now["loss.adversarial_weight"] = weights
        changed.append("loss.adversarial_weight")
    if not changed:
        now_versions = written_by()
        if versions is not None and versions.get("gan") != now_versions["gan"]:
            return (f"The run's config and this one build it alike; the checkpoint was written by gan "
                    f"{versions.get('gan')}, this is gan {now_versions['gan']}: resume it with that version.")
        known = "" if versions is not None else " (it names none: written before checkpoints did)"
        return f"The run's config and this one build it alike; the checkpoint may come from another version of gan{known}."
    def shown(values: dict[str, Any], key: str) -> str:  # (a None default is left out of config.toml: unset)
        return f"{key} = {values[key]!r}" if values.get(key) is not None else f"{key} unset (the network's default)"

    unset = any(then.get(key) is None for key in changed)
    return ("The run was trained with " + ", ".join(shown(then, key) for key in changed) +
            "; this config has " + ", ".join(shown(now, key) for key in changed) +
            ". Set them back (--set KEY=VALUE" + ("; for a key the run left unset, leave out its --set" if unset else "")
            + ") or train a new run.")


def training_state(recipe: Recipe, config: Config, step: int, samples_seen: int) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "step": step,
        "samples_seen": samples_seen,
        "config": config_to_dict(config),
        "specs": {name: spec.to_dict() for name, spec in recipe.specs.items()},
        "networks": {name: network.state_dict() for name, network in recipe.networks.items()},
        "optimizers": {name: plain_optimizer_state(optimizer) for name, optimizer in recipe.optimizers.items()},
        "recipe": recipe.state_dict(),
        "rng": capture_rng_state(),
        "written_by": written_by(),  # (optional: checkpoints of earlier versions have none)
    }


TRAINING_STATE = {"step": int, "samples_seen": int, "config": dict, "networks": dict, "optimizers": dict,
                  "recipe": dict, "rng": dict}  # what a checkpoint must hold for a resume


def check_training_state(state: dict[str, Any], path: Path) -> None:
    """A checkpoint that lacks part of the training state is malformed (an export, say, or a
    hand-edited file): CheckpointError, so that a resume falls back as from a corrupt one."""
    for key, kind in TRAINING_STATE.items():
        if not isinstance(state.get(key), kind):
            raise CheckpointError(f"checkpoint '{path}' is malformed: it has no '{key}' (a checkpoint of "
                                  "`gan train` holds the whole training state; an export holds weights only)")
    for key in ("step", "samples_seen"):  # (bool is an int, and a count is never negative)
        if isinstance(state[key], bool) or state[key] < 0:
            raise CheckpointError(f"checkpoint '{path}' is malformed: its '{key}' is {state[key]!r}, not a count "
                                  "of 0 or more")
    problem = rng_state_problem(state["rng"])
    if problem is not None:
        raise CheckpointError(f"checkpoint '{path}' is malformed: its random-number state cannot be restored "
                              f"({printable(problem)})")


# BatchNorm's running statistics: an EMA generator's are copied from the trained one at each step (and
# recomputed for its weights before outputs), so a NaN there is gone by the next checkpoint
RUNNING_STATISTICS = ("running_mean", "running_var")


def check_finite_state(state: dict[str, Any], path: Path) -> None:
    """CheckpointError naming the first weight or optimizer moment of a checkpoint's `state` that is NaN
    or infinite (gan never saves one: an edit, another tool, damage its zip's checksums pass), so that a
    resume falls back as from a corrupt one: resumed, the run diverged at its next step, the file was
    named its last good checkpoint and --on-nan rollback halved the rates for it. (As training's own
    watch reads them: a trained network's BatchNorm statistics too, an EMA copy's not.)"""
    for name, weights in state["networks"].items():
        if not isinstance(weights, dict):
            raise CheckpointError(f"checkpoint '{path}' is malformed: its network '{name}' is no state dict")
        kept = {key: tensor for key, tensor in weights.items() if isinstance(tensor, torch.Tensor)
                and not (name.endswith("_ema") and key.endswith(RUNNING_STATISTICS))}
        refuse_non_finite(kept, path, f"network '{name}'")
    for name, optimizer in state["optimizers"].items():
        moments = optimizer.get("state") if isinstance(optimizer, dict) else None
        moments = moments if isinstance(moments, dict) else {}
        refuse_non_finite({f"{index}.{key}": tensor for index, tensors in moments.items() if isinstance(tensors, dict)
                           for key, tensor in tensors.items() if isinstance(tensor, torch.Tensor)}, path,
                          f"optimizer '{name}' state")  # (a malformed one: its restore says so, falling back)


def load_optimizer_state(optimizer: torch.optim.Optimizer, saved: dict[str, Any]) -> None:
    """The saved moments and step counts, under the hyperparameters the optimizer was built with
    from this config (betas, base rate, kernel): `load_state_dict` would bring back the saved ones,
    so a resume with `--set train.beta1=...` would announce a change it never made."""
    configured = [{key: value for key, value in group.items() if key not in ("params", "lr")}
                  for group in optimizer.param_groups]
    optimizer.load_state_dict(saved)
    for group, settings in zip(optimizer.param_groups, configured):
        group.update(settings)
        on_device = group.get("fused") or group.get("capturable")  # (else the step count lives on the CPU)
        for parameter in group["params"]:
            moments = optimizer.state.get(parameter, {})
            if isinstance(moments.get("step"), torch.Tensor):
                moments["step"] = moments["step"].to(parameter.device if on_device else "cpu", torch.float32)


def restore_training_state(recipe: Recipe, state: dict[str, Any], config: Config, path: Path) -> None:
    """Load the training state; a network this config builds differently from the run's is a
    ConfigError naming it, the first parameter that differs and the config keys that changed, and
    an optimizer or recipe state that cannot be restored a CheckpointError (the file is damaged:
    `newest_loadable_checkpoint` falls back to the checkpoint before)."""
    for name, network in recipe.networks.items():
        weights = state["networks"].get(name)
        mismatch = (f"the checkpoint has no network '{name}'" if weights is None
                    else first_mismatch(network.state_dict(), weights))
        if mismatch:
            raise ConfigError(f"cannot resume from '{path}': network '{name}' of this config does not fit: "
                              f"{mismatch}. {_changed_model_keys(state['config'], config, writers_of(state))}")
        network.load_state_dict(weights)
    try:  # (what a recipe's own state holds only it knows: a hand-made one was a traceback here)
        for name, optimizer in recipe.optimizers.items():
            load_optimizer_state(optimizer, state["optimizers"][name])
        recipe.load_state_dict(state["recipe"])
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
        raise CheckpointError(f"checkpoint '{path}' is malformed: its optimizer or recipe state cannot be restored "
                              f"({type(error).__name__}: {printable(error)})") from None
    restore_rng_state(state["rng"])
