"""Patched stand-in train.py options build our plugins as the reference loops do, without NVIDIA's code.

A stand-in loop follows the documented steps (reference-interfaces.md §5.2, §5.7): build G and D, resume G
from the pkl's `G` (`copy_params_and_buffers(..., require_all=False)`), then build the loss with
`construct_class_by_name` and drive `accumulate_gradients` phase by phase. Checked here (issues 7 and 13):
the plugins start G at the `--resume` pkl's G_ema and anchor EWC there, and they run every phase in a
stand-in reference environment (the checkout's own `torch_utils`/`dnnlib` first on `sys.path`, reference
networks, a pkl those wrote).
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import dnnlib
from patches import patcher
from standin_checkouts import TRAIN_PY, write_reference_environment
from stylegan_unlearn.method.architecture import generator_tensors, stored_tensors
from stylegan_unlearn.pkl import families, load_network_pkl
from stylegan_unlearn.pkl.safe_unpickler import safe_load
from tiny import RESOLUTION, tiny_networks, write_patch_pkls
from torch_utils import misc
from training_hooks.loss import PHASES

REPO_ROOT = Path(__file__).resolve().parents[1]
BATCH = 4
FLAGS = {"ada": ["--data", "data.zip"],
         "sg3": ["--cfg", "stylegan2", "--data", "data.zip", "--gpus", "1", "--batch", "16", "--gamma", "10"]}


@pytest.fixture(scope="module")
def pkls(tmp_path_factory):
    return write_patch_pkls(tmp_path_factory.mktemp("pkls"))


def _env():
    return dict(os.environ, PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS="1")


def _patched_checkout(root: Path, flavour: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.py").write_text(TRAIN_PY[flavour])
    (root / "data.zip").write_bytes(b"stand-in")
    patcher.patch_file(str(root))
    return root


def _dry_run_loss_kwargs(root: Path, flavour: str, *args) -> dnnlib.EasyDict:
    proc = subprocess.run([sys.executable, "train.py", "--dry-run", "--outdir", "runs", *FLAGS[flavour],
                           *map(str, args)], cwd=root, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    options = json.JSONDecoder().raw_decode(proc.stdout.split("Training options:\n", 1)[1])[0]
    return dnnlib.EasyDict(options["loss_kwargs"])


def _stage_args(pkls: Path, stage: str):
    extra = ["--adapted", pkls / "adapted.pkl"] if stage == "unlearn" else ["--fisher-samples", "4"]
    return ["--resume", pkls / "pre.pkl", "--mode", stage, *extra]


def _resumed_like_the_reference(pkl: Path, mapping_layers: int = 2):
    """G and D built afresh, then G resumed from the pkl's G (not G_ema), as the reference loops do."""
    data = load_network_pkl(str(pkl))
    G, D = tiny_networks(seed=11, mapping_layers=mapping_layers)
    misc.copy_params_and_buffers(data["G"], G, require_all=False)
    misc.copy_params_and_buffers(data["D"], D, require_all=False)
    return G.train().requires_grad_(False), D.train().requires_grad_(False), data


def _construct(flavour: str, G, D, kwargs):
    if flavour == "ada":
        return dnnlib.util.construct_class_by_name(device=torch.device("cpu"), G_mapping=G.mapping,
                                                   G_synthesis=G.synthesis, D=D, augment_pipe=None, **kwargs)
    return dnnlib.util.construct_class_by_name(device=torch.device("cpu"), G=G, D=D, augment_pipe=None, **kwargs)


def _accumulate(flavour, loss, phase, real, c, z):
    if flavour == "ada":
        loss.accumulate_gradients(phase, real, c, z, c, sync=True, gain=1)
    else:
        loss.accumulate_gradients(phase, real, c, z, c, gain=1, cur_nimg=0)


def _run_every_phase(flavour, loss, G, D):
    """Each phase once, as the reference loop drives it; every gradient finite, no weight stepped."""
    real = torch.rand(BATCH, 1, RESOLUTION, RESOLUTION) * 2 - 1
    c = torch.zeros(BATCH, 0)
    before = {n: p.detach().clone() for n, p in G.named_parameters()}
    for phase in PHASES:
        module = G if phase.startswith("G") else D
        module.requires_grad_(True)
        for p in module.parameters():
            p.grad = None
        _accumulate(flavour, loss, phase, real, c, torch.randn(BATCH, G.z_dim))
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads), phase
        module.requires_grad_(False)
    assert all(torch.equal(before[n], p) for n, p in G.named_parameters())


