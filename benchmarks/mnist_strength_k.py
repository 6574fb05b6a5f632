#!/usr/bin/env python3
"""EL2 strength against K on the MNIST benchmark's own θ_N (not part of CI; minutes per row on a CPU).

Reuses a finished `benchmarks/mnist_unlearn.py` digit (its samples, its K adapted models and its
pretrained generator) and runs extra Stage-2 rows at the official 16 kimg, each with its own K, α and
weight under the default `relative` distance, then evaluates them with the benchmark's pretrained
model and fine-tune control on the same fixed seeds. The question it answers: does the EL2 push fade
at K > 1 because d grows faster there (its unit ‖θ_G − μ‖² shrinks as the K models' noise averages
out), and does a slower decay (smaller α at the same starting push w·α) help at both K?

    python3 benchmarks/mnist_strength_k.py --digit 1 --workdir runs/mnist-benchmark --rows k1-a0.02-w50,k5-a0.02-w50
"""
import argparse
import glob
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from stylegan_unlearn.fileio import atomic_write_text  # noqa: E402
from stylegan_unlearn.mnist import pipeline  # noqa: E402

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def parse_row(name: str) -> Tuple[int, float, float, str]:
    """'k5-a0.02-w50' -> (5, 0.02, 50.0, 'relative'); 'k1-a0.1-w10-moved' -> (1, 0.1, 10.0, 'moved')."""
    try:
        k, a, w, *rest = name.split("-")
        assert k[0] == "k" and a[0] == "a" and w[0] == "w" and len(rest) <= 1
        return int(k[1:]), float(a[1:]), float(w[1:]), rest[0] if rest else "relative"
    except (ValueError, AssertionError, IndexError):
        raise argparse.ArgumentTypeError(f"a row is named like k5-a0.02-w50[-DISTANCE], got '{name}'") from None


def _finished_network(outdir: str) -> str:
    for final in sorted(glob.glob(os.path.join(outdir, "*", "final.json"))):
        with open(final) as f:
            path = json.load(f).get("last_snapshot")
        if path and os.path.isfile(path):
            return path
    return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--digit", type=int, default=1)
    parser.add_argument("--workdir", default="runs/mnist-benchmark", help="the mnist_unlearn.py --workdir")
    parser.add_argument("--rows", required=True, help="comma-separated rows like k1-a0.02-w50")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--results", default=RESULTS_DIR)
    args = parser.parse_args()
    rows = [(name, *parse_row(name)) for name in args.rows.split(",") if name]
    root = os.path.join(args.workdir, f"digit{args.digit}")
    samples = os.path.join(root, "samples")
    adapted = [_finished_network(os.path.join(root, f"adapt{i}")) for i in range(max(row[1] for row in rows))]
    finetune = _finished_network(os.path.join(root, "finetune"))
    if not all(adapted) or not finetune:
        parser.error(f"{root} lacks finished adapt0..{len(adapted) - 1} or finetune runs; run mnist_unlearn.py first")
    network = pipeline.check_assets(None)
    settings = pipeline.Settings(digit=args.digit, jobs=args.jobs)
    log = lambda msg: print(msg, flush=True)  # noqa: E731

    def one(row) -> Tuple[str, str, float]:
        name, k, alpha, weight, distance = row
        outdir = os.path.join(root, f"strength-{name}")
        done = _finished_network(outdir)
        if done:
            return name, done, 0.0
        run = pipeline.Settings(**dict(pipeline.settings_dict(settings), alpha=alpha, repulsion_weight=weight,
                                          distance=distance))
        started = time.time()
        path = pipeline.unlearn(network, os.path.join(samples, "positives.zip"), adapted[:k], run, outdir, log=log)
        return name, path, round(time.time() - started, 1)

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        trained = list(pool.map(one, rows))
    networks = [("original", network), ("finetune", finetune)] + [(name, path) for name, path, _ in trained]
    reference = pipeline.write_reference(args.workdir, args.digit)
    summary = pipeline.evaluate(networks, settings, reference, os.path.join(root, "eval-strength"))
    original = pipeline.result_row(summary, "original", args.digit)
    result_rows: List[Dict] = []
    for (name, k, alpha, weight, distance), (_n, path, seconds) in zip(rows, trained):
        got = pipeline.result_row(summary, name, args.digit)
        result_rows.append(dict(name=name, k=k, alpha=alpha, weight=weight, distance=distance, network=path, seconds=seconds,
                                pul=got["pul"], fid=got["fid"], fid_ratio=got["fid"] / original["fid"],
                                digit_share=got["digit_share"]))
    control = pipeline.result_row(summary, "finetune", args.digit)
    result = dict(digit=args.digit, num_eval_samples=summary["num_samples"], original_fid=original["fid"],
                  finetune=dict(pul=control["pul"], fid_ratio=control["fid"] / original["fid"]), rows=result_rows)
    lines = [f"# EL2 strength against K (MNIST digit {args.digit}, Stage 2 16 kimg, {summary['num_samples']} seeds)",
             "", "Relative distance; θ_N = the benchmark's adapted models; fine-tune control: PUL "
             f"{control['pul']:.1f} % at FID ×{control['fid'] / original['fid']:.2f}.", "",
             "| row | distance | K | α | w | PUL % | FID ratio |", "|---|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['name']} | {r['distance']} | {r['k']} | {r['alpha']:g} | {r['weight']:g} | {r['pul']:.1f} | {r['fid_ratio']:.2f} |"
              for r in result_rows]
    os.makedirs(args.results, exist_ok=True)
    stem = os.path.join(args.results, f"mnist_strength_k_digit{args.digit}")
    atomic_write_text(stem + ".json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(stem + ".md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
