"""A pickle reader for StyleGAN network pickles that never runs code stored in the file.

Official pickles carry each network's Python source (`module_src`) and ask the reader to `exec`
it through `torch_utils.persistence._reconstruct_persistent_obj`. This reader maps that global to
`PersistentRecord`, an inert record of the stored metadata, and refuses every global outside a
short allow-list (tensor/storage rebuilders, numpy arrays and scalars, `OrderedDict`,
`EasyDict`, torch dtypes/devices, plain torch `nn` layers). Tensor storages are decoded with
`torch.load(..., weights_only=True)`, and the BUILD opcode may not touch classes, functions or
modules, so the stream cannot patch the allowed callables either.
"""
import copy
import hashlib
import importlib
import inspect
import io
import pickle
import sys
import types
import warnings
from collections import OrderedDict
from typing import Any, Dict, Iterator, Optional, Tuple

import numpy as np
import torch

from dnnlib.util import EasyDict
from stylegan_unlearn.pkl.errors import NetworkPklError
from torch_utils import persistence

__all__ = ["PersistentRecord", "SafeUnpickler", "safe_load", "iter_named_tensors", "REFUSAL_HINT"]

PERSISTENCE_VERSION = 6
REFUSAL_HINT = "use safe=False if you trust the file"
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


class PersistentRecord:
    """One persistent object (network, augment pipe, layer) as stored, without its code having run.

    `meta` is the exact dict found in the file (`type`, `version`, `module_src`, `class_name`,
    `state`); pickling a record writes that dict back through the same global, so a file saved
    from records is loadable by the official code exactly as before.
    """

    def __init__(self, meta: dict):
        self.meta = meta

    @property
    def class_name(self) -> str:
        return self.meta["class_name"]

    @property
    def module_src(self) -> str:
        return self.meta["module_src"]

    @property
    def module_src_sha256(self) -> str:
        return hashlib.sha256(self.module_src.encode("utf-8")).hexdigest()

    @property
    def state(self) -> dict:
        return self.meta["state"]

    @property
    def init_args(self) -> tuple:
        return tuple(self.state.get("_init_args", ()))

    @property
    def init_kwargs(self) -> dict:
        return dict(self.state.get("_init_kwargs", {}))

    def named_tensors(self) -> Dict[str, torch.Tensor]:
        """Every parameter and buffer under its dotted name, as `named_parameters` + `named_buffers` would list them."""
        return dict(iter_named_tensors(self))

    def __reduce__(self):
        # The real global, so the stream names torch_utils.persistence exactly.
        return persistence._reconstruct_persistent_obj, (self.meta,)

    # Deep copies must not go through __reduce__: that would run the stored source.
    def __copy__(self) -> "PersistentRecord":
        return PersistentRecord(self.meta)

    def __deepcopy__(self, memo: dict) -> "PersistentRecord":
        return PersistentRecord(copy.deepcopy(self.meta, memo))

    def __repr__(self) -> str:
        return f"<PersistentRecord {self.class_name} (source sha256 {self.module_src_sha256[:12]}), not rebuilt>"


def iter_named_tensors(node: Any, prefix: str = "") -> Iterator[Tuple[str, torch.Tensor]]:
    """Walk a record (or unpickled torch module) tree: parameters, then buffers, then children."""
    state = node.state if isinstance(node, PersistentRecord) else getattr(node, "__dict__", {})
    for key in ("_parameters", "_buffers"):
        for name, tensor in (state.get(key) or {}).items():
            if tensor is not None:
                yield prefix + name, tensor
    for name, child in (state.get("_modules") or {}).items():
        if child is not None:
            yield from iter_named_tensors(child, prefix + name + ".")


def _make_record(meta: Any) -> PersistentRecord:
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise NetworkPklError("the pickle holds a persistent object of an unknown kind; it was not written by "
                              "StyleGAN2-ADA/StyleGAN3-compatible code")
    if meta.get("version") != PERSISTENCE_VERSION:
        raise NetworkPklError(f"the pickle uses persistence version {meta.get('version')!r}, but only version "
                              f"{PERSISTENCE_VERSION} (StyleGAN2-ADA / StyleGAN3) is supported")
    if not isinstance(meta.get("module_src"), str) or not isinstance(meta.get("class_name"), str) \
            or not isinstance(meta.get("state"), dict):
        raise NetworkPklError("a persistent object in the pickle lacks its module_src, class_name or state")
    return PersistentRecord(meta)


def _load_storage_from_bytes(data: bytes):
    """The safe stand-in for `torch.storage._load_from_bytes`: weights only, always onto the CPU."""
    if not isinstance(data, (bytes, bytearray)):
        raise NetworkPklError("a tensor storage in the pickle is not stored as bytes")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # TypedStorage deprecation notices
        return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")


def _no_hooks(hooks: Any) -> None:
    if hooks:
        raise NetworkPklError("a tensor in the pickle carries backward hooks; refusing to load it in safe mode")


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
    _no_hooks(backward_hooks)
    return torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, OrderedDict(),
                                          metadata)


