#!/usr/bin/env python3
"""MNIST unlearning benchmark on the bundled generator at the official budget (not in CI; hours on a CPU).

For each digit: collect the generator's samples of seeds 0-4999 with the judge (negatives = the digit,
K = 5 disjoint sets of 80, one per adapted model; positives = the rest), adapt θ_N^1..5 for 32 kimg
each, then build every method of the grid:
  * atu-el2 (K = 1 and 5), atu-nl2, atu-il2 (K = 5) — Adapt-then-Unlearn Stage 2, 16 kimg, with the
    train command's default distance and weights (relative distance, see `stylegan_unlearn.method.repulsion`);
  * atu-el2-official (K = 5) — the same with `--distance official` and the official weights, i.e. the
    official code's effective repulsion strength;
  * extrapolation (K = 1 and 5) — θ_G + γ(θ_G − mean θ_N), γ = 1, no training;
  * finetune — the same Stage-2 run with repulsion weight 0 (independent of K);
  * atu-el2-negatives, atu-nl2-negatives (K = 1 and 5) — atu-el2 / atu-nl2 with `--negatives`: D also
    learns to call fake the negatives θ_N^1..K adapted to (not in the paper).
All networks of a digit are evaluated on the same 5,000 fixed seeds: PUL (judge, target = digit), FID in
the judge's 128-d feature space against all real digits without the digit, and the share of every digit.
Finished trainings are reused on a rerun with the same --workdir (which is tied to one generator by
its SHA-256), and results are written after every digit, so the grid can span sessions. With
--unlearn-snapshots ≥ 2 every trained row also gets checkpoint-selection rows (`select_rows`).
Results: benchmarks/results/mnist.json and mnist.md.

    python3 benchmarks/mnist_unlearn.py --digits 1 --jobs 2      # one digit
    python3 benchmarks/mnist_unlearn.py --digits 1,4,8 --jobs 2  # the full grid
"""
import argparse
import glob
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from stylegan_unlearn.fileio import atomic_write_text, file_sha256  # noqa: E402
from stylegan_unlearn.mnist import pipeline  # noqa: E402

ALL_DIGITS = (1, 4, 8)
# (method, K): the grid. K = None for the fine-tune control, which has no θ_N.
GRID: Tuple[Tuple[str, Optional[int]], ...] = (
    ("atu-el2", 1), ("atu-el2", 5), ("atu-nl2", 5), ("atu-il2", 5), ("atu-el2-official", 5),
    ("extrapolation", 1), ("extrapolation", 5), ("finetune", None),
    ("atu-el2-negatives", 1), ("atu-nl2-negatives", 1), ("atu-el2-negatives", 5), ("atu-nl2-negatives", 5))
METHODS = tuple(dict.fromkeys(m for m, _ in GRID))
RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

# Paper Table 1 (MNIST, pretrained FID 5.4, Inception FID): (PUL %, FID) per method and class.
PAPER = {
    "atu-il2": {1: (92.97, 13.06), 4: (90.39, 15.54), 8: (98.28, 9.72)},
    "atu-nl2": {1: (97.85, 9.69), 4: (93.03, 10.50), 8: (97.92, 9.95)},
    "atu-el2": {1: (99.32, 9.65), 4: (96.23, 10.24), 8: (95.22, 8.89)},
    "atu-el2-official": {1: (99.32, 9.65), 4: (96.23, 10.24), 8: (95.22, 8.89)},
    "atu-el2-negatives": {1: (99.32, 9.65), 4: (96.23, 10.24), 8: (95.22, 8.89)},
    "atu-nl2-negatives": {1: (97.85, 9.69), 4: (93.03, 10.50), 8: (97.92, 9.95)},
    "extrapolation": {1: (95.10, 41.39), 4: (94.50, 17.90), 8: (90.90, 45.79)},
    "finetune": {},
}
PAPER_PRETRAINED_FID = 5.4
SELECT_BOUNDS = (1.3, 1.8)  # checkpoint selection: highest monitor PUL with monitor FID at most this × pretrained
GOALS = dict(paper=(97.0, 1.8), beyond=(99.5, 1.3))  # (PUL % at least, FID ratio at most)


