"""PNG plots of a suite's JSON (matplotlib, Agg backend), each labelled with the machine it came from.

Every plot_<suite> function (PLOTTERS) takes `data` and `folder` as `plot` does and returns the paths of the PNGs it
wrote.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from guidance import distributed  # noqa: E402
from guidance.bench.machine import machine_label  # noqa: E402

if TYPE_CHECKING:
    import torch


def _figure(columns: int = 1):
    fig, axes = plt.subplots(1, columns, figsize=(5.2 * columns, 4.0), squeeze=False)
    return fig, list(axes[0])


def run_mode(data: dict) -> str:
    """A run's plan, which names its PNGs.

    Args:
        data: the suite's JSON document.

    Returns:
        Its named plan (--plan), else "quick" or "full".
    """
    return data.get("plan") or ("quick" if data.get("quick") else "full")


def _save(fig, data: dict, folder: Path, name: str) -> Path:
    """Footer with the machine, backbone, device and mode; the file is <suite>-<backbone>-<mode>-<name>.png."""
    mode = run_mode(data)
    footer = f"{data['suite']} suite, {data['backbone']} on {data['device']} ({mode}) - {machine_label(data['machine'])}"
    fig.text(0.01, 0.01, footer, fontsize=6.5, color="0.3")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    path = Path(folder) / f"{data['suite']}-{data['backbone']}-{mode}-{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _bars(ax, labels: list[str], values: list[float], ylabel: str, title: str) -> None:
    ax.bar(range(len(values)), values, color="tab:blue")
    ax.set_xticks(range(len(values)), labels, rotation=30, ha="right", fontsize=8)
    ax.set(ylabel=ylabel, title=title)


def _lines(ax, rows: list[dict], x: str, y: str, group: str, title: str) -> None:
    """One line per group; where rows carry `<y>_ci` (a 95% interval), its error bars."""
    for name in dict.fromkeys(r[group] for r in rows):
        group_rows = sorted((r for r in rows if r[group] == name and y in r), key=lambda r: r[x])
        if not group_rows:
            continue
        xs, ys = [r[x] for r in group_rows], [r[y] for r in group_rows]
        intervals = [r.get(f"{y}_ci") for r in group_rows]
        if all(intervals):
            spans = [[v - low for v, (low, _) in zip(ys, intervals)], [high - v for v, (_, high) in zip(ys, intervals)]]
            ax.errorbar(xs, ys, yerr=spans, marker="o", capsize=3, label=str(name))
        else:
            ax.plot(xs, ys, marker="o", label=str(name))
    ax.set(xlabel=x, ylabel=y, title=title)
    ax.legend(fontsize=7)


def plot_world(data: dict, folder: Path) -> list[Path]:
    """The world suite's quality scores against their targets, and its Frechet distances against the floor (the
    examples plan: `plot_world_examples`)."""
    if data["config"].get("examples_only"):
        return plot_world_examples(data, folder)
    rows = {(r["task"], r["method"]): r for r in data["rows"]}
    scores = {
        "CFG accuracy": (rows[("class", "cfg")]["accuracy"], 0.95),
        "unguided accuracy": (rows[("class", "plain")]["accuracy"], 0.7),
        "face agreement, FIGD": (rows[("face", "figd")]["attribute_agreement"], 0.8),
        "edge F1, ControlNet + FIGD": (rows[("control", "figd")]["edge_f1"], 0.75),
        "face ROC-AUC": (rows[("face", "verification")]["roc_auc"], 0.98),
    }
    fig, (left, right) = _figure(2)
    _bars(left, list(scores), [v for v, _ in scores.values()], "score", "quality bars (x: target)")
    left.scatter(range(len(scores)), [t for _, t in scores.values()], marker="x", color="tab:red", zorder=3)
    left.tick_params(axis="x", labelrotation=20)
    fd = {m: rows[("class", m)] for m in ("plain", "atg", "cfg") if ("class", m) in rows}
    labels = [f"{m} vs renders" for m in fd] + ["floor", "5x floor"]
    floor = fd["plain"]["fd_floor"]
    _bars(
        right,
        labels,
        [r["fd"] for r in fd.values()] + [floor, 5 * floor],
        "Frechet distance (evaluator features)",
        f"Frechet distance, N = {fd['plain']['n']}",
    )
    return [_save(fig, data, folder, "quality")]


def plot_world_examples(data: dict, folder: Path) -> list[Path]:
    """On the energy tabs' examples, per method: the style pattern agreement against its 0.8 bar, and the control
    tab's edge F1."""
    rows = {(r["task"], r["method"]): r for r in data["rows"]}
    panels = [("style", "pattern_agreement", "pattern agreement"), ("control", "edge_f1", "edge F1")]
    shown = [(task, key, label) for task, key, label in panels if any(t == task for t, _ in rows)]
    fig, axes = _figure(len(shown))
    for ax, (task, key, label) in zip(axes, shown):
        methods = [m for t, m in rows if t == task]
        title = f"{task} examples, n = {rows[(task, methods[0])]['n']}"
        _bars(ax, methods, [rows[(task, m)][key] for m in methods], label, title)
        if task == "style":
            ax.axhline(0.8, color="tab:red", linestyle="--", label="bar 0.8")
            ax.legend(fontsize=7)
        ax.tick_params(axis="x", labelrotation=20)
    return [_save(fig, data, folder, "examples")]


