"""stylegan2-pytorch checkpoints -> reference network pickles (the library of `stylegan-unlearn convert`).

The paper's models are stylegan2-pytorch `.pt` dicts (`g`, `d`, `g_ema` state dicts, plus optimiser state
and `args`). The two implementations compute the same functions, so conversion is a renaming with
a few reshapes:

* generator: `style.{i+1}` -> `mapping.fc{i}`, `input.input` -> `synthesis.b4.const`, `conv1` /
  `to_rgb1` -> `synthesis.b4.conv1` / `.torgb`, `convs.{2k}`, `convs.{2k+1}`, `to_rgbs.{k}` ->
  `synthesis.b{2^(k+3)}.conv0`, `.conv1`, `.torgb`, `noises.noise_{i}` -> the layers' `noise_const`;
  inside a layer `conv.weight [1,O,I,k,k]` -> `weight [O,I,k,k]`, `conv.modulation` -> `affine`,
  `noise.weight [1]` -> `noise_strength []`, `activate.bias` -> `bias`, ToRGB `bias [1,C,1,1]` -> `[C]`.
  stylegan2-pytorch's up-sampling transposed convolution applies its kernel as a true convolution, which is
  what the reference does with `flip_weight=False`, so no kernel is flipped. Both store dense
  weights divided by the learning-rate multiplier (0.01 in the mapping network) and biases raw.
* discriminator: `convs.0` -> `b{R}.fromrgb`, `convs.{i}` (a ResBlock) -> `b{R/2^(i-1)}` with
  `conv1` -> `conv0`, `conv2` -> `conv1` (down-sampling), `skip` -> `skip`; `final_conv` -> `b4.conv`,
  `final_linear.0/1` -> `b4.fc` / `b4.out`. stylegan2-pytorch's `(out + skip) / sqrt(2)` equals the
  reference's gain of sqrt(1/2) on both branches.
* stylegan2-pytorch keeps no `w_avg`: the checkpoint's `latent_avg` is used if present, otherwise the
  mean of the converted mapping network over a fixed set of latents.

Blur kernels stored by stylegan2-pytorch are checked to be the default [1,3,3,1] and then dropped (the
reference recomputes its `resample_filter` buffers).
"""
import argparse
import os
import pickle
import zipfile
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from stylegan_unlearn.networks.stylegan2 import Discriminator, Generator
from stylegan_unlearn.pkl import save_network_pkl
from torch_utils.ops import upfirdn2d

__all__ = [
    "ConversionError",
    "generator_from_stylegan2_pytorch",
    "discriminator_from_stylegan2_pytorch",
    "generator_to_stylegan2_pytorch",
    "discriminator_to_stylegan2_pytorch",
    "convert_stylegan2_pytorch_checkpoint",
    "load_stylegan2_pytorch_checkpoint",
    "convert_checkpoint_file",
]

StateDict = Dict[str, torch.Tensor]

SG2PT_MAPPING_LR = 0.01    # stylegan2-pytorch's `lr_mlp` default; not recoverable from the weights
SG2PT_MBSTD_GROUP = 4      # stylegan2-pytorch's `stddev_group`
DEFAULT_W_AVG_SAMPLES = 10000
W_AVG_SEED = 0


class ConversionError(ValueError):
    """A checkpoint that does not have the stylegan2-pytorch StyleGAN2 layout this converter understands."""


# ----------------------------------------------------------------------------------------------
# Small helpers


def _strip_ddp_prefix(state: StateDict) -> StateDict:
    if state and all(key.startswith("module.") for key in state):
        return {key[len("module."):]: value for key, value in state.items()}
    return dict(state)


