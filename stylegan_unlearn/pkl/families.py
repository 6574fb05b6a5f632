"""Recognise which code wrote a persistent network record, and rebuild it as one of our networks.

Families (spec §2.7, §4.8):
  * `stylegan-unlearn` — our own `stylegan_unlearn.networks.stylegan2` source;
  * `stylegan2-ada` — StyleGAN2-ADA `training/networks.py` (same constructor and defaults as ours);
  * `stylegan3-sg2` — StyleGAN3's `networks_stylegan2.py` (`--cfg=stylegan2`): same names and maths,
    synthesis options at the Generator's top level, and different defaults (fp16 in the 4 highest
    resolutions, conv_clamp 256, w_avg_beta 0.998);
  * `stylegan3` — StyleGAN3-T/R alias-free networks (kept opaque: we have no implementation);
  * `unknown` — anything else (kept opaque).
"""
import copy
import inspect
from typing import Any, Dict, List

import torch

from stylegan_unlearn.networks import stylegan2
from stylegan_unlearn.pkl.errors import NetworkPklError
from stylegan_unlearn.pkl.safe_unpickler import PersistentRecord

OURS = "stylegan-unlearn"
ADA = "stylegan2-ada"
SG3_SG2 = "stylegan3-sg2"
SG3 = "stylegan3"
UNKNOWN = "unknown"

REBUILDABLE_FAMILIES = (OURS, ADA, SG3_SG2)
REBUILDABLE_CLASSES = ("Generator", "Discriminator", "MappingNetwork", "SynthesisNetwork")

_GENERATOR_KEYS = {"z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs", "synthesis_kwargs"}
# StyleGAN3-T/R synthesis options that no StyleGAN2 network takes.
_SG3_ONLY_KEYS = {"num_critical", "first_cutoff", "first_stopband", "last_stopband_rel", "margin_size",
                  "output_scale", "conv_kernel", "filter_size", "lrelu_upsampling", "use_radial_filters"}
# StyleGAN3 options that change neither weights nor outputs of a StyleGAN2 network: dropped on rebuild.
_SG3_INERT_KEYS = {"fused_modconv_default", "magnitude_ema_beta"}
_SG3_SG2_DEFAULTS = {"num_fp16_res": 4, "conv_clamp": 256}
_SG3_SG2_W_AVG_BETA = 0.998
_CHECKED_ATTRIBUTES = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "num_ws")


def _our_source() -> str:
    src = getattr(stylegan2.Generator, "_orig_module_src", None)
    return src if isinstance(src, str) else inspect.getsource(stylegan2)


def recognise_family(record: PersistentRecord) -> str:
    """Name the family of `record` from its class name, source fingerprint and constructor kwargs."""
    src = record.module_src
    if "filtered_lrelu" in src or _SG3_ONLY_KEYS & set(record.init_kwargs):
        return SG3
    if record.class_name not in REBUILDABLE_CLASSES:
        return UNKNOWN
    if src == _our_source():
        return OURS
    if "fused_modconv_default" in src:
        return SG3_SG2
    if "class Generator" in src and "class SynthesisNetwork" in src and "class MappingNetwork" in src:
        return ADA
    return UNKNOWN


def _plain(value: Any) -> Any:
    """EasyDicts and other dict subclasses in stored kwargs -> plain dicts (deep)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return copy.deepcopy(value)


def translate_kwargs(record: PersistentRecord, family: str) -> Dict[str, Any]:
    """The stored constructor kwargs, in the layout and with the defaults of our classes."""
    kwargs = _plain(record.init_kwargs)
    if family != SG3_SG2:
        return kwargs
    for key in _SG3_INERT_KEYS:
        kwargs.pop(key, None)
    if record.class_name == "Generator":
        synthesis = {k: kwargs.pop(k) for k in list(kwargs) if k not in _GENERATOR_KEYS}
        synthesis.update(kwargs.pop("synthesis_kwargs", {}))
        for key in _SG3_INERT_KEYS:
            synthesis.pop(key, None)
        kwargs["synthesis_kwargs"] = {**_SG3_SG2_DEFAULTS, **synthesis}
        kwargs["mapping_kwargs"] = {"w_avg_beta": _SG3_SG2_W_AVG_BETA, **kwargs.get("mapping_kwargs", {})}
    elif record.class_name in ("Discriminator", "SynthesisNetwork"):
        kwargs = {**_SG3_SG2_DEFAULTS, **kwargs}
    elif record.class_name == "MappingNetwork":
        kwargs.setdefault("w_avg_beta", _SG3_SG2_W_AVG_BETA)
    return kwargs


def _our_class(class_name: str) -> type:
    return getattr(stylegan2, class_name)


def _name_list(names: List[str], limit: int = 8) -> str:
    shown = ", ".join(sorted(names)[:limit])
    return shown + (f" … ({len(names) - limit} more)" if len(names) > limit else "")


def copy_tensors_by_name(source: Dict[str, torch.Tensor], target: torch.nn.Module, what: str) -> None:
    """Copy every stored tensor into `target` by dotted name; names and shapes must match exactly."""
    dest = dict(target.named_parameters())
    dest.update(target.named_buffers())
    missing = [n for n in dest if n not in source]
    unexpected = [n for n in source if n not in dest]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing from the pickle: {_name_list(missing)}")
        if unexpected:
            parts.append(f"not in our network: {_name_list(unexpected)}")
        raise NetworkPklError(f"{what}: tensor names do not match ({'; '.join(parts)}); the pickle's network "
                              f"differs from ours, load it with safe=False if you trust the file")
    wrong = [f"{n} {tuple(source[n].shape)} vs ours {tuple(t.shape)}" for n, t in dest.items()
             if tuple(source[n].shape) != tuple(t.shape)]
    if wrong:
        raise NetworkPklError(f"{what}: tensor shapes do not match ({_name_list(wrong, 4)})")
    with torch.no_grad():
        for name, tensor in dest.items():
            stored = source[name]
            tensor.copy_(stored)
            if isinstance(tensor, torch.nn.Parameter):
                tensor.requires_grad_(bool(stored.requires_grad))


def _check_attributes(record: PersistentRecord, module: torch.nn.Module, what: str) -> None:
    for name in _CHECKED_ATTRIBUTES:
        stored, ours = record.state.get(name), getattr(module, name, None)
        if isinstance(stored, int) and isinstance(ours, int) and stored != ours:
            raise NetworkPklError(f"{what}: the pickle says {name}={stored} but the rebuilt network has {ours}")


def rebuild(record: PersistentRecord, what: str) -> torch.nn.Module:
    """Construct our network for `record` from its stored kwargs and copy every tensor into it."""
    family = recognise_family(record)
    if family not in REBUILDABLE_FAMILIES:
        raise NetworkPklError(f"{what} is a {record.class_name!r} of the {family} network family, which "
                              f"cannot be rebuilt in safe mode")
    kwargs = translate_kwargs(record, family)
    cls = _our_class(record.class_name)
    try:
        module = cls(*record.init_args, **kwargs)
    except (TypeError, ValueError, AssertionError, KeyError) as err:
        raise NetworkPklError(f"{what}: cannot build our {record.class_name} from the stored constructor "
                              f"arguments {kwargs} ({err})") from err
    copy_tensors_by_name(record.named_tensors(), module, what)
    _check_attributes(record, module, what)
    module.train(bool(record.state.get("training", False)))
    return module
