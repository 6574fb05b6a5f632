#!/usr/bin/env python3
"""Repulsion form and strength against K on the MNIST benchmark's own θ_N (not part of CI; minutes a row).

Reuses a finished `benchmarks/mnist_unlearn.py` digit (its samples, its K adapted models and its
pretrained generator) and runs extra Stage-2 rows at the official 16 kimg, each with its own K, form,
weight, α and distance (EL2 on `relative` unless the row names others), then evaluates them with
the benchmark's pretrained model and fine-tune control on the same fixed seeds. The questions it
answers: does the EL2 push fade at K > 1 because d grows faster there (its unit ‖θ_G − μ‖² shrinks
as the K models' noise averages out); does a slower decay (smaller α at the same starting push w·α)
help at both K; and how do the other forms compare on the same θ_N? Rows can also change the Stage-2
GAN options (augmentation, R1 γ, learning rates, the G_ema half-life) and the positives, to find what
limits plain fine-tuning. The fine-tune control is trained here when the digit lacks one.

    python3 benchmarks/mnist_strength_k.py --digit 1 --workdir runs/mnist-benchmark --rows k1-a0.02-w50,k5-a0.02-w50
"""
import argparse
import dataclasses
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from stylegan_unlearn.method.params import DISTANCE_MODES, PARAM_MODES  # noqa: E402
from stylegan_unlearn.mnist import pipeline  # noqa: E402

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


FORMS = ("el2", "nl2", "il2")
# Stage-2 GAN options a row can change (name part -> training option): 'noaug', 'diffaug' (the pretraining's
# DiffAugment at p 1), 'r10' (R1 γ), 'glr0.004', 'dlr0.004',
# 'ema1' (G_ema half-life in kimg).
GAN_PREFIXES = (("glr", "glr"), ("dlr", "dlr"), ("ema", "ema_kimg"), ("r", "gamma"))


def _gan_option(part: str) -> Optional[Tuple[str, float]]:
    """('gamma', 10.0) for the row part 'r10'; None when the part names no GAN option."""
    for prefix, option in GAN_PREFIXES:
        value = part[len(prefix):]
        if part.startswith(prefix) and value[:1].isdigit():
            return option, float(value)
    return None


def parse_row(name: str) -> Dict:
    """'k5-a0.02-w50' -> K 5, α 0.02, w 50 (EL2, relative); optional parts: a form ('nl2') and a distance.

    'k1-nl2-w0.1' is NL2 with weight 0.1 at K = 1 (α unused); 'k1-a0.1-w10-moved' names the distance;
    'k1-nl2-w0-noaug-r10' is a fine-tune (weight 0) without augmentation at R1 γ 10; 'pos0.05' trains on
    the positives the judge gives P(digit) ≤ 0.05 (`pipeline.confident_positives`); 'xg1' starts Stage 2
    from the extrapolation θ_G + 1·(θ_G − mean θ_N) of the row's K models instead of from θ_G; 'free' repels
    only the parameters Stage 1's EWC leaves free (`--params free`).
    """
    row = dict(name=name, k=None, alpha=None, weight=None, form="el2", distance="relative", options={},
               positives_max=None, start_gamma=None)
    try:
        for part in name.split("-"):
            gan = _gan_option(part)
            if part.startswith("pos"):
                row["positives_max"] = float(part[3:])
            elif part.startswith("xg"):
                row["start_gamma"] = float(part[2:])
            elif part == "noaug":
                row["options"]["aug"] = "noaug"
            elif part == "diffaug":  # the pretraining's augmentation, the benchmark's Stage 2 before this session
                row["options"].update(pipeline.PRETRAINING_AUGMENTATION)
            elif gan:
                row["options"][gan[0]] = gan[1]
            elif part in PARAM_MODES:
                row["options"]["params"] = part
            elif part in FORMS:
                row["form"] = part
            elif part[0] == "k" and part[1:].isdigit():
                row["k"] = int(part[1:])
            elif part[0] == "a":
                row["alpha"] = float(part[1:])
            elif part[0] == "w":
                row["weight"] = float(part[1:])
            elif part in DISTANCE_MODES:
                row["distance"] = part
            else:
                raise ValueError(part)
    except (ValueError, IndexError):
        complete = False
    else:
        complete = bool(row["k"]) and row["weight"] is not None and (row["alpha"] is not None or row["form"] != "el2")
    if not complete:
        raise argparse.ArgumentTypeError(f"a row is named like k5-a0.02-w50 or k1-nl2-w0.1, got '{name}'")
    return row


def stage2_options(changes: Dict) -> Dict:
    """The benchmark's Stage-2 training options with a row's changes ('aug': 'noaug' drops p and augpipe)."""
    options = dict(pipeline.UNLEARN_OPTIONS, **changes)
    if options.get("aug") == "noaug":
        options.pop("p", None)
        options.pop("augpipe", None)
    return options


def distance_along(network: str) -> List[Tuple[float, float]]:
    """(kimg, mean repulsion distance d) per tick of the Stage-2 run that wrote `network` (its stats.jsonl)."""
    points = []
    with open(os.path.join(os.path.dirname(network), "stats.jsonl")) as f:
        for line in f:
            tick = json.loads(line)
            if "Loss/G/distance" in tick:
                points.append((round(tick["Progress/kimg"]["mean"], 1), tick["Loss/G/distance"]["mean"]))
    return points


