"""The MNIST judge: a small LeNet-style classifier that tells which digit a (generated) image shows.

It measures the share of the forgotten digit (PUL) and its penultimate layer is the feature space of
our MNIST FID (the paper used Inception features; on 32×32 digits a digit classifier's own features
are the meaningful ones).

Input contract (shared by every classifier in the project): NCHW float in [-1, 1], 32×32, 1 channel,
black background = -1. Output: 10 class logits. The exported TorchScript module also has
`features(x)` → [N, FEATURE_DIM] (post-ReLU penultimate activations).
"""
import json
import math
import time
import warnings
from pathlib import Path
from typing import Callable, Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stylegan_unlearn.fileio import atomic_write

FEATURE_DIM = 128
NUM_CLASSES = 10
RESOLUTION = 32
BUNDLED_JUDGE = Path(__file__).resolve().parents[1] / "assets" / "mnist_judge.pt"
BUNDLED_METRICS = BUNDLED_JUDGE.with_suffix(".json")


class MnistJudge(nn.Module):
    """LeNet-style: two 5×5 conv + max-pool stages, a 128-unit hidden layer, 10 logits."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5)       # 32 -> 28, pooled to 14
        self.conv2 = nn.Conv2d(20, 50, 5)      # 14 -> 10, pooled to 5
        self.fc1 = nn.Linear(50 * 5 * 5, FEATURE_DIM)
        self.dropout = nn.Dropout(0.3)
        self.fc2 = nn.Linear(FEATURE_DIM, NUM_CLASSES)

    @torch.jit.export
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations [N, 128] of images in [-1, 1], NCHW, 1×32×32."""
        if x.dim() != 4 or x.shape[1] != 1 or x.shape[2] != 32 or x.shape[3] != 32:
            raise ValueError("the MNIST judge expects NCHW images of shape [N, 1, 32, 32] in [-1, 1]")
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return F.relu(self.fc1(x.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(self.features(x)))


def judge_input(images: np.ndarray) -> torch.Tensor:
    """uint8 digits [N, H, W] or [N, 1, H, W] (H = 28 or 32) → judge input [N, 1, 32, 32] in [-1, 1]."""
    x = torch.as_tensor(np.asarray(images))
    if x.dim() == 3:
        x = x[:, None]
    if x.dim() != 4 or x.shape[1] != 1 or tuple(x.shape[2:]) not in ((28, 28), (32, 32)):
        raise ValueError(f"expected uint8 digits [N, 28|32, 28|32] or [N, 1, ...], got {list(x.shape)}")
    if x.dtype != torch.uint8:
        raise ValueError(f"expected uint8 pixels, got {x.dtype}")
    x = x.float() / 127.5 - 1
    if x.shape[2] == 28:
        x = F.pad(x, (2, 2, 2, 2), value=-1.0)
    return x


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Small random affine jitter (±3 px shift, ±12° rotation, ×0.85–1.15 scale) so the judge tolerates the
    off-centre, slightly deformed digits a generator makes; background stays -1."""
    n = x.shape[0]
    u = torch.rand(n, 4, generator=generator) * 2 - 1
    angle = u[:, 0] * math.radians(12)
    scale = 1 + 0.15 * u[:, 1]
    shift = u[:, 2:] * (3 / (RESOLUTION / 2))       # affine_grid works in [-1, 1] units
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x + 1, grid, mode="bilinear", padding_mode="zeros", align_corners=False) - 1


def train_judge(images: np.ndarray, labels: np.ndarray, epochs: int = 40, seed: int = 0, batch_size: int = 64,
                lr: float = 2e-3, log: Optional[Callable[[str], None]] = print) -> MnistJudge:
    """Train a fresh judge on uint8 digits [N, 32, 32] with int labels; deterministic for a given seed
    (on one CPU thread). Adam with a cosine-decayed learning rate, augmentation on every batch."""
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be positive, got {epochs} and {batch_size}")
    x_all = judge_input(images)
    y_all = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    if len(x_all) != len(y_all):
        raise ValueError(f"{len(x_all)} images but {len(y_all)} labels")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = MnistJudge()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = math.ceil(len(x_all) / batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)
    for epoch in range(epochs):
        model.train()
        start, total_loss, correct = time.time(), 0.0, 0
        for batch in torch.randperm(len(x_all), generator=generator).split(batch_size):
            x, y = _augment(x_all[batch], generator), y_all[batch]
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += float(loss.detach()) * len(batch)
            correct += int((logits.argmax(1) == y).sum())
        if log is not None:
            log(f"epoch {epoch + 1}/{epochs}: loss {total_loss / len(x_all):.4f}, "
                f"augmented train accuracy {correct / len(x_all):.4f}, {time.time() - start:.1f} s")
    return model.eval()


@torch.no_grad()
def predict(judge: nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Predicted digit for each judge-input image [N, 1, 32, 32] in [-1, 1]."""
    return torch.cat([judge(chunk).argmax(1) for chunk in x.split(batch_size)])


def evaluate_judge(judge: nn.Module, images: np.ndarray, labels: np.ndarray) -> Dict:
    """Accuracy overall and per class on uint8 digits with known labels."""
    predicted = predict(judge, judge_input(images)).numpy()
    labels = np.asarray(labels)
    per_class = {str(d): float((predicted[labels == d] == d).mean()) for d in range(NUM_CLASSES) if (labels == d).any()}
    return {"accuracy": float((predicted == labels).mean()), "per_class_accuracy": per_class, "count": int(len(labels))}


def export_judge(model: MnistJudge, path: str, metadata: Dict) -> None:
    """Save the judge as TorchScript (with `forward` and `features`) and its metadata as JSON beside it."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    extra = {"metadata.json": json.dumps(metadata, sort_keys=True)}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)  # TorchScript is our exchange format
        scripted = torch.jit.script(model.eval())
        with atomic_write(path, "wb") as f:
            torch.jit.save(scripted, f, _extra_files=extra)
    with atomic_write(str(Path(path).with_suffix(".json")), "w") as f:
        json.dump(metadata, f, indent=2, sort_keys=True)
        f.write("\n")


def load_judge(path: Optional[str] = None, device: str = "cpu") -> torch.jit.ScriptModule:
    """Load a TorchScript judge (default: the bundled one) in eval mode."""
    path = Path(path) if path is not None else BUNDLED_JUDGE
    if not path.is_file():
        raise FileNotFoundError(f"MNIST judge not found at {path}; run scripts/train_mnist_judge.py to create it")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        return torch.jit.load(str(path), map_location=device).eval()
