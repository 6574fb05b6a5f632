import numpy as np
import pytest
import torch
from PIL import Image

from stylegan_unlearn.images import grid, save_contact_sheet, save_grid, to_uint8


def test_to_uint8_maps_range_rounds_and_clips():
    x = torch.tensor([-1.0, 0.0, 1.0, 2.0, -3.0]).view(1, 1, 1, 5)
    out = to_uint8(x)
    assert out.shape == (1, 1, 5, 1) and out.dtype == np.uint8
    assert out[0, 0, :, 0].tolist() == [0, 128, 255, 255, 0]


def test_grid_places_each_image_in_its_cell():
    imgs = np.stack([np.full((2, 3, 1), i, np.uint8) for i in range(5)])
    g = grid(imgs, cols=2)
    assert g.shape == (6, 6, 1)
    assert g[0, 0, 0] == 0 and g[0, 3, 0] == 1 and g[2, 0, 0] == 2 and g[4, 0, 0] == 4
    assert g[4, 3, 0] == 0  # empty last cell stays black


def test_save_grid_and_contact_sheet_write_readable_pngs(tmp_path):
    imgs = np.random.RandomState(0).randint(0, 255, (6, 16, 16, 3), dtype=np.uint8)
    save_grid(imgs, str(tmp_path / "g.png"), cols=3)
    assert Image.open(tmp_path / "g.png").size == (48, 32)
    save_contact_sheet(imgs, [f"seed {i}" for i in range(6)], str(tmp_path / "sheet.png"), cols=3)
    sheet = Image.open(tmp_path / "sheet.png")
    assert sheet.size[0] >= 3 * 64 and sheet.size[1] >= 2 * 64  # upscaled so captions are readable
    assert not list(tmp_path.glob("*.tmp*"))


def test_contact_sheet_rejects_mismatched_labels(tmp_path):
    with pytest.raises(ValueError, match="2 images but 1 labels"):
        save_contact_sheet(np.zeros((2, 8, 8, 1), np.uint8), ["a"], str(tmp_path / "x.png"))