class _Reader:
    """Takes tensors out of a stylegan2-pytorch state dict, checking names and shapes, and tracks what was used."""

    def __init__(self, state: StateDict, what: str):
        self.state = _strip_ddp_prefix(state)
        self.what = what
        self.used: set = set()

    def has(self, key: str) -> bool:
        return key in self.state

    def get(self, key: str, shape: Optional[List[int]] = None) -> torch.Tensor:
        if key not in self.state:
            raise ConversionError(f"{self.what} is missing '{key}': not a stylegan2-pytorch checkpoint, "
                                  f"or a different model variant")
        value = self.state[key]
        if not isinstance(value, torch.Tensor):
            raise ConversionError(f"{self.what} entry '{key}' is a {type(value).__name__}, expected a tensor")
        if shape is not None and list(value.shape) != list(shape):
            raise ConversionError(f"{self.what} entry '{key}' has shape {list(value.shape)}, expected {list(shape)}")
        self.used.add(key)
        return value.detach().to(device="cpu", dtype=torch.float32)

    def check_kernel(self, key: str, expected: torch.Tensor) -> None:
        """Blur kernels are derived data; accept only the default [1,3,3,1] one (absent is fine too)."""
        if key not in self.state:
            return
        kernel = self.get(key)
        if kernel.shape != expected.shape or not torch.allclose(kernel, expected, atol=1e-6):
            raise ConversionError(f"{self.what} entry '{key}' is not the default [1,3,3,1] blur kernel; "
                                  f"networks with other resampling filters cannot be converted")

    def check_all_used(self) -> None:
        unused = sorted(set(self.state) - self.used)
        if unused:
            shown = ", ".join(f"'{key}'" for key in unused[:5]) + (" ..." if len(unused) > 5 else "")
            raise ConversionError(f"{self.what} has {len(unused)} unrecognised entries ({shown}); only plain "
                                  f"stylegan2-pytorch StyleGAN2 networks (not SWAGAN or modified models) can be converted")


def _blur_kernel(gain: float = 1) -> torch.Tensor:
    return upfirdn2d.setup_filter([1, 3, 3, 1]) * gain


