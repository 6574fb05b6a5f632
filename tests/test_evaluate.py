"""Feature detectors, seed sampling, and `stylegan-unlearn evaluate` on tiny networks."""
import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from stylegan_unlearn.metrics import fid_from_features
from stylegan_unlearn.metrics.detectors import INCEPTION_URL, dataset_features, load_detector
from stylegan_unlearn.images import quantize
from stylegan_unlearn.seeds import seed_classes, seed_latents

from test_collect import write_standins
from tiny import tiny_network_pkl


@pytest.fixture(scope="module")
def standins(tmp_path_factory) -> dict:
    return write_standins(tmp_path_factory.mktemp("standins"))


@pytest.fixture()
def cache_dir(tmp_path, monkeypatch) -> Path:
    directory = tmp_path / "dnnlib-cache"
    monkeypatch.setenv("DNNLIB_CACHE_DIR", str(directory))
    return directory


def _write_zip(path: Path, images_nhwc: np.ndarray) -> str:
    from stylegan_unlearn.data import write_image_dataset

    write_image_dataset(str(path), images_nhwc)
    return str(path)


# ------------------------------------------------------------------------------------------ sampling

def test_seed_latents_match_the_reference_generate_convention():
    z = seed_latents([5, 0], 7)
    assert z.dtype == torch.float32 and z.shape == (2, 7)
    np.testing.assert_allclose(z[0].numpy(), np.random.RandomState(5).randn(1, 7)[0].astype(np.float32))
    np.testing.assert_allclose(z[1].numpy(), np.random.RandomState(0).randn(1, 7)[0].astype(np.float32))


def test_seed_classes():
    assert seed_classes([0, 1, 5], c_dim=3) == [0, 1, 2]
    assert seed_classes([0, 1], c_dim=3, class_idx=2) == [2, 2]
    assert seed_classes([4], c_dim=0) == [None]
    with pytest.raises(ValueError, match="between 0 and 2"):
        seed_classes([0], c_dim=3, class_idx=3)


def test_quantize_is_round_half_up_of_127_5_times_x_plus_1():
    x = torch.tensor([-1.5, -1.0, 0.0, 1 / 255, 1.0, 2.0])
    assert quantize(x).tolist() == [0, 0, 128, 128, 255, 255]
    assert quantize(torch.tensor([-1 + 1 / 127.5 * 0.5])).item() == 1  # 127.5·(x+1) = 0.5 rounds up


# ------------------------------------------------------------------------------------------ detectors

def test_detector_offline_url_names_where_to_put_the_file(cache_dir):
    url = "http://127.0.0.1:9/metrics/inception-2015-12-05.pt"  # nothing listens on port 9
    expected = cache_dir / "downloads" / (hashlib.md5(url.encode()).hexdigest() + "_inception-2015-12-05.pt")
    with pytest.raises(FileNotFoundError) as info:
        load_detector(url, num_attempts=1)
    assert str(expected) in str(info.value)
    assert "--detector" in str(info.value)


def test_detector_default_url_is_served_from_the_cache(cache_dir, standins):
    cached = cache_dir / "downloads" / (hashlib.md5(INCEPTION_URL.encode()).hexdigest() + "_inception-2015-12-05.pt")
    cached.parent.mkdir(parents=True)
    cached.write_bytes(Path(standins["reference_detector"]).read_bytes())
    detector = load_detector(None)
    assert detector.reference_style and detector.name == "inception-2015-12-05"
    gray = torch.randint(0, 256, [3, 1, 16, 16], dtype=torch.uint8)
    features = detector(gray)
    rgb_features = detector(gray.repeat(1, 3, 1, 1))
    assert features.shape == (3, 51)
    np.testing.assert_allclose(features, rgb_features)  # grayscale goes in as three equal channels


def test_detector_missing_local_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_detector(str(tmp_path / "nope.pt"))


def test_float_style_detector_sees_minus_one_to_one(standins):
    detector = load_detector(standins["float_detector"])
    assert not detector.reference_style
    images = torch.zeros([2, 3, 8, 8], dtype=torch.uint8)
    images[1] = 255
    features = detector(images)
    np.testing.assert_allclose(features[0, :48], -1.0)
    np.testing.assert_allclose(features[1, :48], 1.0)