def plot_figd(data: dict, folder: Path) -> list[Path]:
    """Per task, final energy against seconds per image, and the time per step of each method."""
    tasks = list(dict.fromkeys(r["task"] for r in data["rows"]))
    fig, axes = _figure(len(tasks))
    for ax, task in zip(axes, tasks):
        rows = [r for r in data["rows"] if r["task"] == task]
        for r in rows:
            ax.errorbar(r["seconds_per_image"], r["energy"], yerr=r["energy_std"], marker="o", capsize=3, label=r["method"])
        ax.set(xlabel="seconds per image", ylabel="final energy", title=f"{task}: energy against time")
        ax.legend(fontsize=7)
    paths = [_save(fig, data, folder, "energy-time")]
    fig, axes = _figure(len(tasks))
    for ax, task in zip(axes, tasks):
        rows = [r for r in data["rows"] if r["task"] == task]
        _bars(ax, [r["method"] for r in rows], [r["ms_per_step"] for r in rows], "ms per step", f"{task}: time per step")
    return paths + [_save(fig, data, folder, "ms-per-step")]


def plot_dsg(data: dict, folder: Path) -> list[Path]:
    """Final energy against FD (or time per step) per method and step count, labelled by strength; time per step."""
    rows = data["rows"]
    fig, (left, right) = _figure(2)
    for steps in dict.fromkeys(r["steps"] for r in rows):
        for method in dict.fromkeys(r["method"] for r in rows):
            group = [r for r in rows if r["steps"] == steps and r["method"] == method]
            y = "fd" if "fd" in group[0] else "ms_per_step"
            left.plot([r["energy"] for r in group], [r[y] for r in group], marker="o", label=f"{method}, {steps} steps")
            for r in group:
                left.annotate(f"{r['strength']:g}", (r["energy"], r[y]), fontsize=6)
            left.set(xlabel="final energy (face ID)", ylabel=y, title="energy against realism (labels: strength)")
    left.legend(fontsize=7)
    labels = [f"{r['method']} {r['strength']:g} ({r['steps']})" for r in rows]
    _bars(right, labels, [r["ms_per_step"] for r in rows], "ms per step", "time per step")
    return [_save(fig, data, folder, "energy-realism")]


def plot_gfcg(data: dict, folder: Path) -> list[Path]:
    """Per method: accuracy, FD and diversity where measured, and the time per step."""
    rows = data["rows"]
    keys = [k for k in ("accuracy", "fd", "diversity") if all(r.get(k) is not None for r in rows)] + ["ms_per_step"]
    fig, axes = _figure(len(keys))
    for ax, key in zip(axes, keys):
        _bars(ax, [r["method"] for r in rows], [r[key] for r in rows], key, key.replace("_", " "))
    return [_save(fig, data, folder, "methods")]


def plot_solvers(data: dict, folder: Path) -> list[Path]:
    """FD and the reconstruction error (RMSE to the near-exact ODE solution, with its 95% interval where the JSON
    has one) against NFE; one panel row per x0-clipping mode. A grid comparison: `plot_solver_grids`."""
    rows = data["rows"]
    if "grid" in rows[0]:
        return plot_solver_grids(data, folder)
    keys = [k for k in ("fd", "rmse_ref") if k in rows[0]] or ["ms_per_step"]
    modes = list(dict.fromkeys(r.get("x0_clip", False) for r in rows))
    fig, grid = plt.subplots(len(modes), len(keys), figsize=(5.2 * len(keys), 3.8 * len(modes)), squeeze=False)
    for axes, clip in zip(grid, modes):
        group = [r for r in rows if r.get("x0_clip", False) == clip]
        for ax, key in zip(axes, keys):
            reference = data["config"].get("reference_solver", "ddim"), data["config"].get("reference_steps")
            what = {"fd": "Frechet distance", "rmse_ref": "RMSE to {} at {} steps".format(*reference)}.get(key, key)
            _lines(ax, group, "nfe", key, "method", f"{what}, x0 {'clipped' if clip else 'not clipped'}")
            ax.set_xscale("log")
            ax.set_xticks(sorted({r["nfe"] for r in group}), [f"{n:g}" for n in sorted({r["nfe"] for r in group})])
            ax.minorticks_off()
            if key == "fd":
                ax.axhline(group[0]["fd_floor"], color="0.5", linestyle="--", label="floor")
                ax.legend(fontsize=7)
    return [_save(fig, data, folder, "nfe")]


