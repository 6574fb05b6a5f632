"""Shared test fixtures: the golden vectors (in `tests/golden/`), tiny networks, and deterministic torch settings.

The golden vectors ship with the tests, so a fresh clone passes its own test command; a missing file
fails loudly, never skips.
Tiny networks and the DDP stand-in live in `tiny.py` (imported by the tests that use them).
"""
import json
from pathlib import Path
from typing import Any, Dict

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
GOLDEN_FILES = (
    "ops.json", "ops.npz", "ops_sg3.json", "ops_sg3.npz", "persistence_tiny.npz", "persistence_tiny.pkl",
    "sg2_cond16.json", "sg2_cond16.npz", "sg2_cond16_layout.json", "sg2_uncond32.json", "sg2_uncond32.npz",
    "sg2_uncond32_layout.json",
)

# One thread: tiny test networks run 20-70x faster than with 2 threads on a loaded 2-core machine.
torch.set_num_threads(1)


class GoldenFileMissing(FileNotFoundError):
    """A golden vector file is absent: the tests cannot check the numbers, so they fail."""


def golden_path(name: str) -> Path:
    """Path of golden file `name`; raises GoldenFileMissing (a failure, never a skip) when it is absent."""
    path = GOLDEN_DIR / name
    if not path.is_file():
        raise GoldenFileMissing(f"golden file {path} is missing; restore tests/golden/ from the repository")
    return path


def golden_json(name: str) -> Dict[str, Any]:
    """A golden JSON file, loaded (usable at collection time: a missing file is a collection error)."""
    return json.loads(golden_path(name).read_text())


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    """The golden vector directory, with every expected file present."""
    missing = [name for name in GOLDEN_FILES if not (GOLDEN_DIR / name).is_file()]
    if missing:
        pytest.fail(f"golden files missing from {GOLDEN_DIR}: {', '.join(missing)}; restore tests/golden/ "
                    "from the repository")
    return GOLDEN_DIR


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)
    yield
