"""`train.py` end to end on tiny networks: train → adapt → unlearn → extrapolate, multi-process, kill/resume, bad input."""
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from stylegan_unlearn.data import write_image_dataset
from stylegan_unlearn.loop import snapshots
from stylegan_unlearn.commands.train import train_command

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY = ["--cbase", "256", "--cmax", "16", "--map", "2", "--zdim", "16", "--wdim", "16"]
FAST = ["--batch", "4", "--tick", "0.008", "--snap", "1", "--workers", "0", "--device", "cpu"]



def invoke(args, expect_ok=True):
    result = CliRunner().invoke(train_command, [str(a) for a in args], catch_exceptions=False)
    if expect_ok:
        assert result.exit_code == 0, result.output
    return result


def only_run_dir(outdir, mode):
    dirs = [d for d in Path(outdir).iterdir() if d.is_dir() and f"-{mode}-" in d.name]
    assert len(dirs) == 1, dirs
    return dirs[0]


def latest(run_dir):
    """The run's last network snapshot (ticks below 1 kimg give names with the exact kimg)."""
    return Path(snapshots.find_latest_snapshot(str(run_dir)))


def load(path):
    with open(path, "rb") as f:
        return pickle.load(f)


def sq_distance(a, b):
    """Σ (a − b)² over generator parameters, matched by name."""
    other = dict(b.named_parameters())
    return sum(float((p.detach() - other[name].detach()).double().square().sum()) for name, p in a.named_parameters())


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    rnd = np.random.RandomState(0)
    positives = rnd.randint(0, 128, (8, 16, 16, 3), dtype=np.uint8)
    negatives = rnd.randint(128, 256, (8, 16, 16, 3), dtype=np.uint8)
    write_image_dataset(str(root / "positives.zip"), positives)
    write_image_dataset(str(root / "negatives.zip"), negatives)
    write_image_dataset(str(root / "big.zip"), rnd.randint(0, 256, (2, 32, 32, 3), dtype=np.uint8))
    write_image_dataset(str(root / "gray.zip"), rnd.randint(0, 256, (2, 16, 16, 1), dtype=np.uint8))
    return root


@pytest.fixture(scope="module")
def pretrained(data, tmp_path_factory):
    outdir = tmp_path_factory.mktemp("pretrain")
    invoke(["--outdir", outdir, "--data", data / "positives.zip", "--kimg", "0.008", *TINY, *FAST])
    run_dir = only_run_dir(outdir, "train")
    assert run_dir.name == "00000-train-positives-auto1-kimg0.008-batch4"
    options = json.loads((run_dir / "training_options.json").read_text())
    assert options["G_kwargs"]["z_dim"] == 16 and options["loss_kwargs"]["class_name"] == "training_hooks.StyleGAN2Loss"
    assert "tick 1" in (run_dir / "log.txt").read_text()
    return latest(run_dir)


@pytest.fixture(scope="module")
def adapted(data, pretrained, tmp_path_factory):
    outdir = tmp_path_factory.mktemp("adapt")
    invoke(["--mode", "adapt", "--outdir", outdir, "--data", data / "negatives.zip", "--resume", pretrained,
            "--kimg", "0.016", "--fisher-samples", "4", *FAST])
    run_dir = only_run_dir(outdir, "adapt")
    options = json.loads((run_dir / "training_options.json").read_text())
    assert options["loss_kwargs"]["class_name"] == "training_hooks.EWCLoss"
    assert options["loss_kwargs"]["ewc_lambda"] == 5e8 and options["loss_kwargs"]["params"] == "synthesis"
    assert options["resume_G_from"] == "G_ema" and (run_dir / "fisher.pt").is_file()
    return latest(run_dir)


def _unlearn(data, pretrained, adapted, outdir, *extra):
    invoke(["--mode", "unlearn", "--outdir", outdir, "--data", data / "positives.zip", "--resume", pretrained,
            "--adapted", adapted, "--kimg", "0.016", "--seed", "3", *FAST, *extra])
    return only_run_dir(outdir, "unlearn")


