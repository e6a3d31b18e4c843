"""Running a sweep's cells, shared across processes, and what it writes: sweep.json, curves.png, grid.png.

Each cell is one sample through `run_task` from its own seed, so its result does not depend on which process runs
it, nor on the cells run before it: 1 and N processes give the same samples and figures (bit for bit on a CPU with
the same torch threads per process).
"""

from __future__ import annotations

import datetime
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from conditions.images import to_pil
from guidance import distributed
from guidance.errors import SamplingNaNError, WeightsUnavailableError
from guidance.statistics import t_interval
from guidance.playground.tasks import SWEEP_SETTINGS, run_task, spec
from guidance.sweep.figures import curves_figure, grid_image
from guidance.sweep.plan import Cell, SweepPlan
from guidance.sweep.store import CellStore, cell_of
from guidance.worlds import World
from guidance.worlds.base import REALISM, realism

TIMES = ("seconds", "wall_seconds")  # a record's timings: the only figures that differ between identical runs


def run_cell(world: World, plan: SweepPlan, cell: Cell) -> tuple[dict, torch.Tensor | None]:
    """One cell: its record (metric, realism, further metrics, NFE, times) and its image (None if it diverged).

    Args:
        world: where it samples.
        plan: the sweep.
        cell: which method, value and seed.

    Returns:
        (record, image (1, 3, H, W) in [-1, 1]). A cell whose sampling diverges is finished too: its record holds
        the error and no figures.
    """
    record = {"method": cell.method, "value": cell.value, "seed": cell.seed}
    start = time.perf_counter()
    try:
        result = run_task(world, plan.cell_request(cell)).results[0][1]
    except SamplingNaNError as error:
        return record | {
            "error": str(error),
            "metric": None,
            "realism": None,
            "seconds": 0.0,
            "wall_seconds": time.perf_counter() - start,
        }, None
    wall = time.perf_counter() - start
    judged = judge_realism(world, result.images)
    record |= {
        "metric": result.metric[0] if result.metric else None,
        "realism": judged,
        "extra_metrics": {name: values[0] for name, values in result.extra_metrics.items()},
        "nfe": result.nfe,
        "seconds": result.seconds + result.decode_seconds,
        "wall_seconds": wall,
    }
    return record, result.images


def judge_realism(world: World, images: torch.Tensor) -> float | None:
    """The first image's realism (guidance.worlds.base.realism).

    Args:
        world: the world whose judge scores it.
        images: (B, 3, H, W) in [-1, 1]; only the first is scored.

    Returns:
        The realism, or None where the world's judge has no weights.
    """
    try:
        return realism(world, images)[0]
    except WeightsUnavailableError:
        return None


def run_share(
    world: World, plan: SweepPlan, store: CellStore, cells: list[Cell], progress: Callable[[int, int], None] | None = None
) -> list[dict]:
    """This process's cells, each recorded as soon as it is done (and its image kept on the grid's seeds).

    Args:
        world, plan: what to run.
        store: the sweep's folder.
        cells: this process's share.
        progress: called with (done, len(cells)) after each cell.

    Returns:
        The records, in the order of `cells`.
    """
    rank, records = distributed.state().process_index, []
    for done, cell in enumerate(cells, 1):
        record, image = run_cell(world, plan, cell)
        if image is not None and cell.seed in plan.grid_seeds:
            store.save_image(cell, to_pil(image)[0])
        store.append(rank, record)
        records.append(record)
        if progress is not None:
            progress(done, len(cells))
    return records


def run_sweep(
    world: World,
    plan: SweepPlan,
    folder: Path,
    *,
    force: bool = False,
    command: str = "",
    progress: Callable[[int, int], None] | None = None,
    on_start: Callable[[int, int], None] | None = None,
) -> dict | None:
    """Runs the plan's unfinished cells, shared across the launched processes; the main process gathers them and
    writes sweep.json, curves.png and grid.png in `folder`.

    Every process must call it alike. Cells finished by an earlier run into the same folder (with the same
    `plan.config()`) are kept; `force` starts over.

    Args:
        world: this process's world (on its own device).
        plan: the checked plan (plan_sweep, check_plan).
        folder: the sweep's folder, seen by every process.
        force: remove what an earlier run left there first.
        command: the command line, recorded in sweep.json.
        progress: (done, total) of this process's share after each of its cells.
        on_start: called with (this process's cells, cells finished before) before the first cell.

    Returns:
        The sweep.json document on the main process, None on the others. Raises MethodConfigError when the folder
        holds cells of other inputs (without `force`).
    """
    store, config = CellStore(folder), plan.config()
    if not force:
        store.check(config)  # on every process, before any writes, so that all raise alike
    distributed.wait()
    if distributed.is_main():
        store.start(config, force)
    distributed.wait()
    finished = store.finished()
    distributed.wait()  # every process has read before any appends
    pending = [cell for cell in plan.cells() if cell.key not in finished]
    mine = distributed.share(pending)
    if on_start is not None:
        on_start(len(mine), len(plan.cells()) - len(pending))
    start = time.perf_counter()
    records = distributed.gather(run_share(world, plan, store, mine, progress))
    seconds = time.perf_counter() - start
    if not distributed.is_main():
        return None
    everything = finished | {cell_of(record).key: record for record in records}
    store.merge(list(everything.values()))
    run = run_info(world, len(pending), len(plan.cells()) - len(pending), seconds, command)
    data = document(plan, [everything[cell.key] for cell in plan.cells()], run, realism_label(world))
    write_outputs(folder, data, plan, store)
    return data


