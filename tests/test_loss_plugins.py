"""Loss plugins driven through every phase with both signatures on our tiny networks."""
import math

import pytest
import torch

import dnnlib
import training_hooks
import training_hooks.sg3 as sg3
from stylegan_unlearn.networks.stylegan2 import Discriminator, Generator
from stylegan_unlearn.method.params import select_params
from tiny import FakeDDP
from tiny import tiny_networks as _tiny_networks
from torch_utils import training_stats

PHASES = ("Gmain", "Greg", "Gboth", "Dmain", "Dreg", "Dboth")
BATCH = 4


def tiny_networks(c_dim=0, seed=0):
    G, D = _tiny_networks(seed, c_dim=c_dim)
    return G.train().requires_grad_(False), D.train().requires_grad_(False)


@pytest.fixture
def stats(monkeypatch):
    seen = {}

    def report(name, value):
        seen.setdefault(name, []).append(torch.as_tensor(value).detach().clone())
        return value

    monkeypatch.setattr(training_stats, "report", report)
    return seen


def adapted_copies(G, k=2, scale=0.05):
    nets = []
    for i in range(k):
        torch.manual_seed(100 + i)
        other = Generator(**{k2: getattr(G, k2) for k2 in ("z_dim", "c_dim", "w_dim", "img_resolution",
                                                            "img_channels")},
                          mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=64, channel_max=8))
        other.load_state_dict(G.state_dict())
        with torch.no_grad():
            for p in other.parameters():
                p.add_(torch.randn_like(p) * scale)
        nets.append(other)
    return nets


def make_loss(kind, signature, G, D, **extra):
    common = dict(pl_weight=2, style_mixing_prob=0.9, r1_gamma=1)
    if kind == "ewc":
        extra = dict(fisher_samples=2, **extra)
    if kind == "repulsion":
        extra = dict(adapted=adapted_copies(G), **extra)
    if signature == "ada":
        cls = {"base": training_hooks.StyleGAN2Loss, "ewc": training_hooks.EWCLoss,
               "repulsion": training_hooks.RepulsionLoss}[kind]
        return cls("cpu", FakeDDP(G.mapping), FakeDDP(G.synthesis), FakeDDP(D), **common, **extra)
    cls = {"base": sg3.StyleGAN2Loss, "ewc": sg3.EWCLoss, "repulsion": sg3.RepulsionLoss}[kind]
    return cls("cpu", G, D, blur_init_sigma=1, blur_fade_kimg=1, **common, **extra)


def run_phase(loss, signature, phase, G, D, c_dim=0, gain=2):
    G.requires_grad_(phase.startswith("G"))
    D.requires_grad_(phase.startswith("D"))
    for p in list(G.parameters()) + list(D.parameters()):
        p.grad = None
    real = torch.randn(BATCH, 1, 16, 16)
    c = torch.nn.functional.one_hot(torch.arange(BATCH) % max(c_dim, 1), max(c_dim, 1)).float()[:, :c_dim]
    z = torch.randn(BATCH, 8)
    if signature == "ada":
        loss.accumulate_gradients(phase, real, c, z, c, True, gain)
    else:
        loss.accumulate_gradients(phase, real, c, z, c, gain, 200)
    G.requires_grad_(False)
    D.requires_grad_(False)


def has_grads(module):
    return any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


@pytest.mark.parametrize("signature", ["ada", "sg3"])
@pytest.mark.parametrize("kind", ["base", "ewc", "repulsion"])
def test_every_phase_runs_finite_and_grads_land_on_the_right_network(kind, signature, stats):
    G, D = tiny_networks()
    loss = make_loss(kind, signature, G, D)
    for phase in PHASES:
        stats.clear()
        run_phase(loss, signature, phase, G, D)
        assert has_grads(G) == phase.startswith("G"), phase
        assert has_grads(D) == phase.startswith("D"), phase
        assert all(p.grad is None or torch.isfinite(p.grad).all() for p in list(G.parameters()) + list(D.parameters()))
        assert all(torch.isfinite(v).all() for values in stats.values() for v in values), phase
        names = set(stats)
        if phase in ("Gmain", "Gboth"):
            assert {"Loss/G/loss", "Loss/scores/fake", "Loss/signs/fake"} <= names
            assert ("Loss/G/ewc" in names) == (kind == "ewc")
            assert ({"Loss/G/repulsion", "Loss/G/distance"} <= names) == (kind == "repulsion")
        else:
            assert not {"Loss/G/ewc", "Loss/G/repulsion"} & names, phase
        if phase in ("Greg", "Gboth"):
            assert {"Loss/pl_penalty", "Loss/G/reg"} <= names
        if phase in ("Dmain", "Dboth"):
            assert {"Loss/D/loss", "Loss/scores/real", "Loss/signs/real"} <= names
        if phase in ("Dreg", "Dboth"):
            assert {"Loss/r1_penalty", "Loss/D/reg"} <= names


