"""The app's summary, metrics table and per-step figure give each figure with its spread (guidance.playground.export)."""

from __future__ import annotations

import statistics

import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgba

from guidance.playground.export import TABLE_COLUMNS, metrics_table, step_figure, summarize
from guidance.statistics import bootstrap_interval, median_iqr, ratio_of_means, t_interval, verdict
from guidance.playground.tasks import TaskOutcome
from guidance.sampling import SamplingResult, StepRecord


def result(ms: list[float], metric: list[float]) -> SamplingResult:
    steps = [StepRecord(index=i, timestep=999 - i, seconds=m / 1000, nfe=1.0) for i, m in enumerate(ms)]
    return SamplingResult(
        images=torch.zeros(len(metric), 3, 8, 8),
        method="m",
        scheduler="ddim",
        steps=steps,
        seconds=sum(ms) / 1000,
        nfe=float(len(ms)),
        metric=metric,
        metric_name="id_distance",
        final_energy=[2 * v for v in metric],
    )


OUTCOME = TaskOutcome(
    [
        ("figd", result([900.0, 10.0, 12.0, 11.0, 30.0], [0.2, 0.4, 0.3, 0.5])),
        ("freedom", result([800.0, 20.0, 22.0, 21.0, 25.0], [0.25])),
    ]
)


def test_t_interval_matches_the_textbook_formula():
    values = [1.0, 2.0, 4.0, 7.0]
    low, high = t_interval(values)
    half = 3.182446305284263 * statistics.stdev(values) / 2  # t(0.975, 3) s / sqrt(4)
    assert (low, high) == pytest.approx((3.5 - half, 3.5 + half))
    assert t_interval([1.0]) is None


def test_summary_gives_the_metric_mean_with_its_interval_and_every_value():
    summary = summarize(OUTCOME)
    metric = summary["figd"]["spread"]["metric"]
    assert metric["values"] == [0.2, 0.4, 0.3, 0.5] and metric["n"] == 4
    assert metric["mean"] == pytest.approx(0.35) and metric["ci95"] == pytest.approx(t_interval([0.2, 0.4, 0.3, 0.5]))
    assert summary["freedom"]["spread"]["metric"]["ci95"] is None  # one sample: no interval
    assert summary["figd"]["spread"]["final_energy"]["mean"] == pytest.approx(0.7)


def test_time_per_step_leaves_out_the_warm_up_step():
    steps = summarize(OUTCOME)["figd"]["spread"]["ms_per_step"]
    assert steps["median"] == pytest.approx(11.5) and steps["iqr"] == pytest.approx([10.75, 16.5]) and steps["n"] == 4
    assert median_iqr([10.0, 12.0, 11.0, 30.0]) == pytest.approx((11.5, 10.75, 16.5))


def test_metrics_table_columns_say_what_each_cell_is():
    table = metrics_table(summarize(OUTCOME), "ID distance")
    assert list(table.columns) == [c.replace("metric", "ID distance", 1) if c.startswith("metric") else c for c in TABLE_COLUMNS]
    figd, freedom = table.to_dict("records")
    low, high = t_interval([0.2, 0.4, 0.3, 0.5])
    assert figd["ID distance mean [95% CI]"] == f"0.35 [{low:.4g}, {high:.4g}]" and freedom["ID distance mean [95% CI]"] == "0.25"
    assert figd["ms / step (median, IQR)"] == "11.5 (10.75-16.5)" and figd["samples"] == 4


def test_time_figure_draws_each_methods_median_in_its_colour():
    figure = step_figure(summarize(OUTCOME), "ms_per_step", "ms per step", medians=True)
    axes = figure.axes[0]
    steps = {line.get_label(): line for line in axes.get_lines()}
    medians = {c.get_label().split(" median")[0]: c for c in axes.collections}
    assert set(steps) == set(medians) == {"figd", "freedom"}
    for label, expected in (("figd", 11.5), ("freedom", 21.5)):
        (segment,) = medians[label].get_segments()
        assert segment[:, 1] == pytest.approx([expected, expected]) and segment[:, 0] == pytest.approx([2, 5])
        assert tuple(medians[label].get_colors()[0]) == to_rgba(steps[label].get_color())
    assert not step_figure(summarize(OUTCOME), "ms_per_step", "ms per step").axes[0].collections


def test_bootstrap_interval_covers_the_statistic_and_narrows_with_more_samples():
    rng = np.random.default_rng(0)
    small, large = rng.normal(1.0, 1.0, 20), rng.normal(1.0, 1.0, 2000)
    (low, high), (wide_low, wide_high) = bootstrap_interval(large), bootstrap_interval(small)
    assert low < large.mean() < high and high - low < (wide_high - wide_low) / 4
    pairs = np.stack([2 * large + 10, large + 10], axis=1)
    low, high = bootstrap_interval(pairs, ratio_of_means)
    assert low < ratio_of_means(pairs) < high and bootstrap_interval([3.0]) is None


@pytest.mark.parametrize(
    ("interval", "higher", "strict", "expected"),
    [
        ((1.1, 1.4), True, False, "met"),
        ((0.5, 0.9), True, False, "not met"),
        ((0.9, 1.1), True, False, "undecided"),
        ((0.5, 0.9), False, False, "met"),
        ((1.1, 1.4), False, False, "not met"),
        ((0.9, 1.1), False, False, "undecided"),
        ((1.0, 1.0), True, False, "met"),
        ((1.0, 1.0), True, True, "not met"),
        (None, True, False, "undecided"),
    ],
)
def test_verdict_against_a_bar_of_one(interval, higher, strict, expected):
    assert verdict(interval, 1.0, higher, strict) == expected
