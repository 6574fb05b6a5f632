"""Bad numbers, bad paths and unwritable outputs: refused where they enter, before anything is created, with
one clear line that names the option or file (issue 14)."""
import copy
import json
import os
import pickle
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from stylegan_unlearn.cli import main as cli_main
from stylegan_unlearn.data import ImageDataset
from stylegan_unlearn.method.extrapolate import extrapolate
from stylegan_unlearn.method.repulsion import check_settings
import test_train_cli
from tiny import sampling_generator, tiny_network_pkl
from test_train_cli import FAST, invoke
from stylegan_unlearn.method.penalties import RepulsionPenalty

# The tiny dataset and networks of the train tests (module fixtures: trained once here too).
data, pretrained, adapted = test_train_cli.data, test_train_cli.pretrained, test_train_cli.adapted


def run(*args):
    return CliRunner().invoke(cli_main, [str(a) for a in args])


def assert_one_line_error(result, *fragments):
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output and "Caught" not in result.output, result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


def nothing_in(path: Path) -> bool:
    return not path.exists() or not any(path.iterdir())


@pytest.fixture()
def network(tmp_path):
    return tiny_network_pkl(tmp_path / "net.pkl", seed=0)


@pytest.fixture()
def unwritable(tmp_path):
    """A directory nobody can create files in: immutable for root (chattr +i), read-only otherwise."""
    folder = tmp_path / "locked"
    folder.mkdir()
    if os.geteuid() == 0:
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)]).returncode != 0:
            pytest.skip("running as root without chattr +i: cannot make an unwritable directory")
    else:
        folder.chmod(0o555)
    try:
        (folder / "probe").touch()
    except OSError:
        pass
    else:
        pytest.skip("the file system lets us write into the locked directory")
    yield folder
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(folder)])
    else:
        folder.chmod(0o755)


# ------------------------------------------------------------------------------------------ train: numbers

@pytest.mark.parametrize("mode_args, option, message", [
    (["--data", "{data}/positives.zip"], ["--kimg", "nan"], "--kimg must be a finite number, got nan"),
    (["--data", "{data}/positives.zip"], ["--tick", "inf"], "--tick must be a finite number"),
    (["--data", "{data}/positives.zip"], ["--gamma", "nan"], "--gamma must be a finite number"),
    (["--mode", "adapt", "--data", "{data}/negatives.zip", "--resume", "{pkl}"], ["--ewc-lambda", "inf"],
     "--ewc-lambda must be a finite number"),
    (["--mode", "adapt", "--data", "{data}/negatives.zip", "--resume", "{pkl}"], ["--ewc-lambda", "-1"],
     "--ewc-lambda must not be negative"),
    (["--mode", "unlearn", "--data", "{data}/positives.zip", "--resume", "{pkl}", "--adapted", "{adapted}"],
     ["--alpha", "-1"], "--alpha must be positive"),
    (["--mode", "unlearn", "--data", "{data}/positives.zip", "--resume", "{pkl}", "--adapted", "{adapted}"],
     ["--alpha", "0"], "--alpha must be positive"),
    (["--mode", "unlearn", "--data", "{data}/positives.zip", "--resume", "{pkl}", "--adapted", "{adapted}"],
     ["--alpha", "nan"], "--alpha must be a finite number"),
    (["--mode", "unlearn", "--data", "{data}/positives.zip", "--resume", "{pkl}", "--adapted", "{adapted}"],
     ["--repulsion-weight", "-5"], "--repulsion-weight must not be negative"),
    (["--mode", "extrapolate", "--resume", "{pkl}", "--adapted", "{adapted}"], ["--extrapolate-gamma", "nan"],
     "--extrapolate-gamma must be a finite number"),
    (["--mode", "extrapolate", "--resume", "{pkl}", "--adapted", "{adapted}"], ["--extrapolate-gamma", "inf"],
     "--extrapolate-gamma must be a finite number"),
])
def test_train_refuses_bad_numbers_before_creating_anything(data, pretrained, adapted, tmp_path, mode_args,
                                                            option, message):
    args = [a.format(data=data, pkl=pretrained, adapted=adapted) for a in mode_args]
    result = invoke(["--outdir", tmp_path / "out", *args, "--kimg", "0.004", *FAST, *option], expect_ok=False)
    assert_one_line_error(result, message)
    assert not (tmp_path / "out").exists()