def test_adapt_moves_towards_negatives_then_unlearn_repels(data, pretrained, adapted, tmp_path):
    theta_G = load(pretrained)
    theta_N = load(adapted)["G_ema"]
    assert sq_distance(theta_G["G_ema"], theta_N) > 0

    repelled = _unlearn(data, pretrained, adapted, tmp_path / "repel", "--repulsion", "nl2",
                        "--repulsion-weight", "1000")
    control = _unlearn(data, pretrained, adapted, tmp_path / "control", "--repulsion", "nl2",
                       "--repulsion-weight", "0")
    options = json.loads((repelled / "training_options.json").read_text())
    assert options["loss_kwargs"]["adapted"] == [str(adapted)] and options["loss_kwargs"]["params"] == "all"
    assert options["resume_G_from"] == "G_ema"  # unlearning starts at θ_G's G_ema, as under the reference loops

    d_start = sq_distance(theta_G["G_ema"], theta_N)
    d_repelled = sq_distance(load(latest(repelled))["G"], theta_N)
    d_control = sq_distance(load(latest(control))["G"], theta_N)
    assert d_repelled > d_start and d_repelled > d_control

    stats = [json.loads(line) for line in (repelled / "stats.jsonl").read_text().splitlines()]
    distances = [s["Loss/G/distance"]["mean"] for s in stats if "Loss/G/distance" in s]
    assert len(distances) >= 2 and distances[-1] > distances[0]
    for line in stats:
        for name, value in line.items():
            if name.startswith("Loss/"):
                assert np.isfinite(value["mean"]), name


def test_extrapolate_and_fresh_process_loading(data, pretrained, adapted, tmp_path):
    invoke(["--mode", "extrapolate", "--outdir", tmp_path, "--resume", pretrained, "--adapted", adapted,
            "--extrapolate-gamma", "0.5"])
    run_dir = only_run_dir(tmp_path, "extrapolate")
    out = run_dir / "extrapolated-gamma0.5.pkl"
    theta_G, theta_N, result = load(pretrained)["G_ema"], load(adapted)["G_ema"], load(out)["G_ema"]
    name, expected = next(iter(theta_G.named_parameters()))
    expected = expected + 0.5 * (expected - dict(theta_N.named_parameters())[name])
    assert torch.allclose(dict(result.named_parameters())[name], expected, atol=1e-6)

    script = ("import pickle, sys, torch\n"
              "for path in sys.argv[1:]:\n"
              "    data = pickle.load(open(path, 'rb'))\n"
              "    G = data['G_ema']\n"
              "    img = G(torch.randn(2, G.z_dim), None, noise_mode='const')\n"
              "    assert img.shape == (2, 3, 16, 16) and torch.isfinite(img).all()\n"
              "print('loaded', len(sys.argv) - 1)\n")
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", script, str(pretrained), str(adapted), str(out)],
                          cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "loaded 3" in proc.stdout, proc.stderr


def test_dry_run_shows_official_defaults_and_writes_nothing(data, pretrained, tmp_path):
    result = invoke(["--mode", "adapt", "--outdir", tmp_path / "out", "--data", data / "negatives.zip",
                     "--resume", pretrained, "--loss-settings", "recipe", "-n"])
    options = json.loads(result.output.split("Training options:")[1].split("\n\n")[0])
    assert options["batch_size"] == 16 and options["total_kimg"] == 32 and options["ema_kimg"] == 5
    assert options["G_opt_kwargs"]["lr"] == 0.002 and options["loss_kwargs"]["r1_gamma"] == 10
    assert options["loss_kwargs"]["style_mixing_prob"] == 0.9 and options["augment_kwargs"] is None
    assert options["G_kwargs"]["z_dim"] == 16  # architecture from the pkl, not from --cfg
    assert not (tmp_path / "out").exists()


