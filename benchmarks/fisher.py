"""Fisher estimate: vectorised per-sample gradients (vmap) vs the per-sample loop.

Prints the time of each method for the same N samples and their speed ratio (goal ≥ 5×), and
checks that they agree. Not a test: nothing is asserted.

    python benchmarks/fisher.py --res 32 --samples 32 --device cpu
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from anywhere

from stylegan_unlearn.method.fisher import compute_fisher
from stylegan_unlearn.networks.stylegan2 import Discriminator, Generator


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--res", type=int, default=32)
    parser.add_argument("--cbase", type=int, default=2048)
    parser.add_argument("--cmax", type=int, default=64)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--chunk", type=int, default=16)
    parser.add_argument("--params", default="synthesis", choices=["synthesis", "all"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    G = Generator(z_dim=args.cmax, c_dim=0, w_dim=args.cmax, img_resolution=args.res, img_channels=3,
                  mapping_kwargs=dict(num_layers=8),
                  synthesis_kwargs=dict(channel_base=args.cbase, channel_max=args.cmax)).to(device)
    D = Discriminator(c_dim=0, img_resolution=args.res, img_channels=3, channel_base=args.cbase,
                      channel_max=args.cmax).to(device)
    print(f"device {device}, {args.res}px, G {sum(p.numel() for p in G.parameters()):,} params, "
          f"N={args.samples}, chunk={args.chunk}, params={args.params}, torch threads {torch.get_num_threads()}")

    def timed(method):
        compute_fisher(G, D, params=args.params, num_samples=min(args.chunk, args.samples), chunk=args.chunk,
                       method=method)  # warm-up
        best, result = float("inf"), None
        for _ in range(3):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            result = compute_fisher(G, D, params=args.params, num_samples=args.samples, chunk=args.chunk,
                                    method=method)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            best = min(best, time.perf_counter() - start)
        return best, result

    t_vmap, f_vmap = timed("vmap")
    t_loop, f_loop = timed("loop")
    worst = max(float(((f_vmap[n] - f_loop[n]).abs().max() / f_loop[n].abs().max().clamp_min(1e-30)))
                for n in f_vmap)
    print(f"vmap {t_vmap * 1e3:.1f} ms, loop {t_loop * 1e3:.1f} ms, speed-up {t_loop / t_vmap:.2f}x, "
          f"max relative difference {worst:.2e}")


if __name__ == "__main__":
    main()
