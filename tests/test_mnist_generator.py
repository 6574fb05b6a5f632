"""The bundled MNIST generator: loads in safe mode, makes digits the judge recognises, and its
recorded coverage (mnist_generator.json) is what the shipped weights actually produce."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import stylegan_unlearn
from stylegan_unlearn.mnist import coverage
from stylegan_unlearn.networks.stylegan2 import Discriminator, Generator
from stylegan_unlearn.pkl import load_network_pkl

ASSETS = Path(stylegan_unlearn.__file__).resolve().parent / "assets"
PKL = ASSETS / "mnist_generator.pkl"
RECORD = ASSETS / "mnist_generator.json"


@pytest.fixture(scope="module")
def networks():
    return load_network_pkl(PKL, safe=True)


@pytest.fixture(scope="module")
def record():
    return json.loads(RECORD.read_text())


def test_bundled_pkl_is_small_and_loads_in_safe_mode_as_our_networks(networks):
    assert PKL.stat().st_size < 8 * 2 ** 20
    assert isinstance(networks["G_ema"], Generator) and isinstance(networks["G"], Generator)
    assert isinstance(networks["D"], Discriminator)
    G = networks["G_ema"]
    assert (G.img_resolution, G.img_channels, G.c_dim) == (32, 1, 0)
    with torch.no_grad():
        images = G(torch.randn([4, G.z_dim]), torch.zeros([4, 0]), noise_mode="const")
        logits = networks["D"](images, torch.zeros([4, 0]))
    assert images.shape == (4, 1, 32, 32) and torch.isfinite(images).all()
    assert logits.shape == (4, 1) and torch.isfinite(logits).all()


def test_generated_digits_are_recognised_with_high_confidence(networks):
    judge_model = coverage.load_judge()
    images = coverage.generator_digits(networks["G_ema"], range(200))
    out = coverage.judge_outputs(judge_model, images)
    assert np.median(out["conf"]) >= 0.9
    assert len(set(out["pred"].tolist())) >= 8  # many digits, not one collapsed mode


def test_recorded_coverage_matches_the_shipped_weights(networks, record):
    probe = coverage.CoverageProbe(num_samples=record["coverage"]["num_samples"],
                                   seed_offset=record["coverage"]["seed_offset"])
    measured = probe.measure(networks["G_ema"])
    np.testing.assert_allclose(measured["shares"], record["coverage"]["shares"], atol=2e-3)
    assert measured["fid_judge"] == pytest.approx(record["coverage"]["fid_judge"], rel=1e-3)
    assert sum(measured["shares"]) == pytest.approx(1.0, abs=1e-6)


def test_snapshot_choice_prefers_coverage_then_fid():
    history = [dict(tag="a", covered=7, present=10, fid_judge=50.0),
               dict(tag="b", covered=9, present=10, fid_judge=80.0),
               dict(tag="c", covered=9, present=10, fid_judge=60.0),
               dict(tag="d", covered=3, present=4, fid_judge=10.0)]
    assert coverage.pick_snapshot(history, "best") == "c"
    assert coverage.pick_snapshot(history, "latest") == "d"
    assert coverage.pick_snapshot(history, "b") == "b"
    with pytest.raises(ValueError, match="no snapshot tagged"):
        coverage.pick_snapshot(history, "zzz")
