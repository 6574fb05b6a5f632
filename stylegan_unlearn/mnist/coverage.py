"""How well a digit generator covers MNIST, measured with the bundled judge.

Used at every pretraining snapshot and by the demo/benchmark: the share of each digit among samples
from fixed seeds, the judge's mean confidence, and an FID computed in the judge's 128-d penultimate
feature space (not Inception's, so these FIDs are comparable only with each other).
"""
import json
import os
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from stylegan_unlearn.metrics.fid import fid_from_features
from stylegan_unlearn import images as image_utils
from stylegan_unlearn.images import quantize
from stylegan_unlearn.seeds import generate_all
from stylegan_unlearn.mnist.data import load_mnist_5k, to_32px
from stylegan_unlearn.mnist.judge import judge_input, load_judge

SHARE_LOW, SHARE_HIGH = 0.05, 0.15  # the coverage goal for every digit


@torch.no_grad()
def judge_outputs(judge: torch.nn.Module, images_uint8: np.ndarray, batch_size: int = 500) -> Dict[str, np.ndarray]:
    """Judge predictions, max-softmax confidences and penultimate features for uint8 digits [N, (1,) 32, 32]."""
    x = judge_input(images_uint8)
    preds, confs, feats = [], [], []
    for chunk in x.split(batch_size):
        probs = judge(chunk).softmax(1)
        conf, pred = probs.max(1)
        preds.append(pred)
        confs.append(conf)
        feats.append(judge.features(chunk))
    return dict(pred=torch.cat(preds).numpy(), conf=torch.cat(confs).numpy(),
                features=torch.cat(feats).double().numpy())


def digit_shares(preds: np.ndarray) -> List[float]:
    """Share of each digit 0-9 among the predictions."""
    counts = np.bincount(np.asarray(preds, dtype=np.int64), minlength=10)[:10]
    return (counts / max(len(preds), 1)).tolist()


def generator_digits(G: torch.nn.Module, seeds: Sequence[int], batch_size: int = 100) -> np.ndarray:
    """uint8 [N, 1, 32, 32] samples of an unconditional digit generator for `seeds` (constant noise)."""
    return quantize(generate_all(G, list(seeds), batch_size=batch_size, noise_mode="const")).numpy()


PROBE_SEED_OFFSET = 100000  # pretraining chunks are scored on seeds PROBE_SEED_OFFSET, PROBE_SEED_OFFSET + 1, ...


class CoverageProbe:
    """Judge plus cached real-digit features; `measure(G)` scores a generator on fixed seeds."""

    def __init__(self, num_samples: int = 1000, seed_offset: int = PROBE_SEED_OFFSET, judge: Optional[torch.nn.Module] = None,
                 exclude_digit: Optional[int] = None):
        self.judge = judge if judge is not None else load_judge()
        self.seeds = list(range(seed_offset, seed_offset + num_samples))
        images, labels = load_mnist_5k()
        keep = labels != exclude_digit if exclude_digit is not None else np.ones(len(labels), bool)
        self.real_features = judge_outputs(self.judge, to_32px(images[keep]))["features"]

    def measure(self, G: torch.nn.Module) -> Dict:
        out = judge_outputs(self.judge, generator_digits(G, self.seeds))
        shares = digit_shares(out["pred"])
        return dict(
            shares=[round(s, 4) for s in shares],
            covered=int(sum(SHARE_LOW <= s <= SHARE_HIGH for s in shares)),
            present=int(sum(s >= 0.01 for s in shares)),
            confidence=round(float(out["conf"].mean()), 4),
            fid_judge=round(float(fid_from_features(out["features"], self.real_features)), 4),
            num_samples=len(self.seeds),
        )


def score(record: Dict) -> tuple:
    """Order snapshots: most digits within the goal band, then most digits present, then lowest FID."""
    return (record["covered"], record["present"], -record["fid_judge"])


def read_history(path: str) -> List[Dict]:
    if not os.path.exists(path):
        raise FileNotFoundError(f"no coverage log at {path}; run the pretraining first")
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def append_history(path: str, record: Dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def pick_snapshot(history: List[Dict], which: str) -> str:
    """The tag of the 'best' or 'latest' snapshot, or `which` itself when it names a logged tag."""
    if not history:
        raise ValueError("the coverage log is empty; no snapshot to pick")
    if which == "best":
        return max(history, key=score)["tag"]
    if which == "latest":
        return history[-1]["tag"]
    if which not in {r["tag"] for r in history}:
        raise ValueError(f"no snapshot tagged {which!r}; logged: {', '.join(r['tag'] for r in history)}")
    return which


def save_grid(G: torch.nn.Module, path: str, num: int = 100) -> None:
    images = generator_digits(G, range(num))
    image_utils.save_grid(images.transpose(0, 2, 3, 1), path, cols=10)


def summary_line(record: Dict) -> str:
    shares = " ".join(f"{d}:{s * 100:4.1f}" for d, s in enumerate(record["shares"]))
    return (f"[{record['tag']}] kimg {record['kimg']:.1f} covered {record['covered']}/10 present {record['present']} "
            f"conf {record['confidence']:.3f} FID(judge) {record['fid_judge']:.2f} | {shares}")
