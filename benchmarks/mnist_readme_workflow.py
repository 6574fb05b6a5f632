#!/usr/bin/env python3
"""The README's "your own pkl" workflow, with default options and K = 1, on an MNIST pkl (not in CI; ~1 h on a CPU).

Exactly the commands a user types (`stylegan-unlearn collect`, `python train.py --mode=adapt`, `python
train.py --mode=unlearn`, `stylegan-unlearn evaluate`), each run as its own process with no option beyond
the README's, and the bundled MNIST judge as the user's classifier. Meant for a pkl the project's defaults
were not tuned on. Each step is skipped when its output exists, so the run can be continued.
Results: benchmarks/results/mnist_readme_workflow.{json,md}.

    python3 benchmarks/mnist_readme_workflow.py --network unseen.pkl --digit 1
    python3 benchmarks/mnist_readme_workflow.py --network unseen.pkl --digit 1 --rounds 2   # + README step 5
    python3 benchmarks/mnist_readme_workflow.py --network unseen.pkl --digit 1 --variant "g1:--gamma=1"

A `--variant NAME:OPTIONS` is round 1's step 3 again with extra train.py options (same positives and θ_N),
in `unlearn-NAME`, evaluated beside the rest: what a user would try when the defaults fall short.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from typing import Dict, List, Tuple

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from stylegan_unlearn.mnist import pipeline  # noqa: E402

RESULTS_DIR = os.path.join(REPO_ROOT, "benchmarks", "results")
GOALS = dict(adapted_share=0.60, pul=90.0, fid_ratio=1.5)


def _run(command: List[str], log_path: str) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [REPO_ROOT, os.environ.get("PYTHONPATH")])))
    with open(log_path, "a") as log:
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} failed (exit {result.returncode}); see {log_path}")


def _final_snapshot(outdir: str) -> str:
    return pipeline.finished_network(outdir) or ""


def _loss_settings(snapshot: str) -> Dict[str, float]:
    """R1 γ, path-length weight and style mixing the run that wrote `snapshot` trained with."""
    with open(os.path.join(os.path.dirname(snapshot), "training_options.json")) as f:
        loss = json.load(f)["loss_kwargs"]
    return dict(gamma=loss["r1_gamma"], pl_weight=loss["pl_weight"], style_mixing=loss["style_mixing_prob"])


def _variant(text: str) -> Tuple[str, List[str]]:
    """'g1:--gamma=1 --pl-weight=0' -> ('g1', ['--gamma=1', '--pl-weight=0'])."""
    name, _, options = text.partition(":")
    if not name or not options.split() or not all(o.startswith("--") for o in options.split()) or "/" in name:
        raise argparse.ArgumentTypeError(f"a variant is NAME:--option=value ..., got '{text}'")
    return name, options.split()


def _negatives(data: str, use: bool) -> List[str]:
    """README step 3's `--negatives`: D also learns to call the collected negatives fake."""
    return [f"--negatives={data}/negatives.zip"] if use else []


