"""Did the feature go, and did quality stay? The library of `stylegan-unlearn evaluate`.

For one or more networks (the first is the original) on one fixed seed list:
  * **PUL** with a classifier: 100·(N_neg(original) − N_neg(network)) / N_neg(original), plus each
    network's raw share of samples with the feature;
  * **FID** and **KID** of each network against a reference image set (e.g. real data without the
    feature), and **Ret-FID** against the samples of another network (e.g. one retrained without
    the feature), with features from a pluggable detector (default: the reference Inception);
  * **attribute drift** with a multi-output classifier: the share of every attribute per network.
Results go to `--out`: `metric-<name>.jsonl` lines in the reference format (appended, one per
network) and `summary.json` (everything, read by `report`). `evaluate_networks` does all of it; the
`evaluate` command is a click wrapper around it.
"""
import json
import os
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from dnnlib.util import format_time
from stylegan_unlearn.classifier import load_classifier
from stylegan_unlearn.device import DEFAULT_DEVICE, resolve_device
from stylegan_unlearn.errors import OptionError
from stylegan_unlearn.fileio import atomic_write_text, check_writable_dir
from stylegan_unlearn.images import quantize
from stylegan_unlearn.metrics import (attribute_shares, count_negatives, drift_table, fid_from_features,
                                      kid_from_features, negative_share, pul)
from stylegan_unlearn.metrics.detectors import dataset_features, load_detector
from stylegan_unlearn.pkl import check_network_files, load_generator
from stylegan_unlearn.ranges import format_int_ranges
from stylegan_unlearn.seeds import generate_images

__all__ = ["evaluate_networks", "parse_network_spec", "network_specs", "metric_line", "append_metric_lines",
           "format_table"]

NetworkSpec = Union[str, Tuple[str, str]]

SUMMARY_VERSION = 1


def parse_network_spec(text: str) -> Tuple[str, str]:
    """'unlearned=runs/x.pkl' → ('unlearned', 'runs/x.pkl'); 'runs/x.pkl' → ('x', 'runs/x.pkl')."""
    name, sep, path = str(text).partition("=")
    if sep and name.strip() and path.strip() and not any(ch in name for ch in "/\\:"):
        return name.strip(), path.strip()
    path = str(text)
    return os.path.splitext(os.path.basename(path.rstrip("/")))[0] or path, path


def network_specs(networks: Sequence[NetworkSpec]) -> List[Tuple[str, str]]:
    """(name, path) pairs from 'NAME=PATH' / 'PATH' strings or pairs, with distinct names (see `_unique_names`)."""
    return _unique_names([parse_network_spec(n) if isinstance(n, str) else (str(n[0]), str(n[1])) for n in networks])


def _unique_names(specs: Sequence[Tuple[str, str]], first_default: str = "original") -> List[Tuple[str, str]]:
    """Give every network a distinct display name; an unnamed first network is called 'original'."""
    named, seen = [], {}
    for i, (name, path) in enumerate(specs):
        if i == 0 and name == os.path.splitext(os.path.basename(path.rstrip("/")))[0]:
            name = first_default
        base, k = name, 2
        while name in seen:
            name, k = f"{base}-{k}", k + 1
        seen[name] = True
        named.append((name, path))
    return named


def metric_line(metric: str, results: Dict[str, Optional[float]], total_time: float, snapshot_pkl: Optional[str],
                num_gpus: int = 1) -> Dict:
    """One result in the reference `metric-<name>.jsonl` format."""
    return {"results": results, "metric": metric, "total_time": total_time,
            "total_time_str": format_time(total_time), "num_gpus": num_gpus,
            "snapshot_pkl": snapshot_pkl, "timestamp": time.time()}


def append_metric_lines(path: str, lines: Sequence[Dict]) -> None:
    """Append JSON lines to `path`, rewriting it atomically (old lines are kept, never truncated)."""
    old = ""
    if os.path.isfile(path):
        with open(path, "r", encoding="utf-8") as f:
            old = f.read()
        if old and not old.endswith("\n"):
            old += "\n"
    atomic_write_text(path, old + "".join(json.dumps(line) + "\n" for line in lines))


