"""Adapt-then-Unlearn on the bundled MNIST generator, composed from the project's library functions.

Each step is what the matching command does, called as a function: collect the generator's samples
with the judge (`samples.collect_to_zips`; negatives = the digit, split into one set per adapted
model), adapt K copies with EWC and unlearn with repulsion (`training.train`, each training in a
child process of its own so that several run side by side and none shares process-wide state),
extrapolate, evaluate (`evaluate.evaluate_networks`) and report (`report.write_report`). The demo,
`benchmarks/mnist_unlearn.py` and `benchmarks/mnist_ablations.py` share this module.

FIDs here are computed in the judge's 128-d penultimate feature space (the detector is the bundled
judge), against the real digits without the unlearned class; they are not Inception FIDs.
"""
import json
import multiprocessing
import os
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from stylegan_unlearn import training
from stylegan_unlearn.data import ImageDataset, write_image_dataset
from stylegan_unlearn.evaluate import evaluate_networks
from stylegan_unlearn.fileio import atomic_write_text
from stylegan_unlearn.loop.snapshots import list_snapshots
from stylegan_unlearn.mnist.coverage import digit_shares, generator_digits, judge_outputs
from stylegan_unlearn.mnist.data import write_mnist_dataset_zip
from stylegan_unlearn.mnist.judge import judge_input, load_judge
from stylegan_unlearn.pkl import NETWORK_KEYS, load_networks
from stylegan_unlearn.ranges import parse_int_ranges
from stylegan_unlearn.report import write_report
from stylegan_unlearn.samples import collect_to_zips

ASSETS = Path(__file__).resolve().parents[1] / "assets"
BUNDLED_GENERATOR = ASSETS / "mnist_generator.pkl"
BUNDLED_JUDGE = ASSETS / "mnist_judge.pt"
DIGIT_NAMES = ",".join(str(d) for d in range(10))


# How the bundled generator was pretrained decides how to fine-tune it: R1 γ 1 and no path-length
# term or style mixing in both stages (turning them on starts a path-length regulariser whose running
# mean is zero, which blurs samples). Both stages train without augmentation, like the official recipe:
# in Stage 1 D then memorises the few negatives and θ_N makes mostly the digit
# (benchmarks/results/mnist_ablations_digit1.md: 89 % at 32 kimg with γ 1, 85 % with γ 10); in Stage 2
# the pretraining's DiffAugment (cutout hides the strokes that tell a 4 from a 9) halved what plain
# fine-tuning removes and worsened FID (benchmarks/results/mnist_stage2_gan_digit*.md).
MODEL_OPTIONS: Dict[str, Any] = dict(pl_weight=0.0, style_mixing=0.0)
ADAPT_OPTIONS: Dict[str, Any] = dict(gamma=1.0)
UNLEARN_OPTIONS: Dict[str, Any] = dict(gamma=1.0)
# What D saw during the bundled generator's pretraining (the benchmark's Stage 2 until 2026-12-03).
PRETRAINING_AUGMENTATION: Dict[str, Any] = dict(aug="fixed", p=1.0, augpipe="translation,cutout,color")


@dataclass
class Settings:
    """One unlearning run's knobs (kimg are thousands of images shown; batch is the training batch).

    The defaults are the official budget (Stage 1 32 kimg, Stage 2 16 kimg, K = 5 adapted models, each
    on its own negatives) with PUL and FID on 5,000 fixed seeds; the demo uses a shorter setting.
    """
    digit: int = 1
    collect_seeds: str = "0-4999"
    eval_seeds: str = "100000-104999"
    k: int = 5  # adapted models θ_N^1..K, each adapted to its own disjoint negatives
    negatives_per_model: Optional[int] = 80  # None: all negatives found, split evenly over the K models
    adapt_kimg: float = 32.0
    unlearn_kimg: float = 16.0
    batch: int = 16
    fisher_samples: int = 32
    repulsion: str = "nl2"
    distance: Optional[str] = None  # None: the train command's default (relative)
    repulsion_weight: Optional[float] = None
    alpha: Optional[float] = None
    extrapolate_gamma: float = 1.0
    ema_kimg: Optional[float] = None  # G_ema half-life; None: the recipe's (5 kimg at batch 16)
    unlearn_snapshots: int = 1  # Stage-2 snapshots spread evenly over the run (the last one is the result)
    negatives_for_d: bool = False  # Stage 2 also shows D the θ_N's negatives as fakes (`--negatives`)
    seed: int = 0
    threads: int = 1
    jobs: int = 1  # trainings run at once (each its own process)
    model_options: Dict[str, Any] = field(default_factory=lambda: dict(MODEL_OPTIONS))  # training options, both stages
    adapt_options: Dict[str, Any] = field(default_factory=lambda: dict(ADAPT_OPTIONS))
    unlearn_options: Dict[str, Any] = field(default_factory=lambda: dict(UNLEARN_OPTIONS))

    def check(self) -> None:
        if not 0 <= self.digit <= 9:
            raise ValueError(f"the digit must be between 0 and 9, got {self.digit}")
        if self.adapt_kimg <= 0 or self.unlearn_kimg <= 0 or self.batch < 1:
            raise ValueError("kimg values must be positive and the batch at least 1")
        if self.unlearn_snapshots < 1:
            raise ValueError(f"unlearn_snapshots must be at least 1, got {self.unlearn_snapshots}")
        if self.k < 1 or self.jobs < 1:
            raise ValueError(f"the number of adapted models and of jobs must be at least 1, got {self.k}, "
                                     f"{self.jobs}")


