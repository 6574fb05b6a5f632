#!/usr/bin/env python3
"""Adapt-then-Unlearn applied again to its own result (not part of CI; ~25 min a round on a CPU).

After one round the unlearned generator θ_U still makes a few of the digit, and they are not the
clear ones θ_N was adapted to: for digit 4 they are mostly open-topped 9s. A second round treats θ_U
as the pretrained model a user would hold: collect θ_U's samples, adapt θ_U to the digits it still
makes (θ_N', which makes those borderline shapes), and run Stage 2 from θ_U with repulsion from θ_N'.
Every step is the README workflow on a new pkl; nothing of the method changes.

Starts from a finished Stage-2 run of `benchmarks/mnist_unlearn.py` (or `mnist_strength_k.py`) in
the same workdir, and evaluates every round on the benchmark's fixed seeds against the pretrained
generator. Each step is skipped when its output exists, so the run can be continued.

    python3 benchmarks/mnist_rounds.py --digit 1 --workdir runs/mnist-benchmark --start atu-el2-k1 --rounds 2
"""
import argparse
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from stylegan_unlearn.method.params import DISTANCE_MODES  # noqa: E402
from stylegan_unlearn.mnist import pipeline  # noqa: E402
from stylegan_unlearn.ranges import parse_int_ranges  # noqa: E402

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
# θ_U makes ~1-2 % of the digit: this many seeds find the negatives one adapted model needs.
LATER_COLLECT_SEEDS = "0-19999"


def round_settings(args: argparse.Namespace) -> pipeline.Settings:
    """The Stage-1/Stage-2 settings of every later round (the benchmark's budget, the row's repulsion)."""
    return pipeline.Settings(digit=args.digit, k=args.k, collect_seeds=args.collect_seeds, repulsion=args.repulsion,
                             distance=args.distance, repulsion_weight=args.weight, alpha=args.alpha, jobs=args.jobs)


def one_round(network: str, settings: pipeline.Settings, outdir: str, log) -> Dict:
    """collect → adapt K models → unlearn, all from `network`; returns the paths and the counts."""
    samples = os.path.join(outdir, "samples")
    if not os.path.isfile(os.path.join(samples, "collect.json")):
        log(f"  collecting seeds {settings.collect_seeds} from {network}")
        try:
            pipeline.collect(network, settings, samples)
        except ValueError as err:  # too few negatives left: the usual end of the rounds
            raise SystemExit(f"{outdir}: {err} (here: a wider --collect-seeds or fewer --rounds)")
    with open(os.path.join(samples, "collect.json")) as f:
        collected = json.load(f)
    adapted = [pipeline.finished_network(os.path.join(outdir, f"adapt{i}")) for i in range(settings.k)]
    if not all(adapted):
        adapted = pipeline.adapt_models(network, samples, settings, outdir, log=log)
    shares = pipeline.check_adapted(adapted, settings.digit, log)
    unlearn_dir = os.path.join(outdir, "unlearn")
    unlearned = pipeline.finished_stage2(unlearn_dir, settings.unlearn_options) or pipeline.unlearn(
        network, os.path.join(samples, "positives.zip"), adapted, settings, unlearn_dir, log=log)
    return dict(network=unlearned, adapted=adapted, adapted_shares_1000=shares,
                negatives=collected["negatives"]["count"], positives=collected["positives"]["count"])


