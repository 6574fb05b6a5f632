"""`stylegan-unlearn generate` end to end on tiny networks."""
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from stylegan_unlearn.cli import main as cli_main
from stylegan_unlearn.images import quantize, to_uint8
from stylegan_unlearn.pkl import save_network_pkl
from stylegan_unlearn.seeds import generate_all
from tiny import WIDE, tiny_discriminator, tiny_generator


def _network_pkl(tmp_path, c_dim=0):
    G = tiny_generator(c_dim=c_dim, img_channels=3, **WIDE)
    D = tiny_discriminator(c_dim=c_dim, img_channels=3, **WIDE)
    with torch.no_grad():
        G.mapping.w_avg.normal_()
    path = tmp_path / f"net{c_dim}.pkl"
    save_network_pkl(path, dict(G=G, D=D, G_ema=G))
    return path, G.eval()


def _run(*args):
    return CliRunner().invoke(cli_main, ["generate", *map(str, args)])


def test_writes_one_png_per_seed_matching_the_reference_latents(tmp_path):
    path, G = _network_pkl(tmp_path)
    out = tmp_path / "out"
    result = _run("--network", path, "--seeds", "0-2,7", "--trunc", "0.8", "--outdir", out)
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ["contact_sheet.png", "seed0000.png", "seed0001.png", "seed0002.png", "seed0007.png"]
    z = torch.from_numpy(np.random.RandomState(7).randn(1, 8))
    with torch.no_grad():
        expected = to_uint8(G(z, None, truncation_psi=0.8, noise_mode="const"))[0]
    written = np.asarray(Image.open(out / "seed0007.png"))
    assert written.shape == (16, 16, 3)
    assert np.abs(written.astype(int) - expected.astype(int)).max() <= 1
    assert not np.array_equal(np.asarray(Image.open(out / "seed0000.png")), written)


def test_contact_sheet_has_a_caption_under_each_image(tmp_path):
    path, _ = _network_pkl(tmp_path)
    out = tmp_path / "out"
    assert _run("--network", path, "--seeds", "3,12", "--outdir", out).exit_code == 0
    sheet = np.asarray(Image.open(out / "contact_sheet.png").convert("L"))
    assert sheet.shape[0] > 64 and sheet.shape[1] > 2 * 64  # two cells upscaled for legibility
    captions = sheet[4 + 64: 4 + 64 + 14]  # the strip under the first row of images
    left, right = captions[:, 4: 4 + 64], captions[:, 4 + 68: 4 + 68 + 64]
    assert (left < 128).any() and (right < 128).any()  # text drawn in both
    assert not np.array_equal(left, right)  # "3" and "12" look different


def test_truncation_zero_gives_the_average_image_for_every_seed(tmp_path):
    path, _ = _network_pkl(tmp_path)
    out = tmp_path / "out"
    assert _run("--network", path, "--seeds", "0-1", "--trunc", "0", "--outdir", out).exit_code == 0
    assert np.array_equal(np.asarray(Image.open(out / "seed0000.png")), np.asarray(Image.open(out / "seed0001.png")))


def test_conditional_network_takes_seed_mod_c_dim_unless_a_class_is_given(tmp_path):
    """The seed convention of collect/evaluate/report: class `seed % c_dim` by default (3 % 3 = 0, 4 % 3 = 1)."""
    path, _ = _network_pkl(tmp_path, c_dim=3)
    assert _run("--network", path, "--seeds", "3-4", "--outdir", tmp_path / "default").exit_code == 0
    for seed, cls in ((3, 0), (4, 1)):
        out = tmp_path / f"class{cls}"
        result = _run("--network", path, "--seeds", seed, "--class", cls, "--outdir", out)
        assert result.exit_code == 0, result.output
        assert np.array_equal(np.asarray(Image.open(tmp_path / "default" / f"seed{seed:04d}.png")),
                              np.asarray(Image.open(out / f"seed{seed:04d}.png")))
    result = _run("--network", path, "--seeds", "0", "--class", "3", "--outdir", tmp_path / "bad")
    assert result.exit_code != 0 and "--class must be between 0 and 2" in result.output
    assert "Traceback" not in result.output
    a = _run("--network", path, "--seeds", "0", "--class", "0", "--outdir", tmp_path / "a")
    b = _run("--network", path, "--seeds", "0", "--class", "2", "--outdir", tmp_path / "b", "--unsafe")
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "a" / "seed0000.png")),
                              np.asarray(Image.open(tmp_path / "b" / "seed0000.png")))


def test_a_class_for_an_unconditional_network_is_one_clear_error(tmp_path):
    path, _ = _network_pkl(tmp_path)
    result = _run("--network", path, "--seeds", "0", "--class", "1", "--outdir", tmp_path / "out")
    assert result.exit_code != 0 and "unconditional" in result.output and "Traceback" not in result.output


def test_generate_writes_the_images_collect_and_evaluate_see(tmp_path):
    """One seed → image convention: the PNG is `quantize(seeds.generate_all(...))` of that seed."""
    path, G = _network_pkl(tmp_path, c_dim=3)
    out = tmp_path / "out"
    assert _run("--network", path, "--seeds", "5,9", "--trunc", "0.7", "--outdir", out).exit_code == 0
    expected = quantize(generate_all(G, [5, 9], truncation_psi=0.7)).permute(0, 2, 3, 1).numpy()
    for seed, image in zip((5, 9), expected):
        assert np.array_equal(np.asarray(Image.open(out / f"seed{seed:04d}.png")), image)


@pytest.mark.parametrize("seeds", ["", "5-2", "x"])
def test_bad_seed_lists(tmp_path, seeds):
    path, _ = _network_pkl(tmp_path)
    result = _run("--network", path, "--seeds", seeds, "--outdir", tmp_path / "out")
    assert result.exit_code == 2 and "--seeds" in result.output


def test_missing_network_is_one_clear_error(tmp_path):
    result = _run("--network", tmp_path / "missing.pkl", "--seeds", "0", "--outdir", tmp_path / "out")
    assert result.exit_code == 1
    assert "does not exist" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