def check_assets(network: Optional[str] = None) -> str:
    """Path of the generator to unlearn from; a clear error when the bundled files are missing."""
    path = Path(network) if network else BUNDLED_GENERATOR
    if not path.is_file():
        raise FileNotFoundError(f"generator pkl '{path}' not found; reinstall stylegan-unlearn (it ships "
                                "stylegan_unlearn/assets/mnist_generator.pkl) or pass --network PKL")
    if not BUNDLED_JUDGE.is_file():
        raise FileNotFoundError(f"the MNIST judge '{BUNDLED_JUDGE}' is missing; reinstall stylegan-unlearn")
    return str(path)


def write_reference(outdir: str, digit: int) -> str:
    """Dataset zip of all real digits except `digit` (the FID reference); reused when already written."""
    path = os.path.join(outdir, f"real-without-{digit}.zip")
    if not os.path.isfile(path):
        write_mnist_dataset_zip(path, exclude=[digit])
    return path


def collect(network: str, settings: Settings, outdir: str) -> Dict:
    """The generator's samples of `collect_seeds`, split by the judge (negatives = the digit, in K sets); collect.json."""
    summary = collect_to_zips(network, outdir, seeds=parse_int_ranges(settings.collect_seeds),
                              classifier=str(BUNDLED_JUDGE), target_class=settings.digit, splits=settings.k,
                              negatives_per_split=settings.negatives_per_model, batch_size=100, device="cpu",
                              log=lambda *_: None)
    if not summary["negatives"]["count"]:
        raise ValueError(f"the generator made no digit {settings.digit} among seeds {settings.collect_seeds}; "
                         "nothing to unlearn")
    return summary


def confident_positives(positives_zip: str, digit: int, max_probability: float) -> Tuple[str, int, int]:
    """The positives the judge gives P(digit) ≤ `max_probability`, as a sibling zip (reused when written).

    Arg-max filtering keeps doubtful samples (a 4 the judge calls a 9 at P(4) = 0.4) among the
    positives, and Stage 2 then trains the generator to make them. Returns (path, kept, dropped).
    """
    if not 0 < max_probability < 1:
        raise ValueError(f"the largest kept P(digit) must lie between 0 and 1, got {max_probability}")
    path = os.path.join(os.path.dirname(positives_zip), f"positives-p{digit}-below{max_probability:g}.zip")
    dataset = ImageDataset(positives_zip)
    images = np.stack([dataset[i][0] for i in range(len(dataset))])  # [N, C, H, W] uint8
    judge = load_judge()
    with torch.no_grad():
        probability = torch.cat([judge(chunk).softmax(1)[:, digit] for chunk in judge_input(images).split(500)])
    keep = (probability <= max_probability).numpy()
    if not keep.any():
        raise ValueError(f"no positive in {positives_zip} has P({digit}) ≤ {max_probability:g}")
    if not os.path.isfile(path):
        write_image_dataset(path, images[keep].transpose(0, 2, 3, 1))
    return path, int(keep.sum()), int((~keep).sum())


