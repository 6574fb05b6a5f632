"""Behaviour of our StyleGAN2 G/D beyond the golden cases: sizes, architectures, options, pickling."""
import pickle

import numpy as np
import pytest
import torch

from stylegan_unlearn.networks.stylegan2 import Discriminator, Generator

TINY = dict(channel_base=256, channel_max=16)



def tiny_generator(c_dim=0, img_resolution=16, img_channels=3, architecture="skip", **synthesis_kwargs):
    return Generator(
        z_dim=8, c_dim=c_dim, w_dim=8, img_resolution=img_resolution, img_channels=img_channels,
        mapping_kwargs=dict(num_layers=2),
        synthesis_kwargs=dict(TINY, architecture=architecture, **synthesis_kwargs),
    )


def tiny_discriminator(c_dim=0, img_resolution=16, img_channels=3, architecture="resnet", **kwargs):
    kwargs.setdefault("epilogue_kwargs", dict(mbstd_group_size=2))
    return Discriminator(
        c_dim=c_dim, img_resolution=img_resolution, img_channels=img_channels, architecture=architecture,
        mapping_kwargs=dict(num_layers=2), **TINY, **kwargs,
    )


def one_hot(labels, c_dim):
    return torch.nn.functional.one_hot(torch.as_tensor(labels), c_dim).float()


def _counts(tensors):
    tensors = list(tensors)
    return sum(t.numel() for t in tensors), len(tensors)


# Rows of the reference parameter-count table (official constructors, num_fp16_res=4, conv_clamp=256).
PARAM_TABLE = [
    # (resolution, channel_base, mapping layers, c_dim, G params, G buffers, num_ws, D params, D buffers)
    (1024, 32768, 8, 0, (30_370_060, 138), (2_797_104, 44), 18, (29_012_513, 48), (544, 34)),
    (256, 16384, 8, 0, (24_767_458, 110), (175_568, 34), 14, (24_001_089, 38), (416, 26)),
    (32, 32768, 2, 10, (20_215_315, 58), (3_392, 19), 8, (23_876_096, 41), (224, 14)),
]


@pytest.mark.parametrize("row", PARAM_TABLE, ids=lambda row: f"R{row[0]}")
def test_parameter_counts_match_reference_table(row):
    res, base, map_layers, c_dim, g_params, g_buffers, num_ws, d_params, d_buffers = row
    common = dict(channel_base=base, channel_max=512, num_fp16_res=4, conv_clamp=256)
    G = Generator(
        z_dim=512, c_dim=c_dim, w_dim=512, img_resolution=res, img_channels=3,
        mapping_kwargs=dict(num_layers=map_layers), synthesis_kwargs=common,
    )
    D = Discriminator(c_dim=c_dim, img_resolution=res, img_channels=3, **common)
    assert _counts(G.parameters()) == g_params
    assert _counts(G.buffers()) == g_buffers
    assert G.num_ws == G.mapping.num_ws == num_ws
    assert _counts(D.parameters()) == d_params
    assert _counts(D.buffers()) == d_buffers


@pytest.mark.parametrize("architecture", ["orig", "skip", "resnet"])
def test_generator_architectures_run_forward_and_backward(architecture):
    G = tiny_generator(architecture=architecture)
    img = G(torch.randn(2, 8), None)
    assert img.shape == (2, 3, 16, 16) and img.dtype == torch.float32
    img.square().mean().backward()
    missing = [n for n, p in G.named_parameters() if p.grad is None]
    # Noise strengths start at zero but still receive gradients through the random noise.
    assert missing == []
    has_torgb = [hasattr(getattr(G.synthesis, f"b{res}"), "torgb") for res in G.synthesis.block_resolutions]
    assert has_torgb == ([True, True, True] if architecture == "skip" else [False, False, True])
    assert hasattr(G.synthesis.b8, "skip") == (architecture == "resnet")


@pytest.mark.parametrize("architecture", ["orig", "skip", "resnet"])
def test_discriminator_architectures_run_forward_and_backward(architecture):
    D = tiny_discriminator(architecture=architecture)
    logits = D(torch.randn(4, 3, 16, 16), None)
    assert logits.shape == (4, 1) and logits.dtype == torch.float32
    logits.sum().backward()
    assert all(p.grad is not None for p in D.parameters())
    assert hasattr(D.b8, "fromrgb") == (architecture == "skip")
    assert hasattr(D.b16, "skip") == (architecture == "resnet")


