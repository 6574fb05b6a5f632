#!/usr/bin/env python3
"""The first-party module graph, computed from the sources (no imports are executed).

    python3 scripts/module_graph.py            # package graph, layers, cycles, upward and function-level imports
    python3 scripts/module_graph.py --modules  # every module-to-module edge

Each module gets a layer from `LAYERS` (longest matching prefix). An import may point to the same layer or
a lower one, never upward, and the graph must have no cycles. Imports inside functions are listed with the
comment on their line (the reason they stay there). `tests/test_layers.py` runs these checks.
Standard library only, so it runs in any checkout.
"""
import argparse
import ast
import os
import sys
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence, Set, Tuple

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE_ROOTS = ("dnnlib", "torch_utils", "stylegan_unlearn", "training_hooks", "patches", "train.py")

# Lowest first. The layers of docs/design.md: compat -> networks -> core -> the method -> loss plugins ->
# the loop and the libraries beside it -> commands (front doors).
LAYERS: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ("compat", ("dnnlib", "torch_utils")),
    ("networks", ("stylegan_unlearn.networks",)),
    ("core", ("stylegan_unlearn", "stylegan_unlearn.assets", "stylegan_unlearn.fileio", "stylegan_unlearn.images",
              "stylegan_unlearn.device", "stylegan_unlearn.seeds", "stylegan_unlearn.ranges", "stylegan_unlearn.pkl",
              "stylegan_unlearn.data",
              "stylegan_unlearn.classifier", "stylegan_unlearn.options",
              "stylegan_unlearn.convert", "stylegan_unlearn.mnist", "stylegan_unlearn.mnist.data",
              "stylegan_unlearn.mnist.judge")),
    ("method", ("stylegan_unlearn.method", "stylegan_unlearn.mnist.balance")),
    ("plugins", ("training_hooks",)),
    ("loop and libraries", ("stylegan_unlearn.loop", "stylegan_unlearn.metrics", "stylegan_unlearn.samples",
                            "stylegan_unlearn.evaluate", "stylegan_unlearn.report", "stylegan_unlearn.training",
                            "stylegan_unlearn.mnist.coverage", "stylegan_unlearn.mnist.pretrain",
                            "stylegan_unlearn.mnist.pipeline")),
    ("commands", ("stylegan_unlearn.commands", "stylegan_unlearn.cli", "stylegan_unlearn.__main__",
                  "stylegan_unlearn.demo", "patches", "train")),
)


class Import(NamedTuple):
    importer: str
    target: str
    line: int
    in_function: bool
    comment: str


def _module_name(path: str, root: str = REPO_ROOT) -> str:
    rel = os.path.relpath(path, root)[:-3].replace(os.sep, ".")
    return rel[: -len(".__init__")] if rel.endswith(".__init__") else rel


def source_files(root: str = REPO_ROOT) -> Iterator[str]:
    """Every first-party .py file (tests, scripts and benchmarks are users of the layers, not part of them)."""
    for entry in SOURCE_ROOTS:
        path = os.path.join(root, entry)
        if os.path.isfile(path):
            yield path
            continue
        for folder, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                if name.endswith(".py"):
                    yield os.path.join(folder, name)


def _is_package(path: str) -> bool:
    return os.path.basename(path) == "__init__.py"


class _Collector(ast.NodeVisitor):
    def __init__(self, module: str, package: str, lines: Sequence[str], known: Set[str]):
        self.module, self.package, self.lines, self.known = module, package, lines, known
        self.depth = 0
        self.imports: List[Import] = []

    def visit_FunctionDef(self, node):  # noqa: N802 (ast visitor names)
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef
    visit_Lambda = visit_FunctionDef

    def _add(self, target: str, node: ast.AST) -> None:
        resolved = self._first_party(target)
        if resolved is not None:
            line = self.lines[node.lineno - 1]
            comment = line.split("#", 1)[1].strip() if "#" in line else ""
            self.imports.append(Import(self.module, resolved, node.lineno, self.depth > 0, comment))

    def _first_party(self, name: str) -> Optional[str]:
        while name:
            if name in self.known:
                return name
            name = name.rpartition(".")[0]
        return None

    def visit_Import(self, node):  # noqa: N802
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node):  # noqa: N802
        base = node.module or ""
        if node.level:
            parts = self.package.split(".")
            parts = parts[: len(parts) - node.level + 1]
            base = ".".join(parts + ([node.module] if node.module else []))
        for alias in node.names:
            full = f"{base}.{alias.name}"
            self._add(full if full in self.known else base, node)


