"""Row names of benchmarks/mnist_strength_k.py: each part maps to one Stage-2 setting, and typos are refused."""
import argparse
import importlib.util
import os

import pytest

_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "mnist_strength_k.py")
_spec = importlib.util.spec_from_file_location("mnist_strength_k", _PATH)
strength = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(strength)


def test_a_row_name_sets_the_repulsion_and_the_gan_options():
    row = strength.parse_row("k5-a0.03-w100-task-noaug-r10-dlr0.004")
    assert (row["k"], row["alpha"], row["weight"], row["form"], row["distance"]) == (5, 0.03, 100.0, "el2", "task")
    assert row["options"] == {"aug": "noaug", "gamma": 10.0, "dlr": 0.004}
    options = strength.stage2_options(row["options"])
    assert options["aug"] == "noaug" and options["gamma"] == 10.0 and options["dlr"] == 0.004
    assert "p" not in options and "augpipe" not in options  # no augmentation probability without augmentation


def test_a_row_without_gan_parts_keeps_the_benchmark_stage2_options():
    row = strength.parse_row("k1-nl2-w0")
    assert row["options"] == {} and row["weight"] == 0.0
    assert strength.stage2_options(row["options"]) == strength.pipeline.UNLEARN_OPTIONS


def test_xg_starts_stage2_from_the_extrapolation_and_changes_nothing_else():
    row = strength.parse_row("k1-a0.1-w10-xg0.5")
    assert row["start_gamma"] == 0.5 and row["options"] == {} and row["positives_max"] is None
    assert strength.parse_row("k1-a0.1-w10")["start_gamma"] is None


def test_a_selection_part_sets_the_repelled_parameters():
    assert strength.parse_row("k1-a0.1-w10-free")["options"] == {"params": "free"}


def test_diffaug_restores_the_pretraining_augmentation():
    options = strength.stage2_options(strength.parse_row("k1-nl2-w0-diffaug")["options"])
    assert (options["aug"], options["p"], options["augpipe"]) == ("fixed", 1.0, "translation,cutout,color")


@pytest.mark.parametrize("name", ["k5-w10", "a0.1-w10", "k1-nl2", "k1-nl2-w0-rx", "k1-nl2-w0-xg"])
def test_an_incomplete_or_malformed_row_is_refused(name):
    with pytest.raises(argparse.ArgumentTypeError, match="a row is named like"):
        strength.parse_row(name)
