"""What a recipe is: the part of training that knows the GAN math for one family.

The training loop (gan/training/loop.py) owns everything else: device, seeding, precision,
data iteration, learning-rate schedule, checkpoints, logging, progress, signals.
A recipe is constructed as `Recipe(config, device, autocast)` and provides:

- `networks`: dict name -> nn.Module; every module whose weights are trained or
  kept (an EMA copy too). Saved and restored by name.
- `optimizers`: dict name -> torch.optim.Optimizer, each with a `base_lr` in its
  param groups; the loop sets `lr = base_lr * schedule(step)`.
- `specs`: dict name -> NetworkSpec for the networks others rebuild from a
  checkpoint (the generator for `gan sample`).
- `initial_generator`: where the generator's weights came from when model.init_generator named a
  trained one (`build_networks` loads it): {"checkpoint": the file, "step", "sha256"}, and
  "discriminator": True when model.init_discriminator took that file's discriminator too; kept in
  every checkpoint of the run; None for random weights.
- `check(config)` (a classmethod): every network's spec, checked against the config
  without building the recipe (`gan sweep` checks each grid point with it).
- `build_dataset()`: the training data set; items are dicts of tensors.
- `step(batch, step) -> dict[str, Tensor]`: one training iteration on a batch
  already on the device; returns 0-d tensors to log (`loss/...`, `d/real`, ...).
  Values stay on the device: the loop reads them back only when it logs.
- `preview() -> dict[str, Tensor]`: image batches (N, 3, H, W) in [-1, 1] to show
  as grids; must not change training state (the loop runs it, like every side task below, on
  its own random stream: what it draws leaves training's draws as they were).
- `state_dict()` / `load_state_dict()`: any other state to checkpoint.
- optionally `validation_metrics() -> dict[str, float]`: validation metrics (`val/psnr`, ...),
  logged every `log.eval_every` steps, with a progress line on `self.validation_progress` (set by
  the loop), and given up at the next image or batch once `self.validation_stop()` says a stop came
  (`stoppable_progress`'s `stop_noted`, which raises PassStopped); must not change training state.
- optionally `evaluation_images`, a `RunEvaluationSet` (gan/recipes/image_to_image.py): the images
  validation scores, read once; where they change, a best.pt kept by a `val/` metric is set aside
  rather than compared with scores of other images (without it, nothing is set aside).
- optionally `evaluation_generator() -> nn.Module`: an unconditional generator (with
  `latent_dim`) whose samples `[metrics]` scores against the data (FID, KID, SWD).
- optionally `prepare_outputs(step)`: called before the previews, metrics or checkpoint
  of a step (e.g. to recompute an averaged generator's BatchNorm statistics); must not
  change what training computes.
- the regularisers of D, set up here for every recipe with a discriminator: `self.r1` (lazy R1,
  gan/recipes/losses.py; `r1.due(step)` belongs in the graph key) and `self.for_discriminator(images)`,
  DiffAugment (gan/recipes/augment.py) of every image D sees when `loss.diffaugment` is set, after
  `use_diffaugment()`; each D step passes its logits on reals to `observe_real_logits` (an
  adaptive `loss.augment_p` steers by them) and logs `augment_metrics()`.
- `before_step(step)`: called by the loop before each step, outside any captured graph: fills the
  device tensors through which a step reads host values that change with the step (DCGAN's annealed
  instance-noise std), as the loop fills the learning rates. RecipeBase's does nothing.
- `graph_key(step)`: the host values `step(batch, step)` depends on at `step`, for
  `train.cuda_graph` (gan/training/cuda_graphs.py): steps with equal keys launch the same GPU work,
  so one captured graph replays them all; None runs the step eagerly (RecipeBase's
  default, for a recipe whose step decides something on the host).

`RecipeBase` (below) provides the set-up they share: `config`/`device`/`autocast`,
`build_dataset`, a `preview_batch()` loaded once, the regularisers, `update_discriminators`
(R1 when due, the optimizer step, the gradient norm), and a `state_dict` holding DiffAugment's
state when it is on. Recipes subclass it and nothing else: no recipe inherits from another.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Callable, Hashable, Protocol, TextIO

import torch
from torch import nn
from torch.utils.data import Dataset

from gan.core.checkpoint import CheckpointError, load_checkpoint, refuse_non_finite, resolve_checkpoint
from gan.core.config import Config, TrainConfig, config_from_dict
from gan.core.files import file_sha256
from gan.core.inert import discriminator_steps
from gan.core.registry import ConfigError
from gan.core.wording import printable
from gan.data import build_dataset
from gan.data.image_files import preview_items
from gan.nets import NetworkSpec
from gan.recipes.augment import AdaptiveProbability, DiffAugment
from gan.recipes.losses import AdversarialLoss, LazyR1
from gan.recipes.schedules import adversarial_on

AutocastFactory = Callable[[], AbstractContextManager]
# What a step measures only while the discriminator trains. Before `train.adversarial_start` a step
# returns zeros in their place (one set of outputs, as a captured graph keeps), which the loop leaves
# out of its means: a window's loss/d is the mean of the steps that had one, not diluted by zeros.
DISCRIMINATOR_METRICS = frozenset({
    "loss/d", "loss/d_A", "loss/d_B", "d/real", "d/fake", "d_A/real", "d_A/fake", "d_B/real", "d_B/fake",
    "grad/discriminator", "loss/r1", "loss/g_adversarial", "loss/g_A", "loss/g_B", "augment/p", "augment/rt"})
_LAZY_R1_IDLE = frozenset({"loss/r1"})
_UNMEASURED_RT = frozenset({"augment/rt"})  # adaptive p's r_t holds its last measurement between them
RGB_CHANNELS = 3  # every data set yields RGB images (gan/data/decode.py converts whatever it reads)
# What model.init_generator holds for a generator of random weights: nothing, or the word
RANDOM_START = ("", "none")
# The methods every recipe defines beyond RecipeBase's (docs/layout.md), each as its refusal says what it does
REQUIRED_METHODS = {
    "step": "step(batch, step), which trains one step on a batch and returns the values to log",
    "preview": "preview(), which gives the image batches shown every log.image_every steps",
}


def require_rgb(spec: NetworkSpec, key: str, *args: str) -> None:
    """The channel counts `args` of network `spec` (set under `key`) that meet the data set's images
    must be 3: a network of other channels fails at its first step, far from the setting."""
    for arg in args:
        value = spec.kwargs.get(arg, RGB_CHANNELS)
        if value != RGB_CHANNELS:
            raise ConfigError(f"{key}.{arg} = {value} does not fit the data: its images are RGB ({RGB_CHANNELS} "
                              f"channels); set {key}.{arg} = {RGB_CHANNELS} or leave it out")


class Recipe(Protocol):
    networks: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    specs: dict[str, NetworkSpec]
    initial_generator: dict[str, Any] | None

    def __init__(self, config: Config, device: torch.device, autocast: AutocastFactory): ...

    def build_dataset(self) -> Dataset: ...

    def step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]: ...

    def before_step(self, step: int) -> None: ...

    def graph_key(self, step: int) -> Hashable | None: ...

    def idle_metrics(self, step: int) -> frozenset[str]: ...

    def device_generators(self) -> list[torch.Generator]: ...

    def preview(self) -> dict[str, torch.Tensor]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class RecipeBase:
    """The set-up every recipe shares; recipes subclass it, never each other.

    It keeps `config`, `device` and `autocast`, builds the training set from `[data]`,
    loads the fixed evaluation batch for previews once (`preview_batch`), and has no state
    of its own to checkpoint unless a recipe overrides `state_dict`/`load_state_dict`.
    """

    # The weight of the adversarial term when loss.adversarial_weight is left at -1.
    default_adversarial_weight = 1.0
    # The data sets whose batches the recipe's step reads (empty: any).
    datasets: tuple[str, ...] = ()
    # The networks of which, with train.ema_decay > 0, the recipe keeps (and checkpoints) an
    # exponential moving average as `<name>_ema`.
    averaged: tuple[str, ...] = ()
    # The network arguments the recipe gives each role (`network_spec`'s keywords): never filled from a
    # constructor's default into model.<role>_args, which would then read as set by the user.
    supplied_args: dict[str, tuple[str, ...]] = {}

    @classmethod
    def adversarial_weight_default(cls, name: str) -> float:
        """`default_adversarial_weight` for the recipe registered as `name` (a class may serve several)."""
        return cls.default_adversarial_weight

    @classmethod
    def check(cls, config: Config) -> dict[str, NetworkSpec]:
        """Every network the recipe builds from `config`, as specs checked against the config (names,
        arguments, and sizes that fit the data), without building the recipe: no weights, data or
        memory (`gan sweep` checks each grid point with it). ConfigError names what does not fit."""
        if cls.datasets and config.data.dataset not in cls.datasets:  # else a batch without its keys, in step 1
            raise ConfigError(f"recipe '{config.recipe}' trains on data.dataset "
                              f"{' or '.join(repr(name) for name in cls.datasets)}, not '{config.data.dataset}'")
        if config.metrics.every and not hasattr(cls, "evaluation_generator"):
            # (by what it has: one of one's own may have no validation metrics to send the user to)
            instead = ("reports validation metrics instead (log.eval_every)" if hasattr(cls, "validation_metrics")
                       else "has no evaluation_generator (gan/recipes/base.py), the generator of latents they score")
            raise ConfigError(f"metrics.every: generative metrics are for unconditional recipes such as dcgan; "
                              f"recipe '{config.recipe}' {instead}; leave metrics.every at 0")
        specs = cls.network_specs(config)
        cls._refuse_missing_methods(config)
        if config.model.init_generator not in RANDOM_START and "generator" not in specs:  # (cyclegan's two)
            generators = [name for name, spec in specs.items() if spec.role == "generator"]
            trained = f"{len(generators)} generators ({', '.join(generators)})" if generators else "no generator"
            raise ConfigError(f"model.init_generator = '{config.model.init_generator}': recipe '{config.recipe}' "
                              f"trains {trained}, not one network named generator, so there is none to start from a "
                              "trained one (dcgan, pix2pix, srresnet and srgan have one); leave model.init_generator out")
        if config.model.init_discriminator and config.model.init_generator in RANDOM_START:
            raise ConfigError("model.init_discriminator = true takes the discriminator from the checkpoint that "
                              "model.init_generator names, and it names none: set model.init_generator too")
        return specs

    @classmethod
    def _refuse_missing_methods(cls, config: Config) -> None:
        """ConfigError naming each of REQUIRED_METHODS the recipe lacks: without step the run failed in a
        traceback after its start line, without preview at its first log.image_every (and at each resume)."""
        missing = [said for method, said in REQUIRED_METHODS.items() if not callable(getattr(cls, method, None))]
        if missing:
            raise ConfigError(f"recipe '{config.recipe}' (class {cls.__name__}) defines no {'; nor '.join(missing)} "
                              "(gan/recipes/dcgan.py has an example): every recipe defines "
                              f"{'it' if len(missing) == 1 else 'them'}")

    @classmethod
    def inert_keys(cls, config: Config) -> dict[str, str]:
        """key -> `key = value`, for each key `config` sets that this recipe, as configured, never reads
        (a discriminator's settings where none is trained): warned of, and two sweep runs that differ
        only in them are the same run."""
        return {}

    @classmethod
    def network_specs(cls, config: Config) -> dict[str, NetworkSpec]:
        """The recipe's networks by name (one spec per network built), each checked; see `check`."""
        # (a ConfigError: the recipe the config names cannot run, said in one line by every command)
        raise ConfigError(f"recipe '{config.recipe}' (class {cls.__name__}) defines no network_specs(config), the "
                          "classmethod that names its networks as specs (gan/recipes/dcgan.py has an example): every "
                          "recipe defines it")

    def __init__(self, config: Config, device: torch.device, autocast: AutocastFactory):
        self.config, self.device, self.autocast = config, device, autocast
        self.specs: dict[str, NetworkSpec] = {}
        self.initial_generator: dict[str, Any] | None = None  # (set by `build_networks` where it loads one)
        self._preview_batch: dict[str, torch.Tensor] | None = None
        self.r1 = LazyR1(config.loss.r1_gamma, config.loss.r1_every, device)
        # Where adaptive p's interval stood: (a step, the D steps counted since r_t's last measurement
        # at its end). A resume restores the count, whose step is the one before the next `idle_metrics`:
        # its interval goes on from there, whatever d_steps or adversarial_start the run had before.
        self._interval_anchor: tuple[int | None, int] = (0, 0)
        self.augment: DiffAugment | None = None
        # Where `validation_metrics` shows its progress (the loop gives its own stream on rank 0); None: silent
        self.validation_progress: TextIO | None = None
        # Whether a stop came, for validation to give up at its next image (the loop's, in one process); None: never
        self.validation_stop: Callable[[], bool] | None = None

    def build_networks(self, kept: tuple[str, ...]) -> dict[str, nn.Module]:
        """`check`'s networks, built in its order on the device, the generator with the trained weights
        model.init_generator names (before any copy of it, an EMA, is made); `self.specs` keeps those
        named in `kept` (what a checkpoint keeps to rebuild them: the generators)."""
        specs = self.check(self.config)
        self.specs = {name: specs[name] for name in kept}
        built = {name: spec.build().to(self.device) for name, spec in specs.items()}
        if self.config.model.init_generator not in RANDOM_START:
            self._start_from_trained(built, specs)
        return built

    def _start_from_trained(self, built: dict[str, nn.Module], specs: dict[str, NetworkSpec]) -> None:
        """Load into the generator of `built` (of `specs`) the trained generator of the checkpoint that
        model.init_generator names (a run directory: its newest), and with model.init_discriminator its
        discriminator too, through the checks every reader of a checkpoint makes (gan/recipes/loading.py):
        each problem one ConfigError naming the key, the file and the entry."""
        from gan.recipes.loading import build_generator, checked_spec, checked_state  # (it imports this module)

        try:
            path = resolve_checkpoint(Path(self.config.model.init_generator))
            state = checked_state(load_checkpoint(path), path)
            stored_specs, recipe = state["specs"], state["config"]["recipe"]
            if "generator" not in stored_specs and any(name.startswith("generator") for name in stored_specs):
                raise ConfigError(f"model.init_generator '{path}' holds no single generator (a {recipe} run, of "
                                  f"{', '.join(stored_specs)}): give a run of dcgan, pix2pix, srresnet or srgan, whose "
                                  "one generator this run starts from")
            self._refuse_another_network("model.init_generator", checked_spec(stored_specs.get("generator"), path,
                                                                              "generator"), specs["generator"], path, recipe)
            trained, _ = build_generator(state, path, "generator", which="live")
        except CheckpointError as error:  # (which key gave the path: a run has several)
            raise ConfigError(f"model.init_generator: {error}") from None
        built["generator"].load_state_dict(trained.state_dict())
        self.initial_generator = {"checkpoint": str(path), "step": state["step"], "sha256": file_sha256(path)}
        if self.config.model.init_discriminator and "discriminator" in built:  # (none: an inert key, warned of)
            self._start_discriminator_from(state, path, built["discriminator"], specs["discriminator"])
            self.initial_generator["discriminator"] = True

    def _start_discriminator_from(self, state: dict[str, Any], path: Path, discriminator: nn.Module,
                                  wanted: NetworkSpec) -> None:
        """Load into `discriminator` (of spec `wanted`) the discriminator of checkpoint `state` (read from
        `path`), built by its own recipe from its own config: the spec a checkpoint keeps is the generators'."""
        from gan.recipes import RECIPES  # (it imports this module)

        key, stored_config, recipe = "model.init_discriminator", state["config"], state["config"]["recipe"]
        weights = state["networks"].get("discriminator")
        try:
            stored = RECIPES.get(recipe).network_specs(config_from_dict(stored_config)).get("discriminator")
        except (ConfigError, ValueError) as error:
            raise ConfigError(f"{key}: '{path}' holds a config its recipe '{recipe}' no longer builds: "
                              f"{printable(str(error))}") from None
        if stored is None or not isinstance(weights, dict):
            raise ConfigError(f"{key}: '{path}' holds no discriminator (a {recipe} run that trained none, or not a "
                              "checkpoint of `gan train`): leave model.init_discriminator out to train a fresh one")
        self._refuse_another_network(key, stored, wanted, path, recipe)
        try:
            loaded = wanted.load(weights, f"'{path}'")
            refuse_non_finite(weights, path, "discriminator")
        except (ValueError, CheckpointError) as error:
            raise ConfigError(f"{key}: {error}") from None
        discriminator.load_state_dict(loaded.state_dict())

    def _refuse_another_network(self, key: str, stored: NetworkSpec, wanted: NetworkSpec, path: Path,
                                recipe: str) -> None:
        """ConfigError (of `key`) when the checkpoint at `path` (of a `recipe` run) holds a network built
        otherwise than this config's `wanted`: another network said as such, the same one with each
        argument that differs."""
        role = wanted.role
        if stored.name != wanted.name:  # (its arguments are another network's: listing them hides that)
            raise ConfigError(f"{key} '{path}' holds a {stored.name} {role} (a {recipe} run), not {wanted.name}: "
                              f"give a run of this config's {role}, or set model.{role} = \"{stored.name}\" and its "
                              f"model.{role}_args as that run had them")
        supplied = self.supplied_args.get(role, ())  # (set from [data], as data.scale)
        keys = {arg: f"data.{arg}" if arg in supplied and hasattr(self.config.data, arg) else arg
                for arg in sorted(set(stored.kwargs) | set(wanted.kwargs))}
        differing = {arg: name for arg, name in keys.items() if stored.kwargs.get(arg) != wanted.kwargs.get(arg)}
        differences = [f"{name} = {stored.kwargs.get(arg)!r} where this config has {wanted.kwargs.get(arg)!r}"
                       for arg, name in differing.items()]
        if differences:  # (a data key only where its argument differs: one that matches needs no setting)
            data_keys = [name for name in differing.values() if name.startswith("data.")]
            raise ConfigError(f"{key} '{path}' holds another {stored.name} {role}: {'; '.join(differences)}; set "
                              f"{' and '.join([f'model.{role}_args', *data_keys])} as that run had them")

    def use_diffaugment(self, image_channels: tuple[int, ...] = (3,)) -> None:
        """DiffAugment from `loss.diffaugment` (none when it is empty) for a D that sees images of
        `image_channels` stacked on channels (pix2pix: input and output)."""
        loss = self.config.loss
        if loss.diffaugment:
            p = loss.augment_p
            if p == "adaptive":
                boundary = AdversarialLoss(loss.adversarial, loss.label_smoothing).boundary
                p = AdaptiveProbability(loss.augment_target, loss.augment_interval, loss.augment_images, boundary,
                                        self.device)
            self.augment = DiffAugment(loss.diffaugment, self.device, self.config.train.seed, image_channels, p)

    def for_discriminator(self, images: torch.Tensor) -> torch.Tensor:
        """What D sees of `images`: augmented (freshly drawn) when DiffAugment is on, else themselves."""
        return self.augment(images) if self.augment else images

    @property
    def adaptive_augment(self) -> AdaptiveProbability | None:
        """The adaptive `loss.augment_p`, when there is one."""
        return self.augment.adaptive if self.augment else None

    def observe_real_logits(self, real_logits: torch.Tensor) -> None:
        """D's outputs on the reals of a D step, which steer an adaptive `loss.augment_p`."""
        if self.adaptive_augment:
            self.adaptive_augment.observe(real_logits)

    def update_discriminators(self, loss: torch.Tensor, step: int,
                              *real_inputs: tuple[nn.Module, torch.Tensor]) -> torch.Tensor:
        """One step of the discriminator optimizer on `loss`, plus the R1 penalty on each
        (discriminator, its real inputs) when due: the discriminators' gradient norm after the step."""
        if self.r1.due(step):
            loss = loss + self.r1(*[(lambda images, net=net: net(self.for_discriminator(images)), inputs)
                                    for net, inputs in real_inputs])
        optimizer = self.optimizers["discriminator"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return gradient_norm(*(net for net, _ in real_inputs))

    def augment_metrics(self) -> dict[str, torch.Tensor]:
        """augment/p and augment/rt to log, when `loss.augment_p` is adaptive."""
        adaptive = self.adaptive_augment
        return {"augment/p": adaptive.p.clone(), "augment/rt": adaptive.rt.clone()} if adaptive else {}

    def device_generators(self) -> list[torch.Generator]:
        """Random generators, other than the default ones, that a training step draws from on the
        device: a captured CUDA graph must advance them at each replay."""
        return [self.augment.generator] if self.augment else []

    @staticmethod
    def refuse_regularisers(config: Config, why: str) -> None:
        """Stop with a clear error when R1 or DiffAugment is set for a run without a discriminator."""
        for key, value in (("loss.r1_gamma", config.loss.r1_gamma), ("loss.diffaugment", config.loss.diffaugment)):
            if value:
                raise ConfigError(f"{key} regularises a discriminator, and {why}")

    def build_dataset(self) -> Dataset:
        return build_dataset(self.config.data, train=True)

    def preview_batch(self) -> dict[str, torch.Tensor]:
        """The first `log.num_samples` evaluation items as batches on the device, loaded once."""
        if self._preview_batch is None:
            self._preview_batch = {key: value.to(self.device) for key, value in self.load_preview_items().items()}
        return self._preview_batch

    def evaluation_dataset(self) -> Dataset:
        """The evaluation set the previews are taken from (a recipe that validates on it too keeps it)."""
        return build_dataset(self.config.data, train=False)

    def load_preview_items(self) -> dict[str, torch.Tensor]:
        """The first `log.num_samples` readable evaluation items, stacked key by key."""
        items = preview_items(self.evaluation_dataset(), self.config.log.num_samples)
        return {key: torch.stack([item[key] for item in items]) for key in items[0]}

    def before_step(self, step: int) -> None:
        pass

    def graph_key(self, step: int) -> Hashable | None:
        return None

    def idle_metrics(self, step: int) -> frozenset[str]:
        """The metrics `step` returns as placeholders: the discriminator's, before it trains, a lazy
        R1's between the steps that compute it (loss/r1 is the mean of those that do: a value held
        over from an earlier step would weigh in again, and not after a resume), and adaptive p's r_t
        between its measurements, which it holds (augment/rt is the mean of those measured in a
        window; augment/p the mean of p over the window's steps)."""
        if not adversarial_on(step, self.config.train):
            return DISCRIMINATOR_METRICS
        idle = frozenset() if self.r1.due(step) or not self.r1.enabled else _LAZY_R1_IDLE
        if self.adaptive_augment:  # r_t is measured at the steps that end an interval of D steps
            anchor, counted = self._interval_anchor
            if anchor is None:
                anchor, self._interval_anchor = step - 1, (step - 1, counted)

            interval = self.config.loss.augment_interval
            # observe() measures once its count reaches the interval, then counts from 0: the first
            # measurement is at D step `first` after the anchor (the next one when a resume lowered
            # the interval below the count restored), then every `interval`
            first = max(1, interval - counted)

            def measurements(at: int) -> int:
                done = discriminator_steps(self.config, at) - discriminator_steps(self.config, anchor)
                return 0 if done < first else (done - first) // interval + 1

            if measurements(step) == measurements(step - 1):
                idle |= _UNMEASURED_RT
        return idle

    def state_dict(self) -> dict[str, Any]:
        return {"augment": self.augment.state_dict()} if self.augment else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.augment and "augment" in state:  # (a run started without DiffAugment has none: a fresh seed)
            self.augment.load_state_dict(state["augment"])
        if self.adaptive_augment:  # (one read, at the resume: steps never wait on it)
            self._interval_anchor = (None, int(self.adaptive_augment.totals[3]))


def set_requires_grad(network: nn.Module, flag: bool) -> None:
    """Freeze or unfreeze a network (e.g. D during the generator update: no D weight gradients)."""
    for parameter in network.parameters():
        parameter.requires_grad_(flag)


def gradient_norm(*networks: nn.Module) -> torch.Tensor:
    """The L2 norm of every parameter gradient of `networks` together (0 when there is none), as a
    device tensor: logged as grad/<network>, read back only at log points. Taken after the
    optimizer's step, whose pre-hook averages the gradients over torchrun's processes: the norm of
    the global batch's gradient, as one process with it logs, not a mean of each share's."""
    grads = [parameter.grad for network in networks for parameter in network.parameters()
             if parameter.grad is not None]
    if not grads:
        return torch.zeros((), device=next(networks[0].parameters()).device)
    return torch.linalg.vector_norm(torch.stack([norm.float() for norm in torch._foreach_norm(grads)]))


def adam(networks: nn.Module | list[nn.Module], lr: float, train: TrainConfig,
         device: torch.device) -> torch.optim.Adam:
    """Adam over the networks' parameters with `train.beta1/beta2`, as GAN papers use it.

    `train.optimizer_kernel`: fused (one kernel for all tensors; the auto choice on CUDA),
    foreach (batched per group; auto on the CPU) or loop (tensor by tensor).
    """
    networks = networks if isinstance(networks, list) else [networks]
    parameters = [parameter for network in networks for parameter in network.parameters()]
    kernel = train.optimizer_kernel
    if kernel == "auto":
        kernel = "fused" if device.type == "cuda" else "foreach"
    options = {"fused": {"fused": True}, "foreach": {"foreach": True}, "loop": {"foreach": False}}[kernel]
    return torch.optim.Adam(parameters, lr=lr, betas=(train.beta1, train.beta2), **options)
