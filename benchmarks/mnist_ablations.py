#!/usr/bin/env python3
"""Ablations behind the Adapt-then-Unlearn defaults, on one MNIST digit (not part of CI; hours on a CPU).

Stage 1 rows adapt θ_N to 100 of the generator's own samples of the digit for 32 kimg (the official
length) under one setting each, and report the share of the digit among θ_N's samples at every
snapshot. Stage 2 rows fine-tune the generator for 16 kimg on its other samples, repelled from the θ_N
of the `--stage2-theta` Stage 1 row (K = 1), under one repulsion setting each, and report PUL and FID
(judge features, vs all real digits without the class) on fixed seeds, at the end and along the way.
Every training is cached in `--workdir` (a rerun reuses finished runs), and the results are rewritten
after each row, so the grid can be stopped and continued.

    python3 benchmarks/mnist_ablations.py --digit 1 --network old_generator.pkl
"""
import argparse
import json
import os
import sys
import time
from typing import Dict

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from stylegan_unlearn.ranges import parse_int_ranges  # noqa: E402
from stylegan_unlearn.loop.snapshots import list_snapshots  # noqa: E402
from stylegan_unlearn.mnist import pipeline  # noqa: E402

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

# The bundled model was trained with R1 γ 1 and DiffAugment on everything D sees, without path length or
# style mixing; every row keeps path length and style mixing off (see pipeline.MODEL_OPTIONS).
COMMON = dict(pl_weight=0.0, style_mixing=0.0, workers=0)
STAGE1 = {
    "official": {},  # the recipe: R1 γ 10, no augmentation, λ 5e8
    "gamma1": dict(gamma=1.0),  # the pretrained model's own R1 γ
    "gamma1-lambda0": dict(gamma=1.0, ewc_lambda=0.0),  # no EWC at all
}
STAGE2_BASE = dict(gamma=1.0, **pipeline.PRETRAINING_AUGMENTATION)
STAGE2 = {
    "finetune": dict(repulsion_weight=0.0),
    "official-el2": dict(distance="official", repulsion="el2", repulsion_weight=100.0, alpha=1.0),
    "tensor-mean-el2": dict(distance="tensor-mean", repulsion="el2", repulsion_weight=100.0, alpha=1.0),
    "relative-el2-a1-w1": dict(distance="relative", repulsion="el2", repulsion_weight=1.0, alpha=1.0),
    "relative-el2-a1-w10": dict(distance="relative", repulsion="el2", repulsion_weight=10.0, alpha=1.0),
    "relative-el2-a0.1-w10": dict(distance="relative", repulsion="el2", repulsion_weight=10.0, alpha=0.1),
    "relative-el2-a0.05-w20": dict(distance="relative", repulsion="el2", repulsion_weight=20.0, alpha=0.05),
    "relative-el2-a0.1-w30": dict(distance="relative", repulsion="el2", repulsion_weight=30.0, alpha=0.1),
    "relative-nl2-w1": dict(distance="relative", repulsion="nl2", repulsion_weight=1.0),
    "relative-nl2-w0.1": dict(distance="relative", repulsion="nl2", repulsion_weight=0.1),
    "relative-nl2-w0.3": dict(distance="relative", repulsion="nl2", repulsion_weight=0.3),
    "relative-il2-w1": dict(distance="relative", repulsion="il2", repulsion_weight=1.0),
    "relative-il2-w3": dict(distance="relative", repulsion="il2", repulsion_weight=3.0),
}


def _run(mode: str, outdir: str, options: Dict, log) -> str:
    """One cached training (child process); returns its run directory."""
    network = pipeline.finished_network(outdir)
    if network is None:
        network = pipeline.train(mode, outdir, options, pipeline.Settings(threads=1), log=log)
    return os.path.dirname(network)


def stage1_row(name: str, args: Dict, network: str, negatives: str, digit: int, workdir: str, log) -> Dict:
    run_dir = _run("adapt", os.path.join(workdir, f"stage1-{name}"),
                   dict(data=negatives, resume=network, snap=5, **COMMON, **args), log)
    snaps = list_snapshots(run_dir)
    trajectory = [dict(kimg=kimg, share=round(pipeline.adapted_share(p, digit), 4)) for kimg, p in snaps]
    return dict(name=name, args=args, run_dir=run_dir, network=snaps[-1][1], trajectory=trajectory,
                share=trajectory[-1]["share"])


def stage2_row(name: str, args: Dict, network: str, positives: str, adapted: str, digit: int, workdir: str,
               reference: str, eval_seeds: str, log) -> Dict:
    run_dir = _run("unlearn", os.path.join(workdir, f"stage2-{name}"),
                   dict(data=positives, resume=network, adapted=[adapted], snap=2, **COMMON,
                        **dict(STAGE2_BASE, **args)), log)
    snaps = [(kimg, p) for kimg, p in list_snapshots(run_dir) if kimg > 0]
    settings = pipeline.Settings(digit=digit, eval_seeds=eval_seeds)
    networks = [("original", network)] + [(f"kimg{kimg:g}", p) for kimg, p in snaps]
    summary = pipeline.evaluate_reusing(networks, settings, reference, os.path.join(run_dir, "eval"))
    original = pipeline.result_row(summary, "original", digit)
    trajectory = []
    for kimg, _path in snaps:
        row = pipeline.result_row(summary, f"kimg{kimg:g}", digit)
        trajectory.append(dict(kimg=kimg, pul=row["pul"], fid=row["fid"],
                               fid_ratio=row["fid"] / original["fid"], digit_share=row["digit_share"]))
    return dict(name=name, args=args, run_dir=run_dir, original_fid=original["fid"],
                original_share=original["digit_share"], **{k: trajectory[-1][k] for k in ("pul", "fid", "fid_ratio")},
                trajectory=trajectory)


