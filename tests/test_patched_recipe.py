"""Issue 13 on the stand-in checkouts: the official recipe by default (an explicit option wins), float Adam
betas, and bad input refused with one sentence before anything is written."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from patches import patcher
from standin_checkouts import TRAIN_PY
from stylegan_unlearn.data import write_image_dataset
from stylegan_unlearn.method import recipe
from tiny import write_patch_pkls

REPO_ROOT = Path(__file__).resolve().parents[1]
# Options each stand-in needs in every run (stylegan3 requires --gpus, --batch and --gamma).
BASE = {"ada": ["--data", "data.zip"],
        "sg3": ["--cfg", "stylegan3-t", "--data", "data.zip", "--gpus", "1", "--batch", "16", "--gamma", "1"]}


@pytest.fixture(scope="module")
def pkls(tmp_path_factory):
    return write_patch_pkls(tmp_path_factory.mktemp("pkls"))


def checkout(tmp_path, flavour, patched=True):
    root = tmp_path / f"{flavour}-checkout"
    root.mkdir(parents=True)
    (root / "train.py").write_text(TRAIN_PY[flavour])
    (root / "data.zip").write_bytes(b"stand-in")
    if patched:
        patcher.patch_file(str(root))
    return root


def run(root, *args):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "train.py", "--outdir", "runs", *map(str, args)], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def options_of(proc):
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.split("Training options:\n", 1)[1]
    return json.JSONDecoder().raw_decode(text)[0]


def recipe_value(name, stage):
    return recipe.setting(name).value(stage)


@pytest.mark.parametrize("flavour", ["ada", "sg3"])
@pytest.mark.parametrize("stage", ["adapt", "unlearn"])
def test_stages_default_to_the_official_recipe(tmp_path, pkls, flavour, stage):
    root = checkout(tmp_path, flavour)
    extra = ["--adapted", pkls / "adapted.pkl"] if stage == "unlearn" else []
    proc = run(root, *BASE[flavour], "--resume", pkls / "pre.pkl", "--mode", stage, "--dry-run", *extra)
    opts = options_of(proc)
    assert opts["total_kimg"] == recipe_value("kimg", stage) == {"adapt": 32, "unlearn": 16}[stage]
    assert opts["augment_kwargs"] is None and opts["ada_target"] is None and opts["augment_p"] == 0
    assert opts["G_opt_kwargs"]["lr"] == opts["D_opt_kwargs"]["lr"] == 0.002
    assert opts["kimg_per_tick"] == 1.6 and opts["metrics"] == []
    assert opts["image_snapshot_ticks"] == opts["network_snapshot_ticks"] == {"adapt": 10, "unlearn": 5}[stage]
    assert opts["ema_kimg"] == 5 and opts["ema_rampup"] is None
    assert opts["G_reg_interval"] == 4 and opts["D_reg_interval"] == 16
    assert opts["loss_kwargs"]["style_mixing_prob"] == 0.9 and opts["loss_kwargs"]["pl_weight"] == 2
    assert opts["batch_size"] == 16
    if flavour == "ada":  # stylegan3 makes --batch and --gamma required: the user always gives them
        assert opts["batch_gpu"] == 16 and opts["loss_kwargs"]["r1_gamma"] == 10
    lines = [line for line in proc.stdout.splitlines() if line.startswith("  ") and " = " in line]
    assert [line.split(" = ")[0].strip() for line in lines] == [s.name for s in recipe.RECIPE]
    assert f"--mode={stage} follows the official" in proc.stdout
    assert "  kimg = %g: " % recipe_value("kimg", stage) in proc.stdout and "(--kimg not given)" in proc.stdout
    assert "note:" not in proc.stdout


@pytest.mark.parametrize("flavour", ["ada", "sg3"])
def test_plain_training_keeps_the_reference_defaults(tmp_path, pkls, flavour):
    opts = options_of(run(checkout(tmp_path, flavour), *BASE[flavour], "--dry-run"))
    assert opts["total_kimg"] == 25000 and opts["metrics"] == ["fid50k_full"] and opts["ada_target"] == 0.6
    assert opts["image_snapshot_ticks"] == 50 and opts["augment_kwargs"]["class_name"] == "training.augment.AugmentPipe"
    assert opts["loss_kwargs"]["class_name"] == "training.loss.StyleGAN2Loss"


def test_explicit_ada_options_win_and_augmentation_gets_a_note(tmp_path, pkls):
    root = checkout(tmp_path, "ada")
    proc = run(root, *BASE["ada"], "--resume", pkls / "pre.pkl", "--mode", "adapt", "--dry-run", "--kimg", "100",
               "--batch", "32", "--gamma", "1", "--snap", "3", "--aug", "ada", "--metrics", "fid50k_full")
    opts = options_of(proc)
    assert opts["total_kimg"] == 100 and opts["batch_size"] == 32 and opts["loss_kwargs"]["r1_gamma"] == 1
    assert opts["image_snapshot_ticks"] == 3 and opts["metrics"] == ["fid50k_full"] and opts["ada_target"] == 0.6
    assert opts["augment_kwargs"]["class_name"] == "training.augment.AugmentPipe"
    assert opts["ema_kimg"] == 10  # the official per-step decay, at the user's batch of 32
    assert "  batch = 32: as given with --batch (the recipe's is 16)" in proc.stdout
    notes = [line for line in proc.stdout.splitlines() if line.startswith("note:")]
    assert notes == ["note: --aug=ada goes against --mode=adapt: the official recipe trains without augmentation, "
                     "on the generator's own samples; it is used as you asked"]


@pytest.mark.parametrize("flavour", ["ada", "sg3"])
def test_patched_stages_take_the_pretraining_loss_settings_beside_the_pkl(tmp_path, pkls, flavour):
    """The reference pretraining's training_options.json (its loss_kwargs) beats the recipe, as in our train.py."""
    run_dir = tmp_path / "00003-pretraining"
    run_dir.mkdir()
    pre = run_dir / "network-snapshot-000200.pkl"
    pre.write_bytes((pkls / "pre.pkl").read_bytes())
    (run_dir / "training_options.json").write_text(json.dumps(dict(loss_kwargs=dict(
        class_name="training.loss.StyleGAN2Loss", r1_gamma=0.5, pl_weight=0, style_mixing_prob=0))))
    root = checkout(tmp_path, flavour)
    base = BASE[flavour]
    proc = run(root, *base, "--resume", pre, "--mode", "adapt", "--dry-run")
    loss = options_of(proc)["loss_kwargs"]
    assert loss["pl_weight"] == 0 and loss["style_mixing_prob"] == 0
    assert loss["r1_gamma"] == (0.5 if flavour == "ada" else 1)  # stylegan3's --gamma is always given
    assert f"pl_weight = 0: the pretraining's, from {run_dir / 'training_options.json'}" in proc.stdout
    proc = run(root, *base, "--resume", pre, "--mode", "adapt", "--dry-run", "--loss-settings", "recipe")
    loss = options_of(proc)["loss_kwargs"]
    assert loss["pl_weight"] == 2 and loss["style_mixing_prob"] == 0.9
    (run_dir / "training_options.json").write_text("{")
    proc = run(root, *base, "--resume", pre, "--mode", "adapt", "--dry-run")
    assert proc.returncode != 0 and "cannot read the pretraining's options" in proc.stderr
    assert "Traceback" not in proc.stderr and not (root / "runs").exists()