def test_num_ws_and_ws_slicing_follow_the_reference_rule():
    G = tiny_generator(img_resolution=32)
    assert G.num_ws == 2 * 5 - 2
    ws = G.mapping(torch.randn(2, 8), None).detach().clone().requires_grad_(True)
    G.synthesis(ws, noise_mode="const").sum().backward()
    assert ws.grad.abs().sum(dim=[0, 2]).gt(0).all()  # every w is used


def test_conditional_generator_and_discriminator_use_the_label():
    torch.manual_seed(1)
    G, D = tiny_generator(c_dim=3).eval(), tiny_discriminator(c_dim=3).eval()
    assert hasattr(G.mapping, "embed") and hasattr(D, "mapping")
    z = torch.randn(1, 8).repeat(4, 1)
    c = one_hot([0, 1, 2, 0], 3)
    img = G(z, c, noise_mode="const")
    assert torch.allclose(img[0], img[3]) and not torch.allclose(img[0], img[1])
    x = torch.randn(1, 3, 16, 16).repeat(4, 1, 1, 1)
    logits = D(x, c)
    assert logits.shape == (4, 1)
    assert torch.allclose(logits[0], logits[3]) and not torch.allclose(logits[0], logits[1])
    with pytest.raises(ValueError, match="conditional"):
        G(z, None)


def test_unconditional_generator_accepts_none_or_empty_labels_and_float64_latents():
    G = tiny_generator().eval()
    z = torch.randn(2, 8, dtype=torch.float64)
    a = G(z, None, noise_mode="const")
    b = G(z.float(), torch.zeros(2, 0), noise_mode="const")
    assert torch.equal(a, b)


def test_noise_modes():
    G = tiny_generator().eval()
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.5)
        z = torch.randn(2, 8)
        const_a = G(z, None, noise_mode="const")
        const_b = G(z, None, noise_mode="const")
        random_a = G(z, None, noise_mode="random")
        random_b = G(z, None, noise_mode="random")
        none = G(z, None, noise_mode="none")
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.zero_()
        zero_strength = G(z, None, noise_mode="const")
    assert torch.equal(const_a, const_b)
    assert not torch.allclose(random_a, random_b)
    assert not torch.allclose(const_a, none)
    assert torch.allclose(none, zero_strength, atol=1e-6)
    with pytest.raises(ValueError, match="noise_mode"):
        G(z, None, noise_mode="fixed")


def test_truncation_pulls_ws_towards_w_avg():
    G = tiny_generator().eval()
    with torch.no_grad():
        G.mapping.w_avg.copy_(torch.randn(8))
        z = torch.randn(3, 8)
        ws = G.mapping(z, None)
        assert ws.shape == (3, G.num_ws, 8)
        assert torch.allclose(G.mapping(z, None, truncation_psi=0), G.mapping.w_avg.expand_as(ws))
        half = G.mapping(z, None, truncation_psi=0.5)
        assert torch.allclose(half, G.mapping.w_avg + 0.5 * (ws - G.mapping.w_avg), atol=1e-6)
        cut = G.mapping(z, None, truncation_psi=0.5, truncation_cutoff=2)
        assert torch.allclose(cut[:, :2], half[:, :2]) and torch.equal(cut[:, 2:], ws[:, 2:])


def test_w_avg_is_tracked_only_in_training_mode():
    G = tiny_generator()
    z = torch.randn(4, 8)
    G.eval()
    G(z, None)
    assert G.mapping.w_avg.abs().sum() == 0
    G.train()
    G.mapping(z, None, skip_w_avg_update=True)
    assert G.mapping.w_avg.abs().sum() == 0
    w = G.mapping(z, None)[:, 0].detach()
    assert torch.allclose(G.mapping.w_avg, (1 - 0.995) * w.mean(dim=0), atol=1e-6)


def test_stylegan3_update_emas_keyword_is_accepted():
    G, D = tiny_generator(c_dim=3), tiny_discriminator(c_dim=3)
    z, c = torch.randn(2, 8), one_hot([0, 1], 3)
    ws = G.mapping(z, c, update_emas=True)
    img = G.synthesis(ws, update_emas=True, noise_mode="const")
    assert G(z, c, update_emas=False).shape == img.shape
    assert D(img, c, update_emas=True).shape == (2, 1)


