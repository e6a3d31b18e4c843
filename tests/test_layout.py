"""The package layout's rules: imports go one way between layers, without cycles and without private names.

Layers, from the bottom: conditions/ (energies, which see only guidance's protocols and errors); the library
(guidance's loop, methods, schedulers, worlds); the playground (guidance/playground: tasks, previews, views, the
app's handlers); the tools over it (guidance/bench, guidance/sweep); app.py on top, which imports the playground alone.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from guidance.playground.tasks import TASKS

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("guidance", "conditions")
PLAYGROUND, TOOLS = "guidance.playground", ("guidance.bench", "guidance.sweep")
TEST_MODULES = {path.stem: path for path in (ROOT / "tests").glob("*.py")}  # imported by their bare names
BUILD = "guidance.worlds.embedded.build"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    """Every module of the project (packages and app.py), by its dotted name."""
    paths = [path for package in PACKAGES for path in (ROOT / package).rglob("*.py")] + [ROOT / "app.py"]
    return {module_name(path): path for path in paths}


MODULES = project_modules()


def imports(path: Path, name: str | None = None) -> Iterator[tuple[str, list[str]]]:
    """(module, names imported from it) for every import in a file, anywhere in it, relative ones resolved against
    the file's module `name` (by default, its place in the project)."""
    name = name or module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            yield module, [alias.name for alias in node.names]


def project_edges(path: Path) -> set[str]:
    """The project modules a file imports: `from package import module` counts as importing the module."""
    edges = set()
    for module, names in imports(path):
        for name in names:
            if f"{module}.{name}" in MODULES:
                edges.add(f"{module}.{name}")
        if module in MODULES:
            edges.add(module)
    return edges - {module_name(path)}


GRAPH = {name: project_edges(path) for name, path in MODULES.items()}


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def reaches(layer: str, target) -> list[tuple[str, str]]:
    """(importer, imported) pairs where a module of `layer` imports one for which `target(name)` holds."""
    return [(a, b) for a, edges in GRAPH.items() if layer(a) for b in edges if target(b)]


def is_library(name: str) -> bool:
    return within(name, "guidance") and not any(within(name, other) for other in (PLAYGROUND, *TOOLS))


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of a graph: its strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def private_imports(paths: dict[str, Path]) -> list[str]:
    """Every `from module import _name` across two of the project's modules (tests included)."""
    found = []
    for name, path in paths.items():
        for module, names in imports(path, name):
            if (module.split(".")[0] in (*PACKAGES, "app") or module in TEST_MODULES) and module != name:
                found += [f"{name} imports {module}.{n}" for n in names if n.startswith("_") and not n.startswith("__")]
    return found


def patches(path: Path) -> list[str]:
    """Where a file changes the project's code from outside: `setattr` / `delattr` (but `object.__setattr__`, a frozen
    dataclass setting its own field), and assignments to an attribute of a module or name imported from the project
    (`sampling.Recorder.timed = ...`, `Recorder.timed = ...`)."""
    tree, found = ast.parse(path.read_text()), []
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            relative = isinstance(node, ast.ImportFrom) and node.level > 0
            for alias in node.names:
                origin = alias.name if isinstance(node, ast.Import) else node.module or ""
                if relative or origin.split(".")[0] in (*PACKAGES, "app"):
                    imported.add((alias.asname or alias.name).split(".")[0])
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "delattr"):
            found.append(f"{path.name}:{node.lineno} {node.func.id}")
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, (ast.AugAssign, ast.AnnAssign))
            else []
        )
        while any(isinstance(target, (ast.Tuple, ast.List)) for target in targets):  # a, b = ...: each of them
            targets = [
                part for target in targets for part in (target.elts if isinstance(target, (ast.Tuple, ast.List)) else [target])
            ]
        for target in targets:
            root = target
            while isinstance(root, ast.Attribute):
                root = root.value
            if target is not root and isinstance(root, ast.Name) and root.id in imported:
                found.append(f"{path.name}:{node.lineno} assigns {ast.unparse(target)}")
    return found


