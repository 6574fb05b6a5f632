"""Adapt-then-Unlearn on the bundled MNIST generator, composed from the project's own commands.

Every step is the command a user would run: `collect` (the judge as a classifier with target class =
the digit), `train --mode=adapt` (EWC, one run per adapted model), `train --mode=unlearn`
(repulsion), `train --mode=extrapolate`, `evaluate` and `report`. Training runs in child processes,
as `stylegan-unlearn train` keeps process-wide state; the other commands run in this process.
The demo and `benchmarks/mnist_unlearn.py` share this module.

FIDs here are computed in the judge's 128-d penultimate feature space (the `--detector` is the
bundled judge), against the real digits without the unlearned class; they are not Inception FIDs.
"""
import glob
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import click

from stylegan_unlearn.mnist.data import write_mnist_dataset_zip

ASSETS = Path(__file__).resolve().parents[1] / "assets"
BUNDLED_GENERATOR = ASSETS / "mnist_generator.pkl"
BUNDLED_JUDGE = ASSETS / "mnist_judge.pt"
REPO_ROOT = Path(__file__).resolve().parents[2]
DIGIT_NAMES = ",".join(str(d) for d in range(10))


# How the bundled generator was pretrained decides how to fine-tune it: R1 γ 1 and no path-length
# term or style mixing in both stages (turning them on starts a path-length regulariser whose running
# mean is zero, which blurs samples). Stage 2 keeps the pretraining's augmentation of everything D sees
# (its discriminator has only ever seen augmented images); Stage 1 trains without augmentation, like the
# official recipe, so that D memorises the few negatives and θ_N makes mostly the digit
# (benchmarks/results/mnist_ablations_digit1.md: 89 % at 32 kimg with γ 1, 85 % with γ 10).
MODEL_TRAIN_ARGS = ["--pl-weight", "0", "--style-mixing", "0"]
ADAPT_TRAIN_ARGS = ["--gamma", "1"]
UNLEARN_TRAIN_ARGS = ["--gamma", "1", "--aug", "fixed", "--p", "1", "--augpipe", "translation,cutout,color"]


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
    repulsion: str = "el2"
    distance: Optional[str] = None  # None: the train command's default (relative)
    repulsion_weight: Optional[float] = None
    alpha: Optional[float] = None
    extrapolate_gamma: float = 1.0
    ema_kimg: Optional[float] = None  # G_ema half-life; None: the recipe's (5 kimg at batch 16)
    seed: int = 0
    threads: int = 1
    jobs: int = 1  # trainings run at once (each its own process)
    model_train_args: List[str] = field(default_factory=lambda: list(MODEL_TRAIN_ARGS))
    adapt_train_args: List[str] = field(default_factory=lambda: list(ADAPT_TRAIN_ARGS))
    unlearn_train_args: List[str] = field(default_factory=lambda: list(UNLEARN_TRAIN_ARGS))

    def check(self) -> None:
        if not 0 <= self.digit <= 9:
            raise click.BadParameter(f"the digit must be between 0 and 9, got {self.digit}")
        if self.adapt_kimg <= 0 or self.unlearn_kimg <= 0 or self.batch < 1:
            raise click.BadParameter("kimg values must be positive and the batch at least 1")
        if self.k < 1 or self.jobs < 1:
            raise click.BadParameter(f"the number of adapted models and of jobs must be at least 1, got {self.k}, "
                                     f"{self.jobs}")


def check_assets(network: Optional[str] = None) -> str:
    """Path of the generator to unlearn from; a clear error when the bundled files are missing."""
    path = Path(network) if network else BUNDLED_GENERATOR
    if not path.is_file():
        raise click.ClickException(f"generator pkl '{path}' not found; reinstall stylegan-unlearn (it ships "
                                   "stylegan_unlearn/assets/mnist_generator.pkl) or pass --network PKL")
    if not BUNDLED_JUDGE.is_file():
        raise click.ClickException(f"the MNIST judge '{BUNDLED_JUDGE}' is missing; reinstall stylegan-unlearn")
    return str(path)