def test_dataset_features_are_cached_by_content(tmp_path, cache_dir, standins):
    detector = load_detector(standins["float_detector"])
    images = np.random.RandomState(0).randint(0, 256, [10, 8, 8, 3]).astype(np.uint8)
    path = _write_zip(tmp_path / "real.zip", images)
    first = dataset_features(path, detector)
    np.testing.assert_allclose(first, detector(torch.from_numpy(images).permute(0, 3, 1, 2)))
    cached = list((cache_dir / "gan-metrics").glob("real-float_features-*.npz"))
    assert len(cached) == 1
    with np.load(cached[0]) as data:  # poison the cache: the second call must come from it
        np.savez(cached[0], features=data["features"] + 1)
    np.testing.assert_allclose(dataset_features(path, detector), first + 1)
    _write_zip(tmp_path / "real.zip", images[::-1].copy())  # new content → new key → recomputed
    np.testing.assert_allclose(dataset_features(path, detector), first[::-1])
    assert len(list((cache_dir / "gan-metrics").glob("*.npz"))) == 2


def test_dataset_features_reject_a_resolution_mismatch(tmp_path, standins):
    detector = load_detector(standins["float_detector"])
    path = _write_zip(tmp_path / "real.zip", np.zeros([2, 8, 8, 3], np.uint8))
    with pytest.raises(ValueError, match="network makes 16x16"):
        dataset_features(path, detector, resolution=16, use_cache=False)


# ------------------------------------------------------------------------------------------ evaluate

from test_collect import _reference_images, run_cli  # noqa: E402


@pytest.fixture(scope="module")
def networks(tmp_path_factory) -> dict:
    """An original tiny network and a darker copy (last toRGB bias lowered): fewer 'bright' samples."""
    from stylegan_unlearn.pkl import load_network_pkl, save_network_pkl

    directory = tmp_path_factory.mktemp("nets")
    original = tiny_network_pkl(directory / "original.pkl")
    data = load_network_pkl(original)
    for key in ("G", "G_ema"):
        with torch.no_grad():
            data[key].synthesis.b16.torgb.bias -= 0.4
    darker = str(directory / "darker.pkl")
    save_network_pkl(darker, data)
    return {"original": original, "darker": darker}


