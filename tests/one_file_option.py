"""Run by test_options.py, in a copy of the repository whose guidance/methods/dsg.py alone declares one more option,
`dsg_toy_gain` (a gain on DSG's rate; test_options.TOY_EDITS): checks that it reaches LIMITS, Settings, build_method,
the tab's slider, the request and the run. Not collected on its own (no test_ prefix): in this repository the option
does not exist."""

from __future__ import annotations

from dataclasses import replace

import gradio as gr
import pytest
import torch
from test_options import brightness_task, built_tab, tab_values, widgets_of

from guidance.errors import MethodConfigError
from guidance.methods import LIMITS, Bound, Settings, build_method
from guidance.playground.app_handlers import request_from
from guidance.playground.tasks import registered, run_task
from guidance.worlds import World


def test_the_option_reaches_the_limits_and_the_settings():
    assert LIMITS["dsg_toy_gain"] == Bound(0, 4, slider=(0, 2))
    assert Settings().dsg_toy_gain == 1.0 and Settings(dsg_toy_gain=2.5).dsg_toy_gain == 2.5
    assert replace(Settings(scale=0.1), dsg_toy_gain=3.0).dsg_toy_gain == 3.0
    with pytest.raises(MethodConfigError, match=r"dsg_toy_gain must lie in \[0, 4\], got 5"):
        Settings(dsg_toy_gain=5.0)


def test_build_method_hands_it_to_its_part():
    method = build_method("figd+dsg", Settings(dsg_toy_gain=2.5, scale=0.3, dsg_rate=0.2, repeats=2))
    assert method.dsg.toy_gain == 2.5 and method.dsg.rate == 0.2 and method.scale == 0.3 and method.time_travel.repeats == 2
    assert method.describe()["dsg_toy_gain"] == 2.5


def test_the_tab_has_its_slider_and_its_value_reaches_the_run(tiny_sd, tmp_path):
    world = World(tiny_sd, None, None, None, classifier=None, evaluator=None)
    with registered(brightness_task(("plain", "freedom+dsg"))) as task:
        sliders = widgets_of(built_tab(task, tmp_path), gr.Slider)
        assert sliders["Toy gain"].value == 1.0 and (sliders["Toy gain"].minimum, sliders["Toy gain"].maximum) == (0, 2)
        request = request_from(task, tab_values(task, dsg_toy_gain=1.5, brightness=0.8, steps=2, eta=1.0))
        assert request.settings.dsg_toy_gain == 1.5
        with pytest.raises(MethodConfigError, match="dsg_toy_gain must lie in"):
            request_from(task, tab_values(task, dsg_toy_gain=9))
        guided = [
            run_task(world, replace(request, methods=["freedom+dsg"], settings=replace(request.settings, dsg_toy_gain=gain)))
            for gain in (1.0, 1.5)
        ]
        (_, plain), (_, faster) = guided[0].results[0], guided[1].results[0]
        assert faster.options["dsg_toy_gain"] == 1.5
        assert not torch.equal(plain.images, faster.images)  # the gain acts on DSG's rate
