"""Negative and positive samples as reference-format dataset zips (the library of `stylegan-unlearn collect`).

Adapt-then-Unlearn needs negatives (samples with the feature to remove; stage 1 adapts to them) and
positives (samples without it; stage 2 trains on them). They come from any mix of:
  * generated samples over `--seeds`, split by a classifier (`--classifier`), or by the seeds a user
    picked from a `generate` contact sheet (`--negative-seeds`; the other `--seeds` are positives);
  * folders of the user's own images (`--negatives-dir`, `--positives-dir`), converted to the
    network's resolution (centre crop + Lanczos) and channel count.
Outputs in `--outdir`: `negatives.zip`, `positives.zip` (with `dataset.json`, class labels for
conditional networks), `negatives.png` / `positives.png` contact sheets captioned with seeds or
file names, and `collect.json` listing what went where. A set with no images is not written.
`collect_to_zips` does all of it; the `collect` command is a click wrapper around it.
"""
import json
import os
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image

from stylegan_unlearn.classifier import load_classifier
from stylegan_unlearn.data import write_image_dataset
from stylegan_unlearn.device import DEFAULT_DEVICE, resolve_device
from stylegan_unlearn.errors import OptionError
from stylegan_unlearn.fileio import atomic_write_text, check_writable_dir
from stylegan_unlearn.images import quantize, save_contact_sheet
from stylegan_unlearn.pkl import load_generator
from stylegan_unlearn.ranges import format_int_ranges
from stylegan_unlearn.seeds import generate_images, seed_classes

__all__ = ["collect_to_zips", "check_collect_options", "collect_samples", "split_sample_set", "load_image_folder",
           "SampleSet"]

SHEET_LIMIT = 256  # contact sheets show at most this many images


# ------------------------------------------------------------------------------------------ user images

def _image_files(folder: str) -> List[str]:
    Image.init()
    extensions = {ext.lower() for ext in Image.EXTENSION}
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for fname in files:
            if os.path.splitext(fname)[1].lower() in extensions:
                found.append(os.path.relpath(os.path.join(root, fname), folder).replace(os.sep, "/"))
    return sorted(found)


def _convert(image: Image.Image, resolution: int, channels: int) -> Tuple[np.ndarray, bool]:
    """HWC uint8 at the network's format, and whether anything had to change."""
    changed = False
    mode = "L" if channels == 1 else "RGB"
    if image.mode != mode:
        if "A" in image.getbands() or (image.mode == "P" and "transparency" in image.info):
            black = Image.new("RGBA", image.size, (0, 0, 0, 255))
            image = Image.alpha_composite(black, image.convert("RGBA"))
        image = image.convert(mode)
        changed = True
    width, height = image.size
    if width != height:
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        image = image.crop((left, top, left + side, top + side))
        changed = True
    if image.size != (resolution, resolution):
        image = image.resize((resolution, resolution), Image.LANCZOS)
        changed = True
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return array, changed


def load_image_folder(folder: str, resolution: int, channels: int) -> Tuple[np.ndarray, List[str], int]:
    """All images of a folder (recursive, sorted) as uint8 NHWC at the network's format.

    Returns (images, relative file names, number of images that were converted). Non-square images
    are centre-cropped; alpha is composited over black.
    """
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"image folder '{folder}' does not exist or is not a folder")
    names = _image_files(folder)
    if not names:
        raise ValueError(f"image folder '{folder}' contains no images (PNG, JPEG, ...)")
    arrays, converted = [], 0
    for name in names:
        try:
            with Image.open(os.path.join(folder, name)) as image:
                image.load()
                array, changed = _convert(image, resolution, channels)
        except (OSError, ValueError, SyntaxError) as err:
            raise ValueError(f"cannot read image '{name}' in '{folder}' ({err}); fix or remove it") from None
        arrays.append(array)
        converted += int(changed)
    return np.stack(arrays), names, converted


# ------------------------------------------------------------------------------------------ collection