def test_library_refuses_bad_repulsion_settings_and_gamma():
    with pytest.raises(ValueError, match="alpha must be a finite number > 0"):
        check_settings(100.0, -1.0)
    with pytest.raises(ValueError, match="weight must be a finite number"):
        check_settings(float("inf"), 1.0)
    with pytest.raises(ValueError, match="gamma must be a finite number"):
        extrapolate({"G_ema": torch.nn.Linear(1, 1)}, [{"G_ema": torch.nn.Linear(1, 1)}], float("nan"))


# ------------------------------------------------------------------------------------------ train: paths

def test_adapted_equal_to_resume_is_refused(data, pretrained, tmp_path):
    base = ["--mode", "unlearn", "--outdir", tmp_path / "out", "--data", data / "positives.zip", "--resume",
            pretrained, "--kimg", "0.004", *FAST]
    same_file = invoke([*base, "--adapted", pretrained], expect_ok=False)
    assert_one_line_error(same_file, "is the --resume network itself")
    copy_path = tmp_path / "copy.pkl"
    shutil.copy(pretrained, copy_path)
    same_weights = invoke([*base, "--adapted", copy_path], expect_ok=False)
    assert_one_line_error(same_weights, f"--adapted '{copy_path}' has the same weights as the --resume network")
    assert not (tmp_path / "out").exists()


def test_repulsion_penalty_refuses_an_anchor_identical_to_the_generator():
    G = sampling_generator()
    with pytest.raises(ValueError, match="same weights as the network being trained"):
        RepulsionPenalty(G, "cpu", adapted=[copy.deepcopy(G)])


@pytest.mark.parametrize("option", ["--resume", "--adapted"])
def test_a_directory_given_as_a_pkl_is_called_a_directory(data, pretrained, tmp_path, option):
    folder = tmp_path / "a_folder"
    folder.mkdir()
    args = {"--resume": ["--mode", "adapt", "--resume", folder],
            "--adapted": ["--mode", "unlearn", "--resume", pretrained, "--adapted", folder]}[option]
    result = invoke(["--outdir", tmp_path / "out", "--data", data / "positives.zip", *args, "--kimg", "0.004",
                     *FAST], expect_ok=False)
    assert_one_line_error(result, f"{option} network '{folder}' is a directory")
    assert "does not exist" not in result.output


def test_generate_says_a_directory_is_a_directory(tmp_path):
    result = run("generate", "--network", tmp_path, "--seeds", "0", "--outdir", tmp_path / "out")
    assert_one_line_error(result, "is a directory")
    assert "does not exist" not in result.output


def test_a_bad_adapted_pkl_fails_before_the_run_directory_exists(data, pretrained, tmp_path):
    broken = tmp_path / "broken.pkl"
    broken.write_bytes(b"\x80\x04 definitely not a network")
    result = invoke(["--mode", "unlearn", "--outdir", tmp_path / "out", "--data", data / "positives.zip",
                     "--resume", pretrained, "--adapted", broken, "--kimg", "0.004", *FAST], expect_ok=False)
    assert_one_line_error(result, "--adapted", "broken.pkl")
    assert nothing_in(tmp_path / "out")


def test_batch_larger_than_the_dataset_warns_once(data, pretrained, tmp_path):
    result = invoke(["--mode", "adapt", "--outdir", tmp_path / "out", "--data", data / "negatives.zip",
                     "--resume", pretrained, "--batch", "32", "-n"])
    assert result.output.count("warning: --batch=32 is larger than the dataset (8 images") == 1


def test_train_into_an_unwritable_outdir_is_one_line(data, pretrained, unwritable):
    result = invoke(["--mode", "adapt", "--outdir", unwritable / "runs", "--data", data / "negatives.zip",
                     "--resume", pretrained, "--kimg", "0.004", *FAST], expect_ok=False)
    assert_one_line_error(result, "cannot write to --outdir")
    assert nothing_in(unwritable)


def test_ragged_labels_name_dataset_json(tmp_path):
    from PIL import Image
    folder = tmp_path / "ragged"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(folder / name)
    (folder / "dataset.json").write_text(json.dumps({"labels": [["a.png", [1.0, 0.0]], ["b.png", [1.0]]]}))
    with pytest.raises(ValueError, match="dataset.json in '.*ragged' has labels of different shapes"):
        ImageDataset(str(folder), use_labels=True).label_shape
    result = invoke(["--outdir", tmp_path / "out", "--data", folder, "--cond", "1", "--kimg", "0.004", *FAST],
                    expect_ok=False)
    assert_one_line_error(result, f"dataset.json in '{folder}' has labels of different shapes")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------ non-finite output

