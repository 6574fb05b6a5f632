"""`stylegan-unlearn evaluate`: did the feature go, and did quality stay?

For one or more networks (the first is the original) on one fixed seed list:
  * **PUL** with a classifier: 100·(N_neg(original) − N_neg(network)) / N_neg(original), plus each
    network's raw share of samples with the feature;
  * **FID** and **KID** of each network against a reference image set (e.g. real data without the
    feature), and **Ret-FID** against the samples of another network (e.g. one retrained without
    the feature), with features from a pluggable detector (default: the reference Inception);
  * **attribute drift** with a multi-output classifier: the share of every attribute per network.
Results go to `--out`: `metric-<name>.jsonl` lines in the reference format (appended, one per
network) and `summary.json` (everything, read by `report`).
"""
import json
import os
import time
from typing import Dict, List, Optional, Sequence, Tuple

import click
import numpy as np
import torch

from stylegan_unlearn.commands.cliutil import FINITE_FLOAT, IntRanges, one_line_errors, sampling_options

__all__ = ["evaluate_command", "evaluate_networks", "parse_network_spec", "metric_line", "append_metric_lines",
           "check_network_paths"]

SUMMARY_VERSION = 1


def parse_network_spec(text: str) -> Tuple[str, str]:
    """'unlearned=runs/x.pkl' → ('unlearned', 'runs/x.pkl'); 'runs/x.pkl' → ('x', 'runs/x.pkl')."""
    name, sep, path = str(text).partition("=")
    if sep and name.strip() and path.strip() and not any(ch in name for ch in "/\\:"):
        return name.strip(), path.strip()
    path = str(text)
    return os.path.splitext(os.path.basename(path.rstrip("/")))[0] or path, path


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
    from dnnlib.util import format_time

    return {"results": results, "metric": metric, "total_time": total_time,
            "total_time_str": format_time(total_time), "num_gpus": num_gpus,
            "snapshot_pkl": snapshot_pkl, "timestamp": time.time()}


