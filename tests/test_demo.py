"""`stylegan-unlearn demo --fast` runs collect → adapt → unlearn → evaluate → report end to end."""
import json

from click.testing import CliRunner

from stylegan_unlearn.cli import main


def test_demo_fast_runs_end_to_end(tmp_path):
    outdir = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", "--fast", "--digit", "8", "--outdir", str(outdir)])
    assert result.exit_code == 0, result.output[-3000:]
    assert "PUL %" in result.output and "unlearned" in result.output
    summary = json.loads((outdir / "demo.json").read_text())
    original, unlearned = summary["rows"]["original"], summary["rows"]["unlearned"]
    assert original["n_neg"] >= 1  # the bundled generator makes the digit at all
    assert original["pul"] == 0.0
    expected_pul = 100 * (original["n_neg"] - unlearned["n_neg"]) / original["n_neg"]
    assert abs(unlearned["pul"] - expected_pul) < 1e-6  # PUL from the same seeds' counts
    assert original["fid"] > 0 and unlearned["fid"] > 0
    assert abs(sum(original["shares"].values()) - 1) < 1e-6
    assert (outdir / "report" / "report.html").is_file()
    assert (outdir / "samples" / "negatives.zip").is_file()
    # K = 2 adapted models, each on its own negatives, both repelled from, and their shares reported.
    assert (outdir / "samples" / "negatives-1.zip").is_file() and (outdir / "samples" / "negatives-2.zip").is_file()
    assert len(summary["adapted"]) == 2 and len(summary["adapted_shares"]) == 2
    assert all(0 <= share <= 1 for share in summary["adapted_shares"])
    assert "θ_N1:" in result.output and "θ_N2:" in result.output
    unlearn_options = json.loads(next((outdir / "unlearn").glob("*/training_options.json")).read_text())
    assert len(unlearn_options["loss_kwargs"]["adapted"]) == 2
    # Stage 2 shows D the negatives of both adapted models as fakes.
    assert unlearn_options["loss_kwargs"]["negatives"] == [str(outdir / "samples" / f"negatives-{i}.zip")
                                                           for i in (1, 2)]
    assert "negatives as fakes" in result.output


def test_demo_rejects_a_missing_network(tmp_path):
    result = CliRunner().invoke(main, ["demo", "--fast", "--network", str(tmp_path / "nope.pkl"),
                                       "--outdir", str(tmp_path / "out")])
    assert result.exit_code != 0
    assert "not found" in result.output
