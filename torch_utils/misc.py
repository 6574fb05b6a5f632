"""Miscellaneous torch helpers with the names and behaviour of the reference `torch_utils.misc`.

Network source embedded in official pickles calls `assert_shape`, `profiled_function`,
`suppress_tracer_warnings` and `constant`; the training loop and tools use the rest.
"""
import contextlib
import re
import warnings
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

import dnnlib

__all__ = [
    "constant", "nan_to_num", "suppress_tracer_warnings", "assert_shape", "profiled_function",
    "InfiniteSampler", "params_and_buffers", "named_params_and_buffers", "copy_params_and_buffers",
    "ddp_sync", "check_ddp_consistency", "print_module_summary",
]


# ---------------------------------------------------------------------------------------------
# Cached constants

_constant_cache: Dict[tuple, torch.Tensor] = {}


def constant(value: Any, shape: Optional[Sequence[int]] = None, dtype: Optional[torch.dtype] = None,
             device: Optional[torch.device] = None,
             memory_format: Optional[torch.memory_format] = None) -> torch.Tensor:
    """A cached tensor holding `value` (broadcast to `shape` if given). Never modify it in place.

    Defaults: dtype `torch.get_default_dtype()`, device CPU, contiguous memory format. The cache
    key is the value's shape, dtype and bytes plus the requested shape, dtype, device and format,
    so repeated calls in a forward pass cost one dictionary lookup.
    """
    array = np.asarray(value)
    if shape is not None:
        shape = tuple(shape)
    if dtype is None:
        dtype = torch.get_default_dtype()
    if device is None:
        device = torch.device("cpu")
    else:
        device = torch.device(device)
    if memory_format is None:
        memory_format = torch.contiguous_format

    key = (array.shape, array.dtype, array.tobytes(), shape, dtype, device, memory_format)
    tensor = _constant_cache.get(key)
    if tensor is None:
        tensor = torch.as_tensor(array.copy(), dtype=dtype, device=device)
        if shape is not None:
            tensor = torch.broadcast_to(tensor, shape)
        tensor = tensor.contiguous(memory_format=memory_format)
        _constant_cache[key] = tensor
    return tensor


nan_to_num = torch.nan_to_num


# ---------------------------------------------------------------------------------------------
# Tracing helpers