def _same_tensors(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[n].detach().cpu(), b[n].detach().cpu()) for n in a)


@pytest.mark.parametrize("flavour", ["ada", "sg3"])
@pytest.mark.parametrize("stage", ["adapt", "unlearn"])
def test_plugins_start_at_and_anchor_at_the_resume_pkls_G_ema(tmp_path, pkls, flavour, stage):
    kwargs = _dry_run_loss_kwargs(_patched_checkout(tmp_path, flavour), flavour, *_stage_args(pkls, stage))
    assert kwargs.start_from == str(pkls / "pre.pkl")
    G, D, data = _resumed_like_the_reference(pkls / "pre.pkl")
    G_ema, G_pkl = stored_tensors(data["G_ema"]), stored_tensors(data["G"])
    assert _same_tensors(generator_tensors(G), G_pkl) and not _same_tensors(G_pkl, G_ema)

    loss = _construct(flavour, G, D, kwargs)
    assert _same_tensors(generator_tensors(G), G_ema)
    penalty = loss.generator_penalty
    if stage == "adapt":
        assert all(torch.equal(anchor, G_ema[name]) for name, anchor in zip(penalty.names, penalty.anchor))
        assert len(penalty.names) > 0
    else:
        assert penalty.num_adapted == 1
    _run_every_phase(flavour, loss, G, D)


@pytest.mark.parametrize("flavour", ["ada", "sg3"])
def test_a_generator_built_unlike_the_resume_pkl_is_refused(tmp_path, pkls, flavour):
    kwargs = _dry_run_loss_kwargs(_patched_checkout(tmp_path, flavour), flavour, *_stage_args(pkls, "adapt"))
    # train.py built a deeper mapping network (another --cfg): the reference resume skips mapping.fc2 silently
    G, D, _ = _resumed_like_the_reference(pkls / "pre.pkl", mapping_layers=3)
    with pytest.raises(ValueError, match=r"cannot start from the G_ema of .*pre\.pkl.* lacks mapping\.fc2\."):
        _construct(flavour, G, D, kwargs)


@pytest.mark.parametrize("flavour", ["ada", "sg3"])
def test_loss_kwargs_from_patched_options_are_json_serialisable(tmp_path, pkls, flavour):
    kwargs = _dry_run_loss_kwargs(_patched_checkout(tmp_path, flavour), flavour, *_stage_args(pkls, "unlearn"),
                                  "--alpha", "0.1", "--repulsion", "el2")
    assert json.loads(json.dumps(kwargs)) == kwargs


