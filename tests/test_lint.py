"""The code passes the linter and the formatter as pyproject.toml configures them ([tool.ruff]); `ruff check --fix .` and
`ruff format .` fix it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ruff.__main__ import find_ruff_bin

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_check_passes_on_the_repository() -> None:
    done = subprocess.run([find_ruff_bin(), "check", "--no-cache", str(ROOT)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_check_can_fail(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    (tmp_path / "probe.py").write_text("import os\n")
    done = subprocess.run([find_ruff_bin(), "check", "--no-cache", str(tmp_path)], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 1 and "F401" in done.stdout


def test_the_code_is_formatted() -> None:
    """`ruff format .` leaves every file as it is (the fix: run it)."""
    done = subprocess.run(
        [find_ruff_bin(), "format", "--check", "--no-cache", str(ROOT)], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_format_check_can_fail(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    (tmp_path / "probe.py").write_text("x = [1,\n  2]\n")
    done = subprocess.run(
        [find_ruff_bin(), "format", "--check", "--no-cache", str(tmp_path)], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 1 and "probe.py" in done.stdout