def test_fused_and_unfused_modconv_agree():
    G = tiny_generator(architecture="resnet")
    ws = G.mapping(torch.randn(3, 8), None)
    fused = G.synthesis(ws, noise_mode="const", fused_modconv=True)
    unfused = G.synthesis(ws, noise_mode="const", fused_modconv=False)
    assert torch.allclose(fused, unfused, atol=1e-5)


def test_fused_and_unfused_gradients_agree_with_channels_last_weights():
    # fp16 blocks with fp16_channels_last store their kernels channels-last (the blocks still run in
    # float32 on CPU); the per-sample grouped convolution must give the same gradients as the unfused form.
    G = tiny_generator(num_fp16_res=2, fp16_channels_last=True).eval()
    z = torch.randn(3, 8)
    grads = []
    for fused in (True, False):
        G.zero_grad(set_to_none=True)
        G(z, None, noise_mode="const", fused_modconv=fused).square().sum().backward()
        grads.append({name: p.grad.clone() for name, p in G.named_parameters()})
    for name, fused_grad in grads[0].items():
        scale = float(grads[1][name].abs().max()) + 1e-12
        assert float((fused_grad - grads[1][name]).abs().max()) <= 1e-4 * scale, name


def test_fp16_blocks_run_in_float32_on_cpu():
    torch.manual_seed(3)
    G = tiny_generator(num_fp16_res=2, conv_clamp=256).eval()
    D = tiny_discriminator(num_fp16_res=2, conv_clamp=256).eval()
    assert G.synthesis.b16.use_fp16 and G.synthesis.b8.use_fp16 and not G.synthesis.b4.use_fp16
    assert D.b16.use_fp16 and D.b8.use_fp16
    z = torch.randn(2, 8)
    img = G(z, None, noise_mode="const")
    assert img.dtype == torch.float32
    assert torch.equal(img, G(z, None, noise_mode="const", force_fp32=True))
    assert torch.equal(D(img, None), D(img, None, force_fp32=True))


def test_r1_double_backward_through_discriminator():
    D = tiny_discriminator(c_dim=3)
    img = torch.randn(4, 3, 16, 16, requires_grad=True)
    logits = D(img, one_hot([0, 1, 2, 0], 3))
    (grad,) = torch.autograd.grad(logits.sum(), img, create_graph=True)
    penalty = grad.square().sum(dim=[1, 2, 3]).mean()
    penalty.backward()
    # Every weight shapes the input gradient, so every weight must receive a second-order gradient.
    weights = [(n, p) for n, p in D.named_parameters() if n.endswith("weight")]
    assert len(weights) > 10
    without_grad = [n for n, p in weights if p.grad is None or not p.grad.abs().sum() > 0]
    assert without_grad == []


def test_minibatch_std_groups_strided_samples():
    D = tiny_discriminator(epilogue_kwargs=dict(mbstd_group_size=2))
    x = torch.randn(4, 16, 4, 4)
    out = D.b4.mbstd(x)
    assert out.shape == (4, 17, 4, 4)
    # With N=4, G=2: group 0 = samples {0, 2}, group 1 = samples {1, 3}.
    group0 = x[[0, 2]].std(dim=0, unbiased=False).mean()
    group1 = x[[1, 3]].std(dim=0, unbiased=False).mean()
    assert torch.allclose(out[[0, 2], 16], group0.expand(2, 4, 4), atol=1e-5)
    assert torch.allclose(out[[1, 3], 16], group1.expand(2, 4, 4), atol=1e-5)
    with pytest.raises(ValueError, match="divisible"):
        D.b4.mbstd(torch.randn(3, 16, 4, 4))


def test_freeze_layers_turns_early_discriminator_weights_into_buffers():
    frozen = tiny_discriminator(block_kwargs=dict(freeze_layers=2))
    normal = tiny_discriminator()
    assert list(frozen.state_dict()) == list(normal.state_dict())
    buffer_names = {n for n, _ in frozen.named_buffers()}
    assert {"b16.fromrgb.weight", "b16.conv0.weight"} <= buffer_names
    assert "b16.conv1.weight" in dict(frozen.named_parameters())


