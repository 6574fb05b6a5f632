"""StyleGAN2: the generator and the discriminator, as one readable model definition.

Read it top to bottom, in the order StyleGAN2 is usually explained:

  1. the mapping network, which turns a latent z (and a class label c) into a style vector w;
  2. the modulated convolution, the generator's only weighted operation on images: each sample's
     style scales the kernel's input channels, and "demodulation" rescales every output channel
     back to unit variance;
  3. the synthesis block, one resolution of the generator: up-sampling convolution, convolution,
     and a contribution to the RGB image;
  4. the synthesis network, a chain of blocks from 4x4 to the output resolution, and the
     Generator, which is mapping followed by synthesis;
  5. the discriminator: blocks that halve the resolution down to 4x4, and an epilogue with the
     minibatch standard deviation and the final dense layers.

Interoperability with StyleGAN2-ADA and StyleGAN3 network pickles fixes a few things, and only
those are shared with that code: the class names and constructor keyword arguments (pickles store
them), the names, shapes and dtypes of parameters and buffers (weights move by name), the
arithmetic (copied weights must draw the same images), fp16 blocks with `conv_clamp`, and the
call keywords `noise_mode`, `force_fp32`, `fused_modconv` and `update_emas`.

The source of this module is embedded in every network pickle we write and runs wherever such a
pickle is loaded, so it imports nothing but numpy, torch and `torch_utils`.
"""
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from torch_utils import misc
from torch_utils import persistence
from torch_utils.ops import bias_act
from torch_utils.ops import conv2d_resample
from torch_utils.ops import fma
from torch_utils.ops import upfirdn2d

NOISE_MODES = ("random", "const", "none")
ARCHITECTURES = ("orig", "skip", "resnet")
DEFAULT_FILTER = (1, 3, 3, 1)   # binomial low-pass used around every 2x resampling
RESIDUAL_GAIN = np.sqrt(0.5)    # a residual branch and its shortcut are summed with this weight each


# ================================================================================================
# Small shared rules
# ================================================================================================

def _require_choice(what: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(map(repr, allowed))}, got {value!r}")


def _resolution_log2(img_resolution: int) -> int:
    """log2 of the image size, which must be a power of two of at least 4."""
    if not isinstance(img_resolution, (int, np.integer)) or img_resolution < 4 or img_resolution & (img_resolution - 1):
        raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution!r}")
    return int(img_resolution).bit_length() - 1


def _feature_maps(resolution: int, channel_base: int, channel_max: int) -> int:
    """Channels at one resolution: inversely proportional to it, capped at `channel_max`."""
    return min(channel_base // resolution, channel_max)


def _lowest_fp16_resolution(img_resolution: int, num_fp16_res: int) -> int:
    """Blocks at this resolution and above compute in fp16: the `num_fp16_res` largest, never below 8x8."""
    return max((2 * img_resolution) >> max(num_fp16_res, 0), 8)


def _block_dtype(use_fp16: bool, force_fp32: bool, device: torch.device) -> torch.dtype:
    """fp16 only where the block was built for it, the caller allows it, and a GPU runs it."""
    return torch.float16 if use_fp16 and not force_fp32 and device.type == "cuda" else torch.float32


def _memory_format(channels_last: bool) -> torch.memory_format:
    return torch.channels_last if channels_last else torch.contiguous_format


def _unit_normal(shape: List[int], channels_last: bool = False) -> torch.Tensor:
    """N(0, 1) initial weights; equalised layers apply their 1/sqrt(fan_in) scale at run time instead."""
    return torch.randn(shape).contiguous(memory_format=_memory_format(channels_last))


def _bias_activate(x: torch.Tensor, bias: Optional[torch.Tensor], activation: str, conv_clamp: Optional[float],
                   gain: float = 1) -> torch.Tensor:
    """The step after every convolution: add the bias, apply the activation, scale by its standard gain
    times `gain`, and clamp to +-(conv_clamp * gain) if a clamp is set."""
    total_gain = bias_act.activation_funcs[activation].def_gain * gain
    clamp = None if conv_clamp is None else conv_clamp * gain
    bias = None if bias is None else bias.to(x.dtype)
    return bias_act.bias_act(x, bias, act=activation, gain=total_gain, clamp=clamp)


# ================================================================================================
# 1. Mapping network: z (+ c) -> w
# ================================================================================================

def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Divide `x` by its root mean square along `dim`, so latents and label embeddings enter at unit scale."""
    mean_square = x.square().mean(dim=dim, keepdim=True)
    return x * mean_square.add(eps).rsqrt()


@persistence.persistent_class
class FullyConnectedLayer(torch.nn.Module):
    """Dense layer with an equalised learning rate.

    The stored weight is N(0, 1) / lr_multiplier and every call multiplies it by
    lr_multiplier / sqrt(in_features): the effective weight has the usual He scale, while the
    optimiser's steps on the stored value act lr_multiplier times more slowly. The bias is scaled
    by lr_multiplier for the same reason.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str = "linear",
                 lr_multiplier: float = 1, bias_init: float = 0):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        initial_bias = torch.full([out_features], float(bias_init), dtype=torch.float32)
        self.bias = torch.nn.Parameter(initial_bias) if bias else None
        self.weight_gain = lr_multiplier / np.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight.to(x.dtype) * self.weight_gain
        if self.bias is None:
            return bias_act.bias_act(F.linear(x, weight), None, act=self.activation)
        bias = self.bias.to(x.dtype)
        if self.bias_gain != 1:
            bias = bias * self.bias_gain
        if self.activation == "linear":
            return F.linear(x, weight, bias)
        return bias_act.bias_act(F.linear(x, weight), bias, act=self.activation)


