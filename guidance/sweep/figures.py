"""A sweep's figures: curves.png (the metric against the value with 95% intervals, and the metric against realism)
and grid.png (a few seeds by the values, per method)."""

from __future__ import annotations

import math

from matplotlib.figure import Figure
from PIL import Image

from guidance.playground.views import labelled_grid
from guidance.sweep.plan import Cell, SweepPlan
from guidance.sweep.store import CellStore


def _number(value: float | None) -> float:
    return math.nan if value is None else value


def _band(means: list, intervals: list) -> tuple[list[float], list[float]]:
    """Lower and upper ends of each mean's interval (the mean itself where there is none)."""
    low = [_number(m) if ci is None else ci[0] for m, ci in zip(means, intervals)]
    high = [_number(m) if ci is None else ci[1] for m, ci in zip(means, intervals)]
    return low, high


def _errors(means: list, intervals: list) -> list[list[float]]:
    """matplotlib's asymmetric error bars (below, above) from means and intervals."""
    low, high = _band(means, intervals)
    return [[_number(m) - lo for m, lo in zip(means, low)], [hi - _number(m) for m, hi in zip(means, high)]]


def curves_figure(data: dict) -> Figure:
    """Left: each method's mean metric against the swept value, with its 95% t-interval. Right: the trade-off, each
    method's mean metric against its mean realism at every value (labelled), both with their intervals.

    Args:
        data: a sweep.json document (guidance.sweep.run.document).

    Returns:
        The figure.
    """
    figure = Figure(figsize=(11, 4.2), layout="constrained")
    against_value, trade_off = figure.subplots(1, 2)
    values = data["values"]
    text = any(isinstance(v, str) for v in values)
    xs = list(range(len(values))) if text else values
    for method, series in data["summary"].items():
        metric = [_number(m) for m in series["metric"]]
        line = against_value.plot(xs, metric, marker="o", label=method)[0]
        against_value.fill_between(xs, *_band(series["metric"], series["metric_ci95"]), color=line.get_color(), alpha=0.2)
        realism = [_number(r) for r in series["realism"]]
        trade_off.errorbar(
            realism,
            metric,
            xerr=_errors(series["realism"], series["realism_ci95"]),
            yerr=_errors(series["metric"], series["metric_ci95"]),
            marker="o",
            capsize=2,
            label=method,
        )
        for x, y, value in zip(realism, metric, values):
            if not (math.isnan(x) or math.isnan(y)):
                trade_off.annotate(_label(value), (x, y), textcoords="offset points", xytext=(4, 4), fontsize="x-small")
    if text:
        against_value.set_xticks(xs, values)
    start, stop = data["seeds"]
    against_value.set(
        xlabel=data["setting_label"],
        ylabel=f"{data['metric_name']} (mean, 95% interval)",
        title=f"{data['task']}: seeds {start} to {stop - 1} at every value",
    )
    trade_off.set(xlabel=f"realism: {data['realism_name']}", ylabel=data["metric_name"], title="trade-off (labels: the value)")
    for axes in (against_value, trade_off):
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small")
    return figure


def _label(value) -> str:
    return value if isinstance(value, str) else f"{value:g}"


def grid_image(plan: SweepPlan, store: CellStore, cell: int = 96) -> Image.Image:
    """Per method, a row per grid seed (SweepPlan.grid_seeds), a column per value.

    Args:
        plan: the sweep's plan.
        store: where the cells' images were kept; cells without one stay white.
        cell: the side of each image in pixels.
    """
    rows, labels = [], []
    for method in plan.methods:
        for seed in plan.grid_seeds:
            rows.append([store.image(Cell(method, value, seed)) for value in plan.values])
            labels.append(f"{method} s{seed}")
    header = [f"{plan.setting}={_label(v)}" for v in plan.values]
    return labelled_grid(rows, labels, header, cell)