def _train_in_child(options: Dict[str, Any], log_path: str, threads: int) -> None:
    """Child-process body: one `training.train` with its output in `log_path`; exit 1 on any error."""
    with open(log_path, "a") as log_file:
        os.dup2(log_file.fileno(), 1)
        os.dup2(log_file.fileno(), 2)
    torch.set_num_threads(threads)
    try:
        training.train(**options)
    except BaseException:
        traceback.print_exc()
        raise SystemExit(1)


def train(mode: str, outdir: str, options: Dict[str, Any], settings: Settings,
          log: Optional[Callable[[str], None]] = None) -> str:
    """One `training.train(mode=MODE, ...)` in a child process; returns the network it produced."""
    os.makedirs(outdir, exist_ok=True)
    options = dict(options, mode=mode, outdir=outdir, device="cpu")
    log_path = os.path.join(outdir, f"{mode}.log")
    with open(log_path, "a") as log_file:
        log_file.write("training.train(" + json.dumps(options, default=str) + ")\n")
    started = time.time()
    child = multiprocessing.get_context("spawn").Process(target=_train_in_child,
                                                         args=(options, log_path, settings.threads))
    child.start()
    child.join()
    if child.exitcode != 0:
        with open(log_path) as f:
            last = [line.strip() for line in f if line.strip()][-1:] or ["(no output)"]
        raise RuntimeError(f"training --mode={mode} failed (exit {child.exitcode}): {last[0]}; see {log_path}")
    if log:
        log(f"  {mode}: {time.time() - started:.0f} s")
    runs = sorted(d for d in os.listdir(outdir) if os.path.isdir(os.path.join(outdir, d)))
    if not runs:
        raise RuntimeError(f"training --mode={mode} finished without a run directory in {outdir}")
    return training.trained_network(os.path.join(outdir, runs[-1]))


def check_same_augmentation(network: str, unlearn_options: Dict[str, Any]) -> None:
    """Refuse to reuse a cached Stage-2 run whose augmentation differs from the one asked for now.

    Stage 2's default augmentation changed (DiffAugment -> none), so a run cached under the same row
    name by an older version is not the same experiment; a clear error beats a silently wrong row.
    """
    path = os.path.join(os.path.dirname(network), "training_options.json")
    with open(path) as f:
        was_augmented = json.load(f).get("augment_kwargs") is not None
    wanted = unlearn_options.get("aug", "noaug") != "noaug"
    if was_augmented != wanted:
        said = "with" if was_augmented else "without"
        raise ValueError(f"the cached run {os.path.dirname(network)} was trained {said} augmentation, unlike this "
                         "request (the Stage-2 default changed); move it away or use another --workdir")


def finished_stage2(outdir: str, unlearn_options: Dict[str, Any]) -> Optional[str]:
    """`finished_network(outdir)`, refused (ValueError) when that run's augmentation differs from `unlearn_options`."""
    network = finished_network(outdir)
    if network:
        check_same_augmentation(network, unlearn_options)
    return network


def finetune_settings(settings: Settings) -> Settings:
    """The fine-tune control of `settings`: the same Stage 2 with repulsion weight 0."""
    return replace(settings, repulsion="el2", repulsion_weight=0.0)


def finished_network(outdir: str) -> Optional[str]:
    """The network of an earlier finished training under `outdir` (its first run directory that has one)."""
    if not os.path.isdir(outdir):
        return None
    for run in sorted(d for d in os.listdir(outdir) if os.path.isdir(os.path.join(outdir, d))):
        try:
            path = training.trained_network(os.path.join(outdir, run))
        except FileNotFoundError:
            continue
        if os.path.isfile(path):
            return path
    return None


def _common_options(settings: Settings, kimg: float, snapshots: int = 1) -> Dict[str, Any]:
    """Options of both stages: length, batch, the model's own training settings, and `snapshots` network
    snapshots spread evenly over the run (one tick each); with 1, four ticks and one snapshot at the end."""
    tick, snap = (kimg / snapshots, 1) if snapshots > 1 else (kimg / 4, 1000)
    options = dict(batch=settings.batch, kimg=kimg, tick=max(tick, 0.016), snap=snap, workers=0,
                   seed=settings.seed, **settings.model_options)
    if settings.ema_kimg is not None:
        options["ema_kimg"] = settings.ema_kimg
    return options


def negatives_split(samples_dir: str, index: int) -> str:
    """The negatives of adapted model `index` (0-based), written by `collect` with `--splits`."""
    return os.path.join(samples_dir, f"negatives-{index + 1}.zip")