@contextlib.contextmanager
def suppress_tracer_warnings() -> Iterator[None]:
    """Silence `torch.jit.TracerWarning` inside the block (shape checks are intentional there)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        yield


def assert_shape(tensor: torch.Tensor, ref_shape: Sequence[Any]) -> None:
    """Raise `AssertionError` unless `tensor` has rank `len(ref_shape)` and matching sizes.

    `None` in `ref_shape` matches any size. Under `torch.jit.trace`, sizes may be tensors; the
    comparison is then recorded in the trace with `torch._assert` instead of being decided now.
    """
    if tensor.ndim != len(ref_shape):
        raise AssertionError(f"Wrong number of dimensions: got {tensor.ndim}, expected {len(ref_shape)}")
    for idx, (size, ref_size) in enumerate(zip(tensor.shape, ref_shape)):
        if ref_size is None:
            continue
        if isinstance(ref_size, torch.Tensor):
            with suppress_tracer_warnings():
                torch._assert(torch.equal(torch.as_tensor(size), ref_size), f"Wrong size for dimension {idx}")
        elif isinstance(size, torch.Tensor):
            with suppress_tracer_warnings():
                torch._assert(torch.equal(size, torch.as_tensor(ref_size)),
                              f"Wrong size for dimension {idx}: expected {ref_size}")
        elif size != ref_size:
            raise AssertionError(f"Wrong size for dimension {idx}: got {size}, expected {ref_size}")


def profiled_function(fn: Callable) -> Callable:
    """Decorator: run `fn` inside `torch.autograd.profiler.record_function(fn.__name__)`."""
    def decorator(*args, **kwargs):
        with torch.autograd.profiler.record_function(fn.__name__):
            return fn(*args, **kwargs)
    decorator.__name__ = fn.__name__
    decorator.__qualname__ = getattr(fn, "__qualname__", fn.__name__)
    decorator.__doc__ = fn.__doc__
    decorator.__wrapped__ = fn
    return decorator


# ---------------------------------------------------------------------------------------------
# Sampling

class InfiniteSampler(torch.utils.data.Sampler):
    """Endless stream of dataset indices, split across `num_replicas` ranks.

    The order is a `np.random.RandomState(seed)` permutation; after each step the visited
    position is swapped with one up to `round(len * window_size) - 1` places behind it, so the
    order keeps changing gradually instead of repeating epochs.
    """

    def __init__(self, dataset: Any, rank: int = 0, num_replicas: int = 1, shuffle: bool = True, seed: int = 0,
                 window_size: float = 0.5):
        if len(dataset) <= 0:
            raise ValueError("InfiniteSampler needs a non-empty dataset")
        if num_replicas <= 0:
            raise ValueError(f"num_replicas must be positive, got {num_replicas}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, {num_replicas}), got {rank}")
        if not 0 <= window_size <= 1:
            raise ValueError(f"window_size must be in [0, 1], got {window_size}")
        super().__init__()
        self.dataset = dataset
        self.rank = rank
        self.num_replicas = num_replicas
        self.shuffle = shuffle
        self.seed = seed
        self.window_size = window_size

    def __iter__(self) -> Iterator[int]:
        order = np.arange(len(self.dataset))
        rnd = None
        window = 0
        if self.shuffle:
            rnd = np.random.RandomState(self.seed)
            rnd.shuffle(order)
            window = int(np.rint(order.size * self.window_size))

        step = 0
        while True:
            pos = step % order.size
            if step % self.num_replicas == self.rank:
                yield int(order[pos])
            if window >= 2:
                other = (pos - rnd.randint(window)) % order.size
                order[pos], order[other] = order[other], order[pos]
            step += 1


# ---------------------------------------------------------------------------------------------
# Parameters and buffers

def params_and_buffers(module: torch.nn.Module) -> List[torch.Tensor]:
    """All parameters, then all buffers, of `module` (recursively)."""
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(module).__name__}")
    return list(module.parameters()) + list(module.buffers())


def named_params_and_buffers(module: torch.nn.Module) -> List[Tuple[str, torch.Tensor]]:
    """All `(name, tensor)` parameter pairs, then all buffer pairs, of `module`."""
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(module).__name__}")
    return list(module.named_parameters()) + list(module.named_buffers())


@torch.no_grad()
def copy_params_and_buffers(src_module: torch.nn.Module, dst_module: torch.nn.Module,
                            require_all: bool = False) -> None:
    """Copy every parameter/buffer of `dst_module` that `src_module` has under the same name.

    Values are copied in place (dtype/device converted by `copy_`), `dst`'s `requires_grad` is
    kept. Names missing from `src` are skipped, unless `require_all=True`, which raises
    `AssertionError` naming the first missing tensor.
    """
    src_tensors = dict(named_params_and_buffers(src_module))
    for name, tensor in named_params_and_buffers(dst_module):
        if name not in src_tensors:
            if require_all:
                raise AssertionError(f"{name} is missing from the source {type(src_module).__name__}")
            continue
        tensor.copy_(src_tensors[name].detach()).requires_grad_(tensor.requires_grad)


# ---------------------------------------------------------------------------------------------
# DistributedDataParallel helpers

@contextlib.contextmanager
def ddp_sync(module: torch.nn.Module, sync: bool) -> Iterator[None]:
    """Inside the block, skip DDP gradient all-reduce when `sync` is false (gradient accumulation)."""
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(module).__name__}")
    if sync or not isinstance(module, torch.nn.parallel.DistributedDataParallel):
        yield
    else:
        with module.no_sync():
            yield


def check_ddp_consistency(module: torch.nn.Module, ignore_regex: Optional[str] = None) -> None:
    """Assert every parameter/buffer equals rank 0's copy (NaNs compare equal).

    Tensors whose `<ClassName>.<name>` fully matches `ignore_regex` are skipped. Every rank must
    call this with the same module layout: each checked tensor costs one broadcast from rank 0.
    """
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(module).__name__}")
    owner = type(module).__name__
    for name, tensor in named_params_and_buffers(module):
        label = f"{owner}.{name}"
        if ignore_regex is not None and re.fullmatch(ignore_regex, label):
            continue
        mine = _comparable(tensor)
        from_rank0 = mine.clone()
        torch.distributed.broadcast(tensor=from_rank0, src=0)
        if not torch.equal(mine, from_rank0):
            raise AssertionError(f"{label} differs from rank 0")


def _comparable(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` detached, with NaN and infinities replaced by numbers so that equal tensors compare equal."""
    tensor = tensor.detach()
    return nan_to_num(tensor) if tensor.is_floating_point() else tensor


