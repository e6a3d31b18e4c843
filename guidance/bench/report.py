"""Tables for stdout and docs/benchmarks.md, regenerated from the suites' JSON files.

    python -m guidance.bench report JSON... [--out docs/benchmarks.md] [--figures docs/figures] [--notes MD]

The plots are redrawn from the JSON into --figures, so the report needs nothing but the JSON files.
--notes adds a hand-written reading of the figures (a Markdown file), marked as such, after the goals.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from guidance.bench.common import ROW_KEYS, VERDICTS
from guidance.bench.machine import machine_label
from guidance.bench.plots import plot, run_mode
from guidance.bench.suites import SUITES


def _cell(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell(v) for v in value)
    return "" if value is None else str(value)


def table(rows: list[dict], columns: list[str] | None = None) -> str:
    """A Markdown pipe table.

    Args:
        rows: one dict per row.
        columns: the columns in order; by default the documented row keys first, then any others as they occur,
            leaving out nested figures (per-sample values, options: they stay in the JSON).
    """
    if not rows:
        return "(no rows)"
    if columns is None:
        present = list(dict.fromkeys(k for r in rows for k, v in r.items() if not isinstance(v, dict)))
        columns = [k for k in ROW_KEYS if k in present] + [k for k in present if k not in ROW_KEYS]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


GOAL_COLUMNS = ["goal", "target", "measured", "95% interval", "n", "verdict"]


def goal_cells(found: dict) -> dict:
    """A goal as table cells: its interval with the unit, n with what was counted (samples, rounds), its verdict.
    A goal without a verdict reads "met" / "not met" from `met`."""
    interval, n = found.get("interval"), found.get("n")
    return found | {
        "verdict": found.get("verdict") or ("met" if found["met"] else "not met"),
        "95% interval": "" if interval is None else f"[{interval[0]:.4g}, {interval[1]:.4g}]{found.get('unit', '')}",
        "n": "" if n is None else f"{n} {found.get('over') or ''}".strip(),
    }


def goals_table(goals: list[dict]) -> str:
    """The goals (guidance.bench.common.goal_told, goal_over) as a Markdown table of GOAL_COLUMNS."""
    return table([goal_cells(g) for g in goals], GOAL_COLUMNS)


def verdict_counts(goals: list[dict]) -> str:
    """How many goals got each verdict, e.g. "2 met, 1 undecided (of 3)"."""
    verdicts = [goal_cells(g)["verdict"] for g in goals]
    counts = [f"{verdicts.count(v)} {v}" for v in VERDICTS if v in verdicts]
    return f"{', '.join(counts) or 'none'} (of {len(goals)})"


PLOTTED = ("paths",)  # config entries that a plot shows (the JSON keeps them), left out of the printed config


def describe(data: dict) -> str:
    """The header every printed or written result starts with."""
    mode = run_mode(data)
    lines = [
        f"suite `{data['suite']}` ({mode}), backbone `{data['backbone']}` on `{data['device']}`",
        f"machine: {machine_label(data['machine'])}",
        f"command: `{data['command']}` ({data['wall_seconds']:.0f} s, {data['created']})",
        f"config: {json.dumps({key: value for key, value in data['config'].items() if key not in PLOTTED})}",
    ]
    return "\n".join(["- " + line for line in lines] + [f"- note: {note}" for note in data["notes"]])


def section(data: dict, out: Path, figures: Path) -> str:
    """One suite's part of the report: what it measures, where, its goals, its rows and its plots.

    Args:
        data: the suite's JSON document.
        out: the report's path (image links are relative to its folder).
        figures: where the plots are written.
    """
    mode = run_mode(data)
    doc = (SUITES[data["suite"]].__doc__ or "").strip()
    grids = data["config"].get("grids")
    title = f"## `{data['suite']}` - {data['backbone']}, {mode}" + (f", grids {', '.join(grids)}" if grids else "")
    parts = [title, doc, describe(data)]
    if data["goals"]:
        parts.append("Goals:\n\n" + goals_table(data["goals"]))
    parts.append("Results:\n\n" + table(data["rows"]))
    images = plot(data, figures) + [Path(p) for p in data.get("images", [])]
    parts += [f"![{p.stem}]({os.path.relpath(p, out.parent)})" for p in images]
    return "\n\n".join(parts)


def run_summary(data: dict) -> dict:
    """One line per run: what, where, how long, how many goals got each verdict."""
    return {
        "suite": data["suite"],
        "backbone": data["backbone"],
        "mode": run_mode(data),
        "device": data["device"],
        "torch threads": data["machine"]["torch_threads"],
        "load at start, end": f"{data['machine'].get('load_1m')}, {data['machine'].get('load_1m_end')}",
        "wall seconds": round(data["wall_seconds"]),
        "goals": verdict_counts(data["goals"]),
    }


SEVERAL_PROCESSES = """## On several GPUs or nodes

`world`, `solvers`, `gfcg` and `dsg` share their samples across the processes of `accelerate launch` (or
`torchrun`): each process samples its share of the batches or seeds on its own GPU, every process gets every
result, and process 0 writes the JSON, whose `processes` says how many took part. Every figure but the timings is
computed from the gathered samples (the Frechet distances too), so it equals one process's, bit for bit on a CPU
with the same `--threads` per process (tests/test_bench.py checks `solvers` on 2 processes). The timing goals are
best read from one process alone.

