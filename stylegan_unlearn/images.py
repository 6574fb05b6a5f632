"""Image conversion and grids: network output tensors to uint8 arrays, PNGs and labelled contact sheets."""
import os
from typing import Optional, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from stylegan_unlearn.fileio import atomic_write


def check_finite_images(images: torch.Tensor) -> None:
    """Raise ValueError when images hold NaN/Inf: they would be written as black or garbage pixels."""
    if images.is_floating_point() and not torch.isfinite(images).all():
        raise ValueError("the network produced NaN or infinite pixel values, so no image was written; its "
                         "weights are probably broken (check the pkl, e.g. one written from a diverged run)")


def to_uint8(images: torch.Tensor, drange=(-1, 1)) -> np.ndarray:
    """Map NCHW float images in `drange` to NHWC uint8 (rounded, clipped), as the reference tools do.

    Refuses (ValueError) images with NaN/Inf values rather than turning them into black pixels.
    """
    check_finite_images(images.detach())
    lo, hi = drange
    x = (images.detach().float().cpu() - lo) * (255 / (hi - lo))
    x = x.round().clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def quantize(images: torch.Tensor) -> torch.Tensor:
    """uint8 NCHW from [−1, 1] floats exactly as the reference metrics do: (x·127.5 + 128) clamped, truncated.

    Refuses (ValueError) NaN/Inf values, which would otherwise become black pixels.
    """
    check_finite_images(images.detach())
    return (images.detach().float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def _pil(array: np.ndarray) -> Image.Image:
    if array.ndim == 3 and array.shape[2] == 1:
        return Image.fromarray(array[:, :, 0], "L")
    if array.ndim == 3 and array.shape[2] == 3:
        return Image.fromarray(array, "RGB")
    raise ValueError(f"cannot save an image with shape {array.shape}; expected 1 or 3 channels")


def save_png(array: np.ndarray, path: str) -> None:
    """Write one HWC uint8 image as PNG, atomically."""
    with atomic_write(path, "wb") as f:
        _pil(array).save(f, format="PNG")


def grid(images: np.ndarray, cols: Optional[int] = None, pad: int = 0) -> np.ndarray:
    """Tile NHWC uint8 images into one HWC image with `cols` columns."""
    n, h, w, c = images.shape
    cols = cols or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    out = np.zeros((rows * (h + pad) + pad, cols * (w + pad) + pad, c), dtype=np.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + k * (w + pad)
        out[y:y + h, x:x + w] = images[i]
    return out


def save_grid(images: np.ndarray, path: str, cols: Optional[int] = None) -> None:
    """Tile NHWC uint8 images and save them as one PNG."""
    save_png(grid(images, cols), path)


def contact_sheet(images: np.ndarray, labels: Sequence[str], cols: Optional[int] = None,
                  min_cell: int = 64) -> Image.Image:
    """A grid with a caption under each image (e.g. its seed), for picking samples by eye.

    Small images are upscaled (nearest) to at least `min_cell` pixels so that captions stay readable.
    """
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    n, h, w, c = images.shape
    scale = max(1, int(np.ceil(min_cell / max(h, w))))
    cell_w, cell_h = w * scale, h * scale
    caption_h = 14
    cols = cols or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    sheet = Image.new("RGB", (cols * (cell_w + 4) + 4, rows * (cell_h + caption_h + 4) + 4), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for i in range(n):
        r, k = divmod(i, cols)
        x, y = 4 + k * (cell_w + 4), 4 + r * (cell_h + caption_h + 4)
        tile = _pil(images[i]).convert("RGB").resize((cell_w, cell_h), Image.NEAREST)
        sheet.paste(tile, (x, y))
        draw.text((x + 2, y + cell_h + 1), str(labels[i]), fill="black", font=font)
    return sheet


def save_contact_sheet(images: np.ndarray, labels: Sequence[str], path: str, cols: Optional[int] = None) -> None:
    """Write a captioned contact sheet as PNG, atomically."""
    sheet = contact_sheet(images, labels, cols)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_write(path, "wb") as f:
        sheet.save(f, format="PNG")
