"""benchmarks/mnist_rounds.py: later rounds keep the benchmark's budget and take the row's repulsion; bad input is refused."""
import argparse
import importlib.util
import os
import sys

import pytest

_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "mnist_rounds.py")
_spec = importlib.util.spec_from_file_location("mnist_rounds", _PATH)
rounds = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rounds)


def _args(**changes):
    values = dict(digit=4, k=1, collect_seeds=rounds.LATER_COLLECT_SEEDS, repulsion="nl2", distance=None,
                  weight=0.1, alpha=None, jobs=2)
    values.update(changes)
    return argparse.Namespace(**values)


def test_later_rounds_use_the_official_budget_and_the_chosen_repulsion():
    settings = rounds.round_settings(_args())
    official = rounds.pipeline.Settings()
    assert (settings.adapt_kimg, settings.unlearn_kimg) == (official.adapt_kimg, official.unlearn_kimg)
    assert (settings.digit, settings.k, settings.repulsion, settings.repulsion_weight) == (4, 1, "nl2", 0.1)
    assert settings.unlearn_options == rounds.pipeline.UNLEARN_OPTIONS
    assert settings.collect_seeds == "0-19999"


@pytest.mark.parametrize("argv, message", [(["--rounds", "1"], "at least 2"),
                                           (["--start", "no-such-run"], "no finished Stage-2 run")])
def test_bad_arguments_are_refused_with_a_clear_message(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["mnist_rounds.py", "--workdir", str(tmp_path)] + argv)
    with pytest.raises(SystemExit):
        rounds.main()
    assert message in capsys.readouterr().err