def _channel_rule(channels: Dict[int, int], what: str) -> Tuple[int, int]:
    """Find (channel_base, channel_max) with channels[res] == min(channel_base // res, channel_max)."""
    channel_max = max(channels.values())
    below_max = [res * ch for res, ch in channels.items() if ch < channel_max]
    candidates = sorted(set(below_max)) or [channel_max * max(channels)]
    for channel_base in candidates:
        if all(min(channel_base // res, channel_max) == ch for res, ch in channels.items()):
            return channel_base, channel_max
    listing = ", ".join(f"{res}: {ch}" for res, ch in sorted(channels.items()))
    raise ConversionError(f"{what} channel counts ({listing}) do not follow min(channel_base // res, channel_max), "
                          f"so they cannot be expressed with the reference constructor")


def _resolution_from_count(count: int, offset: int, what: str, key: str) -> int:
    resolution = 2 ** (count + offset)
    if count < 0 or resolution < 4:
        raise ConversionError(f"{what} has no '{key}' entries: not a stylegan2-pytorch network")
    return resolution


def _count_indexed(state: StateDict, prefix: str, suffix: str, start: int = 0) -> int:
    count = 0
    while f"{prefix}{start + count}{suffix}" in state:
        count += 1
    return count


def _load_exactly(module: torch.nn.Module, tensors: StateDict, derived: Tuple[str, ...], what: str) -> None:
    """Copy `tensors` into `module`; every entry not derived (resample filters, w_avg) must be provided."""
    own = module.state_dict()
    missing = [name for name in own if name not in tensors and not name.endswith(derived)]
    extra = [name for name in tensors if name not in own]
    if missing or extra:  # A bug in the name table, not bad user input.
        raise RuntimeError(f"internal conversion error for {what}: missing {missing[:5]}, extra {extra[:5]}")
    with torch.no_grad():
        for name, value in tensors.items():
            if list(own[name].shape) != list(value.shape):
                raise RuntimeError(f"internal conversion error for {what}: {name} {list(value.shape)} "
                                   f"vs {list(own[name].shape)}")
            own[name].copy_(value)


# ----------------------------------------------------------------------------------------------
# Generator


def generator_from_stylegan2_pytorch(
    state: StateDict,
    *,
    latent_avg: Optional[torch.Tensor] = None,
    w_avg_samples: int = DEFAULT_W_AVG_SAMPLES,
    mapping_lr_multiplier: float = SG2PT_MAPPING_LR,
    what: str = "generator state dict",
) -> Generator:
    """Build our `Generator` holding the weights of a stylegan2-pytorch `Generator` state dict."""
    src = _Reader(state, what)
    num_mlp = _count_indexed(src.state, "style.", ".weight", start=1)
    if num_mlp == 0:
        src.get("style.1.weight")  # raises the missing-key error
    w_dim = src.get("style.1.weight").shape[1]
    resolution = _resolution_from_count(_count_indexed(src.state, "to_rgbs.", ".conv.weight"), 2, what, "to_rgbs")
    block_resolutions = [2 ** i for i in range(2, int(np.log2(resolution)) + 1)]

    const = src.get("input.input")
    if const.ndim != 4 or const.shape[0] != 1 or list(const.shape[2:]) != [4, 4]:
        raise ConversionError(f"{what} entry 'input.input' has shape {list(const.shape)}, expected [1, C, 4, 4]")
    channels = {4: const.shape[1]}
    for k, res in enumerate(block_resolutions[1:]):
        channels[res] = src.get(f"convs.{2 * k}.conv.weight").shape[1]
    img_channels = src.get("to_rgb1.conv.weight").shape[1]
    channel_base, channel_max = _channel_rule(channels, what)

    mapping_kwargs: Dict[str, Any] = dict(num_layers=num_mlp)
    if mapping_lr_multiplier != SG2PT_MAPPING_LR:  # 0.01 is also the reference default
        mapping_kwargs["lr_multiplier"] = mapping_lr_multiplier
    init_kwargs = dict(
        z_dim=w_dim, c_dim=0, w_dim=w_dim, img_resolution=resolution, img_channels=img_channels,
        mapping_kwargs=mapping_kwargs,
        synthesis_kwargs=dict(channel_base=channel_base, channel_max=channel_max, num_fp16_res=0, conv_clamp=None),
    )

    out: StateDict = {}
    for i in range(num_mlp):
        out[f"mapping.fc{i}.weight"] = src.get(f"style.{i + 1}.weight", [w_dim, w_dim])
        out[f"mapping.fc{i}.bias"] = src.get(f"style.{i + 1}.bias", [w_dim])
    out["synthesis.b4.const"] = const[0]

    def styled_conv(src_name: str, dst_name: str, c_in: int, c_out: int, noise_idx: int, res: int) -> None:
        out[f"{dst_name}.weight"] = src.get(f"{src_name}.conv.weight", [1, c_out, c_in, 3, 3])[0]
        out[f"{dst_name}.affine.weight"] = src.get(f"{src_name}.conv.modulation.weight", [c_in, w_dim])
        out[f"{dst_name}.affine.bias"] = src.get(f"{src_name}.conv.modulation.bias", [c_in])
        out[f"{dst_name}.noise_strength"] = src.get(f"{src_name}.noise.weight", [1]).reshape([])
        out[f"{dst_name}.bias"] = src.get(f"{src_name}.activate.bias", [c_out])
        out[f"{dst_name}.noise_const"] = src.get(f"noises.noise_{noise_idx}", [1, 1, res, res])[0, 0]

    def to_rgb(src_name: str, dst_name: str, c_in: int) -> None:
        out[f"{dst_name}.weight"] = src.get(f"{src_name}.conv.weight", [1, img_channels, c_in, 1, 1])[0]
        out[f"{dst_name}.affine.weight"] = src.get(f"{src_name}.conv.modulation.weight", [c_in, w_dim])
        out[f"{dst_name}.affine.bias"] = src.get(f"{src_name}.conv.modulation.bias", [c_in])
        out[f"{dst_name}.bias"] = src.get(f"{src_name}.bias", [1, img_channels, 1, 1]).reshape([img_channels])

    styled_conv("conv1", "synthesis.b4.conv1", channels[4], channels[4], 0, 4)
    to_rgb("to_rgb1", "synthesis.b4.torgb", channels[4])
    for k, res in enumerate(block_resolutions[1:]):
        c_in, c_out = channels[res // 2], channels[res]
        styled_conv(f"convs.{2 * k}", f"synthesis.b{res}.conv0", c_in, c_out, 2 * k + 1, res)
        styled_conv(f"convs.{2 * k + 1}", f"synthesis.b{res}.conv1", c_out, c_out, 2 * k + 2, res)
        to_rgb(f"to_rgbs.{k}", f"synthesis.b{res}.torgb", c_out)
        src.check_kernel(f"convs.{2 * k}.conv.blur.kernel", _blur_kernel(gain=4))
        src.check_kernel(f"to_rgbs.{k}.upsample.kernel", _blur_kernel(gain=4))
    src.check_all_used()

    G = Generator(**init_kwargs).eval().requires_grad_(False)
    _load_exactly(G, out, derived=("resample_filter", "mapping.w_avg"), what=what)
    with torch.no_grad():
        if latent_avg is not None:
            G.mapping.w_avg.copy_(_check_latent_avg(latent_avg, w_dim))
        else:
            G.mapping.w_avg.copy_(mean_w(G, w_avg_samples))
    return G.requires_grad_(True)


def _check_latent_avg(latent_avg: Any, w_dim: int) -> torch.Tensor:
    if not isinstance(latent_avg, torch.Tensor) or latent_avg.numel() != w_dim:
        shape = list(latent_avg.shape) if isinstance(latent_avg, torch.Tensor) else type(latent_avg).__name__
        raise ConversionError(f"checkpoint entry 'latent_avg' is {shape}, expected a tensor with {w_dim} values")
    return latent_avg.detach().to(device="cpu", dtype=torch.float32).reshape([w_dim])


@torch.no_grad()
def mean_w(G: Generator, num_samples: int, seed: int = W_AVG_SEED, batch_size: int = 1000) -> torch.Tensor:
    """Mean mapping output over `num_samples` fixed latents: w_avg for a network that kept none."""
    if num_samples < 1:
        raise ValueError(f"w_avg needs at least one sample, got {num_samples}")
    generator = torch.Generator().manual_seed(seed)
    was_training = G.mapping.training
    G.mapping.eval()
    total = torch.zeros([G.w_dim], dtype=torch.float64)
    done = 0
    while done < num_samples:
        n = min(batch_size, num_samples - done)
        z = torch.randn([n, G.z_dim], generator=generator)
        total += G.mapping(z, None, skip_w_avg_update=True)[:, 0].sum(dim=0).double()
        done += n
    G.mapping.train(was_training)
    return (total / num_samples).float()


def generator_to_stylegan2_pytorch(G: torch.nn.Module) -> StateDict:
    """The inverse renaming, for generators that stylegan2-pytorch's `Generator` can represent."""
    if G.c_dim != 0 or G.z_dim != G.w_dim:
        raise ConversionError("only unconditional generators with z_dim == w_dim have a stylegan2-pytorch equivalent")
    synthesis = G.synthesis
    if any(getattr(synthesis, f"b{res}").architecture != "skip" for res in synthesis.block_resolutions):
        raise ConversionError("only 'skip' generators have a stylegan2-pytorch equivalent")
    sd = {name: t.detach().cpu().clone() for name, t in G.state_dict().items()}
    out: StateDict = {}
    for i in range(G.mapping.num_layers):
        out[f"style.{i + 1}.weight"] = sd[f"mapping.fc{i}.weight"]
        out[f"style.{i + 1}.bias"] = sd[f"mapping.fc{i}.bias"]
    out["input.input"] = sd["synthesis.b4.const"].unsqueeze(0)

    def styled_conv(src_name: str, dst_name: str, noise_idx: int) -> None:
        out[f"{dst_name}.conv.weight"] = sd[f"{src_name}.weight"].unsqueeze(0)
        out[f"{dst_name}.conv.modulation.weight"] = sd[f"{src_name}.affine.weight"]
        out[f"{dst_name}.conv.modulation.bias"] = sd[f"{src_name}.affine.bias"]
        out[f"{dst_name}.noise.weight"] = sd[f"{src_name}.noise_strength"].reshape([1])
        out[f"{dst_name}.activate.bias"] = sd[f"{src_name}.bias"]
        out[f"noises.noise_{noise_idx}"] = sd[f"{src_name}.noise_const"][None, None]

    def to_rgb(src_name: str, dst_name: str) -> None:
        out[f"{dst_name}.conv.weight"] = sd[f"{src_name}.weight"].unsqueeze(0)
        out[f"{dst_name}.conv.modulation.weight"] = sd[f"{src_name}.affine.weight"]
        out[f"{dst_name}.conv.modulation.bias"] = sd[f"{src_name}.affine.bias"]
        out[f"{dst_name}.bias"] = sd[f"{src_name}.bias"].reshape([1, -1, 1, 1])

    styled_conv("synthesis.b4.conv1", "conv1", 0)
    to_rgb("synthesis.b4.torgb", "to_rgb1")
    for k, res in enumerate(synthesis.block_resolutions[1:]):
        styled_conv(f"synthesis.b{res}.conv0", f"convs.{2 * k}", 2 * k + 1)
        styled_conv(f"synthesis.b{res}.conv1", f"convs.{2 * k + 1}", 2 * k + 2)
        to_rgb(f"synthesis.b{res}.torgb", f"to_rgbs.{k}")
        out[f"convs.{2 * k}.conv.blur.kernel"] = _blur_kernel(gain=4)
        out[f"to_rgbs.{k}.upsample.kernel"] = _blur_kernel(gain=4)
    return out


# ----------------------------------------------------------------------------------------------
# Discriminator


def discriminator_from_stylegan2_pytorch(
    state: StateDict,
    *,
    mbstd_group_size: int = SG2PT_MBSTD_GROUP,
    what: str = "discriminator state dict",
) -> Discriminator:
    """Build our `Discriminator` holding the weights of a stylegan2-pytorch `Discriminator` state dict."""
    src = _Reader(state, what)
    num_blocks = _count_indexed(src.state, "convs.", ".conv1.0.weight", start=1)
    resolution = _resolution_from_count(num_blocks, 2, what, "convs.1.conv1")
    from_rgb = src.get("convs.0.0.weight")
    if from_rgb.ndim != 4 or list(from_rgb.shape[2:]) != [1, 1]:
        raise ConversionError(f"{what} entry 'convs.0.0.weight' has shape {list(from_rgb.shape)}, "
                              f"expected [C, Ic, 1, 1]")
    img_channels = from_rgb.shape[1]
    block_resolutions = [resolution // 2 ** i for i in range(num_blocks)]   # R, R/2, ..., 8
    channels = {res: src.get(f"convs.{i + 1}.conv1.0.weight").shape[0] for i, res in enumerate(block_resolutions)}
    channels[4] = src.get("final_linear.0.weight").shape[0]
    channel_base, channel_max = _channel_rule(channels, what)
    final_in = src.get("final_conv.0.weight").shape[1]
    mbstd_num_channels = final_in - channels[4]
    if mbstd_num_channels < 0:
        raise ConversionError(f"{what} entry 'final_conv.0.weight' has {final_in} input channels, "
                              f"fewer than the {channels[4]} features it reads")

    init_kwargs = dict(
        c_dim=0, img_resolution=resolution, img_channels=img_channels, architecture="resnet",
        channel_base=channel_base, channel_max=channel_max, num_fp16_res=0, conv_clamp=None,
        epilogue_kwargs=dict(mbstd_group_size=mbstd_group_size, mbstd_num_channels=mbstd_num_channels),
    )

    out: StateDict = {}
    top = f"b{resolution}"
    out[f"{top}.fromrgb.weight"] = src.get("convs.0.0.weight", [channels[resolution], img_channels, 1, 1])
    out[f"{top}.fromrgb.bias"] = src.get("convs.0.1.bias", [channels[resolution]])
    for i, res in enumerate(block_resolutions):
        name, c, c_out = f"convs.{i + 1}", channels[res], channels[res // 2]
        out[f"b{res}.conv0.weight"] = src.get(f"{name}.conv1.0.weight", [c, c, 3, 3])
        out[f"b{res}.conv0.bias"] = src.get(f"{name}.conv1.1.bias", [c])
        out[f"b{res}.conv1.weight"] = src.get(f"{name}.conv2.1.weight", [c_out, c, 3, 3])
        out[f"b{res}.conv1.bias"] = src.get(f"{name}.conv2.2.bias", [c_out])
        out[f"b{res}.skip.weight"] = src.get(f"{name}.skip.1.weight", [c_out, c, 1, 1])
        src.check_kernel(f"{name}.conv2.0.kernel", _blur_kernel())
        src.check_kernel(f"{name}.skip.0.kernel", _blur_kernel())
    c4 = channels[4]
    out["b4.conv.weight"] = src.get("final_conv.0.weight", [c4, c4 + mbstd_num_channels, 3, 3])
    out["b4.conv.bias"] = src.get("final_conv.1.bias", [c4])
    out["b4.fc.weight"] = src.get("final_linear.0.weight", [c4, c4 * 16])
    out["b4.fc.bias"] = src.get("final_linear.0.bias", [c4])
    out["b4.out.weight"] = src.get("final_linear.1.weight", [1, c4])
    out["b4.out.bias"] = src.get("final_linear.1.bias", [1])
    src.check_all_used()

    D = Discriminator(**init_kwargs).eval()
    _load_exactly(D, out, derived=("resample_filter",), what=what)
    return D


def discriminator_to_stylegan2_pytorch(D: torch.nn.Module) -> StateDict:
    """The inverse renaming, for unconditional 'resnet' discriminators."""
    if D.c_dim != 0:
        raise ConversionError("only unconditional discriminators have a stylegan2-pytorch equivalent")
    blocks = [getattr(D, f"b{res}") for res in D.block_resolutions]
    if any(block.architecture != "resnet" for block in blocks):
        raise ConversionError("only 'resnet' discriminators have a stylegan2-pytorch equivalent")
    sd = {name: t.detach().cpu().clone() for name, t in D.state_dict().items()}
    top = f"b{D.img_resolution}"
    out: StateDict = {"convs.0.0.weight": sd[f"{top}.fromrgb.weight"], "convs.0.1.bias": sd[f"{top}.fromrgb.bias"]}
    for i, res in enumerate(D.block_resolutions):
        name = f"convs.{i + 1}"
        out[f"{name}.conv1.0.weight"] = sd[f"b{res}.conv0.weight"]
        out[f"{name}.conv1.1.bias"] = sd[f"b{res}.conv0.bias"]
        out[f"{name}.conv2.0.kernel"] = _blur_kernel()
        out[f"{name}.conv2.1.weight"] = sd[f"b{res}.conv1.weight"]
        out[f"{name}.conv2.2.bias"] = sd[f"b{res}.conv1.bias"]
        out[f"{name}.skip.0.kernel"] = _blur_kernel()
        out[f"{name}.skip.1.weight"] = sd[f"b{res}.skip.weight"]
    out["final_conv.0.weight"] = sd["b4.conv.weight"]
    out["final_conv.1.bias"] = sd["b4.conv.bias"]
    out["final_linear.0.weight"] = sd["b4.fc.weight"]
    out["final_linear.0.bias"] = sd["b4.fc.bias"]
    out["final_linear.1.weight"] = sd["b4.out.weight"]
    out["final_linear.1.bias"] = sd["b4.out.bias"]
    return out


# ----------------------------------------------------------------------------------------------
# Whole checkpoints


def convert_stylegan2_pytorch_checkpoint(ckpt: Dict[str, Any], *,
                                  w_avg_samples: int = DEFAULT_W_AVG_SAMPLES) -> Dict[str, Any]:
    """stylegan2-pytorch checkpoint dict -> network-pickle dict `{G, D, G_ema, augment_pipe, training_set_kwargs}`.

    A checkpoint with only `g_ema` (e.g. from stylegan2-pytorch's TF converter) uses it for `G` as well;
    a discriminator is required because the reference pickle format needs one.
    """
    if not isinstance(ckpt, dict):
        raise ConversionError(f"expected a stylegan2-pytorch checkpoint dict, got {type(ckpt).__name__}")
    if "g_ema" not in ckpt:
        present = ", ".join(sorted(map(str, ckpt))[:8])
        raise ConversionError(f"checkpoint has no 'g_ema' entry (it has: {present}); expected a stylegan2-pytorch "
                              f"stylegan2-pytorch checkpoint with 'g', 'd' and 'g_ema'")
    if "d" not in ckpt:
        raise ConversionError("checkpoint has no 'd' (discriminator) entry; the network pickle format needs one")
    for key in ("g", "d", "g_ema"):
        if key in ckpt and not isinstance(ckpt[key], dict):
            raise ConversionError(f"checkpoint entry '{key}' is a {type(ckpt[key]).__name__}, expected a state dict")
    latent_avg = ckpt.get("latent_avg")
    G_ema = generator_from_stylegan2_pytorch(ckpt["g_ema"], latent_avg=latent_avg, w_avg_samples=w_avg_samples,
                                      what="checkpoint entry 'g_ema'")
    G_state = ckpt.get("g", ckpt["g_ema"])
    G = generator_from_stylegan2_pytorch(G_state, latent_avg=latent_avg, w_avg_samples=w_avg_samples,
                                  what="checkpoint entry 'g'" if "g" in ckpt else "checkpoint entry 'g_ema'")
    D = discriminator_from_stylegan2_pytorch(ckpt["d"], what="checkpoint entry 'd'")
    return dict(G=G, D=D, G_ema=G_ema, augment_pipe=None, training_set_kwargs=None)


def load_stylegan2_pytorch_checkpoint(path: str, *, allow_pickle: bool = False) -> Dict[str, Any]:
    """Read a stylegan2-pytorch `.pt` with `torch.load`; without `allow_pickle` only tensors and plain data load."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if not zipfile.is_zipfile(path):
        raise ConversionError(f"cannot read {path} as a torch checkpoint (not a torch.save zip archive); "
                              f"expected a stylegan2-pytorch .pt file")
    if allow_pickle:
        return torch.load(path, map_location="cpu", weights_only=False)
    try:
        # stylegan2-pytorch stores its argparse options next to the weights.
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        lines = [line.strip() for line in str(err).splitlines() if "Unsupported global" in line]
        reason = lines[0].split(" was not")[0].replace("WeightsUnpickler error: ", "") if lines else "not plain data"
        raise ConversionError(f"{path} stores Python objects other than tensors and options ({reason}); "
                              f"if you trust the file, rerun with --allow-pickle") from None
    except Exception as err:  # corrupt archive
        raise ConversionError(f"cannot read {path} as a torch checkpoint ({type(err).__name__}: {err}); "
                              f"expected a stylegan2-pytorch .pt file") from None


def _describe(G: Generator, D: Discriminator) -> str:
    syn = G.init_kwargs["synthesis_kwargs"] if hasattr(G, "init_kwargs") else {}
    return (f"{G.img_resolution}x{G.img_resolution}x{G.img_channels}, z/w {G.z_dim}, "
            f"mapping {G.mapping.num_layers} layers, channel_base {syn.get('channel_base')}, "
            f"channel_max {syn.get('channel_max')}, D minibatch-std group {D.b4.mbstd.group_size if D.b4.mbstd else 0}")


def convert_checkpoint_file(src: str, dst: str, *, w_avg_samples: int = DEFAULT_W_AVG_SAMPLES,
                            allow_pickle: bool = False, overwrite: bool = False) -> str:
    """Convert the stylegan2-pytorch checkpoint `src` into the network pickle `dst`; returns a one-line summary.

    Raises FileExistsError (dst exists and not `overwrite`), FileNotFoundError, or ConversionError (a
    ValueError) naming `src` for a checkpoint this converter does not understand.
    """
    if os.path.exists(dst) and not overwrite:
        raise FileExistsError(f"{dst} already exists; pass --overwrite to replace it")
    ckpt = load_stylegan2_pytorch_checkpoint(src, allow_pickle=allow_pickle)
    try:
        data = convert_stylegan2_pytorch_checkpoint(ckpt, w_avg_samples=w_avg_samples)
    except ConversionError as err:
        raise ConversionError(f"{src}: {err}") from None
    save_network_pkl(dst, data)
    source = "checkpoint latent_avg" if ckpt.get("latent_avg") is not None else f"mean of {w_avg_samples} latents"
    return f"converted {src} -> {dst}: {_describe(data['G_ema'], data['D'])}; w_avg from {source}"