class SampleSet:
    """Images of one set (negatives or positives) with their provenance."""

    def __init__(self, kind: str):
        self.kind = kind
        self.images: List[np.ndarray] = []
        self.captions: List[str] = []
        self.labels: List[Optional[int]] = []
        self.seeds: List[int] = []
        self.files: List[str] = []
        self.converted = 0

    def add_generated(self, image: np.ndarray, seed: int, label: Optional[int]) -> None:
        self.images.append(image)
        self.captions.append(f"seed {seed}")
        self.labels.append(label)
        self.seeds.append(int(seed))

    def add_folder(self, folder: str, images: np.ndarray, names: Sequence[str], converted: int,
                   label: Optional[int]) -> None:
        for image, name in zip(images, names):
            self.images.append(image)
            self.captions.append(os.path.basename(name)[:18])
            self.labels.append(label)
            self.files.append(os.path.join(folder, name))
        self.converted += converted

    def __len__(self) -> int:
        return len(self.images)


def collect_samples(G: torch.nn.Module, seeds: Sequence[int], decide, batch_size: int = 16,
                    truncation_psi: float = 1.0, noise_mode: str = "const", class_idx: Optional[int] = None,
                    device: torch.device = torch.device("cpu")) -> Tuple[SampleSet, SampleSet]:
    """Generate `seeds` and split them with `decide(seeds, images) -> bool [N]` (True = negative)."""
    negatives, positives = SampleSet("negatives"), SampleSet("positives")
    classes = dict(zip(seeds, seed_classes(seeds, int(G.c_dim), class_idx)))
    for batch_seeds, images in generate_images(G, seeds, batch_size=batch_size, truncation_psi=truncation_psi,
                                               noise_mode=noise_mode, class_idx=class_idx, device=device):
        flags = np.asarray(decide(batch_seeds, images), dtype=bool)
        pixels = quantize(images).permute(0, 2, 3, 1).numpy()
        for seed, flag, image in zip(batch_seeds, flags, pixels):
            (negatives if flag else positives).add_generated(image, seed, classes[seed])
    return negatives, positives


def split_sample_set(sample_set: SampleSet, splits: int, per_split: Optional[int] = None) -> List[SampleSet]:
    """Disjoint parts `<kind>-1 … <kind>-K` of a set, in its order: `per_split` images each (the first K·N),
    or all of them in K parts as equal as possible. One negative set per adapted model θ_N^k."""
    if splits < 1:
        raise ValueError(f"--splits must be at least 1, got {splits}")
    if per_split is not None and per_split < 1:
        raise ValueError(f"--negatives-per-split must be at least 1, got {per_split}")
    total = len(sample_set)
    wanted = splits * per_split if per_split is not None else splits
    if total < wanted:
        need = f"{splits} × {per_split}" if per_split is not None else f"one per split ({splits})"
        raise ValueError(f"found {total} {sample_set.kind}, fewer than {need}; generate more --seeds or ask for "
                         "fewer splits")
    if per_split is not None:
        bounds = [i * per_split for i in range(splits + 1)]
    else:
        bounds = [round(i * total / splits) for i in range(splits + 1)]
    parts = []
    for index in range(splits):
        part = SampleSet(f"{sample_set.kind}-{index + 1}")
        for i in range(bounds[index], bounds[index + 1]):
            part.images.append(sample_set.images[i])
            part.captions.append(sample_set.captions[i])
            part.labels.append(sample_set.labels[i])
            if i < len(sample_set.seeds):
                part.seeds.append(sample_set.seeds[i])
        parts.append(part)
    return parts


