"""Data-parallel training over processes started by torchrun (NCCL on CUDA, gloo on the CPU).

    torchrun --nproc_per_node=4 -m gan train CONFIG

Each process holds the whole model, seeded alike, and trains on its shard of every
global batch (`train.batch_size` is the global batch). Before every optimizer step the
gradients of its parameters are averaged over all processes, in one flat all-reduce per
optimizer. That is DistributedDataParallel's arithmetic, done at the optimizer rather
than in a module wrapper: GAN steps run D several times per update and freeze it during
G's, which DDP's per-forward bookkeeping does not allow without `no_sync` juggling
(StyleGAN3 syncs gradients the same way). Random inputs a recipe draws per step (latents,
instance noise, DiffAugment's, WGAN-GP's mixing points: `gan.recipes.losses.shard_draw`) are
drawn for the global batch and sliced, so N processes compute what one process with
the global batch would, up to float summation order, dropout masks and BatchNorm
statistics, which stay per process unless `train.sync_batchnorm` (CUDA only).

Only rank 0 writes: logs, grids, metrics, checkpoints.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Iterator

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Sampler

from gan.core.registry import ConfigError


@dataclass(frozen=True)
class ProcessGroup:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


SINGLE_PROCESS = ProcessGroup()  # immutable: safe as a default argument


def from_environment() -> ProcessGroup:
    """The group torchrun describes in RANK / WORLD_SIZE / LOCAL_RANK (and MASTER_ADDR / MASTER_PORT,
    where the processes meet); one process otherwise. ConfigError naming the variable when they do
    not describe a group, as a WORLD_SIZE set by hand without torchrun's other variables would not."""
    world_size = _whole_number("WORLD_SIZE", 1, "the number of processes, >= 1")
    if world_size == 1:
        return SINGLE_PROCESS
    for name in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        if not os.environ.get(name):
            raise ConfigError(f"WORLD_SIZE = {world_size} in the environment, but {name} is not set: torchrun sets "
                              f"both (torchrun --nproc_per_node={world_size} -m gan train ...); unset WORLD_SIZE to "
                              "train in one process")
    _whole_number("MASTER_PORT", 0, "a TCP port, 1 to 65535", 1, 65535)
    rank = _whole_number("RANK", 0, f"this process's rank, 0 to WORLD_SIZE - 1 = {world_size - 1}", 0, world_size - 1)
    local_rank = _whole_number("LOCAL_RANK", 0, f"this process's rank on its machine, 0 to {world_size - 1}", 0,
                               world_size - 1)
    return ProcessGroup(rank, world_size, local_rank)


def _whole_number(name: str, default: int, expected: str, low: int = 1, high: int | None = None) -> int:
    """The environment variable `name` as an integer in [low, high] (`default` when unset)."""
    text = os.environ.get(name, str(default)).strip()
    value = int(text) if re.fullmatch(r"[+-]?\d{1,18}", text) else None
    if value is None or value < low or (high is not None and value > high):
        raise ConfigError(f"{name} = {text!r} in the environment: expected {expected} (torchrun sets it)")
    return value


class GroupJoinError(Exception):
    """This process could not join torchrun's process group: said by the process itself, whatever its rank."""


def initialise(group: ProcessGroup, device: torch.device, timeout_s: float = 3600) -> None:
    """Join the process group: NCCL for CUDA devices, gloo for the CPU.

    `timeout_s` bounds every collective. The other ranks wait in one while rank 0 alone
    writes a checkpoint, scores samples or builds the data cache, so it must exceed the
    longest of those (`train.dist_timeout_s`; PyTorch's default is 10 min for NCCL)."""
    if group.distributed and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        try:
            dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s),
                                    device_id=device if device.type == "cuda" else None)
        except (RuntimeError, ValueError) as error:  # (a network setting of this machine: a traceback before)
            _raise_if_a_restart_failed_to_join(error, group, backend)
            if "timeout" in str(error).lower() or "timed out" in str(error).lower():
                raise  # (the others not there in time: said as a lost process, naming train.dist_timeout_s)
            first_line = _first_line(error)
            raise GroupJoinError(f"rank {group.rank} could not join the {backend} process group at "
                                 f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')} "
                                 f"({first_line[:300]}): check this machine's network settings "
                                 f"({backend.upper()}_SOCKET_IFNAME names the interface to use) and that every "
                                 "machine reaches the rendezvous") from None


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _raise_if_a_restart_failed_to_join(error: BaseException, group: ProcessGroup, backend: str) -> None:
    """GroupJoinError, in one line, for a process of torchrun's restart (--max-restarts) that could
    not form a group again: gloo's mesh may not (pytorch/pytorch#167288), and "timed out connecting"
    there is no rank that failed to come but a mesh that failed to form."""
    restart = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    if restart.isdigit() and int(restart) > 0:
        raise GroupJoinError(f"rank {group.rank} could not join the {backend} process group again after torchrun's "
                             f"restart {restart} ({_first_line(error)[:300]}): start the same command again, which "
                             "resumes the --run-dir") from None


def barrier(group: ProcessGroup) -> None:
    """Wait until every process gets here."""
    if group.distributed:
        dist.barrier()


def shutdown(group: ProcessGroup) -> None:
    if group.distributed and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_object(value: Any, group: ProcessGroup) -> Any:
    """Rank 0's `value` on every rank (a run directory's path, say)."""
    if not group.distributed:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def any_rank(flag: bool, group: ProcessGroup, device: torch.device) -> bool:
    """True on every rank if `flag` is true on any (a stop signal that reached one process)."""
    if not group.distributed:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