def adapted_negatives(samples_dir: str, k: int) -> List[str]:
    """The negative sets θ_N^1..K adapted to: what Stage 2's D is shown as fakes (`--negatives`)."""
    return [negatives_split(samples_dir, index) for index in range(k)]


def adapt(network: str, negatives_zip: str, settings: Settings, outdir: str, index: int = 0, log=None) -> str:
    """Stage 1: one EWC-adapted model θ_N (seed offset by `index`, so K models differ)."""
    options = dict(_common_options(settings, settings.adapt_kimg), data=negatives_zip, resume=network,
                   fisher_samples=settings.fisher_samples, **settings.adapt_options)
    options["seed"] = settings.seed + index
    return train("adapt", outdir, options, settings, log)


def adapt_models(network: str, samples_dir: str, settings: Settings, root: str, log=None) -> List[str]:
    """Stage 1 for each of the K adapted models on its own negatives, `settings.jobs` trainings at a time."""
    def one(index: int) -> str:
        return adapt(network, negatives_split(samples_dir, index), settings, os.path.join(root, f"adapt{index}"),
                     index=index, log=log)
    with ThreadPoolExecutor(max_workers=settings.jobs) as pool:  # each training is its own child process
        return list(pool.map(one, range(settings.k)))


def unlearn(network: str, positives_zip: str, adapted: Sequence[str], settings: Settings, outdir: str,
            log=None, negatives: Sequence[str] = ()) -> str:
    """Stage 2: fine-tune θ_G on positives with repulsion from the adapted models (D also calls `negatives` fake)."""
    options = dict(_common_options(settings, settings.unlearn_kimg, settings.unlearn_snapshots),
                   data=positives_zip, resume=network, adapted=list(adapted), repulsion=settings.repulsion,
                   distance=settings.distance, repulsion_weight=settings.repulsion_weight, alpha=settings.alpha,
                   **settings.unlearn_options)
    if negatives:
        options["negatives"] = list(negatives)
    return train("unlearn", outdir, options, settings, log)


def extrapolate(network: str, adapted: Sequence[str], settings: Settings, outdir: str, log=None) -> str:
    """The parameter-space baseline θ_G + γ(θ_G − mean θ_N)."""
    options = dict(resume=network, adapted=list(adapted), extrapolate_gamma=settings.extrapolate_gamma)
    return train("extrapolate", outdir, options, settings, log)


LOW_ADAPTED_SHARE = 0.6  # θ_N should make mostly the digit; below this Stage 2 has little to repel from


def adapted_share(path: str, digit: int, num_samples: int = 1000) -> float:
    """Share of `digit` (judge arg-max) among `num_samples` fixed-seed samples of a network's G_ema."""
    G = load_networks(path, NETWORK_KEYS)["G_ema"]
    predictions = judge_outputs(load_judge(), generator_digits(G, range(200000, 200000 + num_samples)))["pred"]
    return float(digit_shares(predictions)[digit])


def check_adapted(paths: Sequence[str], digit: int, log) -> List[float]:
    """Print each θ_N's share of the digit and warn when one makes too few of them."""
    shares = [adapted_share(path, digit) for path in paths]
    for index, share in enumerate(shares):
        note = ""
        if share < LOW_ADAPTED_SHARE:
            note = (f"  warning: below {LOW_ADAPTED_SHARE:.0%}; Stage 1 did not adapt well (longer --adapt-kimg, "
                    "fewer negatives per model or a lower EWC lambda help)")
        log(f"  θ_N{index + 1}: {share:.1%} of its samples are {digit}s{note}")
    return shares


def evaluate(networks: Sequence[tuple], settings: Settings, reference: str, out: str) -> Dict:
    """PUL (judge, target = digit), FID/KID in the judge's feature space vs real digits without the class,
    and the share of every digit (judge arg-max), for every network on the same seeds; the summary."""
    judge = str(BUNDLED_JUDGE)
    return evaluate_networks(list(networks), parse_int_ranges(settings.eval_seeds), out, classifier=judge,
                             target_class=settings.digit, reference=reference, detector=judge, attributes=judge,
                             attribute_names=DIGIT_NAMES, kid_subset_size=100, kid_subsets=20, batch_size=100,
                             device="cpu", log=lambda *_: None)