def _read_attribute_names(text: Optional[str], count: int) -> List[str]:
    if not text:
        return [f"attr{i}" for i in range(count)]
    if os.path.isfile(text):
        with open(text, "r", encoding="utf-8") as f:
            names = [line.strip() for line in f if line.strip()]
    else:
        names = [name.strip() for name in text.split(",") if name.strip()]
    if len(names) != count:
        raise ValueError(f"--attribute-names gives {len(names)} names but the attribute classifier has "
                         f"{count} outputs")
    return names


class _Measurements:
    """What one pass over a network's samples yields."""

    def __init__(self):
        self.flags: List[np.ndarray] = []
        self.attribute_flags: List[np.ndarray] = []
        self.features: List[np.ndarray] = []

    def stacked(self, name: str) -> Optional[np.ndarray]:
        parts = getattr(self, name)
        return np.concatenate(parts) if parts else None


def _measure(G: torch.nn.Module, seeds: Sequence[int], classifier, attributes, detector, sampling: Dict,
             device: torch.device) -> _Measurements:
    result = _Measurements()
    for _batch_seeds, images in generate_images(G, seeds, device=device, **sampling):
        if classifier is not None:
            result.flags.append(classifier.has_feature(images))
        if attributes is not None:
            result.attribute_flags.append(attributes.attribute_flags(images))
        if detector is not None:
            result.features.append(detector(quantize(images)))
    return result


def _check_compatible(G: torch.nn.Module, first: torch.nn.Module, name: str, first_name: str) -> None:
    for attr in ("img_resolution", "img_channels", "z_dim", "c_dim"):
        if int(getattr(G, attr)) != int(getattr(first, attr)):
            raise ValueError(f"network '{name}' has {attr}={getattr(G, attr)} but '{first_name}' has "
                             f"{getattr(first, attr)}; same-seed comparison needs networks of one shape")


def check_evaluate_options(*, classifier: Optional[str] = None, target_class: Optional[int] = None,
                           threshold: Optional[float] = None, reference: Optional[str] = None,
                           ret_reference_network: Optional[str] = None, ret_seeds: Optional[Sequence[int]] = None,
                           attributes: Optional[str] = None, attribute_names: Optional[str] = None,
                           attribute_threshold: Optional[float] = None) -> None:
    """Raise OptionError unless the options ask for at least one measurement and fit together."""
    if not (classifier or reference or ret_reference_network or attributes):
        raise OptionError("nothing to measure: give --classifier (PUL), --reference (FID/KID), "
                          "--ret-reference-network (Ret-FID) and/or --attributes (drift)")
    if not classifier and (target_class is not None or threshold is not None):
        raise OptionError("--target-class and --threshold only apply with --classifier")
    if ret_seeds and not ret_reference_network:
        raise OptionError("--ret-seeds only applies with --ret-reference-network")
    if not attributes and (attribute_names or attribute_threshold is not None):
        raise OptionError("--attribute-names and --attribute-threshold only apply with --attributes")


