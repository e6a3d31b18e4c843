"""Pictures of results for the app and the notebooks: sweep grids and plots, x0_hat trajectories, live frames."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure
from PIL import Image, ImageDraw

from conditions.images import to_pil
from guidance.statistics import t_interval
from guidance.playground.tasks import SWEEP_SETTINGS, SweepOutcome
from guidance.sampling import SamplingResult

LABEL_WIDTH, HEADER_HEIGHT = 84, 18
SWEEP_SERIES = {"metric": "metric (mean over samples)", "seconds_per_image": "seconds per image"}


def labelled_grid(
    rows: Sequence[Sequence[Image.Image | None]], row_labels: Sequence[str], column_labels: Sequence[str], cell: int = 96
) -> Image.Image:
    """Images in rows and columns with a label left of each row and above each column.

    Args:
        rows: the images, row by row; None leaves a cell white.
        row_labels: one per row, drawn at its left.
        column_labels: one per column, drawn above it.
        cell: the side in pixels each image is resized to.
    """
    columns = max((len(row) for row in rows), default=0)
    grid = Image.new("RGB", (LABEL_WIDTH + columns * cell, HEADER_HEIGHT + len(rows) * cell), "white")
    draw = ImageDraw.Draw(grid)
    for c, text in enumerate(column_labels):
        draw.text((LABEL_WIDTH + c * cell + 4, 3), str(text), fill="black")
    for r, (label, row) in enumerate(zip(row_labels, rows)):
        draw.text((4, HEADER_HEIGHT + r * cell + cell // 2 - 6), label, fill="black")
        for c, image in enumerate(row):
            if image is not None:
                grid.paste(image.convert("RGB").resize((cell, cell)), (LABEL_WIDTH + c * cell, HEADER_HEIGHT + r * cell))
    return grid


def _value_text(value) -> str:
    return value if isinstance(value, str) else f"{value:g}"


def sweep_grid(outcome: SweepOutcome, sample: int = 0, cell: int = 96) -> Image.Image:
    """Rows: methods; columns: the setting's values; one sample's final image per cell.

    Args:
        outcome: from `guidance.playground.tasks.sweep`.
        sample: which sample of each cell is shown.
        cell: the side of each image in pixels.
    """
    rows = [
        [
            None if (r := outcome.cell(label, c)) is None else to_pil(r.images[sample : sample + 1])[0]
            for c in range(len(outcome.values))
        ]
        for label in outcome.labels
    ]
    header = [f"{outcome.setting}={_value_text(v)}" for v in outcome.values]
    return labelled_grid(rows, outcome.labels, header, cell)


def sweep_series(outcome: SweepOutcome) -> dict[str, dict[str, list]]:
    """Per method: the values reached, at each the mean metric with its 95% t-interval over the cell's samples (None
    for one sample) and their number, and the seconds per image (what the plots draw)."""
    series = {}
    for label in outcome.labels:
        cells = [(v, outcome.cell(label, c)) for c, v in enumerate(outcome.values)]
        cells = [(v, r) for v, r in cells if r is not None]
        series[label] = {
            "values": [v for v, _ in cells],
            "metric": [None if not r.metric else sum(r.metric) / len(r.metric) for _, r in cells],
            "metric_ci95": [None if not r.metric or (ci := t_interval(r.metric)) is None else list(ci) for _, r in cells],
            "samples": [r.images.shape[0] for _, r in cells],
            "seconds_per_image": [r.seconds / r.images.shape[0] for _, r in cells],
            "cancelled": [r.cancelled for _, r in cells],
        }
    return series


def sweep_figure(outcome: SweepOutcome, key: str) -> Figure:
    """One line per method against the swept value; the metric with its 95% interval where cells hold several samples.

    Args:
        outcome: from `guidance.playground.tasks.sweep`.
        key: "metric" or "seconds_per_image".
    """
    figure = Figure(figsize=(5, 3.2), layout="constrained")
    axes = figure.subplots()
    text = all(isinstance(v, str) for v in outcome.values)
    for label, data in sweep_series(outcome).items():
        xs = [outcome.values.index(v) if text else v for v in data["values"]]
        ys = [math.nan if y is None else y for y in data[key]]
        line = axes.plot(xs, ys, marker="o", label=label)[0]
        if key == "metric" and any(ci is not None for ci in data["metric_ci95"]):  # several samples: mean and interval
            low = [y if ci is None else ci[0] for y, ci in zip(ys, data["metric_ci95"])]
            high = [y if ci is None else ci[1] for y, ci in zip(ys, data["metric_ci95"])]
            axes.fill_between(xs, low, high, color=line.get_color(), alpha=0.2)
    if text:
        axes.set_xticks(range(len(outcome.values)), outcome.values)
    metric = next((r.metric_name for c in outcome.columns for _, r in c.results if r.metric_name), None)
    spread = " (mean, 95% interval)" if any(r.images.shape[0] > 1 for c in outcome.columns for _, r in c.results) else ""
    ylabel = (metric or "metric") + spread if key == "metric" else SWEEP_SERIES[key]
    axes.set(xlabel=SWEEP_SETTINGS[outcome.setting], ylabel=ylabel)
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    return figure


SOLVER_COLOURS = {"ddim": "tab:gray", "dpmsolver++": "tab:blue", "unipc": "tab:green", "evodiff": "tab:red"}


def paths_figure(means: Sequence[Sequence[float]], paths: dict[str, Sequence], title: str) -> Figure:
    """The mixture's teaching view: each solver's path from the same noise to the modes, one colour per solver.

    Args:
        means: the mixture's modes, (K, 2).
        paths: per solver, the points it passes, (steps + 1, samples, 2) (guidance.worlds.mixture.solver_paths).
        title: what the paths share (the grid, the NFE).
    """
    figure = Figure(figsize=(5, 5), layout="constrained")
    axes = figure.subplots()
    axes.scatter([m[0] for m in means], [m[1] for m in means], marker="*", s=160, color="0.2", label="the modes", zorder=3)
    for solver, points in paths.items():
        for sample in range(len(points[0])):
            xs, ys = [float(p[sample][0]) for p in points], [float(p[sample][1]) for p in points]
            axes.plot(xs, ys, marker=".", color=SOLVER_COLOURS.get(solver), alpha=0.75, label=solver if sample == 0 else None)
        axes.scatter(
            [float(p[0]) for p in points[-1]], [float(p[1]) for p in points[-1]], color=SOLVER_COLOURS.get(solver), s=30, zorder=4
        )
    axes.set(title=title, aspect="equal")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    return figure


def sweep_summary(outcome: SweepOutcome) -> dict:
    """The sweep as JSON: the setting, its values, the methods, and per method its series."""
    return {
        "setting": outcome.setting,
        "values": outcome.values,
        "methods": outcome.labels,
        "columns": len(outcome.columns),
        "cancelled": outcome.cancelled,
        "series": sweep_series(outcome),
    }


def write_sweep_files(folder: Path, outcome: SweepOutcome, figures: dict[str, Figure]) -> list[str]:
    """A sweep's files: grid.png, one PNG per figure and sweep.json.

    Args:
        folder: where they go; it is created and must not exist.
        outcome: the sweep.
        figures: by file name (without .png), e.g. from `sweep_figure`.

    Returns:
        The files' paths.
    """
    folder.mkdir(parents=True)
    sweep_grid(outcome).save(folder / "grid.png")
    for name, figure in figures.items():
        figure.savefig(folder / f"{name}.png", dpi=120)
    (folder / "sweep.json").write_text(json.dumps(sweep_summary(outcome), indent=1, default=str))
    return [str(folder / "grid.png"), *(str(folder / f"{name}.png") for name in figures), str(folder / "sweep.json")]


def trajectory_strip(results: Sequence[tuple[str, SamplingResult]], sample: int = 0, cell: int = 80) -> Image.Image:
    """Per method, its decoded x0_hat at the snapshot steps, left (noisiest) to right, then the final image.

    Args:
        results: (label, result) pairs of runs made with `snapshots`, e.g. `TaskOutcome.results`.
        sample: which sample of each run is shown.
        cell: the side of each image in pixels.
    """
    steps = max((len(r.trajectory) for _, r in results), default=0)
    rows = [
        [*(to_pil(images[sample : sample + 1])[0] for _, images in r.trajectory), to_pil(r.images[sample : sample + 1])[0]]
        for _, r in results
    ]
    first = next((r for _, r in results if r.trajectory), None)
    header = [f"step {index + 1}" for index, _ in first.trajectory] if first else [""] * steps
    return labelled_grid(rows, [label for label, _ in results], [*header, "final"], cell)
