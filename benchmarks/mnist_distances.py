#!/usr/bin/env python3
"""Where Stage 2 took θ: the relative and the task distance of finished runs' G_ema (not in CI; seconds).

For a finished `benchmarks/mnist_unlearn.py` digit, prints for each named run the `relative` distance
‖θ − μ‖² / ‖θ_G − μ‖² and the `task` distance s² (s = progress along θ_G − μ), both over all generator
parameters against the digit's K adapted models. d − s² is the part of the move across the task
direction, which the ℓ2 repulsion counts but which does not undo Stage 1.

    python3 benchmarks/mnist_distances.py --workdir runs/mnist-benchmark --digit 4 atu-nl2-k5 finetune
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from stylegan_unlearn.method.params import AnchorSet, select_params  # noqa: E402
from stylegan_unlearn.method.penalties import load_adapted_generator  # noqa: E402
from stylegan_unlearn.mnist import pipeline  # noqa: E402


def _tensors(generator, names):
    params = dict(generator.named_parameters())
    return [params[n].detach() for n in names]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default="runs/mnist-benchmark", help="the mnist_unlearn.py --workdir")
    parser.add_argument("--digit", type=int, default=1)
    parser.add_argument("--k", type=int, default=5, help="adapted models adapt0..K-1 that define μ")
    parser.add_argument("runs", nargs="+", help="run folders under the digit's folder, e.g. atu-nl2-k5")
    args = parser.parse_args()
    root = os.path.join(args.workdir, f"digit{args.digit}")
    adapted = [pipeline.finished_network(os.path.join(root, f"adapt{i}")) for i in range(args.k)]
    if not all(adapted):
        parser.error(f"{root} lacks finished adapt0..{args.k - 1} runs; run mnist_unlearn.py first")
    pretrained = load_adapted_generator(pipeline.check_assets(None))
    names = [n for n, _ in select_params(pretrained, "all")]
    start = _tensors(pretrained, names)
    anchors = [_tensors(load_adapted_generator(path), names) for path in adapted]
    relative = AnchorSet(anchors, "relative", reference=start)
    task = AnchorSet(anchors, "task", reference=start)
    print("| run | relative d | task s² | across (d − s²) |\n|---|---:|---:|---:|")
    for run in args.runs:
        network = pipeline.finished_network(os.path.join(root, run))
        if not network:
            parser.error(f"{os.path.join(root, run)} has no finished network")
        theta = _tensors(load_adapted_generator(network), names)
        d, s2 = float(relative.distance(theta)), float(task.distance(theta))
        print(f"| {run} | {d:.2f} | {s2:.2f} | {d - s2:.2f} |")


if __name__ == "__main__":
    main()