def plot_solver_grids(data: dict, folder: Path) -> list[Path]:
    """Error to the exact ODE solution against NFE, log-log, one panel per grid and one line per method (95%
    intervals as error bars); on the mixture also the teaching view, each solver's paths from the same noise."""
    rows, grids = data["rows"], data["config"]["grids"]
    fig, axes = plt.subplots(1, len(grids), figsize=(4.2 * len(grids), 4.0), squeeze=False, sharey=True)
    for ax, grid in zip(axes[0], grids):
        _lines(ax, [r for r in rows if r["grid"] == grid], "nfe", "error", "method", f"grid: {grid}")
        ax.set(xscale="log", yscale="log", ylabel="L2 error to the exact ODE solution")
        nfes = sorted({r["nfe"] for r in rows})
        ax.set_xticks(nfes, [f"{n:g}" for n in nfes])
        ax.minorticks_off()
    written = [_save(fig, data, folder, "grids")]
    if "paths" in data["config"]:
        written.append(plot_solver_paths(data, folder))
    return written


def plot_solver_paths(data: dict, folder: Path) -> Path:
    """The mixture's teaching view (guidance.playground.views.paths_figure), as the suite ran it."""
    from guidance.playground.views import paths_figure

    view = data["config"]["paths"]
    figure = paths_figure(view["means"], view["points"], f"paths from the same noise, grid {view['grid']}, NFE {view['nfe']}")
    figure.set_layout_engine("none")  # _save lays it out with its footer
    return _save(figure, data, folder, "paths")


def plot_gpu(data: dict, folder: Path) -> list[Path]:
    """The time per step of each method, annotated with its ratio to plain sampling's."""
    rows = data["rows"]
    fig, (ax,) = _figure(1)
    _bars(ax, [r["method"] for r in rows], [r["ms_per_step"] for r in rows], "ms per step", "time per step (ratio to plain)")
    for i, r in enumerate(rows):
        ax.annotate(f"{r['ratio_to_plain']:.2f}x", (i, r["ms_per_step"]), ha="center", va="bottom", fontsize=7)
    return [_save(fig, data, folder, "ms-per-step")]


def plot_memory(data: dict, folder: Path) -> list[Path]:
    """Peak memory above the weights and time per step, per method, each annotated with its ratio to the unguided
    step's where the rows have one."""
    rows = data["rows"]
    fig, (memory, step) = _figure(2)
    for ax, key, ratio, label, title in (
        (memory, "peak_mem_mb", "peak_ratio", "MB above the weights", "peak memory"),
        (step, "ms_per_step", "time_ratio", "ms per step", "time per step"),
    ):
        _bars(
            ax,
            [r["method"] for r in rows],
            [r[key] for r in rows],
            label,
            title + (" (ratio to unguided)" if ratio in rows[0] else ""),
        )
        for i, r in enumerate(rows):
            if ratio in r:
                ax.annotate(f"{r[ratio]:.2f}x", (i, r[key]), ha="center", va="bottom", fontsize=7)
    return [_save(fig, data, folder, "peak")]


def plot_families(data: dict, folder: Path) -> list[Path]:
    """Each method's final energy minus unguided on each family (mean over seeds), with the goals' 95% intervals."""
    rows, goals = data["rows"], {g["goal"]: g for g in data["goals"]}
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(rows) + 2), 4.2))
    for i, row in enumerate(rows):
        low, high = goals[f"{row['family']} {row['method']}: final energy - unguided"]["interval"]
        ax.bar(i, row["difference"], color=f"C{('sd', 'sdxl', 'sd3').index(row['family'])}")
        ax.errorbar(i, row["difference"], yerr=[[row["difference"] - low], [high - row["difference"]]], color="black", capsize=3)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xticks(range(len(rows)), [f"{r['family']}\n{r['method']}" for r in rows], fontsize=7)
    ax.set(
        ylabel="final energy - unguided (same seeds)",
        title=f"guided pipelines on tiny random models, n = {rows[0]['seeds']} seeds",
    )
    return [_save(fig, data, folder, "energy")]


def plot_profile(data: dict, folder: Path) -> list[Path]:
    """One stacked bar per method: the step's ms, part by part (guidance.bench.suites.profile.PARTS)."""
    from guidance.bench.suites.profile import PARTS

    rows = [r for r in data["rows"] if "ms_per_step" in r]  # the end-to-end speed rows have no parts
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(rows) + 2), 4.6))
    bottom = [0.0] * len(rows)
    for part in PARTS:
        values = [max(0.0, r[part]) for r in rows]
        if any(values):
            ax.bar(range(len(rows)), values, bottom=bottom, label=part)
            bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_xticks(range(len(rows)), [r["method"] for r in rows], rotation=40, ha="right", fontsize=7)
    ax.set(ylabel="ms per step", title="where a step's time goes")
    ax.legend(fontsize=6.5, ncol=2)
    return [_save(fig, data, folder, "parts")]


