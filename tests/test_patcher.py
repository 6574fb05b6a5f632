"""The patcher on stand-in checkouts: patch, dry-run, idempotence, exact revert, refusals, shipped diffs."""
import json
import os
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from patches import options, patcher
from patches.make_diffs import HERE as PATCHES_DIR
from standin_checkouts import ADA_TRAIN_PY, SG3_TRAIN_PY
from tiny import write_adapted, write_pretrained

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SG3_REQUIRED = ("--cfg", "stylegan2", "--gpus", "1", "--batch", "16", "--gamma", "1")


@pytest.fixture(scope="module")
def pkls(tmp_path_factory):
    """pre.pkl (θ_G), A.pkl and B.pkl (two adapted θ_N) in one folder."""
    root = tmp_path_factory.mktemp("pkls")
    pre = write_pretrained(root / "pre.pkl")
    write_adapted(root / "A.pkl", pre, seed=1)
    write_adapted(root / "B.pkl", pre, seed=2)
    return root


def _checkout(tmp_path, text, name="checkout"):
    root = tmp_path / name
    root.mkdir()
    (root / "train.py").write_bytes(text.encode())
    return root


def _dry_run(root, *args):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    proc = subprocess.run([sys.executable, "train.py", "--dry-run", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)
    return proc


def _options_json(stdout):
    assert "Training options:" in stdout, stdout
    return json.loads(stdout.split("Training options:", 1)[1])


@pytest.mark.parametrize("text,flavour", [(ADA_TRAIN_PY, "ada"), (SG3_TRAIN_PY, "sg3")])
def test_recognises_each_reference_layout(text, flavour):
    assert patcher.recognise(text).key == flavour


@pytest.mark.parametrize("text", [ADA_TRAIN_PY, SG3_TRAIN_PY, ADA_TRAIN_PY.replace("\n", "\r\n")])
def test_patch_is_idempotent_and_reverts_byte_for_byte(tmp_path, text):
    root = _checkout(tmp_path, text)
    original = (root / "train.py").read_bytes()
    assert patcher.patch_file(str(root)) == "patched"
    patched = (root / "train.py").read_bytes()
    assert patched != original and b"stylegan-unlearn" in patched
    assert patcher.patch_file(str(root)) == "unchanged"
    assert (root / "train.py").read_bytes() == patched
    assert patcher.patch_file(str(root), check=True) == "patched"
    assert patcher.patch_file(str(root), revert=True) == "reverted"
    assert (root / "train.py").read_bytes() == original
    assert patcher.patch_file(str(root), revert=True) == "unchanged"


def test_patched_lines_keep_the_file_newline_style(tmp_path):
    root = _checkout(tmp_path, ADA_TRAIN_PY.replace("\n", "\r\n"))
    patcher.patch_file(str(root))
    data = (root / "train.py").read_bytes()
    assert data.count(b"\n") == data.count(b"\r\n")


def test_ada_dry_run_names_repulsion_loss_with_its_arguments(tmp_path, pkls):
    root = _checkout(tmp_path, ADA_TRAIN_PY)
    (root / "data.zip").write_bytes(b"stand-in")
    patcher.patch_file(str(root))
    proc = _dry_run(root, "--outdir", "runs", "--data", "data.zip", "--resume", str(pkls / "pre.pkl"),
                    "--mode=unlearn", "--adapted", str(pkls / "A.pkl"), "--adapted", str(pkls / "B.pkl"),
                    "--repulsion", "el2", "--alpha", "0.5", "--repulsion-weight", "100", "--distance", "l2",
                    "--params", "all")
    assert proc.returncode == 0, proc.stderr
    opts = _options_json(proc.stdout)
    assert opts["loss_kwargs"] == {"class_name": "training_hooks.RepulsionLoss", "r1_gamma": 10.0,
                                   "adapted": [str(pkls / "A.pkl"), str(pkls / "B.pkl")], "repulsion": "el2",
                                   "repulsion_weight": 100.0, "alpha": 0.5, "distance": "l2", "params": "all",
                                   "start_from": str(pkls / "pre.pkl"), "style_mixing_prob": 0.9, "pl_weight": 2.0}
    assert opts["run_dir"].endswith("-resumecustom-unlearn")


def test_ada_dry_run_adapt_and_plain_train(tmp_path, pkls):
    root = _checkout(tmp_path, ADA_TRAIN_PY)
    (root / "data.zip").write_bytes(b"stand-in")
    patcher.patch_file(str(root))
    proc = _dry_run(root, "--outdir", "runs", "--data", "data.zip", "--resume", str(pkls / "pre.pkl"),
                    "--mode", "adapt", "--ewc-lambda", "1e8", "--fisher-samples", "16")
    opts = _options_json(proc.stdout)
    assert opts["loss_kwargs"]["class_name"] == "training_hooks.EWCLoss"
    assert opts["loss_kwargs"]["ewc_lambda"] == 1e8 and opts["loss_kwargs"]["fisher_samples"] == 16
    proc = _dry_run(root, "--outdir", "runs", "--data", "data.zip")
    opts = _options_json(proc.stdout)
    assert opts["loss_kwargs"]["class_name"] == "training.loss.StyleGAN2Loss"
    assert not opts["run_dir"].endswith("-train")


def test_sg3_dry_run_names_sg3_plugin(tmp_path, pkls):
    root = _checkout(tmp_path, SG3_TRAIN_PY)
    patcher.patch_file(str(root))
    proc = _dry_run(root, "--outdir", "runs", *SG3_REQUIRED, "--data", "d.zip", "--resume", str(pkls / "pre.pkl"),
                    "--mode", "unlearn", "--adapted", str(pkls / "A.pkl"))
    assert proc.returncode == 0, proc.stderr
    opts = _options_json(proc.stdout)
    assert opts["loss_kwargs"] == {"class_name": "training_hooks.sg3.RepulsionLoss", "r1_gamma": 1.0,
                                   "adapted": [str(pkls / "A.pkl")], "start_from": str(pkls / "pre.pkl"),
                                   "style_mixing_prob": 0.9, "pl_weight": 2.0, "pl_no_weight_grad": True}
    assert opts["run_dir"].endswith("-unlearn")


@pytest.mark.parametrize("args,message", [
    (["--mode", "unlearn"], "needs at least one --adapted"),
    (["--mode", "adapt"], "--resume"),
    (["--adapted", "A.pkl"], "needs --mode=adapt or --mode=unlearn"),
    (["--mode", "adapt", "--resume", "p.pkl", "--alpha", "1"], "does not apply to --mode=adapt"),
])
def test_patched_train_py_rejects_inconsistent_options(tmp_path, args, message):
    root = _checkout(tmp_path, ADA_TRAIN_PY)
    (root / "data.zip").write_bytes(b"stand-in")
    patcher.patch_file(str(root))
    proc = _dry_run(root, "--outdir", "runs", "--data", "data.zip", *args)
    assert proc.returncode != 0
    assert message in proc.stderr


def test_refuses_unrecognised_or_ambiguous_files_and_writes_nothing(tmp_path):
    root = _checkout(tmp_path, "print('hello')\n")
    with pytest.raises(patcher.PatchError, match="not a recognised train.py"):
        patcher.patch_file(str(root))
    assert (root / "train.py").read_text() == "print('hello')\n"
    doubled = ADA_TRAIN_PY + "\ndef main(ctx, outdir, dry_run, **config_kwargs):\n    pass\n"
    root2 = _checkout(tmp_path, doubled, "doubled")
    with pytest.raises(patcher.PatchError, match="more than once"):
        patcher.patch_file(str(root2))
    assert (root2 / "train.py").read_text() == doubled


def test_refuses_a_hand_edited_patch(tmp_path):
    root = _checkout(tmp_path, ADA_TRAIN_PY)
    patcher.patch_file(str(root))
    edited = (root / "train.py").read_text().replace("flavour='ada'", "flavour='ada'  # tweaked")
    (root / "train.py").write_text(edited)
    with pytest.raises(patcher.PatchError, match="differ"):
        patcher.patch_file(str(root))
    broken = edited.replace("# <<< stylegan-unlearn loss <<<", "")
    (root / "train.py").write_text(broken)
    with pytest.raises(patcher.PatchError, match="not closed"):
        patcher.patch_file(str(root), revert=True)
    assert (root / "train.py").read_text() == broken


def test_cli_patch_check_revert(tmp_path):
    from stylegan_unlearn.cli import main

    root = _checkout(tmp_path, SG3_TRAIN_PY)
    runner = CliRunner()
    assert "unpatched" in runner.invoke(main, ["patch", str(root), "--check"]).output
    result = runner.invoke(main, ["patch", str(root)])
    assert result.exit_code == 0 and "(stylegan3): patched" in result.output
    result = runner.invoke(main, ["patch", str(root), "--revert"])
    assert result.exit_code == 0 and "reverted" in result.output
    assert (root / "train.py").read_text() == SG3_TRAIN_PY
    bad = _checkout(tmp_path, "x = 1\n", "bad")
    result = runner.invoke(main, ["patch", str(bad)])
    assert result.exit_code == 1 and "nothing was written" in result.output


@pytest.mark.parametrize("flavour", patcher.FLAVOURS, ids=lambda f: f.repo)
def test_shipped_diffs_are_current_and_apply_like_the_patcher(tmp_path, flavour):
    shipped = os.path.join(PATCHES_DIR, patcher.diff_filename(flavour))
    with open(shipped, encoding="utf-8") as f:
        assert f.read() == patcher.unified_diff(flavour), "run: python -m patches.make_diffs"
    if shutil.which("patch") is None:
        pytest.skip("GNU patch is not installed")
    text = ADA_TRAIN_PY if flavour.key == "ada" else SG3_TRAIN_PY
    root = _checkout(tmp_path, text)
    proc = subprocess.run(["patch", "-p1", "--quiet", "-i", shipped], cwd=root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (root / "train.py").read_text() == patcher.apply_blocks(text)


def test_option_table_drives_loss_kwargs():
    assert options.loss_overrides({"mode": "train"}, "ada") == {}
    kwargs = options.loss_overrides({"mode": "adapt", "params": "all", "adapted": ()}, "sg3")
    assert kwargs == {"class_name": "training_hooks.sg3.EWCLoss", "params": "all"}
    assert set(options.OPTION_NAMES) == {o.dest for o in options.OPTIONS}