class StopVote:
    """Agreement on a stop at every step with no wait for it: each step posts whether a signal
    reached this process, in an all-reduce over a CPU (gloo) group of its own that runs beside the
    step, and reads the vote the step before posted. Every process reads the same vote at the same
    step, so all stop at one step: the one after the signal (two after, for a signal during rank 0's
    side tasks, after its step's vote). (Agreeing at log points alone left a
    stop 50 slow steps away, past torchrun's 30 s grace before SIGKILL: no checkpoint was written.)"""

    def __init__(self, group: ProcessGroup, timeout_s: float = 3600):
        self._group = None
        if group.distributed:
            # (`timeout_s`: train.dist_timeout_s; torch's default of 30 min kept a process waiting that long for
            # one of another machine that failed before making the group, whatever the setting said)
            timeout = timedelta(seconds=timeout_s)
            try:
                self._group = dist.new_group(backend="gloo", timeout=timeout)  # (every rank calls it)
            except (RuntimeError, ValueError) as error:  # (a restart's mesh that did not form: a traceback before)
                _raise_if_a_restart_failed_to_join(error, group, "gloo")
                raise
        self._pending: tuple[torch.Tensor, Any] | None = None

    def cast(self, flag: bool) -> bool:
        """Post this step's `flag`; whether any process posted one the step before."""
        if self._group is None:
            return flag
        agreed = self.close()
        vote = torch.tensor([1 if flag else 0], dtype=torch.int32)
        self._pending = (vote, dist.all_reduce(vote, op=dist.ReduceOp.MAX, group=self._group, async_op=True))
        return agreed

    def close(self) -> bool:
        """Wait for the vote in flight (every process ends the run with one); whether it was to stop."""
        if self._pending is None:
            return False
        vote, work = self._pending
        self._pending = None
        work.wait()
        return bool(vote.item())


def union_over_ranks(mask: torch.Tensor, group: ProcessGroup, device: torch.device) -> torch.Tensor:
    """A boolean mask true where it is true on any rank, on every rank (the files each process met)."""
    if not group.distributed:
        return mask
    joined = mask.to(device, torch.float32)
    dist.all_reduce(joined, op=dist.ReduceOp.MAX)
    return joined.bool().cpu()


def gather_objects(value: Any, group: ProcessGroup) -> list[Any]:
    """Every rank's `value`, in rank order, on every rank ([value] in a single process)."""
    if not group.distributed:
        return [value]
    gathered: list[Any] = [None] * group.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def mean_over_ranks(values: dict[str, float], group: ProcessGroup, device: torch.device) -> dict[str, float]:
    """Each value averaged over the ranks, on every rank (a log window's loss means: each process
    measures its share of the global batch). Every rank must give the same keys."""
    if not group.distributed or not values:
        return values
    stacked = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
    dist.all_reduce(stacked)
    return dict(zip(values, (stacked / group.world_size).tolist(), strict=True))


def average_gradients_before_steps(optimizers: dict[str, torch.optim.Optimizer], group: ProcessGroup) -> None:
    """Hook every optimizer so its gradients are averaged over the group just before it steps."""
    if not group.distributed:
        return
    for optimizer in optimizers.values():
        optimizer.register_step_pre_hook(gradient_averager(group.world_size))


def gradient_averager(world_size: int) -> Callable[[torch.optim.Optimizer, Any, Any], None]:
    """An optimizer step pre-hook: its gradients averaged over the `world_size` processes of the
    initialised process group, in one flat all-reduce. Device work only, so a CUDA graph of the
    step captures it with the step (NCCL)."""
    def average(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([grad.reshape(-1) for grad in grads])
        dist.all_reduce(flat)
        flat /= world_size
        offset = 0
        for grad in grads:
            grad.copy_(flat[offset:offset + grad.numel()].view_as(grad))
            offset += grad.numel()

    return average


def synchronise_weights(networks: dict[str, nn.Module], group: ProcessGroup) -> None:
    """Every rank starts from rank 0's parameters and buffers."""
    if not group.distributed:
        return
    for network in networks.values():
        for tensor in [*network.parameters(), *network.buffers()]:
            dist.broadcast(tensor.data, src=0)


def use_sync_batchnorm(networks: dict[str, nn.Module]) -> None:
    """Replace BatchNorm layers inside the networks by SyncBatchNorm (statistics over the global batch)."""
    for network in networks.values():
        converted = nn.SyncBatchNorm.convert_sync_batchnorm(network)
        if converted is not network:
            raise ValueError("a network that is itself a BatchNorm layer cannot be converted in place")


class ShardedSampler(Sampler):
    """This rank's share of a sampler's stream: of each consecutive `global_batch` items, the
    `global_batch / world_size` at slots [rank * b, (rank + 1) * b). One process reading the
    whole stream in global batches sees exactly the union, in order."""

    def __init__(self, sampler: Sampler, global_batch: int, group: ProcessGroup):
        if global_batch % group.world_size:
            raise ValueError(f"train.batch_size {global_batch} must divide by the {group.world_size} processes")
        self.sampler, self.global_batch, self.group = sampler, global_batch, group
        self.local_batch = global_batch // group.world_size

    def __iter__(self) -> Iterator:
        first = self.group.rank * self.local_batch
        for position, item in enumerate(self.sampler):
            if first <= position % self.global_batch < first + self.local_batch:
                yield item