def labelled_rows(rows: list[tuple[str, "torch.Tensor"]], path: Path, title: str) -> Path:
    """A PNG with one row of images per label, the label on the left (written by the main process alone when
    several share a run).

    Args:
        rows: (label, images (N, 3, H, W) in [-1, 1]) pairs.
        path: the PNG to write.
        title: above the rows.

    Returns:
        The PNG's path (not written on the other processes).
    """
    if not distributed.is_main():
        return Path(path)
    columns = max(len(images) for _, images in rows)
    width, height = 0.9 * columns + 1.6, 0.9 * len(rows) + 0.5
    fig, grid = plt.subplots(len(rows), columns, figsize=(width, height), squeeze=False)
    for axes, (label, images) in zip(grid, rows):
        for ax, image in zip(axes, images):
            ax.imshow((image.permute(1, 2, 0).clamp(-1, 1) * 0.5 + 0.5).numpy())
        for ax in axes:
            ax.set_xticks([]), ax.set_yticks([])
            ax.spines[:].set_visible(False)
        axes[0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=7)
    fig.suptitle(title, fontsize=8, y=1 - 0.12 / height)
    fig.subplots_adjust(left=1.5 / width, right=0.99, bottom=0.02, top=1 - 0.35 / height, wspace=0.05, hspace=0.08)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_preview(data: dict, folder: Path) -> list[Path]:
    """The app's run with the live preview and without: median seconds per run."""
    fig, (ax,) = _figure(1)
    _bars(
        ax,
        [r["method"] for r in data["rows"]],
        [r["seconds"] for r in data["rows"]],
        "seconds per run (median)",
        "live preview: total time",
    )
    return [_save(fig, data, folder, "overhead")]


def plot_presets(data: dict, folder: Path) -> list[Path]:
    """Per tab, the condition metric and the realism against each method's strength (k, or the DSG rate), with
    plain sampling's as a dashed line."""
    fig, grid = plt.subplots(2, 3, figsize=(15.6, 8.0))
    axes = list(grid.flat)
    for column, (task, metric) in enumerate(
        (("face", "attribute_agreement"), ("style", "pattern_agreement"), ("control", "edge_f1"))
    ):
        rows = [r for r in data["rows"] if r["task"] == task]
        plain = next(r for r in rows if r["method"] == "plain")
        guided = [r for r in rows if r["method"] != "plain" and "fisher_weight" not in r]
        for ax, y in ((axes[column], metric), (axes[column + 3], "realism")):
            _lines(ax, guided, "value", y, "method", f"{task}: {y}")
            ax.axhline(plain[y], color="grey", linestyle="--", label="plain")
            ax.set(xlabel="k, or the DSG rate of +dsg")
            ax.set_xscale("log")
    return [_save(fig, data, folder, "sweep")]


def plot_load(data: dict, folder: Path) -> list[Path]:
    """The soak: the app's resident memory and Gradio's cache against the run number."""
    soak = [r for r in data["rows"] if r["task"] == "soak" and "run" in r]
    fig, (memory, cache) = _figure(2)
    runs = [r["run"] for r in soak]
    memory.plot(runs, [r["rss_mb"] for r in soak], marker="o")
    memory.set(xlabel="run", ylabel="MB", title="the app's resident memory")
    cache.plot(runs, [r["cache_mb"] for r in soak], marker="o")
    cache.set(xlabel="run", ylabel="MB", title=f"Gradio's cache (files older than {data['config']['cache_seconds']} s deleted)")
    return [_save(fig, data, folder, "soak")]


PLOTTERS: dict[str, Callable[[dict, Path], list[Path]]] = {
    "world": plot_world,
    "figd": plot_figd,
    "dsg": plot_dsg,
    "gfcg": plot_gfcg,
    "solvers": plot_solvers,
    "gpu": plot_gpu,
    "profile": plot_profile,
    "preview": plot_preview,
    "presets": plot_presets,
    "memory": plot_memory,
    "load": plot_load,
    "families": plot_families,
}


def plot(data: dict, folder: Path) -> list[Path]:
    """Every plot of a suite's JSON document; each plotter takes the same two arguments.

    Args:
        data: the suite's JSON document (guidance.bench.cli.document).
        folder: where the PNGs go (created), named <suite>-<backbone>-<mode>-<name>.png.

    Returns:
        The PNGs' paths.
    """
    Path(folder).mkdir(parents=True, exist_ok=True)
    return PLOTTERS[data["suite"]](data, Path(folder))