@persistence.persistent_class
class MappingNetwork(torch.nn.Module):
    """An MLP from z (and an embedded label c) to w, repeated `num_ws` times; tracks the mean w for truncation.

    With `num_ws=None` it returns one w per sample (the discriminator's label embedding uses it so).
    `w_avg` is updated in training mode only, as a moving average with decay `w_avg_beta`.
    """

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: Optional[int], num_layers: int = 8,
                 embed_features: Optional[int] = None, layer_features: Optional[int] = None,
                 activation: str = "lrelu", lr_multiplier: float = 0.01, w_avg_beta: Optional[float] = 0.995):
        if z_dim == 0 and c_dim == 0:
            raise ValueError("a mapping network needs an input: z_dim and c_dim cannot both be 0")
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta

        label_width = 0 if c_dim == 0 else (w_dim if embed_features is None else embed_features)
        hidden_width = w_dim if layer_features is None else layer_features
        widths = [z_dim + label_width] + [hidden_width] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, label_width)
        for index in range(num_layers):
            dense = FullyConnectedLayer(widths[index], widths[index + 1], activation=activation,
                                        lr_multiplier=lr_multiplier)
            self.add_module(f"fc{index}", dense)
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(self, z: Optional[torch.Tensor], c: Optional[torch.Tensor], truncation_psi: float = 1,
                truncation_cutoff: Optional[int] = None, skip_w_avg_update: bool = False,
                update_emas: Optional[bool] = None) -> torch.Tensor:
        # `update_emas` is StyleGAN3's keyword; here, as in StyleGAN2-ADA, training mode decides.
        w = self._normalised_input(z, c)
        for index in range(self.num_layers):
            w = getattr(self, f"fc{index}")(w)
        if self.training and self.w_avg_beta is not None and not skip_w_avg_update:
            self._track_mean(w)
        if self.num_ws is not None:
            w = w.unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:
            w = self._truncate(w, truncation_psi, truncation_cutoff)
        return w

    def _normalised_input(self, z, c) -> torch.Tensor:
        parts = []
        if self.z_dim > 0:
            misc.assert_shape(z, [None, self.z_dim])
            parts.append(normalize_2nd_moment(z.to(torch.float32)))
        if self.c_dim > 0:
            if c is None:
                raise ValueError(f"this network is conditional (c_dim={self.c_dim}): "
                                 f"pass labels c of shape [N, {self.c_dim}]")
            misc.assert_shape(c, [None, self.c_dim])
            parts.append(normalize_2nd_moment(self.embed(c.to(torch.float32))))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    @torch.no_grad()
    def _track_mean(self, w: torch.Tensor) -> None:
        batch_mean = w.detach().mean(dim=0)
        self.w_avg.copy_(batch_mean.lerp(self.w_avg, self.w_avg_beta))

    def _truncate(self, ws: torch.Tensor, psi: float, cutoff: Optional[int]) -> torch.Tensor:
        """Pull ws towards `w_avg` by the factor psi; with a cutoff, only the first `cutoff` of them."""
        if self.w_avg_beta is None:
            raise ValueError("truncation needs w_avg, but this mapping network was built with w_avg_beta=None")
        if self.num_ws is None or cutoff is None:
            return self.w_avg.lerp(ws, psi)
        pulled = self.w_avg.lerp(ws[:, :cutoff], psi)
        return torch.cat([pulled, ws[:, cutoff:]], dim=1)


