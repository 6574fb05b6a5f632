"""The training loop on tiny networks: snapshots and sidecar, resume, EMA, lazy-reg optimizers, NaN guard, augment."""
import json
import os
import pickle

import numpy as np
import pytest
import torch

from stylegan_unlearn.data import write_image_dataset
from stylegan_unlearn.loop import NonFiniteError, snapshots, training_loop
from stylegan_unlearn.loop.augment import DiffAugment
from stylegan_unlearn.loop.training_loop import _ema_decay, _follow_generator, _lazy_reg_optimizer, _run_key, _same_run
from training_hooks import StyleGAN2Loss


def tiny_args(data_path, run_dir, **overrides):
    args = dict(
        run_dir=str(run_dir),
        training_set_kwargs=dict(class_name="stylegan_unlearn.data.ImageDataset", path=str(data_path),
                                 use_labels=False, xflip=False, max_size=None),
        data_loader_kwargs=dict(num_workers=0),
        G_kwargs=dict(class_name="stylegan_unlearn.networks.stylegan2.Generator", z_dim=16, w_dim=16,
                      mapping_kwargs=dict(num_layers=2),
                      synthesis_kwargs=dict(channel_base=256, channel_max=16, num_fp16_res=0, conv_clamp=None)),
        D_kwargs=dict(class_name="stylegan_unlearn.networks.stylegan2.Discriminator", channel_base=256,
                      channel_max=16, num_fp16_res=0, conv_clamp=None, epilogue_kwargs=dict(mbstd_group_size=4)),
        G_opt_kwargs=dict(class_name="torch.optim.Adam", lr=0.002, betas=[0, 0.99], eps=1e-8),
        D_opt_kwargs=dict(class_name="torch.optim.Adam", lr=0.002, betas=[0, 0.99], eps=1e-8),
        loss_kwargs=dict(class_name="training_hooks.StyleGAN2Loss", r1_gamma=1, pl_weight=2),
        batch_size=4, batch_gpu=2, ema_kimg=0.01, total_kimg=0.016, kimg_per_tick=0.008,
        image_snapshot_ticks=1, network_snapshot_ticks=1, device="cpu", grid_size=(2, 2),
    )
    args.update(overrides)
    os.makedirs(args["run_dir"], exist_ok=True)
    return args


