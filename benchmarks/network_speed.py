"""Training-iteration time of the networks module against an earlier revision of it, side by side.

Both versions get an MNIST-size StyleGAN2 (32x32x1, z/w 64, 2 mapping layers, channel_base 1024,
channel_max 64, like `stylegan_unlearn/assets/mnist_generator.pkl`) with the same weights, and
run the same lazily regularised training iterations: Gmain, Greg every 4, Dmain, Dreg every 16,
each followed by an Adam step. One round is a full 16-iteration cycle for each version, with the
versions alternating iteration by iteration (in alternating order), so load spikes on a shared
machine hit both alike; each round gives one new/old ratio. Prints ms per iteration and the median ratio with its spread.
Not a test: nothing is asserted.

    OMP_NUM_THREADS=1 python benchmarks/network_speed.py --rounds 6
"""
import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
from typing import Dict, List

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # run from anywhere

import training_hooks  # noqa: E402
from stylegan_unlearn.networks import stylegan2 as current_networks  # noqa: E402

NETWORKS_PATH = "stylegan_unlearn/networks/stylegan2.py"
# The last revision with the networks module that issue 11 replaced.
DEFAULT_OLD_REV = "60181e52d0be4fddf1a6e8351f804e42514ba6e5"
RESOLUTION, CHANNELS, LATENT = 32, 1, 64
G_REG_INTERVAL, D_REG_INTERVAL = 4, 16


def module_at_revision(rev: str, workdir: str) -> types.ModuleType:
    """Import the networks module as it was at git revision `rev` (written to `workdir`, which must outlive it)."""
    try:
        source = subprocess.run(["git", "-C", REPO, "show", f"{rev}:{NETWORKS_PATH}"], check=True,
                                capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        raise SystemExit(f"cannot read {NETWORKS_PATH} at revision {rev!r}: {err}")
    name = f"_networks_at_{rev[:12]}"
    path = os.path.join(workdir, name + ".py")
    with open(path, "w", encoding="utf-8") as f:
        f.write(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # persistent classes look their module up here
    spec.loader.exec_module(module)
    return module


def mnist_size_networks(networks: types.ModuleType, state=None):
    """G and D of the bundled MNIST generator's shape, optionally loaded with `state` = (G_sd, D_sd)."""
    G = networks.Generator(z_dim=LATENT, c_dim=0, w_dim=LATENT, img_resolution=RESOLUTION, img_channels=CHANNELS,
                           mapping_kwargs=dict(num_layers=2),
                           synthesis_kwargs=dict(channel_base=1024, channel_max=64, num_fp16_res=0, conv_clamp=None))
    D = networks.Discriminator(c_dim=0, img_resolution=RESOLUTION, img_channels=CHANNELS, channel_base=1024,
                               channel_max=64, num_fp16_res=0, conv_clamp=None,
                               epilogue_kwargs=dict(mbstd_group_size=4))
    if state is not None:
        G.load_state_dict(state[0])
        D.load_state_dict(state[1])
    return G.train().requires_grad_(False), D.train().requires_grad_(False)


class Trainer:
    """The reference's lazily regularised phases and Adam steps for one G/D pair."""

    def __init__(self, G: torch.nn.Module, D: torch.nn.Module, batch: int):
        self.G, self.D, self.batch = G, D, batch
        self.loss = training_hooks.StyleGAN2Loss("cpu", G.mapping, G.synthesis, D)
        self.phases = []
        for name, module, interval in (("G", G, G_REG_INTERVAL), ("D", D, D_REG_INTERVAL)):
            ratio = interval / (interval + 1)  # the reference's lazy-regularisation Adam adjustment
            opt = torch.optim.Adam(module.parameters(), lr=0.0025 * ratio, betas=(0.0, 0.99 ** ratio), eps=1e-8)
            self.phases += [(name + "main", module, opt, 1), (name + "reg", module, opt, interval)]  # G first
        self.real = torch.rand([batch, CHANNELS, RESOLUTION, RESOLUTION]) * 2 - 1
        self.labels = torch.zeros([batch, 0])

    def iteration(self, index: int) -> None:
        for name, module, opt, interval in self.phases:
            if index % interval != 0:
                continue
            opt.zero_grad(set_to_none=True)
            module.requires_grad_(True)
            z = torch.randn([self.batch, self.G.z_dim])
            self.loss.accumulate_gradients(name, self.real, self.labels, z, self.labels, sync=True, gain=interval)
            module.requires_grad_(False)
            opt.step()


def timed_iteration(trainer: Trainer, index: int) -> float:
    start = time.perf_counter()
    trainer.iteration(index)
    return time.perf_counter() - start


def output_difference(old: Trainer, new: Trainer) -> float:
    """Largest |G_old - G_new| on one batch (eval mode, const noise): both must do the same maths."""
    z = torch.randn([4, LATENT])
    with torch.no_grad():
        images = [t.G.eval()(z, None, noise_mode="const") for t in (old, new)]
    old.G.train(), new.G.train()
    return float((images[0] - images[1]).abs().max())


def round_robin(trainers: Dict[str, Trainer], rounds: int) -> Dict[str, List[float]]:
    """Seconds per 16-iteration cycle for each version; the versions alternate iteration by iteration."""
    names = list(trainers)
    samples: Dict[str, List[float]] = {name: [] for name in names}
    for r in range(rounds):
        totals = dict.fromkeys(names, 0.0)
        for index in range(D_REG_INTERVAL):
            for name in names if (r + index) % 2 == 0 else names[::-1]:
                torch.manual_seed(r * D_REG_INTERVAL + index)
                totals[name] += timed_iteration(trainers[name], index)
        for name in names:
            samples[name].append(totals[name])
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-rev", default=DEFAULT_OLD_REV, help="git revision of the old networks module")
    parser.add_argument("--rounds", type=int, default=6, help="16-iteration cycles per version")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.rounds < 1 or args.batch < 4 or args.batch % 4:
        raise SystemExit("--rounds must be >= 1 and --batch a multiple of 4 (the minibatch-std group)")
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as workdir:
        old_networks = module_at_revision(args.old_rev, workdir)
        torch.manual_seed(0)
        G_new, D_new = mnist_size_networks(current_networks)
        state = (G_new.state_dict(), D_new.state_dict())
        trainers = {"old": Trainer(*mnist_size_networks(old_networks, state), args.batch),
                    "new": Trainer(G_new, D_new, args.batch)}
        print(f"old = {args.old_rev[:12]}:{NETWORKS_PATH}, new = working tree; {RESOLUTION}px, batch {args.batch}, "
              f"{torch.get_num_threads()} thread(s), G {sum(p.numel() for p in G_new.parameters()):,} params")
        print(f"same weights, max |G_new - G_old| = {output_difference(trainers['old'], trainers['new']):.2e}")
        for trainer in trainers.values():  # warm-up: allocator, lazily built filters and caches
            trainer.iteration(0)
            trainer.iteration(1)
        samples = round_robin(trainers, args.rounds)

    ratios = sorted(new / old for new, old in zip(samples["new"], samples["old"]))
    for name, times in samples.items():
        per_iter = [1e3 * t / D_REG_INTERVAL for t in times]
        print(f"{name}: {statistics.median(per_iter):8.1f} ms/iteration (min {min(per_iter):.1f}, "
              f"max {max(per_iter):.1f})")
    print(f"new/old: median {statistics.median(ratios):.3f} (per-round {ratios[0]:.3f} .. {ratios[-1]:.3f}, "
          f"{len(ratios)} rounds); total {sum(samples['new']) / sum(samples['old']):.3f}")


if __name__ == "__main__":
    main()
