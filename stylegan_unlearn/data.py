"""Reference-format image datasets: read zips and folders, write zips, check them against a network.

The on-disk format is the one of the reference `dataset_tool.py`: a directory or an uncompressed
`.zip` holding image files (indexed by their sorted relative paths) and an optional `dataset.json`
with `{"labels": [["00000/img00000000.png", 6], ...]}` (integer classes, one-hot encoded) or float
label vectors. `ImageDataset` has the public API of the reference `ImageFolderDataset`, so it can be
named in `training_set_kwargs.class_name = 'stylegan_unlearn.data.ImageDataset'`.
"""
import io
import json
import os
import zipfile
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from PIL import Image

from stylegan_unlearn.fileio import atomic_write

try:
    import pyspng  # optional fast PNG decoder, as in the reference
except ImportError:  # pragma: no cover - depends on the environment
    pyspng = None

__all__ = [
    "Dataset", "ImageDataset", "ImageFolderDataset", "open_image_dataset", "write_image_dataset",
    "check_dataset_matches_network", "image_name",
]

Image.init()
_IMAGE_EXTENSIONS = frozenset(ext.lower() for ext in Image.EXTENSION)


class _Details(dict):
    """A dict with attribute access, like `dnnlib.EasyDict` (kept local so this module imports nothing heavy)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name)


def image_name(index: int) -> str:
    """Relative path of image `index` inside a dataset, as the reference dataset_tool names it."""
    digits = f"{index:08d}"
    return f"{digits[:5]}/img{digits}.png"


def _is_power_of_two(n: int) -> bool:
    return n >= 4 and (n & (n - 1)) == 0


class Dataset:
    """Base class with the reference dataset semantics: random subset, x-flip doubling, labels.

    Subclasses implement `_load_raw_image(raw_idx) -> uint8 [C, H, W]`, `_load_raw_labels() -> ndarray or None`
    and `close()`.
    """

    def __init__(self, name: str, raw_shape: Sequence[int], max_size: Optional[int] = None,
                 use_labels: bool = False, xflip: bool = False, random_seed: int = 0,
                 label_dim: Optional[int] = None):
        self._name = name
        self._onehot_width = label_dim
        self._raw_shape = list(raw_shape)
        self._use_labels = bool(use_labels)
        self._raw_labels: Optional[np.ndarray] = None
        self._label_shape: Optional[List[int]] = None

        self._raw_idx = np.arange(self._raw_shape[0], dtype=np.int64)
        if max_size is not None:
            if int(max_size) < 1:
                raise ValueError(f"max_size must be at least 1, got {max_size}")
            if self._raw_idx.size > max_size:
                np.random.RandomState(random_seed).shuffle(self._raw_idx)
                self._raw_idx = np.sort(self._raw_idx[:max_size])

        self._xflip = np.zeros(self._raw_idx.size, dtype=np.uint8)
        if xflip:
            self._raw_idx = np.tile(self._raw_idx, 2)
            self._xflip = np.concatenate([self._xflip, np.ones_like(self._xflip)])

    # --- labels -------------------------------------------------------------------------------------
    def _get_raw_labels(self) -> np.ndarray:
        if self._raw_labels is None:
            labels = self._load_raw_labels() if self._use_labels else None
            if labels is None:
                labels = np.zeros([self._raw_shape[0], 0], dtype=np.float32)
            labels = np.asarray(labels)
            if labels.ndim == 1:
                if labels.dtype != np.int64:
                    raise ValueError("integer labels must be stored as int64")
                if labels.size and labels.min() < 0:
                    raise ValueError("class labels in dataset.json must be non-negative integers")
            elif labels.ndim != 2 or labels.dtype != np.float32:
                raise ValueError("labels must be one integer class or one list of floats per image")
            if labels.shape[0] != self._raw_shape[0]:
                raise ValueError(f"dataset.json has {labels.shape[0]} labels for {self._raw_shape[0]} images")
            self._raw_labels = labels
        return self._raw_labels

    # --- subclass hooks -----------------------------------------------------------------------------
    def close(self) -> None:
        pass

    def _load_raw_image(self, raw_idx: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _load_raw_labels(self) -> Optional[np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getstate__(self) -> Dict[str, Any]:
        return dict(self.__dict__, _raw_labels=None)

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # --- public API ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._raw_idx.size)

    def __getitem__(self, idx: int):
        image = self._load_raw_image(int(self._raw_idx[idx]))
        if list(image.shape) != self.image_shape:
            raise ValueError(f"image {self._describe(int(self._raw_idx[idx]))} has shape {list(image.shape)} "
                             f"but the dataset's first image has {self.image_shape} (CHW); "
                             "all images must share one size and channel count")
        if self._xflip[idx]:
            image = image[:, :, ::-1]
        return image.copy(), self.get_label(idx)

    def _describe(self, raw_idx: int) -> str:
        return f"#{raw_idx}"

    def get_label(self, idx: int) -> np.ndarray:
        label = self._get_raw_labels()[self._raw_idx[idx]]
        if label.dtype == np.int64:
            onehot = np.zeros(self.label_shape, dtype=np.float32)
            onehot[label] = 1
            label = onehot
        return label.copy()

    def get_details(self, idx: int) -> _Details:
        return _Details(raw_idx=int(self._raw_idx[idx]), xflip=int(self._xflip[idx]) != 0,
                        raw_label=self._get_raw_labels()[self._raw_idx[idx]].copy())

    @property
    def name(self) -> str:
        return self._name

    @property
    def image_shape(self) -> List[int]:
        return list(self._raw_shape[1:])

    @property
    def num_channels(self) -> int:
        return self.image_shape[0]

    @property
    def resolution(self) -> int:
        if self.image_shape[1] != self.image_shape[2]:
            raise ValueError(f"dataset '{self.name}' holds non-square images {self.image_shape[2]}x{self.image_shape[1]}")
        return self.image_shape[1]

    @property
    def label_shape(self) -> List[int]:
        if self._label_shape is None:
            raw = self._get_raw_labels()
            if raw.dtype == np.int64:
                width = int(raw.max()) + 1 if raw.size else 0
                if self._onehot_width is not None:
                    if self._onehot_width < width:
                        raise ValueError(f"dataset '{self.name}' has class labels up to {width - 1} but "
                                         f"label_dim={self._onehot_width} was requested")
                    width = self._onehot_width
                self._label_shape = [width]
            else:
                self._label_shape = list(raw.shape[1:])
        return list(self._label_shape)

    @property
    def label_dim(self) -> int:
        return self.label_shape[0] if self.label_shape else 0

    @property
    def has_labels(self) -> bool:
        return any(dim != 0 for dim in self.label_shape)

    @property
    def has_onehot_labels(self) -> bool:
        return self._get_raw_labels().dtype == np.int64


class ImageDataset(Dataset):
    """Images in a folder or an uncompressed zip (PNG, JPEG, ...), labels from `dataset.json`.

    `label_dim` widens one-hot class labels (default: largest class + 1, as in the reference), so that a
    dataset holding only some classes still matches a conditional network's `c_dim`.
    Raises `FileNotFoundError` for a missing path and `ValueError` for anything that is not a usable
    dataset (empty, unreadable first image, non-square or non-power-of-two images, RGBA, wrong resolution).
    """

    def __init__(self, path: str, resolution: Optional[int] = None, use_labels: bool = False,
                 xflip: bool = False, max_size: Optional[int] = None, random_seed: int = 0,
                 label_dim: Optional[int] = None, **_ignored):
        self._path = os.fspath(path)
        self._zipfile: Optional[zipfile.ZipFile] = None
        self._zipfile_pid: Optional[int] = None
        if not os.path.exists(self._path):
            raise FileNotFoundError(f"dataset '{self._path}' does not exist; pass a folder of images or a dataset .zip")
        if os.path.isdir(self._path):
            self._type = "dir"
            self._all_fnames = [os.path.relpath(os.path.join(root, fname), start=self._path).replace(os.sep, "/")
                                for root, _dirs, files in os.walk(self._path) for fname in files]
        elif self._path.lower().endswith(".zip"):
            self._type = "zip"
            try:
                self._all_fnames = list(self._get_zipfile().namelist())
            except zipfile.BadZipFile as err:
                raise ValueError(f"dataset '{self._path}' is not a readable zip file ({err})") from None
        else:
            raise ValueError(f"dataset '{self._path}' must be a directory or a .zip file")

        self._image_fnames = sorted(f for f in self._all_fnames if _file_ext(f) in _IMAGE_EXTENSIONS)
        if not self._image_fnames:
            raise ValueError(f"dataset '{self._path}' contains no image files (PNG, JPEG, ...)")

        name = os.path.splitext(os.path.basename(self._path.rstrip("/\\")))[0]
        first = self._load_raw_image(0)
        raw_shape = [len(self._image_fnames)] + list(first.shape)
        channels, height, width = raw_shape[1:]
        if height != width:
            raise ValueError(f"dataset '{self._path}' has non-square images ({width}x{height} in "
                             f"{self._image_fnames[0]}); pad or crop them to a square first")
        if not _is_power_of_two(width):
            raise ValueError(f"dataset '{self._path}' has {width}x{height} images; StyleGAN needs a power-of-two "
                             "resolution of at least 4 (e.g. 32, 64, 256): resize them first")
        if resolution is not None and width != resolution:
            raise ValueError(f"dataset '{self._path}' has {width}x{height} images but resolution={resolution} "
                             "was requested")
        super().__init__(name=name, raw_shape=raw_shape, max_size=max_size, use_labels=use_labels,
                         xflip=xflip, random_seed=random_seed, label_dim=label_dim)

    @property
    def path(self) -> str:
        return self._path

    def _get_zipfile(self) -> zipfile.ZipFile:
        # One handle per process: a handle inherited through fork (DataLoader workers) shares its file
        # offset with the parent and the other workers, and interleaved reads then corrupt each other.
        if self._zipfile is None or self._zipfile_pid != os.getpid():
            self._zipfile = zipfile.ZipFile(self._path)
            self._zipfile_pid = os.getpid()
        return self._zipfile

    def _open_file(self, fname: str):
        if self._type == "dir":
            return open(os.path.join(self._path, fname), "rb")
        return self._get_zipfile().open(fname, "r")

    def close(self) -> None:
        try:
            if getattr(self, "_zipfile", None) is not None and self._zipfile_pid == os.getpid():
                self._zipfile.close()
        finally:
            self._zipfile = None
            self._zipfile_pid = None

    def __getstate__(self) -> Dict[str, Any]:
        return dict(super().__getstate__(), _zipfile=None, _zipfile_pid=None)

    def _describe(self, raw_idx: int) -> str:
        return f"'{self._image_fnames[raw_idx]}' in '{self._path}'"

    def _load_raw_image(self, raw_idx: int) -> np.ndarray:
        fname = self._image_fnames[raw_idx]
        try:
            with self._open_file(fname) as f:
                data = f.read()
            if pyspng is not None and _file_ext(fname) == ".png":
                image = pyspng.load(data)
            else:
                image = _decode_with_pil(data)
        except (OSError, ValueError, SyntaxError) as err:
            raise ValueError(f"cannot read image {self._describe(raw_idx)}: {err}") from None
        if image.ndim == 2:
            image = image[:, :, np.newaxis]
        if image.shape[2] not in (1, 3):
            raise ValueError(f"image {self._describe(raw_idx)} has {image.shape[2]} channels; "
                             "only grayscale (1) or RGB (3) images are supported (drop the alpha channel)")
        return np.ascontiguousarray(image.transpose(2, 0, 1))

    def _load_raw_labels(self) -> Optional[np.ndarray]:
        if "dataset.json" not in self._all_fnames:
            return None
        try:
            with self._open_file("dataset.json") as f:
                labels = json.load(f).get("labels")
        except (OSError, ValueError, AttributeError) as err:
            raise ValueError(f"cannot read dataset.json in '{self._path}': {err}") from None
        if labels is None:
            return None
        table = dict(labels)
        missing = [fname for fname in self._image_fnames if fname.replace("\\", "/") not in table]
        if missing:
            raise ValueError(f"dataset.json in '{self._path}' has no label for {len(missing)} image(s), "
                             f"e.g. '{missing[0]}'; give every image a label or set \"labels\": null")
        values = [table[fname.replace("\\", "/")] for fname in self._image_fnames]
        try:
            array = np.array(values)
        except ValueError:  # ragged: label lists of different lengths, or classes mixed with lists
            raise ValueError(f"dataset.json in '{self._path}' has labels of different shapes; give every image "
                             "one integer class or a float list of one common length") from None
        if array.ndim == 1 and np.issubdtype(array.dtype, np.integer):
            return array.astype(np.int64)
        if np.issubdtype(array.dtype, np.number) and array.ndim == 2:
            return array.astype(np.float32)
        raise ValueError(f"dataset.json in '{self._path}' must hold one integer class or one list of floats "
                         "per image")


ImageFolderDataset = ImageDataset  # the reference class name, for configs written against it


def _file_ext(fname: str) -> str:
    return os.path.splitext(fname)[1].lower()


def _decode_with_pil(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        if image.mode in ("1", "I;16", "I", "F"):
            image = image.convert("L")
        elif image.mode == "P":
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        elif image.mode in ("CMYK", "YCbCr"):
            image = image.convert("RGB")
        return np.array(image)


def open_image_dataset(path: str, **kwargs) -> ImageDataset:
    """Open a dataset folder or zip; keyword arguments as for `ImageDataset`."""
    return ImageDataset(path, **kwargs)


def write_image_dataset(path: str, images: np.ndarray, labels: Optional[Sequence[int]] = None,
                        label_dim: Optional[int] = None) -> int:
    """Write uint8 NHWC images (C = 1 or 3) as a reference-format dataset zip, atomically.

    `labels` (one non-negative integer class per image) go to `dataset.json`; without them it holds
    `{"labels": null}`. With `label_dim` (a conditional network's `c_dim`) they are written as one-hot
    float vectors of that width, so that a set holding only some classes still has the network's label
    width in any reader, the reference trainer's included. Returns the number of images written.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {images.dtype}")
    if images.ndim == 3:
        images = images[..., np.newaxis]
    if images.ndim != 4 or images.shape[3] not in (1, 3):
        raise ValueError(f"images must be an array [N, H, W, C] with C = 1 or 3, got shape {list(images.shape)}")
    count, height, width, channels = images.shape
    if count == 0:
        raise ValueError("cannot write an empty dataset: no images given")
    if height != width or not _is_power_of_two(width):
        raise ValueError(f"images are {width}x{height}; a dataset needs square power-of-two images (e.g. 32x32)")
    if not str(path).lower().endswith(".zip"):
        raise ValueError(f"dataset path must end in .zip, got '{path}'")
    entries = None
    if labels is not None:
        labels = list(labels)
        if len(labels) != count:
            raise ValueError(f"{count} images but {len(labels)} labels")
        for label in labels:
            if isinstance(label, (bool, np.bool_)) or int(label) != label or int(label) < 0:
                raise ValueError(f"labels must be non-negative integer classes, got {label!r}")
        if label_dim is None:
            entries = [[image_name(i), int(label)] for i, label in enumerate(labels)]
        else:
            if int(label_dim) < 1 or max(int(label) for label in labels) >= int(label_dim):
                raise ValueError(f"labels must be classes below label_dim={label_dim}, got up to {max(labels)}")
            entries = [[image_name(i), [1.0 if k == int(label) else 0.0 for k in range(int(label_dim))]]
                       for i, label in enumerate(labels)]
    elif label_dim is not None:
        raise ValueError("label_dim was given without labels")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    mode = "L" if channels == 1 else "RGB"
    with atomic_write(path, "wb") as raw:
        with zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_STORED) as archive:
            for i in range(count):
                pixels = images[i, :, :, 0] if channels == 1 else images[i]
                buffer = io.BytesIO()
                Image.fromarray(np.ascontiguousarray(pixels), mode).save(buffer, format="PNG", compress_level=0)
                archive.writestr(image_name(i), buffer.getvalue())
            archive.writestr("dataset.json", json.dumps({"labels": entries}))
    return count