# ================================================================================================
# 2. Modulated convolution
# ================================================================================================

def _demodulation(weight: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
    """1 / (norm of each sample's modulated kernel per output channel), shape [N, O].

    The squared norm sum_{i,ky,kx} (styles[n, i] * weight[o, i, ky, kx])^2 factors into
    sum_i styles[n, i]^2 * energy[o, i], with energy the kernel's squared sum over its taps; so a
    small matrix product replaces building the [N, O, I, kh, kw] modulated kernels.
    """
    energy = weight.square().sum(dim=[2, 3])
    return styles.square().matmul(energy.t()).add(1e-8).rsqrt()


def _fp16_safe_operands(weight: torch.Tensor, styles: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Rescale weight and styles so that their product cannot overflow fp16.

    Each output channel's kernel is divided by its largest magnitude (and by sqrt(fan_in)), each
    sample's styles by theirs; demodulation divides by the same factors again, so the result is
    unchanged apart from rounding.
    """
    fan_in = weight[0].numel()
    weight = weight * (1 / np.sqrt(fan_in) / weight.abs().amax(dim=[1, 2, 3], keepdim=True))
    styles = styles / styles.abs().amax(dim=1, keepdim=True)
    return weight, styles


def _per_channel(values: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[N, C] -> [N, C, 1, 1] in `dtype`, to scale a feature map channel by channel."""
    return values.to(dtype).reshape(values.shape[0], -1, 1, 1)


def _modulate_activations(x, weight, styles, demod, noise, conv):
    """Modulated convolution with one kernel for the whole batch: scale x, convolve, rescale.

    Used in training: an ordinary convolution, and it vectorises under torch.func.vmap.
    """
    x = x * _per_channel(styles, x.dtype)
    x = conv2d_resample.conv2d_resample(x=x, w=weight.to(x.dtype), **conv)
    if demod is not None and noise is not None:
        return fma.fma(x, _per_channel(demod, x.dtype), noise.to(x.dtype))
    if demod is not None:
        return x * _per_channel(demod, x.dtype)
    return x if noise is None else x + noise.to(x.dtype)


def _modulate_kernels(x, weight, styles, demod, noise, conv):
    """Modulated convolution with one kernel per sample, run as a grouped convolution over the batch."""
    batch, in_channels, height, width = x.shape
    scale = styles.unsqueeze(1)                                  # [N, 1, I]
    if demod is not None:
        scale = scale * demod.unsqueeze(2)                       # [N, O, I]
    kernels = weight.unsqueeze(0) * scale.unsqueeze(3).unsqueeze(4)
    kernels = kernels.reshape(-1, in_channels, *weight.shape[2:]).to(x.dtype)
    x = x.reshape(1, batch * in_channels, height, width)
    y = conv2d_resample.conv2d_resample(x=x, w=kernels, groups=batch, **conv)
    y = y.reshape(batch, -1, *y.shape[2:])
    return y if noise is None else y + noise.to(y.dtype)


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor,
                     noise: Optional[torch.Tensor] = None, up: int = 1, down: int = 1, padding: int = 0,
                     resample_filter: Optional[torch.Tensor] = None, demodulate: bool = True,
                     flip_weight: bool = True, fused_modconv: bool = True) -> torch.Tensor:
    """Convolve x [N, I, H, W] with weight [O, I, kh, kw] whose input channels sample n scales by styles[n].

    With `demodulate`, every output channel is divided by the norm of its modulated kernel, which
    keeps activations at unit variance whatever the styles. `noise` is added after that. The fused
    form (one grouped convolution with per-sample kernels) and the unfused one (one kernel,
    activations scaled before and after) give the same result.
    """
    batch = x.shape[0]
    misc.assert_shape(x, [batch, weight.shape[1], None, None])
    misc.assert_shape(styles, [batch, weight.shape[1]])
    if demodulate and x.dtype == torch.float16:
        weight, styles = _fp16_safe_operands(weight, styles)
    demod = _demodulation(weight, styles) if demodulate else None
    conv = dict(f=resample_filter, up=up, down=down, padding=padding, flip_weight=flip_weight)
    if fused_modconv:
        return _modulate_kernels(x, weight, styles, demod, noise, conv)
    return _modulate_activations(x, weight, styles, demod, noise, conv)


@persistence.persistent_class
class SynthesisLayer(torch.nn.Module):
    """Modulated convolution (2x up-sampling when `up=2`), per-pixel noise, bias and activation.

    The style comes from w through the dense `affine` layer (bias 1, so styles start near one).
    The kernel needs no equalisation gain: demodulation normalises it.
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, kernel_size: int = 3,
                 up: int = 1, use_noise: bool = True, activation: str = "lrelu",
                 resample_filter: Sequence[int] = DEFAULT_FILTER, conv_clamp: Optional[float] = None,
                 channels_last: bool = False):
        super().__init__()
        self.resolution, self.up = resolution, up  # output size, and the up-sampling that reaches it
        self.padding = kernel_size // 2
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.use_noise = use_noise
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(_unit_normal([out_channels, in_channels, kernel_size, kernel_size],
                                                      channels_last))
        self.register_buffer("resample_filter", upfirdn2d.setup_filter(resample_filter))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = torch.nn.Parameter(torch.zeros([]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random", fused_modconv: bool = True,
                gain: float = 1) -> torch.Tensor:
        noise = self._noise(x.shape[0], x.device, noise_mode)
        # An up-sampling layer applies its kernel as a true convolution, the others as a correlation:
        # the reference convention, which copied weights depend on.
        x = modulated_conv2d(x, self.weight, self.affine(w), noise=noise, up=self.up, padding=self.padding,
                             resample_filter=self.resample_filter, flip_weight=(self.up == 1),
                             fused_modconv=fused_modconv)
        return _bias_activate(x, self.bias, self.activation, self.conv_clamp, gain)

    def _noise(self, batch: int, device: torch.device, noise_mode: str) -> Optional[torch.Tensor]:
        """'random': fresh noise per call; 'const': the stored `noise_const` map; 'none': no noise."""
        _require_choice("noise_mode", noise_mode, NOISE_MODES)
        if not self.use_noise or noise_mode == "none":
            return None
        if noise_mode == "const":
            return self.noise_const * self.noise_strength
        fresh = torch.randn([batch, 1, self.resolution, self.resolution], device=device)
        return fresh * self.noise_strength


@persistence.persistent_class
class ToRGBLayer(torch.nn.Module):
    """A block's image output: modulated 1x1 convolution to image channels, without demodulation."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 1,
                 conv_clamp: Optional[float] = None, channels_last: bool = False):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(_unit_normal([out_channels, in_channels, kernel_size, kernel_size],
                                                      channels_last))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        # Without demodulation the equalisation gain goes into the styles.
        self.weight_gain = 1 / np.sqrt(in_channels * kernel_size ** 2)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = True) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv)
        return _bias_activate(x, self.bias, "linear", self.conv_clamp)