def _direct_features(detector_path: str, images: torch.Tensor) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(detector_path)
    pixels = (images * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    with torch.no_grad():
        return module.features(pixels.float() / 127.5 - 1).numpy()


def test_evaluate_pul_fid_kid_retfid_and_drift(tmp_path, networks, standins, cache_dir):
    from stylegan_unlearn.data import write_image_dataset

    seeds = list(range(20))
    original_images = _reference_images(networks["original"], seeds)
    darker_images = _reference_images(networks["darker"], seeds)
    bright_original = (original_images.clamp(-1, 1).mean(dim=[1, 2, 3]) * 10 >= 1).numpy()
    bright_darker = (darker_images.clamp(-1, 1).mean(dim=[1, 2, 3]) * 10 >= 1).numpy()
    assert bright_original.sum() > bright_darker.sum()  # the stand-in "feature" became rarer
    reference_zip = str(tmp_path / "reference.zip")
    write_image_dataset(reference_zip, (original_images * 127.5 + 128).clamp(0, 255).to(torch.uint8)
                        .permute(0, 2, 3, 1).numpy())

    out = tmp_path / "eval"
    run_cli(["evaluate", "--network", networks["original"], "--network", f"unlearned={networks['darker']}",
             "--seeds", "0-19", "--classifier", standins["classifier"], "--threshold", 1,
             "--reference", reference_zip, "--detector", standins["float_detector"],
             "--ret-reference-network", networks["original"], "--attributes", standins["attributes"],
             "--attribute-names", "bright,left,top", "--attribute-threshold", 0, "--kid-subset-size", 10,
             "--out", out, "--device", "cpu", "--batch", 8])
    summary = json.loads((out / "summary.json").read_text())
    original, unlearned = summary["networks"]
    assert (original["name"], unlearned["name"]) == ("original", "unlearned")
    assert original["n_neg"] == int(bright_original.sum()) and unlearned["n_neg"] == int(bright_darker.sum())
    expected_pul = 100 * (bright_original.sum() - bright_darker.sum()) / bright_original.sum()
    assert unlearned["pul"] == pytest.approx(expected_pul) and original["pul"] == 0
    assert unlearned["neg_share"] == pytest.approx(bright_darker.mean())

    original_features = _direct_features(standins["float_detector"], original_images)
    darker_features = _direct_features(standins["float_detector"], darker_images)
    assert abs(original["fid"]) < 1e-6 and abs(original["ret_fid"]) < 1e-6  # same images as the reference
    expected_fid = fid_from_features(darker_features, original_features)
    assert expected_fid > 0.1
    assert unlearned["fid"] == pytest.approx(expected_fid, rel=1e-4)
    assert unlearned["ret_fid"] == pytest.approx(expected_fid, rel=1e-4)
    assert unlearned["kid"] > abs(original["kid"])

    drift = {row["attribute"]: row for row in summary["drift"]["rows"]}
    assert set(drift) == {"bright", "left", "top"}
    assert drift["bright"]["shares"]["original"] == pytest.approx(
        (original_images.clamp(-1, 1).mean(dim=[1, 2, 3]) >= 0).float().mean().item())

    lines = [json.loads(line) for line in (out / "metric-pul.jsonl").read_text().splitlines()]
    assert len(lines) == 2
    assert set(lines[1]) == {"results", "metric", "total_time", "total_time_str", "num_gpus", "snapshot_pkl",
                             "timestamp"}
    assert lines[1]["metric"] == "pul" and lines[1]["results"]["pul"] == pytest.approx(expected_pul)
    for name in ("fid", "kid", "ret_fid", "attributes"):
        assert len((out / f"metric-{name}.jsonl").read_text().splitlines()) == 2


def test_evaluate_appends_metric_lines_and_names_networks(tmp_path, networks, standins):
    out = tmp_path / "eval"
    for _ in range(2):
        run_cli(["evaluate", "--network", networks["darker"], "--network", networks["original"], "--seeds", "0-3",
                 "--classifier", standins["classifier"], "--out", out, "--device", "cpu"])
    lines = (out / "metric-pul.jsonl").read_text().splitlines()
    assert len(lines) == 4
    names = [n["name"] for n in json.loads((out / "summary.json").read_text())["networks"]]
    assert names == ["original", "original-2"]  # first is the original; the second keeps its file stem, deduplicated


def test_evaluate_needs_something_to_measure(tmp_path, networks):
    result = run_cli(["evaluate", "--network", networks["original"], "--out", tmp_path / "e"], expect_ok=False)
    assert result.exit_code != 0 and "nothing to measure" in result.output


def test_evaluate_reference_resolution_mismatch_is_one_line(tmp_path, networks, standins):
    bad = _write_zip(tmp_path / "small.zip", np.zeros([4, 8, 8, 3], np.uint8))
    result = run_cli(["evaluate", "--network", networks["original"], "--seeds", "0-3", "--reference", bad,
                      "--detector", standins["float_detector"], "--out", tmp_path / "e", "--device", "cpu"],
                     expect_ok=False)
    assert result.exit_code == 1 and "resize the reference images" in result.output


def test_ret_fid_with_disjoint_seeds_compares_independent_samples(tmp_path, networks, standins):
    out = tmp_path / "eval"
    run_cli(["evaluate", "--network", networks["original"], "--seeds", "0-5", "--ret-reference-network",
             networks["original"], "--ret-seeds", "10-15", "--detector", standins["float_detector"],
             "--out", out, "--device", "cpu"])
    summary = json.loads((out / "summary.json").read_text())
    features = [_direct_features(standins["float_detector"], _reference_images(networks["original"], seeds))
                for seeds in (range(6), range(10, 16))]
    expected = fid_from_features(*features)
    assert expected > 0.01
    assert summary["networks"][0]["ret_fid"] == pytest.approx(expected, rel=1e-4)
    assert summary["ret_reference"]["seeds"] == "10-15"