def _pretraining_loss(pkl: Path) -> dict:
    return json.loads((Path(pkl).parent / "training_options.json").read_text())["loss_kwargs"]


def test_loss_settings_default_to_the_pretraining_recorded_beside_the_pkl(data, pretrained, tmp_path):
    """R1 γ, path length and style mixing come from the resume run's training_options.json, each line saying so."""
    loss = _pretraining_loss(pretrained)
    assert loss["r1_gamma"] != 10  # the tiny pretraining's auto γ, so the test can tell the two apart
    copied = tmp_path / "elsewhere" / "net.pkl"  # the same pkl with no run folder around it
    copied.parent.mkdir()
    shutil.copy(pretrained, copied)
    result = invoke(["--mode", "adapt", "--outdir", tmp_path / "out", "--data", data / "negatives.zip",
                     "--resume", pretrained, "--style-mixing", "0.5", "-n"])
    head, options = result.output.split("Training options:")
    options = json.loads(options.split("\n\n")[0])
    assert options["loss_kwargs"]["r1_gamma"] == loss["r1_gamma"] and options["loss_kwargs"]["pl_weight"] == loss["pl_weight"]
    assert options["loss_kwargs"]["style_mixing_prob"] == 0.5  # given wins over the pretraining
    assert f"gamma = {loss['r1_gamma']:g}: the pretraining's, from {Path(pretrained).parent / 'training_options.json'}" in head
    assert "style_mixing = 0.5: as given with --style-mixing" in head
    result = invoke(["--mode", "adapt", "--outdir", tmp_path / "out", "--data", data / "negatives.zip",
                     "--resume", copied, "-n"])
    options = json.loads(result.output.split("Training options:")[1].split("\n\n")[0])
    assert options["loss_kwargs"]["r1_gamma"] == 10 and options["loss_kwargs"]["pl_weight"] == 2
    assert "no training_options.json with it beside --resume" in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("text, said", [("{not json", "cannot read the pretraining's options"),
                                        ('{"loss_kwargs": {"r1_gamma": "ten"}}', "is not a non-negative number"),
                                        ('{"G_kwargs": {}}', "has no loss_kwargs")])
def test_unreadable_pretraining_options_are_one_clear_error(data, pretrained, tmp_path, text, said):
    copied = tmp_path / "run" / "net.pkl"
    copied.parent.mkdir()
    shutil.copy(pretrained, copied)
    (copied.parent / "training_options.json").write_text(text)
    result = invoke(["--mode", "adapt", "--outdir", tmp_path / "out", "--data", data / "negatives.zip",
                     "--resume", copied, "-n"], expect_ok=False)
    assert said in result.output and "--loss-settings=recipe" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
    result = invoke(["--mode", "adapt", "--outdir", tmp_path / "out", "--data", data / "negatives.zip",
                     "--resume", copied, "--loss-settings", "recipe", "-n"])
    assert '"r1_gamma": 10' in result.output


def test_dry_run_prints_each_recipe_choice_and_a_note_against_the_mode(data, pretrained, tmp_path):
    from stylegan_unlearn.method import recipe
    result = invoke(["--mode", "adapt", "--outdir", tmp_path / "out", "--data", data / "negatives.zip",
                     "--resume", pretrained, "--kimg", "8", "--aug", "ada", "-n"])
    head = result.output.split("Training options:")[0]
    lines = [line for line in head.splitlines() if line.startswith("  ") and " = " in line]
    assert [line.split(" = ")[0].strip() for line in lines] == [s.name for s in recipe.RECIPE]
    assert "  kimg = 8: as given with --kimg (the recipe's is 32)" in head
    assert "  batch = 16: the official batch size (--batch not given)" in head
    assert "note: --aug=ada goes against --mode=adapt" in head
    options = json.loads(result.output.split("Training options:")[1].split("\n\n")[0])
    assert options["total_kimg"] == 8 and options["ada_target"] == 0.6
    assert options["G_opt_kwargs"]["betas"] == [0.0, 0.99]