def test_sg3_options_typed_at_their_click_default_still_win(tmp_path, pkls):
    """stylegan3's options have click defaults; typing the default value must count as giving it."""
    root = checkout(tmp_path, "sg3")
    proc = run(root, *BASE["sg3"], "--resume", pkls / "pre.pkl", "--mode", "unlearn", "--adapted",
               pkls / "adapted.pkl", "--dry-run", "--kimg", "25000", "--tick", "4", "--snap", "50", "--aug", "ada",
               "--metrics", "fid50k_full", "--dlr", "0.002")
    opts = options_of(proc)
    assert opts["total_kimg"] == 25000 and opts["kimg_per_tick"] == 4 and opts["image_snapshot_ticks"] == 50
    assert opts["ada_target"] == 0.6 and opts["metrics"] == ["fid50k_full"]
    assert opts["G_opt_kwargs"]["lr"] == 0.002  # --glr not given: the recipe replaces stylegan3-t's 0.0025
    assert "(--glr not given)" in proc.stdout and "as given with --dlr" in proc.stdout
    assert "note: --aug=ada goes against --mode=unlearn" in proc.stdout


@pytest.mark.parametrize("flavour", ["ada", "sg3"])
@pytest.mark.parametrize("stage", ["train", "adapt"])
def test_adam_betas_are_floats_that_current_torch_accepts(tmp_path, pkls, flavour, stage):
    extra = ["--resume", pkls / "pre.pkl", "--mode", stage] if stage != "train" else []
    patched = options_of(run(checkout(tmp_path, flavour), *BASE[flavour], "--dry-run", *extra))
    unpatched = options_of(run(checkout(tmp_path / "plain", flavour, patched=False), *BASE[flavour], "--dry-run"))
    params = [torch.nn.Parameter(torch.ones(2))]

    def adam(opt_kwargs, ratio=None):
        """The optimizer as a loop builds it; `ratio` is the lazy-regularisation rescaling (None: no
        regularisation interval, e.g. stylegan3's G in its stylegan3-t/r configs, where betas pass unchanged)."""
        kwargs = {k: v for k, v in opt_kwargs.items() if k != "class_name"}
        if ratio is not None:
            kwargs.update(lr=kwargs["lr"] * ratio, betas=[beta ** ratio for beta in kwargs["betas"]])
        return torch.optim.Adam(params, **kwargs)

    for key in ("G_opt_kwargs", "D_opt_kwargs"):
        assert patched[key]["betas"] == [0.0, 0.99] and all(isinstance(b, float) for b in patched[key]["betas"])
        adam(patched[key])
        adam(patched[key], ratio=4 / 5)
        with pytest.raises((ValueError, TypeError), match="betas"):
            adam(unpatched[key])