def _write_set(sample_set: SampleSet, outdir: str, c_dim: int) -> Optional[Dict]:
    summary = {"count": len(sample_set), "seeds": format_int_ranges(sample_set.seeds), "files": sample_set.files,
               "converted_files": sample_set.converted, "zip": None, "contact_sheet": None}
    if not len(sample_set):
        return summary
    images = np.stack(sample_set.images)
    conditional = c_dim > 0
    labels = sample_set.labels if conditional else None
    zip_name, sheet_name = f"{sample_set.kind}.zip", f"{sample_set.kind}.png"
    write_image_dataset(os.path.join(outdir, zip_name), images, labels=labels,
                        label_dim=c_dim if conditional else None)
    shown = min(len(sample_set), SHEET_LIMIT)
    save_contact_sheet(images[:shown], sample_set.captions[:shown], os.path.join(outdir, sheet_name))
    summary.update(zip=zip_name, contact_sheet=sheet_name, contact_sheet_shows=shown)
    if conditional:
        summary["class_counts"] = {str(c): sample_set.labels.count(c) for c in sorted(set(sample_set.labels))}
    return summary


def check_collect_options(*, seeds: Optional[Sequence[int]] = None, classifier: Optional[str] = None,
                          target_class: Optional[int] = None, threshold: Optional[float] = None,
                          resize: Optional[str] = None, negative_seeds: Optional[Sequence[int]] = None,
                          negatives_dir: Optional[str] = None, positives_dir: Optional[str] = None,
                          splits: Optional[int] = None, negatives_per_split: Optional[int] = None) -> None:
    """Raise OptionError unless the options describe one way to collect (before anything is loaded)."""
    if classifier and negative_seeds:
        raise OptionError("give either --classifier or --negative-seeds, not both")
    if seeds and not (classifier or negative_seeds):
        raise OptionError("--seeds needs a way to split them: --classifier SPEC or --negative-seeds LIST")
    if classifier and not seeds:
        raise OptionError("--classifier needs --seeds to generate samples to classify, e.g. --seeds 0-999")
    if not (seeds or negative_seeds or negatives_dir or positives_dir):
        raise OptionError("nothing to collect: give --seeds with --classifier or --negative-seeds, "
                          "or --negatives-dir / --positives-dir")
    if not classifier and any(v is not None for v in (target_class, threshold, resize)):
        raise OptionError("--target-class, --threshold and --resize only apply with --classifier")
    if negatives_per_split is not None and splits is None:
        raise OptionError("--negatives-per-split needs --splits K")