def collect_imports(root: str = REPO_ROOT) -> Tuple[List[str], List[Import]]:
    """(modules, imports between first-party modules), from the sources."""
    files = list(source_files(root))
    modules = {_module_name(p, root): p for p in files}
    known = set(modules)
    imports: List[Import] = []
    for name, path in modules.items():
        with open(path, encoding="utf-8") as f:
            text = f.read()
        package = name if _is_package(path) else name.rpartition(".")[0]
        collector = _Collector(name, package, text.splitlines(), known)
        collector.visit(ast.parse(text, filename=path))
        imports.extend(i for i in collector.imports if i.target != name)
    return sorted(modules), imports


def layer_of(module: str) -> Optional[int]:
    """Index into `LAYERS` of the longest prefix matching `module` (None when no layer names it)."""
    best, best_len = None, -1
    for index, (_title, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    return best


# Packages whose modules sit in different layers; the package graph shows their modules one by one.
SPLIT_PACKAGES = ("stylegan_unlearn.mnist",)


def package_of(module: str) -> str:
    """The unit of the package graph: top-level packages, sub-packages and modules of stylegan_unlearn."""
    parts = module.split(".")
    if parts[0] != "stylegan_unlearn" or len(parts) == 1:
        return parts[0]
    if ".".join(parts[:2]) in SPLIT_PACKAGES:
        return ".".join(parts[:3])
    return ".".join(parts[:2])


def upward_imports(imports: Sequence[Import]) -> List[Import]:
    return [i for i in imports if (layer_of(i.target) or 0) > (layer_of(i.importer) or 0)]


def cycles(nodes: Sequence[str], edges: Set[Tuple[str, str]]) -> List[List[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    graph: Dict[str, List[str]] = {n: sorted(b for a, b in edges if a == n) for n in nodes}
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []
    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, []):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in nodes:
        if node not in index:
            visit(node)
    return found


def module_cycles(modules: Sequence[str], imports: Sequence[Import]) -> List[List[str]]:
    return cycles(modules, {(i.importer, i.target) for i in imports})


def top_level_edges(imports: Sequence[Import]) -> Set[Tuple[str, str]]:
    """Edges between the top-level packages (stylegan_unlearn, training_hooks, patches, ...)."""
    return {(i.importer.split(".")[0], i.target.split(".")[0]) for i in imports
            if i.importer.split(".")[0] != i.target.split(".")[0]}


def package_edges(imports: Sequence[Import]) -> Set[Tuple[str, str]]:
    return {(package_of(i.importer), package_of(i.target)) for i in imports
            if package_of(i.importer) != package_of(i.target)}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modules", action="store_true", help="list every module-to-module edge")
    parser.add_argument("--root", default=REPO_ROOT, help="repository root to analyse")
    args = parser.parse_args(argv)
    modules, imports = collect_imports(args.root)
    unplaced = [m for m in modules if layer_of(m) is None]
    packages = sorted({package_of(m) for m in modules}, key=lambda p: (layer_of(p) or 0, p))
    edges = package_edges(imports)
    print("Package graph (layer: package -> packages it imports):")
    for package in packages:
        layer = layer_of(package)
        title = LAYERS[layer][0] if layer is not None else "?"
        targets = sorted({b for a, b in edges if a == package}, key=lambda p: (layer_of(p) or 0, p))
        print(f"  [{title}] {package} -> {', '.join(targets) or '-'}")
    if args.modules:
        print("\nModule edges:")
        for i in sorted(imports):
            print(f"  {i.importer} -> {i.target}{'  (in a function)' if i.in_function else ''}")
    tops = sorted({m.split(".")[0] for m in modules})
    print("\nTop-level package cycles:", cycles(tops, top_level_edges(imports)) or "none")
    print("Package cycles:", cycles(packages, edges) or "none")
    print("Module cycles:", module_cycles(modules, imports) or "none")
    upward = upward_imports(imports)
    print(f"Upward imports: {len(upward) or 'none'}")
    for i in upward:
        print(f"  {i.importer}:{i.line} -> {i.target} ({LAYERS[layer_of(i.importer) or 0][0]} -> "
              f"{LAYERS[layer_of(i.target) or 0][0]})")
    if unplaced:
        print("Modules in no layer:", ", ".join(unplaced))
    local = [i for i in imports if i.in_function]
    print(f"\nFunction-level imports of first-party modules: {len(local)}")
    for i in local:
        print(f"  {i.importer}:{i.line} -> {i.target}" + (f"  # {i.comment}" if i.comment else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