def evaluate_networks(networks: Sequence[NetworkSpec], seeds: Sequence[int], out: str, *,
                      classifier: Optional[str] = None, target_class: Optional[int] = None,
                      threshold: Optional[float] = None, resize: Optional[str] = None,
                      reference: Optional[str] = None, detector: Optional[str] = None,
                      ret_reference_network: Optional[str] = None, ret_seeds: Optional[Sequence[int]] = None,
                      attributes: Optional[str] = None, attribute_names: Optional[str] = None,
                      attribute_threshold: Optional[float] = None, kid_subsets: int = 100,
                      kid_subset_size: int = 1000, class_idx: Optional[int] = None, truncation_psi: float = 1.0,
                      noise_mode: str = "const", batch_size: int = 16,
                      device: Union[str, torch.device, None] = DEFAULT_DEVICE,
                      log: Callable[[str], None] = print) -> Dict:
    """Measure `networks` (the first is the original) on `seeds`; writes metric-*.jsonl and summary.json into `out`.

    `networks` are 'NAME=PATH' / 'PATH' strings or (name, path) pairs. `classifier` / `attributes` are
    TorchScript files or 'module:function' specs (PUL / drift), `reference` a dataset zip or folder and
    `detector` a feature-detector file or URL (FID/KID), `ret_reference_network` a pkl (Ret-FID). Returns the
    summary (what summary.json holds). Raises OptionError for options that do not go together and
    ValueError / OSError for bad input, before anything is written.
    """
    check_evaluate_options(classifier=classifier, target_class=target_class, threshold=threshold,
                           reference=reference, ret_reference_network=ret_reference_network, ret_seeds=ret_seeds,
                           attributes=attributes, attribute_names=attribute_names,
                           attribute_threshold=attribute_threshold)
    check_writable_dir(out, "--out")
    device = resolve_device(device)
    specs = network_specs(networks)
    check_network_files([(f"--network {name}", path) for name, path in specs])
    judge = load_classifier(classifier, target_class=target_class, threshold=threshold, resize=resize,
                            device=device) if classifier else None
    attribute_judge = load_classifier(attributes, threshold=attribute_threshold, resize=resize,
                                      device=device) if attributes else None
    options = {
        "networks": [f"{n}={p}" for n, p in specs], "seeds": format_int_ranges(seeds), "classifier": classifier,
        "target_class": target_class, "threshold": threshold, "resize": resize, "reference": reference,
        "detector": detector, "ret_reference_network": ret_reference_network,
        "ret_seeds": format_int_ranges(ret_seeds) if ret_seeds else None, "attributes": attributes,
        "attribute_names": attribute_names, "attribute_threshold": attribute_threshold,
        "kid_subsets": kid_subsets, "kid_subset_size": kid_subset_size, "class": class_idx,
        "trunc": truncation_psi, "noise_mode": noise_mode, "batch": batch_size, "device": str(device), "out": out,
    }
    sampling = {"batch_size": batch_size, "truncation_psi": truncation_psi, "noise_mode": noise_mode,
                "class_idx": class_idx}
    return _evaluate_loaded(specs, seeds, out, classifier=judge, attributes=attribute_judge,
                            attribute_names=attribute_names, reference=reference, detector_spec=detector,
                            ret_reference=ret_reference_network, ret_seeds=ret_seeds, kid_subsets=kid_subsets,
                            kid_subset_size=kid_subset_size, sampling=sampling, device=device, options=options,
                            echo=log)


def _evaluate_loaded(networks: Sequence[Tuple[str, str]], seeds: Sequence[int], out: str, *,
                     classifier=None, attributes=None, attribute_names: Optional[str] = None,
                     reference: Optional[str] = None, detector_spec: Optional[str] = None,
                     ret_reference: Optional[str] = None, ret_seeds: Optional[Sequence[int]] = None,
                     kid_subsets: int = 100, kid_subset_size: int = 1000,
                     sampling: Optional[Dict] = None, device: torch.device = torch.device("cpu"),
                     options: Optional[Dict] = None, echo=print) -> Dict:
    """Measure every network with loaded judges and write metric-*.jsonl and summary.json; returns the summary."""
    sampling = dict(sampling or {})
    seeds = list(seeds)
    if not seeds:
        raise ValueError("--seeds is empty")
    check_writable_dir(out, "--out")
    check_network_files([(f"--network {name}", path) for name, path in networks]
                        + ([("--ret-reference-network", ret_reference)] if ret_reference else []))

    detector = None
    if reference or ret_reference:
        detector = load_detector(detector_spec, device=device)
        echo(f"Detector: {detector.name} ({'reference uint8 style' if detector.reference_style else 'float style'})")

    first_G = None
    reference_features = None
    ret_features = None
    records: List[Dict] = []
    attribute_table: Dict[str, np.ndarray] = {}
    names_list: Optional[List[str]] = None
    for index, (name, path) in enumerate(networks):
        started = time.time()
        G = load_generator(path, device=device)
        if first_G is None:
            first_G = G
            if reference:
                echo(f"Reference features of '{reference}'...")
                reference_features = dataset_features(reference, detector, resolution=int(G.img_resolution),
                                                      channels=int(G.img_channels))
            if ret_reference:
                echo(f"Ret-FID reference network '{ret_reference}'...")
                G_ret = load_generator(ret_reference, device=device)
                _check_compatible(G_ret, G, ret_reference, name)
                ret_features = _measure(G_ret, list(ret_seeds or seeds), None, None, detector, sampling,
                                        device).stacked("features")
                del G_ret
        else:
            _check_compatible(G, first_G, name, networks[0][0])
        echo(f"[{index + 1}/{len(networks)}] {name}: {len(seeds)} samples...")
        measured = _measure(G, seeds, classifier, attributes, detector, sampling, device)
        record: Dict = {"name": name, "path": os.path.abspath(path), "num_samples": len(seeds)}
        flags = measured.stacked("flags")
        if flags is not None:
            record["n_neg"] = count_negatives(flags)
            record["neg_share"] = negative_share(flags)
        features = measured.stacked("features")
        try:
            if reference_features is not None:
                record["fid"] = fid_from_features(features, reference_features)
                record["kid"] = kid_from_features(features, reference_features, num_subsets=kid_subsets,
                                                  max_subset_size=kid_subset_size)
            if ret_features is not None:
                record["ret_fid"] = fid_from_features(features, ret_features)
        except ValueError as err:
            raise ValueError(f"network '{name}': {err}") from None
        attribute_flags = measured.stacked("attribute_flags")
        if attribute_flags is not None:
            if names_list is None:
                names_list = _read_attribute_names(attribute_names, attribute_flags.shape[1])
            attribute_table[name] = attribute_shares(attribute_flags)
            record["attribute_shares"] = dict(zip(names_list, attribute_table[name].tolist()))
        record["time"] = time.time() - started
        records.append(record)
        if G is not first_G:
            del G

    if classifier is not None:
        original_neg = records[0]["n_neg"]
        for record in records:
            try:
                record["pul"] = pul(original_neg, record["n_neg"])
            except ValueError as err:
                record["pul"] = None
                record["pul_note"] = str(err)
        if original_neg == 0:
            echo(f"warning: {records[0]['pul_note']}")

    os.makedirs(out, exist_ok=True)
    _write_metric_files(records, out)
    summary = {
        "version": SUMMARY_VERSION,
        "seeds": format_int_ranges(seeds),
        "num_samples": len(seeds),
        "original": records[0]["name"],
        "networks": records,
        "classifier": classifier.describe() if classifier is not None else None,
        "attributes": attributes.describe() if attributes is not None else None,
        "detector": detector.describe() if detector is not None else None,
        "reference": {"path": os.path.abspath(reference), "num_images": int(len(reference_features))}
        if reference else None,
        "ret_reference": {"path": os.path.abspath(ret_reference), "seeds": format_int_ranges(ret_seeds or seeds)}
        if ret_reference else None,
        "kid": {"num_subsets": kid_subsets, "max_subset_size": kid_subset_size} if reference else None,
        "drift": {"attributes": names_list, "rows": drift_table(names_list, attribute_table)}
        if attribute_table else None,
        "sampling": sampling,
        "options": options or {},
        "timestamp": time.time(),
    }
    atomic_write_text(os.path.join(out, "summary.json"), json.dumps(summary, indent=2) + "\n")
    return summary