def test_adapted_of_another_architecture_is_refused_before_anything_is_written(data, pretrained, tmp_path):
    from tiny import write_other_architecture
    other = write_other_architecture(tmp_path / "other.pkl")
    result = invoke(["--mode", "unlearn", "--outdir", tmp_path / "out", "--data", data / "positives.zip",
                     "--resume", pretrained, "--adapted", other], expect_ok=False)
    assert result.exit_code != 0
    assert f"--adapted network '{other}' is not of the --resume network's architecture" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


def test_regulariser_and_ema_overrides_reach_the_options(data, pretrained, adapted, tmp_path):
    result = invoke(["--mode", "unlearn", "--outdir", tmp_path / "out", "--data", data / "positives.zip",
                     "--resume", pretrained, "--adapted", adapted, "--pl-weight", "0", "--style-mixing", "0",
                     "--ema-kimg", "0.25", "-n"])
    options = json.loads(result.output.split("Training options:")[1].split("\n\n")[0])
    assert options["loss_kwargs"]["pl_weight"] == 0 and options["loss_kwargs"]["style_mixing_prob"] == 0
    assert options["ema_kimg"] == 0.25


def test_two_processes_on_cpu_agree(data, tmp_path):
    invoke(["--outdir", tmp_path, "--data", data / "positives.zip", "--kimg", "0.008", "--gpus", "2", *TINY, *FAST])
    run_dir = only_run_dir(tmp_path, "train")
    log = (run_dir / "log.txt").read_text()
    assert "All 2 processes hold identical G, D and G_ema parameters" in log
    state = snapshots.load_sidecar(str(latest(run_dir)))
    assert state["num_gpus"] == 2 and state["cur_nimg"] == 8


def test_sigkill_then_resume_continues(data, tmp_path):
    outdir = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, str(REPO_ROOT / "train.py"), "--outdir", str(outdir), "--data",
           str(data / "positives.zip"), "--kimg", "10", *TINY, *FAST]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        pkl = None
        while time.time() < deadline:
            runs = list(outdir.iterdir()) if outdir.exists() else []
            found = snapshots.find_latest_snapshot(str(runs[0])) if runs else None
            if found and (snapshots.load_sidecar(found) or {}).get("cur_nimg", 0) >= 8:
                pkl = Path(found)
                break
            assert proc.poll() is None, "training exited early"
            time.sleep(0.2)
        assert pkl is not None, "no snapshot within the deadline"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    killed_nimg = snapshots.load_sidecar(str(pkl))["cur_nimg"]
    total = (killed_nimg + 8) / 1000
    invoke(["--outdir", tmp_path / "resumed", "--data", data / "positives.zip", "--resume", pkl,
            "--kimg", total, *FAST])
    run_dir = only_run_dir(tmp_path / "resumed", "train")
    log = (run_dir / "log.txt").read_text()
    assert f"Continuing at kimg {killed_nimg / 1000:.3f}" in log
    assert json.loads((run_dir / "final.json").read_text())["cur_nimg"] == killed_nimg + 8
    assert not list(pkl.parent.glob(".*.tmp")), "temp files of the killed writes are removed on resume"


