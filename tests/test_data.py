"""Reference-format datasets: reading zips and folders, writing zips, labels, bad inputs, network checks."""
import json
import os
import pickle
import zipfile

import numpy as np
import pytest
from PIL import Image

from stylegan_unlearn.data import (ImageDataset, check_dataset_matches_network, image_name, open_image_dataset,
                                   write_image_dataset)


def _random_images(n=5, res=16, channels=3, seed=0):
    return np.random.RandomState(seed).randint(0, 256, size=(n, res, res, channels), dtype=np.uint8)


def _write_png(path, array, fmt="PNG"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[array.shape[2]] if array.ndim == 3 else "L"
    Image.fromarray(array if array.ndim == 2 or array.shape[2] != 1 else array[:, :, 0], mode).save(path, format=fmt)


def test_zip_roundtrip_with_labels_and_xflip(tmp_path):
    images = _random_images()
    path = tmp_path / "faces.zip"
    assert write_image_dataset(str(path), images, labels=[0, 2, 1, 1, 0]) == 5
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist()[0] == "00000/img00000000.png"
        assert all(info.compress_type == zipfile.ZIP_STORED for info in archive.infolist())
        meta = json.loads(archive.read("dataset.json"))
    assert meta["labels"][3] == ["00000/img00000003.png", 1]

    ds = ImageDataset(str(path), use_labels=True, xflip=True)
    assert (len(ds), ds.name, ds.resolution, ds.num_channels) == (10, "faces", 16, 3)
    assert ds.image_shape == [3, 16, 16] and ds.label_shape == [3] and ds.label_dim == 3 and ds.has_labels
    image, label = ds[1]
    assert image.dtype == np.uint8 and np.array_equal(image, images[1].transpose(2, 0, 1))
    assert label.dtype == np.float32 and label.tolist() == [0, 0, 1]
    flipped, _ = ds[6]
    assert np.array_equal(flipped, images[1].transpose(2, 0, 1)[:, :, ::-1])
    details = ds.get_details(6)
    assert details.raw_idx == 1 and details.xflip and int(details.raw_label) == 2
    assert ds.get_label(3).tolist() == [0, 1, 0]


def test_unlabelled_use_gives_empty_labels(tmp_path):
    path = tmp_path / "x.zip"
    write_image_dataset(str(path), _random_images(3), labels=[4, 5, 6])
    ds = ImageDataset(str(path))
    assert ds.label_shape == [0] and not ds.has_labels and ds[0][1].shape == (0,)
    write_image_dataset(str(path), _random_images(3))
    ds = ImageDataset(str(path), use_labels=True)
    assert not ds.has_labels


def test_label_dim_widens_onehot(tmp_path):
    path = tmp_path / "threes.zip"
    write_image_dataset(str(path), _random_images(2), labels=[3, 3])
    ds = ImageDataset(str(path), use_labels=True, label_dim=10)
    assert ds.label_dim == 10 and ds.get_label(0).argmax() == 3
    with pytest.raises(ValueError, match="label"):
        ImageDataset(str(path), use_labels=True, label_dim=2).label_shape


def test_grayscale_folder_jpeg_and_sorting(tmp_path):
    folder = tmp_path / "digits"
    gray = _random_images(3, channels=1)[..., 0]
    _write_png(str(folder / "b" / "2.png"), gray[2])
    _write_png(str(folder / "a" / "1.png"), gray[1])
    _write_png(str(folder / "a" / "0.png"), gray[0])
    (folder / "notes.txt").write_text("not an image")
    with open(folder / "dataset.json", "w") as f:
        json.dump({"labels": [["a/0.png", [0.5, 1.0]], ["a/1.png", [1.5, 2.0]], ["b/2.png", [2.5, 3.0]]]}, f)
    ds = open_image_dataset(str(folder), use_labels=True)
    assert ds.image_shape == [1, 16, 16] and len(ds) == 3 and ds.name == "digits"
    assert np.array_equal(ds[2][0][0], gray[2])
    assert ds.get_label(1).tolist() == [1.5, 2.0] and not ds.has_onehot_labels

    jpegs = tmp_path / "jpegs"
    _write_png(str(jpegs / "x.jpg"), _random_images(1)[0], fmt="JPEG")
    assert ImageDataset(str(jpegs)).num_channels == 3


def test_max_size_subset_is_seeded_and_sorted(tmp_path):
    path = tmp_path / "many.zip"
    write_image_dataset(str(path), _random_images(20, res=4))
    a = ImageDataset(str(path), max_size=5, random_seed=1)
    b = ImageDataset(str(path), max_size=5, random_seed=1)
    c = ImageDataset(str(path), max_size=5, random_seed=2)
    raw = lambda ds: [ds.get_details(i).raw_idx for i in range(len(ds))]
    assert len(a) == 5 and raw(a) == raw(b) == sorted(raw(a)) and raw(a) != raw(c)


def test_dataset_pickles_for_workers(tmp_path):
    path = tmp_path / "p.zip"
    write_image_dataset(str(path), _random_images(3), labels=[0, 1, 0])
    ds = ImageDataset(str(path), use_labels=True)
    ds[0]  # opens the zip handle
    clone = pickle.loads(pickle.dumps(ds))
    assert np.array_equal(clone[2][0], ds[2][0]) and np.array_equal(clone.get_label(1), ds.get_label(1))


def test_constructible_by_class_name(tmp_path):
    dnnlib = pytest.importorskip("dnnlib")
    path = tmp_path / "d.zip"
    write_image_dataset(str(path), _random_images(2))
    ds = dnnlib.util.construct_class_by_name(class_name="stylegan_unlearn.data.ImageDataset", path=str(path),
                                             use_labels=False, xflip=False, max_size=None)
    assert len(ds) == 2


def _file(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("make, error, match", [
    (lambda p: p / "missing.zip", FileNotFoundError, "does not exist"),
    (lambda p: (p / "empty").mkdir() or p / "empty", ValueError, "no image files"),
    (lambda p: _file(p / "a.tar", b"x"), ValueError, "directory or a .zip"),
    (lambda p: _file(p / "bad.zip", b"not a zip"), ValueError, "not a readable zip"),
])
def test_bad_paths(tmp_path, make, error, match):
    with pytest.raises(error, match=match):
        ImageDataset(str(make(tmp_path)))


def test_bad_images(tmp_path):
    _write_png(str(tmp_path / "rect" / "0.png"), np.zeros((16, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="non-square"):
        ImageDataset(str(tmp_path / "rect"))
    _write_png(str(tmp_path / "odd" / "0.png"), np.zeros((28, 28), np.uint8))
    with pytest.raises(ValueError, match="power-of-two"):
        ImageDataset(str(tmp_path / "odd"))
    _write_png(str(tmp_path / "rgba" / "0.png"), np.zeros((8, 8, 4), np.uint8))
    with pytest.raises(ValueError, match="alpha"):
        ImageDataset(str(tmp_path / "rgba"))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "0.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(ValueError, match="cannot read image '0.png'"):
        ImageDataset(str(broken))
    with pytest.raises(ValueError, match="resolution=32"):
        write_image_dataset(str(tmp_path / "ok.zip"), _random_images(1))
        ImageDataset(str(tmp_path / "ok.zip"), resolution=32)


def test_mixed_shapes_fail_on_read(tmp_path):
    _write_png(str(tmp_path / "mix" / "0.png"), np.zeros((8, 8, 3), np.uint8))
    _write_png(str(tmp_path / "mix" / "1.png"), np.zeros((8, 8), np.uint8))
    ds = ImageDataset(str(tmp_path / "mix"))
    with pytest.raises(ValueError, match="1.png.*share one size"):
        ds[1]


def test_missing_label_entry(tmp_path):
    folder = tmp_path / "lab"
    _write_png(str(folder / "0.png"), np.zeros((8, 8, 3), np.uint8))
    _write_png(str(folder / "1.png"), np.zeros((8, 8, 3), np.uint8))
    (folder / "dataset.json").write_text(json.dumps({"labels": [["0.png", 1]]}))
    with pytest.raises(ValueError, match="no label for 1 image"):
        ImageDataset(str(folder), use_labels=True).label_shape


@pytest.mark.parametrize("images, labels, match", [
    (np.zeros((2, 16, 16, 3), np.float32), None, "uint8"),
    (np.zeros((2, 16, 16, 4), np.uint8), None, "C = 1 or 3"),
    (np.zeros((0, 16, 16, 3), np.uint8), None, "empty"),
    (np.zeros((2, 16, 8, 3), np.uint8), None, "square power-of-two"),
    (np.zeros((2, 16, 16, 3), np.uint8), [1], "2 images but 1 labels"),
    (np.zeros((2, 16, 16, 3), np.uint8), [1, -1], "non-negative"),
])
def test_write_rejects_bad_input(tmp_path, images, labels, match):
    target = tmp_path / "out.zip"
    with pytest.raises(ValueError, match=match):
        write_image_dataset(str(target), images, labels)
    assert not target.exists()


def test_write_grayscale_hw_and_nhw1(tmp_path):
    gray = _random_images(2, channels=1)
    write_image_dataset(str(tmp_path / "g.zip"), gray[..., 0])
    ds = ImageDataset(str(tmp_path / "g.zip"))
    assert ds.image_shape == [1, 16, 16] and np.array_equal(ds[1][0], gray[1].transpose(2, 0, 1))


class _FakeG:
    def __init__(self, img_resolution=16, img_channels=3, c_dim=0):
        self.img_resolution, self.img_channels, self.c_dim = img_resolution, img_channels, c_dim


def test_check_dataset_matches_network(tmp_path):
    path = tmp_path / "d.zip"
    write_image_dataset(str(path), _random_images(2), labels=[0, 1])
    plain = ImageDataset(str(path))
    labelled = ImageDataset(str(path), use_labels=True)
    check_dataset_matches_network(plain, _FakeG())
    check_dataset_matches_network(labelled, dict(img_resolution=16, img_channels=3, c_dim=2))
    with pytest.raises(ValueError, match="16x16 images but the network makes 32x32"):
        check_dataset_matches_network(plain, _FakeG(img_resolution=32))
    with pytest.raises(ValueError, match="3 channel.*makes 1"):
        check_dataset_matches_network(plain, _FakeG(img_channels=1))
    with pytest.raises(ValueError, match="conditional.*no labels"):
        check_dataset_matches_network(plain, _FakeG(c_dim=10))
    with pytest.raises(ValueError, match="unconditional"):
        check_dataset_matches_network(labelled, _FakeG())
    with pytest.raises(ValueError, match="c_dim=10"):
        check_dataset_matches_network(labelled, _FakeG(c_dim=10))


def test_image_name():
    assert image_name(0) == "00000/img00000000.png" and image_name(123456) == "00123/img00123456.png"


def test_write_with_label_dim_stores_one_hot_vectors_of_that_width(tmp_path):
    import json
    import zipfile

    from stylegan_unlearn.data import ImageDataset, write_image_dataset

    images = np.zeros((2, 8, 8, 1), np.uint8)
    path = str(tmp_path / "onehot.zip")
    write_image_dataset(path, images, labels=[1, 1], label_dim=4)
    with zipfile.ZipFile(path) as archive:
        labels = json.loads(archive.read("dataset.json"))["labels"]
    assert labels[0][1] == [0.0, 1.0, 0.0, 0.0]
    dataset = ImageDataset(path, use_labels=True)
    assert dataset.label_dim == 4 and dataset.get_label(1).tolist() == [0.0, 1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="below label_dim=2"):
        write_image_dataset(str(tmp_path / "bad.zip"), images, labels=[0, 3], label_dim=2)
    with pytest.raises(ValueError, match="without labels"):
        write_image_dataset(str(tmp_path / "bad2.zip"), images, label_dim=2)


def test_zip_read_by_several_dataloader_workers_gives_the_right_pixels(tmp_path):
    """Each forked worker opens its own zip handle: with one inherited handle the workers share a file offset
    and interleaved reads fail ('Bad magic number') or return another image's bytes."""
    import torch
    count, res = 1600, 8
    images = _random_images(n=count, res=res, channels=1, seed=3)
    path = tmp_path / "many.zip"
    write_image_dataset(str(path), images)
    dataset = ImageDataset(str(path))
    dataset[0]  # the parent process reads (and holds a handle) before the workers fork
    loader = torch.utils.data.DataLoader(dataset, batch_size=32, shuffle=True, num_workers=3,
                                         generator=torch.Generator().manual_seed(0), persistent_workers=False)
    seen = 0
    for _epoch in range(2):
        for batch_images, _labels in loader:
            flat = batch_images.reshape(len(batch_images), -1).numpy()
            # Every image is random noise, so its pixels identify it; look each one up.
            for pixels in flat:
                matches = np.flatnonzero((images.reshape(count, -1) == pixels).all(1))
                assert len(matches) == 1
            seen += len(batch_images)
    assert seen == 2 * count
