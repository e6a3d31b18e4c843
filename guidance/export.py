"""A task's outcome as a summary (every run's `SamplingResult.to_dict()`), its views (per-step figure, metrics
table) and files: results.json and images.zip (one PNG per image)."""
from __future__ import annotations

import io
import json
import math
import shutil
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from conditions.images import to_pil

from .tasks import TaskOutcome

TABLE_COLUMNS = ("method", "seconds", "NFE", "steps", "ms / step", "metric", "final energy", "peak MB")


def summarize(outcome: TaskOutcome) -> dict[str, dict[str, Any]]:
    """Per run label: its SamplingResult as a dict; what the app's API returns and results.json holds."""
    return {label: result.to_dict() for label, result in outcome.results}


def step_figure(summary: dict[str, dict[str, Any]], key: str, ylabel: str) -> Figure:
    """One line per method of a per-step series against the step number."""
    figure = Figure(figsize=(5, 3.2), layout="constrained")
    axes = figure.subplots()
    for label, stats in summary.items():
        values = [math.nan if v is None else v for v in stats[key]]
        axes.plot(range(1, len(values) + 1), values, marker=".", label=label)
    axes.set(xlabel="step", ylabel=ylabel)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    return figure


def _mean(values: list[float] | None) -> float | None:
    return None if not values else round(sum(values) / len(values), 4)


def metrics_table(summary: dict[str, dict[str, Any]], metric_label: str) -> pd.DataFrame:
    """One row per method: totals and means over the samples."""
    rows = [
        {
            "method": label, "seconds": round(stats["seconds"], 3), "NFE": stats["nfe"], "steps": stats["steps"],
            "ms / step": _mean(stats["ms_per_step"]), metric_label: _mean(stats["metric"]),
            "final energy": _mean(stats["final_energy"]), "peak MB": round(stats["peak_mem_mb"], 1),
        }
        for label, stats in summary.items()
    ]  # fmt: skip
    return pd.DataFrame(rows)


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
