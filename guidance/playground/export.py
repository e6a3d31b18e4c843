"""A task's outcome as a summary (every run's `SamplingResult.to_dict()` with its spread), its views (per-step
figure, metrics table) and files: results.json and images.zip (one PNG per image).

Spread: a per-sample figure (the metric, the final energy) is its mean with a 95% Student's t-interval over the
samples, beside every sample's value; a time per step is the median with its interquartile range over the steps
after the first (the first step warms up caches and lazy initialisation, so it is left out)."""

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
from guidance.statistics import median_iqr, t_interval
from guidance.playground.tasks import TaskOutcome

TABLE_COLUMNS = (
    "method",
    "guided at",
    "seconds",
    "NFE",
    "steps",
    "samples",
    "ms / step (median, IQR)",
    "metric mean [95% CI]",
    "final energy mean [95% CI]",
    "peak MB",
)
WARM_UP_STEPS = 1  # steps left out of the time per step


def mean_spread(values: list[float] | None) -> dict[str, Any] | None:
    """Mean, 95% t-interval (None for one value), n and every value; None without values."""
    if not values:
        return None
    return {
        "mean": sum(values) / len(values),
        "ci95": t_interval(values),
        "n": len(values),
        "values": list(values),
        "interval": "Student's t, 95%",
    }


def step_spread(ms_per_step: list[float]) -> dict[str, Any] | None:
    """Median ms per step and its quartiles over the steps after the warm-up; None without such steps."""
    timed = ms_per_step[WARM_UP_STEPS:]
    if not timed:
        return None
    median, q1, q3 = median_iqr(timed)
    return {"median": median, "iqr": [q1, q3], "n": len(timed), "warm_up_steps_left_out": WARM_UP_STEPS}


def spread(stats: dict[str, Any]) -> dict[str, Any]:
    """A run's summarised figures: the metric and final energy over samples, the time per step over steps."""
    return {
        "metric": mean_spread(stats["metric"]),
        "final_energy": mean_spread(stats["final_energy"]),
        "ms_per_step": step_spread(stats["ms_per_step"]),
        **{name: mean_spread(values) for name, values in (stats.get("extra_metrics") or {}).items()},
    }


def summarize(outcome: TaskOutcome) -> dict[str, dict[str, Any]]:
    """Per run label: its SamplingResult as a dict with its `spread`; what the app's API returns and results.json
    holds."""
    summary = {}
    for label, result in outcome.results:
        stats = result.to_dict()
        summary[label] = stats | {"spread": spread(stats)}
    return summary


def step_figure(summary: dict[str, dict[str, Any]], key: str, ylabel: str, medians: bool = False) -> Figure:
    """One line per method of a per-step series against the step number.

    Args:
        summary: from `summarize`.
        key: the per-step series of each run's stats, e.g. "ms_per_step" or "energy_per_step".
        ylabel: the y axis's label.
        medians: also draw each method's median over the steps after the warm-up, dashed, in its colour.
    """
    figure = Figure(figsize=(5, 3.2), layout="constrained")
    axes = figure.subplots()
    for label, stats in summary.items():
        values = [math.nan if v is None else v for v in stats[key]]
        (line,) = axes.plot(range(1, len(values) + 1), values, marker=".", label=label)
        timed = [v for v in values[WARM_UP_STEPS:] if not math.isnan(v)]
        if medians and timed:
            axes.hlines(
                median_iqr(timed)[0],
                WARM_UP_STEPS + 1,
                len(values),
                colors=line.get_color(),
                linestyles="--",
                label=f"{label} median (steps {WARM_UP_STEPS + 1}-{len(values)})",
            )
    axes.set(xlabel="step", ylabel=ylabel)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    return figure


