"""Feature detectors for FID/KID: the reference Inception network or any TorchScript feature extractor.

Two input conventions, chosen from the module's `forward` signature:
  * **reference style** — `forward` has a `return_features` argument, as the reference
    `inception-2015-12-05.pt` does: it gets uint8 NCHW tensors with 3 channels (grayscale repeated)
    in [0, 255] and is called with `return_features=True`. Numbers are NVIDIA-compatible only with
    that file.
  * **float style** — any other TorchScript module: it gets float32 NCHW in [−1, 1] with the
    images' own channel count (the classifier contract), and its `features(x)` method is used when
    it has one, else `forward(x)`. E.g. the MNIST judge, whose penultimate layer is a digit feature
    space.
Every image reaches the detector through uint8, generated ones quantised as the reference does, so
that real and generated images are treated alike.

Features of a reference dataset are cached under `<dnnlib cache>/gan-metrics/`, keyed by the md5
of the dataset's bytes and of the detector file, so editing either recomputes them.
"""
import hashlib
import io
import os
import warnings
from typing import Callable, Iterable, Optional, Union

import numpy as np
import torch

from dnnlib import util
from stylegan_unlearn.data import ImageDataset
from stylegan_unlearn.fileio import atomic_write

__all__ = ["INCEPTION_URL", "Detector", "load_detector", "dataset_features", "file_md5", "dataset_content_hash"]

INCEPTION_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"
_CACHE_FORMAT = "stylegan-unlearn-features-v1"


