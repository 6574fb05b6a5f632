"""Step time of EWCLoss and RepulsionLoss (K adapted networks) relative to StyleGAN2Loss.

Same network, batch and phases for every loss; prints milliseconds per Gmain phase and per full
training iteration (Gmain + Dmain every step, Greg every 4, Dreg every 16, as the reference lazy
regularisation does) and the ratios. Goal: ≤ 1.05× the plain loss. Not a test: nothing asserted.

    python benchmarks/loss_step.py --res 64 --batch 8 --device cpu
"""
import argparse
import os
import sys
import copy
import statistics
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from anywhere

import training_hooks
from stylegan_unlearn.networks.stylegan2 import Discriminator, Generator


def build(res: int, cbase: int, cmax: int, device: torch.device):
    torch.manual_seed(0)
    G = Generator(z_dim=cmax, c_dim=0, w_dim=cmax, img_resolution=res, img_channels=3,
                  mapping_kwargs=dict(num_layers=8), synthesis_kwargs=dict(channel_base=cbase, channel_max=cmax))
    D = Discriminator(c_dim=0, img_resolution=res, img_channels=3, channel_base=cbase, channel_max=cmax)
    return G.train().requires_grad_(False).to(device), D.train().requires_grad_(False).to(device)


def adapted_copies(G, k):
    nets = []
    for _ in range(k):
        other = copy.deepcopy(G)
        with torch.no_grad():
            for p in other.parameters():
                p.add_(torch.randn_like(p) * 0.01)
        nets.append(other)
    return nets


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_phases(loss, G, D, phases, batch, res, device, repeats):
    real = torch.randn(batch, 3, res, res, device=device)
    c = torch.zeros(batch, 0, device=device)
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        for phase, gain in phases:
            module = G if phase.startswith("G") else D
            module.requires_grad_(True)
            loss.accumulate_gradients(phase, real, c, torch.randn(batch, G.z_dim, device=device), c, True, gain)
            module.requires_grad_(False)
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--res", type=int, default=64)
    parser.add_argument("--cbase", type=int, default=4096)
    parser.add_argument("--cmax", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--k", type=int, default=5, help="number of adapted networks for RepulsionLoss")
    parser.add_argument("--repeats", type=int, default=12)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    G, D = build(args.res, args.cbase, args.cmax, device)
    print(f"device {device}, {args.res}px, G {sum(p.numel() for p in G.parameters()):,} params, batch {args.batch}, "
          f"K={args.k}, torch threads {torch.get_num_threads()}")
    losses = {
        "StyleGAN2Loss": training_hooks.StyleGAN2Loss(device, G.mapping, G.synthesis, D),
        "EWCLoss": training_hooks.EWCLoss(device, G.mapping, G.synthesis, D, fisher_samples=4),
        "RepulsionLoss(all)": training_hooks.RepulsionLoss(device, G.mapping, G.synthesis, D,
                                                           adapted=adapted_copies(G, args.k)),
    }
    gmain = [("Gmain", 1)]
    # One lazy-regularisation cycle of 16 iterations, averaged per iteration.
    cycle = []
    for i in range(16):
        cycle += [("Gmain", 1)] + ([("Greg", 4)] if i % 4 == 0 else [])
        cycle += [("Dmain", 1)] + ([("Dreg", 16)] if i % 16 == 0 else [])
    for loss in losses.values():  # warm-up
        time_phases(loss, G, D, gmain, args.batch, args.res, device, 2)
        time_phases(loss, G, D, cycle[:4], args.batch, args.res, device, 1)
    # Round-robin single measurements and keep each loss's fastest: load spikes on a shared machine
    # then hit every loss alike instead of whichever happened to run at the time.
    samples = {name: ([], []) for name in losses}
    for _ in range(args.repeats):
        for name, loss in losses.items():
            samples[name][0].append(time_phases(loss, G, D, gmain, args.batch, args.res, device, 1))
    for _ in range(max(1, args.repeats // 4)):
        for name, loss in losses.items():
            samples[name][1].append(time_phases(loss, G, D, cycle, args.batch, args.res, device, 1) / 16)
    results = {name: (min(g), min(it)) for name, (g, it) in samples.items()}
    base_g, base_it = results["StyleGAN2Loss"]
    print(f"{'loss':<22}{'Gmain ms':>10}{'ratio':>8}{'iter ms':>10}{'ratio':>8}")
    for name, (g, it) in results.items():
        print(f"{name:<22}{g:>10.2f}{g / base_g:>8.3f}{it:>10.2f}{it / base_it:>8.3f}")
    # The penalty terms alone (forward + backward), the only extra work the plugins do per step.
    G.requires_grad_(True)
    for name in ("EWCLoss", "RepulsionLoss(all)"):
        penalty = losses[name].generator_penalty
        times = []
        for _ in range(20):
            sync(device)
            start = time.perf_counter()
            penalty().backward()
            sync(device)
            times.append(time.perf_counter() - start)
        cost = min(times) * 1e3
        print(f"penalty only {name:<20}{cost:>8.3f} ms = {cost / base_g:.3f} of a plain Gmain phase")


if __name__ == "__main__":
    main()