@pytest.mark.parametrize("signature", ["ada", "sg3"])
def test_conditional_networks(signature, stats):
    G, D = tiny_networks(c_dim=3)
    loss = make_loss("repulsion", signature, G, D)
    for phase in ("Gboth", "Dboth"):
        run_phase(loss, signature, phase, G, D, c_dim=3)
    assert torch.isfinite(stats["Loss/G/repulsion"][0]).all()


def test_path_length_penalty_follows_its_definition(stats):
    G, D = tiny_networks()
    loss = make_loss("base", "ada", G, D)
    loss.pl_mean.fill_(0.5)
    z, c = torch.randn(BATCH, 8), torch.zeros(BATCH, 0)
    torch.manual_seed(7)
    G.requires_grad_(True)
    loss.accumulate_gradients("Greg", torch.zeros(BATCH, 1, 16, 16), c, z, c, True, 1)
    # Replay the phase's random draws (style mixing and noise inside run_G, then the direction y).
    torch.manual_seed(7)
    shrunk = BATCH // loss.pl_batch_shrink
    img, ws = loss.run_G(z[:shrunk], c[:shrunk])
    y = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
    (grad_ws,) = torch.autograd.grad((img * y).sum(), ws)
    lengths = grad_ws.square().sum(dim=2).mean(dim=1).sqrt()
    expected_mean = 0.5 + loss.pl_decay * (lengths.mean() - 0.5)
    assert float(loss.pl_mean) == pytest.approx(float(expected_mean), rel=1e-5)
    assert torch.allclose(stats["Loss/pl_penalty"][0], (lengths - expected_mean).square(), rtol=1e-4)
    assert torch.allclose(stats["Loss/G/reg"][0], loss.pl_weight * (lengths - expected_mean).square(), rtol=1e-4)


def test_ewc_penalty_is_zero_at_theta_G_and_its_gradient_is_lambda_F_delta():
    G, D = tiny_networks()
    loss = make_loss("ewc", "ada", G, D, ewc_lambda=1e6)
    penalty = loss.generator_penalty
    assert penalty().item() == 0.0
    fisher = {n: s.square() for n, s in zip(penalty.names, penalty.sqrt_fisher)}
    with torch.no_grad():
        for p in penalty.params:
            p.add_(torch.randn_like(p) * 0.1)
    G.requires_grad_(True)
    value = penalty()
    grads = torch.autograd.grad(value, penalty.params)
    expected_value = 0.0
    for name, p, anchor, g in zip(penalty.names, penalty.params, penalty.anchor, grads):
        delta = (p - anchor).detach()
        torch.testing.assert_close(g, 1e6 * fisher[name] * delta, rtol=1e-4, atol=1e-8)
        expected_value += float((fisher[name] * delta.square()).sum()) * 1e6 / 2
    assert value.item() == pytest.approx(expected_value, rel=1e-4)
    assert value.item() > 0


@pytest.mark.parametrize("kind", ["ewc", "repulsion"])
def test_gmain_adds_exactly_gain_times_the_penalty_gradient(kind):
    G, D = tiny_networks()
    extra = dict(ewc_lambda=1e5) if kind == "ewc" else dict(repulsion="nl2", repulsion_weight=3.0)
    plugin = make_loss(kind, "ada", G, D, **extra)
    base = make_loss("base", "ada", G, D)
    plugin.style_mixing_prob = base.style_mixing_prob = 0.0
    with torch.no_grad():
        for p in G.parameters():
            p.add_(torch.randn_like(p) * 0.01)  # move off θ_G so the EWC gradient is non-zero

    def grads_of(loss):
        torch.manual_seed(7)
        run_phase(loss, "ada", "Gmain", G, D, gain=3)
        return {n: p.grad.clone() if p.grad is not None else torch.zeros_like(p) for n, p in G.named_parameters()}

    with_penalty, without = grads_of(plugin), grads_of(base)
    G.requires_grad_(True)
    names = plugin.generator_penalty.names
    term_grads = torch.autograd.grad(plugin.generator_penalty(), plugin.generator_penalty.params)
    G.requires_grad_(False)
    for name, g in zip(names, term_grads):
        torch.testing.assert_close(with_penalty[name] - without[name], 3 * g, rtol=1e-3, atol=1e-6)
    untouched = set(with_penalty) - set(names)
    for name in untouched:
        torch.testing.assert_close(with_penalty[name], without[name])


