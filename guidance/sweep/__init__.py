"""Sweeps at scale: `python -m guidance.sweep TASK ...` (guidance/sweep/cli.py), or from Python:

    plan = plan_sweep(*base_request(SweepInputs("face")), "scale", "0.02:0.4:8", ("freedom", "figd"), range(64))

(with the recorded inputs passed as `inputs=`), then `check_plan(world, plan)` and `run_sweep(world, plan, folder)`.
A cell is one sample, (method, value, seed), through guidance.playground.tasks.run_task; the cells are shared across the
processes of `accelerate launch` (guidance.distributed), and a folder's finished cells are kept across runs.
"""

from guidance.playground.tasks.command import SweepInputs, sweep_command
from guidance.sweep.plan import MAX_CELLS, Cell, SweepPlan, base_request, check_plan, parse_seeds, plan_sweep
from guidance.sweep.run import TIMES, comparable, run_cell, run_sweep

__all__ = [
    "MAX_CELLS",
    "TIMES",
    "Cell",
    "comparable",
    "SweepInputs",
    "SweepPlan",
    "base_request",
    "check_plan",
    "parse_seeds",
    "plan_sweep",
    "run_cell",
    "run_sweep",
    "sweep_command",
]
