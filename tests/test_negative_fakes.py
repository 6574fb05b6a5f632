"""Negatives shown to D as fakes in Stage 2 (`--negatives`): the term, its gradient, and bad input."""
import numpy as np
import pytest
import torch

import training_hooks
import training_hooks.sg3 as sg3
from stylegan_unlearn.data import write_image_dataset
from stylegan_unlearn.method.negative_fakes import NegativeFakes, load_negative_images
from test_loss_plugins import adapted_copies, run_phase, stats, tiny_networks  # noqa: F401 (fixture)
from tiny import FakeDDP

RES = 16


def negatives_zip(tmp_path, count=5, res=RES, channels=1, name="negatives.zip"):
    rng = np.random.RandomState(0)
    images = rng.randint(0, 256, size=(count, res, res, channels)).astype(np.uint8)
    path = tmp_path / name
    write_image_dataset(str(path), images)
    return str(path), images


def test_images_load_whole_and_batches_are_in_d_range(tmp_path):
    path, images = negatives_zip(tmp_path)
    loaded = load_negative_images(path)
    assert loaded.shape == (5, 1, RES, RES)
    assert np.array_equal(loaded, images.transpose(0, 3, 1, 2))
    fakes = NegativeFakes(loaded, "cpu", weight=0.5, seed=3)
    batch = fakes.batch(12)
    assert batch.shape == (12, 1, RES, RES) and batch.dtype == torch.float32
    assert batch.min() >= -1 and batch.max() <= 1
    originals = {tuple(((torch.as_tensor(im, dtype=torch.float32) / 127.5 - 1)).flatten().tolist()) for im in loaded}
    assert all(tuple(row.flatten().tolist()) in originals for row in batch)
    again = NegativeFakes(loaded, "cpu", seed=3).batch(12)
    assert torch.equal(batch, again)


@pytest.mark.parametrize("signature", ["ada", "sg3"])
def test_dmain_adds_weight_times_softplus_of_d_on_negatives(tmp_path, signature, stats):
    path, _ = negatives_zip(tmp_path)
    G, D = tiny_networks()
    common = dict(adapted=adapted_copies(G), r1_gamma=0, pl_weight=0, style_mixing_prob=0)

    def build(**extra):
        if signature == "ada":
            return training_hooks.RepulsionLoss("cpu", FakeDDP(G.mapping), FakeDDP(G.synthesis), FakeDDP(D),
                                                **common, **extra)
        return sg3.RepulsionLoss("cpu", G, D, **common, **extra)

    def d_grads(loss):
        torch.manual_seed(7)
        run_phase(loss, signature, "Dmain", G, D, gain=1)
        return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in D.parameters()]

    plain = d_grads(build())
    with_negatives = build(negatives=path, negative_weight=0.7)
    seeded = NegativeFakes(with_negatives.negative_fakes.images.numpy(), "cpu", weight=0.7)
    expected_batch = seeded.batch(4)
    both = d_grads(with_negatives)
    assert "Loss/scores/negative" in stats and "Loss/D/negatives" in stats

    D.requires_grad_(True)
    for p in D.parameters():
        p.grad = None
    term = torch.nn.functional.softplus(D(expected_batch, torch.zeros(4, 0))).mean() * 0.7
    term.backward()
    D.requires_grad_(False)
    by_hand = [p.grad if p.grad is not None else torch.zeros_like(p) for p in D.parameters()]
    for got, base, extra in zip(both, plain, by_hand):
        assert torch.allclose(got, base + extra, atol=1e-5, rtol=1e-4)
    assert any(extra.abs().sum() > 0 for extra in by_hand)


def test_generator_phases_do_not_see_the_negatives(tmp_path, stats):
    path, _ = negatives_zip(tmp_path)
    G, D = tiny_networks()
    loss = training_hooks.RepulsionLoss("cpu", G.mapping, G.synthesis, D, adapted=adapted_copies(G), negatives=path)
    run_phase(loss, "ada", "Gmain", G, D)
    assert "Loss/scores/negative" not in stats
    run_phase(loss, "ada", "Dreg", G, D)
    assert "Loss/scores/negative" not in stats


def test_bad_negatives_are_clear_errors(tmp_path):
    G, D = tiny_networks()
    adapted = adapted_copies(G)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        training_hooks.RepulsionLoss("cpu", G.mapping, G.synthesis, D, adapted=adapted,
                                     negatives=str(tmp_path / "none.zip"))
    wrong_size, _ = negatives_zip(tmp_path, res=32, name="big.zip")
    with pytest.raises(ValueError, match="resize the dataset to 16"):
        training_hooks.RepulsionLoss("cpu", G.mapping, G.synthesis, D, adapted=adapted, negatives=wrong_size)
    rgb, _ = negatives_zip(tmp_path, channels=3, name="rgb.zip")
    with pytest.raises(ValueError, match="channel"):
        training_hooks.RepulsionLoss("cpu", G.mapping, G.synthesis, D, adapted=adapted, negatives=rgb)
    good, _ = negatives_zip(tmp_path, name="good.zip")
    with pytest.raises(ValueError, match="non-negative"):
        training_hooks.RepulsionLoss("cpu", G.mapping, G.synthesis, D, adapted=adapted, negatives=good,
                                     negative_weight=-1.0)
    with pytest.raises(ValueError, match="non-empty"):
        NegativeFakes(np.zeros((0, 1, RES, RES), np.uint8), "cpu")