def check_dataset_matches_network(dataset: Dataset, G: Any) -> None:
    """Raise `ValueError` naming the first mismatch between a dataset and a generator (or its init kwargs).

    Checks resolution, channel count and labels (`c_dim`). `G` may be a module with `img_resolution`,
    `img_channels`, `c_dim` attributes or a dict of those keys.
    """
    def attribute(name: str) -> Any:
        return G[name] if isinstance(G, dict) else getattr(G, name)

    resolution, channels, c_dim = attribute("img_resolution"), attribute("img_channels"), attribute("c_dim")
    if dataset.resolution != resolution:
        raise ValueError(f"dataset '{dataset.name}' has {dataset.resolution}x{dataset.resolution} images but the "
                         f"network makes {resolution}x{resolution} images; resize the dataset to {resolution}")
    if dataset.num_channels != channels:
        kinds = {1: "grayscale", 3: "RGB"}
        raise ValueError(f"dataset '{dataset.name}' has {dataset.num_channels} channel(s) "
                         f"({kinds.get(dataset.num_channels, '?')}) but the network makes {channels} "
                         f"({kinds.get(channels, '?')}); convert the images")
    label_dim = dataset.label_dim
    if c_dim and not label_dim:
        raise ValueError(f"the network is conditional (c_dim={c_dim}) but dataset '{dataset.name}' gives no labels; "
                         "add labels to dataset.json and pass --cond=1")
    if label_dim and not c_dim:
        raise ValueError(f"dataset '{dataset.name}' gives {label_dim}-dim labels but the network is unconditional; "
                         "pass --cond=0")
    if label_dim != c_dim:
        raise ValueError(f"dataset '{dataset.name}' gives {label_dim}-dim labels but the network expects "
                         f"c_dim={c_dim}")
