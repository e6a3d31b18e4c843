"""The kinds of input a task takes, each declared once: its widgets, how their raw values become a request's fields,
and what a sweep at scale takes for it.

A TaskSpec lists its inputs (guidance/playground/tasks/catalog.py). The app builds each one's widgets in the task's
tab (`widgets` above the shared inputs, `run_widgets` below the methods), its handlers turn the widgets' raw values
into a TaskRequest's fields (`parse`) and into the sweep command's inputs (`sweep_fields`, guidance.sweep.SweepInputs
fields), and guidance.sweep builds the request of a command line from those (`from_sweep`). Two roles have a default
where a task lists no input for them: the condition (`Prompt`, or `ClassCondition`) and what a request runs over
(`MethodList`, or `SchedulerList`: every selected solver with one method).

The fields an input gives are those of its task's request (TaskSpec.request: TaskRequest, or ReferenceRequest,
ControlRequest, SolverRequest, or the request a new task declares with its new kind of input).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from PIL import Image

from conditions.control import ANNOTATORS
from conditions.images import load_image
from guidance.errors import ImageInputError, MethodConfigError
from guidance.schedulers.grids import LABELS

EXAMPLES = Path(__file__).resolve().parents[3] / "assets" / "examples"
EXTRAS = ("face", "style")  # the reference conditions a control map can carry on top
GUIDED_BASES = ("plain", "cfg", "atg")  # what guides every solver on a task that runs over schedulers


def upload(payload: dict | None, what: str) -> Image.Image:
    """An uploaded image, read and checked by load_image.

    Args:
        payload: gradio's file payload, not preprocessed (a dict with "path"), or None where nothing was uploaded.
        what: what the user should upload, for the message ("upload {what}").

    Returns:
        The image.

    Raises:
        ImageInputError: nothing was uploaded, or load_image rejects the file.
    """
    if not payload or not payload.get("path"):
        raise ImageInputError(f"upload {what}")
    return load_image(payload["path"])


def upload_path(values: dict[str, Any], name: str) -> str | None:
    """The file path of an upload among a tab's raw values.

    Args:
        values: a tab's raw widget values, by API parameter name.
        name: the upload widget's API parameter name.

    Returns:
        The path, or None where nothing is uploaded.
    """
    return (values.get(name) or {}).get("path")


def file_input(path: str | Path) -> dict:
    """A file as a sweep's plan records it.

    Args:
        path: the file.

    Returns:
        {"path": its path, "sha256": the SHA-256 of its bytes}.

    Raises:
        MethodConfigError: there is no such file.
    """
    path = Path(path)
    if not path.is_file():
        raise MethodConfigError(f"no such file: {path}")
    return {"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


class TaskInput:
    """One kind of input; every hook gives nothing by default, and a kind overrides those it needs.

    The hooks' arguments:
        spec: the task's TaskSpec.
        first: its first example as a dict (every input's default), by API parameter name.
        values: a tab's raw widget values, by API parameter name.
        request: the task's request (TaskSpec.request: a TaskRequest or one that adds this kind's fields).
        inputs: a guidance.playground.tasks.command.SweepInputs.
        recorded: what the sweep's plan records of the inputs; `from_sweep` adds to it.
    """

    role = ""  # "condition" or "runs" where the input plays that role for its task

    def widgets(self, spec, first: dict[str, Any]) -> dict[str, Any]:
        """Its gradio components, built inside the tab above the shared inputs, at `first`'s values.

        Returns:
            The components, by API parameter name.
        """
        return {}

    def run_widgets(self, spec) -> dict[str, Any]:
        """Its gradio components built below the tab's methods selector.

        Returns:
            The components, by API parameter name.
        """
        return {}

    def parse(self, spec, values: dict[str, Any]) -> dict[str, Any]:
        """A request's fields from a tab's raw widget values.

        Returns:
            Fields of the task's request (TaskSpec.request) by name.

        Raises:
            ImageInputError: an upload is missing or unusable.
            MethodConfigError: a value is not allowed.
        """
        return {}

    def sweep_fields(self, request, values: dict[str, Any]) -> dict[str, Any]:
        """The sweep command's inputs for the tab's request (its uploads by file path).

        Returns:
            SweepInputs fields by name.
        """
        return {}

    def from_sweep(self, spec, inputs, first: dict[str, Any], recorded: dict[str, Any]) -> dict[str, Any]:
        """A request's fields from a sweep's inputs (those that are None: the first example's).

        Returns:
            Fields of the task's request by name; what the plan records of them goes to `recorded`.

        Raises:
            MethodConfigError: an input is not allowed, or a file is missing.
        """
        return {}


@dataclass(frozen=True)
class ReferenceImage(TaskInput):
    """A face or style image (the task's title names it)."""

    def widgets(self, spec, first: dict[str, Any]) -> dict[str, Any]:
        """An image upload, "reference", labelled with the task's title."""
        import gradio as gr

        return {
            "reference": gr.Image(
                first["reference"], type="filepath", label=f"{spec.title} image", height=200, elem_id=f"{spec.name}-reference"
            )
        }

    def parse(self, spec, values: dict[str, Any]) -> dict[str, Any]:
        """The uploaded reference image."""
        return {"reference": upload(values["reference"], f"a {spec.name} image")}

    def sweep_fields(self, request, values: dict[str, Any]) -> dict[str, Any]:
        """The reference's file path."""
        return {"reference": upload_path(values, "reference")}

    def from_sweep(self, spec, inputs, first: dict[str, Any], recorded: dict[str, Any]) -> dict[str, Any]:
        """The reference image (the first example's without one), recorded with its SHA-256."""
        reference = inputs.reference or first["reference"]
        recorded["reference"] = file_input(reference)
        return {"reference": load_image(reference)}


@dataclass(frozen=True)
class ControlMap(TaskInput):
    """An image to annotate, or a ready map ("none"), with the ControlNet and the edge energy each on or off, and a
    face or style with its reference on top (EXTRAS)."""

    def widgets(self, spec, first: dict[str, Any]) -> dict[str, Any]:
        """The image or map and its annotator, the ControlNet and edge-energy switches, and a face or style on top."""
        import gradio as gr

        inputs = {
            "control_image": gr.Image(first["control_image"], type="filepath", label="Image or control map", height=200),
            "annotator": gr.Dropdown(
                [*ANNOTATORS, "none"], value=first["annotator"], label="Annotator", info="none: the upload is already a map"
            ),
        }
        with gr.Row():
            inputs["use_controlnet"] = gr.Checkbox(True, label="ControlNet")
            inputs["edge_energy"] = gr.Checkbox(True, label="Edge energy (training-free)")
        with gr.Accordion("Face or style on top (optional)", open=False):
            inputs["extra"] = gr.Radio(["none", *EXTRAS], value=first["extra"], label="Also guide by")
            inputs["extra_reference"] = gr.Image(
                str(EXAMPLES / "face_blond.png"), type="filepath", label="Face or style image", height=160
            )
        return inputs

    def parse(self, spec, values: dict[str, Any]) -> dict[str, Any]:
        """The map and its options; the extra's reference only where an extra is chosen."""
        extra = None if values["extra"] == "none" else values["extra"]
        return {
            "control_image": upload(values["control_image"], "an image or a control map"),
            "annotator": values["annotator"],
            "use_controlnet": bool(values["use_controlnet"]),
            "edge_energy": bool(values["edge_energy"]),
            "extra": extra,
            "reference": upload(values["extra_reference"], f"a {extra} reference") if extra else None,
        }

    def sweep_fields(self, request, values: dict[str, Any]) -> dict[str, Any]:
        """The uploads' file paths and the map's options as the request holds them."""
        return {
            "control_map": upload_path(values, "control_image"),
            "annotator": request.annotator,
            "controlnet": request.use_controlnet,
            "edge_energy": request.edge_energy,
            "extra": request.extra,
            "reference": upload_path(values, "extra_reference") if request.extra else None,
        }

    def from_sweep(self, spec, inputs, first: dict[str, Any], recorded: dict[str, Any]) -> dict[str, Any]:
        """The map (a given one is a ready map unless an annotator is named), ControlNet, edge energy, and a face or
        style on top with its reference."""
        source = inputs.control_map or first["control_image"]
        annotator = inputs.annotator or ("none" if inputs.control_map else first["annotator"])
        if inputs.extra is not None and inputs.extra not in EXTRAS:
            raise MethodConfigError(f"--extra is one of {', '.join(EXTRAS)}, got {inputs.extra!r}")
        if inputs.extra and not inputs.reference:
            raise MethodConfigError(f"--extra {inputs.extra} needs --reference")
        recorded |= {
            "control_map": file_input(source),
            "annotator": annotator,
            "controlnet": inputs.controlnet,
            "edge_energy": inputs.edge_energy,
            "extra": inputs.extra,
        }
        fields = {
            "control_image": load_image(source),
            "annotator": annotator,
            "use_controlnet": inputs.controlnet,
            "edge_energy": inputs.edge_energy,
            "extra": inputs.extra,
        }
        if inputs.extra:
            recorded["reference"] = file_input(inputs.reference)
            fields["reference"] = load_image(inputs.reference)
        return fields


@dataclass(frozen=True)
class Prompt(TaskInput):
    """The condition: a class of the embedded world or unconditional, or the task's prompt on Stable Diffusion."""

    role = "condition"
    label = "Prompt or class"

    def choices(self, spec, names: list[str], embedded: bool) -> dict[str, Any]:
        """The condition widget's choices and value on a world.

        Args:
            names: the world's class names.
            embedded: whether the world is the embedded one.

        Returns:
            gr.Dropdown's `choices` and `value`.
        """
        if embedded:
            return {"choices": [("(unconditional)", ""), *names], "value": spec.condition}
        return {"choices": [spec.sd_prompt], "value": spec.sd_prompt}

    def default(self, spec, first: dict[str, Any], class_names: tuple[str, ...]) -> str:
        """A sweep's condition where none is given.

        Args:
            class_names: the sweep world's class names; empty for the embedded world.

        Returns:
            The first example's condition on the embedded world, else the task's prompt.
        """
        return first.get("condition", spec.condition) if not class_names else spec.sd_prompt


@dataclass(frozen=True)
class ClassCondition(Prompt):
    """The condition is one of the world's classes."""

    label = "Class"

    def choices(self, spec, names: list[str], embedded: bool) -> dict[str, Any]:
        """The class names alone; the task's class on the embedded world, else the first name."""
        return {"choices": names, "value": spec.condition if embedded else names[0] if names else None}

    def default(self, spec, first: dict[str, Any], class_names: tuple[str, ...]) -> str:
        """The first example's condition on the embedded world, else the world's first class."""
        return first.get("condition", spec.condition) if not class_names else class_names[0]


@dataclass(frozen=True)
class MethodList(TaskInput):
    """A request runs each selected method with the request's scheduler.

    `spec`, `request` and `inputs` are as TaskInput's hooks take them.
    """

    role = "runs"
    over = "methods"  # the request's field that lists the runs' labels
    steps_key, steps_label = "steps", "Steps"  # the steps widget's API name and label

    def method_names(self, spec) -> tuple[str, ...]:
        """The methods a request of the task may run.

        Returns:
            Their names; the tab shows their options.
        """
        return spec.choices

    def parse(self, spec, values: dict[str, Any]) -> dict[str, Any]:
        """The selected methods."""
        return {"methods": list(values["methods"] or [])}

    def runs(self, request) -> list[tuple[str, str, str]]:
        """A request's runs.

        Returns:
            (label, method, scheduler) of each run, in run order.
        """
        return [(m, m, request.scheduler) for m in request.methods]

    def grid(self, request) -> str:
        """The time grid its runs share: each solver's own (guidance.schedulers.grids)."""
        return "own"

    def selected(self, request) -> list[str]:
        """A request's run labels.

        Returns:
            The labels, as the sweep command's --methods names them.
        """
        return list(getattr(request, self.over))

    def only(self, request, labels: list[str]):
        """A request restricted to some of its runs.

        Args:
            labels: the labels of the runs to keep.

        Returns:
            A copy of the request.
        """
        return replace(request, **{self.over: [label for label in self.selected(request) if label in labels]})

    def single(self, label: str) -> dict[str, Any]:
        """Request fields that run one run alone.

        Args:
            label: the run's label.

        Returns:
            Fields of the task's request by name.
        """
        return {self.over: [label]}

    def command_words(self, inputs) -> list[str]:
        """The sweep command's words for what it runs over, beside --methods.

        Returns:
            Command-line words; none for a list of methods.
        """
        return []


DEFAULT_GRID = "quadratic"  # EVODiff's best shared grid on the embedded world (docs/benchmarks.md, solvers, shared grids)


GRID_LABELS = {**LABELS, "quadratic": "quadratic in time: EVODiff's best shared grid on the embedded world"}


def checked_grid(grid: str) -> str:
    """`grid`, one of GRID_LABELS (guidance.schedulers.grids).

    Raises:
        MethodConfigError: another name.
    """
    if grid not in GRID_LABELS:
        raise MethodConfigError(f"the time grid is one of {tuple(GRID_LABELS)}, got {grid!r}")
    return grid


@dataclass(frozen=True)
class SchedulerList(MethodList):
    """A request runs every selected solver with one method (GUIDED_BASES), at the same number of steps (NFE)."""

    over = "schedulers"
    steps_key, steps_label = "nfe", "NFE (solver steps)"

    def method_names(self, spec) -> tuple[str, ...]:
        """GUIDED_BASES, whichever solvers the task offers."""
        return GUIDED_BASES

    def run_widgets(self, spec) -> dict[str, Any]:
        """A radio, "guidance", for the method (GUIDED_BASES) every solver runs with, and a dropdown, "grid", for the
        time grid every solver shares (guidance.schedulers.grids)."""
        import gradio as gr

        grids = [(label, name) for name, label in GRID_LABELS.items()]
        return {
            "guidance": gr.Radio(list(GUIDED_BASES), value="cfg", label="Guidance used with every solver"),
            "grid": gr.Dropdown(grids, value=DEFAULT_GRID, label="Time grid (the same labels for every solver)"),
        }

    def parse(self, spec, values: dict[str, Any]) -> dict[str, Any]:
        """The guiding method, the selected solvers as `schedulers`, and the grid.

        Raises:
            MethodConfigError: a grid that guidance.schedulers.grids does not know.
        """
        grid = checked_grid(values.get("grid") or DEFAULT_GRID)
        return {"methods": [values["guidance"]], "schedulers": list(values["methods"] or []), "grid": grid}

    def runs(self, request) -> list[tuple[str, str, str]]:
        """Every solver with the one method, labelled by the solver."""
        return [(s, request.methods[0], s) for s in request.schedulers] if request.methods else []

    def grid(self, request) -> str:
        """The grid the request chose, every solver's."""
        return request.grid

    def sweep_fields(self, request, values: dict[str, Any]) -> dict[str, Any]:
        """The guiding method."""
        return {"guidance": request.methods[0]}

    def from_sweep(self, spec, inputs, first: dict[str, Any], recorded: dict[str, Any]) -> dict[str, Any]:
        """The guiding method, one of GUIDED_BASES."""
        if inputs.guidance not in GUIDED_BASES:
            raise MethodConfigError(f"--guidance is one of {', '.join(GUIDED_BASES)}, got {inputs.guidance!r}")
        recorded["guidance"] = inputs.guidance
        return {"methods": [inputs.guidance]}

    def command_words(self, inputs) -> list[str]:
        """--guidance and the guiding method."""
        return ["--guidance", inputs.guidance]


PROMPT, METHOD_LIST = Prompt(), MethodList()  # the roles' defaults