def write_reference(outdir: str, digit: int) -> str:
    """Dataset zip of all real digits except `digit` (the FID reference); reused when already written."""
    path = os.path.join(outdir, f"real-without-{digit}.zip")
    if not os.path.isfile(path):
        write_mnist_dataset_zip(path, exclude=[digit])
    return path


def _cli(command: click.Command, args: Sequence) -> None:
    command.main(args=[str(a) for a in args], prog_name=f"stylegan-unlearn {command.name}", standalone_mode=False)


def collect(network: str, settings: Settings, outdir: str) -> Dict:
    """`stylegan-unlearn collect` with the judge; returns collect.json (negatives = the digit)."""
    from stylegan_unlearn.commands.collect import collect_command
    splits = ["--splits", settings.k]
    if settings.negatives_per_model is not None:
        splits += ["--negatives-per-split", settings.negatives_per_model]
    _cli(collect_command, ["--network", network, "--seeds", settings.collect_seeds, "--classifier", BUNDLED_JUDGE,
                           "--target-class", settings.digit, "--outdir", outdir, "--device", "cpu",
                           "--batch", 100, *splits])
    with open(os.path.join(outdir, "collect.json")) as f:
        summary = json.load(f)
    if not summary["negatives"]["count"]:
        raise click.ClickException(f"the generator made no digit {settings.digit} among seeds "
                                   f"{settings.collect_seeds}; nothing to unlearn")
    return summary


