"""Network snapshots and the resume sidecar.

A snapshot is the reference pkl (`G`, `D`, `G_ema`, `augment_pipe`, `training_set_kwargs`), written
atomically through `stylegan_unlearn.pkl.network_pkl_bytes`. It is named `network-snapshot-<kimg:06d>.pkl`
like the reference; when the run already wrote a snapshot within that whole kimg (ticks under 1 kimg, or a
final snapshot less than 1 kimg after the last one) it gets the exact kimg, `network-snapshot-<kimg:06d>.<rest:03d>.pkl`
(`...-000000.012.pkl` = 12 images), so no snapshot ever overwrites another.

Beside it we write `<pkl>.resume.pt`, holding what the pkl cannot: the image counter, optimizer states,
the loss's running state (e.g. `pl_mean`, EWC anchors) and the augmentation strength. It holds only tensors
and plain data (dicts, lists, tuples, numbers, strings, None) and is read with `torch.load(weights_only=True)`,
so loading it never runs code. It records the SHA-256 of its pkl's bytes: a sidecar beside any other pkl
(another snapshot, a file replaced or copied from elsewhere) is ignored with one warning and the run starts
fresh from the pkl's weights. The sidecar is written before the pkl, so a kill at any point leaves either a
matching pair or a pkl whose sidecar does not match (ignored); resuming from a pkl without a sidecar
(official pkls) starts fresh. Sidecars of older versions (no hash) are still read, as data only, with a
warning that they are not bound.
"""
import copy
import hashlib
import os
import re
import sys
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from stylegan_unlearn.fileio import atomic_write, atomic_write_bytes, file_sha256
from stylegan_unlearn.pkl import network_pkl_bytes

SIDECAR_SUFFIX = ".resume.pt"
SIDECAR_VERSION = 2
_UNBOUND_VERSION = 1  # written before sidecars recorded their pkl's hash; still plain data
_SNAPSHOT_NAME = re.compile(r"^network-snapshot-(\d+)(?:\.(\d{3}))?\.pkl$")

__all__ = ["snapshot_path", "image_grid_path", "sidecar_path", "snapshot_modules", "save_snapshot",
           "load_sidecar", "list_snapshots", "find_latest_snapshot"]


def _unused_name(run_dir: str, prefix: str, suffix: str, cur_nimg: int) -> str:
    """`prefix<kimg:06d>suffix`, or `prefix<kimg:06d>.<rest:03d>suffix` when the first is already taken."""
    kimg, rest = divmod(int(cur_nimg), 1000)
    plain = os.path.join(run_dir, f"{prefix}{kimg:06d}{suffix}")
    return plain if not os.path.exists(plain) else os.path.join(run_dir, f"{prefix}{kimg:06d}.{rest:03d}{suffix}")


def snapshot_path(run_dir: str, cur_nimg: int) -> str:
    """Where the network snapshot at `cur_nimg` images goes (see the module docstring for the names)."""
    return _unused_name(run_dir, "network-snapshot-", ".pkl", cur_nimg)


def image_grid_path(run_dir: str, cur_nimg: int) -> str:
    """Where the `fakes` image grid at `cur_nimg` images goes, named like the network snapshots."""
    return _unused_name(run_dir, "fakes", ".png", cur_nimg)


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


def _plain(value: Any, where: str) -> Any:
    """`value` as tensors and plain containers only (what `torch.load(weights_only=True)` reads back)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        container = OrderedDict if isinstance(value, OrderedDict) else dict
        return container((k, _plain(v, f"{where}.{k}")) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        items = [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    raise ValueError(f"the resume state cannot hold {where} (a {type(value).__name__}): sidecars hold only "
                     "tensors, numbers, strings and dicts/lists of them")


def save_snapshot(path: str, data: Dict[str, Any], state: Optional[Dict[str, Any]] = None) -> None:
    """Write the resume sidecar (if `state` is given), bound to the pkl's bytes, and then the pkl; both atomic."""
    payload = network_pkl_bytes(data, os.fspath(path))
    if state is not None:
        state = _plain(dict(state, version=SIDECAR_VERSION, pkl_sha256=hashlib.sha256(payload).hexdigest()),
                       "state")
        with atomic_write(sidecar_path(path), "wb") as f:
            torch.save(state, f)
    atomic_write_bytes(path, payload)


def _print_warning(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def load_sidecar(pkl_path: str, warn: Callable[[str], None] = _print_warning) -> Optional[Dict[str, Any]]:
    """The resume state saved beside `pkl_path`, or None when there is none (e.g. an official pkl).

    A sidecar that cannot be read safely, comes from another version, or does not belong to the pkl's
    current bytes is ignored: `warn` gets one sentence and None is returned (the pkl's weights stay usable).
    """
    path = sidecar_path(pkl_path)
    if not os.path.isfile(path):
        return None
    fresh = "starting fresh from the pkl's weights"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # includes pickles with anything but tensors and plain data
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        warn(f"ignoring the resume state {path}: it is damaged or holds more than tensors and plain data "
             f"({reason[:200]}); {fresh}")
        return None
    version = state.get("version") if isinstance(state, dict) else None
    if version not in (SIDECAR_VERSION, _UNBOUND_VERSION):
        warn(f"ignoring the resume state {path}: it was not written by this version of stylegan-unlearn; {fresh}")
        return None
    if not isinstance(state.get("cur_nimg"), int) or not isinstance(state.get("optimizers"), dict):
        warn(f"ignoring the resume state {path}: it lacks the image counter or optimizer states; {fresh}")
        return None
    if version == _UNBOUND_VERSION:
        warn(f"the resume state {path} was written by an older stylegan-unlearn that did not bind it to its pkl; "
             "using it (delete it to start fresh from the pkl's weights)")
        return state
    if state.get("pkl_sha256") != file_sha256(os.fspath(pkl_path)):
        warn(f"ignoring the resume state {path}: it belongs to other contents of {pkl_path} (a write cut short, "
             f"or files from different runs); {fresh}")
        return None
    return state


def list_snapshots(run_dir: str) -> List[Tuple[float, str]]:
    """(kimg, path) of every network snapshot pkl in `run_dir` (either name form), oldest first."""
    found = []
    for name in os.listdir(run_dir):
        match = _SNAPSHOT_NAME.match(name)
        if match:
            found.append((int(match.group(1)) + int(match.group(2) or 0) / 1000, os.path.join(run_dir, name)))
    return sorted(found)


def find_latest_snapshot(run_dir: str) -> Optional[str]:
    """The snapshot pkl with the largest kimg in `run_dir` (either name form), or None."""
    found = list_snapshots(run_dir)
    return found[-1][1] if found else None
