"""StyleGAN2 generator and discriminator with the reference (StyleGAN2-ADA) state-dict layout.

Names, shapes, initialisation and forward maths follow the reference networks exactly, so weights
move both ways by name and pickles written with these classes load in the reference tools.

This file travels inside network pickles: it may import only numpy, torch, scipy and the
reference-compatible `torch_utils` names below -- never anything from `stylegan_unlearn`.
"""
import numpy as np
import torch

from torch_utils import misc
from torch_utils import persistence
from torch_utils.ops import bias_act
from torch_utils.ops import conv2d_resample
from torch_utils.ops import fma
from torch_utils.ops import upfirdn2d

NOISE_MODES = ("random", "const", "none")
ARCHITECTURES = ("orig", "skip", "resnet")


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def _compute_dtype(use_fp16, force_fp32, device):
    """fp16 only where the block asks for it, the call allows it, and the device is a GPU."""
    if use_fp16 and not force_fp32 and device.type == "cuda":
        return torch.float16
    return torch.float32


def _memory_format(channels_last):
    return torch.channels_last if channels_last else torch.contiguous_format


# ----------------------------------------------------------------------------------------------
# Building blocks


@misc.profiled_function
def normalize_2nd_moment(x, dim=1, eps=1e-8):
    """Scale `x` to unit mean square along `dim` (pixel norm)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


@misc.profiled_function
def modulated_conv2d(
    x,                      # Input activations [N, I, H, W].
    weight,                 # Convolution weights [O, I, k, k].
    styles,                 # Per-sample input-channel scales [N, I].
    noise=None,             # Noise added after demodulation, broadcastable to the output.
    up=1,
    down=1,
    padding=0,
    resample_filter=None,
    demodulate=True,
    flip_weight=True,
    fused_modconv=True,
):
    """Style-modulated (and optionally demodulated) convolution."""
    batch_size = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    misc.assert_shape(weight, [out_channels, in_channels, kh, kw])
    misc.assert_shape(x, [batch_size, in_channels, None, None])
    misc.assert_shape(styles, [batch_size, in_channels])

    # fp16 overflow protection; the rescaling cancels out in demodulation.
    if x.dtype == torch.float16 and demodulate:
        max_weight = weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True)
        weight = weight * (1 / np.sqrt(in_channels * kh * kw) / max_weight)
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)

    per_sample_weight = None
    dcoefs = None
    if demodulate or fused_modconv:
        per_sample_weight = weight.unsqueeze(0) * styles.reshape(batch_size, 1, -1, 1, 1)
    if demodulate:
        dcoefs = (per_sample_weight.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [N, O]

    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(batch_size, -1, 1, 1)
        x = conv2d_resample.conv2d_resample(
            x=x, w=weight.to(x.dtype), f=resample_filter, up=up, down=down,
            padding=padding, flip_weight=flip_weight,
        )
        if demodulate and noise is not None:
            return fma.fma(x, dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1), noise.to(x.dtype))
        if demodulate:
            return x * dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1)
        if noise is not None:
            return x + noise.to(x.dtype)
        return x

    # Fused path: fold the batch into convolution groups, one weight set per sample.
    if demodulate:
        per_sample_weight = per_sample_weight * dcoefs.reshape(batch_size, -1, 1, 1, 1)
    x = x.reshape(1, -1, *x.shape[2:])
    grouped_weight = per_sample_weight.reshape(-1, in_channels, kh, kw)
    x = conv2d_resample.conv2d_resample(
        x=x, w=grouped_weight.to(x.dtype), f=resample_filter, up=up, down=down,
        padding=padding, groups=batch_size, flip_weight=flip_weight,
    )
    x = x.reshape(batch_size, -1, *x.shape[2:])
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x


@persistence.persistent_class
class FullyConnectedLayer(torch.nn.Module):
    """Dense layer with equalised learning rate: weights stored N(0,1)/lr, scaled at run time."""

    def __init__(self, in_features, out_features, bias=True, activation="linear", lr_multiplier=1, bias_init=0):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = torch.nn.Parameter(torch.full([out_features], np.float32(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / np.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x):
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act.bias_act(x.matmul(w.t()), b, act=self.activation)


@persistence.persistent_class
class Conv2dLayer(torch.nn.Module):
    """Convolution with equalised learning rate, optional up/down-sampling, bias, activation, clamp."""

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        bias=True,
        activation="linear",
        up=1,
        down=1,
        resample_filter=[1, 3, 3, 1],
        conv_clamp=None,
        channels_last=False,
        trainable=True,
    ):
        super().__init__()
        self.activation = activation
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        self.padding = kernel_size // 2
        self.weight_gain = 1 / np.sqrt(in_channels * (kernel_size ** 2))
        self.act_gain = bias_act.activation_funcs[activation].def_gain

        memory_format = _memory_format(channels_last)
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format)
        bias_value = torch.zeros([out_channels]) if bias else None
        if trainable:
            self.weight = torch.nn.Parameter(weight)
            self.bias = torch.nn.Parameter(bias_value) if bias_value is not None else None
        else:  # Frozen layers keep the same names, as buffers.
            self.register_buffer("weight", weight)
            if bias_value is not None:
                self.register_buffer("bias", bias_value)
            else:
                self.bias = None
        self.register_buffer("resample_filter", upfirdn2d.setup_filter(resample_filter))

    def forward(self, x, gain=1):
        w = self.weight * self.weight_gain
        b = self.bias.to(x.dtype) if self.bias is not None else None
        x = conv2d_resample.conv2d_resample(
            x=x, w=w.to(x.dtype), f=self.resample_filter, up=self.up, down=self.down,
            padding=self.padding, flip_weight=(self.up == 1),
        )
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act.bias_act(x, b, act=self.activation, gain=act_gain, clamp=act_clamp)


# ----------------------------------------------------------------------------------------------
# Generator


@persistence.persistent_class
class MappingNetwork(torch.nn.Module):
    """z (+ class embedding) -> w, broadcast to `num_ws` copies, with w_avg tracking and truncation."""

    def __init__(
        self,
        z_dim,
        c_dim,
        w_dim,
        num_ws,
        num_layers=8,
        embed_features=None,
        layer_features=None,
        activation="lrelu",
        lr_multiplier=0.01,
        w_avg_beta=0.995,
    ):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta

        if embed_features is None:
            embed_features = w_dim
        if c_dim == 0:
            embed_features = 0
        if layer_features is None:
            layer_features = w_dim
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]

        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            layer = FullyConnectedLayer(
                features[idx], features[idx + 1], activation=activation, lr_multiplier=lr_multiplier
            )
            setattr(self, f"fc{idx}", layer)
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, skip_w_avg_update=False, update_emas=None):
        # `update_emas` is StyleGAN3's keyword; here w_avg follows training mode, as in StyleGAN2-ADA.
        x = None
        if self.z_dim > 0:
            misc.assert_shape(z, [None, self.z_dim])
            x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            if c is None:
                raise ValueError(f"this network is conditional (c_dim={self.c_dim}): "
                                 f"pass labels c of shape [N, {self.c_dim}]")
            misc.assert_shape(c, [None, self.c_dim])
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1) if x is not None else y

        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)

        if self.w_avg_beta is not None and self.training and not skip_w_avg_update:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])

        if truncation_psi != 1:
            if self.w_avg_beta is None:
                raise ValueError("truncation needs w_avg, but this mapping network was built with w_avg_beta=None")
            if self.num_ws is None or truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                head = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
                x = torch.cat([head, x[:, truncation_cutoff:]], dim=1)
        return x


@persistence.persistent_class
class SynthesisLayer(torch.nn.Module):
    """Modulated 3x3 convolution (optionally 2x up-sampling) + noise + bias + activation."""

    def __init__(
        self,
        in_channels,
        out_channels,
        w_dim,
        resolution,
        kernel_size=3,
        up=1,
        use_noise=True,
        activation="lrelu",
        resample_filter=[1, 3, 3, 1],
        conv_clamp=None,
        channels_last=False,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.padding = kernel_size // 2
        self.act_gain = bias_act.activation_funcs[activation].def_gain

        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        memory_format = _memory_format(channels_last)
        self.weight = torch.nn.Parameter(
            torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format)
        )
        self.register_buffer("resample_filter", upfirdn2d.setup_filter(resample_filter))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = torch.nn.Parameter(torch.zeros([]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x, w, noise_mode="random", fused_modconv=True, gain=1):
        _check_choice("noise_mode", noise_mode, NOISE_MODES)
        in_resolution = self.resolution // self.up
        misc.assert_shape(x, [None, self.in_channels, in_resolution, in_resolution])
        styles = self.affine(w)

        noise = None
        if self.use_noise and noise_mode == "random":
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device)
            noise = noise * self.noise_strength
        if self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength

        x = modulated_conv2d(
            x=x, weight=self.weight, styles=styles, noise=noise, up=self.up, padding=self.padding,
            resample_filter=self.resample_filter, flip_weight=(self.up == 1), fused_modconv=fused_modconv,
        )
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act.bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=act_gain, clamp=act_clamp)


@persistence.persistent_class
class ToRGBLayer(torch.nn.Module):
    """Modulated 1x1 convolution to image channels (no demodulation)."""

    def __init__(self, in_channels, out_channels, w_dim, kernel_size=1, conv_clamp=None, channels_last=False):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        memory_format = _memory_format(channels_last)
        self.weight = torch.nn.Parameter(
            torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format)
        )
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / np.sqrt(in_channels * (kernel_size ** 2))

    def forward(self, x, w, fused_modconv=True):
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x=x, weight=self.weight, styles=styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act.bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)


@persistence.persistent_class
class SynthesisBlock(torch.nn.Module):
    """One resolution of the synthesis network: (const | up-conv0) + conv1, plus the image path."""

    def __init__(
        self,
        in_channels,            # 0 marks the first (4x4) block, which starts from a learned constant.
        out_channels,
        w_dim,
        resolution,
        img_channels,
        is_last,
        architecture="skip",
        resample_filter=[1, 3, 3, 1],
        conv_clamp=None,
        use_fp16=False,
        fp16_channels_last=False,
        **layer_kwargs,
    ):
        _check_choice("architecture", architecture, ARCHITECTURES)
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
        self.num_conv = 0
        self.num_torgb = 0

        if in_channels == 0:
            self.const = torch.nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(
                in_channels, out_channels, w_dim=w_dim, resolution=resolution, up=2,
                resample_filter=resample_filter, conv_clamp=conv_clamp, channels_last=self.channels_last,
                **layer_kwargs,
            )
            self.num_conv += 1

        self.conv1 = SynthesisLayer(
            out_channels, out_channels, w_dim=w_dim, resolution=resolution,
            conv_clamp=conv_clamp, channels_last=self.channels_last, **layer_kwargs,
        )
        self.num_conv += 1

        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(
                out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp, channels_last=self.channels_last
            )
            self.num_torgb += 1

        if in_channels != 0 and architecture == "resnet":
            self.skip = Conv2dLayer(
                in_channels, out_channels, kernel_size=1, bias=False, up=2,
                resample_filter=resample_filter, channels_last=self.channels_last,
            )

    def forward(self, x, img, ws, force_fp32=False, fused_modconv=None, update_emas=None, **layer_kwargs):
        misc.assert_shape(ws, [None, self.num_conv + self.num_torgb, self.w_dim])
        w_iter = iter(ws.unbind(dim=1))
        dtype = _compute_dtype(self.use_fp16, force_fp32, ws.device)
        memory_format = _memory_format(self.channels_last and dtype == torch.float16)
        if fused_modconv is None:
            with misc.suppress_tracer_warnings():
                fused_modconv = (not self.training) and (dtype == torch.float32 or int(ws.shape[0]) == 1)

        # Main path.
        if self.in_channels == 0:
            x = self.const.unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
            x = x.to(dtype=dtype, memory_format=memory_format)
        else:
            half = self.resolution // 2
            misc.assert_shape(x, [None, self.in_channels, half, half])
            x = x.to(dtype=dtype, memory_format=memory_format)

        if self.in_channels == 0:
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
        elif self.architecture == "resnet":
            y = self.skip(x, gain=np.sqrt(0.5))
            x = self.conv0(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, gain=np.sqrt(0.5), **layer_kwargs)
            x = y + x
        else:
            x = self.conv0(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)

        # Image path (float32 throughout).
        if img is not None:
            half = self.resolution // 2
            misc.assert_shape(img, [None, self.img_channels, half, half])
            img = upfirdn2d.upsample2d(img, self.resample_filter)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv)
            y = y.to(dtype=torch.float32, memory_format=torch.contiguous_format)
            img = img + y if img is not None else y

        assert x.dtype == dtype
        assert img is None or img.dtype == torch.float32
        return x, img


@persistence.persistent_class
class SynthesisNetwork(torch.nn.Module):
    """ws [N, num_ws, w_dim] -> image [N, img_channels, R, R] through blocks b4 ... bR."""

    def __init__(
        self,
        w_dim,
        img_resolution,
        img_channels,
        channel_base=32768,
        channel_max=512,
        num_fp16_res=0,
        **block_kwargs,
    ):
        if img_resolution < 4 or img_resolution & (img_resolution - 1) != 0:
            raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}")
        super().__init__()
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = int(np.log2(img_resolution))
        self.img_channels = img_channels
        self.block_resolutions = [2 ** i for i in range(2, self.img_resolution_log2 + 1)]
        channels_dict = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)

        self.num_ws = 0
        for res in self.block_resolutions:
            in_channels = channels_dict[res // 2] if res > 4 else 0
            is_last = res == self.img_resolution
            block = SynthesisBlock(
                in_channels, channels_dict[res], w_dim=w_dim, resolution=res, img_channels=img_channels,
                is_last=is_last, use_fp16=(res >= fp16_resolution), **block_kwargs,
            )
            self.num_ws += block.num_conv
            if is_last:
                self.num_ws += block.num_torgb
            setattr(self, f"b{res}", block)

    def forward(self, ws, update_emas=None, **block_kwargs):
        misc.assert_shape(ws, [None, self.num_ws, self.w_dim])
        ws = ws.to(torch.float32)
        # A block's torgb shares its w with the next block's conv0, hence the overlapping slices.
        block_ws = []
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            block_ws.append(ws.narrow(1, w_idx, block.num_conv + block.num_torgb))
            w_idx += block.num_conv

        x = img = None
        for res, cur_ws in zip(self.block_resolutions, block_ws):
            x, img = getattr(self, f"b{res}")(x, img, cur_ws, **block_kwargs)
        return img


@persistence.persistent_class
class Generator(torch.nn.Module):
    """G(z, c) = synthesis(mapping(z, c))."""

    def __init__(self, z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs={}, synthesis_kwargs={}):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.synthesis = SynthesisNetwork(
            w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels, **synthesis_kwargs
        )
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **mapping_kwargs)

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=None, **synthesis_kwargs):
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, **synthesis_kwargs)


# ----------------------------------------------------------------------------------------------
# Discriminator


@persistence.persistent_class
class DiscriminatorBlock(torch.nn.Module):
    """One resolution of the discriminator: (fromrgb) + conv0 + down-conv1 (+ resnet skip)."""

    def __init__(
        self,
        in_channels,            # 0 marks the first (full-resolution) block, which reads the image.
        tmp_channels,
        out_channels,
        resolution,
        img_channels,
        first_layer_idx,
        architecture="resnet",
        activation="lrelu",
        resample_filter=[1, 3, 3, 1],
        conv_clamp=None,
        use_fp16=False,
        fp16_channels_last=False,
        freeze_layers=0,
    ):
        _check_choice("architecture", architecture, ARCHITECTURES)
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.img_channels = img_channels
        self.first_layer_idx = first_layer_idx
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        self.register_buffer("resample_filter", upfirdn2d.setup_filter(resample_filter))

        self.num_layers = 0

        def next_layer_trainable():
            trainable = first_layer_idx + self.num_layers >= freeze_layers
            self.num_layers += 1
            return trainable

        if in_channels == 0 or architecture == "skip":
            self.fromrgb = Conv2dLayer(
                img_channels, tmp_channels, kernel_size=1, activation=activation, conv_clamp=conv_clamp,
                trainable=next_layer_trainable(), channels_last=self.channels_last,
            )
        self.conv0 = Conv2dLayer(
            tmp_channels, tmp_channels, kernel_size=3, activation=activation, conv_clamp=conv_clamp,
            trainable=next_layer_trainable(), channels_last=self.channels_last,
        )
        self.conv1 = Conv2dLayer(
            tmp_channels, out_channels, kernel_size=3, activation=activation, down=2,
            resample_filter=resample_filter, conv_clamp=conv_clamp,
            trainable=next_layer_trainable(), channels_last=self.channels_last,
        )
        if architecture == "resnet":
            self.skip = Conv2dLayer(
                tmp_channels, out_channels, kernel_size=1, bias=False, down=2,
                resample_filter=resample_filter, trainable=next_layer_trainable(), channels_last=self.channels_last,
            )

    def forward(self, x, img, force_fp32=False, update_emas=None):
        device = x.device if x is not None else img.device
        dtype = _compute_dtype(self.use_fp16, force_fp32, device)
        memory_format = _memory_format(self.channels_last and dtype == torch.float16)

        if x is not None:
            misc.assert_shape(x, [None, self.in_channels, self.resolution, self.resolution])
            x = x.to(dtype=dtype, memory_format=memory_format)

        if self.in_channels == 0 or self.architecture == "skip":
            misc.assert_shape(img, [None, self.img_channels, self.resolution, self.resolution])
            img = img.to(dtype=dtype, memory_format=memory_format)
            y = self.fromrgb(img)
            x = x + y if x is not None else y
            img = upfirdn2d.downsample2d(img, self.resample_filter) if self.architecture == "skip" else None

        if self.architecture == "resnet":
            y = self.skip(x, gain=np.sqrt(0.5))
            x = self.conv0(x)
            x = self.conv1(x, gain=np.sqrt(0.5))
            x = y + x
        else:
            x = self.conv0(x)
            x = self.conv1(x)

        assert x.dtype == dtype
        return x, img


@persistence.persistent_class
class MinibatchStdLayer(torch.nn.Module):
    """Append the within-group standard deviation of features as extra channels."""

    def __init__(self, group_size, num_channels=1):
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x):
        N, C, H, W = x.shape
        G = min(self.group_size, N) if self.group_size is not None else N
        F = self.num_channels
        c = C // F
        if N % G != 0:
            raise ValueError(f"minibatch-std needs the batch size ({N}) to be divisible by the group size ({G})")

        y = x.reshape(G, -1, F, c, H, W)        # Group g holds samples g, g + N/G, g + 2N/G, ...
        y = y - y.mean(dim=0)
        y = y.square().mean(dim=0)
        y = (y + 1e-8).sqrt()
        y = y.mean(dim=[2, 3, 4])               # [N/G, F]
        y = y.reshape(-1, F, 1, 1)
        y = y.repeat(G, 1, H, W)                # [N, F, H, W]
        return torch.cat([x, y], dim=1)


@persistence.persistent_class
class DiscriminatorEpilogue(torch.nn.Module):
    """The 4x4 head: minibatch-std, conv, fc, output (projected onto the class embedding if conditional)."""

    def __init__(
        self,
        in_channels,
        cmap_dim,
        resolution,
        img_channels,
        architecture="resnet",
        mbstd_group_size=4,
        mbstd_num_channels=1,
        activation="lrelu",
        conv_clamp=None,
    ):
        _check_choice("architecture", architecture, ARCHITECTURES)
        super().__init__()
        self.in_channels = in_channels
        self.cmap_dim = cmap_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.architecture = architecture

        if architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, in_channels, kernel_size=1, activation=activation)
        self.mbstd = (
            MinibatchStdLayer(group_size=mbstd_group_size, num_channels=mbstd_num_channels)
            if mbstd_num_channels > 0 else None
        )
        self.conv = Conv2dLayer(
            in_channels + mbstd_num_channels, in_channels, kernel_size=3, activation=activation, conv_clamp=conv_clamp
        )
        self.fc = FullyConnectedLayer(in_channels * (resolution ** 2), in_channels, activation=activation)
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x, img, cmap, force_fp32=False):
        misc.assert_shape(x, [None, self.in_channels, self.resolution, self.resolution])
        dtype = torch.float32
        x = x.to(dtype=dtype, memory_format=torch.contiguous_format)
        if self.architecture == "skip":
            misc.assert_shape(img, [None, self.img_channels, self.resolution, self.resolution])
            x = x + self.fromrgb(img.to(dtype=dtype, memory_format=torch.contiguous_format))

        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.fc(x.flatten(1))
        x = self.out(x)

        if self.cmap_dim > 0:
            misc.assert_shape(cmap, [None, self.cmap_dim])
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / np.sqrt(self.cmap_dim))
        assert x.dtype == dtype
        return x


@persistence.persistent_class
class Discriminator(torch.nn.Module):
    """D(img, c) -> logits [N, 1]; conditional via a projection onto a mapped class embedding."""

    def __init__(
        self,
        c_dim,
        img_resolution,
        img_channels,
        architecture="resnet",
        channel_base=32768,
        channel_max=512,
        num_fp16_res=0,
        conv_clamp=None,
        cmap_dim=None,
        block_kwargs={},
        mapping_kwargs={},
        epilogue_kwargs={},
    ):
        if img_resolution < 4 or img_resolution & (img_resolution - 1) != 0:
            raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}")
        super().__init__()
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = int(np.log2(img_resolution))
        self.img_channels = img_channels
        self.block_resolutions = [2 ** i for i in range(self.img_resolution_log2, 2, -1)]
        channels_dict = {res: min(channel_base // res, channel_max) for res in self.block_resolutions + [4]}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)

        if cmap_dim is None:
            cmap_dim = channels_dict[4]
        if c_dim == 0:
            cmap_dim = 0

        common_kwargs = dict(img_channels=img_channels, architecture=architecture, conv_clamp=conv_clamp)
        cur_layer_idx = 0
        for res in self.block_resolutions:
            in_channels = channels_dict[res] if res < img_resolution else 0
            block = DiscriminatorBlock(
                in_channels, channels_dict[res], channels_dict[res // 2], resolution=res,
                first_layer_idx=cur_layer_idx, use_fp16=(res >= fp16_resolution),
                **block_kwargs, **common_kwargs,
            )
            setattr(self, f"b{res}", block)
            cur_layer_idx += block.num_layers
        if c_dim > 0:
            self.mapping = MappingNetwork(
                z_dim=0, c_dim=c_dim, w_dim=cmap_dim, num_ws=None, w_avg_beta=None, **mapping_kwargs
            )
        self.b4 = DiscriminatorEpilogue(
            channels_dict[4], cmap_dim=cmap_dim, resolution=4, **epilogue_kwargs, **common_kwargs
        )

    def forward(self, img, c, update_emas=None, **block_kwargs):
        x = None
        for res in self.block_resolutions:
            x, img = getattr(self, f"b{res}")(x, img, **block_kwargs)
        cmap = self.mapping(None, c) if self.c_dim > 0 else None
        return self.b4(x, img, cmap)