def train(mode: str, outdir: str, args: Sequence, settings: Settings, log=None) -> str:
    """Run `stylegan-unlearn train --mode=MODE` in a child process; returns the network it produced."""
    os.makedirs(outdir, exist_ok=True)
    command = [sys.executable, "-m", "stylegan_unlearn", "train", "--mode", mode, "--outdir", outdir,
               "--device", "cpu", *[str(a) for a in args]]
    env = dict(os.environ, OMP_NUM_THREADS=str(settings.threads),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    log_path = os.path.join(outdir, f"{mode}.log")
    started = time.time()
    with open(log_path, "a") as log_file:
        log_file.write("$ " + " ".join(command) + "\n")
        log_file.flush()
        result = subprocess.run(command, stdout=log_file, stderr=subprocess.STDOUT, env=env)
    if result.returncode != 0:
        with open(log_path) as f:
            tail = "".join(f.readlines()[-15:])
        raise click.ClickException(f"train --mode={mode} failed (exit {result.returncode}); see {log_path}:\n{tail}")
    if log:
        log(f"  {mode}: {time.time() - started:.0f} s")
    if mode == "extrapolate":
        found = sorted(glob.glob(os.path.join(outdir, "*", "*.pkl")))
    else:
        finals = sorted(glob.glob(os.path.join(outdir, "*", "final.json")))
        found = [json.load(open(finals[-1]))["last_snapshot"]] if finals else []
    if not found or not found[-1]:
        raise click.ClickException(f"train --mode={mode} finished without a network in {outdir}")
    return found[-1]


def _common_train_args(settings: Settings, kimg: float) -> List:
    """Arguments for both stages: length, batch, the model's own training settings, one snapshot at the end."""
    tick = max(kimg / 4, 0.016)
    ema = ["--ema-kimg", f"{settings.ema_kimg:g}"] if settings.ema_kimg is not None else []
    return ["--batch", settings.batch, "--kimg", kimg, "--tick", f"{tick:g}", "--snap", 1000, "--workers", 0,
            "--seed", settings.seed, *ema, *settings.model_train_args]


def negatives_split(samples_dir: str, index: int) -> str:
    """The negatives of adapted model `index` (0-based), written by `collect` with `--splits`."""
    return os.path.join(samples_dir, f"negatives-{index + 1}.zip")


def adapt(network: str, negatives_zip: str, settings: Settings, outdir: str, index: int = 0, log=None) -> str:
    """Stage 1: one EWC-adapted model θ_N (seed offset by `index`, so K models differ)."""
    args = ["--data", negatives_zip, "--resume", network, "--fisher-samples", settings.fisher_samples,
            *_common_train_args(settings, settings.adapt_kimg), *settings.adapt_train_args]
    args[args.index("--seed") + 1] = settings.seed + index
    return train("adapt", outdir, args, settings, log)


def adapt_models(network: str, samples_dir: str, settings: Settings, root: str, log=None) -> List[str]:
    """Stage 1 for each of the K adapted models on its own negatives, `settings.jobs` trainings at a time."""
    def one(index: int) -> str:
        return adapt(network, negatives_split(samples_dir, index), settings, os.path.join(root, f"adapt{index}"),
                     index=index, log=log)
    with ThreadPoolExecutor(max_workers=settings.jobs) as pool:  # each training is its own child process
        return list(pool.map(one, range(settings.k)))


def unlearn(network: str, positives_zip: str, adapted: Sequence[str], settings: Settings, outdir: str,
            log=None) -> str:
    """Stage 2: fine-tune θ_G on positives with repulsion from the adapted models."""
    args = ["--data", positives_zip, "--resume", network, "--repulsion", settings.repulsion,
            *_common_train_args(settings, settings.unlearn_kimg), *settings.unlearn_train_args]
    for path in adapted:
        args += ["--adapted", path]
    if settings.distance is not None:
        args += ["--distance", settings.distance]
    if settings.repulsion_weight is not None:
        args += ["--repulsion-weight", settings.repulsion_weight]
    if settings.alpha is not None:
        args += ["--alpha", settings.alpha]
    return train("unlearn", outdir, args, settings, log)


def extrapolate(network: str, adapted: Sequence[str], settings: Settings, outdir: str, log=None) -> str:
    """The parameter-space baseline θ_G + γ(θ_G − mean θ_N)."""
    args = ["--resume", network, "--extrapolate-gamma", settings.extrapolate_gamma]
    for path in adapted:
        args += ["--adapted", path]
    return train("extrapolate", outdir, args, settings, log)


LOW_ADAPTED_SHARE = 0.6  # θ_N should make mostly the digit; below this Stage 2 has little to repel from


def adapted_share(path: str, digit: int, num_samples: int = 1000) -> float:
    """Share of `digit` (judge arg-max) among `num_samples` fixed-seed samples of a network's G_ema."""
    from stylegan_unlearn.pkl import NETWORK_KEYS, load_networks
    from stylegan_unlearn.mnist.coverage import digit_shares, generator_digits, judge_outputs
    from stylegan_unlearn.mnist.judge import load_judge
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
    """`stylegan-unlearn evaluate`: PUL (judge, target = digit), FID/KID in the judge's feature space vs
    real digits without the class, and the share of every digit (judge arg-max)."""
    from stylegan_unlearn.commands.evaluate import evaluate_command
    args = []
    for name, path in networks:
        args += ["--network", f"{name}={path}"]
    args += ["--seeds", settings.eval_seeds, "--classifier", BUNDLED_JUDGE, "--target-class", settings.digit,
             "--reference", reference, "--detector", BUNDLED_JUDGE, "--attributes", BUNDLED_JUDGE,
             "--attribute-names", DIGIT_NAMES, "--kid-subset-size", 100, "--kid-subsets", 20, "--batch", 100,
             "--device", "cpu", "--out", out]
    _cli(evaluate_command, args)
    with open(os.path.join(out, "summary.json")) as f:
        return json.load(f)


def report(eval_dir: str, out: str, extra: Sequence[tuple] = (), title: str = "MNIST unlearning") -> Dict:
    from stylegan_unlearn.report import write_report
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


def settings_dict(settings: Settings) -> Dict:
    return asdict(settings)
