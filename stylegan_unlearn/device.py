"""Choosing the device: one place, one default.

Every command takes `--device` with the default `auto`: the GPU when CUDA is available, else the CPU.
`cpu`, `cuda` and `cuda:N` name a device; asking for CUDA where it is missing, or for more GPUs than
are visible, is one clear error. Training ranks use `rank_device`.
"""
from typing import Optional, Union

import torch

__all__ = ["DEFAULT_DEVICE", "DEVICE_HELP", "resolve_device", "rank_device"]

DEFAULT_DEVICE = "auto"
DEVICE_HELP = "cpu, cuda, cuda:N or auto (the GPU when CUDA is available, else the CPU)."


def resolve_device(name: Union[str, torch.device, None] = DEFAULT_DEVICE, num_devices: int = 1) -> torch.device:
    """The torch device for `name` ('auto' or None, 'cpu', 'cuda', 'cuda:N', or a torch.device).

    `num_devices` is how many CUDA devices the caller will use (training with --gpus); raises ValueError
    when the device does not exist on this machine.
    """
    if isinstance(name, torch.device):
        device = name
    elif name is None or str(name).strip().lower() == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            device = torch.device(str(name).strip().lower())
        except RuntimeError as err:
            raise ValueError(f"'{name}' is not a device name ({err}); use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("--device=cuda was requested but no CUDA device is available; use --device=cpu")
        visible = torch.cuda.device_count()
        needed = max(int(num_devices), (device.index or 0) + 1)
        if visible < needed:
            what = f"--gpus={num_devices}" if num_devices > 1 else f"device {device}"
            raise ValueError(f"{what} needs {needed} CUDA device(s) but only {visible} are visible; lower --gpus "
                             "(or use --device=cpu to run that many CPU processes)")
    elif device.type != "cpu":
        raise ValueError(f"device '{name}' is not supported; use cpu, cuda, cuda:N or auto")
    return device


def rank_device(rank: int, device_type: Optional[str] = None) -> torch.device:
    """The device of training rank `rank`: GPU rank % count on CUDA ('auto': when available), else the CPU."""
    use_cuda = torch.cuda.is_available() if device_type in (None, "auto") else device_type == "cuda"
    if use_cuda:
        return torch.device("cuda", rank % torch.cuda.device_count())
    return torch.device("cpu")
