"""`stylegan-unlearn report`: files exist, the HTML/Markdown reference existing images, the grid shows the networks."""
import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from test_collect import _reference_images, run_cli, write_standins
from tiny import tiny_network_pkl

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> dict:
    """An evaluation of two tiny networks with every metric (float-style stand-in detector)."""
    from stylegan_unlearn.data import write_image_dataset

    root = tmp_path_factory.mktemp("report")
    standins = write_standins(root / "standins")
    original = tiny_network_pkl(root / "original.pkl", seed=0)
    unlearned = tiny_network_pkl(root / "unlearned.pkl", seed=1)
    adapted = tiny_network_pkl(root / "adapted.pkl", seed=2)
    reference = str(root / "reference.zip")
    write_image_dataset(reference, np.random.RandomState(0).randint(0, 256, [8, 16, 16, 3]).astype(np.uint8))
    eval_dir = root / "eval"
    run_cli(["evaluate", "--network", original, "--network", f"unlearned={unlearned}", "--seeds", "0-7",
             "--classifier", standins["classifier"], "--reference", reference, "--detector", standins["float_detector"],
             "--ret-reference-network", original, "--attributes", standins["attributes"], "--attribute-names",
             "bright,left,top", "--attribute-threshold", 0, "--kid-subset-size", 4, "--out", eval_dir,
             "--device", "cpu"])
    return {"eval": eval_dir, "original": original, "unlearned": unlearned, "adapted": adapted, "root": root}


def _image_refs(page: str):
    return re.findall(r"<img src='([^']+)'", page)


def test_report_files_and_html_references(evaluated, tmp_path):
    out = tmp_path / "report"
    run_cli(["report", "--eval", evaluated["eval"], "--network", f"adapted={evaluated['adapted']}",
             "--seeds", "0-3", "--out", out, "--device", "cpu"])
    page = (out / "report.html").read_text()
    markdown = (out / "report.md").read_text()
    refs = _image_refs(page)
    assert "samples.png" in refs
    for name in ("neg_share", "pul", "fid", "kid", "ret_fid"):
        assert f"chart-{name}.png" in refs
    for ref in refs:
        assert (out / ref).is_file() and Image.open(out / ref).size[0] > 0
    for ref in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown):
        assert (out / ref).is_file()
    assert "Attribute drift" in page and "<td>bright</td>" in page
    assert "| bright |" in markdown or "| top |" in markdown
    assert "kid_subset_size" in page  # run options

    summary = json.loads((Path(evaluated["eval"]) / "summary.json").read_text())
    pul_cell = f"{summary['networks'][1]['pul']:.1f}"
    assert f"<td>{pul_cell}</td>" in page


def test_report_grid_rows_follow_roles_and_show_same_seed_samples(evaluated, tmp_path):
    out = tmp_path / "report"
    run_cli(["report", "--eval", evaluated["eval"], "--network", f"adapted={evaluated['adapted']}",
             "--seeds", "5,2", "--out", out, "--device", "cpu"])
    sheet = np.asarray(Image.open(out / "samples.png").convert("RGB"))
    label_w, header_h, pad, cell = 130, 16, 4, 64  # 16-px samples shown at 4x
    assert sheet.shape == (header_h + 3 * (cell + pad) + pad, label_w + 2 * (cell + pad) + pad, 3)
    for row, network in enumerate(("original", "adapted", "unlearned")):  # role order, not argument order
        expected = (_reference_images(evaluated[network], [2]) * 127.5 + 128).clamp(0, 255).to(torch.uint8)
        expected = expected[0].permute(1, 2, 0).numpy().repeat(4, axis=0).repeat(4, axis=1)
        y, x = header_h + pad + row * (cell + pad), label_w + pad + (cell + pad)  # second column: seed 2
        np.testing.assert_array_equal(sheet[y:y + cell, x:x + cell], expected)


def test_report_embedded_images_make_one_file(evaluated, tmp_path):
    out = tmp_path / "report"
    run_cli(["report", "--eval", evaluated["eval"], "--embed-images", "--seeds", "0", "--out", out,
             "--device", "cpu"])
    refs = _image_refs((out / "report.html").read_text())
    assert refs and all(ref.startswith("data:image/png;base64,") for ref in refs)
    assert base64.b64decode(refs[0].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_with_a_missing_extra_network_fails_and_writes_nothing(evaluated, tmp_path):
    out = tmp_path / "report"
    result = run_cli(["report", "--eval", evaluated["eval"], "--network", f"extrapolated={tmp_path / 'gone.pkl'}",
                      "--seeds", "0", "--out", out, "--device", "cpu"], expect_ok=False)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "--network extrapolated" in result.output and "gone.pkl' does not exist" in result.output
    assert not out.exists()


def test_report_notes_summary_networks_that_moved(evaluated, tmp_path):
    eval_dir = tmp_path / "eval"
    eval_dir.mkdir()
    summary = json.loads((Path(evaluated["eval"]) / "summary.json").read_text())
    summary["networks"][1]["path"] = str(tmp_path / "moved.pkl")
    (eval_dir / "summary.json").write_text(json.dumps(summary))
    out = tmp_path / "report"
    run_cli(["report", "--eval", eval_dir, "--seeds", "0", "--out", out, "--device", "cpu"])
    assert "moved.pkl not found" in (out / "report.html").read_text()


def test_report_without_summary_is_one_clear_line(tmp_path):
    result = run_cli(["report", "--eval", tmp_path, "--out", tmp_path / "r"], expect_ok=False)
    assert result.exit_code == 1 and "run 'stylegan-unlearn evaluate" in result.output
