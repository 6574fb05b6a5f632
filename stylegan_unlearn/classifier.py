"""Feature classifiers: load one from a TorchScript file or a `module:function` spec, and decide
per image whether it has the feature to unlearn.

Input contract (the same for every classifier in the project): a float32 NCHW tensor with values in
[−1, 1] (the generator's output range, clamped), at the generator's resolution and channel count.
With `resize`, images are first resized (bilinear, antialiased when shrinking) to the size the
classifier was trained at. The official code fed classifiers raw [−1, 1] in one place and [0, 1] in
another; here the range is fixed and written down, so a classifier is trained once for it.

Output contract: a tensor [N] or [N, K].
  * One column: a logit (or probability) that the image has the feature. It has the feature when
    score ≥ threshold (default 0, right for logits; pass 0.5 for probabilities).
  * K columns: class logits. With `target_class` K and no threshold, the image has the feature
    when its arg-max is the target class (multi-class, e.g. MNIST digits). With a threshold,
    column `target_class` is an independent score (multi-label, e.g. CelebA attribute logits ≥ 0).
  For attribute drift every column is an attribute: with a threshold, attribute k is present when
  its score ≥ threshold; without one, only the arg-max class is present.

Spec forms:
  * `path/to/classifier.pt` — a TorchScript module (`torch.jit.save(torch.jit.script(model), path)`);
  * `package.module:function` — the function (or nn.Module instance/class, instantiated without
    arguments) is the classifier;
  * `package.module:build()` — `build()` is called once and returns the classifier.
"""
import importlib
import os
import re
import warnings
from typing import Callable, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["Classifier", "load_classifier", "parse_resize"]

Size = Tuple[int, int]
_SPEC = re.compile(r"^([A-Za-z_][\w.]*):([A-Za-z_]\w*)(\(\))?$")


def parse_resize(text: Union[None, int, str, Sequence[int]]) -> Optional[Size]:
    """'224' → (224, 224); '178x218' (width x height, as dataset tools write it) → (218, 178) as (H, W)."""
    if text is None or text == "":
        return None
    if isinstance(text, int):
        size = (text, text)
    elif isinstance(text, (tuple, list)):
        size = tuple(int(v) for v in text)
    else:
        match = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+))?\s*", str(text))
        if not match:
            raise ValueError(f"--resize must be a size like '224' or '178x218' (width x height), got '{text}'")
        width = int(match.group(1))
        height = int(match.group(2)) if match.group(2) else width
        size = (height, width)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"resize size must be two positive integers, got {text!r}")
    return (int(size[0]), int(size[1]))


class Classifier:
    """A loaded classifier plus the rule that turns its scores into "has the feature" decisions."""

    def __init__(self, model: Callable[[torch.Tensor], torch.Tensor], target_class: Optional[int] = None,
                 threshold: Optional[float] = None, resize: Optional[Size] = None, device: Union[str, torch.device] = "cpu",
                 name: str = "classifier"):
        self.model = model
        self.target_class = None if target_class is None else int(target_class)
        self.threshold = None if threshold is None else float(threshold)
        self.resize = parse_resize(resize)
        self.device = torch.device(device)
        self.name = name
        if self.target_class is not None and self.target_class < 0:
            raise ValueError(f"--target-class must be a non-negative class index, got {self.target_class}")

    def describe(self) -> dict:
        """The settings, for logs and summaries."""
        return {"classifier": self.name, "target_class": self.target_class, "threshold": self.threshold,
                "resize": list(self.resize) if self.resize else None}

    @torch.no_grad()
    def scores(self, images: torch.Tensor) -> torch.Tensor:
        """Raw classifier output for NCHW images in [−1, 1], as float32 [N, K] on the CPU."""
        if images.dim() != 4:
            raise ValueError(f"classifier input must be NCHW images, got shape {list(images.shape)}")
        x = images.to(self.device, torch.float32).clamp(-1, 1)
        if self.resize is not None and tuple(x.shape[2:]) != self.resize:
            shrinking = self.resize[0] < x.shape[2] or self.resize[1] < x.shape[3]
            x = F.interpolate(x, size=self.resize, mode="bilinear", align_corners=False, antialias=shrinking)
        try:
            out = self.model(x)
        except Exception as err:
            raise ValueError(f"{self.name} failed on a batch of shape {list(x.shape)} (NCHW, values in [-1, 1]): "
                             f"{str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__}; "
                             "check its expected input size (use --resize) and channel count") from err
        if isinstance(out, (tuple, list)):
            raise ValueError(f"{self.name} returned a {type(out).__name__}; it must return one tensor [N] or [N, K]")
        out = torch.as_tensor(out).detach().float().cpu()
        if out.dim() not in (1, 2) or out.shape[0] != images.shape[0]:
            raise ValueError(f"{self.name} returned shape {list(out.shape)} for {images.shape[0]} images; "
                             "it must return [N] or [N, K]")
        if out.dim() == 1:
            out = out[:, None]
        if not torch.isfinite(out).all():
            raise ValueError(f"{self.name} returned NaN or infinite scores")
        return out

    def decide(self, scores: torch.Tensor) -> np.ndarray:
        """Boolean [N]: which images have the feature, from scores [N, K] (see the module docstring)."""
        columns = scores.shape[1]
        if columns == 1:
            if self.target_class not in (None, 0):
                raise ValueError(f"--target-class {self.target_class} given but the classifier has one output")
            threshold = 0.0 if self.threshold is None else self.threshold
            return (scores[:, 0] >= threshold).numpy()
        if self.target_class is None:
            raise ValueError(f"the classifier gives {columns} outputs; pass --target-class to say which one is "
                             "the feature to unlearn")
        if self.target_class >= columns:
            raise ValueError(f"--target-class {self.target_class} is out of range: the classifier gives "
                             f"{columns} outputs (0-{columns - 1})")
        if self.threshold is None:
            return (scores.argmax(dim=1) == self.target_class).numpy()
        return (scores[:, self.target_class] >= self.threshold).numpy()

    def has_feature(self, images: torch.Tensor) -> np.ndarray:
        """Boolean [N]: which of the NCHW [−1, 1] images have the feature."""
        return self.decide(self.scores(images))

    def attribute_flags(self, images: torch.Tensor) -> np.ndarray:
        """Boolean [N, K]: per-attribute presence (score ≥ threshold, or one-hot arg-max without one)."""
        scores = self.scores(images)
        if self.threshold is not None:
            return (scores >= self.threshold).numpy()
        flags = torch.zeros_like(scores, dtype=torch.bool)
        flags[torch.arange(scores.shape[0]), scores.argmax(dim=1)] = True
        return flags.numpy()