def mean_cell(values: list[float] | None) -> str:
    """ "mean [low, high]" (the 95% t-interval) for several values, the value alone for one, "" for none."""
    found = mean_spread(values)
    if found is None:
        return ""
    if found["ci95"] is None:
        return f"{found['mean']:.4g}"
    low, high = found["ci95"]
    return f"{found['mean']:.4g} [{low:.4g}, {high:.4g}]"


def step_cell(ms_per_step: list[float]) -> str:
    """ "median (q1-q3)" of the ms per step after the warm-up, "" when there is no such step."""
    found = step_spread(ms_per_step)
    if found is None:
        return ""
    q1, q3 = found["iqr"]
    return f"{found['median']:.4g} ({q1:.4g}-{q3:.4g})"


def guiding_text(options: dict[str, Any]) -> str:
    """The guiding setting a run ran at: "dsg_rate r" under DSG, "scale v" for a gradient method, "" otherwise."""
    if "dsg_rate" in options:
        return f"dsg_rate {options['dsg_rate']:.3g}"
    return f"scale {options['scale']:.3g}" if "scale" in options and "step_rule" in options else ""


def extra_cells(extra_metrics: dict[str, list[float]]) -> dict[str, str]:
    """A "name mean [95% CI]" cell per further metric (pattern agreement on the embedded world's style tab)."""
    return {f"{name.replace('_', ' ')} mean [95% CI]": mean_cell(values) for name, values in extra_metrics.items()}


def metrics_table(summary: dict[str, dict[str, Any]], metric_label: str) -> pd.DataFrame:
    """One row per method: the guiding setting it ran at, totals, the median time per step with its IQR, and means over the
    samples with their 95% t-intervals; each further metric (`SamplingResult.extra_metrics`) has a column after
    the metric's.

    Args:
        summary: from `summarize`.
        metric_label: the task's metric as people read it ("ID distance"), which names its column.
    """
    rows = [
        {
            "method": label,
            "guided at": guiding_text(stats["options"]),
            "seconds": round(stats["seconds"], 3),
            "NFE": stats["nfe"],
            "steps": stats["steps"],
            "samples": len(stats["metric"] or stats["final_energy"] or []) or None,
            "ms / step (median, IQR)": step_cell(stats["ms_per_step"]),
            f"{metric_label} mean [95% CI]": mean_cell(stats["metric"]),
            **extra_cells(stats.get("extra_metrics") or {}),
            "final energy mean [95% CI]": mean_cell(stats["final_energy"]),
            "peak MB": round(stats["peak_mem_mb"], 1),
        }
        for label, stats in summary.items()
    ]
    return pd.DataFrame(rows)


def write_images_zip(path: Path, outcome: TaskOutcome) -> Path:
    """A ZIP of one PNG per image, named after its run and index ("+" becomes "_").

    Args:
        path: the ZIP file to write.
        outcome: the task's runs.

    Returns:
        `path`.
    """
    with zipfile.ZipFile(path, "w") as zipped:
        for label, result in outcome.results:
            for index, image in enumerate(to_pil(result.images)):
                data = io.BytesIO()
                image.save(data, "PNG")
                zipped.writestr(f"{label.replace('+', '_')}_{index}.png", data.getvalue())
    return path


def write_downloads(root: Path, outcome: TaskOutcome, summary: dict[str, dict[str, Any]], keep_s: float = 3600) -> list[str]:
    """images.zip and results.json in a new folder under `root`.

    Args:
        root: the downloads' folder; its subfolders older than `keep_s` are removed first.
        outcome: the task's runs (images.zip).
        summary: from `summarize` (results.json).
        keep_s: how many seconds an earlier download stays.

    Returns:
        The two files' paths.
    """
    for old in root.iterdir():
        if time.time() - old.stat().st_mtime > keep_s:
            shutil.rmtree(old, ignore_errors=True)
    folder = root / uuid.uuid4().hex
    folder.mkdir()
    results = folder / "results.json"
    results.write_text(json.dumps(summary, indent=1, default=str))
    return [str(write_images_zip(folder / "images.zip", outcome)), str(results)]