def _rebuild_parameter(data, requires_grad, backward_hooks):
    _no_hooks(backward_hooks)
    return torch._utils._rebuild_parameter(data, requires_grad, OrderedDict())


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
    _no_hooks(backward_hooks)
    return torch._utils._rebuild_parameter_with_state(data, requires_grad, OrderedDict(), state)


def _rebuild_from_type_v2(func, new_type, args, state):
    if new_type not in (torch.Tensor, torch.nn.Parameter) or func not in _TENSOR_REBUILDERS.values():
        raise NetworkPklError(f"the pickle rebuilds a tensor of type {getattr(new_type, '__name__', new_type)!r}; "
                              f"only plain tensors and parameters are allowed in safe mode")
    return torch._tensor._rebuild_from_type_v2(func, new_type, args, state)


def _latin1_bytes(text, encoding="utf-8"):
    """How protocol-2 pickles spell a bytes object: `_codecs.encode(str, 'latin1')`."""
    if not isinstance(text, str) or encoding != "latin1":
        raise NetworkPklError("the pickle calls _codecs.encode in an unusual way; refusing in safe mode")
    return text.encode("latin1")


def _reconstruct_ndarray(subtype, shape, dtype_code):
    """numpy's array unpickling starts from an empty array; anything else would be a crafted allocation."""
    if subtype is not np.ndarray or tuple(shape) != (0,):
        raise NetworkPklError("the pickle builds a numpy array in an unusual way; refusing in safe mode")
    return _MULTIARRAY._reconstruct(subtype, shape, dtype_code)


def _numpy_module(suffix: str) -> types.ModuleType:
    for name in (f"numpy._core.{suffix}", f"numpy.core.{suffix}"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                return importlib.import_module(name)
        except ImportError:
            continue
    raise ImportError(f"numpy module {suffix} not found")


_TENSOR_REBUILDERS = {
    "_rebuild_tensor_v2": _rebuild_tensor_v2,
    "_rebuild_parameter": _rebuild_parameter,
    "_rebuild_parameter_with_state": _rebuild_parameter_with_state,
}
_MULTIARRAY = _numpy_module("multiarray")
_NUMERIC = _numpy_module("numeric")
_ALLOWED: Dict[Tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _make_record,
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("dnnlib", "EasyDict"): EasyDict,
    ("collections", "OrderedDict"): OrderedDict,
    ("torch.storage", "_load_from_bytes"): _load_storage_from_bytes,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("numpy", "dtype"): np.dtype,
    ("numpy", "ndarray"): np.ndarray,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("_codecs", "encode"): _latin1_bytes,
}
_ALLOWED.update({("torch._utils", name): fn for name, fn in _TENSOR_REBUILDERS.items()})
for _module in ("numpy._core.multiarray", "numpy.core.multiarray"):
    _ALLOWED[(_module, "scalar")] = _MULTIARRAY.scalar
    _ALLOWED[(_module, "_reconstruct")] = _reconstruct_ndarray
for _module in ("numpy._core.numeric", "numpy.core.numeric"):
    _ALLOWED[(_module, "_frombuffer")] = _NUMERIC._frombuffer  # protocol 5 arrays


def _torch_nn_class(module: str, name: str) -> Optional[type]:
    """Plain torch layers (e.g. `torch.nn.modules.linear.Linear`) inside persistent objects: trusted library code."""
    if not module.startswith("torch.nn.modules.") or module not in sys.modules or "." in name:
        return None
    obj = getattr(sys.modules[module], name, None)
    if isinstance(obj, type) and issubclass(obj, torch.nn.Module) and obj.__module__ == module:
        return obj
    return None


class SafeUnpickler(pickle._Unpickler):
    """Pure-Python unpickler with an allow-list of globals and a guarded BUILD opcode.

    The pure-Python implementation is used because its opcode table can be overridden: BUILD
    (which sets attributes) is refused on classes, functions and modules.
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def find_class(self, module: str, name: str) -> Any:
        module = _PY2_MODULES.get(module, module)
        allowed = _ALLOWED.get((module, name))
        if allowed is not None:
            return allowed
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        nn_class = _torch_nn_class(module, name)
        if nn_class is not None:
            return nn_class
        if module.startswith("dnnlib.tflib"):
            raise NetworkPklError("this is a TensorFlow StyleGAN pickle, which is not supported; convert it first "
                                  "with the official legacy.py (python legacy.py --source=OLD.pkl --dest=NEW.pkl)")
        raise NetworkPklError(f"refusing to load global {module}.{name} in safe mode; {REFUSAL_HINT}")

    def load_build(self) -> None:
        target = self.stack[-2]
        if isinstance(target, (type, types.ModuleType)) or inspect.isroutine(target):
            raise NetworkPklError(f"the pickle tries to set attributes of {type(target).__name__} "
                                  f"{getattr(target, '__name__', '')!r}; refusing in safe mode ({REFUSAL_HINT})")
        super().load_build()

    dispatch[pickle.BUILD[0]] = load_build

    def persistent_load(self, pid: Any) -> Any:
        raise NetworkPklError(f"the pickle uses persistent ids, which network pickles never do; {REFUSAL_HINT}")


def safe_load(file) -> Any:
    """Unpickle `file` (a binary file object) with `SafeUnpickler`."""
    return SafeUnpickler(file).load()