def _every_other_and_last(points: List) -> List:
    picked = points[::2]
    return picked + points[-1:] if points and (len(points) - 1) % 2 else picked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--digit", type=int, default=1)
    parser.add_argument("--workdir", default="runs/mnist-benchmark", help="the mnist_unlearn.py --workdir")
    parser.add_argument("--rows", required=True, help="comma-separated rows like k1-a0.02-w50")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--results", default=RESULTS_DIR)
    parser.add_argument("--stem", default="mnist_strength_k",
                        help="results file names: STEM_digitD.{json,md} (they hold this invocation's rows only)")
    args = parser.parse_args()
    try:
        rows = [parse_row(name) for name in args.rows.split(",") if name]
    except argparse.ArgumentTypeError as err:
        parser.error(str(err))
    root = os.path.join(args.workdir, f"digit{args.digit}")
    samples = os.path.join(root, "samples")
    adapted = [pipeline.finished_network(os.path.join(root, f"adapt{i}")) for i in range(max(row["k"] for row in rows))]
    if not all(adapted):
        parser.error(f"{root} lacks finished adapt0..{len(adapted) - 1} runs; run mnist_unlearn.py first")
    network = pipeline.check_assets(None)
    settings = pipeline.Settings(digit=args.digit, jobs=args.jobs)
    log = lambda msg: print(msg, flush=True)  # noqa: E731

    def extrapolated(k: int, gamma: float) -> str:
        """θ_G + γ(θ_G − mean θ_N) of the first k models, made once per (k, γ)."""
        outdir = os.path.join(root, f"extrapolated-k{k}-g{gamma:g}")
        return pipeline.finished_network(outdir) or pipeline.extrapolate(
            network, adapted[:k], dataclasses.replace(settings, extrapolate_gamma=gamma), outdir, log=log)

    def one(row: Dict) -> Tuple[str, str, float]:
        name, k = row["name"], row["k"]
        outdir = os.path.join(root, f"strength-{name}")
        options = stage2_options(row["options"])
        done = pipeline.finished_stage2(outdir, options)
        if done:
            return name, done, 0.0
        run = dataclasses.replace(settings, repulsion=row["form"], alpha=row["alpha"], repulsion_weight=row["weight"],
                                  distance=row["distance"], unlearn_options=options)
        started = time.time()
        positives = os.path.join(samples, "positives.zip")
        if row["positives_max"] is not None:
            positives = pipeline.confident_positives(positives, args.digit, row["positives_max"])[0]
        start = network if row["start_gamma"] is None else extrapolated(k, row["start_gamma"])
        path = pipeline.unlearn(start, positives, adapted[:k], run, outdir, log=log)
        return name, path, round(time.time() - started, 1)

    def control() -> str:
        """The benchmark's `finetune` control (weight 0, default GAN options), trained here when missing."""
        outdir = os.path.join(root, "finetune")
        return pipeline.finished_stage2(outdir, settings.unlearn_options) or pipeline.unlearn(
            network, os.path.join(samples, "positives.zip"), adapted[:1], pipeline.finetune_settings(settings),
            outdir, log=log)

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        finetune_job = pool.submit(control)
        trained = list(pool.map(one, rows))
        finetune = finetune_job.result()
    networks = [("original", network), ("finetune", finetune)] + [(name, path) for name, path, _ in trained]
    reference = pipeline.write_reference(args.workdir, args.digit)
    summary = pipeline.evaluate(networks, settings, reference, os.path.join(root, "eval-strength"))
    original = pipeline.result_row(summary, "original", args.digit)
    result_rows: List[Dict] = []
    for row, (name, path, seconds) in zip(rows, trained):
        got = pipeline.result_row(summary, name, args.digit)
        result_rows.append(dict(row, network=path, seconds=seconds, pul=got["pul"], fid=got["fid"],
                                fid_ratio=got["fid"] / original["fid"], digit_share=got["digit_share"],
                                distance_along=distance_along(path)))
    control = pipeline.result_row(summary, "finetune", args.digit)
    result = dict(digit=args.digit, num_eval_samples=summary["num_samples"], original_fid=original["fid"],
                  finetune=dict(pul=control["pul"], fid_ratio=control["fid"] / original["fid"]), rows=result_rows)
    lines = [f"# Repulsion form and strength against K (MNIST digit {args.digit}, Stage 2 16 kimg, "
             f"{summary['num_samples']} seeds)",
             "", "θ_N = the benchmark's adapted models; fine-tune control: PUL "
             f"{control['pul']:.1f} % at FID ×{control['fid'] / original['fid']:.2f}.", "",
             "| row | form | distance | Stage-2 GAN changes | K | α | w | PUL % | FID ratio | d along the run (kimg: d) |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---|"]
    for r in result_rows:
        alpha = "–" if r["alpha"] is None else f"{r['alpha']:g}"
        changes = [f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"
                   for key, value in r["options"].items()]
        if r["positives_max"] is not None:
            changes.append(f"positives with P(digit) ≤ {r['positives_max']:g}")
        if r["start_gamma"] is not None:
            changes.append(f"starts at the extrapolation γ {r['start_gamma']:g}")
        changes = " ".join(changes) or "–"
        lines.append(f"| {r['name']} | {r['form']} | {r['distance']} | {changes} | {r['k']} | {alpha} | {r['weight']:g} | "
                     f"{r['pul']:.1f} | {r['fid_ratio']:.2f} | "
                     + ", ".join(f"{kimg:g}: {d:.3g}" for kimg, d in _every_other_and_last(r["distance_along"]))
                     + " |")
    markdown = "\n".join(lines) + "\n"
    print(pipeline.write_results(args.results, f"{args.stem}_digit{args.digit}", result, markdown), end="")


if __name__ == "__main__":
    main()