# ================================================================================================
# 3. Synthesis block: one resolution of the generator
# ================================================================================================

@persistence.persistent_class
class SynthesisBlock(torch.nn.Module):
    """Doubles the feature maps' resolution and adds this resolution's detail to the image.

    The first block (`in_channels=0`) starts from a learned 4x4 constant and has only `conv1`;
    the others up-sample in `conv0`. Architectures: 'skip' sums every block's RGB output into an
    up-sampled image, 'orig' and 'resnet' draw the image in the last block only, and 'resnet' adds
    a 1x1 up-sampling shortcut around the two convolutions.
    `ws` carries one w per style-reading layer, in the order conv0, conv1, torgb.
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 is_last: bool, architecture: str = "skip", resample_filter: Sequence[int] = DEFAULT_FILTER,
                 conv_clamp: Optional[float] = None, use_fp16: bool = False, fp16_channels_last: bool = False,
                 **layer_kwargs):
        _require_choice("architecture", architecture, ARCHITECTURES)
        super().__init__()
        self.in_channels = in_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.is_last = is_last
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        self.register_buffer("resample_filter", upfirdn2d.setup_filter(resample_filter))

        layer_args = dict(w_dim=w_dim, resolution=resolution, conv_clamp=conv_clamp,
                          channels_last=self.channels_last, **layer_kwargs)
        if in_channels == 0:
            self.const = torch.nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, up=2, resample_filter=resample_filter,
                                        **layer_args)
        self.conv1 = SynthesisLayer(out_channels, out_channels, **layer_args)
        self.num_conv = 1 if in_channels == 0 else 2
        self.num_torgb = 1 if is_last or architecture == "skip" else 0
        if self.num_torgb:
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp,
                                    channels_last=self.channels_last)
        if in_channels != 0 and architecture == "resnet":
            # Conv2dLayer is defined with the discriminator, its main user.
            self.skip = Conv2dLayer(in_channels, out_channels, kernel_size=1, bias=False, up=2,
                                    resample_filter=resample_filter, channels_last=self.channels_last)

    def forward(self, x: Optional[torch.Tensor], img: Optional[torch.Tensor], ws: torch.Tensor,
                force_fp32: bool = False, fused_modconv: Optional[bool] = None, update_emas: Optional[bool] = None,
                **layer_kwargs):
        misc.assert_shape(ws, [None, self.num_conv + self.num_torgb, self.w_dim])
        dtype = _block_dtype(self.use_fp16, force_fp32, ws.device)
        if fused_modconv is None:
            fused_modconv = self._fuse_by_default(dtype, ws)
        styles = iter(ws.unbind(dim=1))
        x = self._features(x, styles, dtype, ws.shape[0], dict(fused_modconv=fused_modconv, **layer_kwargs))
        return x, self._image(x, img, styles, fused_modconv)

    def _fuse_by_default(self, dtype: torch.dtype, ws: torch.Tensor) -> bool:
        # Training always scales activations (the unfused form); inference uses per-sample kernels in
        # float32, and in fp16 only for a single image.
        with misc.suppress_tracer_warnings():
            return not self.training and (dtype == torch.float32 or int(ws.shape[0]) == 1)

    def _features(self, x, styles: Iterator[torch.Tensor], dtype: torch.dtype, batch: int,
                  layer_kwargs: dict) -> torch.Tensor:
        """This block's feature maps: from the constant or the previous block's x, through its convolutions."""
        memory_format = _memory_format(self.channels_last and dtype == torch.float16)
        if self.in_channels == 0:
            x = self.const.unsqueeze(0).repeat([batch, 1, 1, 1]).to(dtype=dtype, memory_format=memory_format)
            return self.conv1(x, next(styles), **layer_kwargs)
        misc.assert_shape(x, [None, self.in_channels, self.resolution // 2, self.resolution // 2])
        x = x.to(dtype=dtype, memory_format=memory_format)
        if self.architecture != "resnet":
            x = self.conv0(x, next(styles), **layer_kwargs)
            return self.conv1(x, next(styles), **layer_kwargs)
        shortcut = self.skip(x, gain=RESIDUAL_GAIN)
        x = self.conv0(x, next(styles), **layer_kwargs)
        x = self.conv1(x, next(styles), gain=RESIDUAL_GAIN, **layer_kwargs)
        return shortcut + x

    def _image(self, x, img, styles: Iterator[torch.Tensor], fused_modconv: bool) -> Optional[torch.Tensor]:
        """The image so far, up-sampled to this resolution, plus this block's RGB output (always float32)."""
        if img is not None:
            misc.assert_shape(img, [None, self.img_channels, self.resolution // 2, self.resolution // 2])
            img = upfirdn2d.upsample2d(img, self.resample_filter)
        if not self.num_torgb:
            return img
        rgb = self.torgb(x, next(styles), fused_modconv=fused_modconv)
        rgb = rgb.to(dtype=torch.float32, memory_format=torch.contiguous_format)
        return rgb if img is None else img + rgb


# ================================================================================================
# 4. Synthesis network and Generator
# ================================================================================================

@persistence.persistent_class
class SynthesisNetwork(torch.nn.Module):
    """ws [N, num_ws, w_dim] -> image [N, img_channels, R, R] through blocks b4, b8, ..., bR."""

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channel_base: int = 32768,
                 channel_max: int = 512, num_fp16_res: int = 0, **block_kwargs):
        log2 = _resolution_log2(img_resolution)
        super().__init__()
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = log2
        self.img_channels = img_channels
        self.block_resolutions = [4 << step for step in range(log2 - 1)]
        fp16_from = _lowest_fp16_resolution(img_resolution, num_fp16_res)

        self.num_ws = 0
        for res in self.block_resolutions:
            in_channels = 0 if res == 4 else _feature_maps(res // 2, channel_base, channel_max)
            block = SynthesisBlock(in_channels, _feature_maps(res, channel_base, channel_max), w_dim=w_dim,
                                   resolution=res, img_channels=img_channels, is_last=(res == img_resolution),
                                   use_fp16=(res >= fp16_from), **block_kwargs)
            self.add_module(f"b{res}", block)
            self.num_ws += block.num_conv
        self.num_ws += block.num_torgb  # only the last image output has a w of its own

    def forward(self, ws: torch.Tensor, update_emas: Optional[bool] = None, **block_kwargs) -> torch.Tensor:
        misc.assert_shape(ws, [None, self.num_ws, self.w_dim])
        ws = ws.to(torch.float32)
        x = img = None
        first = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            # A block's torgb reads the same w as the next block's conv0, so the windows overlap by one.
            block_ws = ws.narrow(1, first, block.num_conv + block.num_torgb)
            x, img = block(x, img, block_ws, **block_kwargs)
            first += block.num_conv
        return img


@persistence.persistent_class
class Generator(torch.nn.Module):
    """G(z, c) = synthesis(mapping(z, c)); synthesis keywords (`noise_mode`, `force_fp32`, ...) pass through."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, img_resolution: int, img_channels: int,
                 mapping_kwargs: Optional[dict] = None, synthesis_kwargs: Optional[dict] = None):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
                                          **(synthesis_kwargs or {}))
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws,
                                      **(mapping_kwargs or {}))

    def forward(self, z: torch.Tensor, c: Optional[torch.Tensor], truncation_psi: float = 1,
                truncation_cutoff: Optional[int] = None, update_emas: Optional[bool] = None,
                **synthesis_kwargs) -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, **synthesis_kwargs)


# ================================================================================================
# 5. Discriminator: blocks and epilogue
# ================================================================================================

@persistence.persistent_class
class Conv2dLayer(torch.nn.Module):
    """Equalised-learning-rate convolution with optional 2x resampling, then bias, activation and clamp.

    `trainable=False` keeps weight and bias under the same names, as buffers (frozen discriminator
    layers), so that state dicts and copied weights do not change.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "linear", up: int = 1, down: int = 1,
                 resample_filter: Sequence[int] = DEFAULT_FILTER, conv_clamp: Optional[float] = None,
                 channels_last: bool = False, trainable: bool = True):
        super().__init__()
        self.activation = activation
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        self.padding = kernel_size // 2
        self.weight_gain = 1 / np.sqrt(in_channels * kernel_size ** 2)

        weight = _unit_normal([out_channels, in_channels, kernel_size, kernel_size], channels_last)
        initial_bias = torch.zeros([out_channels]) if bias else None
        if trainable:
            self.weight = torch.nn.Parameter(weight)
            self.bias = None if initial_bias is None else torch.nn.Parameter(initial_bias)
        else:
            self.register_buffer("weight", weight)
            self.register_buffer("bias", initial_bias)
        self.register_buffer("resample_filter", upfirdn2d.setup_filter(resample_filter))

    def forward(self, x: torch.Tensor, gain: float = 1) -> torch.Tensor:
        weight = (self.weight * self.weight_gain).to(x.dtype)
        x = conv2d_resample.conv2d_resample(x=x, w=weight, f=self.resample_filter, up=self.up, down=self.down,
                                            padding=self.padding, flip_weight=(self.up == 1))
        return _bias_activate(x, self.bias, self.activation, self.conv_clamp, gain)


@persistence.persistent_class
class DiscriminatorBlock(torch.nn.Module):
    """Halves the resolution: (fromrgb) -> conv0 -> conv1 with 2x down-sampling (+ a 'resnet' shortcut).

    The first block (`in_channels=0`) reads the image through `fromrgb`; 'skip' blocks read a
    down-sampled copy of it too. Layers are numbered across the whole discriminator in the order
    fromrgb, conv0, conv1, skip; those numbered below `freeze_layers` are frozen.
    """

    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, resolution: int, img_channels: int,
                 first_layer_idx: int, architecture: str = "resnet", activation: str = "lrelu",
                 resample_filter: Sequence[int] = DEFAULT_FILTER, conv_clamp: Optional[float] = None,
                 use_fp16: bool = False, fp16_channels_last: bool = False, freeze_layers: int = 0):
        _require_choice("architecture", architecture, ARCHITECTURES)
        super().__init__()
        self.in_channels, self.resolution = in_channels, resolution  # input features, 0 channels in the first block
        self.img_channels = img_channels
        self.first_layer_idx = first_layer_idx
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        self.register_buffer("resample_filter", upfirdn2d.setup_filter(resample_filter))

        reads_image = in_channels == 0 or architecture == "skip"
        layers = (["fromrgb"] if reads_image else []) + ["conv0", "conv1"] + (["skip"] if architecture == "resnet" else [])
        self.num_layers = len(layers)

        def options(name: str, **kwargs) -> dict:
            trainable = first_layer_idx + layers.index(name) >= freeze_layers
            return dict(trainable=trainable, channels_last=self.channels_last, **kwargs)

        activated = dict(activation=activation, conv_clamp=conv_clamp)
        halving = dict(down=2, resample_filter=resample_filter)
        if reads_image:
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, kernel_size=1, **options("fromrgb", **activated))
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, kernel_size=3, **options("conv0", **activated))
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, kernel_size=3,
                                 **options("conv1", **activated, **halving))
        if architecture == "resnet":
            self.skip = Conv2dLayer(tmp_channels, out_channels, kernel_size=1, bias=False,
                                    **options("skip", **halving))

    def forward(self, x: Optional[torch.Tensor], img: Optional[torch.Tensor], force_fp32: bool = False,
                update_emas: Optional[bool] = None):
        dtype = _block_dtype(self.use_fp16, force_fp32, (img if x is None else x).device)
        memory_format = _memory_format(self.channels_last and dtype == torch.float16)
        if x is not None:
            misc.assert_shape(x, [None, self.in_channels, self.resolution, self.resolution])
            x = x.to(dtype=dtype, memory_format=memory_format)
        if self.in_channels == 0 or self.architecture == "skip":
            misc.assert_shape(img, [None, self.img_channels, self.resolution, self.resolution])
            img = img.to(dtype=dtype, memory_format=memory_format)
            from_image = self.fromrgb(img)
            x = from_image if x is None else x + from_image
            img = upfirdn2d.downsample2d(img, self.resample_filter) if self.architecture == "skip" else None
        if self.architecture != "resnet":
            return self.conv1(self.conv0(x)), img
        shortcut = self.skip(x, gain=RESIDUAL_GAIN)
        return shortcut + self.conv1(self.conv0(x), gain=RESIDUAL_GAIN), img