# ---------------------------------------------------------------------------------------------
# Module summary

def _flatten_tensors(obj: Any) -> List[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [t for item in obj for t in _flatten_tensors(item)]
    if isinstance(obj, dict):
        return [t for item in obj.values() for t in _flatten_tensors(item)]
    return []


def print_module_summary(module: torch.nn.Module, inputs: Sequence[Any], max_nesting: int = 3,
                         skip_redundant: bool = True) -> Any:
    """Run `module(*inputs)` and print one row per submodule: parameters, buffers, output shape, dtype.

    Submodules nested deeper than `max_nesting` are folded into their ancestors; with
    `skip_redundant`, rows that own no new tensors and produce no output are dropped, and every
    tensor is counted once. Returns the module's outputs.
    """
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(module).__name__}")
    if isinstance(module, torch.jit.ScriptModule):
        raise TypeError("print_module_summary cannot hook a TorchScript module")
    if not isinstance(inputs, (tuple, list)):
        raise TypeError("inputs must be a tuple or list of positional arguments")

    entries: List[dnnlib.EasyDict] = []
    depth = [0]

    def pre_hook(mod, _inputs):
        depth[0] += 1

    def post_hook(mod, _inputs, outputs):
        depth[0] -= 1
        if depth[0] <= max_nesting:
            entries.append(dnnlib.EasyDict(mod=mod, outputs=_flatten_tensors(outputs)))

    handles = [m.register_forward_pre_hook(pre_hook) for m in module.modules()]
    handles += [m.register_forward_hook(post_hook) for m in module.modules()]
    try:
        outputs = module(*inputs)
    finally:
        for handle in handles:
            handle.remove()

    # Attribute every tensor to the first (innermost-finished) entry that owns it.
    seen = set()
    for entry in entries:
        entry.params = [t for t in entry.mod.parameters() if id(t) not in seen]
        entry.buffers = [t for t in entry.mod.buffers() if id(t) not in seen]
        entry.outputs = [t for t in entry.outputs if id(t) not in seen]
        seen |= {id(t) for t in entry.params + entry.buffers + entry.outputs}
    if skip_redundant:
        entries = [e for e in entries if len(e.params) or len(e.buffers) or len(e.outputs)]

    names = {mod: name for name, mod in module.named_modules()}
    names[module] = "<top-level>"
    rows = [[type(module).__name__, "Parameters", "Buffers", "Output shape", "Datatype"], ["---"] * 5]
    param_total = buffer_total = 0
    for entry in entries:
        name = names.get(entry.mod, type(entry.mod).__name__)
        num_params = sum(t.numel() for t in entry.params)
        num_buffers = sum(t.numel() for t in entry.buffers)
        shapes = [str(list(t.shape)) for t in entry.outputs] or ["-"]
        dtypes = [str(t.dtype).split(".")[-1] for t in entry.outputs] or ["-"]
        rows.append([name + (":0" if len(entry.outputs) >= 2 else ""),
                     str(num_params) if num_params else "-", str(num_buffers) if num_buffers else "-",
                     shapes[0], dtypes[0]])
        for idx in range(1, len(entry.outputs)):
            rows.append([name + f":{idx}", "-", "-", shapes[idx], dtypes[idx]])
        param_total += num_params
        buffer_total += num_buffers
    rows += [["---"] * 5, ["Total", str(param_total), str(buffer_total), "-", "-"]]

    widths = [max(len(row[col]) for row in rows) for col in range(5)]
    print()
    for row in rows:
        print("  ".join(cell + " " * (width - len(cell)) for cell, width in zip(row, widths)).rstrip())
    print()
    return outputs
