"""Options of benchmarks/mnist_readme_workflow.py: variants name their extra train.py options, typos are refused."""
import argparse
import importlib.util
import os

import pytest

_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks",
                     "mnist_readme_workflow.py")
_spec = importlib.util.spec_from_file_location("mnist_readme_workflow", _PATH)
workflow = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(workflow)


def test_a_variant_is_a_name_and_its_train_options():
    assert workflow._variant("g1-pl0:--gamma=1 --pl-weight=0") == ("g1-pl0", ["--gamma=1", "--pl-weight=0"])


@pytest.mark.parametrize("text", ["g1", ":--gamma=1", "g1:", "g1:gamma=1", "a/b:--gamma=1"])
def test_a_malformed_variant_is_refused(text):
    with pytest.raises(argparse.ArgumentTypeError, match="a variant is NAME"):
        workflow._variant(text)
