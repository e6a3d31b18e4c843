"""A task's widgets, read from declarations: the method options its methods declare (guidance.methods.options), the
inputs it takes (guidance.playground.tasks.inputs) and the run's options every tab shares; and their raw values back
as Settings. app.py lays these out in the task's tab.

A method option's widget: a slider over its bound, a radio over its choices, a checkbox for a flag, two sliders
("<name>_start", "<name>_end", the name less "_window") for a window. Build them inside a gradio Blocks.

Wherever a function takes them, `spec` is the task's TaskSpec and `values` a tab's raw widget values by API parameter
name; widgets come back as Components, keyed by API parameter name.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import gradio as gr

from guidance.methods import LIMITS, OPTIONS, Option, Settings
from guidance.methods.options import GROUPS, RUN_OPTIONS
from guidance.playground.tasks import TaskSpec
from guidance.worlds.registry import EMBEDDED, WorldRegistry

Components = dict[str, gr.components.Component]
ABSENT = object()  # an option without a widget in the tab


def slider(name: str, value: float, **kwargs: Any) -> gr.Slider:
    """A slider over the range the library offers for an option (its Bound), with the option's step, label and info.

    Args:
        name: the option's name (guidance.methods.OPTIONS, LIMITS).
        value: where the slider starts.
        **kwargs: further gr.Slider arguments, which take precedence (a label, an elem_id).

    Returns:
        The slider.
    """
    option = OPTIONS[name]
    low, high = LIMITS[name].shown
    options = {"step": option.step, "label": option.label, **({"info": option.info} if option.info else {}), **kwargs}
    return gr.Slider(low, high, value=value, **options)


def widget_keys(option: Option) -> tuple[str, ...]:
    """The API parameter names of an option's widgets.

    Args:
        option: a method option.

    Returns:
        ("<prefix>_start", "<prefix>_end") for a window, else the option's name alone.
    """
    if option.window:
        prefix = option.name.removesuffix("_window")
        return (f"{prefix}_start", f"{prefix}_end")
    return (option.name,)


def option_widgets(option: Option, value: Any) -> Components:
    """The widget(s) of a method option.

    Args:
        option: the method option.
        value: where they start: a (start, end) pair for a window.

    Returns:
        The widgets.
    """
    if option.window:
        return {
            key: gr.Slider(0, 1, value=part, step=option.step, label=f"{option.label} {end}")
            for key, part, end in zip(widget_keys(option), value, ("start", "end"))
        }
    if isinstance(option.default, bool):
        return {option.name: gr.Checkbox(value, label=option.label)}
    if option.choices is not None:
        return {option.name: gr.Radio(list(option.choices), value=value, label=option.label)}
    return {option.name: slider(option.name, value)}


def option_value(option: Option, values: dict[str, Any]) -> Any:
    """An option's value from a tab's raw widget values.

    Args:
        option: the method option.

    Returns:
        The value, typed as Settings takes it; ABSENT where the tab has no widget for it.
    """
    keys = widget_keys(option)
    if not all(key in values for key in keys):
        return ABSENT
    if option.window:
        return tuple(float(values[key]) for key in keys)
    raw = values[option.name]
    if isinstance(option.default, bool):
        return bool(raw)
    return raw if option.choices is not None else float(raw)


def settings_from(spec: TaskSpec, values: dict[str, Any]) -> Settings:
    """The task's preset with the values of the option widgets its tab has.

    Returns:
        The Settings.

    Raises:
        MethodConfigError: a value that Settings rejects.
    """
    overrides = {name: option_value(option, values) for name, option in OPTIONS.items() if option.setting}
    return replace(spec.preset, **{name: value for name, value in overrides.items() if value is not ABSENT})


def method_inputs(spec: TaskSpec) -> Components:
    """The widgets of the options the task's methods declare (and the run's options of those sections: the strength
    with the gradient methods), section by section (guidance.methods.options.GROUPS), at the task's preset.

    Returns:
        The widgets; none where its methods declare no option with a widget.
    """
    shown = [option for option in spec.options if option.group]
    groups = [*GROUPS, *dict.fromkeys(o.group for o in shown if o.group not in GROUPS)]
    present = {option.group for option in shown}
    listed = [option for option in RUN_OPTIONS if option.group in present] + shown
    inputs: Components = {}
    for group in groups:
        for option in (o for o in listed if o.group == group):
            inputs |= option_widgets(option, getattr(spec.preset, option.name) if option.setting else option.default)
    for option in listed:
        if option.excludes in inputs:  # the two exclude each other: ticking one unticks the other
            ticked, other = inputs[option.name], inputs[option.excludes]
            for a, b in ((ticked, other), (other, ticked)):
                a.input(lambda on, kept: kept and not on, [a, b], b, api_visibility="private", queue=False)
    return inputs


def task_inputs(spec: TaskSpec) -> Components:
    """The widgets of the task's inputs (uploads, map options, ...), at their first example's values.

    Returns:
        The widgets, built by each input's TaskInput.widgets.
    """
    inputs: Components = {}
    for kind in spec.all_inputs:
        inputs |= kind.widgets(spec, spec.first)
    return inputs


def condition_widget(spec: TaskSpec, worlds: WorldRegistry, key: str) -> dict[str, Any]:
    """Choices and value of the prompt / class widget for a world.

    Args:
        worlds: the app's worlds.
        key: the world's key in `worlds`.

    Returns:
        gr.Dropdown's `choices` and `value`.
    """
    return spec.conditioning.choices(spec, list(worlds.class_names(key)), key == EMBEDDED)


def common_inputs(spec: TaskSpec, condition: dict[str, Any]) -> Components:
    """The widgets every tab shares: prompt or class, methods (and what runs with them), samples, seed, steps (NFE),
    CFG scale, eta.

    Args:
        condition: the condition widget's choices and value (`condition_widget`).

    Returns:
        The widgets.
    """
    inputs: Components = {
        "condition": gr.Dropdown(
            label=spec.conditioning.label,
            allow_custom_value=True,
            info="a class of the embedded world, or free text for Stable Diffusion",
            **condition,
        ),
        "methods": gr.Dropdown(list(spec.choices), value=list(spec.selected), multiselect=True, label=spec.choices_label),
    }
    for kind in spec.all_inputs:
        inputs |= kind.run_widgets(spec)
    runs, seed = spec.runs, LIMITS["seed"]
    with gr.Row():
        inputs["samples"] = slider("samples", 1, elem_id=f"{spec.name}-samples")
        inputs["seed"] = gr.Number(0, precision=0, minimum=seed.low, maximum=seed.high, label=OPTIONS["seed"].label)
        inputs[runs.steps_key] = slider("steps", spec.steps, label=runs.steps_label, elem_id=f"{spec.name}-steps")
    with gr.Row():
        inputs["cfg_scale"] = slider("cfg_scale", spec.preset.cfg_scale)
        inputs["eta"] = slider("eta", spec.eta)
    return inputs


def has_method_settings(spec: TaskSpec) -> bool:
    """Whether the task's tab has method settings to show."""
    return any(option.group for option in spec.options)


__all__ = [
    "common_inputs",
    "condition_widget",
    "has_method_settings",
    "method_inputs",
    "option_value",
    "option_widgets",
    "settings_from",
    "slider",
    "task_inputs",
    "widget_keys",
]
