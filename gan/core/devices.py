"""The device a command or a call from Python names, checked against those torch sees here: below
both training and inference, which take the same device text (`--device`, `device=`)."""

from __future__ import annotations

import torch


class DeviceUnavailable(RuntimeError):
    """The device asked for does not exist here."""


def select_device(name: str = "auto", given_as: str = "--device ") -> torch.device:
    """'auto' -> CUDA when available, else CPU; 'cuda' without a GPU is an error. `given_as` is how
    the device was given, as messages show it: `--device ` on the command line, `device=` from Python."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceUnavailable(f"unknown device '{name}'; use auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):  # gan's recipes run and are tested on CUDA and the CPU only
        known = " (Apple's GPU)" if device.type == "mps" else ""
        raise DeviceUnavailable(f"gan runs on CUDA GPUs and the CPU, not on '{name}'{known}; use auto, cpu, cuda "
                                "or cuda:N")
    if device.type == "cpu" and device.index not in (None, 0):  # (one CPU device: cpu:1 is no other)
        raise DeviceUnavailable(f"unknown device '{name}'; use auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailable(f"{given_as}{name} was asked for, but PyTorch sees no CUDA GPU; use {given_as}cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise DeviceUnavailable(f"{given_as}{name}: only {torch.cuda.device_count()} CUDA GPU(s) here")
    return device