def _write_metric_files(records: Sequence[Dict], out: str) -> None:
    metrics = {
        "pul": lambda r: {"pul": r.get("pul"), "neg_share": r.get("neg_share")} if "n_neg" in r else None,
        "fid": lambda r: {"fid": r["fid"]} if "fid" in r else None,
        "kid": lambda r: {"kid": r["kid"]} if "kid" in r else None,
        "ret_fid": lambda r: {"ret_fid": r["ret_fid"]} if "ret_fid" in r else None,
        "attributes": lambda r: dict(r["attribute_shares"]) if "attribute_shares" in r else None,
    }
    for metric, pick in metrics.items():
        lines = [metric_line(metric, results, round(r["time"], 3), r["path"])
                 for r in records for results in [pick(r)] if results is not None]
        if lines:
            append_metric_lines(os.path.join(out, f"metric-{metric}.jsonl"), lines)


def format_table(summary: Dict) -> str:
    """The metric table of a summary as plain text: one row per network, a column per metric present."""
    columns = [("neg_share", "neg %", lambda v: f"{100 * v:.1f}"), ("pul", "PUL", lambda v: f"{v:.1f}"),
               ("fid", "FID", lambda v: f"{v:.3f}"), ("kid", "KID", lambda v: f"{v:.5f}"),
               ("ret_fid", "Ret-FID", lambda v: f"{v:.3f}")]
    present = [c for c in columns if any(c[0] in r for r in summary["networks"])]
    width = max(len(r["name"]) for r in summary["networks"]) + 2
    lines = ["network".ljust(width) + "".join(title.rjust(10) for _key, title, _fmt in present)]
    for r in summary["networks"]:
        cells = [("-" if r.get(key) is None else fmt(r[key])).rjust(10) for key, _title, fmt in present]
        lines.append(r["name"].ljust(width) + "".join(cells))
    return "\n".join(lines)


