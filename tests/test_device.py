"""One device choice for every command: 'auto' = the GPU when CUDA is available, else the CPU."""
import importlib

import pytest
import torch

from stylegan_unlearn.cli import COMMANDS
from stylegan_unlearn.device import DEFAULT_DEVICE, rank_device, resolve_device


def test_auto_is_cuda_when_available_else_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == resolve_device(None) == torch.device("cpu")
    assert rank_device(3) == torch.device("cpu") and rank_device(0, "cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda")
    assert rank_device(3) == torch.device("cuda", 1)


def test_named_devices_and_clear_errors(monkeypatch):
    assert resolve_device("cpu") == resolve_device(" CPU ") == torch.device("cpu")
    with pytest.raises(ValueError, match="is not a device name"):
        resolve_device("gpu0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA device is available; use --device=cpu"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(ValueError, match="only 1 are visible"):
        resolve_device("cuda", num_devices=2)
    with pytest.raises(ValueError, match="only 1 are visible"):
        resolve_device("cuda:1")


@pytest.mark.parametrize("name", ["train", "generate", "collect", "evaluate", "report"])
def test_every_command_defaults_to_auto(name):
    module_name, attr = COMMANDS[name][0].split(":")
    command = getattr(importlib.import_module(module_name), attr)
    (device,) = [p for p in command.params if p.name == "device"]
    assert device.default == DEFAULT_DEVICE == "auto"