def test_initialisation_follows_equalised_learning_rate():
    G = tiny_generator(c_dim=3)
    assert torch.all(G.mapping.w_avg == 0)
    fc = G.mapping.fc0
    assert fc.weight_gain == pytest.approx(0.01 / np.sqrt(fc.in_features)) and fc.bias_gain == 0.01
    assert float(fc.weight.detach().std()) > 20  # stored N(0,1)/lr_multiplier
    assert torch.all(G.synthesis.b8.conv0.affine.bias == 1) and torch.all(G.synthesis.b8.conv0.bias == 0)
    assert float(G.synthesis.b8.conv0.noise_strength.detach()) == 0
    assert torch.allclose(G.synthesis.b8.resample_filter.sum(), torch.tensor(1.0))


def test_bad_architecture_is_rejected():
    with pytest.raises(ValueError, match="architecture"):
        tiny_generator(architecture="residual")
    with pytest.raises(ValueError, match="img_resolution"):
        tiny_generator(img_resolution=24)


def test_pickle_round_trip_gives_identical_outputs():
    persistence = pytest.importorskip("torch_utils.persistence")
    G, D = tiny_generator(c_dim=3).eval(), tiny_discriminator(c_dim=3).eval()
    assert persistence.is_persistent(G) and persistence.is_persistent(D)
    G2, D2 = pickle.loads(pickle.dumps(G)), pickle.loads(pickle.dumps(D))
    assert G2.init_kwargs == G.init_kwargs
    z, c = torch.randn(2, 8), one_hot([1, 2], 3)
    img = G(z, c, noise_mode="const")
    assert torch.equal(G2(z, c, noise_mode="const"), img)
    assert torch.equal(D2(img, c), D(img, c))


def test_fp16_block_path_runs_when_fp16_is_allowed(monkeypatch):
    """The fp16 path normally runs only on CUDA; allow it on CPU to exercise its casts and clamps."""
    from stylegan_unlearn.networks import stylegan2

    torch.manual_seed(4)
    G = tiny_generator(num_fp16_res=2, conv_clamp=256, fp16_channels_last=True).eval()
    D = tiny_discriminator(num_fp16_res=2, conv_clamp=256, block_kwargs=dict(fp16_channels_last=True)).eval()
    z = torch.randn(2, 8)
    with torch.no_grad():
        img32 = G(z, None, noise_mode="const")
        logits32 = D(img32, None)

    def fp16_anywhere(use_fp16, force_fp32, device):
        return torch.float16 if use_fp16 and not force_fp32 else torch.float32

    monkeypatch.setattr(stylegan2, "_block_dtype", fp16_anywhere)
    seen = {}

    def record(key):
        def hook(module, inputs, output):
            seen[key] = output.dtype
        return hook

    G.synthesis.b16.conv1.register_forward_hook(record("G"))
    D.b16.conv0.register_forward_hook(record("D"))
    with torch.no_grad():
        img16 = G(z, None, noise_mode="const")
        logits16 = D(img16, None)
    assert seen == {"G": torch.float16, "D": torch.float16}
    assert img16.dtype == logits16.dtype == torch.float32
    assert float((img16 - img32).abs().max()) < 1e-2 * float(img32.abs().max())
    assert float((logits16 - logits32).abs().max()) < 1e-2 * float(logits32.abs().max()) + 1e-3
    with torch.no_grad():
        assert torch.equal(G(z, None, noise_mode="const", force_fp32=True), img32)


def test_fp16_modulated_conv_is_protected_against_overflow():
    from stylegan_unlearn.networks.stylegan2 import modulated_conv2d

    x = torch.randn(2, 4, 6, 6)
    weight = torch.randn(5, 4, 3, 3) * 300
    styles = torch.randn(2, 4) * 300          # weight * style reaches ~1e5, beyond the fp16 range
    expected = modulated_conv2d(x, weight, styles, padding=1)
    for fused in (True, False):
        out = modulated_conv2d(x.half(), weight, styles, padding=1, fused_modconv=fused)
        assert out.dtype == torch.float16 and torch.isfinite(out).all()
        assert torch.allclose(out.float(), expected, atol=2e-2 * float(expected.abs().max()))
