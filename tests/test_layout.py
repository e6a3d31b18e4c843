"""The package layout's rules: one direction of imports, no task names in the UI, an app that stays small."""
from __future__ import annotations

import ast
from pathlib import Path

from guidance.tasks import TASKS

ROOT = Path(__file__).resolve().parents[1]
CORE = ("sampling.py", "backbone.py", "energy.py", "errors.py", "evodiff.py", "scheduler_steps.py", "vp_arithmetic.py", "methods")


def imported(path: Path) -> set[str]:
    """Absolute module names a file imports (relative imports resolved against its package)."""
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            names.add(".".join(base + ([node.module] if node.module else [])))
    return names


def test_conditions_use_only_guidance_public_types() -> None:
    for path in (ROOT / "conditions").glob("*.py"):
        reached = {name for name in imported(path) if name.split(".")[0] == "guidance"}
        assert reached <= {"guidance.errors", "guidance.energy"}, path.name


def test_the_sampling_core_imports_no_conditions() -> None:
    for entry in CORE:
        for path in (ROOT / "guidance" / entry).glob("*.py") if entry == "methods" else [ROOT / "guidance" / entry]:
            assert not any(name.split(".")[0] == "conditions" for name in imported(path)), path.name


def test_predictors_and_methods_base_do_not_import_each_other() -> None:
    assert "guidance.methods.base" not in imported(ROOT / "guidance" / "methods" / "predictors.py")


def test_the_app_names_no_task_and_stays_small() -> None:
    source = (ROOT / "app.py").read_text()
    assert not [task for task in TASKS if f'"{task}"' in source]
    assert len(source.splitlines()) < 400


def test_the_apps_handlers_name_no_task() -> None:
    source = (ROOT / "app_handlers.py").read_text()
    assert not [task for task in TASKS if f'"{task}"' in source]
