"""The playground's tasks, each declared once as a TaskSpec (catalog.py), and `run_task`, which runs one.

The app builds a tab per spec and wires its widgets to `run_task`; the benchmarks and guidance.sweep call it too.
    spec.py      TaskSpec, TaskRequest (and ReferenceRequest, ControlRequest, SolverRequest), TaskOutcome, the tasks by name (register_task, spec, preset)
    inputs.py    the kinds of input a task takes: widgets, parsing, what the sweep command takes for each
    energies.py  the tasks' energies
    catalog.py   the shipped tasks (face, style, control map, classes, solvers)
    run.py       run_task and the per-method settings
    sweep.py     sweeps of one setting
"""

from __future__ import annotations

from guidance.playground.tasks.catalog import CLASS_METHODS, ENERGY_METHODS
from guidance.playground.tasks.energies import EXTRA_TERMS, class_energy, control_energy, reference_energy, reference_task
from guidance.playground.tasks.inputs import (
    EXAMPLES,
    EXTRAS,
    GUIDED_BASES,
    ClassCondition,
    ControlMap,
    MethodList,
    Prompt,
    ReferenceImage,
    SchedulerList,
    TaskInput,
    file_input,
    upload,
)
from guidance.playground.tasks.run import (
    build_energy,
    method_settings,
    request_settings,
    run_eta,
    run_task,
    runs_of,
    guiding_setting,
)
from guidance.playground.tasks.spec import (
    ENERGY_SWEEPS,
    PRESETS,
    SPECS,
    TASK_SWEEPS,
    TASKS,
    ControlRequest,
    EnergyBuilder,
    ReferenceRequest,
    SolverRequest,
    TaskOutcome,
    TaskRequest,
    TaskSpec,
    make_request,
    preset,
    register_task,
    registered,
    spec,
    unregister_task,
)
from guidance.playground.tasks.sweep import (
    SWEEP_DEFAULTS,
    SWEEP_SETTINGS,
    SWEEP_VALUES,
    SweepOutcome,
    SweepProgress,
    check_sweep,
    parse_values,
    sweep,
    sweep_request,
)

__all__ = [
    "CLASS_METHODS",
    "ENERGY_METHODS",
    "ENERGY_SWEEPS",
    "EXAMPLES",
    "EXTRAS",
    "EXTRA_TERMS",
    "GUIDED_BASES",
    "PRESETS",
    "SPECS",
    "SWEEP_DEFAULTS",
    "SWEEP_SETTINGS",
    "SWEEP_VALUES",
    "TASKS",
    "TASK_SWEEPS",
    "ClassCondition",
    "ControlMap",
    "EnergyBuilder",
    "MethodList",
    "Prompt",
    "ReferenceImage",
    "SchedulerList",
    "SweepOutcome",
    "SweepProgress",
    "TaskInput",
    "TaskOutcome",
    "TaskRequest",
    "ReferenceRequest",
    "ControlRequest",
    "SolverRequest",
    "TaskSpec",
    "build_energy",
    "check_sweep",
    "class_energy",
    "control_energy",
    "file_input",
    "make_request",
    "method_settings",
    "parse_values",
    "preset",
    "reference_energy",
    "reference_task",
    "register_task",
    "registered",
    "request_settings",
    "run_eta",
    "run_task",
    "runs_of",
    "spec",
    "guiding_setting",
    "sweep",
    "sweep_request",
    "unregister_task",
    "upload",
]