# A stand-in reference loop run inside the stand-in checkout: only documented interfaces are used (plain
# unpickling of a network pkl, the checkout's `training.networks` classes, `misc.copy_params_and_buffers`,
# `construct_class_by_name` with the loop's keyword arguments, `accumulate_gradients` per phase).
REFERENCE_LOOP = textwrap.dedent('''\
    import copy, json, os, pickle, sys
    import torch
    import dnnlib, torch_utils
    from torch_utils import misc
    from training.networks import Discriminator, Generator

    def snapshot(path, G, D, G_ema):
        nets = {k: copy.deepcopy(v).eval().requires_grad_(False).cpu() for k, v in dict(G=G, D=D, G_ema=G_ema).items()}
        with open(path, 'wb') as f:
            pickle.dump(dict(training_set_kwargs=None, **nets, augment_pipe=None), f)

    def moved(G, scale, seed):
        out = copy.deepcopy(G)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in out.parameters():
                p.add_(torch.randn(p.shape, generator=gen) * scale)
        return out

    def tensors(module):
        return {**dict(module.named_parameters()), **dict(module.named_buffers())}

    if sys.argv[1] == 'make-pkls':
        torch.manual_seed(0)
        G = Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=1,
                      mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=64, channel_max=8))
        D = Discriminator(c_dim=0, img_resolution=16, img_channels=1, channel_base=64, channel_max=8)
        snapshot('pre.pkl', G, D, moved(G, 0.05, 1))
        G_N = moved(G, 0.01, 2)
        snapshot('adapted.pkl', G_N, D, G_N)
        sys.exit(0)

    flavour, kwargs = sys.argv[2], dnnlib.EasyDict(json.loads(open(sys.argv[3]).read()))
    with open('pre.pkl', 'rb') as f:
        resume = pickle.load(f)
    G = Generator(**resume['G'].init_kwargs).train().requires_grad_(False)
    D = Discriminator(**resume['D'].init_kwargs).train().requires_grad_(False)
    misc.copy_params_and_buffers(resume['G'], G, require_all=False)
    misc.copy_params_and_buffers(resume['D'], D, require_all=False)
    common = dict(device=torch.device('cpu'), D=D, augment_pipe=None)
    if flavour == 'ada':
        loss = dnnlib.util.construct_class_by_name(G_mapping=G.mapping, G_synthesis=G.synthesis, **common, **kwargs)
    else:
        loss = dnnlib.util.construct_class_by_name(G=G, **common, **kwargs)
    G_ema = tensors(resume['G_ema'])
    report = dict(torch_utils=torch_utils.__file__, G_module=type(G).__mro__[1].__module__,
                  started_at_G_ema=all(torch.equal(t, G_ema[n]) for n, t in tensors(G).items()),
                  differs_from_G=not all(torch.equal(t, tensors(resume['G'])[n]) for n, t in tensors(G).items()),
                  phases={})
    penalty = loss.generator_penalty
    if hasattr(penalty, 'anchor'):
        report['anchor_at_G_ema'] = all(torch.equal(a, G_ema[n]) for n, a in zip(penalty.names, penalty.anchor))
    real, c = torch.rand(4, 1, 16, 16) * 2 - 1, torch.zeros(4, 0)
    for phase in ('Gmain', 'Greg', 'Gboth', 'Dmain', 'Dreg', 'Dboth'):
        module = G if phase[0] == 'G' else D
        module.requires_grad_(True)
        for p in module.parameters():
            p.grad = None
        z = torch.randn(4, 8)
        if flavour == 'ada':
            loss.accumulate_gradients(phase, real, c, z, c, sync=True, gain=1)
        else:
            loss.accumulate_gradients(phase, real, c, z, c, gain=1, cur_nimg=0)
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        report['phases'][phase] = bool(grads) and all(bool(torch.isfinite(g).all()) for g in grads)
        module.requires_grad_(False)
    project = [os.path.join(sys.argv[4], name) + os.sep for name in ('torch_utils', 'dnnlib')]
    report['project_modules'] = sorted(name for name, m in sys.modules.items()
                                       if any((getattr(m, '__file__', None) or '').startswith(p) for p in project))
    print(json.dumps(report))
''')


def _in_checkout(root: Path, *args) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, *map(str, args)], cwd=root, env=_env(), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.mark.parametrize("flavour", ["ada", "sg3"])
@pytest.mark.parametrize("stage", ["adapt", "unlearn"])
def test_plugins_run_every_phase_inside_a_reference_environment(tmp_path, flavour, stage):
    root = _patched_checkout(tmp_path / "checkout", flavour)
    write_reference_environment(root)
    (root / "reference_loop.py").write_text(REFERENCE_LOOP)
    _in_checkout(root, "reference_loop.py", "make-pkls")
    with open(root / "pre.pkl", "rb") as f:  # what the safe loader meets in a real checkout: not our own source
        assert families.recognise_family(safe_load(f)["G_ema"]) == families.ADA
    extra = ["--adapted", "adapted.pkl"] if stage == "unlearn" else ["--fisher-samples", "4"]
    kwargs = _dry_run_loss_kwargs(root, flavour, "--resume", "pre.pkl", "--mode", stage, *extra)
    (root / "loss_kwargs.json").write_text(json.dumps(kwargs))
    proc = _in_checkout(root, "reference_loop.py", "run", flavour, "loss_kwargs.json", REPO_ROOT)
    report = json.loads(proc.stdout.strip().splitlines()[-1])

    assert Path(report["torch_utils"]).parent.parent == root  # the checkout's torch_utils came first
    assert report["project_modules"] == []  # nothing of this project's torch_utils/dnnlib was imported
    assert report["G_module"] == "training.networks"
    assert report["started_at_G_ema"] and report["differs_from_G"]
    if stage == "adapt":
        assert report["anchor_at_G_ema"] is True
    assert report["phases"] == {phase: True for phase in PHASES}