def _flags(options: Dict) -> str:
    """Options as the command-line flags they stand for, e.g. `--repulsion-weight 10`."""
    return " ".join(f"--{k.replace('_', '-')} {v:g}" if isinstance(v, float) else f"--{k.replace('_', '-')} {v}"
                    for k, v in options.items())


def markdown(result: Dict) -> str:
    lines = ["# MNIST ablations (digit {digit})".format(**result), "",
             f"Generator: `{result['network_note']}`. Judge: the bundled LeNet. Stage 1: 100 negatives, 32 kimg. "
             f"Stage 2: {result['positives']} positives, 16 kimg, K = 1, θ_N = Stage 1 row "
             f"`{result['stage2_theta']}`; common Stage 2 options `{_flags(STAGE2_BASE)}`; PUL and FID on "
             f"{result['num_eval_samples']} fixed seeds (FID in judge features vs real digits without the class).",
             "", "## Stage 1: share of the digit among θ_N's samples", "",
             "| row | options | 8 kimg | 16 kimg | 24 kimg | 32 kimg |", "|---|---|---:|---:|---:|---:|"]
    for row in result["stage1"]:
        shares = {round(t["kimg"]): t["share"] for t in row["trajectory"]}
        cells = " | ".join(f"{shares[k]:.1%}" if k in shares else "–" for k in (8, 16, 24, 32))
        lines.append(f"| {row['name']} | `{_flags(row['args']) or '(recipe defaults)'}` | {cells} |")
    lines += ["", "## Stage 2: PUL % / FID ratio to the pretrained model", "",
              "| row | options | PUL % (16 kimg) | FID ratio | along the run (kimg: PUL/ratio) |", "|---|---|---:|---:|---|"]
    for row in result["stage2"]:
        along = ", ".join(f"{t['kimg']:g}: {t['pul']:.0f}/{t['fid_ratio']:.2f}" for t in row["trajectory"])
        lines.append(f"| {row['name']} | `{_flags(row['args'])}` | {row['pul']:.1f} | {row['fid_ratio']:.2f} | {along} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--digit", type=int, default=1)
    parser.add_argument("--network", default=None, help="generator pkl [default: the bundled one]")
    parser.add_argument("--network-note", default=None, help="how to describe the generator in the results")
    parser.add_argument("--workdir", default="runs/mnist-ablations")
    parser.add_argument("--results", default=RESULTS_DIR)
    parser.add_argument("--eval-seeds", default="100000-104999")
    parser.add_argument("--stage2-theta", default="gamma1", choices=sorted(STAGE1))
    parser.add_argument("--stage1", default=",".join(STAGE1))
    parser.add_argument("--stage2", default=",".join(STAGE2))
    args = parser.parse_args()
    network = pipeline.check_assets(args.network)
    workdir = os.path.join(args.workdir, f"digit{args.digit}")
    os.makedirs(workdir, exist_ok=True)
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    settings = pipeline.Settings(digit=args.digit, collect_seeds="0-4999", k=1)  # one θ_N per Stage 1 row
    samples = os.path.join(workdir, "samples")
    if not os.path.isfile(os.path.join(samples, "collect.json")):
        settings.negatives_per_model = 100
        pipeline.collect(network, settings, samples)
    with open(os.path.join(samples, "collect.json")) as f:
        collected = json.load(f)
    reference = pipeline.write_reference(args.workdir, args.digit)
    name = f"mnist_ablations_digit{args.digit}"
    result = dict(digit=args.digit, network=os.path.abspath(network), network_note=args.network_note or network,
                  positives=collected["positives"]["count"], stage2_theta=args.stage2_theta,
                  num_eval_samples=len(parse_int_ranges(args.eval_seeds)),
                  stage1=[], stage2=[])

    def save() -> None:
        pipeline.write_results(args.results, name, result, markdown(result))

    started = time.time()
    wanted1 = [n for n in args.stage1.split(",") if n]
    for row_name in dict.fromkeys(wanted1 + [args.stage2_theta]):
        log(f"== stage 1 {row_name}")
        result["stage1"].append(stage1_row(row_name, STAGE1[row_name], network, pipeline.negatives_split(samples, 0),
                                           args.digit, workdir, log))
        save()
    theta = next(r["network"] for r in result["stage1"] if r["name"] == args.stage2_theta)
    for row_name in [n for n in args.stage2.split(",") if n]:
        log(f"== stage 2 {row_name}")
        result["stage2"].append(stage2_row(row_name, STAGE2[row_name], network,
                                           os.path.join(samples, "positives.zip"), theta, args.digit, workdir,
                                           reference, args.eval_seeds, log))
        save()
    print(markdown(result))
    print(f"done in {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