def _print_warning(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def collect_to_zips(network: str, outdir: str, *, seeds: Optional[Sequence[int]] = None,
                    classifier: Optional[str] = None, target_class: Optional[int] = None,
                    threshold: Optional[float] = None, resize: Optional[str] = None,
                    negative_seeds: Optional[Sequence[int]] = None, negatives_dir: Optional[str] = None,
                    positives_dir: Optional[str] = None, class_idx: Optional[int] = None,
                    splits: Optional[int] = None, negatives_per_split: Optional[int] = None,
                    truncation_psi: float = 1.0, noise_mode: str = "const", batch_size: int = 16,
                    device: Union[str, torch.device, None] = DEFAULT_DEVICE,
                    log: Callable[[str], None] = print, warn: Callable[[str], None] = _print_warning) -> Dict:
    """Collect negatives and positives of `network` into `outdir`; returns the summary written to collect.json.

    Writes `negatives.zip` / `positives.zip` (+ contact sheets), `negatives-<k>.zip` for `splits`, and
    `collect.json`. Seeds are split by `classifier` (a TorchScript file or 'module:function'; its
    `target_class` / `threshold` / `resize`) or by `negative_seeds` (the other `seeds` are positives);
    folders of the user's own images add to either set. Raises OptionError for options that do not go
    together, ValueError / OSError for bad input (nothing is written before the inputs are checked), and
    ValueError("no samples were collected") when both sets are empty (after writing collect.json).
    """
    started = time.time()
    check_collect_options(seeds=seeds, classifier=classifier, target_class=target_class, threshold=threshold,
                          resize=resize, negative_seeds=negative_seeds, negatives_dir=negatives_dir,
                          positives_dir=positives_dir, splits=splits, negatives_per_split=negatives_per_split)
    check_writable_dir(outdir, "--outdir")
    for option, folder in (("--negatives-dir", negatives_dir), ("--positives-dir", positives_dir)):
        if folder and not os.path.isdir(folder):
            raise FileNotFoundError(f"{option} '{folder}' does not exist or is not a folder")
    device = resolve_device(device)
    G = load_generator(network, device=device)
    resolution, channels, c_dim = int(G.img_resolution), int(G.img_channels), int(G.c_dim)
    conditional = c_dim > 0
    if conditional and (negatives_dir or positives_dir) and class_idx is None:
        raise OptionError(f"the network is conditional (c_dim={c_dim}): pass --class K to label your images")

    all_seeds: List[int] = []
    decided_by = "folders"
    decide = None
    judge = None
    if classifier:
        judge = load_classifier(classifier, target_class=target_class, threshold=threshold, resize=resize,
                                device=device)
        all_seeds = list(dict.fromkeys(seeds))
        decided_by = "classifier"

        def decide(_batch_seeds, images):
            return judge.has_feature(images)
    elif negative_seeds:
        picked = set(negative_seeds)
        all_seeds = list(dict.fromkeys(list(seeds or []) + list(negative_seeds)))
        decided_by = "seeds"

        def decide(batch_seeds, _images):
            return [s in picked for s in batch_seeds]

    if all_seeds:
        log(f"Generating {len(all_seeds)} samples ({resolution}x{resolution}, {channels} channel(s)) "
            f"on {device.type}...")
        negatives, positives = collect_samples(G, all_seeds, decide, batch_size=batch_size,
                                               truncation_psi=truncation_psi, noise_mode=noise_mode,
                                               class_idx=class_idx, device=device)
    else:
        negatives, positives = SampleSet("negatives"), SampleSet("positives")
    for folder, sample_set in ((negatives_dir, negatives), (positives_dir, positives)):
        if folder:
            images, names, converted = load_image_folder(folder, resolution, channels)
            sample_set.add_folder(folder, images, names, converted, class_idx if conditional else None)
            log(f"{sample_set.kind}: {len(names)} image(s) from '{folder}'"
                + (f", {converted} converted to {resolution}x{resolution}/{channels}ch" if converted else ""))

    parts = split_sample_set(negatives, splits, negatives_per_split) if splits is not None else []

    os.makedirs(outdir, exist_ok=True)
    summary = {
        "network": os.path.abspath(network),
        "resolution": resolution, "channels": channels, "c_dim": c_dim,
        "decided_by": decided_by,
        "classifier": judge.describe() if judge else None,
        "seeds": format_int_ranges(all_seeds),
        "truncation_psi": truncation_psi, "noise_mode": noise_mode, "class": class_idx,
        "negatives": _write_set(negatives, outdir, int(c_dim)),
        "positives": _write_set(positives, outdir, int(c_dim)),
        "negative_splits": [_write_set(part, outdir, int(c_dim)) for part in parts],
        "total_time": round(time.time() - started, 3),
        "timestamp": time.time(),
    }
    atomic_write_text(os.path.join(outdir, "collect.json"), json.dumps(summary, indent=2) + "\n")
    for kind in ("negatives", "positives"):
        count = summary[kind]["count"]
        if count:
            log(f"{kind}: {count} image(s) -> {os.path.join(outdir, summary[kind]['zip'])}")
        else:
            stale = os.path.join(outdir, f"{kind}.zip")
            note = f"; the existing {stale} is from an earlier run and was left as it was" if os.path.exists(stale) else ""
            warn(f"warning: no {kind} found; {kind}.zip was not written{note}")
    for part in summary["negative_splits"]:
        log(f"{part['zip'][:-4]}: {part['count']} image(s) -> {os.path.join(outdir, part['zip'])}")
    if all_seeds and decided_by == "classifier":
        flagged = summary["negatives"]["count"] - len(summary["negatives"]["files"])
        log(f"The classifier flagged {flagged} of {len(all_seeds)} generated samples "
            f"({100 * flagged / len(all_seeds):.1f}%) as having the feature.")
    if not negatives and not positives:
        raise ValueError("no samples were collected")
    return summary
