"""The layers of docs/design.md, checked on the sources (`scripts/module_graph.py`): one way, no cycles.

compat (`dnnlib`, `torch_utils`) → networks → core → the method → loss plugins (`training_hooks`) → the loop
and the libraries beside it → commands. An import may point to its own layer or a lower one; the loss
plugins are named in loss kwargs as strings (configuration), so nothing in `stylegan_unlearn` imports them.
"""
import importlib.util
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("module_graph", REPO_ROOT / "scripts" / "module_graph.py")
module_graph = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(module_graph)

# Known exceptions, each with the change that removes it. The test fails when one no longer occurs, so the
# list cannot go stale.
KNOWN_UPWARD = set()
KNOWN_UNEXPLAINED_LOCAL = set()


@pytest.fixture(scope="module")
def graph():
    return module_graph.collect_imports(str(REPO_ROOT))


def test_every_module_has_a_layer(graph):
    modules, _ = graph
    assert [m for m in modules if module_graph.layer_of(m) is None] == []


def test_no_import_points_upward(graph):
    _, imports = graph
    upward = {(i.importer, i.target) for i in module_graph.upward_imports(imports)}
    assert upward - KNOWN_UPWARD == set(), "upward imports (see the layers in scripts/module_graph.py)"
    assert KNOWN_UPWARD - upward == set(), "a known exception is gone: remove it from KNOWN_UPWARD"


def test_no_cycles(graph):
    modules, imports = graph
    assert module_graph.module_cycles(modules, imports) == []
    packages = sorted({module_graph.package_of(m) for m in modules})
    assert module_graph.cycles(packages, module_graph.package_edges(imports)) == []
    tops = sorted({m.split(".")[0] for m in modules})
    assert module_graph.cycles(tops, module_graph.top_level_edges(imports)) == []


def test_the_library_never_imports_the_loss_plugins_or_the_front_doors(graph):
    _, imports = graph
    offending = [(i.importer, i.target) for i in imports
                 if i.importer.startswith("stylegan_unlearn")
                 and i.target.split(".")[0] in ("training_hooks", "patches")]
    assert offending == []


def test_the_networks_import_only_the_compatibility_layer(graph):
    """Their source travels inside every pkl we write, where only torch_utils can be counted on."""
    _, imports = graph
    targets = {i.target for i in imports if i.importer.startswith("stylegan_unlearn.networks")}
    assert all(t.startswith(("torch_utils", "stylegan_unlearn.networks")) for t in targets), targets


def test_every_function_level_import_says_why(graph):
    _, imports = graph
    unexplained = {i.importer for i in imports if i.in_function and not i.comment}
    assert unexplained - KNOWN_UNEXPLAINED_LOCAL == set()


def test_a_layer_violation_is_caught(tmp_path):
    """The checker itself: a core module importing the loop is reported as upward."""
    package = tmp_path / "stylegan_unlearn"
    (package / "loop").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "loop" / "__init__.py").write_text("")
    (package / "fileio.py").write_text("from stylegan_unlearn.loop import snapshots\n")
    (package / "loop" / "snapshots.py").write_text("from stylegan_unlearn import fileio\n")
    modules, imports = module_graph.collect_imports(str(tmp_path))
    assert {(i.importer, i.target) for i in module_graph.upward_imports(imports)} == \
        {("stylegan_unlearn.fileio", "stylegan_unlearn.loop.snapshots")}
    assert module_graph.module_cycles(modules, imports) == [
        ["stylegan_unlearn.fileio", "stylegan_unlearn.loop.snapshots"]]
