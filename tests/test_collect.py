"""Classifier loading and decisions, and `stylegan-unlearn collect` on a tiny network.

Stand-ins, scripted here: a brightness classifier (logit = 10·mean pixel, so "has the feature" means
"brighter than mid-grey"), a 3-output attribute classifier and two feature extractors (the reference
uint8 `return_features` style and the float [-1, 1] style). Other test files import these builders.
"""
import json
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from stylegan_unlearn.classifier import Classifier, load_classifier, parse_resize
from stylegan_unlearn.ranges import parse_int_ranges
from tiny import tiny_network_pkl


# ------------------------------------------------------------------------------------------ stand-ins

class BrightnessClassifier(torch.nn.Module):
    """One logit: positive when the image is brighter than mid-grey."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=[1, 2, 3]) * 10


class AttributeClassifier(torch.nn.Module):
    """Three logits: bright, left half brighter than right half, top half brighter than bottom half."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, h = x.shape[3] // 2, x.shape[2] // 2
        bright = x.mean(dim=[1, 2, 3])
        left = x[:, :, :, :w].mean(dim=[1, 2, 3]) - x[:, :, :, w:].mean(dim=[1, 2, 3])
        top = x[:, :, :h, :].mean(dim=[1, 2, 3]) - x[:, :, h:, :].mean(dim=[1, 2, 3])
        return torch.stack([bright, left, top], dim=1) * 10