def _int_list(text: str) -> List[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of integers, got '{text}'") from None


def _bind_workdir(workdir: str, network_sha256: str) -> None:
    """Tie `workdir` to one generator: its cached trainings are reused on a rerun, so they must be of this one.

    A workdir written before the marker existed is adopted as it is (nothing tells whose trainings it holds)."""
    marker = os.path.join(workdir, "generator.sha256")
    if os.path.isfile(marker):
        with open(marker) as f:
            found = f.read().strip()
        if found != network_sha256:
            raise ValueError(f"--workdir {workdir} holds trainings of another generator (SHA-256 {found[:12]}…, "
                             f"this one {network_sha256[:12]}…); pass a new --workdir")
        return
    os.makedirs(workdir, exist_ok=True)
    atomic_write_text(marker, network_sha256 + "\n")


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
    path = pipeline.finished_network(outdir)
    if path is None:
        return None
    run_dir = os.path.dirname(path)
    return path, _run_seconds(run_dir, os.path.join(run_dir, "final.json"))


def _timed(outdir: str, mode: str, run) -> tuple:
    """(network, seconds); an earlier run's network is reused with the time read from its files."""
    done = _finished(outdir, mode)
    if done:
        return done
    started = time.time()
    path = run()
    return path, round(time.time() - started, 1)


def _method_settings(method: str, settings: pipeline.Settings) -> pipeline.Settings:
    run = pipeline.Settings(**pipeline.settings_dict(settings))
    if method == "finetune":
        run = pipeline.finetune_settings(run)
    elif method == "atu-el2-official":
        run.repulsion, run.distance = "el2", "official"
    else:
        run.repulsion = method.split("-")[1]
    return run


def run_digit(digit: int, grid: List[tuple], base: pipeline.Settings, workdir: str, network: str, log) -> Dict:
    """Every requested (method, K) for one digit; returns {'rows': [...], 'original': {...}, ...}."""
    settings = pipeline.Settings(**{**pipeline.settings_dict(base), "digit": digit})
    k_max = max(k or 1 for _m, k in grid)
    settings.k = k_max
    root = os.path.join(workdir, f"digit{digit}")
    samples = os.path.join(root, "samples")
    os.makedirs(root, exist_ok=True)
    if not os.path.isfile(os.path.join(samples, "collect.json")):
        log(f"== digit {digit}: collecting")
        pipeline.collect(network, settings, samples)
    with open(os.path.join(samples, "collect.json")) as f:
        collected = json.load(f)
    positives = os.path.join(samples, "positives.zip")

    with ThreadPoolExecutor(max_workers=settings.jobs) as pool:  # each training is its own child process
        def adapt_one(index):
            outdir = os.path.join(root, f"adapt{index}")
            return _timed(outdir, "adapt", lambda: pipeline.adapt(
                network, pipeline.negatives_split(samples, index), settings, outdir, index=index, log=log))
        log(f"== digit {digit}: adapting {k_max} models")
        adapt_results = list(pool.map(adapt_one, range(k_max)))
        adapted = [path for path, _seconds in adapt_results]
        adapt_seconds = [seconds for _path, seconds in adapt_results]
        adapted_shares = pipeline.check_adapted(adapted, digit, log)

        def stage2(method, k):
            name = method if k is None else f"{method}-k{k}"
            outdir = os.path.join(root, name)
            log(f"== digit {digit}: {name}")
            if method == "extrapolation":
                path, seconds = _timed(outdir, "extrapolate",
                                       lambda: pipeline.extrapolate(network, adapted[:k], settings, outdir, log=log))
            else:
                run_settings = _method_settings(method, settings)
                negatives = pipeline.adapted_negatives(samples, k) if method.endswith("-negatives") else []
                path, seconds = _timed(outdir, "unlearn", lambda: pipeline.unlearn(
                    network, positives, adapted[:k or 1], run_settings, outdir, log=log, negatives=negatives))
                pipeline.check_same_augmentation(path, run_settings.unlearn_options)
            stage1 = [s for s in adapt_seconds[:k or 0] if s is not None]
            return dict(method=method, k=k, name=name, network=path, stage2_seconds=seconds,
                        stage1_seconds=round(sum(stage1), 1) if k else 0.0)
        runs = list(pool.map(lambda mk: stage2(*mk), grid))
    networks = ([("original", network)] + [(f"adapted{i}", p) for i, p in enumerate(adapted)]
                + [(run["name"], run["network"]) for run in runs])

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
    adapted_rows = [pipeline.result_row(summary, f"adapted{i}", digit) for i in range(len(adapted))]
    selected = select_rows(runs, settings, network, reference, root, original, log)
    return dict(selected_rows=selected, digit=digit, collected=dict(negatives=collected["negatives"]["count"],
                                            negatives_per_model=[s["count"] for s in collected["negative_splits"]],
                                            positives=collected["positives"]["count"]),
                original=original, adapted=adapted_rows, adapted_shares_1000=adapted_shares, rows=rows,
                eval_dir=os.path.join(root, "eval"), num_eval_samples=summary["num_samples"],
                num_reference=summary["reference"]["num_images"])


def select_rows(runs: List[Dict], settings: pipeline.Settings, network: str, reference: str, root: str,
                original: Dict, log) -> List[Dict]:
    """Checkpoint selection for every trained row: the snapshots are scored on the monitor seeds, the pick per
    FID bound (SELECT_BOUNDS) is then measured on the evaluation seeds like every other row."""
    trained = [(run["name"], run["network"]) for run in runs if run["method"] != "extrapolation"]
    if settings.unlearn_snapshots < 2 or not trained:
        return []
    log(f"== digit {settings.digit}: scoring {settings.unlearn_snapshots} checkpoints per run on "
        f"{pipeline.MONITOR_SEEDS}")
    candidates = pipeline.score_checkpoints(network, trained, settings, reference, os.path.join(root, "monitor"))
    picks = {bound: {name: pipeline.pick_checkpoint(found, bound) for name, found in candidates.items()}
             for bound in SELECT_BOUNDS}
    chosen = sorted({pick["network"] for by_run in picks.values() for pick in by_run.values()})
    labels = {path: f"pick{i}" for i, path in enumerate(chosen)}
    summary = pipeline.evaluate([("original", network)] + [(labels[p], p) for p in chosen], settings, reference,
                                os.path.join(root, "eval-selected"))
    rows = []
    for bound, by_run in picks.items():
        for run in runs:
            pick = by_run.get(run["name"])
            if pick is None:
                continue
            measured = pipeline.result_row(summary, labels[pick["network"]], settings.digit)
            rows.append(dict(digit=settings.digit, method=run["method"], k=run["k"], name=run["name"],
                             max_fid_ratio=bound,
                             kimg=pick["kimg"], network=pick["network"], monitor_pul=pick["pul"],
                             monitor_fid_ratio=pick["fid_ratio"], pul=measured["pul"], fid=measured["fid"],
                             fid_ratio=measured["fid"] / original["fid"] if measured["fid"] else None,
                             digit_share=measured["digit_share"],
                             trajectory=[dict(kimg=c["kimg"], pul=c["pul"], fid_ratio=c["fid_ratio"])
                                         for c in candidates[run["name"]]]))
    return rows


def _fmt(value, pattern: str, missing: str = "–") -> str:
    return pattern.format(value) if value is not None else missing


def goals(result: Dict) -> Dict:
    """Per digit: which rows meet the paper-level goal and the beyond-the-paper goal, and which ATU rows beat
    extrapolation (better FID at equal or higher PUL, same K)."""
    out = {}
    for digit_result in result["digits"].values():
        rows = digit_result["rows"]
        verdict = {}
        for goal, (pul_min, ratio_max) in GOALS.items():
            verdict[goal] = [r["name"] for r in rows if r["method"].startswith("atu-")
                             and (r["pul"] or 0) >= pul_min and (r["fid_ratio"] or 1e9) <= ratio_max]
        verdict["better_than_extrapolation"] = [
            r["name"] for r in rows if r["method"].startswith("atu-") for e in rows
            if e["method"] == "extrapolation" and r["k"] == e["k"] and (r["pul"] or 0) >= (e["pul"] or 0)
            and (r["fid"] or 1e9) < (e["fid"] or 0)]
        for goal, (pul_min, ratio_max) in GOALS.items():
            verdict[goal + "_selected"] = sorted({
                f"{r['name']} (≤{r['max_fid_ratio']:g}×, {r['kimg']:g} kimg)" for r in digit_result.get("selected_rows", [])
                if r["method"].startswith("atu-") and (r["pul"] or 0) >= pul_min
                and (r["fid_ratio"] or 1e9) <= ratio_max})
        out[str(digit_result["digit"])] = verdict
    return out


def _stage2_augmentation(settings: Dict) -> str:
    """How the results' Stage 2 augmented what D saw (their settings record the Stage-2 options)."""
    options = settings["unlearn_options"]
    if options.get("aug", "noaug") == "noaug":
        return "no augmentation"
    return f"DiffAugment {options.get('augpipe')} at p {options.get('p')}"


def markdown(result: Dict) -> str:
    s = result["settings"]
    lines = ["# MNIST unlearning benchmark (official budget)", "",
             f"Bundled generator `{os.path.basename(result['network'])}`; judge `mnist_judge.pt` (bundled LeNet). "
             f"Stage 1 {s['adapt_kimg']:g} kimg per adapted model on {s['negatives_per_model']} of the generator's own "
             f"samples of the digit (no augmentation, R1 γ 1); Stage 2 {s['unlearn_kimg']:g} kimg on its other "
             f"samples (R1 γ 1, {_stage2_augmentation(s)}), batch {s['batch']}, no path length or style mixing "
             "(the bundled model was pretrained without them). PUL and FID on "
             f"{result['num_eval_samples']} fixed seeds per network; FID in the **judge's 128-d feature space** (not "
             "Inception) against all real digits without the class, so compare the ratio to our pretrained model "
             f"with the paper's ratio (paper pretrained FID {PAPER_PRETRAINED_FID}).", "",
             "Methods: `atu-*` = Adapt-then-Unlearn with the default repulsion (relative distance; EL2 w 10, α 0.1; "
             "NL2 w 0.1; IL2 w 1), `atu-el2-official` = the official code's distance and weights (EL2 w 100, α 1), "
             "`extrapolation` = θ_G + (θ_G − mean θ_N), `finetune` = Stage 2 with repulsion weight 0, `*-negatives` = "
             "the same with `--negatives` (D also calls the θ_N's negatives fake; not in the paper). "
             "Wall times are on a shared 2-core CPU with two trainings at once.", "",
             "| digit | method | K | PUL % | FID (judge) | FID / pretrained | digit share | max other-digit share change "
             "| wall s (stage 1 + 2) | paper PUL % | paper FID (×pretrained) |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for digit in result["grid"]["digits"]:
        digit_result = result["digits"].get(str(digit))
        if digit_result:
            o = digit_result["original"]
            lines.append(f"| {digit} | pretrained | – | – | {_fmt(o['fid'], '{:.2f}')} | 1.00 | "
                         f"{_fmt(o['digit_share'], '{:.1%}')} | – | – | – | {PAPER_PRETRAINED_FID} |")
            for i, a in enumerate(digit_result.get("adapted", [])):
                lines.append(f"| {digit} | adapted θ_N{i + 1} (stage 1) | – | – | {_fmt(a['fid'], '{:.2f}')} | "
                             f"{_fmt(a['fid'] / o['fid'] if a['fid'] and o['fid'] else None, '{:.2f}')} | "
                             f"{_fmt(a['digit_share'], '{:.1%}')} | – | – | – | – |")
        for method, k in (tuple(mk) for mk in result["grid"]["rows"]):
            row = None
            if digit_result:
                row = next((r for r in digit_result["rows"] if r["method"] == method and r["k"] == k), None)
            paper_pul, paper_fid = PAPER[method].get(digit, (None, None))
            paper_fid_text = f"{paper_fid} ({paper_fid / PAPER_PRETRAINED_FID:.2f}×)" if paper_fid else "–"
            if row is None:
                lines.append(f"| {digit} | {method} | {k or '–'} | not run | not run | not run | not run | not run "
                             f"| not run | {_fmt(paper_pul, '{}')} | {paper_fid_text} |")
                continue
            seconds = None if row["stage2_seconds"] is None else (row["stage1_seconds"] or 0) + row["stage2_seconds"]
            lines.append(
                f"| {digit} | {method} | {k or '–'} | {_fmt(row['pul'], '{:.2f}')} | {_fmt(row['fid'], '{:.2f}')} | "
                f"{_fmt(row['fid_ratio'], '{:.2f}')} | {_fmt(row['digit_share'], '{:.2%}')} | "
                f"{_fmt(row['collateral_max_abs_change'], '{:.1%}')} | {_fmt(seconds, '{:.0f}')} | "
                f"{_fmt(paper_pul, '{}')} | {paper_fid_text} |")
    selected = [r for digit in result["grid"]["digits"]
                for r in result["digits"].get(str(digit), {}).get("selected_rows", [])]
    if selected:
        lines += ["", "## With checkpoint selection", "",
                  f"Each trained row kept {s.get('unlearn_snapshots')} Stage-2 snapshots. They were scored on the "
                  f"monitor seeds {pipeline.MONITOR_SEEDS} (disjoint from the evaluation seeds); the pick is the "
                  "highest monitor PUL with a monitor FID at most the bound × pretrained, and the pick was then "
                  "measured on the evaluation seeds like every row above. The official evaluation also scans every "
                  "checkpoint of a run.", "",
                  "| digit | method | K | FID bound | picked at kimg | monitor PUL % / ratio | PUL % | FID / pretrained "
                  "| digit share | along the run (kimg: monitor PUL/ratio) |",
                  "|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
        for r in selected:
            along = ", ".join(f"{t['kimg']:g}: {t['pul']:.0f}/{t['fid_ratio']:.2f}" for t in r["trajectory"])
            lines.append(f"| {r['digit']} | {r['method']} | {r['k'] or '–'} | {r['max_fid_ratio']:g}× | {r['kimg']:g} | "
                         f"{_fmt(r['monitor_pul'], '{:.1f}')} / {_fmt(r['monitor_fid_ratio'], '{:.2f}')} | "
                         f"{_fmt(r['pul'], '{:.2f}')} | {_fmt(r['fid_ratio'], '{:.2f}')} | "
                         f"{_fmt(r['digit_share'], '{:.2%}')} | {along} |")
    lines += ["", "## Goals", "",
              f"Paper level: PUL ≥ {GOALS['paper'][0]} % at FID ≤ {GOALS['paper'][1]}× pretrained. Beyond the paper: "
              f"PUL ≥ {GOALS['beyond'][0]} % at ≤ {GOALS['beyond'][1]}×, with a better FID than extrapolation at "
              "equal or higher PUL (same K).", ""]
    for digit, verdict in result.get("goals", {}).items():
        lines.append(f"* digit {digit}: paper level met by {', '.join(verdict['paper']) or 'no method'}; beyond the "
                     f"paper by {', '.join(verdict['beyond']) or 'no method'}; better than extrapolation: "
                     f"{', '.join(verdict['better_than_extrapolation']) or 'no method'}.")
        if "paper_selected" in verdict:
            lines.append(f"* digit {digit}, with checkpoint selection: paper level met by "
                         f"{', '.join(verdict['paper_selected']) or 'no method'}; beyond the paper by "
                         f"{', '.join(verdict['beyond_selected']) or 'no method'}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--digits", type=_int_list, default=list(ALL_DIGITS))
    parser.add_argument("--methods", default=",".join(METHODS), help="subset of the grid's methods")
    parser.add_argument("--network", default=None, help="generator pkl [default: the bundled one]")
    parser.add_argument("--workdir", default="runs/mnist-benchmark")
    parser.add_argument("--results", default=RESULTS_DIR)
    parser.add_argument("--adapt-kimg", type=float, default=pipeline.Settings.adapt_kimg)
    parser.add_argument("--unlearn-kimg", type=float, default=pipeline.Settings.unlearn_kimg)
    parser.add_argument("--eval-seeds", default=pipeline.Settings.eval_seeds)
    parser.add_argument("--max-k", type=int, default=None,
                        help="only the grid's rows with K at most this (and fine-tune), e.g. 1 for a quick digit")
    parser.add_argument("--unlearn-snapshots", type=int, default=8,
                        help="Stage-2 snapshots per run; with 2 or more, checkpoint-selection rows are added")
    parser.add_argument("--jobs", type=int, default=2, help="trainings run at once (each one process)")
    parser.add_argument("--only-report", action="store_true", help="rewrite mnist.md from mnist.json")
    args = parser.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    if not args.digits or any(not 0 <= d <= 9 for d in args.digits) or args.jobs < 1:
        parser.error("--digits must be digits 0-9 and --jobs at least 1")
    if args.max_k is not None and args.max_k < 1:
        parser.error("--max-k must be at least 1")
    json_path = os.path.join(args.results, "mnist.json")
    if args.only_report:
        with open(json_path) as f:
            result = json.load(f)
        atomic_write_text(os.path.join(args.results, "mnist.md"), markdown(result))
        print(markdown(result))
        return
    network = pipeline.check_assets(args.network)
    network_sha256 = file_sha256(network)
    try:
        _bind_workdir(args.workdir, network_sha256)
    except ValueError as error:
        parser.error(str(error))
    base = pipeline.Settings(adapt_kimg=args.adapt_kimg, unlearn_kimg=args.unlearn_kimg, eval_seeds=args.eval_seeds,
                             jobs=args.jobs, unlearn_snapshots=args.unlearn_snapshots)
    grid = [(m, k) for m, k in GRID if m in methods and (k is None or args.max_k is None or k <= args.max_k)]
    result = dict(network=os.path.abspath(network), network_sha256=network_sha256, settings=pipeline.settings_dict(base),
                  grid=dict(digits=list(ALL_DIGITS), rows=[list(mk) for mk in GRID], methods=list(METHODS)),
                  fid_space="MNIST judge 128-d penultimate features (not Inception)", digits={})
    if os.path.isfile(json_path):  # keep digits measured by earlier invocations with the same settings
        with open(json_path) as f:
            earlier = json.load(f)
        # A setting added to pipeline.Settings later is missing from older results: it had its default then.
        defaults = pipeline.settings_dict(pipeline.Settings())
        earlier_settings = {**{k: v for k, v in defaults.items() if k not in earlier.get("settings", {})},
                            **earlier.get("settings", {})}
        parallelism = ("jobs", "threads")  # how many trainings ran at once does not change the experiment
        same = all(earlier_settings.get(k) == v for k, v in result["settings"].items() if k not in parallelism)
        if same and earlier.get("network_sha256") == result["network_sha256"]:
            result["digits"] = earlier.get("digits", {})
    started = time.time()
    for digit in args.digits:
        digit_result = run_digit(digit, grid, base, args.workdir, network, log=lambda msg: print(msg, flush=True))
        result["digits"][str(digit)] = digit_result
        result["num_eval_samples"] = digit_result["num_eval_samples"]
        result["goals"] = goals(result)
        pipeline.write_results(args.results, "mnist", result, markdown(result))
        print(f"wrote {json_path} after digit {digit} ({time.time() - started:.0f} s)", flush=True)
    print(markdown(result))


if __name__ == "__main__":
    main()