def _one_round(network: str, work: str, digit: int, collect_seeds: str, log: str, times: Dict[str, float],
               negatives: bool = True) -> Dict:
    """README steps 1-3 on `network` under `work` (each skipped when its output exists): the θ_N and the result."""
    cli = [sys.executable, "-m", "stylegan_unlearn"]
    data = os.path.join(work, "data")
    if not os.path.isfile(os.path.join(data, "collect.json")):
        t = time.time()
        _run(cli + ["collect", "--network", network, "--seeds", collect_seeds, "--classifier",
                    str(pipeline.BUNDLED_JUDGE), "--target-class", str(digit), "--outdir", data], log)
        times[f"{work}: collect"] = time.time() - t
    adapted = _final_snapshot(os.path.join(work, "adapt"))
    if not adapted:
        t = time.time()
        _run([sys.executable, "train.py", "--mode=adapt", f"--outdir={work}/adapt", f"--data={data}/negatives.zip",
              f"--resume={network}"], log)
        times[f"{work}: adapt"] = time.time() - t
        adapted = _final_snapshot(os.path.join(work, "adapt"))
    unlearned = _final_snapshot(os.path.join(work, "unlearn"))
    if not unlearned:
        t = time.time()
        _run([sys.executable, "train.py", "--mode=unlearn", f"--outdir={work}/unlearn",
              f"--data={data}/positives.zip", f"--resume={network}", f"--adapted={adapted}"]
             + _negatives(data, negatives), log)
        times[f"{work}: unlearn"] = time.time() - t
        unlearned = _final_snapshot(os.path.join(work, "unlearn"))
    with open(os.path.join(data, "collect.json")) as f:
        collected = json.load(f)
    return dict(network=network, adapted=adapted, unlearned=unlearned, collect_seeds=collect_seeds,
                negatives=collected["negatives"]["count"], positives=collected["positives"]["count"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--network", required=True, help="the MNIST generator pkl")
    parser.add_argument("--network-note", default="", help="how the pkl was made, for the results")
    parser.add_argument("--digit", type=int, default=1)
    parser.add_argument("--collect-seeds", default="0-1999")
    parser.add_argument("--rounds", type=int, default=1,
                        help="README step 5: run steps 1-3 again this many times in all, each on the last result")
    parser.add_argument("--later-collect-seeds", default="0-9999",
                        help="collect seeds of rounds 2.. (the unlearned pkl makes few negatives)")
    parser.add_argument("--variant", type=_variant, action="append", default=[],
                        help="NAME:OPTIONS, round 1's unlearn again with these extra train.py options (repeatable)")
    parser.add_argument("--no-negatives", dest="negatives", action="store_false",
                        help="step 3 without --negatives (the README before 2026-12-04)")
    parser.add_argument("--eval-seeds", default="100000-104999")
    parser.add_argument("--workdir", default="runs/mnist-readme-workflow")
    parser.add_argument("--results", default=RESULTS_DIR)
    parser.add_argument("--name", default="mnist_readme_workflow", help="results file name (no extension)")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    work = os.path.abspath(os.path.join(args.workdir, f"digit{args.digit}"))
    os.makedirs(work, exist_ok=True)
    log = os.path.join(work, "commands.log")
    judge = str(pipeline.BUNDLED_JUDGE)
    started = time.time()
    times: Dict[str, float] = {}
    rounds, network = [], args.network
    for index in range(1, args.rounds + 1):  # round 1 keeps the top-level layout of earlier runs
        round_work = work if index == 1 else os.path.join(work, f"round{index}")
        seeds = args.collect_seeds if index == 1 else args.later_collect_seeds
        rounds.append(_one_round(network, round_work, args.digit, seeds, log, times, args.negatives))
        network = rounds[-1]["unlearned"]
    variants = []
    for name, options in args.variant:
        outdir = os.path.join(work, f"unlearn-{name}")
        if not _final_snapshot(outdir):
            t = time.time()
            _run([sys.executable, "train.py", "--mode=unlearn", f"--outdir={outdir}",
                  f"--data={work}/data/positives.zip", f"--resume={args.network}",
                  f"--adapted={rounds[0]['adapted']}"] + _negatives(f"{work}/data", args.negatives) + options, log)
            times[f"unlearn-{name}"] = time.time() - t
        variants.append(dict(name=name, options=options, unlearned=_final_snapshot(outdir)))
    reference = pipeline.write_reference(work, args.digit)
    names = ["original", "adapted"] + ["unlearned"] + [f"round{i}" for i in range(2, args.rounds + 1)]
    names += [f"variant-{v['name']}" for v in variants]
    paths = [args.network, rounds[0]["adapted"]] + [r["unlearned"] for r in rounds] + [v["unlearned"] for v in variants]
    evaluation = os.path.join(work, "eval" if len(names) == 3 else f"eval-rounds{args.rounds}"
                              + "".join(f"-{v['name']}" for v in variants))
    if not os.path.isfile(os.path.join(evaluation, "summary.json")):
        t = time.time()
        _run([sys.executable, "-m", "stylegan_unlearn", "evaluate"]
             + [arg for name, path in zip(names, paths) for arg in ("--network", f"{name}={path}")]
             + ["--seeds", args.eval_seeds, "--classifier", judge, "--target-class", str(args.digit),
                "--reference", reference, "--detector", judge, "--out", evaluation], log)
        times["evaluate"] = time.time() - t
    with open(os.path.join(evaluation, "summary.json")) as f:
        summary = json.load(f)
    rows = {name: pipeline.result_row(summary, name, args.digit) for name in names}
    final = rows["unlearned" if args.rounds == 1 else f"round{args.rounds}"]
    result = dict(network=os.path.abspath(args.network), network_note=args.network_note, digit=args.digit,
                  negatives=rounds[0]["negatives"], positives=rounds[0]["positives"],
                  num_eval_samples=summary["num_samples"], rows=rows,
                  fid_ratio=rows["unlearned"]["fid"] / rows["original"]["fid"],
                  adapted_fid_ratio=rows["adapted"]["fid"] / rows["original"]["fid"], goals=GOALS,
                  rounds=[dict(r, round=i + 1) for i, r in enumerate(rounds)], variants=variants,
                  final_fid_ratio=final["fid"] / rows["original"]["fid"],
                  loss_settings=dict(adapt=_loss_settings(rounds[0]["adapted"]),
                                     unlearn=_loss_settings(rounds[0]["unlearned"])),
                  negatives_for_d=args.negatives, seconds_this_invocation=round(time.time() - started, 1),
                  step_seconds=times)
    result["goals_met"] = dict(adapted_share=rows["adapted"]["digit_share"] >= GOALS["adapted_share"],
                               pul=rows["unlearned"]["pul"] >= GOALS["pul"],
                               fid_ratio=result["fid_ratio"] <= GOALS["fid_ratio"])
    lines = [f"# README workflow, default options, K = 1 (digit {args.digit})", "",
             f"Pkl: `{os.path.basename(args.network)}` — {args.network_note}", "",
             f"Commands: see `{os.path.relpath(log, REPO_ROOT) if log.startswith(REPO_ROOT) else 'commands.log'}` "
             f"(collect `--seeds {args.collect_seeds}` with the bundled judge: {result['negatives']} negatives, "
             f"{result['positives']} positives; then train.py --mode=adapt / --mode=unlearn with no other option "
             + ("than the README's `--negatives=data/negatives.zip`" if args.negatives else "(no `--negatives`)") + "; "
             f"evaluate on {result['num_eval_samples']} seeds, FID in judge features vs real digits without the class).",
             "", "Loss settings the two stages chose (R1 γ, path length, style mixing): "
             + "; ".join(f"{stage} {v['gamma']:g}, {v['pl_weight']:g}, {v['style_mixing']:g}"
                         for stage, v in result["loss_settings"].items()) + ".",
             "", "| network | digit share | PUL % | FID (judge) | FID / original |", "|---|---:|---:|---:|---:|"]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['digit_share']:.2%} | {row['pul']:.1f} | {row['fid']:.2f} | "
                     f"{row['fid'] / rows['original']['fid']:.2f} |")
    lines += ["", f"Goals (one round): θ_N share ≥ {GOALS['adapted_share']:.0%}: {result['goals_met']['adapted_share']}; "
              f"PUL ≥ {GOALS['pul']} %: {result['goals_met']['pul']}; FID ≤ {GOALS['fid_ratio']}×: "
              f"{result['goals_met']['fid_ratio']}."]
    if args.rounds > 1:
        lines += ["", f"README step 5, rounds 2-{args.rounds}: the same three commands on the last unlearned pkl, "
                  f"collect `--seeds {args.later_collect_seeds}`; negatives found per round: "
                  + ", ".join(str(r["negatives"]) for r in rounds) + "."]
    if variants:
        lines += ["", "Variants (`variant-NAME` rows): round 1's unlearn again with extra train.py options: "
                  + "; ".join(f"{v['name']}: `{' '.join(v['options'])}`" for v in variants) + "."]
    print(pipeline.write_results(args.results, args.name, result, "\n".join(lines) + "\n"), end="")


if __name__ == "__main__":
    main()