@pytest.mark.parametrize("form", ["il2", "nl2", "el2"])
@pytest.mark.parametrize("distance", ["l2", "tensor-mean"])
def test_repulsion_term_matches_hand_computation(form, distance, stats):
    G, D = tiny_networks()
    adapted = adapted_copies(G, k=3)
    loss = training_hooks.RepulsionLoss("cpu", G.mapping, G.synthesis, D, adapted=adapted, repulsion=form,
                                        repulsion_weight=2.0, alpha=0.5, distance=distance, params="synthesis")
    named = [(n, p.detach()) for n, p in select_params(G, "synthesis")]
    per_net = []
    for net in adapted:
        net.requires_grad_(False)
        theirs = dict(net.named_parameters())
        diffs = [(p - theirs[n]).square() for n, p in named]
        per_net.append(sum(d.sum() for d in diffs) if distance == "l2" else sum(d.mean() for d in diffs) / len(diffs))
    d = float(sum(per_net) / 3)
    expected = {"il2": 2.0 / d, "nl2": -2.0 * d, "el2": 2.0 * math.exp(-0.5 * d)}[form]
    value = loss.generator_penalty()
    assert value.item() == pytest.approx(expected, rel=1e-4)
    assert stats["Loss/G/distance"][-1].item() == pytest.approx(d, rel=1e-4)
    assert stats["Loss/G/repulsion"][-1].item() == pytest.approx(expected, rel=1e-4)


def test_repulsion_training_moves_away_from_the_adapted_networks():
    G, D = tiny_networks()
    loss = make_loss("repulsion", "ada", G, D, repulsion="nl2", repulsion_weight=50.0, distance="tensor-mean")
    opt = torch.optim.Adam(G.parameters(), lr=0.01, betas=(0.0, 0.99))
    d0 = loss.generator_penalty.distance().item()
    for _ in range(3):
        opt.zero_grad(set_to_none=True)
        run_phase(loss, "ada", "Gmain", G, D)
        opt.step()
    assert loss.generator_penalty.distance().item() > d0
    assert all(torch.isfinite(p).all() for p in G.parameters())


def test_task_distance_through_the_plugin_is_one_at_the_start_and_grows_along_the_task_vector(stats):
    """RepulsionLoss with distance='task': d = 1 where unlearning starts; moving G by γ along θ_G − μ
    (μ the adapted models' mean) gives d = (1 + γ)², as the extrapolation baseline's θ_G + γ(θ_G − μ)."""
    G, D = tiny_networks()
    adapted = adapted_copies(G, k=2)
    loss = training_hooks.RepulsionLoss("cpu", G.mapping, G.synthesis, D, adapted=adapted, repulsion="nl2",
                                        repulsion_weight=1.0, distance="task", params="synthesis")
    assert loss.generator_penalty.distance().item() == pytest.approx(1.0, rel=1e-4)
    theirs = [dict(net.named_parameters()) for net in adapted]
    with torch.no_grad():
        for name, p in select_params(G, "synthesis"):
            centre = sum(t[name] for t in theirs) / len(theirs)
            p.add_(0.5 * (p - centre))
    assert loss.generator_penalty.distance().item() == pytest.approx(1.5 ** 2, rel=1e-4)
    assert loss.generator_penalty().item() == pytest.approx(-1.5 ** 2, rel=1e-4)
    assert stats["Loss/G/distance"][-1].item() == pytest.approx(1.5 ** 2, rel=1e-4)


def test_constructed_by_name_with_json_kwargs_from_pkl_paths(tmp_path):
    from stylegan_unlearn.pkl import save_network_pkl

    G, D = tiny_networks()
    paths = []
    for i, net in enumerate(adapted_copies(G)):
        path = tmp_path / f"adapted{i}.pkl"
        save_network_pkl(path, dict(G=net, D=D, G_ema=net, augment_pipe=None, training_set_kwargs=None))
        paths.append(str(path))
    kwargs = dict(class_name="training_hooks.RepulsionLoss", adapted=paths, repulsion="il2", r1_gamma=1)
    loss = dnnlib.util.construct_class_by_name(device="cpu", G_mapping=G.mapping, G_synthesis=G.synthesis, D=D,
                                               augment_pipe=None, **kwargs)
    assert loss.generator_penalty.num_adapted == 2
    assert loss.generator_penalty().item() > 0
    ewc = dnnlib.util.construct_class_by_name(class_name="training_hooks.sg3.EWCLoss", device="cpu", G=G, D=D,
                                              fisher_samples=2, fisher_cache=str(tmp_path / "fisher.pt"))
    assert (tmp_path / "fisher.pt").is_file() and ewc.generator_penalty().item() == 0.0


