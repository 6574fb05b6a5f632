#!/usr/bin/env python3
"""Sample sheet of a digit of the MNIST benchmark: the same 40 seeds from the pretrained generator and from
chosen rows of `benchmarks/results/mnist.json`, one 4×10 block each, top to bottom (not part of CI; seconds).

    python3 benchmarks/mnist_sample_sheet.py --digit 1 --rows atu-nl2-k5,atu-el2-k1,finetune,atu-el2-official-k5
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from stylegan_unlearn.images import grid, save_png  # noqa: E402
from stylegan_unlearn.mnist.coverage import generator_digits  # noqa: E402
from stylegan_unlearn.pkl import NETWORK_KEYS, load_networks  # noqa: E402

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
ROWS, COLUMNS = 4, 10


def block(network: str, first_seed: int) -> np.ndarray:
    """ROWS × COLUMNS samples of a network's G_ema as one HW1 uint8 image."""
    images = generator_digits(load_networks(network, NETWORK_KEYS)["G_ema"], range(first_seed, first_seed + ROWS * COLUMNS))
    return grid(images.transpose(0, 2, 3, 1), cols=COLUMNS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--digit", type=int, required=True)
    parser.add_argument("--rows", required=True, help="comma-separated row names of mnist.json, e.g. atu-nl2-k5")
    parser.add_argument("--first-seed", type=int, default=100000, help="the evaluation seeds start here")
    parser.add_argument("--results", default=RESULTS_DIR)
    args = parser.parse_args()
    with open(os.path.join(args.results, "mnist.json")) as f:
        result = json.load(f)
    digit = result["digits"].get(str(args.digit))
    if digit is None:
        parser.error(f"digit {args.digit} is not in mnist.json (measured: {', '.join(result['digits']) or 'none'})")
    networks = {row["name"]: row["network"] for row in digit["rows"]}
    wanted = [name.strip() for name in args.rows.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in networks]
    if unknown:
        parser.error(f"unknown row(s) {unknown}; the digit has {', '.join(networks)}")
    parts = []
    for network in [result["network"]] + [networks[name] for name in wanted]:
        sheet = block(network, args.first_seed)
        parts += [sheet, np.full((6,) + sheet.shape[1:], 128, np.uint8)]
    out = os.path.join(args.results, f"mnist_samples_digit{args.digit}.png")
    save_png(np.concatenate(parts[:-1]), out)
    print(f"wrote {out}: pretrained, then {', '.join(wanted)}")


if __name__ == "__main__":
    main()
