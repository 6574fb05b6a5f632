"""Training statistics gathered across processes, with the reference `training_stats` interface.

Anywhere in the code, `report(name, value)` adds values to a running count, sum and sum of
squares for `name` (float64, kept on the device the values live on, so reporting never forces a
device sync). A `Collector` periodically calls `update()`, which sums what was reported since its
previous update over all ranks (one all-reduce) and exposes `num`, `mean` and `std` per name.

Multi-process use: call `init_multiprocessing(rank, sync_device)` once before the first
`update()`, and have every rank report every name in the same order (an empty value is fine),
because the all-reduce pairs names up by position.
"""
import re
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

import dnnlib

__all__ = ["init_multiprocessing", "report", "report0", "Collector"]

_NUM_MOMENTS = 3  # [count, sum, sum of squares]
_COUNTER_DTYPE = torch.float64

_rank: int = 0
_sync_device: Optional[torch.device] = None  # None: single process, no all-reduce
_sync_called: bool = False
_counters: Dict[str, Dict[torch.device, torch.Tensor]] = {}  # name -> device -> moments since last sync
_cumulative: Dict[str, torch.Tensor] = {}  # name -> all moments synced so far (CPU)


def init_multiprocessing(rank: int, sync_device: Optional[torch.device]) -> None:
    """Declare this process's rank and the device used for the all-reduce (None: single process).

    Must be called before the first `Collector.update()`. With NCCL the device must be this
    rank's CUDA device; with gloo use `torch.device('cpu')`.
    """
    global _rank, _sync_device
    if _sync_called:
        raise RuntimeError("training_stats.init_multiprocessing() must be called before the first "
                           "Collector.update(); call it right after creating the process group")
    _rank = rank
    _sync_device = torch.device(sync_device) if sync_device is not None else None


def report(name: str, value: Any) -> Any:
    """Add the elements of `value` (scalar, list, array or tensor; may be empty) to statistic `name`.

    Returns `value` unchanged, so it can wrap an expression: `loss = report('Loss/G', loss)`.
    """
    counters = _counters.setdefault(name, {})
    elems = torch.as_tensor(value.detach() if isinstance(value, torch.Tensor) else value)
    if elems.numel() == 0:
        return value
    elems = elems.detach().flatten().to(_COUNTER_DTYPE)
    moments = torch.stack([
        torch.tensor(float(elems.numel()), dtype=_COUNTER_DTYPE, device=elems.device),
        elems.sum(),
        elems.square().sum(),
    ])
    counter = counters.get(moments.device)
    if counter is None:
        counters[moments.device] = moments
    else:
        counter.add_(moments)
    return value


def report0(name: str, value: Any) -> Any:
    """Like `report`, but only rank 0's values count (other ranks report an empty value)."""
    report(name, value if _rank == 0 else [])
    return value


def _sync(names: List[str]) -> List[Tuple[str, torch.Tensor]]:
    """Fold every rank's new moments for `names` into the cumulative totals; return the totals."""
    global _sync_called
    if not names:
        return []
    _sync_called = True

    device = _sync_device if _sync_device is not None else torch.device("cpu")
    deltas = torch.zeros([len(names), _NUM_MOMENTS], dtype=_COUNTER_DTYPE, device=device)
    for idx, name in enumerate(names):
        for counter in _counters[name].values():
            deltas[idx].add_(counter.to(device))
            counter.zero_()
    if _sync_device is not None and torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(deltas)
    deltas = deltas.cpu()

    totals = []
    for idx, name in enumerate(names):
        total = _cumulative.get(name)
        if total is None:
            total = _cumulative[name] = torch.zeros([_NUM_MOMENTS], dtype=_COUNTER_DTYPE)
        total.add_(deltas[idx])
        totals.append((name, total))
    return totals


class Collector:
    """Reads the statistics reported since its previous `update()`, summed over all ranks.

    `regex` selects the names it collects (full match). With `keep_previous=True`, a name that
    got no new values keeps the numbers of the last update in which it had some; otherwise it
    reads as empty (num 0, mean/std NaN).
    """

    def __init__(self, regex: str = ".*", keep_previous: bool = True):
        self._regex = re.compile(regex)
        self._keep_previous = keep_previous
        self._seen: Dict[str, torch.Tensor] = {}  # cumulative totals at our previous update
        self._moments: Dict[str, torch.Tensor] = {}  # what the last update found, per name
        self.update()
        self._moments.clear()

    def names(self) -> List[str]:
        """Names reported so far (by any code in this process) that match the regex."""
        return [name for name in _counters if self._regex.fullmatch(name)]

    def update(self) -> None:
        """Gather what every rank reported since the previous update. All ranks must call it."""
        if not self._keep_previous:
            self._moments.clear()
        for name, total in _sync(self.names()):
            seen = self._seen.get(name)
            if seen is None:
                seen = self._seen[name] = torch.zeros_like(total)
            delta = total - seen
            seen.copy_(total)
            if float(delta[0]) != 0:
                self._moments[name] = delta

    def _get(self, name: str) -> torch.Tensor:
        if not self._regex.fullmatch(name):
            raise KeyError(f"statistic {name!r} does not match this collector's regex {self._regex.pattern!r}")
        return self._moments.get(name, torch.zeros([_NUM_MOMENTS], dtype=_COUNTER_DTYPE))

    def num(self, name: str) -> int:
        """How many values were reported for `name` in the last update (over all ranks)."""
        return int(self._get(name)[0])

    def mean(self, name: str) -> float:
        """Mean of those values; NaN if there were none."""
        count, total, _ = (float(v) for v in self._get(name))
        return total / count if count else float("nan")

    def std(self, name: str) -> float:
        """Population standard deviation of those values; NaN if there were none."""
        count, total, total_sq = (float(v) for v in self._get(name))
        if count == 0 or not np.isfinite(total):
            return float("nan")
        if count == 1:
            return 0.0
        mean = total / count
        return float(np.sqrt(max(total_sq / count - mean * mean, 0.0)))

    def as_dict(self) -> Dict[str, dnnlib.EasyDict]:
        """`{name: EasyDict(num=..., mean=..., std=...)}` for every collected name (JSON-ready)."""
        return {name: dnnlib.EasyDict(num=self.num(name), mean=self.mean(name), std=self.std(name))
                for name in self.names()}

    def __getitem__(self, name: str) -> float:
        """`collector[name]` is `collector.mean(name)`."""
        return self.mean(name)