def finetune_control(network: str, adapted: str, settings: pipeline.Settings, outdir: str, log) -> str:
    """The round's Stage 2 without repulsion (weight 0) from the same generator on the same positives.

    A later round also trains 16 kimg more, on positives with fewer of the digit; this control tells
    how much of its gain the repulsion from θ_N' brings.
    """
    control_dir = os.path.join(outdir, "finetune")
    return pipeline.finished_stage2(control_dir, settings.unlearn_options) or pipeline.unlearn(
        network, os.path.join(outdir, "samples", "positives.zip"), [adapted], pipeline.finetune_settings(settings),
        control_dir, log=log)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--digit", type=int, default=1)
    parser.add_argument("--workdir", default="runs/mnist-benchmark", help="the mnist_unlearn.py --workdir")
    parser.add_argument("--start", default="atu-el2-k1", help="the finished Stage-2 run: a directory of the digit, by name or path")
    parser.add_argument("--rounds", type=int, default=2, help="rounds in all, the start run being the first")
    parser.add_argument("--k", type=int, default=1, help="adapted models per later round")
    parser.add_argument("--collect-seeds", default=LATER_COLLECT_SEEDS)
    parser.add_argument("--repulsion", default="el2", choices=("el2", "nl2", "il2"))
    parser.add_argument("--distance", default=None, choices=DISTANCE_MODES)
    parser.add_argument("--weight", type=float, default=None, help="repulsion weight [default: the form's]")
    parser.add_argument("--alpha", type=float, default=None)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--results", default=RESULTS_DIR)
    args = parser.parse_args()
    if args.rounds < 2:
        parser.error(f"--rounds counts the start run as the first, so it must be at least 2, got {args.rounds}")
    root = os.path.join(args.workdir, f"digit{args.digit}")
    start = pipeline.finished_stage2(os.path.join(root, args.start), pipeline.UNLEARN_OPTIONS)
    if not start:
        parser.error(f"{root}/{args.start} holds no finished Stage-2 run without augmentation")
    original = pipeline.check_assets(None)
    settings = round_settings(args)
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    tag = f"{os.path.basename(os.path.normpath(args.start))}-{args.repulsion}" + (f"-w{args.weight:g}" if args.weight is not None else "")
    rounds: List[Dict] = [dict(round=1, network=start)]
    for number in range(2, args.rounds + 1):
        log(f"== digit {args.digit}: round {number} from {rounds[-1]['network']}")
        outdir = os.path.join(root, f"rounds-{tag}", f"round{number}")
        rounds.append(dict(round=number, outdir=outdir, **one_round(rounds[-1]["network"], settings, outdir, log)))
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:  # each training is its own child process
        controls = list(pool.map(lambda pair: finetune_control(pair[0]["network"], pair[1]["adapted"][0], settings,
                                                               pair[1]["outdir"], log), zip(rounds, rounds[1:])))
    for r, control in zip(rounds[1:], controls):
        r["finetune_control"] = dict(network=control)
    finetune = pipeline.finished_stage2(os.path.join(root, "finetune"), pipeline.UNLEARN_OPTIONS)
    networks = [("original", original)] + ([("finetune", finetune)] if finetune else [])
    networks += [(f"round{r['round']}", r["network"]) for r in rounds]
    networks += [(f"round{r['round']}-finetune", r["finetune_control"]["network"]) for r in rounds[1:]]
    networks += [(f"round{r['round']}-adapted{i}", path) for r in rounds[1:] for i, path in enumerate(r["adapted"])]
    eval_settings = pipeline.Settings(digit=args.digit)
    reference = pipeline.write_reference(args.workdir, args.digit)
    summary = pipeline.evaluate_reusing(networks, eval_settings, reference, os.path.join(root, f"eval-rounds-{tag}"))
    base = pipeline.result_row(summary, "original", args.digit)
    for r in rounds:
        got = pipeline.result_row(summary, f"round{r['round']}", args.digit)
        r.update(pul=got["pul"], fid=got["fid"], fid_ratio=got["fid"] / base["fid"], digit_share=got["digit_share"])
        if r["round"] > 1:
            got = pipeline.result_row(summary, f"round{r['round']}-finetune", args.digit)
            r["finetune_control"].update(pul=got["pul"], fid_ratio=got["fid"] / base["fid"])
    result = dict(digit=args.digit, start=args.start, settings=pipeline.settings_dict(settings),
                  num_eval_samples=summary["num_samples"],
                  original=dict(fid=base["fid"], digit_share=base["digit_share"]), rounds=rounds)
    if finetune:
        got = pipeline.result_row(summary, "finetune", args.digit)
        result["finetune"] = dict(pul=got["pul"], fid_ratio=got["fid"] / base["fid"])
    lines = [f"# Adapt-then-Unlearn in rounds (MNIST digit {args.digit}, {summary['num_samples']} seeds)", "",
             f"Round 1 = `{args.start}`; each later round collects seeds {args.collect_seeds} of the previous "
             f"round's generator, adapts K = {args.k} model(s) to the {args.digit}s it still makes and runs Stage 2 "
             f"from it ({args.repulsion}" + (f", w {args.weight:g}" if args.weight is not None else "")
             + f"). Pretrained: {base['digit_share']:.2%} {args.digit}s.", ""]
    if finetune:
        lines += [f"Fine-tune control: PUL {result['finetune']['pul']:.1f} % at FID "
                  f"×{result['finetune']['fid_ratio']:.2f}.", ""]
    lines += ["| round | negatives found | θ_N' share | share of the digit | PUL % | FID ratio | "
              "same round without repulsion: PUL % / FID ratio |",
              "|---:|---:|---:|---:|---:|---:|---|"]
    for r in rounds:
        found = "–" if r["round"] == 1 else f"{r['negatives']} of {len(parse_int_ranges(args.collect_seeds))}"
        share = "–" if r["round"] == 1 else ", ".join(f"{s:.0%}" for s in r["adapted_shares_1000"])
        control = r.get("finetune_control")
        control = f"{control['pul']:.1f} / {control['fid_ratio']:.2f}" if control else "–"
        lines.append(f"| {r['round']} | {found} | {share} | {r['digit_share']:.2%} | {r['pul']:.1f} | "
                     f"{r['fid_ratio']:.2f} | {control} |")
    markdown = "\n".join(lines) + "\n"
    print(pipeline.write_results(args.results, f"mnist_rounds_digit{args.digit}", result, markdown), end="")


if __name__ == "__main__":
    main()
