"""Network snapshots and the resume sidecar.

A snapshot is the reference pkl (`network-snapshot-<kimg:06d>.pkl`: `G`, `D`, `G_ema`, `augment_pipe`,
`training_set_kwargs`), written atomically through `stylegan_unlearn.pkl.save_network_pkl`. Beside it we
write `<pkl>.resume.pt`, a `torch.save` file holding what the pkl cannot: the image counter, optimizer
states, the loss's running state (e.g. `pl_mean`, EWC anchors) and the augmentation strength. Resuming from
a pkl with a sidecar continues the run; resuming from a pkl without one (official pkls) starts fresh.

The sidecar is written before the pkl, so a pkl on disk never points at a missing or older sidecar.
"""
import copy
import os
import re
from typing import Any, Dict, Optional

import torch

from stylegan_unlearn.fileio import atomic_write

SIDECAR_SUFFIX = ".resume.pt"
SIDECAR_VERSION = 1
_SNAPSHOT_NAME = re.compile(r"network-snapshot-(\d+)\.pkl$")

__all__ = ["snapshot_path", "sidecar_path", "snapshot_modules", "save_snapshot", "load_sidecar",
           "load_resume_pkl", "find_latest_snapshot"]


def snapshot_path(run_dir: str, cur_nimg: int) -> str:
    """`run_dir/network-snapshot-<kimg:06d>.pkl`, named like the reference."""
    return os.path.join(run_dir, f"network-snapshot-{cur_nimg // 1000:06d}.pkl")


def sidecar_path(pkl_path: str) -> str:
    """Where the resume state of `pkl_path` lives."""
    return os.fspath(pkl_path) + SIDECAR_SUFFIX


def snapshot_modules(modules: Dict[str, Optional[torch.nn.Module]],
                     training_set_kwargs: Optional[dict]) -> Dict[str, Any]:
    """The reference snapshot dict: CPU deep copies in eval mode without gradients."""
    data: Dict[str, Any] = dict(training_set_kwargs=dict(training_set_kwargs) if training_set_kwargs else None)
    for name, module in modules.items():
        if module is not None:
            module = copy.deepcopy(module).eval().requires_grad_(False).cpu()
        data[name] = module
    return data


def save_snapshot(path: str, data: Dict[str, Any], state: Optional[Dict[str, Any]] = None) -> None:
    """Write the resume sidecar (if `state` is given) and then the pkl, both atomically."""
    from stylegan_unlearn.pkl import save_network_pkl
    if state is not None:
        with atomic_write(sidecar_path(path), "wb") as f:
            torch.save(dict(state, version=SIDECAR_VERSION), f)
    save_network_pkl(path, data)


def load_sidecar(pkl_path: str) -> Optional[Dict[str, Any]]:
    """The resume state saved beside `pkl_path`, or None when there is none (e.g. an official pkl)."""
    path = sidecar_path(pkl_path)
    if not os.path.isfile(path):
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # a damaged sidecar must not hide the (still usable) pkl weights
        raise ValueError(f"cannot read the resume state {path} ({err}); delete it to start fresh "
                         "from the pkl's weights") from None
    if not isinstance(state, dict) or state.get("version") != SIDECAR_VERSION:
        raise ValueError(f"{path} is not a resume state this version understands; delete it to start fresh")
    return state


def load_resume_pkl(path: str) -> Dict[str, Any]:
    """Load a network pkl with the safe loader; clear errors for a missing or unusable file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"network pkl '{path}' does not exist; check --resume/--adapted")
    from stylegan_unlearn.pkl import load_network_pkl
    data = load_network_pkl(path, safe=True)
    for key in ("G", "D", "G_ema"):
        if not isinstance(data.get(key), torch.nn.Module):
            raise ValueError(f"'{path}' has no '{key}' network; pass a StyleGAN2 network pkl with G, D and G_ema")
    return data


def find_latest_snapshot(run_dir: str) -> Optional[str]:
    """The snapshot pkl with the largest kimg in `run_dir`, or None."""
    best, best_kimg = None, -1
    for name in os.listdir(run_dir):
        match = _SNAPSHOT_NAME.match(name)
        if match and int(match.group(1)) > best_kimg:
            best, best_kimg = os.path.join(run_dir, name), int(match.group(1))
    return best