@pytest.fixture(scope="module")
def data_zip(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tiny.zip"
    write_image_dataset(str(path), np.random.RandomState(0).randint(0, 256, (8, 16, 16, 3), dtype=np.uint8))
    return path


def latest(run_dir):
    """The run's last network snapshot (with ticks below 1 kimg, names carry the exact kimg)."""
    return snapshots.find_latest_snapshot(str(run_dir))


def _adam_steps(opt_state):
    return sorted({int(s["step"]) for s in opt_state["state"].values()})


def test_run_writes_snapshots_logs_and_sidecar(data_zip, tmp_path):
    summary = training_loop(**tiny_args(data_zip, tmp_path))
    assert summary["cur_nimg"] == 16
    names = set(os.listdir(tmp_path))
    # Ticks at 4, 12 and 16 images: three snapshots within kimg 0, none overwriting another.
    assert {"reals.png", "fakes_init.png", "fakes000000.png", "fakes000000.012.png", "fakes000000.016.png",
            "stats.jsonl", "network-snapshot-000000.pkl", "network-snapshot-000000.pkl.resume.pt",
            "network-snapshot-000000.012.pkl", "network-snapshot-000000.016.pkl",
            "network-snapshot-000000.016.pkl.resume.pt"} <= names
    assert latest(tmp_path) == str(tmp_path / "network-snapshot-000000.016.pkl") == summary["last_snapshot"]
    assert snapshots.load_sidecar(str(tmp_path / "network-snapshot-000000.pkl"))["cur_nimg"] == 4
    lines = [json.loads(line) for line in (tmp_path / "stats.jsonl").read_text().splitlines()]
    assert len(lines) == 3 and all("timestamp" in line for line in lines)
    assert {"Loss/G/loss", "Loss/D/loss", "Loss/r1_penalty", "Progress/kimg", "Timing/sec_per_kimg"} <= set(lines[-1])
    assert lines[-1]["Progress/kimg"]["mean"] == pytest.approx(0.016)
    with open(latest(tmp_path), "rb") as f:
        data = pickle.load(f)
    assert set(data) >= {"G", "D", "G_ema", "augment_pipe", "training_set_kwargs"}
    assert not data["G"].training and not any(p.requires_grad for p in data["G"].parameters())
    state = snapshots.load_sidecar(latest(tmp_path))
    # 4 iterations: Gmain 4 steps (+1 Greg at iteration 0 shares the optimizer), Dmain 4 (+1 Dreg).
    assert state["cur_nimg"] == 16 and state["batch_idx"] == 4
    assert _adam_steps(state["optimizers"]["G"]) == [5] and _adam_steps(state["optimizers"]["D"]) == [5]


def test_ema_tracks_generator(data_zip, tmp_path):
    training_loop(**tiny_args(data_zip, tmp_path, ema_kimg=0))  # beta = 0: G_ema is a copy of G
    with open(latest(tmp_path), "rb") as f:
        data = pickle.load(f)
    for (name, p), p_ema in zip(data["G"].named_parameters(), data["G_ema"].parameters()):
        assert torch.equal(p, p_ema), name


def test_ema_decay_has_the_requested_half_life_and_ramps_up():
    decay = _ema_decay(batch_size=4, cur_nimg=10 ** 6, ema_kimg=0.04, ema_rampup=None)
    assert decay ** (40 / 4) == pytest.approx(0.5)             # 40 images halve the old weights
    assert _ema_decay(4, 100, 10.0, 0.05) == pytest.approx(0.5 ** (4 / 5))  # ramp-up: half-life 5 images
    assert _ema_decay(4, 10 ** 9, 0.04, 0.05) == pytest.approx(decay)       # ... until ema_kimg is reached
    assert _ema_decay(4, 0, 10.0, 0.05) == 0.0                 # nothing seen yet: G_ema copies G


def test_follow_generator_averages_parameters_and_copies_buffers():
    G, G_ema = torch.nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)
    with torch.no_grad():
        for p, p_ema in zip(G.parameters(), G_ema.parameters()):
            p.fill_(1.0)
            p_ema.fill_(-1.0)
        G.running_mean.fill_(5.0)
    _follow_generator(G_ema, G, decay=0.25)
    assert all(torch.allclose(p, torch.full_like(p, 0.5)) for p in G_ema.parameters())  # 0.25 * -1 + 0.75 * 1
    assert torch.equal(G_ema.running_mean, G.running_mean)


def test_lazy_regularisation_rescales_optimizer():
    module = torch.nn.Linear(2, 2)
    opt = _lazy_reg_optimizer(module, dict(class_name="torch.optim.Adam", lr=0.002, betas=[0, 0.99]), 16)
    ratio = 16 / 17
    assert opt.param_groups[0]["lr"] == pytest.approx(0.002 * ratio)
    assert opt.param_groups[0]["betas"][1] == pytest.approx(0.99 ** ratio)
    plain = _lazy_reg_optimizer(module, dict(class_name="torch.optim.Adam", lr=0.002, betas=[0, 0.99]), None)
    assert plain.param_groups[0]["lr"] == 0.002


def test_resume_continues_counter_and_optimizer(data_zip, tmp_path):
    first = tmp_path / "first"
    training_loop(**tiny_args(data_zip, first))
    pkl = latest(first)
    second = tmp_path / "second"
    summary = training_loop(**tiny_args(data_zip, second, resume_pkl=pkl, total_kimg=0.032))
    assert summary["cur_nimg"] == 32
    state = snapshots.load_sidecar(latest(second))
    assert state["batch_idx"] == 8
    # 8 iterations in all: 8 Gmain + 2 Greg steps (iterations 0 and 4), 8 Dmain + 1 Dreg.
    assert _adam_steps(state["optimizers"]["G"]) == [10] and _adam_steps(state["optimizers"]["D"]) == [9]
    assert not (second / "fakes_init.png").exists()


def test_resume_without_sidecar_starts_fresh_from_weights(data_zip, tmp_path):
    first = tmp_path / "first"
    training_loop(**tiny_args(data_zip, first))
    pkl = latest(first)
    os.remove(pkl + snapshots.SIDECAR_SUFFIX)  # like an official pkl
    second = tmp_path / "second"
    summary = training_loop(**tiny_args(data_zip, second, resume_pkl=str(pkl), total_kimg=0.004,
                                        resume_G_from="G_ema"))
    assert summary["cur_nimg"] == 4


