"""Own code: no project file reads as a transcription of the reference StyleGAN code.

Runs the shared fingerprint checker (`tools/cleanroom.py` of the shared checkout beside the repository), which flags any run of 6+
consecutive lines equal to reference lines and any file where more than 25 % of the lines are.
`tests/standin_checkouts.py` is excluded on purpose: it reproduces the documented `train.py`
anchor lines that the patcher looks for. Skipped where the shared checkout is absent.
"""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
CLEANROOM_TOOL = REPO_ROOT.parent / "shared" / "tools" / "cleanroom.py"
NETWORKS_SOURCE = REPO_ROOT / "stylegan_unlearn" / "networks" / "stylegan2.py"


@pytest.mark.skipif(not CLEANROOM_TOOL.is_file(), reason=f"no cleanroom checker at {CLEANROOM_TOOL}")
def test_cleanroom_checker_flags_no_file():
    result = subprocess.run([sys.executable, str(CLEANROOM_TOOL), "--exclude", "tests/standin_checkouts.py", "."],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"cleanroom.py flagged files:\n{result.stdout}{result.stderr}"
    assert "0 file(s) flagged" in result.stdout


def test_network_source_imports_only_what_travels_with_pickles():
    """The module's source is embedded in every pickle we write; where it is loaded, only numpy, torch
    and `torch_utils` can be counted on (plus the standard library's `typing`)."""
    tree = ast.parse(NETWORKS_SOURCE.read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative imports cannot work inside a pickle"
            imported.add(node.module.split(".")[0])
    assert imported <= {"numpy", "torch", "torch_utils", "typing"}, sorted(imported)
