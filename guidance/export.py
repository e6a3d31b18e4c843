"""A task's outcome as files: results.json (every run's `SamplingResult.to_dict()`) and images.zip (one PNG per image)."""
from __future__ import annotations

import io
import json
import shutil
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

from conditions.images import to_pil

from .tasks import TaskOutcome


def summarize(outcome: TaskOutcome) -> dict[str, dict[str, Any]]:
    """Per run label: its SamplingResult as a dict; what the app's API returns and results.json holds."""
    return {label: result.to_dict() for label, result in outcome.results}


def write_images_zip(path: Path, outcome: TaskOutcome) -> Path:
    """One PNG per image, named after its run and index ("+" becomes "_")."""
    with zipfile.ZipFile(path, "w") as zipped:
        for label, result in outcome.results:
            for index, image in enumerate(to_pil(result.images)):
                data = io.BytesIO()
                image.save(data, "PNG")
                zipped.writestr(f"{label.replace('+', '_')}_{index}.png", data.getvalue())
    return path


def write_downloads(root: Path, outcome: TaskOutcome, summary: dict[str, dict[str, Any]], keep_s: float = 3600) -> list[str]:
    """images.zip and results.json in a new folder under `root`; folders older than `keep_s` are removed first."""
    for old in root.iterdir():
        if time.time() - old.stat().st_mtime > keep_s:
            shutil.rmtree(old, ignore_errors=True)
    folder = root / uuid.uuid4().hex
    folder.mkdir()
    results = folder / "results.json"
    results.write_text(json.dumps(summary, indent=1, default=str))
    return [str(write_images_zip(folder / "images.zip", outcome)), str(results)]
