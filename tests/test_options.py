"""Options and task inputs declared once: a new method option is written in one file, its part's (its declaration reaches
Settings, LIMITS, build_method and the app's tab), a new task with a new kind of input is one spec and one energy (it
runs through run_task, and its tab has the input's widget)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import gradio as gr
import pytest
import torch
from torch import Tensor

import app
from guidance.energy import Energy
from guidance.errors import MethodConfigError
from guidance.methods import OPTIONS, Option, Settings, build_method
from guidance.methods.settings import declared
from guidance.playground.app_handlers import ExampleCache, make_run, make_sweep, make_sweep_command, request_from
from guidance.playground.launcher import WorldRegistry
from guidance.playground.stops import Stops
from guidance.playground.tasks import SPECS, TaskInput, TaskRequest, TaskSpec, preset, registered, run_task
from guidance.playground.widgets import common_inputs, method_inputs, task_inputs
from guidance.worlds import World

ROOT = Path(__file__).resolve().parents[1]

# ----------------------------------------------------------------------------- a new method option: one file

TOY = 'TOY = Option("dsg_toy_gain", 1.0, Bound(0, 4, slider=(0, 2)), param="toy_gain", label="Toy gain", step=0.1, group="gradient")'
# What guidance/methods/dsg.py holds, and what a new option (a gain on DSG's rate) makes of it: its declaration, its
# constructor parameter, its use in the step and its report. Nothing else changes anywhere.
TOY_EDITS = (
    ("\n\nclass DSG(Configurable):", f"\n{TOY}\n\n\nclass DSG(Configurable):"),
    ("options = (RATE, INTERVAL)", "options = (RATE, INTERVAL, TOY)"),
    (
        "interval: int = INTERVAL.default):",
        "interval: int = INTERVAL.default, toy_gain: float = TOY.default):\n        self.toy_gain = TOY.checked(toy_gain)",
    ),
    ("min(1.0, weight * self.rate)", "min(1.0, weight * self.rate * self.toy_gain)"),
    ('"dsg_interval": self.interval}', '"dsg_interval": self.interval, "dsg_toy_gain": self.toy_gain}'),
)


@pytest.mark.slow
def test_a_new_option_written_in_its_part_alone_reaches_settings_build_method_the_tab_and_the_run(tmp_path):
    """A copy of the repository with one more option written into dsg.py alone; tests/one_file_option.py checks there
    that it reaches LIMITS, Settings, build_method, the tab's slider, the request and the run."""
    copy = tmp_path / "repo"
    for folder in ("guidance", "conditions", "tests"):
        shutil.copytree(ROOT / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for file in ("app.py", "pyproject.toml"):
        shutil.copy(ROOT / file, copy / file)
    (copy / "assets").symlink_to(ROOT / "assets")
    dsg = copy / "guidance" / "methods" / "dsg.py"
    text = dsg.read_text()
    for old, new in TOY_EDITS:
        assert text.count(old) == 1, f"the toy option's edit no longer applies to guidance/methods/dsg.py: {old!r}"
        text = text.replace(old, new)
    dsg.write_text(text)
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "tests/one_file_option.py"]
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and " passed" in done.stdout, done.stdout[-4000:] + done.stderr[-4000:]
    assert "dsg_toy_gain" not in OPTIONS  # the option lives in the copy alone


def test_an_option_declared_twice_differently_is_refused():
    same = Option("gain", 1.0)
    assert declared([same, same]) == {"gain": same}  # two parts may share one declaration (TINY_DECODER)
    with pytest.raises(MethodConfigError, match="'gain' is declared twice, differently"):
        declared([same, Option("gain", 2.0)])


def test_the_shipped_options_are_what_the_constructors_were_given_by_hand():
    """Each part receives its declared options: FIGD no checkpointing, DPS its constant rule under "auto", GFCG's fused
    variant only on Autoguidance."""
    settings = Settings(
        scale=0.3,
        window=(0.1, 0.9),
        repeats=2,
        travel_window=(0.2, 0.5),
        fisher_weight="flat-prior",
        checkpointing=True,
        tiny_decoder=True,
        dsg_rate=0.3,
        dsg_interval=2,
        cfg_scale=3.0,
        gfcg_fused=True,
        gfcg_interval=2,
    )
    figd = build_method("figd+dsg", settings)
    assert (figd.fisher_weight, figd.checkpointing, figd.tiny_decoder, figd.scale) == ("flat-prior", False, True, 0.3)
    assert (figd.window.start, figd.window.end, figd.time_travel.repeats, figd.time_travel.window.end) == (0.1, 0.9, 2, 0.5)
    assert (figd.dsg.rate, figd.dsg.interval, figd.predictor.scale) == (0.3, 2, 3.0)  # CFG under a gradient method
    assert build_method("dps", settings).step_rule == "constant" and build_method("freedom", settings).checkpointing
    assert build_method("dps", replace(settings, step_rule="alpha")).step_rule == "alpha"
    classifier = object()
    assert build_method("atg+gfcg", settings, classifier).predictor.fused
    gfcg = build_method("cfg+gfcg", replace(settings, gfcg_one_call=False), classifier).predictor
    assert not gfcg.fused and (gfcg.base, gfcg.base_scale, gfcg.interval, gfcg.tiny_decoder) == ("cfg", 3.0, 2, True)


