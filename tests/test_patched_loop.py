"""Issue 7 end to end without NVIDIA's code: a patched stand-in train.py names our plugins, and a
stand-in loop builds them with `construct_class_by_name` exactly as the reference loops do."""
import json
import os
import subprocess
import sys

import pytest
import torch

import dnnlib
from patches import patcher
from standin_checkouts import ADA_TRAIN_PY, SG3_TRAIN_PY
from stylegan_unlearn.networks.stylegan2 import Discriminator, Generator
from stylegan_unlearn.pkl import save_network_pkl

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH = 4


def _tiny(seed):
    torch.manual_seed(seed)
    G = Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=1,
                  mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=64, channel_max=8))
    D = Discriminator(c_dim=0, img_resolution=16, img_channels=1, channel_base=64, channel_max=8)
    return G, D


def _loss_kwargs(tmp_path, text, *args):
    root = tmp_path / "checkout"
    root.mkdir(exist_ok=True)
    (root / "train.py").write_text(text)
    (root / "data.zip").write_bytes(b"stand-in")
    patcher.patch_file(str(root))
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    proc = subprocess.run([sys.executable, "train.py", "--dry-run", "--outdir", "runs", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    options = json.loads(proc.stdout.split("Training options:", 1)[1])
    return dnnlib.EasyDict(options["loss_kwargs"])


def _adapted_pkl(tmp_path, G, D):
    """θ_N: a copy of G moved a little, saved as a network pkl the way --mode=adapt writes it."""
    G_N = Generator(**G.init_kwargs)
    G_N.load_state_dict(G.state_dict())
    with torch.no_grad():
        for p in G_N.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    path = str(tmp_path / "adapted.pkl")
    save_network_pkl(path, dict(G=G_N, D=D, G_ema=G_N, augment_pipe=None, training_set_kwargs=None))
    return path


def _run_phases(loss, G, D, accumulate):
    """One Gmain and one Dmain round, as the reference loop drives them."""
    real = torch.rand(BATCH, 1, 16, 16) * 2 - 1
    c = torch.zeros(BATCH, 0)
    before = {n: p.detach().clone() for n, p in G.named_parameters()}
    for phase, module in (("Gmain", G), ("Dmain", D)):
        module.requires_grad_(True)
        accumulate(loss, phase, real, c, torch.randn(BATCH, G.z_dim), c)
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads), phase
        module.requires_grad_(False)
    assert all(torch.equal(before[n], p) for n, p in G.named_parameters())  # losses never step optimisers


def test_ada_loop_builds_our_repulsion_loss_from_patched_options(tmp_path):
    G, D = _tiny(0)
    adapted = _adapted_pkl(tmp_path, G, D)
    kwargs = _loss_kwargs(tmp_path, ADA_TRAIN_PY, "--data", "data.zip", "--resume", "pre.pkl", "--mode", "unlearn",
                          "--adapted", adapted, "--repulsion", "nl2", "--repulsion-weight", "3")
    assert kwargs.class_name == "training_hooks.RepulsionLoss"
    loss = dnnlib.util.construct_class_by_name(device=torch.device("cpu"), G_mapping=G.mapping,
                                               G_synthesis=G.synthesis, D=D, augment_pipe=None, **kwargs)
    _run_phases(loss, G, D, lambda l, ph, r, c, z, gc: l.accumulate_gradients(ph, r, c, z, gc, sync=True, gain=1))
    assert loss.generator_penalty is not None


def test_ada_loop_builds_our_ewc_loss_anchored_at_the_resumed_network(tmp_path):
    G, D = _tiny(1)
    kwargs = _loss_kwargs(tmp_path, ADA_TRAIN_PY, "--data", "data.zip", "--resume", "pre.pkl", "--mode", "adapt",
                          "--fisher-samples", "4")
    assert kwargs.class_name == "training_hooks.EWCLoss" and kwargs.fisher_samples == 4
    loss = dnnlib.util.construct_class_by_name(device=torch.device("cpu"), G_mapping=G.mapping,
                                               G_synthesis=G.synthesis, D=D, augment_pipe=None, **kwargs)
    _run_phases(loss, G, D, lambda l, ph, r, c, z, gc: l.accumulate_gradients(ph, r, c, z, gc, sync=True, gain=1))


def test_sg3_loop_builds_our_sg3_plugin(tmp_path):
    G, D = _tiny(2)
    adapted = _adapted_pkl(tmp_path, G, D)
    kwargs = _loss_kwargs(tmp_path, SG3_TRAIN_PY, "--cfg", "stylegan2", "--data", "d.zip", "--gamma", "1",
                          "--resume", "pre.pkl", "--mode", "unlearn", "--adapted", adapted)
    assert kwargs.class_name == "training_hooks.sg3.RepulsionLoss"
    loss = dnnlib.util.construct_class_by_name(device=torch.device("cpu"), G=G, D=D, augment_pipe=None, **kwargs)
    _run_phases(loss, G, D, lambda l, ph, r, c, z, gc: l.accumulate_gradients(ph, r, c, z, gc, gain=1, cur_nimg=0))


@pytest.mark.parametrize("flavour", ["ada", "sg3"])
def test_loss_kwargs_from_patched_options_are_json_serialisable(tmp_path, flavour):
    text = ADA_TRAIN_PY if flavour == "ada" else SG3_TRAIN_PY
    extra = ["--data", "data.zip"] if flavour == "ada" else ["--cfg", "stylegan2", "--data", "d.zip", "--gamma", "1"]
    kwargs = _loss_kwargs(tmp_path, text, *extra, "--resume", "pre.pkl", "--mode", "unlearn", "--adapted", "x.pkl",
                          "--alpha", "0.1", "--repulsion", "el2")
    assert json.loads(json.dumps(kwargs)) == kwargs
