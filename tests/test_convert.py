"""stylegan2-pytorch -> reference-layout conversion.

The stylegan2-pytorch-layout state dicts are built here from the documented names and shapes, and the
converted networks are checked against a small independent implementation of stylegan2-pytorch's forward
maths (transposed-convolution up-sampling followed by a blur, `(out + skip) / sqrt(2)` residual
blocks, ...), written with plain torch.nn.functional below.
"""
import argparse
import math

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from stylegan_unlearn.commands.convert import convert_command
from stylegan_unlearn.convert import (
    ConversionError,
    convert_stylegan2_pytorch_checkpoint,
    discriminator_from_stylegan2_pytorch,
    discriminator_to_stylegan2_pytorch,
    generator_from_stylegan2_pytorch,
    generator_to_stylegan2_pytorch,
)

STYLE_DIM = 16
N_MLP = 2
RESOLUTION = 16
IMG_CHANNELS = 3
CHANNELS = {4: 32, 8: 32, 16: 16}     # min(256 // res, 32)
LR_MLP = 0.01
SQRT2 = math.sqrt(2)



def _kernel(gain=1.0):
    k = torch.tensor([1.0, 3.0, 3.0, 1.0])
    k = torch.outer(k, k)
    return k / k.sum() * gain


# ----------------------------------------------------------------------------------------------
# stylegan2-pytorch-layout state dicts with random contents


