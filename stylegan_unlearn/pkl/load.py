"""`load_network_pkl`: the reference loader's return contract, with a safe default reader."""
import copy
import inspect
import io
import os
import pickle
from typing import IO, Any, Dict, Optional, Sequence, Tuple, Union

import torch

import dnnlib
from stylegan_unlearn.pkl import families
from stylegan_unlearn.pkl.errors import NetworkPklError, NetworkPklNotFoundError
from stylegan_unlearn.pkl.safe_unpickler import PersistentRecord, REFUSAL_HINT, safe_load
from torch_utils import misc

__all__ = ["load_network_pkl", "load_networks", "load_generator", "describe_network", "check_network_file",
           "check_network_files", "NETWORK_KEYS"]

NETWORK_KEYS = ("G", "D", "G_ema")
_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_CONVERT_HINT = "convert stylegan2-pytorch .pt checkpoints with `stylegan-unlearn convert`"
PathOrUrl = Union[str, "os.PathLike[str]"]


def _open(path_or_url: Union[PathOrUrl, IO[bytes]]) -> Tuple[IO[bytes], str]:
    """A seekable binary file to read from (ours to close), and the name to use in messages."""
    if hasattr(path_or_url, "read"):  # an open binary file, as the reference loader takes; left open
        label = str(getattr(path_or_url, "name", "<network pickle>"))
        return io.BytesIO(path_or_url.read()), label
    label = os.fspath(path_or_url)
    try:
        f = dnnlib.util.open_url(label, verbose=False)
    except FileNotFoundError as err:
        if os.path.isdir(label):
            raise NetworkPklError(f"{label} is a directory; give the path of a network .pkl file") from err
        raise NetworkPklNotFoundError(f"network pickle {label} does not exist; check the path") from err
    except IsADirectoryError as err:
        raise NetworkPklError(f"{label} is a directory; give the path of a network .pkl file") from err
    except (OSError, ValueError) as err:
        raise NetworkPklError(f"cannot open network pickle {label}: {err}") from err
    if not f.seekable():
        f = io.BytesIO(f.read())
    return f, label


