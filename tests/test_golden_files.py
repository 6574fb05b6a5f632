"""The golden vectors ship with the tests, and a missing one fails the run instead of skipping it."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import GOLDEN_DIR, GOLDEN_FILES

TESTS = Path(__file__).resolve().parent


def test_every_golden_file_is_in_the_repository_copy():
    shipped = TESTS / "golden"
    assert sorted(p.name for p in shipped.iterdir() if p.name != "README.md") == sorted(GOLDEN_FILES)
    assert all((shipped / name).stat().st_size > 0 for name in GOLDEN_FILES)


def test_the_location_is_inside_the_tests():
    assert GOLDEN_DIR == TESTS / "golden"


def test_missing_golden_files_fail_loudly(tmp_path):
    """A copy of the tests with an empty golden directory errors out: no skips, no empty parameter sets."""
    copy = tmp_path / "tests"
    copy.mkdir()
    for source in TESTS.glob("*.py"):
        shutil.copy(source, copy / source.name)
    (copy / "golden").mkdir()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(TESTS.parent), os.environ.get("PYTHONPATH")])))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_ops_golden.py",
         "test_persistence.py::test_golden_pickle_loads_and_reproduces_outputs"],
        cwd=copy, env=env, capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "is missing" in output or "golden files missing" in output, output
    assert "empty parameter set" not in output and " skipped" not in output, output