def test_resume_rejects_other_architecture(data_zip, tmp_path):
    first = tmp_path / "first"
    training_loop(**tiny_args(data_zip, first, total_kimg=0.004))
    args = tiny_args(data_zip, tmp_path / "second", resume_pkl=latest(first))
    args["G_kwargs"]["mapping_kwargs"] = dict(num_layers=3)
    with pytest.raises(ValueError, match="does not match the network being trained"):
        training_loop(**args)


class NaNAfterLoss(StyleGAN2Loss):
    """The reference loss, poisoned with NaN from the `poison_after`-th call on (for the NaN guard)."""

    def __init__(self, *args, poison_after=8, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls, self.poison_after = 0, poison_after

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, sync, gain):
        self.calls += 1
        if self.calls > self.poison_after:
            gain = float("nan")
        super().accumulate_gradients(phase, real_img, real_c, gen_z, gen_c, sync, gain)


def test_nan_guard_stops_and_keeps_last_snapshot(data_zip, tmp_path):
    args = tiny_args(data_zip, tmp_path, total_kimg=0.04,
                     loss_kwargs=dict(class_name="test_training_loop.NaNAfterLoss", r1_gamma=1, poison_after=20))
    with pytest.raises(NonFiniteError, match="NaN/Inf gradients.*last good snapshot is .*network-snapshot"):
        training_loop(**args)
    state = snapshots.load_sidecar(latest(tmp_path))
    assert 0 < state["cur_nimg"] < 40
    with open(latest(tmp_path), "rb") as f:
        data = pickle.load(f)
    assert all(torch.isfinite(p).all() for p in data["G"].parameters())


def test_diffaugment_is_differentiable_and_respects_p():
    torch.manual_seed(1)
    pipe = DiffAugment(xflip=1, translation=1, cutout=1, color=1)
    images = torch.rand(6, 3, 16, 16) * 2 - 1
    pipe.p.fill_(0)
    assert torch.equal(pipe(images), images)
    pipe.p.fill_(1)
    x = images.clone().requires_grad_(True)
    out = pipe(x)
    assert out.shape == images.shape and not torch.allclose(out, images)
    (grad,) = torch.autograd.grad(out.square().sum(), x, create_graph=True)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    gray = pipe(torch.rand(2, 1, 8, 8))
    assert gray.shape == (2, 1, 8, 8)


def test_ada_adjusts_p_and_saves_it(data_zip, tmp_path):
    args = tiny_args(data_zip, tmp_path, total_kimg=0.032,
                     augment_kwargs=dict(class_name="stylegan_unlearn.loop.augment.DiffAugment"),
                     ada_target=0.6, ada_interval=1, ada_kimg=0.1)
    training_loop(**args)
    with open(latest(tmp_path), "rb") as f:
        p_pkl = float(pickle.load(f)["augment_pipe"].p)
    state = snapshots.load_sidecar(latest(tmp_path))
    assert state["augment_p"] == pytest.approx(p_pkl)
    # Every iteration moves p by ±batch / (ada_kimg * 1000) = ±0.04, clamped at 0.
    steps = p_pkl / 0.04
    assert p_pkl >= 0 and steps == pytest.approx(round(steps), abs=1e-4)
    lines = [json.loads(line) for line in (tmp_path / "stats.jsonl").read_text().splitlines()]
    assert lines[-1]["Progress/augment"]["mean"] == pytest.approx(p_pkl)



def test_a_sidecar_naming_a_moved_loss_class_still_continues_its_run():
    data = dict(path="data.zip")
    moved = _run_key(data, dict(class_name="training_hooks.balance.ClassBalanceLoss"))
    written_before = dict(moved, loss="stylegan_unlearn.mnist.balance.ClassBalanceLoss")
    assert _same_run(written_before, moved) and _same_run(moved, moved)
    assert not _same_run(written_before, _run_key(data, dict(class_name="training_hooks.StyleGAN2Loss")))
    assert not _same_run(None, moved)