def check_network_file(path: PathOrUrl, what: str = "network pickle") -> None:
    """Raise a one-sentence error unless local `path` is an existing file (`what` names the option)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise NetworkPklError(f"{what} '{path}' is a directory; give the path of a network .pkl file")
    if not os.path.isfile(path):
        raise NetworkPklNotFoundError(f"{what} '{path}' does not exist; check the path")


def check_network_files(labelled: Sequence[Tuple[str, PathOrUrl]]) -> None:
    """`check_network_file` for each `(label, path)`, before any work (URLs are left to the loader)."""
    for label, path in labelled:
        if "://" not in str(path):
            check_network_file(path, label)


def _check_header(f: IO[bytes], label: str) -> None:
    head = f.read(8)
    f.seek(0)
    if not head:
        raise NetworkPklError(f"{label} is empty; it is not a network pickle (re-download or re-copy it)")
    if head.startswith(b"PK\x03\x04"):
        raise NetworkPklError(f"{label} is a zip archive (e.g. a torch.save checkpoint or a dataset), not a StyleGAN "
                              f"network pickle; {_CONVERT_HINT}")
    if head.startswith(b"\x89PNG") or head.startswith(b"\xff\xd8\xff"):
        raise NetworkPklError(f"{label} is an image, not a network pickle; pass the .pkl file with --network")
    if head[0:1] != b"\x80" or head[1] < 2:
        raise NetworkPklError(f"{label} is not a network pickle (it does not start with a pickle protocol 2+ "
                              f"header); pass a StyleGAN2-ADA/StyleGAN3 .pkl file")


def _ends_with_stop(f: IO[bytes]) -> bool:
    try:
        f.seek(-1, io.SEEK_END)
        return f.read(1) == b"."
    except OSError:
        return True


class _CompatUnpickler(pickle.Unpickler):
    """Plain unpickling (runs embedded network source through our torch_utils), minus TF pickles."""

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("dnnlib.tflib"):
            raise NetworkPklError("this is a TensorFlow StyleGAN pickle, which is not supported; convert it first "
                                  "with the official legacy.py (python legacy.py --source=OLD.pkl --dest=NEW.pkl)")
        return super().find_class(module, name)


def _unpickle(f: IO[bytes], label: str, safe: bool) -> Any:
    _check_header(f, label)
    try:
        return safe_load(f) if safe else _CompatUnpickler(f).load()
    except NetworkPklError as err:
        raise NetworkPklError(f"{label}: {err}") from err
    except MemoryError:
        raise
    except Exception as err:
        if not _ends_with_stop(f) or isinstance(err, EOFError):
            raise NetworkPklError(f"{label} is truncated or corrupt ({type(err).__name__}: {err}); the download or "
                                  f"copy was probably cut short, fetch the file again") from err
        if not safe:
            raise NetworkPklError(f"{label} could not be unpickled in compatible mode; the network code stored in "
                                  f"it failed to run ({type(err).__name__}: {err})") from err
        raise NetworkPklError(f"{label} is not a valid network pickle ({type(err).__name__}: {err})") from err


def _check_top_level(data: Any, label: str) -> Dict[str, Any]:
    if isinstance(data, int) and data == _TORCH_LEGACY_MAGIC:
        raise NetworkPklError(f"{label} is a torch.save checkpoint, not a StyleGAN network pickle; {_CONVERT_HINT}")
    if isinstance(data, tuple) and len(data) == 3:
        raise NetworkPklError(f"{label} looks like a TensorFlow StyleGAN pickle (G, D, Gs), which is not supported; "
                              f"convert it first with the official legacy.py")
    if not isinstance(data, dict):
        raise NetworkPklError(f"{label} holds a {type(data).__name__}, not the dict of networks that a StyleGAN "
                              f"network pickle contains")
    if "G_ema" not in data or data["G_ema"] is None:
        raise NetworkPklError(f"{label} has no 'G_ema' generator (keys: {', '.join(map(str, data)) or 'none'}); "
                              f"it is not a complete StyleGAN network pickle")
    data = dict(data)
    for key in ("G", "D", "augment_pipe", "training_set_kwargs"):
        data.setdefault(key, None)
    tsk = data["training_set_kwargs"]
    if tsk is not None and not isinstance(tsk, dict):
        raise NetworkPklError(f"{label}: training_set_kwargs is a {type(tsk).__name__}, expected a dict or None")
    return data


def _rebuild_records(data: Dict[str, Any], label: str) -> None:
    """Safe mode: replace network records of known families by our networks; keep the rest as records."""
    for key in NETWORK_KEYS:
        value = data[key]
        if isinstance(value, PersistentRecord) and families.recognise_family(value) in families.REBUILDABLE_FAMILIES:
            data[key] = families.rebuild(value, f"{label}: {key}")
        elif value is not None and not isinstance(value, (PersistentRecord, torch.nn.Module)):
            raise NetworkPklError(f"{label}: {key} is a {type(value).__name__}, not a network")


def _validate_compat(data: Dict[str, Any], label: str) -> None:
    for key in NETWORK_KEYS:
        value = data[key]
        if value is not None and not isinstance(value, torch.nn.Module):
            raise NetworkPklError(f"{label}: {key} is a {type(value).__name__}, not a torch.nn.Module")
    pipe = data["augment_pipe"]
    if pipe is not None and not isinstance(pipe, torch.nn.Module):
        raise NetworkPklError(f"{label}: augment_pipe is a {type(pipe).__name__}, not a torch.nn.Module")


def _takes_synthesis_kwargs(cls: type) -> bool:
    """Whether the constructor nests synthesis options (ADA layout) rather than taking them flat (StyleGAN3)."""
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is None:
            continue
        try:
            params = inspect.signature(init).parameters
        except (TypeError, ValueError):
            return True
        named = [p for p in params.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        if len(named) > 1:  # more than `self`: the real constructor, not a pass-through wrapper
            return "synthesis_kwargs" in params
    return True


def _with_fp16(module: torch.nn.Module, key: str) -> torch.nn.Module:
    """Reference `force_fp16`: rebuild with num_fp16_res=4, conv_clamp=256 if that changes the kwargs."""
    old_kwargs = dict(module.init_kwargs)
    kwargs = copy.deepcopy(old_kwargs)
    if key.startswith("G") and ("synthesis_kwargs" in kwargs or _takes_synthesis_kwargs(type(module))):
        target = kwargs.setdefault("synthesis_kwargs", {})
        target = dict(target)
        kwargs["synthesis_kwargs"] = target
    else:
        target = kwargs
    target["num_fp16_res"] = 4
    target["conv_clamp"] = 256
    if kwargs == old_kwargs:
        return module
    new = type(module)(*module.init_args, **kwargs).eval().requires_grad_(False)
    misc.copy_params_and_buffers(module, new, require_all=True)
    return new


def load_network_pkl(path_or_url: Union[PathOrUrl, IO[bytes]], *, safe: bool = True, force_fp16: bool = False,
                     device: Union[str, torch.device] = "cpu") -> Dict[str, Any]:
    """Read a StyleGAN2-ADA / StyleGAN3 network pickle (path, file:// or http(s) URL, or open binary file).

    Returns a dict with `G`, `D`, `G_ema`, `augment_pipe` and `training_set_kwargs` (missing ones
    are `None`; a missing `G_ema` is an error). With `safe=True` no code from the file runs: known
    StyleGAN2 networks come back as our `stylegan_unlearn.networks.stylegan2` modules, everything
    else (augment pipes, StyleGAN3-T/R networks) as inert `PersistentRecord`s that
    `save_network_pkl` writes back unchanged. `safe=False` unpickles normally, running the network
    source stored in the file; use it only for files you trust.
    """
    f, label = _open(path_or_url)
    with f:
        raw = _unpickle(f, label, safe)
    data = _check_top_level(raw, label)
    if safe:
        _rebuild_records(data, label)
    else:
        _validate_compat(data, label)
    if force_fp16:
        for key in NETWORK_KEYS:
            if isinstance(data[key], PersistentRecord):
                raise NetworkPklError(f"{label}: cannot apply force_fp16 to {key} ({data[key].class_name}, kept "
                                      f"unrebuilt in safe mode); {REFUSAL_HINT}")
            if data[key] is not None:
                data[key] = _with_fp16(data[key], key)
    try:
        device = torch.device(device)
        for key in (*NETWORK_KEYS, "augment_pipe"):
            if isinstance(data[key], torch.nn.Module):
                data[key] = data[key].to(device)
    except (RuntimeError, TypeError, AssertionError) as err:
        raise NetworkPklError(f"cannot move the networks to device {device!r} ({err})") from err
    return data


def _label(path_or_url: Union[PathOrUrl, IO[bytes]]) -> str:
    if hasattr(path_or_url, "read"):
        return str(getattr(path_or_url, "name", "<network pickle>"))
    return os.fspath(path_or_url)


def load_networks(path_or_url: Union[PathOrUrl, IO[bytes]], keys: Sequence[str] = ("G_ema",), *,
                  option: Optional[str] = None, safe: bool = True, device: Union[str, torch.device] = "cpu",
                  rebuilt: bool = True) -> Dict[str, Any]:
    """The one way from a pkl to networks: `load_network_pkl`'s dict, with the networks `keys` checked.

    Each of `keys` must be present and, with `rebuilt` (the default), a network this package can run
    (not a record the safe loader kept unrebuilt). `option` names the command-line option the path
    came from ('--resume'); every error then starts with it, so one sentence says which input was wrong.
    A local path that is missing or a directory fails before anything is read. Raises NetworkPklError
    (a ValueError; NetworkPklNotFoundError is also a FileNotFoundError).
    """
    label = _label(path_or_url)
    if not hasattr(path_or_url, "read") and "://" not in label:
        check_network_file(label, f"{option} network" if option else "network pickle")
    try:
        data = load_network_pkl(path_or_url, safe=safe, device=device)
    except NetworkPklError as err:
        if option is None:
            raise
        raise type(err)(f"{option}: {err}") from None
    where = f"{option}: {label}" if option else label
    for key in keys:
        network = data.get(key)
        if network is None:
            present = ", ".join(k for k in NETWORK_KEYS if data.get(k) is not None)
            raise NetworkPklError(f"{where} has no {key!r} network (it has {present}); pass a StyleGAN network "
                                  f"pkl with {', '.join(keys)}")
        if rebuilt and isinstance(network, PersistentRecord):
            family = families.recognise_family(network)
            raise NetworkPklError(f"{where}: {key} is a {network.class_name!r} of the {family} network family, "
                                  "which this package cannot rebuild; if you trust the file, load it with safe=False "
                                  "(--unsafe)")
    return data


def load_generator(path_or_url: Union[PathOrUrl, IO[bytes]], *, key: str = "G_ema",
                   device: Union[str, torch.device] = "cpu", safe: bool = True,
                   option: Optional[str] = None) -> torch.nn.Module:
    """One generator of a network pickle, ready for sampling: eval mode, no gradients (see `load_networks`)."""
    G = load_networks(path_or_url, (key,), option=option, safe=safe, device=device)[key]
    return G.eval().requires_grad_(False)


def describe_network(net: torch.nn.Module) -> str:
    """One line: class, resolution, channels, z/w/c dims, number of ws and parameters."""
    if isinstance(net, PersistentRecord):
        return f"{net.class_name} ({families.recognise_family(net)} family, not rebuilt)"
    parts = [type(net).__name__]
    res, ch = getattr(net, "img_resolution", None), getattr(net, "img_channels", None)
    if res is not None:
        parts.append(f"{res}x{res}x{ch}")
    for name in ("z_dim", "w_dim", "c_dim", "num_ws"):
        if getattr(net, name, None) is not None:
            parts.append(f"{name}={getattr(net, name)}")
    parts.append(f"params={sum(p.numel() for p in net.parameters()):,}")
    return " ".join(parts)
