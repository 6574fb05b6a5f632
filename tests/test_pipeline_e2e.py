"""End to end from the CLI on CPU: collect → train --mode=adapt → train --mode=unlearn (and extrapolate)
→ evaluate → report, on a tiny network with stand-in classifier and detector.

The detector is the reference-style stand-in served from the dnnlib download cache under the
reference Inception URL, so the default `--detector` path is exercised offline as a user would.
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from test_collect import _reference_images, run_cli, write_standins
from tiny import tiny_network_pkl

pytest.importorskip("matplotlib")

REPO_ROOT = Path(__file__).resolve().parents[1]


def _train(args) -> None:
    """Run `stylegan-unlearn train` in its own process, as a user would (training keeps process-wide state)."""
    command = [sys.executable, "-m", "stylegan_unlearn", "train", *[str(a) for a in args]]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def _final_snapshot(run_root: Path) -> str:
    finals = list(run_root.glob("*/final.json"))
    assert len(finals) == 1, f"expected one finished run under {run_root}"
    return json.loads(finals[0].read_text())["last_snapshot"]


@pytest.mark.slow
def test_collect_adapt_unlearn_evaluate_report(tmp_path, monkeypatch):
    from stylegan_unlearn.metrics.detectors import INCEPTION_URL

    cache = tmp_path / "dnnlib-cache"
    monkeypatch.setenv("DNNLIB_CACHE_DIR", str(cache))
    standins = write_standins(tmp_path / "standins")
    cached_detector = cache / "downloads" / (hashlib.md5(INCEPTION_URL.encode()).hexdigest()
                                             + "_inception-2015-12-05.pt")
    cached_detector.parent.mkdir(parents=True)
    shutil.copy(standins["reference_detector"], cached_detector)
    original = tiny_network_pkl(tmp_path / "original.pkl")

    # The stand-in feature is "brighter than the median sample", so both sets are non-empty.
    scores = 10 * _reference_images(original, range(16)).clamp(-1, 1).mean(dim=[1, 2, 3])
    threshold = float(scores.median())
    samples = tmp_path / "samples"
    run_cli(["collect", "--network", original, "--seeds", "0-15", "--classifier", standins["classifier"],
             "--threshold", threshold, "--outdir", samples, "--device", "cpu"])
    collected = json.loads((samples / "collect.json").read_text())
    assert collected["negatives"]["count"] >= 1 and collected["positives"]["count"] >= 1

    common = ["--device", "cpu", "--batch", 2, "--kimg", 0.004, "--tick", 0.002, "--snap", 1, "--workers", 0]
    _train(["--mode", "adapt", "--outdir", tmp_path / "adapt", "--data", samples / "negatives.zip",
             "--resume", original, "--fisher-samples", 4, *common])
    adapted = _final_snapshot(tmp_path / "adapt")
    _train(["--mode", "unlearn", "--outdir", tmp_path / "unlearn", "--data", samples / "positives.zip",
             "--resume", original, "--adapted", adapted, *common])
    unlearned = _final_snapshot(tmp_path / "unlearn")
    _train(["--mode", "extrapolate", "--outdir", tmp_path / "extrapolate", "--resume", original,
             "--adapted", adapted, "--device", "cpu"])
    extrapolated = [str(p) for p in (tmp_path / "extrapolate").glob("*/*.pkl")]
    assert len(extrapolated) == 1

    evaluation = tmp_path / "eval"
    run_cli(["evaluate", "--network", f"original={original}", "--network", f"unlearned={unlearned}",
             "--network", f"extrapolated={extrapolated[0]}", "--seeds", "0-15",
             "--classifier", standins["classifier"], "--threshold", threshold,
             "--reference", samples / "positives.zip", "--ret-reference-network", original,
             "--attributes", standins["attributes"], "--attribute-threshold", 0, "--kid-subset-size", 8,
             "--out", evaluation, "--device", "cpu"])
    summary = json.loads((evaluation / "summary.json").read_text())
    assert [n["name"] for n in summary["networks"]] == ["original", "unlearned", "extrapolated"]
    assert summary["detector"]["name"] == "inception-2015-12-05"  # the default URL, from the cache
    original_result = summary["networks"][0]
    assert original_result["n_neg"] == collected["negatives"]["count"]  # same seeds, same classifier
    for result in summary["networks"]:
        for key in ("pul", "neg_share", "fid", "kid", "ret_fid"):
            assert result[key] is not None, (result["name"], key)
    assert original_result["ret_fid"] == pytest.approx(0, abs=1e-6)

    report = tmp_path / "report"
    run_cli(["report", "--eval", evaluation, "--network", f"adapted={adapted}", "--seeds", "0-5",
             "--out", report, "--device", "cpu"])
    page = (report / "report.html").read_text()
    refs = re.findall(r"<img src='([^']+)'", page)
    assert "samples.png" in refs and all((report / ref).is_file() for ref in refs)
    assert "<td>extrapolated</td>" in page