def file_md5(path: str, chunk_size: int = 1 << 20) -> str:
    """md5 hex digest of a file's bytes."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def dataset_content_hash(path: str) -> str:
    """md5 over a dataset's contents: the zip's bytes, or every file (relative path + bytes) of a folder."""
    if os.path.isfile(path):
        return file_md5(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"reference data '{path}' does not exist; pass a dataset .zip or a folder of images")
    digest = hashlib.md5()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for fname in sorted(files):
            full = os.path.join(root, fname)
            digest.update(os.path.relpath(full, path).replace(os.sep, "/").encode("utf-8") + b"\0")
            digest.update(file_md5(full).encode("ascii"))
    return digest.hexdigest()


class Detector:
    """A loaded feature extractor: `detector(images_uint8_nchw)` → float32 features [N, D]."""

    def __init__(self, module: torch.nn.Module, name: str, identity: str, reference_style: bool,
                 device: Union[str, torch.device] = "cpu", batch_size: int = 64):
        self.module = module
        self.name = name
        self.identity = identity
        self.reference_style = reference_style
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        features = getattr(module, "features", None)
        self._float_call: Callable = (features if callable(features) and not isinstance(features, torch.nn.Module)
                                      else module)

    def describe(self) -> dict:
        return {"name": self.name, "md5": self.identity,
                "input": "uint8 RGB, return_features=True" if self.reference_style else "float [-1, 1]"}

    @torch.no_grad()
    def _run(self, images: torch.Tensor) -> torch.Tensor:
        if self.reference_style:
            x = images.to(self.device)
            if x.shape[1] == 1:
                x = x.repeat(1, 3, 1, 1)
            return self.module(x, return_features=True)
        x = images.to(self.device, torch.float32) / 127.5 - 1
        return self._float_call(x)

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"detectors take uint8 NCHW images, got {images.dtype} {list(images.shape)}")
        chunks = []
        for start in range(0, images.shape[0], self.batch_size):
            batch = images[start:start + self.batch_size]
            out = self._run(batch)
            if isinstance(out, (tuple, list)):
                raise ValueError(f"detector '{self.name}' returned a {type(out).__name__}; it must return one "
                                 "tensor of features [N, D]")
            out = out.detach().float().cpu().reshape(batch.shape[0], -1)
            chunks.append(out.numpy())
        return np.concatenate(chunks, axis=0).astype(np.float32, copy=False)


def _resolve(spec: Optional[str], num_attempts: int) -> str:
    """Local path of the detector file: the spec itself, or a download/cached copy of a URL."""
    spec = spec or INCEPTION_URL
    if "://" not in spec:
        if not os.path.isfile(spec):
            raise FileNotFoundError(f"detector '{spec}' does not exist; pass the path of a TorchScript feature "
                                    f"extractor or of inception-2015-12-05.pt (from {INCEPTION_URL})")
        return spec
    try:
        return util.open_url(spec, num_attempts=num_attempts, return_filename=True)
    except OSError as err:
        # open_url's message names the URL and the exact cache path where a hand-copied file is used.
        raise FileNotFoundError(f"cannot get the feature detector: {err}; or pass a local file with --detector PATH") from None


def load_detector(spec: Optional[str] = None, device: Union[str, torch.device] = "cpu", batch_size: int = 64,
                  num_attempts: int = 3) -> Detector:
    """Load a detector from a local path or URL (default: the reference Inception URL, via the dnnlib cache)."""
    path = _resolve(spec, num_attempts)
    device = torch.device(device)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.load is deprecated but still the way
            module = torch.jit.load(path, map_location=device).eval()
    except Exception as err:
        raise ValueError(f"detector '{path}' is not a TorchScript file ({type(err).__name__}); use the "
                         "stylegan2-ada-pytorch inception-2015-12-05.pt or save your extractor with "
                         "torch.jit.save(torch.jit.script(model), path)") from None
    forward = getattr(module, "forward", None)
    schema = getattr(forward, "schema", None)
    argument_names = [a.name for a in schema.arguments] if schema is not None else []
    reference_style = "return_features" in argument_names
    stem = os.path.splitext(os.path.basename(path))[0]
    stem = stem.split("_", 1)[1] if "://" in (spec or INCEPTION_URL) and "_" in stem else stem  # drop the md5 prefix
    return Detector(module, name=stem, identity=file_md5(path), reference_style=reference_style, device=device,
                    batch_size=batch_size)


def _iter_dataset_batches(dataset, batch_size: int) -> Iterable[torch.Tensor]:
    for start in range(0, len(dataset), batch_size):
        images = [dataset[i][0] for i in range(start, min(start + batch_size, len(dataset)))]
        yield torch.from_numpy(np.stack(images))


def dataset_features(path: str, detector: Detector, resolution: Optional[int] = None,
                     channels: Optional[int] = None, batch_size: int = 64, use_cache: bool = True,
                     cache_dir: Optional[str] = None) -> np.ndarray:
    """Detector features [N, D] of every image of a dataset zip or folder, cached by content hash.

    `resolution` / `channels`, when given, must match the dataset (the network's output format), so
    that generated and real images are measured on equal terms.
    """
    dataset = ImageDataset(path)
    try:
        if resolution is not None and dataset.resolution != resolution:
            raise ValueError(f"reference data '{path}' has {dataset.resolution}x{dataset.resolution} images but "
                             f"the network makes {resolution}x{resolution}; resize the reference images to match")
        if channels is not None and dataset.num_channels != channels:
            raise ValueError(f"reference data '{path}' has {dataset.num_channels} channel(s) but the network makes "
                             f"{channels}; convert the reference images to match")
        cache_path = None
        if use_cache:
            if cache_dir is None:
                cache_dir = util.make_cache_dir_path("gan-metrics")
            key = hashlib.md5(repr(sorted({
                "format": _CACHE_FORMAT, "data": dataset_content_hash(path), "detector": detector.identity,
                "reference_style": detector.reference_style,
            }.items())).encode("utf-8")).hexdigest()
            cache_path = os.path.join(cache_dir, f"{dataset.name}-{detector.name}-{key}.npz")
            if os.path.isfile(cache_path):
                with np.load(cache_path) as cached:
                    return cached["features"]
        features = np.concatenate([detector(batch) for batch in _iter_dataset_batches(dataset, batch_size)])
        if cache_path is not None:
            os.makedirs(os.path.dirname(cache_path), exist_ok=True)
            buffer = io.BytesIO()
            np.savez(buffer, features=features)
            with atomic_write(cache_path, "wb") as f:
                f.write(buffer.getvalue())
        return features
    finally:
        dataset.close()