def _run_dirs(root):
    runs = root / "runs"
    return sorted(p.name for p in runs.iterdir()) if runs.exists() else []


@pytest.mark.parametrize("flavour", ["ada", "sg3"])
@pytest.mark.parametrize("case,args,message", [
    ("unlearn without --adapted", ["--resume", "{pre}", "--mode", "unlearn"],
     "--mode=unlearn needs at least one --adapted PKL (a network from --mode=adapt)"),
    ("--adapted of another architecture", ["--resume", "{pre}", "--mode", "unlearn", "--adapted", "{adapted}",
                                           "--adapted", "{other}"],
     "--adapted network '{other}' is not of the --resume network's architecture"),
    ("adapt without --resume", ["--mode", "adapt"],
     "--mode=adapt starts from a pretrained network: pass it with --resume PKL"),
    ("unlearn without --resume", ["--mode", "unlearn", "--adapted", "{adapted}"], "pass it with --resume PKL"),
    ("--resume that does not exist", ["--mode", "adapt", "--resume", "{missing}"],
     "--resume network '{missing}' does not exist"),
    ("--negatives that do not exist", ["--resume", "{pre}", "--mode", "unlearn", "--adapted", "{adapted}",
                                       "--negatives", "{missing_zip}"], "--negatives: dataset '{missing_zip}' does not exist"),
    ("--negatives of another resolution", ["--resume", "{pre}", "--mode", "unlearn", "--adapted", "{adapted}",
                                           "--negatives", "{big_zip}"], "resize the dataset to 16"),
])
def test_bad_input_is_one_sentence_and_writes_nothing(tmp_path, pkls, flavour, case, args, message):
    names = dict(pre=pkls / "pre.pkl", adapted=pkls / "adapted.pkl", other=pkls / "other.pkl",
                 missing=tmp_path / "missing.pkl", missing_zip=tmp_path / "none.zip", big_zip=tmp_path / "big.zip")
    write_image_dataset(str(names["big_zip"]), np.zeros((2, 32, 32, 1), np.uint8))
    root = checkout(tmp_path, flavour)
    proc = run(root, *BASE[flavour], *[a.format(**names) for a in args])
    assert proc.returncode != 0, case
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and message.format(**names) in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert errors[0].count(". ") == 0 and not errors[0].endswith(".")  # one sentence
    assert _run_dirs(root) == []