@persistence.persistent_class
class MinibatchStdLayer(torch.nn.Module):
    """Appends, as extra channels, how much the features vary across a group of samples.

    Group j holds the samples j, j + N/G, j + 2N/G, ... (G = group size); within it the standard
    deviation of every feature is averaged over channels (in `num_channels` slices) and pixels,
    and each sample gets its group's values as constant feature maps.
    """

    def __init__(self, group_size: Optional[int], num_channels: int = 1):
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        group = batch if self.group_size is None else min(self.group_size, batch)
        if batch % group != 0:
            raise ValueError(f"minibatch-std needs the batch size ({batch}) to be divisible by the group size "
                             f"({group})")
        slices = self.num_channels
        members = x.reshape(group, batch // group, slices, channels // slices, height, width)
        deviation = members - members.mean(dim=0)
        std = deviation.square().mean(dim=0).add(1e-8).sqrt()       # [N/G, slices, C/slices, H, W]
        per_group = std.mean(dim=[2, 3, 4]).reshape(-1, slices, 1, 1)
        return torch.cat([x, per_group.repeat(group, 1, height, width)], dim=1)


@persistence.persistent_class
class DiscriminatorEpilogue(torch.nn.Module):
    """The 4x4 head: minibatch std, conv, dense layers, and the score (projected on the label's embedding)."""

    def __init__(self, in_channels: int, cmap_dim: int, resolution: int, img_channels: int,
                 architecture: str = "resnet", mbstd_group_size: Optional[int] = 4, mbstd_num_channels: int = 1,
                 activation: str = "lrelu", conv_clamp: Optional[float] = None):
        _require_choice("architecture", architecture, ARCHITECTURES)
        super().__init__()
        self.in_channels, self.resolution = in_channels, resolution  # the features arrive as [N, C, 4, 4]
        self.img_channels = img_channels
        self.architecture = architecture
        self.cmap_dim = cmap_dim

        if architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, in_channels, kernel_size=1, activation=activation)
        self.mbstd = None
        if mbstd_num_channels > 0:
            self.mbstd = MinibatchStdLayer(group_size=mbstd_group_size, num_channels=mbstd_num_channels)
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, kernel_size=3, activation=activation,
                                conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * resolution ** 2, in_channels, activation=activation)
        self.out = FullyConnectedLayer(in_channels, cmap_dim if cmap_dim > 0 else 1)

    def forward(self, x: torch.Tensor, img: Optional[torch.Tensor], cmap: Optional[torch.Tensor],
                force_fp32: bool = False) -> torch.Tensor:
        misc.assert_shape(x, [None, self.in_channels, self.resolution, self.resolution])
        x = x.to(dtype=torch.float32, memory_format=torch.contiguous_format)  # the head always runs in fp32
        if self.architecture == "skip":
            misc.assert_shape(img, [None, self.img_channels, self.resolution, self.resolution])
            x = x + self.fromrgb(img.to(dtype=torch.float32, memory_format=torch.contiguous_format))
        if self.mbstd is not None:
            x = self.mbstd(x)
        score = self.out(self.fc(self.conv(x).flatten(1)))
        if self.cmap_dim == 0:
            return score
        misc.assert_shape(cmap, [None, self.cmap_dim])
        return (score * cmap).sum(dim=1, keepdim=True) * (1 / np.sqrt(self.cmap_dim))