def test_no_import_cycles() -> None:
    assert not cycles(GRAPH)


def test_no_private_names_across_modules() -> None:
    assert not private_imports({**MODULES, **TEST_MODULES})


def test_the_checks_can_fail(tmp_path: Path) -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    probe = tmp_path / "probe.py"
    probe.write_text("from guidance.sampling import sample\nfrom .sampling import _finish\n")
    assert private_imports({"guidance.probe": probe}) == ["guidance.probe imports guidance.sampling._finish"]
    probe.write_text(
        "import guidance.sampling as sampling\nfrom guidance.recording import Recorder\nfrom torch import nn\n"
        "sampling.mean_and_sigma = None\nRecorder.timed, x = None, 1\nsetattr(Recorder, 'run', None)\nnn.x = 1\n"
        "object.__setattr__(Recorder, 'x', 1)\n"
    )
    assert sorted(patches(probe)) == [
        "probe.py:4 assigns sampling.mean_and_sigma",
        "probe.py:5 assigns Recorder.timed",
        "probe.py:6 setattr",
    ]


def test_the_library_imports_neither_the_playground_nor_the_tools() -> None:
    assert not reaches(is_library, lambda b: any(within(b, layer) for layer in (PLAYGROUND, *TOOLS)) or b == "app")


def test_the_playground_imports_neither_the_tools_nor_the_app() -> None:
    """No back-arrow: the sweep tool uses the playground's tasks and its command text (guidance.playground.tasks.command),
    never the other way round."""
    assert not reaches(lambda a: within(a, PLAYGROUND), lambda b: any(within(b, tool) for tool in TOOLS) or b == "app")


def test_nothing_outside_the_build_pipeline_imports_it_the_benchmarks_included() -> None:
    assert not reaches(lambda a: not within(a, BUILD), lambda b: within(b, BUILD))


def test_no_module_patches_the_library_outside_the_tests() -> None:
    """Tools measure through the library's seams (guidance.recording.observing, a wrapping backbone or method, torch's
    hooks): no module outside tests/ sets attributes on the project's modules, classes or objects from outside."""
    assert not [found for path in MODULES.values() for found in patches(path)]


def test_conditions_use_only_guidance_public_types() -> None:
    reached = {b for a, b in reaches(lambda a: within(a, "conditions"), lambda b: within(b, "guidance"))}
    assert reached <= {"guidance.errors", "guidance.energy"}


CORE = (
    "guidance.sampling",
    "guidance.recording",
    "guidance.backbone",
    "guidance.energy",
    "guidance.errors",
    "guidance.vp_arithmetic",
)


def in_core(module: str) -> bool:
    """The sampling core: the loop, the methods, the schedulers and what they share."""
    return within(module, "guidance.methods") or within(module, "guidance.schedulers") or module in CORE


def test_the_sampling_core_imports_no_conditions() -> None:
    assert not reaches(in_core, lambda b: within(b, "conditions"))


def test_the_app_imports_only_the_playground() -> None:
    reached = {b for a, b in reaches(lambda a: a == "app", lambda b: b in MODULES)}
    assert all(within(b, PLAYGROUND) for b in reached), sorted(reached)


@pytest.mark.parametrize("layer", ["guidance.methods.predictors"])
def test_predictors_do_not_import_the_methods_base(layer: str) -> None:
    assert "guidance.methods.base" not in GRAPH[layer]


def test_the_app_names_no_task_and_stays_small() -> None:
    source = (ROOT / "app.py").read_text()
    assert not [task for task in TASKS if f'"{task}"' in source]
    assert len(source.splitlines()) < 500  # as `ruff format` lays it out


def test_the_apps_handlers_name_no_task() -> None:
    source = (ROOT / "guidance" / "playground" / "app_handlers.py").read_text()
    assert not [task for task in TASKS if f'"{task}"' in source]