class FloatFeatures(torch.nn.Module):
    """Float-style extractor: 4×4 average-pooled pixels and per-channel std, from [-1, 1] input."""

    def features(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.adaptive_avg_pool2d(x, 4).flatten(1)
        return torch.cat([pooled, x.std(dim=[2, 3])], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class ReferenceStyleFeatures(torch.nn.Module):
    """Reference-style extractor: uint8 RGB in, `return_features=True` gives pooled features."""

    def forward(self, img: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        if img.dtype != torch.uint8 or img.shape[1] != 3:
            raise ValueError("expected uint8 RGB input")
        x = img.to(torch.float32) / 127.5 - 1
        feats = torch.cat([F.adaptive_avg_pool2d(x, 4).flatten(1), x.std(dim=[2, 3])], dim=1)
        if return_features:
            return feats
        return feats.sum(dim=1)


def save_script(module: torch.nn.Module, path: Path) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated, still what users have
        torch.jit.save(torch.jit.script(module), str(path))
    return str(path)


def write_standins(directory: Path) -> dict:
    """Save every stand-in as a TorchScript file; returns {name: path}."""
    directory.mkdir(parents=True, exist_ok=True)
    return {
        "classifier": save_script(BrightnessClassifier(), directory / "bright.pt"),
        "attributes": save_script(AttributeClassifier(), directory / "attributes.pt"),
        "float_detector": save_script(FloatFeatures(), directory / "float_features.pt"),
        "reference_detector": save_script(ReferenceStyleFeatures(), directory / "reference_features.pt"),
    }


@pytest.fixture(scope="module")
def standins(tmp_path_factory) -> dict:
    return write_standins(tmp_path_factory.mktemp("standins"))


# ------------------------------------------------------------------------------------------ classifier

def _images(values) -> torch.Tensor:
    """One flat 3×8×8 image per value."""
    return torch.tensor(values, dtype=torch.float32)[:, None, None, None].repeat(1, 3, 8, 8)


def test_torchscript_classifier_logit_threshold(standins):
    classifier = load_classifier(standins["classifier"])
    flags = classifier.has_feature(_images([-0.5, -0.01, 0.0, 0.3]))
    assert flags.tolist() == [False, False, True, True]
    strict = load_classifier(standins["classifier"], threshold=2.0)  # logit 10·mean ≥ 2 ⇔ mean ≥ 0.2
    assert strict.has_feature(_images([0.1, 0.25])).tolist() == [False, True]


def test_classifier_input_is_clamped_to_the_contract_range(standins):
    classifier = load_classifier(standins["classifier"])
    scores = classifier.scores(_images([3.0, -7.0]))
    assert scores[:, 0].tolist() == pytest.approx([10.0, -10.0])


def test_multiclass_argmax_and_multilabel_threshold(standins):
    images = torch.full([2, 1, 8, 8], -1.0)
    images[0, :, :, :4] = 1.0   # left bright: mean 0 → bright logit 0, left logit 20
    images[1, :, :4, :] = 0.5   # top brighter: mean -0.25, left 0, top 15
    argmax = load_classifier(standins["attributes"], target_class=1)
    assert argmax.has_feature(images).tolist() == [True, False]
    multilabel = load_classifier(standins["attributes"], target_class=0, threshold=0.0)
    assert multilabel.has_feature(images).tolist() == [True, False]
    flags = load_classifier(standins["attributes"], threshold=-1.0).attribute_flags(images)
    assert flags.tolist() == [[True, True, True], [False, True, True]]
    onehot = load_classifier(standins["attributes"]).attribute_flags(images)
    assert onehot.tolist() == [[False, True, False], [False, False, True]]


def test_multioutput_classifier_needs_a_valid_target_class(standins):
    with pytest.raises(ValueError, match="--target-class"):
        load_classifier(standins["attributes"]).has_feature(_images([0.1]))
    with pytest.raises(ValueError, match="out of range"):
        load_classifier(standins["attributes"], target_class=3).has_feature(_images([0.1]))


def test_module_function_specs(monkeypatch):
    module = types.ModuleType("fake_user_classifiers")
    module.dark = lambda x: -x.mean(dim=[1, 2, 3])
    module.build = lambda: BrightnessClassifier()
    module.Bright = BrightnessClassifier
    monkeypatch.setitem(sys.modules, "fake_user_classifiers", module)
    images = _images([-0.5, 0.5])
    assert load_classifier("fake_user_classifiers:dark").has_feature(images).tolist() == [True, False]
    assert load_classifier("fake_user_classifiers:build()").has_feature(images).tolist() == [False, True]
    assert load_classifier("fake_user_classifiers:Bright").has_feature(images).tolist() == [False, True]
    with pytest.raises(ValueError, match="no attribute 'missing'"):
        load_classifier("fake_user_classifiers:missing")
    with pytest.raises(ValueError, match="cannot import module"):
        load_classifier("no_such_module_here:fn")


def test_bad_classifier_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither an existing TorchScript file"):
        load_classifier(str(tmp_path / "missing.pt"))
    state_dict_file = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(2)}, str(state_dict_file))
    with pytest.raises(ValueError, match="not a TorchScript file"):
        load_classifier(str(state_dict_file))


def test_resize_reaches_the_classifier():
    seen = []

    def record(x):
        seen.append(tuple(x.shape))
        return x.mean(dim=[1, 2, 3])

    Classifier(record, resize="6x4").has_feature(torch.zeros([2, 3, 16, 16]))
    assert seen == [(2, 3, 4, 6)]  # width 6, height 4
    assert parse_resize("224") == (224, 224)
    with pytest.raises(ValueError, match="--resize"):
        parse_resize("big")


def test_classifier_bad_output_shape():
    with pytest.raises(ValueError, match=r"returned shape \[3\] for 2 images"):
        Classifier(lambda x: torch.zeros(3)).has_feature(torch.zeros([2, 3, 8, 8]))


# ------------------------------------------------------------------------------------------ collect

def run_cli(args, expect_ok: bool = True):
    from stylegan_unlearn.cli import main

    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    if expect_ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def network(tmp_path_factory) -> str:
    return tiny_network_pkl(tmp_path_factory.mktemp("net") / "net.pkl")


def _reference_images(network_pkl: str, seeds, class_idx=None) -> torch.Tensor:
    """Images straight from the generator, with z drawn as the reference generate.py does."""
    from stylegan_unlearn.pkl import load_generator

    G = load_generator(network_pkl)
    z = torch.from_numpy(np.stack([np.random.RandomState(s).randn(G.z_dim) for s in seeds])).float()
    c = torch.zeros([len(seeds), G.c_dim])
    for i, s in enumerate(seeds):
        if G.c_dim:
            c[i, s % G.c_dim if class_idx is None else class_idx] = 1
    with torch.no_grad():
        return G(z, c, noise_mode="const", force_fp32=True)


def _load_zip(path: Path, use_labels: bool = False, label_dim=None):
    from stylegan_unlearn.data import ImageDataset

    dataset = ImageDataset(str(path), use_labels=use_labels, label_dim=label_dim)
    images = np.stack([dataset[i][0] for i in range(len(dataset))])
    labels = np.stack([dataset[i][1] for i in range(len(dataset))])
    return dataset, images, labels


def test_collect_by_classifier(tmp_path, network, standins):
    seeds = list(range(12))
    scores = 10 * _reference_images(network, seeds).clamp(-1, 1).mean(dim=[1, 2, 3])
    threshold = float(scores.median())
    expected_negatives = [s for s, v in zip(seeds, scores.tolist()) if v >= threshold]
    out = tmp_path / "collected"
    run_cli(["collect", "--network", network, "--seeds", "0-11", "--classifier", standins["classifier"],
             "--threshold", threshold, "--outdir", out, "--device", "cpu", "--batch", 5])
    summary = json.loads((out / "collect.json").read_text())

    assert parse_int_ranges(summary["negatives"]["seeds"]) == expected_negatives
    assert sorted(parse_int_ranges(summary["positives"]["seeds"]) + expected_negatives) == seeds
    assert summary["decided_by"] == "classifier" and summary["classifier"]["threshold"] == threshold
    for kind, count in (("negatives", len(expected_negatives)), ("positives", 12 - len(expected_negatives))):
        dataset, images, _labels = _load_zip(out / f"{kind}.zip")
        assert len(dataset) == count == summary[kind]["count"]
        assert dataset.image_shape == [3, 16, 16]
        assert (out / f"{kind}.png").stat().st_size > 0
    _dataset, images, _labels = _load_zip(out / "negatives.zip")
    first = _reference_images(network, expected_negatives[:1])
    expected_pixels = (first * 127.5 + 128).clamp(0, 255).to(torch.uint8)[0].numpy()
    np.testing.assert_array_equal(images[0], expected_pixels)


def test_collect_by_picked_seeds(tmp_path, network):
    out = tmp_path / "picked"
    run_cli(["collect", "--network", network, "--seeds", "0-9", "--negative-seeds", "3,17,5-6",
             "--outdir", out, "--device", "cpu"])
    summary = json.loads((out / "collect.json").read_text())
    assert summary["negatives"]["seeds"] == "3,5-6,17"  # generation order: --seeds, then other picked seeds
    assert summary["positives"]["seeds"] == "0-2,4,7-9"
    negatives, neg_images, _ = _load_zip(out / "negatives.zip")
    positives, _, _ = _load_zip(out / "positives.zip")
    assert (len(negatives), len(positives)) == (4, 7)
    expected = (_reference_images(network, [17]) * 127.5 + 128).clamp(0, 255).to(torch.uint8)[0].numpy()
    np.testing.assert_array_equal(neg_images[3], expected)


def test_collect_conditional_network_writes_labels(tmp_path):
    network = tiny_network_pkl(tmp_path / "cond.pkl", c_dim=3, resolution=8, channels=1)
    out = tmp_path / "cond"
    run_cli(["collect", "--network", network, "--seeds", "0-5", "--negative-seeds", "1,4",
             "--outdir", out, "--device", "cpu"])
    # One-hot vectors of the network's width, even though class 1 is the largest class among negatives.
    negatives, images, labels = _load_zip(out / "negatives.zip", use_labels=True)
    assert negatives.label_dim == 3
    assert negatives.image_shape == [1, 8, 8]
    np.testing.assert_array_equal(labels, np.eye(3, dtype=np.float32)[[1, 1]])  # seeds 1 and 4 → class s % 3
    _positives, _images, labels = _load_zip(out / "positives.zip", use_labels=True)
    np.testing.assert_array_equal(labels.argmax(1), [0, 2, 0, 2])  # seeds 0, 2, 3, 5


def test_collect_user_folders_are_converted(tmp_path, network):
    from PIL import Image

    negatives_dir, positives_dir = tmp_path / "neg", tmp_path / "pos"
    negatives_dir.mkdir(); positives_dir.mkdir()
    Image.new("RGBA", (30, 20), (255, 0, 0, 255)).save(negatives_dir / "a.png")
    Image.new("L", (16, 16), 77).save(negatives_dir / "b.png")
    Image.new("RGB", (16, 16), (1, 2, 3)).save(positives_dir / "c.png")
    (positives_dir / "notes.txt").write_text("not an image")
    out = tmp_path / "folders"
    run_cli(["collect", "--network", network, "--negatives-dir", negatives_dir, "--positives-dir", positives_dir,
             "--outdir", out, "--device", "cpu"])
    summary = json.loads((out / "collect.json").read_text())
    assert summary["negatives"]["converted_files"] == 2 and summary["positives"]["converted_files"] == 0
    _ds, images, _ = _load_zip(out / "negatives.zip")
    assert images.shape == (2, 3, 16, 16)
    assert images[0, :, 8, 8].tolist() == [255, 0, 0] and images[1, :, 8, 8].tolist() == [77, 77, 77]
    _ds, images, _ = _load_zip(out / "positives.zip")
    assert images[0, :, 0, 0].tolist() == [1, 2, 3]


@pytest.mark.parametrize("extra, message", [
    (["--seeds", "0-3"], "needs a way to split them"),
    (["--seeds", "0-3", "--negative-seeds", "1", "--classifier", "x.pt"], "not both"),
    (["--classifier", "x.pt"], "needs --seeds"),
    ([], "nothing to collect"),
])
def test_collect_usage_errors(tmp_path, network, extra, message):
    result = run_cli(["collect", "--network", network, "--outdir", tmp_path / "o", *extra], expect_ok=False)
    assert result.exit_code != 0 and message in result.output


def test_collect_missing_network_is_one_clear_line(tmp_path):
    result = run_cli(["collect", "--network", tmp_path / "none.pkl", "--seeds", "0", "--negative-seeds", "0",
                      "--outdir", tmp_path / "o", "--device", "cpu"], expect_ok=False)
    assert result.exit_code == 1 and "none.pkl" in result.output and "Traceback" not in result.output


def test_collect_writes_disjoint_negative_splits(tmp_path, network):
    out = tmp_path / "splits"
    run_cli(["collect", "--network", network, "--seeds", "0-19", "--negative-seeds", "0-10", "--splits", 3,
             "--outdir", out, "--device", "cpu"])
    summary = json.loads((out / "collect.json").read_text())
    split_seeds = [parse_int_ranges(part["seeds"]) for part in summary["negative_splits"]]
    assert [len(s) for s in split_seeds] == [4, 3, 4]  # 11 negatives in 3 parts as equal as possible
    assert sorted(sum(split_seeds, [])) == list(range(11))  # disjoint, and together all negatives
    _all, all_images, _ = _load_zip(out / "negatives.zip")
    for index, seeds in enumerate(split_seeds):
        dataset, images, _ = _load_zip(out / f"negatives-{index + 1}.zip")
        assert len(dataset) == len(seeds) == summary["negative_splits"][index]["count"]
        first = sum(len(s) for s in split_seeds[:index])
        np.testing.assert_array_equal(images, all_images[first:first + len(seeds)])

    fixed = tmp_path / "fixed"
    run_cli(["collect", "--network", network, "--seeds", "0-19", "--negative-seeds", "0-10", "--splits", 2,
             "--negatives-per-split", 5, "--outdir", fixed, "--device", "cpu"])
    parts = json.loads((fixed / "collect.json").read_text())["negative_splits"]
    assert [p["seeds"] for p in parts] == ["0-4", "5-9"]


@pytest.mark.parametrize("extra, message", [
    (["--splits", 12], "found 11 negatives, fewer than one per split"),
    (["--splits", 3, "--negatives-per-split", 4], "found 11 negatives, fewer than 3 × 4"),
    (["--negatives-per-split", 4], "needs --splits"),
])
def test_collect_bad_splits_are_one_clear_line_with_nothing_written(tmp_path, network, extra, message):
    out = tmp_path / "bad"
    result = run_cli(["collect", "--network", network, "--seeds", "0-19", "--negative-seeds", "0-10",
                      "--outdir", out, "--device", "cpu", *extra], expect_ok=False)
    assert result.exit_code != 0 and message in result.output
    assert not (out / "negatives.zip").exists() and not (out / "collect.json").exists()