def run_info(world: World, cells_run: int, resumed: int, seconds: float, command: str) -> dict:
    """How this run went: processes, device, threads, wall time of its cells and throughput (sweep.json's `run`).

    Args:
        world: the world it ran on (its device is recorded).
        cells_run: cells this run sampled.
        resumed: cells kept from an earlier run.
        seconds: the wall time of the cells it sampled.
        command: the command line, recorded as it was typed.
    """
    processes = distributed.processes()
    rate = cells_run / seconds if seconds > 0 and cells_run else None
    return {
        "processes": processes,
        "device": world.backbone.device.type,
        "torch_threads": torch.get_num_threads(),
        "cells_run": cells_run,
        "cells_resumed": resumed,
        "wall_seconds": seconds,
        "samples_per_second": rate,
        "samples_per_second_per_process": None if rate is None else rate / processes,
        "command": command,
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
    }


def realism_label(world: World) -> str:
    """What the realism figure is on this world (docs/methods.md, Realism): its own realism score where it has one,
    else its evaluator's top-class probability."""
    if world.realism_score is not None:
        return f"the world's realism score ({type(world.realism_score).__name__})"
    return REALISM


def summary(plan: SweepPlan, records: list[dict]) -> dict[str, dict[str, list]]:
    """Per method, per value: n, the mean metric and realism with their 95% t-intervals, the mean of each further
    metric and the mean seconds per sample (cells that diverged are counted under `diverged`).

    Args:
        plan: the sweep.
        records: every cell's record.
    """
    found = {}
    for method in plan.methods:
        series: dict[str, list] = {
            "values": list(plan.values),
            "n": [],
            "diverged": [],
            "metric": [],
            "metric_ci95": [],
            "realism": [],
            "realism_ci95": [],
            "seconds": [],
        }
        ran = [r for r in records if r["method"] == method]
        extra = sorted({name for r in ran if "error" not in r for name in r["extra_metrics"]})
        for value in plan.values:
            cells = [r for r in ran if r["value"] == value]
            good = [r for r in cells if "error" not in r]
            series["n"].append(len(good))
            series["diverged"].append(len(cells) - len(good))
            for name in ("metric", "realism"):
                figures = [r[name] for r in good if r[name] is not None]
                series[name].append(statistics.fmean(figures) if figures else None)
                interval = t_interval(figures)
                series[f"{name}_ci95"].append(None if interval is None else list(interval))
            series["seconds"].append(statistics.fmean(r["seconds"] for r in good) if good else None)
            for name in extra:
                figures = [r["extra_metrics"][name] for r in good if name in r["extra_metrics"]]
                series.setdefault(name, []).append(statistics.fmean(figures) if figures else None)
        found[method] = series
    return found


def document(plan: SweepPlan, records: list[dict], run: dict, realism_name: str) -> dict:
    """sweep.json: the sweep, its inputs, the summary per method and value, how it ran, and every cell's record.

    Args:
        plan: the sweep.
        records: every cell's record, in the plan's order.
        run: from `run_info`.
        realism_name: what the realism figure is on this world (`realism_label`).
    """
    task = spec(plan.request.task)
    return {
        "task": task.name,
        "setting": plan.setting,
        "setting_label": SWEEP_SETTINGS[plan.setting],
        "values": list(plan.values),
        "methods": list(plan.methods),
        "seeds": [plan.seeds.start, plan.seeds.stop],
        "metric_name": task.metric_label,
        "realism_name": realism_name,
        "config": plan.config(),
        "summary": summary(plan, records),
        "run": run,
        "cells": records,
    }


def comparable(data: dict) -> dict:
    """A sweep.json document without what differs between identical runs: the `run` block and the times.

    Args:
        data: a sweep.json document.

    Returns:
        A copy that equals the document of any run of the same plan, on any number of processes.
    """
    cells = [{k: v for k, v in record.items() if k not in TIMES} for record in data["cells"]]
    methods = {method: {k: v for k, v in series.items() if k not in TIMES} for method, series in data["summary"].items()}
    return {k: v for k, v in data.items() if k != "run"} | {"cells": cells, "summary": methods}


def write_outputs(folder: Path, data: dict, plan: SweepPlan, store: CellStore) -> None:
    """sweep.json, curves.png (the metric against the value, and against realism) and grid.png.

    Args:
        folder: the sweep's folder.
        data: the sweep's document (`document`).
        plan: the sweep.
        store: where the grid's images were kept.
    """
    (folder / "sweep.json").write_text(json.dumps(data, indent=1) + "\n")
    curves_figure(data).savefig(folder / "curves.png", dpi=120)
    grid_image(plan, store).save(folder / "grid.png")