```
accelerate config                                                      # once per machine
accelerate launch --num_processes 4 -m guidance.bench world --device cuda --json runs/bench/world.json
python -m torch.distributed.run --nproc_per_node 2 -m guidance.bench solvers --quick --threads 1 --json runs/bench/solvers.json
```

The sweep command shares its cells the same way, on one node or on several under Slurm (README, Sweeps at
scale): `accelerate launch --num_processes N -m guidance.sweep TASK ... --out DIR`. Its `DIR/sweep.json` records
`run.processes`, `run.wall_seconds` and `run.samples_per_second_per_process`: the per-GPU throughput and the wall
time of a 64-seed x 8-value x 3-method sweep on 1 and on N processes are to be read from two such runs (none has
run on GPUs yet)."""


def write_report(paths: list[Path], out: Path, figures: Path, notes: Path | None = None) -> None:
    """The benchmarks page: how to regenerate it, the runs, the goals at a glance, the notes, one section per run.

    Args:
        paths: the suites' JSON documents.
        out: the Markdown file to write (docs/benchmarks.md).
        figures: where the plots go.
        notes: a hand-written Markdown reading of the figures, included after the goals, or None.
    """
    documents = [json.loads(Path(p).read_text()) for p in paths]
    label = lambda d: f"{d['suite']} ({d['backbone']}, {run_mode(d)})"  # noqa: E731
    summary = [{"suite": label(d), **goal_cells(g)} for d in documents for g in d["goals"]]
    again = f"python -m guidance.bench report {' '.join(map(str, paths))} --out {out} --figures {figures}"
    again += f" --notes {notes}" if notes else ""
    header = [
        "# Benchmarks",
        "Generated by `python -m guidance.bench report` from the JSON files of the runs below (each section gives "
        "the command that produced it). Every figure is measured, on the machine named with it; "
        + (
            "only the section 'Reading the figures' is written by hand, from these figures."
            if notes
            else "nothing here is typed in by hand."
        ),
        "Timing conventions: `seconds_per_image` is the summed wall time of the timed sampling steps divided by the "
        "number of images; `cpu_seconds_per_image` the same in the process's CPU time (on a CPU other jobs share, "
        "the work without the waiting); `ms_per_step` is one sampling step of a whole batch; every method runs once, "
        "untimed, before it is measured. `energy` is the mean over seeds of the final energy, `energy_std` its spread "
        "(standard deviation over seeds). `fd` is the Frechet distance in the evaluator's feature space to as "
        "many held-out renders as there are samples; `fd_floor` is the same distance between two disjoint sets "
        "of renders of that size. `peak_mem_mb` is the peak above the start of a run: the CUDA allocator's peak "
        "on a GPU; on a CPU the growth of the process's peak resident set (Linux's VmHWM, reset at the start), "
        "which leaves out memory the allocator reuses from earlier runs.",
        "To regenerate everything (the runs, then this file and its plots):\n\n```\n"
        + "\n".join([d["command"] for d in documents] + [again])
        + "\n```",
        SEVERAL_PROCESSES,
        "## Runs\n\n" + table([run_summary(d) for d in documents]),
        '## Goals at a glance\n\nEach goal\'s verdict is "met" or "not met" when its 95% interval (a bootstrap over '
        "the samples, or over interleaved timing rounds: `n` says which and how many) lies wholly on one side of the "
        'bar, "undecided" when the interval spans the bar, "indicative" for a figure too noisy at this size to '
        "decide anything; a goal without an interval is decided by its figure alone.\n\n"
        + table(summary, ["suite", *GOAL_COLUMNS]),
    ]
    if notes:
        header.append(
            f"## Reading the figures\n\n*Written by hand from the figures below; source: `{notes}`.*\n\n"
            + Path(notes).read_text().strip()
        )
    out.write_text("\n\n".join(header + [section(d, out, figures) for d in documents] + [not_run(documents)]) + "\n")


def not_run(documents: list[dict]) -> str:
    """The suites without a run in this report, with the command that would run them."""
    done = {d["suite"] for d in documents}
    missing = [
        f"- {(module.__doc__ or name).strip().splitlines()[0]} Command: "
        f"`python -m guidance.bench {name}{' --device cuda' if name == 'gpu' else ''} --json runs/bench/{name}.json`"
        for name, module in SUITES.items()
        if name not in done
    ]
    return "## Suites without a run here\n\n" + ("\n".join(missing) if missing else "None.")


def main(argv: list[str] | None = None) -> int:
    """`python -m guidance.bench report JSON... [--out] [--figures] [--notes]`; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m guidance.bench report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("json", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--figures", type=Path, default=Path("docs/figures"))
    parser.add_argument("--notes", type=Path, help="a Markdown reading of the figures, included after the goals")
    args = parser.parse_args(argv)
    write_report(args.json, args.out, args.figures, args.notes)
    print(f"wrote {args.out} and its plots under {args.figures}")
    return 0