def widgets_of(blocks: gr.Blocks, kind: type) -> dict[str, Any]:
    return {block.label: block for block in blocks.blocks.values() if isinstance(block, kind)}


def built_tab(task: TaskSpec, tmp_path: Path) -> gr.Blocks:
    """The app's tab for `task` (app.build_tab, with the app's handlers), in a Blocks of its own."""
    worlds, cache = WorldRegistry(tmp_path / "no-world"), ExampleCache("embedded", False, None)
    with gr.Blocks() as demo:
        backbone, status_line = gr.Dropdown(["embedded"], value="embedded"), gr.Markdown()
        handlers = (
            make_run(task, worlds, Stops(), tmp_path),
            make_sweep(task, worlds, Stops(), tmp_path),
            make_sweep_command(task, worlds),
        )
        app.build_tab(task, backbone, {"choices": [("(unconditional)", "")], "value": ""}, status_line, *handlers, cache)
    return demo


def tab_values(task: TaskSpec, **given: Any) -> dict[str, Any]:
    """A tab's raw widget values at their defaults, as its endpoint receives them, with `given` ones."""
    with gr.Blocks():
        inputs = task_inputs(task) | common_inputs(task, {"choices": [""], "value": ""}) | method_inputs(task)
    return {name: component.value for name, component in inputs.items()} | given


# ----------------------------------------------------------------------------- a new task with a new kind of input


@dataclass(frozen=True)
class Brightness(TaskInput):
    """A number: the mean brightness the images should reach, in [-1, 1]."""

    def widgets(self, spec: TaskSpec, first: dict[str, Any]) -> dict[str, Any]:
        return {"brightness": gr.Number(first["brightness"], minimum=-1, maximum=1, label="Target brightness")}

    def parse(self, spec: TaskSpec, values: dict[str, Any]) -> dict[str, Any]:
        value = float(values["brightness"])
        if not -1 <= value <= 1:
            raise MethodConfigError(f"the target brightness lies in [-1, 1], got {value:g}")
        return {"brightness": value}


class BrightnessEnergy(Energy):
    name, metric_name = "brightness", "brightness_gap"

    def __init__(self, target: float):
        super().__init__()
        self.target = target

    def forward(self, images: Tensor) -> Tensor:
        return (images.mean((1, 2, 3)) - self.target) ** 2


@dataclass
class BrightnessRequest(TaskRequest):
    """The brightness task's request: TaskRequest's fields and the input's."""

    brightness: float = 0.0


def brightness_energy(world: World, request: BrightnessRequest, artefacts: dict) -> tuple[Energy, None]:
    return BrightnessEnergy(request.brightness), None


def brightness_task(choices: tuple[str, ...] = ("plain", "freedom")) -> TaskSpec:
    return TaskSpec(
        name="brightness",
        title="Brightness",
        intro="Reach a target brightness.",
        inputs=(Brightness(),),
        choices=choices,
        selected=choices,
        choices_label="Methods",
        preset=Settings(scale=0.5, step_rule="normalized"),
        energy=brightness_energy,
        example_fields=("brightness",),
        examples=((0.5,), (-0.5,)),
        metric_label="brightness gap",
        sweeps=("scale", "steps"),
        request=BrightnessRequest,
    )


@pytest.fixture(scope="module")
def world(tiny_sd) -> World:
    return World(tiny_sd, None, None, None, classifier=None, evaluator=None)


def test_a_new_task_with_a_new_input_runs_through_run_task(world):
    with registered(brightness_task()):
        request = BrightnessRequest("brightness", ["plain", "freedom"], steps=3, settings=preset("brightness"), brightness=0.8)
        outcome = run_task(world, request)
        assert [label for label, _ in outcome.results] == ["plain", "freedom"]
        (_, plain), (_, guided) = outcome.results
        assert plain.metric_name == "brightness_gap"
        assert plain.metric == pytest.approx(
            ((plain.images.mean((1, 2, 3)) - 0.8) ** 2).tolist(), rel=1e-4
        )  # the energy measured
        assert not torch.equal(plain.images, guided.images)  # the energy guided FreeDoM
        assert guided.options["scale"] == 0.5
    assert "brightness" not in [task.name for task in SPECS]
    with pytest.raises(MethodConfigError, match="unknown task 'brightness'"):
        TaskRequest("brightness", ["plain"])


def test_the_new_input_has_its_widget_in_the_tab_and_its_value_reaches_the_request(tmp_path):
    with registered(brightness_task()) as task:
        assert widgets_of(built_tab(task, tmp_path), gr.Number)["Target brightness"].value == 0.5  # the first example's
        request = request_from(task, tab_values(task, brightness=-0.25, steps=4))
        assert (
            isinstance(request, BrightnessRequest)
            and request.brightness == -0.25
            and request.steps == 4
            and request.methods == ["plain", "freedom"]
        )
        with pytest.raises(MethodConfigError, match="target brightness"):
            request_from(task, tab_values(task, brightness=3))