def append_metric_lines(path: str, lines: Sequence[Dict]) -> None:
    """Append JSON lines to `path`, rewriting it atomically (old lines are kept, never truncated)."""
    from stylegan_unlearn.fileio import atomic_write_text

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
        raise click.ClickException(f"--attribute-names gives {len(names)} names but the attribute classifier has "
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
    from stylegan_unlearn.images import quantize
    from stylegan_unlearn.seeds import generate_images

    result = _Measurements()
    for _batch_seeds, images in generate_images(G, seeds, device=device, **sampling):
        if classifier is not None:
            result.flags.append(classifier.has_feature(images))
        if attributes is not None:
            result.attribute_flags.append(attributes.attribute_flags(images))
        if detector is not None:
            result.features.append(detector(quantize(images)))
    return result


def check_network_paths(labelled: Sequence[Tuple[str, str]]) -> None:
    """Fail before any work when a local network pkl of `(label, path)` is missing or a directory (URLs pass)."""
    from stylegan_unlearn.pkl import check_network_file

    for label, path in labelled:
        if "://" not in str(path):
            check_network_file(path, label)


def _check_compatible(G: torch.nn.Module, first: torch.nn.Module, name: str, first_name: str) -> None:
    for attr in ("img_resolution", "img_channels", "z_dim", "c_dim"):
        if int(getattr(G, attr)) != int(getattr(first, attr)):
            raise click.ClickException(f"network '{name}' has {attr}={getattr(G, attr)} but '{first_name}' has "
                                       f"{getattr(first, attr)}; same-seed comparison needs networks of one shape")


def evaluate_networks(networks: Sequence[Tuple[str, str]], seeds: Sequence[int], out: str, *,
                      classifier=None, attributes=None, attribute_names: Optional[str] = None,
                      reference: Optional[str] = None, detector_spec: Optional[str] = None,
                      ret_reference: Optional[str] = None, ret_seeds: Optional[Sequence[int]] = None,
                      kid_subsets: int = 100, kid_subset_size: int = 1000,
                      sampling: Optional[Dict] = None, device: torch.device = torch.device("cpu"),
                      options: Optional[Dict] = None, echo=print) -> Dict:
    """Measure every network and write metric-*.jsonl and summary.json into `out`; returns the summary."""
    from stylegan_unlearn.metrics import (attribute_shares, count_negatives, drift_table, fid_from_features,
                                          kid_from_features, negative_share, pul)
    from stylegan_unlearn.metrics.detectors import dataset_features, load_detector
    from stylegan_unlearn.fileio import check_writable_dir
    from stylegan_unlearn.pkl import load_generator
    from stylegan_unlearn.ranges import format_int_ranges

    sampling = dict(sampling or {})
    seeds = list(seeds)
    if not seeds:
        raise click.ClickException("--seeds is empty")
    check_writable_dir(out, "--out")
    check_network_paths([(f"--network {name}", path) for name, path in networks]
                        + ([("--ret-reference-network", ret_reference)] if ret_reference else []))

    detector = None
    if reference or ret_reference:
        try:
            detector = load_detector(detector_spec, device=device)
        except (FileNotFoundError, ValueError) as err:
            raise click.ClickException(str(err)) from None
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
                try:
                    reference_features = dataset_features(reference, detector, resolution=int(G.img_resolution),
                                                          channels=int(G.img_channels))
                except (FileNotFoundError, ValueError) as err:
                    raise click.ClickException(str(err)) from None
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
        try:
            measured = _measure(G, seeds, classifier, attributes, detector, sampling, device)
        except ValueError as err:
            raise click.ClickException(str(err)) from None
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
            raise click.ClickException(f"network '{name}': {err}") from None
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
    from stylegan_unlearn.fileio import atomic_write_text

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


def _format_table(summary: Dict) -> str:
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


@click.command("evaluate")
@click.option("--network", "networks", multiple=True, required=True,
              help="Network pkl, optionally NAME=PATH; repeat. The first is the original.")
@click.option("--seeds", type=IntRanges(), default="0-999", show_default=True, help="Fixed seeds for every network.")
@click.option("--classifier", default=None, help="TorchScript file or 'module:function' that spots the feature (PUL).")
@click.option("--target-class", type=int, default=None, help="Which classifier output is the feature.")
@click.option("--threshold", type=FINITE_FLOAT, default=None, help="Score threshold (default: logit 0, or arg-max).")
@click.option("--resize", default=None, help="Resize images for the classifiers: '224' or 'WxH'.")
@click.option("--reference", default=None, type=click.Path(), help="Reference images (zip/folder) for FID and KID.")
@click.option("--detector", "detector_spec", default=None,
              help="Feature detector file or URL [default: the reference inception-2015-12-05.pt URL].")
@click.option("--ret-reference-network", default=None, help="Network pkl whose samples Ret-FID compares against.")
@click.option("--ret-seeds", type=IntRanges(), default=None,
              help="Seeds for the Ret-FID reference network [default: --seeds, i.e. paired latents; give a "
                   "disjoint range for independent samples].")
@click.option("--attributes", default=None, help="Multi-output classifier for the attribute drift table.")
@click.option("--attribute-names", default=None, help="Comma-separated names, or a file with one name per line.")
@click.option("--attribute-threshold", type=FINITE_FLOAT, default=None,
              help="Attribute present when its score ≥ this (multi-label); default: arg-max class only.")
@click.option("--kid-subsets", type=click.IntRange(min=1), default=100, show_default=True,
              help="KID: number of random subsets averaged.")
@click.option("--kid-subset-size", type=click.IntRange(min=2), default=1000, show_default=True,
              help="KID: samples per subset (capped by the smaller set).")
@click.option("--class", "class_idx", type=int, default=None, help="Class for conditional networks (default seed % c_dim).")
@sampling_options
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output directory.")
@one_line_errors
def evaluate_command(networks, seeds, classifier, target_class, threshold, resize, reference, detector_spec,
                     ret_reference_network, ret_seeds, attributes, attribute_names, attribute_threshold, kid_subsets,
                     kid_subset_size, class_idx, truncation_psi, noise_mode, batch_size, device, out):
    """Measure PUL, FID, KID, Ret-FID and attribute drift of networks on fixed seeds.

    \b
    stylegan-unlearn evaluate --network original=ffhq.pkl --network unlearned=run/network-final.pkl \\
        --seeds 0-999 --classifier glasses.pt --reference no-glasses.zip --out eval/
    """
    from stylegan_unlearn.classifier import load_classifier
    from stylegan_unlearn.device import resolve_device
    from stylegan_unlearn.ranges import format_int_ranges

    if not (classifier or reference or ret_reference_network or attributes):
        raise click.UsageError("nothing to measure: give --classifier (PUL), --reference (FID/KID), "
                               "--ret-reference-network (Ret-FID) and/or --attributes (drift)")
    if not classifier and (target_class is not None or threshold is not None):
        raise click.UsageError("--target-class and --threshold only apply with --classifier")
    if ret_seeds and not ret_reference_network:
        raise click.UsageError("--ret-seeds only applies with --ret-reference-network")
    if not attributes and (attribute_names or attribute_threshold is not None):
        raise click.UsageError("--attribute-names and --attribute-threshold only apply with --attributes")
    from stylegan_unlearn.fileio import check_writable_dir

    check_writable_dir(out, "--out")
    device = resolve_device(device)
    specs = _unique_names([parse_network_spec(n) for n in networks])
    check_network_paths([(f"--network {name}", path) for name, path in specs])
    try:
        judge = load_classifier(classifier, target_class=target_class, threshold=threshold, resize=resize,
                                device=device) if classifier else None
        attribute_judge = load_classifier(attributes, threshold=attribute_threshold, resize=resize,
                                          device=device) if attributes else None
    except (FileNotFoundError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    options = {
        "networks": [f"{n}={p}" for n, p in specs], "seeds": format_int_ranges(seeds), "classifier": classifier,
        "target_class": target_class, "threshold": threshold, "resize": resize, "reference": reference,
        "detector": detector_spec, "ret_reference_network": ret_reference_network,
        "ret_seeds": format_int_ranges(ret_seeds) if ret_seeds else None, "attributes": attributes,
        "attribute_names": attribute_names, "attribute_threshold": attribute_threshold,
        "kid_subsets": kid_subsets, "kid_subset_size": kid_subset_size, "class": class_idx,
        "trunc": truncation_psi, "noise_mode": noise_mode, "batch": batch_size, "device": str(device), "out": out,
    }
    sampling = {"batch_size": batch_size, "truncation_psi": truncation_psi, "noise_mode": noise_mode,
                "class_idx": class_idx}
    summary = evaluate_networks(specs, seeds, out, classifier=judge, attributes=attribute_judge,
                                attribute_names=attribute_names, reference=reference, detector_spec=detector_spec,
                                ret_reference=ret_reference_network, ret_seeds=ret_seeds, kid_subsets=kid_subsets,
                                kid_subset_size=kid_subset_size, sampling=sampling, device=device,
                                options=options, echo=click.echo)
    click.echo(_format_table(summary))
    if summary["drift"]:
        from stylegan_unlearn.metrics import drift_markdown

        click.echo("\nAttribute shares (change from the original):\n" + drift_markdown(summary["drift"]["rows"]))
    click.echo(f"Wrote {os.path.join(out, 'summary.json')}")
