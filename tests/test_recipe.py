"""The official-recipe table and its helpers, without any train.py."""
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from patches.recipe_args import apply_recipe, per_gpu_batch
from stylegan_unlearn.method import recipe
from stylegan_unlearn.commands.given import options_given

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_recipe_values_are_the_official_settings():
    values = {s.name: (s.value("adapt"), s.value("unlearn")) for s in recipe.RECIPE}
    assert values["kimg"] == (32, 16) and values["snap"] == (10, 5) and values["batch"] == (16, 16)
    assert values["aug"] == ("noaug", "noaug") and values["gamma"] == (10, 10) and values["glr"] == (0.002, 0.002)
    # 32 kimg at batch 16 = 2000 iterations (adapt), 16 kimg = 1000 (unlearn); snapshots every 1000 / 500
    assert [v * 1000 / 16 for v in values["kimg"]] == [2000, 1000]
    assert [snap * values["tick"][0] * 1000 / 16 for snap in values["snap"]] == [1000, 500]
    assert 0.5 ** (16 / (recipe.ema_kimg_for_batch(16) * 1000)) == pytest.approx(0.5 ** (32 / 10000))
    with pytest.raises(ValueError, match="no stage 'train'"):
        recipe.setting("kimg").value("train")


def test_decide_keeps_given_values_and_scales_the_ema_with_the_batch():
    decisions = {d.setting.name: d for d in recipe.decide("unlearn", {"batch": 32, "kimg": None}, {"batch"})}
    assert decisions["batch"].given and decisions["batch"].value == 32
    assert not decisions["kimg"].given and decisions["kimg"].value == 16
    assert decisions["ema_kimg"].value == 10


def test_pretraining_values_come_after_given_ones_and_before_the_recipe_only_for_loss_settings():
    pretraining = {"gamma": 1.0, "pl_weight": 0.0, "style_mixing": 0.0, "kimg": 500}  # kimg is never inherited
    decisions = recipe.decide("adapt", {"gamma": 4.0}, {"gamma"}, {k: v for k, v in pretraining.items() if k != "kimg"})
    by_name = {d.setting.name: d for d in decisions}
    assert by_name["gamma"].source == "given" and by_name["gamma"].value == 4.0
    assert by_name["pl_weight"].source == "pretraining" and by_name["pl_weight"].value == 0.0
    assert by_name["kimg"].source == "recipe" and by_name["kimg"].value == 32
    assert {s.name for s in recipe.RECIPE if s.pretraining_key} == {"gamma", "pl_weight", "style_mixing"}
    lines = recipe.report_lines("adapt", decisions, {"gamma", "pl_weight", "style_mixing"}, "/run/training_options.json",
                                "pretraining")
    assert ("  pl_weight = 0: the pretraining's, from /run/training_options.json (--pl-weight not given; the "
            "recipe's is 2)") in lines
    alone = recipe.report_lines("adapt", recipe.decide("adapt", {}, ()), {"gamma"}, None, "pretraining")
    assert any(line.startswith("  gamma = 10:") and "no training_options.json with it beside --resume" in line
               for line in alone)
    off = recipe.report_lines("adapt", recipe.decide("adapt", {}, ()), {"gamma"}, None, "recipe")
    assert any(line.startswith("  gamma = 10:") and line.endswith("--loss-settings=recipe)") for line in off)


def test_pretraining_values_read_the_run_folder_of_the_pkl(tmp_path):
    pkl = tmp_path / "network-snapshot-000100.pkl"
    assert recipe.pretraining_values(str(pkl)) == ({}, None)
    (tmp_path / "training_options.json").write_text('{"loss_kwargs": {"r1_gamma": 2, "style_mixing_prob": 0.5}}')
    values, source = recipe.pretraining_values(str(pkl))
    assert values == {"gamma": 2.0, "style_mixing": 0.5} and source == str(tmp_path / "training_options.json")
    for bad in ('{"loss_kwargs": {"pl_weight": -1}}', '{"loss_kwargs": {"r1_gamma": true}}', '[1, 2]',
                '{"loss_kwargs": {"r1_gamma": NaN}}'):
        (tmp_path / "training_options.json").write_text(bad)
        with pytest.raises(ValueError, match="--loss-settings=recipe"):
            recipe.pretraining_values(str(pkl))


def test_report_has_one_line_per_setting_and_a_note_only_against_the_stage():
    decisions = recipe.decide("adapt", {"aug": "ada", "kimg": 100}, {"aug", "kimg"})
    lines = recipe.report_lines("adapt", decisions, {"aug", "kimg", "batch"})
    assert len(lines) == 1 + len(recipe.RECIPE) + 1
    assert lines[-1].startswith("note: --aug=ada goes against --mode=adapt")
    assert "  kimg = 100: as given with --kimg (the recipe's is 32)" in lines
    assert "  batch = 16: the official batch size (--batch not given)" in lines
    assert any(line.startswith("  tick = 1.6:") and line.endswith("(no option for it here)") for line in lines)
    same = recipe.report_lines("adapt", recipe.decide("adapt", {"aug": "noaug"}, {"aug"}), {"aug"})
    assert not any(line.startswith("note:") for line in same)


def test_options_given_reads_click_sources_and_falls_back_to_not_none():
    seen = {}

    @click.command()
    @click.option("--kimg", type=int, default=25000)
    @click.option("--aug", default="ada")
    def command(**kwargs):
        seen["given"] = options_given(dict(kwargs, extra=1, unset=None))

    assert CliRunner().invoke(command, ["--kimg", "25000"]).exit_code == 0
    assert seen["given"] == {"kimg", "extra"}
    assert options_given({"a": 0, "b": None}) == {"a"}


def test_per_gpu_batch_respects_the_reference_memory_budget():
    assert per_gpu_batch(16, 1, 32) == 16
    assert per_gpu_batch(16, 1, 4) == 4
    assert per_gpu_batch(16, 2, 6) == 4
    with pytest.raises(click.UsageError, match="cannot be split over --gpus=32"):
        per_gpu_batch(16, 32, 4)


def test_apply_recipe_leaves_given_values_alone():
    import dnnlib
    args = dnnlib.EasyDict(total_kimg=25000, batch_size=64, batch_gpu=8, num_gpus=1, metrics=["fid50k_full"],
                           loss_kwargs=dnnlib.EasyDict(r1_gamma=1.0), G_opt_kwargs=dnnlib.EasyDict(lr=0.0025),
                           D_opt_kwargs=dnnlib.EasyDict(lr=0.0025), augment_kwargs={"class_name": "x"},
                           ada_target=0.6)
    apply_recipe(args, "adapt", {"kimg": 100}, {"kimg", "batch"}, {"kimg"})
    # --kimg was given: the reference script already applied it, so the recipe does not touch total_kimg
    assert args.total_kimg == 25000 and args.batch_size == 16 and args.batch_gpu == 8 and args.metrics == []
    assert args.augment_kwargs is None and args.ada_target is None and args.loss_kwargs.r1_gamma == 10
    assert args.ema_kimg == 5 and args.ema_rampup is None and args.G_opt_kwargs.lr == 0.002


def test_the_tables_import_without_torch():
    code = ("import sys; import stylegan_unlearn.method.recipe, patches.options, patches.recipe_args; "
            "print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))")
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