def stylegan2_pytorch_generator_state(seed=0):
    g = torch.Generator().manual_seed(seed)

    def randn(*shape, scale=1.0):
        return torch.randn(shape, generator=g) * scale

    sd = {}
    for i in range(1, N_MLP + 1):
        sd[f"style.{i}.weight"] = randn(STYLE_DIM, STYLE_DIM, scale=1 / LR_MLP)
        sd[f"style.{i}.bias"] = randn(STYLE_DIM, scale=0.1)
    sd["input.input"] = randn(1, CHANNELS[4], 4, 4)

    def styled_conv(name, c_in, c_out, upsample):
        sd[f"{name}.conv.weight"] = randn(1, c_out, c_in, 3, 3)
        sd[f"{name}.conv.modulation.weight"] = randn(c_in, STYLE_DIM)
        sd[f"{name}.conv.modulation.bias"] = 1 + randn(c_in, scale=0.1)
        if upsample:
            sd[f"{name}.conv.blur.kernel"] = _kernel(gain=4)
        sd[f"{name}.noise.weight"] = randn(1, scale=0.3)
        sd[f"{name}.activate.bias"] = randn(c_out, scale=0.1)

    def to_rgb(name, c_in, upsample):
        sd[f"{name}.conv.weight"] = randn(1, IMG_CHANNELS, c_in, 1, 1)
        sd[f"{name}.conv.modulation.weight"] = randn(c_in, STYLE_DIM)
        sd[f"{name}.conv.modulation.bias"] = 1 + randn(c_in, scale=0.1)
        sd[f"{name}.bias"] = randn(1, IMG_CHANNELS, 1, 1, scale=0.1)
        if upsample:
            sd[f"{name}.upsample.kernel"] = _kernel(gain=4)

    styled_conv("conv1", CHANNELS[4], CHANNELS[4], False)
    to_rgb("to_rgb1", CHANNELS[4], False)
    for k, res in enumerate([8, 16]):
        styled_conv(f"convs.{2 * k}", CHANNELS[res // 2], CHANNELS[res], True)
        styled_conv(f"convs.{2 * k + 1}", CHANNELS[res], CHANNELS[res], False)
        to_rgb(f"to_rgbs.{k}", CHANNELS[res], True)
    for i in range(5):  # noise_i has resolution 2 ** ((i + 5) // 2)
        res = 2 ** ((i + 5) // 2)
        sd[f"noises.noise_{i}"] = randn(1, 1, res, res)
    return sd


def stylegan2_pytorch_discriminator_state(seed=1):
    g = torch.Generator().manual_seed(seed)

    def randn(*shape, scale=1.0):
        return torch.randn(shape, generator=g) * scale

    sd = {"convs.0.0.weight": randn(CHANNELS[16], IMG_CHANNELS, 1, 1), "convs.0.1.bias": randn(CHANNELS[16], scale=0.1)}
    for i, res in enumerate([16, 8], start=1):
        c, c_out = CHANNELS[res], CHANNELS[res // 2]
        sd[f"convs.{i}.conv1.0.weight"] = randn(c, c, 3, 3)
        sd[f"convs.{i}.conv1.1.bias"] = randn(c, scale=0.1)
        sd[f"convs.{i}.conv2.0.kernel"] = _kernel()
        sd[f"convs.{i}.conv2.1.weight"] = randn(c_out, c, 3, 3)
        sd[f"convs.{i}.conv2.2.bias"] = randn(c_out, scale=0.1)
        sd[f"convs.{i}.skip.0.kernel"] = _kernel()
        sd[f"convs.{i}.skip.1.weight"] = randn(c_out, c, 1, 1)
    c4 = CHANNELS[4]
    sd["final_conv.0.weight"] = randn(c4, c4 + 1, 3, 3)
    sd["final_conv.1.bias"] = randn(c4, scale=0.1)
    sd["final_linear.0.weight"] = randn(c4, c4 * 16)
    sd["final_linear.0.bias"] = randn(c4, scale=0.1)
    sd["final_linear.1.weight"] = randn(1, c4)
    sd["final_linear.1.bias"] = randn(1, scale=0.1)
    return sd


# ----------------------------------------------------------------------------------------------
# Independent stylegan2-pytorch-style forward passes (const noise, per-layer w)


def _lrelu(x, bias):
    shape = [1, -1] + [1] * (x.ndim - 2)
    return F.leaky_relu(x + bias.reshape(shape), 0.2) * SQRT2


def _blur(x, kernel, pad0, pad1):
    c = x.shape[1]
    x = F.pad(x, [pad0, pad1, pad0, pad1])
    return F.conv2d(x, kernel.flip([0, 1])[None, None].repeat(c, 1, 1, 1), groups=c)


def ros_mapping(sd, z):
    x = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)
    for i in range(1, N_MLP + 1):
        w = sd[f"style.{i}.weight"]
        x = F.linear(x, w * (LR_MLP / math.sqrt(w.shape[1])))
        x = _lrelu(x, sd[f"style.{i}.bias"] * LR_MLP)
    return x


def _modulate(sd, name, w, demodulate):
    weight = sd[f"{name}.conv.weight"]                              # [1, O, I, k, k]
    mod_w = sd[f"{name}.conv.modulation.weight"]
    style = F.linear(w, mod_w / math.sqrt(mod_w.shape[1])) + sd[f"{name}.conv.modulation.bias"]
    fan_in = weight.shape[2] * weight.shape[3] * weight.shape[4]
    weight = weight / math.sqrt(fan_in) * style[:, None, :, None, None]
    if demodulate:
        weight = weight * torch.rsqrt(weight.square().sum(dim=[2, 3, 4], keepdim=True) + 1e-8)
    return weight                                                   # [N, O, I, k, k]


def ros_styled_conv(sd, name, x, w, noise, upsample):
    weights = _modulate(sd, name, w, demodulate=True)
    outs = []
    for n in range(x.shape[0]):
        if upsample:  # transposed conv (stride 2), then blur with pad (1, 1)
            y = F.conv_transpose2d(x[n:n + 1], weights[n].transpose(0, 1), stride=2)
            outs.append(_blur(y, _kernel(gain=4), 1, 1))
        else:
            outs.append(F.conv2d(x[n:n + 1], weights[n], padding=1))
    out = torch.cat(outs) + sd[f"{name}.noise.weight"] * noise
    return _lrelu(out, sd[f"{name}.activate.bias"])


def ros_upsample(img):
    c = img.shape[1]
    up = torch.zeros(img.shape[0], c, img.shape[2] * 2, img.shape[3] * 2)
    up[:, :, ::2, ::2] = img
    return _blur(up, _kernel(gain=4), 2, 1)


def ros_to_rgb(sd, name, x, w, skip):
    weights = _modulate(sd, name, w, demodulate=False)
    out = torch.cat([F.conv2d(x[n:n + 1], weights[n]) for n in range(x.shape[0])]) + sd[f"{name}.bias"]
    return out + ros_upsample(skip) if skip is not None else out


def ros_synthesis(sd, latent):
    """latent [N, n_latent, style_dim]; stylegan2-pytorch's per-layer latent indexing."""
    x = sd["input.input"].repeat(latent.shape[0], 1, 1, 1)
    x = ros_styled_conv(sd, "conv1", x, latent[:, 0], sd["noises.noise_0"], False)
    skip = ros_to_rgb(sd, "to_rgb1", x, latent[:, 1], None)
    i = 1
    for k in range(2):
        x = ros_styled_conv(sd, f"convs.{2 * k}", x, latent[:, i], sd[f"noises.noise_{2 * k + 1}"], True)
        x = ros_styled_conv(sd, f"convs.{2 * k + 1}", x, latent[:, i + 1], sd[f"noises.noise_{2 * k + 2}"], False)
        skip = ros_to_rgb(sd, f"to_rgbs.{k}", x, latent[:, i + 2], skip)
        i += 2
    return skip


def ros_conv_layer(x, weight, bias, downsample, activate=True):
    k = weight.shape[-1]
    weight = weight / math.sqrt(weight.shape[1] * k * k)
    if downsample:
        p = 2 + (k - 1)
        x = _blur(x, _kernel(), (p + 1) // 2, p // 2)
        x = F.conv2d(x, weight, stride=2)
    else:
        x = F.conv2d(x, weight, padding=k // 2)
    return _lrelu(x, bias) if activate else x


def ros_discriminator(sd, img, group=4):
    x = ros_conv_layer(img, sd["convs.0.0.weight"], sd["convs.0.1.bias"], False)
    for i in (1, 2):
        out = ros_conv_layer(x, sd[f"convs.{i}.conv1.0.weight"], sd[f"convs.{i}.conv1.1.bias"], False)
        out = ros_conv_layer(out, sd[f"convs.{i}.conv2.1.weight"], sd[f"convs.{i}.conv2.2.bias"], True)
        skip = ros_conv_layer(x, sd[f"convs.{i}.skip.1.weight"], None, True, activate=False)
        x = (out + skip) / SQRT2
    n, c, h, w = x.shape
    g = min(n, group)
    std = x.view(g, -1, 1, c, h, w)
    std = torch.sqrt(std.var(0, unbiased=False) + 1e-8).mean([2, 3, 4], keepdim=True).squeeze(2)
    x = torch.cat([x, std.repeat(g, 1, h, w)], 1)
    x = ros_conv_layer(x, sd["final_conv.0.weight"], sd["final_conv.1.bias"], False).reshape(n, -1)
    w0 = sd["final_linear.0.weight"]
    x = _lrelu(F.linear(x, w0 / math.sqrt(w0.shape[1])), sd["final_linear.0.bias"])
    w1 = sd["final_linear.1.weight"]
    return F.linear(x, w1 / math.sqrt(w1.shape[1])) + sd["final_linear.1.bias"]


# ----------------------------------------------------------------------------------------------
# Tests


def test_converted_generator_reproduces_stylegan2_pytorch_maths():
    sd = stylegan2_pytorch_generator_state()
    G = generator_from_stylegan2_pytorch(sd, w_avg_samples=64).eval()
    assert G.init_kwargs["synthesis_kwargs"] == dict(channel_base=256, channel_max=32, num_fp16_res=0, conv_clamp=None)
    assert (G.z_dim, G.w_dim, G.img_resolution, G.img_channels, G.num_ws) == (16, 16, 16, 3, 6)
    assert G.mapping.num_layers == N_MLP

    z = torch.randn(3, STYLE_DIM)
    with torch.no_grad():
        ws = G.mapping(z, None)
        assert torch.allclose(ws[:, 0], ros_mapping(sd, z), atol=1e-5)
        # Distinct w per layer also checks which w each stylegan2-pytorch layer reads.
        latent = torch.randn(3, G.num_ws, STYLE_DIM)
        ours = G.synthesis(latent, noise_mode="const")
        theirs = ros_synthesis(sd, latent)
    assert ours.shape == theirs.shape == (3, IMG_CHANNELS, RESOLUTION, RESOLUTION)
    assert float((ours - theirs).abs().max()) < 1e-4 * float(theirs.abs().max())


def test_converted_discriminator_reproduces_stylegan2_pytorch_maths():
    sd = stylegan2_pytorch_discriminator_state()
    D = discriminator_from_stylegan2_pytorch(sd).eval()
    assert D.init_kwargs["channel_base"] == 256 and D.init_kwargs["channel_max"] == 32
    assert D.b4.mbstd.group_size == 4 and D.b4.mbstd.num_channels == 1
    img = torch.randn(4, IMG_CHANNELS, RESOLUTION, RESOLUTION)
    with torch.no_grad():
        ours, theirs = D(img, None), ros_discriminator(sd, img)
    assert ours.shape == theirs.shape == (4, 1)
    assert torch.allclose(ours, theirs, atol=1e-4 * float(theirs.abs().max()))


def test_hand_checked_tensors():
    sd = stylegan2_pytorch_generator_state()
    G = generator_from_stylegan2_pytorch(sd, w_avg_samples=8)
    ours = G.state_dict()
    assert torch.equal(ours["mapping.fc1.weight"], sd["style.2.weight"])         # stored /lr in both
    assert torch.equal(ours["synthesis.b4.const"], sd["input.input"][0])
    assert torch.equal(ours["synthesis.b8.conv0.weight"], sd["convs.0.conv.weight"][0])   # no flip
    assert torch.equal(ours["synthesis.b16.conv1.affine.bias"], sd["convs.3.conv.modulation.bias"])
    assert ours["synthesis.b16.conv1.noise_strength"].shape == ()
    assert float(ours["synthesis.b16.conv1.noise_strength"]) == float(sd["convs.3.noise.weight"])
    assert torch.equal(ours["synthesis.b16.conv1.noise_const"], sd["noises.noise_4"][0, 0])
    assert torch.equal(ours["synthesis.b8.torgb.bias"], sd["to_rgbs.0.bias"].flatten())


def test_round_trip_restores_the_stylegan2_pytorch_state_dicts():
    g_sd, d_sd = stylegan2_pytorch_generator_state(), stylegan2_pytorch_discriminator_state()
    g_back = generator_to_stylegan2_pytorch(generator_from_stylegan2_pytorch(g_sd, w_avg_samples=8))
    d_back = discriminator_to_stylegan2_pytorch(discriminator_from_stylegan2_pytorch(d_sd))
    for original, back in ((g_sd, g_back), (d_sd, d_back)):
        assert sorted(back) == sorted(original)
        for key in original:
            assert torch.allclose(back[key], original[key]), key


def test_w_avg_comes_from_latent_avg_or_the_mapping_mean():
    sd = stylegan2_pytorch_generator_state()
    latent_avg = torch.randn(STYLE_DIM)
    G = generator_from_stylegan2_pytorch(sd, latent_avg=latent_avg)
    assert torch.equal(G.mapping.w_avg, latent_avg)
    G = generator_from_stylegan2_pytorch(sd, w_avg_samples=2000)
    with torch.no_grad():
        sample_mean = ros_mapping(sd, torch.randn(2000, STYLE_DIM)).mean(dim=0)
    spread = float(ros_mapping(sd, torch.randn(2000, STYLE_DIM)).std(dim=0).max())
    assert float((G.mapping.w_avg - sample_mean).abs().max()) < 0.2 * spread
    assert torch.equal(generator_from_stylegan2_pytorch(sd, w_avg_samples=2000).mapping.w_avg, G.mapping.w_avg)


def test_missing_and_misshapen_entries_are_named():
    sd = stylegan2_pytorch_generator_state()
    del sd["convs.1.activate.bias"]
    with pytest.raises(ConversionError, match=r"'convs\.1\.activate\.bias'"):
        generator_from_stylegan2_pytorch(sd, w_avg_samples=8)
    sd = stylegan2_pytorch_generator_state()
    sd["to_rgbs.1.conv.modulation.weight"] = torch.zeros(5, STYLE_DIM)
    with pytest.raises(ConversionError, match=r"'to_rgbs\.1\.conv\.modulation\.weight' has shape \[5, 16\]"):
        generator_from_stylegan2_pytorch(sd, w_avg_samples=8)
    sd = stylegan2_pytorch_discriminator_state()
    sd["final_linear.0.bias"] = torch.zeros(7)
    with pytest.raises(ConversionError, match=r"'final_linear\.0\.bias'"):
        discriminator_from_stylegan2_pytorch(sd)
    sd = stylegan2_pytorch_generator_state()
    sd["convs.0.conv.blur.kernel"] = torch.ones(4, 4)
    with pytest.raises(ConversionError, match="blur kernel"):
        generator_from_stylegan2_pytorch(sd, w_avg_samples=8)
    sd = stylegan2_pytorch_generator_state()
    sd["convs.0.extra.weight"] = torch.zeros(3)
    with pytest.raises(ConversionError, match=r"unrecognised.*'convs\.0\.extra\.weight'"):
        generator_from_stylegan2_pytorch(sd, w_avg_samples=8)


def test_checkpoint_conversion_and_bad_checkpoints():
    ckpt = dict(g=stylegan2_pytorch_generator_state(0), g_ema=stylegan2_pytorch_generator_state(2),
                d=stylegan2_pytorch_discriminator_state(), args=argparse.Namespace(size=16))
    data = convert_stylegan2_pytorch_checkpoint(ckpt, w_avg_samples=8)
    assert set(data) == {"G", "D", "G_ema", "augment_pipe", "training_set_kwargs"}
    assert data["augment_pipe"] is None and data["training_set_kwargs"] is None
    assert torch.equal(data["G"].synthesis.b4.const, ckpt["g"]["input.input"][0])
    assert torch.equal(data["G_ema"].synthesis.b4.const, ckpt["g_ema"]["input.input"][0])
    with pytest.raises(ConversionError, match="'g_ema'"):
        convert_stylegan2_pytorch_checkpoint(dict(g=ckpt["g"], d=ckpt["d"]))
    with pytest.raises(ConversionError, match="'d'"):
        convert_stylegan2_pytorch_checkpoint(dict(g_ema=ckpt["g_ema"]))
    with pytest.raises(ConversionError, match="latent_avg"):
        convert_stylegan2_pytorch_checkpoint(dict(ckpt, latent_avg=torch.zeros(3)))


def test_convert_command_writes_a_loadable_pickle(tmp_path):
    from stylegan_unlearn.pkl import load_network_pkl

    g_sd = stylegan2_pytorch_generator_state()
    ckpt = dict(g=g_sd, g_ema=g_sd, d=stylegan2_pytorch_discriminator_state(), args=argparse.Namespace(size=16),
                latent_avg=torch.zeros(STYLE_DIM))
    src, dst = tmp_path / "ros.pt", tmp_path / "net.pkl"
    torch.save(ckpt, src)
    runner = CliRunner()
    result = runner.invoke(convert_command, ["--src", str(src), "--dst", str(dst)])
    assert result.exit_code == 0, result.output
    assert "16x16x3" in result.output

    data = load_network_pkl(str(dst))
    assert data["augment_pipe"] is None and data["training_set_kwargs"] is None
    latent = torch.randn(2, 6, STYLE_DIM)
    with torch.no_grad():
        img = data["G_ema"].synthesis(latent, noise_mode="const")
    assert torch.allclose(img, ros_synthesis(g_sd, latent), atol=1e-4 * float(img.abs().max()))

    again = runner.invoke(convert_command, ["--src", str(src), "--dst", str(dst)])
    assert again.exit_code != 0 and "--overwrite" in again.output
    missing = runner.invoke(convert_command, ["--src", str(tmp_path / "nope.pt"), "--dst", str(tmp_path / "x.pkl")])
    assert missing.exit_code != 0 and "not found" in missing.output
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    bad = runner.invoke(convert_command, ["--src", str(junk), "--dst", str(tmp_path / "y.pkl")])
    assert bad.exit_code != 0 and "cannot read" in bad.output and "Traceback" not in bad.output
    assert not (tmp_path / "y.pkl").exists()


class _Opaque:
    """Stands for any non-tensor object a checkpoint might pickle."""


def test_checkpoints_with_arbitrary_objects_need_allow_pickle(tmp_path):
    src = tmp_path / "ros.pt"
    torch.save(dict(g_ema=stylegan2_pytorch_generator_state(), d=stylegan2_pytorch_discriminator_state(), extra=_Opaque()), src)
    runner = CliRunner()
    refused = runner.invoke(convert_command, ["--src", str(src), "--dst", str(tmp_path / "a.pkl")])
    assert refused.exit_code != 0 and "--allow-pickle" in refused.output
    assert not (tmp_path / "a.pkl").exists()
    allowed = runner.invoke(convert_command, ["--src", str(src), "--dst", str(tmp_path / "a.pkl"),
                                              "--allow-pickle", "--w-avg-samples", "8"])
    assert allowed.exit_code == 0, allowed.output
    assert (tmp_path / "a.pkl").exists()
