#!/usr/bin/env python3
"""Pretrain the bundled MNIST generator with the project's training loop (resumable; see
`stylegan_unlearn.mnist.pretrain`).

    OMP_NUM_THREADS=1 python3 scripts/pretrain_mnist_generator.py --outdir runs/mnist-pretrain --kimg 300
    python3 scripts/pretrain_mnist_generator.py --outdir runs/mnist-pretrain \
        --export stylegan_unlearn/assets/mnist_generator.pkl --export-snapshot best
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from stylegan_unlearn.mnist import pretrain  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--outdir", required=True)
    parser.add_argument("--kimg", type=float, default=300, help="train until this many thousand reals were shown")
    parser.add_argument("--chunk-kimg", type=float, default=4, help="snapshot and score every this many kimg")
    parser.add_argument("--init", help="network pkl whose weights start a new run (default: random weights)")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    parser.add_argument("--export", help="write a snapshot as a network pkl (+ .json record) here and exit")
    parser.add_argument("--export-snapshot", default="best", help="'best', 'latest' or a snapshot file name")
    parser.add_argument("--note", default="", help="free text stored in the exported record")
    for key, value in pretrain.DEFAULTS.items():
        parser.add_argument("--" + key.replace("_", "-"), type=type(value), default=value)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.export:
        info = pretrain.export(args.outdir, args.export, args.export_snapshot, note=args.note)
        print(json.dumps({k: info[k] for k in ("snapshot", "kimg", "coverage")}, indent=1))
        return
    cfg = {key: getattr(args, key) for key in pretrain.DEFAULTS}
    pretrain.pretrain(args.outdir, args.kimg, args.chunk_kimg, init=args.init, cfg=cfg)


if __name__ == "__main__":
    main()