@pytest.mark.parametrize("case, args, message", [
    ("missing data", ["--data", "{data}/nope.zip"], "does not exist"),
    ("no data", [], "needs --data"),
    ("adapt without resume", ["--mode", "adapt", "--data", "{data}/negatives.zip"], "needs --resume"),
    ("unlearn without adapted", ["--mode", "unlearn", "--data", "{data}/positives.zip", "--resume", "{pkl}"],
     "at least one --adapted"),
    ("wrong resolution", ["--mode", "adapt", "--data", "{data}/big.zip", "--resume", "{pkl}"],
     "32x32 images but the network makes 16x16"),
    ("wrong channels", ["--mode", "adapt", "--data", "{data}/gray.zip", "--resume", "{pkl}"],
     "1 channel"),
    ("cond without labels", ["--data", "{data}/positives.zip", "--cond", "1"], "requires labels"),
    ("missing resume", ["--mode", "adapt", "--data", "{data}/negatives.zip", "--resume", "{data}/x.pkl"],
     "does not exist"),
    ("batch vs gpus", ["--data", "{data}/positives.zip", "--batch", "3", "--gpus", "2", "--device", "cpu"],
     "multiple of --gpus"),
    ("fixed aug without p", ["--data", "{data}/positives.zip", "--aug", "fixed"], "needs --p"),
    ("bad augpipe", ["--data", "{data}/positives.zip", "--aug", "ada", "--augpipe", "warp"], "--augpipe"),
    ("arch change on resume", ["--mode", "adapt", "--data", "{data}/negatives.zip", "--resume", "{pkl}",
                               "--cbase", "512"], "cannot change the architecture"),
    ("negatives in adapt", ["--mode", "adapt", "--data", "{data}/negatives.zip", "--resume", "{pkl}",
                            "--negatives", "{data}/negatives.zip"], "only used by --mode=unlearn"),
    ("negative weight alone", ["--mode", "adapt", "--data", "{data}/negatives.zip", "--resume", "{pkl}",
                               "--negative-weight", "2"], "needs --negatives"),
])
def test_bad_inputs_fail_cleanly(data, pretrained, tmp_path, case, args, message):
    args = [a.format(data=data, pkl=pretrained) for a in args]
    result = invoke(["--outdir", tmp_path / "out", *args], expect_ok=False)
    assert result.exit_code != 0, case
    assert message in result.output and "Traceback" not in result.output, result.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_resumed_adapt_keeps_ewc_anchor(data, adapted, tmp_path):
    """Resuming an adapt run rebuilds EWC on the pretrained weights, not on the resumed (adapted) ones."""
    first = adapted.parent
    invoke(["--mode", "adapt", "--outdir", tmp_path, "--data", data / "negatives.zip", "--resume", adapted,
            "--kimg", "0.024", "--fisher-samples", "4", *FAST])
    run_dir = only_run_dir(tmp_path, "adapt")
    assert "Continuing at kimg 0.016" in (run_dir / "log.txt").read_text()
    before = torch.load(first / "fisher.pt", weights_only=False)
    after = torch.load(run_dir / "fisher.pt", weights_only=False)
    assert after["meta"]["theta_fingerprint"] == before["meta"]["theta_fingerprint"]
    for name, value in before["fisher"].items():
        assert torch.equal(after["fisher"][name], value), name


def test_adapt_and_unlearn_keep_every_architecture_kwarg_of_the_resume_pkl(data, tmp_path):
    """A pkl trained with fp16 blocks and conv_clamp=256 keeps both in adapt/unlearn runs on a CPU (our networks
    compute in float32 there anyway); an explicit --fp32=1 turns off only the fp16 blocks."""
    invoke(["--outdir", tmp_path / "clamped", "--data", data / "positives.zip", "--kimg", "0.004", "--fp32", "0",
            *TINY, *FAST])
    pkl = latest(only_run_dir(tmp_path / "clamped", "train"))
    stored = load(pkl)["G"].init_kwargs
    assert stored["synthesis_kwargs"]["conv_clamp"] == 256 and stored["synthesis_kwargs"]["num_fp16_res"] == 4
    for extra, fp16_res in (([], 4), (["--fp32", "1"], 0)):
        out = invoke(["--mode", "adapt", "--outdir", tmp_path / "dry", "--data", data / "negatives.zip",
                      "--resume", pkl, "--dry-run", *FAST, *extra]).output
        options = json.loads(out[out.index("{"):out.index("\n}\n") + 2])
        assert options["G_kwargs"]["synthesis_kwargs"]["conv_clamp"] == 256
        assert options["D_kwargs"]["conv_clamp"] == 256
        assert options["G_kwargs"]["synthesis_kwargs"]["num_fp16_res"] == fp16_res
        assert options["D_kwargs"]["num_fp16_res"] == fp16_res
        assert options["G_kwargs"]["mapping_kwargs"] == {k: v for k, v in stored["mapping_kwargs"].items()}


