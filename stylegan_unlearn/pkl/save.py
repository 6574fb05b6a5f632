"""`save_network_pkl`: write a snapshot dict that the official StyleGAN tools load (spec §2.8)."""
import copy
import io
import os
import pickle
from typing import Any, Dict, Optional, Union

import numpy as np
import torch

from stylegan_unlearn.fileio import atomic_write
from stylegan_unlearn.pkl.errors import NetworkPklError
from stylegan_unlearn.pkl.load import NETWORK_KEYS
from stylegan_unlearn.pkl.safe_unpickler import PersistentRecord
from torch_utils import persistence

__all__ = ["save_network_pkl", "network_pkl_bytes", "PICKLE_PROTOCOL"]

PICKLE_PROTOCOL = 4
_KEY_ORDER = ("G", "D", "G_ema", "augment_pipe", "training_set_kwargs")
_TORCH_INTERNALS = {"_parameters", "_buffers", "_modules", "_non_persistent_buffers_set"}


def _python_scalars(value: Any) -> Any:
    """numpy scalars -> Python numbers, inside dicts, lists and tuples (container types kept)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return type(value)((k, _python_scalars(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)) and type(value) in (list, tuple):
        return type(value)(_python_scalars(v) for v in value)
    return value


def _snapshot_module(module: torch.nn.Module, key: str) -> torch.nn.Module:
    if not persistence.is_persistent(module):
        raise NetworkPklError(f"{key} is a plain {type(module).__name__} module, which the official tools cannot "
                              f"unpickle; build it from stylegan_unlearn.networks (persistent classes)")
    snapshot = copy.deepcopy(module).cpu().eval().requires_grad_(False)
    for sub in snapshot.modules():
        attrs = vars(sub)
        for name in list(attrs):
            if name not in _TORCH_INTERNALS and not (name.startswith("_") and "hook" in name):
                attrs[name] = _python_scalars(attrs[name])
    return snapshot


def _snapshot_value(value: Any, key: str) -> Any:
    if value is None or isinstance(value, PersistentRecord):
        return value
    if isinstance(value, torch.nn.Module):
        return _snapshot_module(value, key)
    raise NetworkPklError(f"cannot save {key}: it is a {type(value).__name__}, not a network module")


def _non_finite(module: torch.nn.Module) -> Optional[str]:
    """'N of M values (e.g. NAME)' when the module's float parameters or buffers hold NaN/Inf, else None."""
    bad, total, first = 0, 0, None
    for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
        if not tensor.is_floating_point():
            continue
        count = int((~torch.isfinite(tensor.detach())).sum())
        total += tensor.numel()
        if count:
            bad += count
            first = first or name
    return None if not bad else f"{bad:,} of its {total:,} values are NaN or infinite (e.g. '{first}')"


def network_pkl_bytes(data: Dict[str, Any], label: str = "the network pickle") -> bytes:
    """The bytes `save_network_pkl` writes for `data` (see there); `label` names the target in errors.

    Refuses (NetworkPklError) networks with NaN or infinite parameters or buffers: such a pkl would load
    and silently produce black or garbage images everywhere it is used.
    """
    if not isinstance(data, dict):
        raise NetworkPklError(f"save_network_pkl expects a dict of networks, got {type(data).__name__}")
    missing = [key for key in NETWORK_KEYS if data.get(key) is None]
    if missing:
        raise NetworkPklError(f"cannot save {label}: {', '.join(missing)} missing; the official "
                              f"legacy.load_network_pkl needs G, D and G_ema")
    tsk = data.get("training_set_kwargs")
    if tsk is not None and not isinstance(tsk, dict):
        raise NetworkPklError(f"training_set_kwargs must be a dict or None, got {type(tsk).__name__}")
    for key, value in data.items():
        problem = _non_finite(value) if isinstance(value, torch.nn.Module) else None
        if problem:
            raise NetworkPklError(f"refusing to write {label}: {key} is broken, {problem}; nothing was written")
    snapshot: Dict[str, Any] = {}
    for key in _KEY_ORDER[:4]:
        snapshot[key] = _snapshot_value(data.get(key), key)
    snapshot["training_set_kwargs"] = None if tsk is None else dict(_python_scalars(dict(tsk)))
    for key, value in data.items():
        if key not in snapshot:
            snapshot[key] = _snapshot_value(value, key) if isinstance(value, torch.nn.Module) else value
    buffer = io.BytesIO()
    pickle.dump(snapshot, buffer, protocol=PICKLE_PROTOCOL)
    return buffer.getvalue()


def save_network_pkl(path: Union[str, "os.PathLike[str]"], data: Dict[str, Any]) -> None:
    """Write `data` (`G`, `D`, `G_ema`, optional `augment_pipe`, `training_set_kwargs`) as a network pickle.

    Modules are deep-copied to the CPU in eval mode without gradients, numpy scalars become Python
    numbers, records kept from a safe load are written back unchanged, and the file is written
    atomically with pickle protocol 4, so a crash never leaves a truncated pickle behind. Networks with
    NaN/Inf values are refused and nothing is written.
    """
    payload = network_pkl_bytes(data, os.fspath(path))
    with atomic_write(path, "wb") as f:
        f.write(payload)