def evaluate_reusing(networks: Sequence[tuple], settings: Settings, reference: str, out: str) -> Dict:
    """`evaluate`, unless `out` already holds the summary of the same named networks on as many seeds."""
    summary_path = os.path.join(out, "summary.json")
    if os.path.isfile(summary_path):
        with open(summary_path) as f:
            summary = json.load(f)
        if ([r["name"] for r in summary["networks"]] == [name for name, _ in networks]
                and summary.get("num_samples") == len(parse_int_ranges(settings.eval_seeds))):
            return summary
    return evaluate(networks, settings, reference, out)


def report(eval_dir: str, out: str, extra: Sequence[tuple] = (), title: str = "MNIST unlearning") -> Dict:
    seeds = list(range(100000, 100016))
    return write_report(eval_dir, out, extra_networks=list(extra), grid_seeds=seeds, title=title,
                        echo=lambda *_: None)


def result_row(summary: Dict, name: str, digit: int) -> Dict:
    """The numbers of one evaluated network: share of the digit, PUL, FID, KID, share of every digit."""
    record = next(r for r in summary["networks"] if r["name"] == name)
    shares = record.get("attribute_shares") or {}
    return dict(name=name, digit_share=record.get("neg_share"), n_neg=record.get("n_neg"), pul=record.get("pul"),
                fid=record.get("fid"), kid=record.get("kid"),
                shares={k: round(float(v), 4) for k, v in shares.items()}, num_samples=record.get("num_samples"))


MONITOR_SEEDS = "300000-301999"  # checkpoint selection looks only at these, never at the evaluation seeds


def run_snapshots(network: str) -> List[Tuple[float, str]]:
    """(kimg, path) of every network snapshot of the run that wrote `network`, oldest first, kimg 0 excluded."""
    return [(kimg, path) for kimg, path in list_snapshots(os.path.dirname(network)) if kimg > 0]


def pick_checkpoint(candidates: Sequence[Dict], max_fid_ratio: float) -> Dict:
    """The candidate with the highest PUL among those within `max_fid_ratio` of the original's FID, else the
    one with the lowest FID; each candidate is a dict with 'pul' and 'fid_ratio'. Later checkpoints win ties."""
    if not candidates:
        raise ValueError("no checkpoints to choose from")
    within = [c for c in candidates if c["fid_ratio"] is not None and c["fid_ratio"] <= max_fid_ratio]
    if within:
        return max(reversed(within), key=lambda c: c["pul"] if c["pul"] is not None else -1e9)
    return min(candidates, key=lambda c: c["fid_ratio"] if c["fid_ratio"] is not None else 1e9)


def score_checkpoints(original: str, runs: Sequence[tuple], settings: Settings, reference: str, out: str,
                      monitor_seeds: str = MONITOR_SEEDS) -> Dict[str, List[Dict]]:
    """Model selection as the official evaluation does it (every checkpoint of a run is scored), kept honest:
    the snapshots of each (name, final network) run are scored on `monitor_seeds`, disjoint from the
    evaluation seeds. Returns each run's candidates for `pick_checkpoint`, whose pick the caller then
    evaluates on its own seeds."""
    checkpoints = [(name, kimg, path) for name, final in runs for kimg, path in run_snapshots(final)]
    networks = [("original", original)] + [(f"{name}@{kimg:g}", path) for name, kimg, path in checkpoints]
    monitor = Settings(**{**settings_dict(settings), "eval_seeds": monitor_seeds})
    summary = evaluate_reusing(networks, monitor, reference, out)
    base_fid = result_row(summary, "original", settings.digit)["fid"]
    candidates: Dict[str, List[Dict]] = {}
    for (label, _path), (name, kimg, path) in zip(networks[1:], checkpoints):
        row = result_row(summary, label, settings.digit)
        candidates.setdefault(name, []).append(dict(network=path, kimg=kimg, pul=row["pul"], fid=row["fid"],
                                                    fid_ratio=row["fid"] / base_fid if row["fid"] and base_fid else None))
    return candidates


def write_results(results_dir: str, stem: str, result: Dict, markdown: str) -> str:
    """A benchmark's result as RESULTS_DIR/STEM.json and STEM.md, each written atomically; returns `markdown`."""
    os.makedirs(results_dir, exist_ok=True)
    path = os.path.join(results_dir, stem)
    atomic_write_text(path + ".json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(path + ".md", markdown)
    return markdown


def settings_dict(settings: Settings) -> Dict:
    return asdict(settings)