def test_bad_inputs_are_clear_errors(tmp_path):
    G, D = tiny_networks()
    with pytest.raises(ValueError, match="at least one adapted"):
        training_hooks.RepulsionLoss("cpu", G.mapping, G.synthesis, D, adapted=[])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        training_hooks.RepulsionLoss("cpu", G.mapping, G.synthesis, D, adapted=[str(tmp_path / "nope.pkl")])
    other = Generator(z_dim=8, c_dim=0, w_dim=16, img_resolution=16, img_channels=1,
                      mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=64, channel_max=8))
    with pytest.raises(ValueError, match="same architecture"):
        training_hooks.RepulsionLoss("cpu", G.mapping, G.synthesis, D, adapted=[other])
    with pytest.raises(ValueError, match="unknown repulsion"):
        training_hooks.RepulsionLoss("cpu", G.mapping, G.synthesis, D, adapted=[G], repulsion="l1")
    with pytest.raises(ValueError, match="unknown distance"):
        training_hooks.RepulsionLoss("cpu", G.mapping, G.synthesis, D, adapted=[G], distance="cosine")
    loss = training_hooks.StyleGAN2Loss("cpu", G.mapping, G.synthesis, D)
    with pytest.raises(ValueError, match="unknown loss phase"):
        loss.accumulate_gradients("Gall", None, None, None, None, True, 1)


@pytest.mark.filterwarnings("ignore:`broadcast_buffers` is deprecated")
def test_real_ddp_wrappers_single_process_gloo(tmp_path, stats):
    """The reference ADA loop hands the loss DDP wrappers; run every phase through real ones."""
    import torch.distributed as dist

    if dist.is_initialized():
        pytest.skip("a process group is already initialised in this process")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'ddp_init'}", rank=0, world_size=1)
    try:
        G, D = tiny_networks()
        wrapped = []
        for module in (G.mapping, G.synthesis, D):
            module.requires_grad_(True)
            wrapped.append(torch.nn.parallel.DistributedDataParallel(module, broadcast_buffers=False))
            module.requires_grad_(False)
        loss = training_hooks.EWCLoss("cpu", *wrapped, fisher_samples=2, ewc_lambda=1e5, pl_weight=2)
        assert loss.generator_penalty.names[0].startswith("synthesis.b8.conv0")
        with torch.no_grad():
            G.synthesis.b8.conv0.weight.add_(0.1)
        for phase in PHASES:
            for sync in (False, True):
                G.requires_grad_(phase.startswith("G"))
                D.requires_grad_(phase.startswith("D"))
                real, z = torch.randn(BATCH, 1, 16, 16), torch.randn(BATCH, 8)
                c = torch.zeros(BATCH, 0)
                loss.accumulate_gradients(phase, real, c, z, c, sync, 1)
                G.requires_grad_(False)
                D.requires_grad_(False)
        assert stats["Loss/G/ewc"][-1].item() > 0
        assert torch.isfinite(G.synthesis.b8.conv0.weight.grad).all()
    finally:
        dist.destroy_process_group()


class ConstNoise(torch.nn.Module):
    """Synthesis wrapper fixing noise_mode='const', as the golden loss gradient was recorded."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, ws):
        return self.module(ws, noise_mode="const")


@pytest.mark.parametrize("name", ["sg2_uncond32", "sg2_cond16"])
def test_gmain_gradient_matches_the_reference_loss(golden_dir, name):
    import json

    import numpy as np

    layout = json.loads((golden_dir / f"{name}_layout.json").read_text())
    case = next(c for c in json.loads((golden_dir / f"{name}.json").read_text())["cases"] if c["op"] == "G_loss_grad")
    with np.load(golden_dir / f"{name}.npz") as npz:
        arrays = {key: torch.from_numpy(npz[key].copy()) for key in npz.files}
    G = Generator(**layout["G_init_kwargs"]).eval()
    D = Discriminator(**layout["D_init_kwargs"]).eval()
    for prefix, module in (("G", G), ("D", D)):
        module.load_state_dict({n: arrays[f"{prefix}.{n}"] for n in module.state_dict()})
    loss = training_hooks.StyleGAN2Loss("cpu", G.mapping, ConstNoise(G.synthesis), D, style_mixing_prob=0)
    z, c = arrays[case["arrays"]["in_z"]], arrays[case["arrays"]["in_c"]]
    G.requires_grad_(True)
    loss.accumulate_gradients("Gmain", None, None, z, c, True, 2.0)
    grads = {n: key for n, key in case["arrays"].items() if n.startswith("out_grad.")}
    assert grads
    scale = max(float(arrays[key].abs().max()) for key in grads.values())
    for role, key in grads.items():
        param = dict(G.named_parameters())[role[len("out_grad."):]]
        err = float((param.grad - 2.0 * arrays[key]).abs().max())
        assert err <= 2e-4 * 2.0 * scale, (role, err)
