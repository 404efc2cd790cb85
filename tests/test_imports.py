"""The import graph of src/fourds, built from the source: no cycles, and arrows point one way.

Every `import` and `from ... import` of a fourds module counts, also those inside functions.
`from package import name` counts as an import of `package.name` when that is a module.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

SOURCE = REPO_ROOT / "src"

# Lower layers never import higher ones (DESIGN.md: cli -> stages -> train, evaluate, report,
# data, plan, pipeline -> models, world, records, runtime -> config -> the leaves).
LAYERS = (
    ("fourds", "fourds.atomic", "fourds.accelerators"),
    ("fourds.config", "fourds.config.tasks"),  # the task table: params validation reads it
    (
        "fourds.models",
        "fourds.world",
        "fourds.records",
        "fourds.runtime",
        "fourds.shipped",
        "fourds.tolerances",
    ),
    (
        "fourds.data",
        "fourds.train",
        "fourds.evaluate",
        "fourds.report",
        "fourds.plan",
        "fourds.pipeline",
    ),
    ("fourds.stages",),
    ("fourds.cli",),
)


def module_name(path: Path, root: Path = SOURCE) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path = SOURCE) -> dict[str, set[str]]:
    """module -> the fourds modules it imports."""
    modules = {module_name(path, root): path for path in sorted((root / "fourds").rglob("*.py"))}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package, up level - 1 packages
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([node.module] if node.module else [])])
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    imported.add(full if full in modules else base)
        graph[name] = {target for target in imported if target in modules and target != name}
    return graph


def layer(module: str) -> int:
    """The index in LAYERS of the longest prefix that owns `module`."""
    owners = [
        (len(prefix), index)
        for index, prefixes in enumerate(LAYERS)
        for prefix in prefixes
        if module == prefix or module.startswith(prefix + ".")
    ]
    return max(owners)[1]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path of modules, or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = "open"
        stack.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                return stack[stack.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[module] = "done"
        stack.pop()
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            return cycle
    return None


GRAPH = import_graph()
DVC_STAGES = ("curate", "pretrain", "readout", "fidelity", "report")
STAGES = {module for module in GRAPH if module.startswith("fourds.stages.")}


def test_the_graph_sees_the_stages_and_their_library_imports():
    assert STAGES == {f"fourds.stages.{name}" for name in DVC_STAGES}
    assert "fourds.train.pretrain" in GRAPH["fourds.stages.pretrain"]


def test_there_are_no_import_cycles():
    assert find_cycle(GRAPH) is None, " -> ".join(find_cycle(GRAPH))


def test_each_params_module_imports_first_in_a_fresh_interpreter():
    """The graph above sees modules, not the package __init__ a submodule's import runs first:
    each module of fourds.config (which params validation and the task table's readers import
    on their own) is imported first in an interpreter of its own."""
    for name in sorted(module for module in GRAPH if module.startswith("fourds.config")):
        subprocess.run([sys.executable, "-c", f"import {name}"], check=True)


def test_stages_import_library_modules_only():
    for stage in STAGES:
        wrong = sorted(
            t for t in GRAPH[stage] if t.startswith("fourds.stages") or t == "fourds.cli"
        )
        assert not wrong, f"{stage} imports {wrong}"


def test_library_modules_import_no_stage_and_nothing_imports_the_cli():
    for module, targets in GRAPH.items():
        if module.startswith("fourds.stages") or module == "fourds.cli":
            continue
        wrong = sorted(t for t in targets if t.startswith("fourds.stages") or t == "fourds.cli")
        assert not wrong, f"{module} imports {wrong}"


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_point_down_the_layers(module):
    upward = sorted(target for target in GRAPH[module] if layer(target) > layer(module))
    assert not upward, f"{module} (layer {layer(module)}) imports higher layers: {upward}"


def test_the_checker_finds_a_cycle_and_an_upward_import(tmp_path):
    package = tmp_path / "fourds"
    (package / "config").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "config" / "__init__.py").write_text("from fourds.config import a\n")
    (package / "config" / "a.py").write_text("from fourds.config import b\n")
    (package / "config" / "b.py").write_text("def f():\n    from fourds.config import a\n")
    (package / "cli.py").write_text("")
    (package / "atomic.py").write_text("import fourds.cli\n")
    graph = import_graph(tmp_path)
    assert find_cycle(graph) == ["fourds.config.a", "fourds.config.b", "fourds.config.a"]
    assert layer("fourds.cli") > layer("fourds.atomic") and "fourds.cli" in graph["fourds.atomic"]


def imported_by(module: str, graph: dict[str, set[str]]) -> set[str]:
    """`module` and every fourds module it imports, directly or not."""
    seen, todo = {module}, [module]
    while todo:
        for target in graph[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return seen


def source_path(module: str) -> Path:
    """The file of `module`, relative to the repository root."""
    base = SOURCE.joinpath(*module.split("."))
    path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
    return path.relative_to(REPO_ROOT)


@pytest.mark.parametrize("name", DVC_STAGES)
def test_every_dvc_stage_runs_its_module_and_depends_on_all_the_code_it_imports(name):
    """A change to any module a stage runs reruns the stage (the notebook's imports are the
    report package's). The CLI's params check is not in the deps: it changes no output."""
    import yaml

    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    assert set(stages) == set(DVC_STAGES)  # the report written first (`dvc plots show`'s order)
    stage = stages[name].get("do") or stages[name]
    assert stage["cmd"].split()[:2] == ["fourds", name]
    deps = [Path(dep) for dep in stage["deps"]]
    for module in sorted(imported_by(f"fourds.stages.{name}", GRAPH)):
        path = source_path(module)
        if module in ("fourds", "fourds.stages"):
            continue  # package markers with no code
        assert any(path == dep or dep in path.parents for dep in deps), (
            f"dvc.yaml stage {name} runs {path} but does not depend on it"
        )


BLOCKER = """
import importlib.abc, sys
class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {"dvc", "dvclive", "av", "hydra", "omegaconf"}:
            raise ImportError(f"{name} is not installed here")
sys.meta_path.insert(0, Blocked())
sys.path.insert(0, "benchmarks")
import fourds.models.mae, fourds.models.factory, fourds.train.pretrain, fourds.train.step
import fourds.runtime, gpu_step, setups, harness
"""


def test_the_model_train_and_gpu_benchmark_code_imports_without_dvc_pyav_or_hydra():
    """What a bare GPU machine runs (benchmarks/gpu_checks.sh) needs none of them to import;
    composing params imports Hydra when it is asked to (the wheels benchmarks/README.md
    carries)."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", BLOCKER], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