@pytest.mark.parametrize("flavour", ["ada", "sg3"])
def test_a_value_against_the_mode_is_allowed_and_the_run_starts(tmp_path, pkls, flavour):
    """The control for the test above: a valid run does create its run directory."""
    root = checkout(tmp_path, flavour)
    proc = run(root, *BASE[flavour], "--resume", pkls / "pre.pkl", "--mode", "adapt", "--aug", "ada")
    assert proc.returncode == 0, proc.stderr
    assert "note: --aug=ada goes against --mode=adapt" in proc.stdout
    (run_dir,) = _run_dirs(root)
    assert run_dir.endswith("-adapt")
    saved = json.loads((root / "runs" / run_dir / "training_options.json").read_text())
    assert saved["ada_target"] == 0.6 and saved["total_kimg"] == 32


def _import_train_py(root, name):
    spec = importlib.util.spec_from_file_location(name, root / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_recipe_table_serves_our_train_py_and_the_patch_blocks(tmp_path, pkls, monkeypatch):
    from stylegan_unlearn.data import write_image_dataset
    from stylegan_unlearn.commands.train import train_command
    import numpy as np

    changed = tuple(s._replace(adapt=7) if s.name == "kimg" else s._replace(adapt=3) if s.name == "snap" else s
                    for s in recipe.RECIPE)
    monkeypatch.setattr(recipe, "RECIPE", changed)
    data = tmp_path / "negatives.zip"
    write_image_dataset(str(data), np.zeros((2, 16, 16, 1), dtype=np.uint8))
    ours = CliRunner().invoke(train_command, ["--mode", "adapt", "--outdir", str(tmp_path / "ours"), "--data",
                                              str(data), "--resume", str(pkls / "pre.pkl"), "--dry-run"])
    assert ours.exit_code == 0, ours.output
    ours_opts = json.loads(ours.output.split("Training options:\n", 1)[1].split("\n\n")[0])

    root = checkout(tmp_path, "ada")
    standin = _import_train_py(root, "standin_ada_train")
    patched = CliRunner().invoke(standin.main, ["--outdir", str(root / "runs"), "--data", str(root / "data.zip"),
                                                "--resume", str(pkls / "pre.pkl"), "--mode", "adapt", "--dry-run"])
    assert patched.exit_code == 0, patched.output
    patched_opts = json.JSONDecoder().raw_decode(patched.output.split("Training options:\n", 1)[1])[0]
    for opts in (ours_opts, patched_opts):
        assert opts["total_kimg"] == 7 and opts["network_snapshot_ticks"] == 3
    assert "  kimg = 7: " in ours.output and "  kimg = 7: " in patched.output


@pytest.mark.parametrize("flavour", ["ada", "sg3"])
def test_negatives_reach_the_repulsion_plugin_as_absolute_paths(tmp_path, pkls, flavour):
    for name in ("neg-1.zip", "neg-2.zip"):
        write_image_dataset(str(tmp_path / name), np.full((3, 16, 16, 1), 200, np.uint8))
    root = checkout(tmp_path, flavour)
    proc = run(root, *BASE[flavour], "--resume", pkls / "pre.pkl", "--mode", "unlearn", "--adapted",
               pkls / "adapted.pkl", "--negatives", tmp_path / "neg-1.zip", "--negatives", tmp_path / "neg-2.zip",
               "--negative-weight", "2", "--dry-run")
    loss = options_of(proc)["loss_kwargs"]
    assert loss["negatives"] == [str(tmp_path / "neg-1.zip"), str(tmp_path / "neg-2.zip")]
    assert loss["negative_weight"] == 2
    refused = run(root, *BASE[flavour], "--resume", pkls / "pre.pkl", "--mode", "adapt", "--negatives",
                  tmp_path / "neg-1.zip", "--dry-run")
    assert refused.returncode != 0 and "--negatives does not apply to --mode=adapt" in refused.stderr