@persistence.persistent_class
class Discriminator(torch.nn.Module):
    """D(img, c) -> logits [N, 1]. A conditional D maps c to an embedding and scores by projection onto it."""

    def __init__(self, c_dim: int, img_resolution: int, img_channels: int, architecture: str = "resnet",
                 channel_base: int = 32768, channel_max: int = 512, num_fp16_res: int = 0,
                 conv_clamp: Optional[float] = None, cmap_dim: Optional[int] = None, block_kwargs: Optional[dict] = None,
                 mapping_kwargs: Optional[dict] = None, epilogue_kwargs: Optional[dict] = None):
        log2 = _resolution_log2(img_resolution)
        super().__init__()
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = log2
        self.img_channels = img_channels
        self.block_resolutions = [img_resolution >> step for step in range(log2 - 2)]
        fp16_from = _lowest_fp16_resolution(img_resolution, num_fp16_res)

        def width(res: int) -> int:
            return _feature_maps(res, channel_base, channel_max)

        if c_dim == 0:
            cmap_dim = 0
        elif cmap_dim is None:
            cmap_dim = width(4)
        shared = dict(img_channels=img_channels, architecture=architecture, conv_clamp=conv_clamp)
        layer_index = 0
        for res in self.block_resolutions:
            block = DiscriminatorBlock(0 if res == img_resolution else width(res), width(res), width(res // 2),
                                       resolution=res, first_layer_idx=layer_index, use_fp16=(res >= fp16_from),
                                       **(block_kwargs or {}), **shared)
            self.add_module(f"b{res}", block)
            layer_index += block.num_layers
        if c_dim > 0:
            self.mapping = MappingNetwork(z_dim=0, c_dim=c_dim, w_dim=cmap_dim, num_ws=None, w_avg_beta=None,
                                          **(mapping_kwargs or {}))
        self.b4 = DiscriminatorEpilogue(width(4), cmap_dim=cmap_dim, resolution=4, **(epilogue_kwargs or {}),
                                        **shared)

    def forward(self, img: torch.Tensor, c: Optional[torch.Tensor], update_emas: Optional[bool] = None,
                **block_kwargs) -> torch.Tensor:
        x = None
        for res in self.block_resolutions:
            x, img = getattr(self, f"b{res}")(x, img, **block_kwargs)
        cmap = self.mapping(None, c) if self.c_dim > 0 else None
        return self.b4(x, img, cmap)