def _load_torchscript(path: str, device: torch.device) -> torch.nn.Module:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.load is deprecated but still the way
            module = torch.jit.load(path, map_location=device)
    except Exception as err:
        raise ValueError(f"'{path}' is not a TorchScript file ({type(err).__name__}); save your classifier with "
                         "torch.jit.save(torch.jit.script(model), path), or pass it as 'package.module:function'") from None
    return module.eval()


def _short_reason(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[-1]}" if lines else type(err).__name__


def _load_python_object(spec: str, device: torch.device) -> Callable:
    match = _SPEC.match(spec)
    module_name, attribute, call = match.group(1), match.group(2), bool(match.group(3))
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise ValueError(f"cannot import module '{module_name}' for classifier '{spec}' ({err}); "
                         "make sure it is on PYTHONPATH") from None
    except Exception as err:  # the module itself fails while importing
        raise ValueError(f"importing module '{module_name}' for classifier '{spec}' failed ({_short_reason(err)}); "
                         "fix the module") from None
    if not hasattr(module, attribute):
        raise ValueError(f"module '{module_name}' has no attribute '{attribute}' (classifier '{spec}')")
    obj = getattr(module, attribute)
    if call or isinstance(obj, type):
        try:
            obj = obj()
        except Exception as err:
            what = f"calling {attribute}()" if call else f"building {attribute}() without arguments"
            raise ValueError(f"classifier '{spec}': {what} failed ({_short_reason(err)}); point the spec at a "
                             "function that classifies images, or at a build() function that returns one") from None
    if not callable(obj):
        raise ValueError(f"classifier '{spec}' is a {type(obj).__name__}, not something that can be called on images")
    if isinstance(obj, torch.nn.Module):
        obj = obj.to(device).eval()
    return obj


def load_classifier(spec: str, target_class: Optional[int] = None, threshold: Optional[float] = None,
                    resize: Union[None, int, str, Size] = None, device: Union[str, torch.device] = "cpu") -> Classifier:
    """Load a classifier from a TorchScript path or a `module:function` spec (see the module docstring)."""
    if not spec:
        raise ValueError("no classifier given: pass a TorchScript file or 'package.module:function'")
    device = torch.device(device)
    spec = str(spec)
    if os.path.isfile(spec):
        model = _load_torchscript(spec, device)
        name = f"classifier '{os.path.basename(spec)}'"
    elif _SPEC.match(spec) and os.path.sep not in spec:
        model = _load_python_object(spec, device)
        name = f"classifier '{spec}'"
    else:
        raise FileNotFoundError(f"classifier '{spec}' is neither an existing TorchScript file nor a "
                                "'package.module:function' spec")
    return Classifier(model, target_class=target_class, threshold=threshold, resize=resize, device=device, name=name)