def _pickle_nan_network(path: Path, network_pkl: str) -> Path:
    """A pkl with NaN weights, as a diverged run of another tool might have written it (not through our saver)."""
    with open(network_pkl, "rb") as f:
        data = pickle.load(f)
    with torch.no_grad():
        for p in data["G_ema"].parameters():
            p.fill_(float("nan"))
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=4)
    return path


def test_generate_never_writes_images_from_non_finite_output(network, tmp_path):
    broken = _pickle_nan_network(tmp_path / "nan.pkl", network)
    result = run("generate", "--network", broken, "--seeds", "0-1", "--outdir", tmp_path / "out")
    assert_one_line_error(result, "NaN or infinite pixel values")
    assert nothing_in(tmp_path / "out")


@pytest.mark.parametrize("command", ["generate", "collect", "evaluate"])
def test_non_finite_truncation_is_refused(network, tmp_path, command):
    extra = {"generate": ["--seeds", "0", "--outdir", tmp_path / "out"],
             "collect": ["--seeds", "0", "--negative-seeds", "0", "--outdir", tmp_path / "out"],
             "evaluate": ["--seeds", "0", "--classifier", "x.pt", "--out", tmp_path / "out"]}[command]
    result = run(command, "--network", network, "--trunc", "nan", *extra)
    assert result.exit_code == 2 and "'nan' is not a finite number" in result.output and "--trunc" in result.output
    assert not (tmp_path / "out").exists()


def test_extrapolate_refuses_non_finite_gamma_and_the_base_as_adapted(network, tmp_path):
    other = tiny_network_pkl(tmp_path / "other.pkl", seed=1)
    for gamma in ("nan", "inf"):
        result = run("extrapolate", "--network", network, "--adapted", other, "--gamma", gamma,
                     "--out", tmp_path / "x.pkl")
        assert result.exit_code == 2 and "not a finite number" in result.output
    result = run("extrapolate", "--network", network, "--adapted", network, "--out", tmp_path / "x.pkl")
    assert_one_line_error(result, "is the --network pickle itself")
    assert not (tmp_path / "x.pkl").exists()


# ------------------------------------------------------------------------------------------ unwritable outputs

def test_unwritable_outputs_are_one_line_before_any_work(network, unwritable, tmp_path):
    other = tiny_network_pkl(tmp_path / "other.pkl", seed=1)
    target = unwritable / "out"
    cases = {
        "generate": ["generate", "--network", network, "--seeds", "0", "--outdir", target],
        "collect": ["collect", "--network", network, "--seeds", "0-1", "--negative-seeds", "0", "--outdir", target],
        "evaluate": ["evaluate", "--network", network, "--network", f"b={other}", "--seeds", "0-3",
                     "--classifier", "torch.nn:Identity", "--target-class", "0", "--out", target],
        "extrapolate": ["extrapolate", "--network", network, "--adapted", other, "--out", unwritable / "x.pkl"],
        "demo": ["demo", "--fast", "--outdir", target],
    }
    for name, args in cases.items():
        result = run(*args)
        assert_one_line_error(result, "cannot write to")
        assert "samples" not in result.output and "[1/5]" not in result.output, (name, result.output)
    eval_dir = tmp_path / "eval"
    eval_dir.mkdir()
    (eval_dir / "summary.json").write_text(json.dumps({"networks": [], "seeds": "0"}))
    assert_one_line_error(run("report", "--eval", eval_dir, "--out", target), "cannot write to --out")
    assert nothing_in(unwritable)


# ------------------------------------------------------------------------------------------ classifiers

def test_classifier_specs_that_fail_to_build_or_import_are_one_line(network, tmp_path, monkeypatch):
    result = run("collect", "--network", network, "--seeds", "0-1", "--classifier", "torch.nn:Linear",
                 "--outdir", tmp_path / "out")
    assert_one_line_error(result, "classifier 'torch.nn:Linear': building Linear() without arguments failed",
                          "TypeError")
    (tmp_path / "broken_judge.py").write_text("raise RuntimeError('weights file missing')\n\ndef judge(x):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    result = run("collect", "--network", network, "--seeds", "0-1", "--classifier", "broken_judge:judge",
                 "--outdir", tmp_path / "out")
    assert_one_line_error(result, "importing module 'broken_judge'", "RuntimeError: weights file missing")
    assert not (tmp_path / "out").exists()
