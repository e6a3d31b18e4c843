"""Options and task inputs declared once: a new method option is one class (its declaration reaches Settings, LIMITS,
build_method and the app's tab), a new task with a new kind of input is one spec and one energy (it runs through
run_task, and its tab has the input's widget)."""
from __future__ import annotations

from collections.abc import Iterator
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
from guidance.methods import LIMITS, OPTIONS, Bound, FreeDoM, Option, Settings, build_method, register_method, unregister_method
from guidance.playground.app_handlers import ExampleCache, make_run, make_sweep, make_sweep_command, request_from
from guidance.playground.launcher import WorldRegistry
from guidance.playground.stops import Stops
from guidance.playground.tasks import SPECS, TaskInput, TaskRequest, TaskSpec, preset, registered, run_task
from guidance.playground.widgets import common_inputs, method_inputs, task_inputs
from guidance.worlds import World

# ----------------------------------------------------------------------------- a new method option: one class


class Toy(FreeDoM):
    """FreeDoM with one more option, declared here and nowhere else: a gain on the step size."""

    name = "toy"
    options = (*FreeDoM.options, Option("toy_gain", 1.0, Bound(0, 4, slider=(0, 2)), label="Toy gain", step=0.1, group="gradient"))

    def __init__(self, *args, toy_gain: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.toy_gain = toy_gain

    def weight(self, ctx) -> float:
        return self.toy_gain

    def describe(self) -> dict:
        return {**super().describe(), "toy_gain": self.toy_gain}


@pytest.fixture
def toy_method() -> Iterator[type[Toy]]:
    register_method("toy", Toy)
    try:
        yield Toy
    finally:
        unregister_method("toy")
    assert "toy_gain" not in LIMITS and "toy_gain" not in OPTIONS and not hasattr(Settings(), "toy_gain")


def test_a_declared_option_reaches_the_limits_the_settings_and_the_constructor(toy_method):
    assert LIMITS["toy_gain"] == Bound(0, 4, slider=(0, 2))
    assert Settings().toy_gain == 1.0 and Settings(toy_gain=2.5).toy_gain == 2.5
    assert replace(Settings(scale=0.1), toy_gain=3.0).toy_gain == 3.0
    with pytest.raises(MethodConfigError, match=r"toy_gain must lie in \[0, 4\], got 5"):
        Settings(toy_gain=5.0)
    method = build_method("toy+dsg", Settings(toy_gain=2.5, scale=0.3, dsg_rate=0.2, repeats=2))
    assert isinstance(method, Toy) and method.toy_gain == 2.5 and method.scale == 0.3
    assert method.dsg.rate == 0.2 and method.time_travel.repeats == 2
    with pytest.raises(MethodConfigError, match="exists already"):
        register_method("freedom", Toy)


def test_the_shipped_options_are_what_the_constructors_were_given_by_hand():
    """Each part receives its declared options: FIGD no checkpointing, DPS its constant rule under "auto", GFCG's fused
    variant only on Autoguidance."""
    settings = Settings(scale=0.3, window=(0.1, 0.9), repeats=2, travel_window=(0.2, 0.5), fisher_weight="flat-prior", checkpointing=True,
                        tiny_decoder=True, dsg_rate=0.3, dsg_interval=2, cfg_scale=3.0, gfcg_fused=True, gfcg_interval=2)  # fmt: skip
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
        handlers = make_run(task, worlds, Stops(), tmp_path), make_sweep(task, worlds, Stops(), tmp_path), make_sweep_command(task, worlds)
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


def brightness_energy(world: World, request: TaskRequest, artefacts: dict) -> tuple[Energy, None]:
    return BrightnessEnergy(request.values["brightness"]), None


def brightness_task(choices: tuple[str, ...] = ("plain", "freedom")) -> TaskSpec:
    return TaskSpec(
        name="brightness", title="Brightness", intro="Reach a target brightness.", inputs=(Brightness(),), choices=choices,
        selected=choices, choices_label="Methods", preset=Settings(scale=0.5, step_rule="normalized"), energy=brightness_energy,
        example_fields=("brightness",), examples=((0.5,), (-0.5,)), metric_label="brightness gap", sweeps=("scale", "steps"),
    )  # fmt: skip


@pytest.fixture(scope="module")
def world(tiny_sd) -> World:
    return World(tiny_sd, None, None, None, classifier=None, evaluator=None)


def test_a_new_task_with_a_new_input_runs_through_run_task(world):
    with registered(brightness_task()):
        request = TaskRequest("brightness", ["plain", "freedom"], steps=3, settings=preset("brightness"), values={"brightness": 0.8})
        outcome = run_task(world, request)
        assert [label for label, _ in outcome.results] == ["plain", "freedom"]
        (_, plain), (_, guided) = outcome.results
        assert plain.metric_name == "brightness_gap"
        assert plain.metric == pytest.approx(((plain.images.mean((1, 2, 3)) - 0.8) ** 2).tolist(), rel=1e-4)  # the energy measured
        assert not torch.equal(plain.images, guided.images)  # the energy guided FreeDoM
        assert guided.options["scale"] == 0.5
    assert "brightness" not in [task.name for task in SPECS]
    with pytest.raises(MethodConfigError, match="unknown task 'brightness'"):
        TaskRequest("brightness", ["plain"])


def test_the_new_input_has_its_widget_in_the_tab_and_its_value_reaches_the_request(tmp_path):
    with registered(brightness_task()) as task:
        assert widgets_of(built_tab(task, tmp_path), gr.Number)["Target brightness"].value == 0.5  # the first example's
        request = request_from(task, tab_values(task, brightness=-0.25, steps=4))
        assert request.values == {"brightness": -0.25} and request.steps == 4 and request.methods == ["plain", "freedom"]
        with pytest.raises(MethodConfigError, match="target brightness"):
            request_from(task, tab_values(task, brightness=3))


def test_a_declared_option_has_its_slider_in_the_tab_of_a_task_offering_the_method(toy_method, tmp_path, world):
    with registered(brightness_task(("plain", "toy", "toy+dsg"))) as task:
        sliders = widgets_of(built_tab(task, tmp_path), gr.Slider)
        assert sliders["Toy gain"].value == 1.0 and (sliders["Toy gain"].minimum, sliders["Toy gain"].maximum) == (0, 2)
        assert {"Time-travel repeats", "DSG interval (guide every n steps)", "Guidance strength (x each method's preset)"} <= set(sliders)
        request = request_from(task, tab_values(task, toy_gain=1.5, brightness=0.8, steps=2, eta=1.0))
        assert request.settings.toy_gain == 1.5
        with pytest.raises(MethodConfigError, match="toy_gain must lie in"):
            request_from(task, tab_values(task, toy_gain=9))
        options = {label: result.options for label, result in run_task(world, replace(request, methods=["toy"])).results}
        assert options["toy"]["toy_gain"] == 1.5
    assert not any(task.name == "brightness" for task in SPECS)