def test_the_command_defaults_are_the_library_table():
    from stylegan_unlearn.training import DEFAULTS

    parsed = train_command.make_context("train", ["--outdir", "unused"]).params  # nothing runs
    assert set(parsed) == set(DEFAULTS)
    assert {k: v for k, v in parsed.items() if k != "outdir"} == {k: v for k, v in DEFAULTS.items() if k != "outdir"}


def test_library_train_runs_from_options_like_the_command(data, pretrained, adapted, tmp_path):
    """`training.train(**options)`: the command's options by name; a value given wins over the recipe."""
    from stylegan_unlearn.training import UserError, train, trained_network

    run_dir = train(mode="unlearn", outdir=str(tmp_path / "lib"), data=str(data / "positives.zip"),
                    resume=str(pretrained), adapted=[str(adapted)], kimg=0.016, seed=3, batch=4, tick=0.008, snap=1,
                    workers=0, device="cpu")
    options = json.loads((Path(run_dir) / "training_options.json").read_text())
    assert options["loss_kwargs"]["class_name"] == "training_hooks.RepulsionLoss" and options["total_kimg"] == 0.016
    # the pretraining's loss settings where not given (the run that wrote the pkl left its options beside it)
    assert options["batch_size"] == 4 and options["loss_kwargs"]["r1_gamma"] == _pretraining_loss(pretrained)["r1_gamma"]
    network = trained_network(run_dir)
    assert os.path.isfile(network) and network == str(latest(run_dir))
    extrapolated = train(mode="extrapolate", outdir=str(tmp_path / "lib"), resume=str(pretrained),
                         adapted=[str(adapted)], extrapolate_gamma=0.5)
    assert trained_network(extrapolated).endswith("extrapolated-gamma0.5.pkl")
    with pytest.raises(UserError, match="unknown training option"):
        train(mode="adapt", outdir=str(tmp_path / "lib"), epochs=3)


@pytest.mark.parametrize("negatives, message", [
    ("nope.zip", "does not exist"),
    ("big.zip", "32x32 images but the network makes 16x16"),
    ("gray.zip", "1 channel"),
])
def test_bad_negatives_for_d_are_refused_before_anything_is_written(data, pretrained, adapted, tmp_path, negatives,
                                                                     message):
    result = invoke(["--mode", "unlearn", "--outdir", tmp_path / "out", "--data", data / "positives.zip",
                     "--resume", pretrained, "--adapted", adapted, "--negatives", data / negatives, *FAST],
                    expect_ok=False)
    assert result.exit_code != 0 and "--negatives" in result.output and message in result.output, result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_unlearn_with_negatives_shows_them_to_d_as_fakes(data, pretrained, adapted, tmp_path):
    run_dir = _unlearn(data, pretrained, adapted, tmp_path / "negfake", "--negatives", data / "negatives.zip",
                       "--negative-weight", "0.5")
    options = json.loads((run_dir / "training_options.json").read_text())
    assert options["loss_kwargs"]["negatives"] == [str((data / "negatives.zip").resolve())]
    assert options["loss_kwargs"]["negative_weight"] == 0.5 and "-negfake" in run_dir.name
    stats = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    scores = [s["Loss/scores/negative"]["mean"] for s in stats if "Loss/scores/negative" in s]
    assert scores and all(np.isfinite(scores))
