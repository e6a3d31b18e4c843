"""The kinds of input a task takes, each declared once: its widgets, how their raw values become a request's fields,
and what a sweep at scale takes for it.

A TaskSpec lists its inputs (guidance/playground/tasks/catalog.py). The app builds each one's widgets in the task's
tab (`widgets` above the shared inputs, `run_widgets` below the methods), its handlers turn the widgets' raw values
into a TaskRequest's fields (`parse`) and into the sweep command's inputs (`sweep_fields`, guidance.sweep.SweepInputs
fields), and guidance.sweep builds the request of a command line from those (`from_sweep`). Two roles have a default
where a task lists no input for them: the condition (`Prompt`, or `ClassCondition`) and what a request runs over
(`MethodList`, or `SchedulerList`: every selected solver with one method).

A field that is not one of TaskRequest's goes to `TaskRequest.values` under its name, where the task's energy reads it.
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

EXAMPLES = Path(__file__).resolve().parents[3] / "assets" / "examples"
EXTRAS = ("face", "style")  # the reference conditions a control map can carry on top
GUIDED_BASES = ("plain", "cfg", "atg")  # what guides every solver on a task that runs over schedulers


def upload(payload: dict | None, what: str) -> Image.Image:
    """An uploaded file (gradio's file payload, not preprocessed) read by load_image, which checks it."""
    if not payload or not payload.get("path"):
        raise ImageInputError(f"upload {what}")
    return load_image(payload["path"])


def upload_path(values: dict[str, Any], name: str) -> str | None:
    """The file path of an upload among a tab's raw values (None where there is none)."""
    return (values.get(name) or {}).get("path")


def file_input(path: str | Path) -> dict:
    """A file as a sweep's plan records it: its path and the SHA-256 of its bytes."""
    path = Path(path)
    if not path.is_file():
        raise MethodConfigError(f"no such file: {path}")
    return {"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


class TaskInput:
    """One kind of input; every hook gives nothing by default.

    `spec` is the task's TaskSpec, `first` its first example as a dict (every input's default), `values` a tab's raw
    widget values by API parameter name, `request` a TaskRequest, `inputs` a guidance.sweep.SweepInputs.
    """

    role = ""  # "condition" or "runs" where the input plays that role for its task

    def widgets(self, spec, first: dict[str, Any]) -> dict[str, Any]:
        """Its gradio components, keyed by API parameter name, built inside the tab above the shared inputs."""
        return {}

    def run_widgets(self, spec) -> dict[str, Any]:
        """Components built below the tab's methods selector."""
        return {}

    def parse(self, spec, values: dict[str, Any]) -> dict[str, Any]:
        """Request fields from the raw widget values; typed errors (ImageInputError, MethodConfigError) name what is wrong."""
        return {}

    def sweep_fields(self, request, values: dict[str, Any]) -> dict[str, Any]:
        """The sweep command's inputs (SweepInputs fields) for the tab's request."""
        return {}

    def from_sweep(self, spec, inputs, first: dict[str, Any], recorded: dict[str, Any]) -> dict[str, Any]:
        """Request fields from a sweep's inputs (None: the first example's); what the plan records goes to `recorded`."""
        return {}


@dataclass(frozen=True)
class ReferenceImage(TaskInput):
    """A face or style image (the task's title names it)."""

    def widgets(self, spec, first: dict[str, Any]) -> dict[str, Any]:
        import gradio as gr

        return {"reference": gr.Image(first["reference"], type="filepath", label=f"{spec.title} image", height=200,
                                      elem_id=f"{spec.name}-reference")}  # fmt: skip

    def parse(self, spec, values: dict[str, Any]) -> dict[str, Any]:
        return {"reference": upload(values["reference"], f"a {spec.name} image")}

    def sweep_fields(self, request, values: dict[str, Any]) -> dict[str, Any]:
        return {"reference": upload_path(values, "reference")}

    def from_sweep(self, spec, inputs, first: dict[str, Any], recorded: dict[str, Any]) -> dict[str, Any]:
        reference = inputs.reference or first["reference"]
        recorded["reference"] = file_input(reference)
        return {"reference": load_image(reference)}


@dataclass(frozen=True)
class ControlMap(TaskInput):
    """An image to annotate, or a ready map ("none"), with the ControlNet and the edge energy each on or off, and a
    face or style with its reference on top (EXTRAS)."""

    def widgets(self, spec, first: dict[str, Any]) -> dict[str, Any]:
        import gradio as gr

        inputs = {
            "control_image": gr.Image(first["control_image"], type="filepath", label="Image or control map", height=200),
            "annotator": gr.Dropdown([*ANNOTATORS, "none"], value=first["annotator"], label="Annotator", info="none: the upload is already a map"),
        }  # fmt: skip
        with gr.Row():
            inputs["use_controlnet"] = gr.Checkbox(True, label="ControlNet")
            inputs["edge_energy"] = gr.Checkbox(True, label="Edge energy (training-free)")
        with gr.Accordion("Face or style on top (optional)", open=False):
            inputs["extra"] = gr.Radio(["none", *EXTRAS], value=first["extra"], label="Also guide by")
            inputs["extra_reference"] = gr.Image(str(EXAMPLES / "face_blond.png"), type="filepath", label="Face or style image", height=160)
        return inputs

    def parse(self, spec, values: dict[str, Any]) -> dict[str, Any]:
        extra = None if values["extra"] == "none" else values["extra"]
        return {
            "control_image": upload(values["control_image"], "an image or a control map"), "annotator": values["annotator"],
            "use_controlnet": bool(values["use_controlnet"]), "edge_energy": bool(values["edge_energy"]), "extra": extra,
            "reference": upload(values["extra_reference"], f"a {extra} reference") if extra else None,
        }  # fmt: skip

    def sweep_fields(self, request, values: dict[str, Any]) -> dict[str, Any]:
        return {"control_map": upload_path(values, "control_image"), "annotator": request.annotator, "controlnet": request.use_controlnet,
                "edge_energy": request.edge_energy, "extra": request.extra,
                "reference": upload_path(values, "extra_reference") if request.extra else None}  # fmt: skip

    def from_sweep(self, spec, inputs, first: dict[str, Any], recorded: dict[str, Any]) -> dict[str, Any]:
        """The map (a given one is a ready map unless an annotator is named), ControlNet, edge energy, and a face or
        style on top with its reference."""
        source = inputs.control_map or first["control_image"]
        annotator = inputs.annotator or ("none" if inputs.control_map else first["annotator"])
        if inputs.extra is not None and inputs.extra not in EXTRAS:
            raise MethodConfigError(f"--extra is one of {', '.join(EXTRAS)}, got {inputs.extra!r}")
        if inputs.extra and not inputs.reference:
            raise MethodConfigError(f"--extra {inputs.extra} needs --reference")
        recorded |= {"control_map": file_input(source), "annotator": annotator, "controlnet": inputs.controlnet,
                     "edge_energy": inputs.edge_energy, "extra": inputs.extra}  # fmt: skip
        fields = {"control_image": load_image(source), "annotator": annotator, "use_controlnet": inputs.controlnet,
                  "edge_energy": inputs.edge_energy, "extra": inputs.extra}  # fmt: skip
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
        """The condition widget's choices and value on a world with these class names."""
        if embedded:
            return {"choices": [("(unconditional)", ""), *names], "value": spec.condition}
        return {"choices": [spec.sd_prompt], "value": spec.sd_prompt}

    def default(self, spec, first: dict[str, Any], class_names: tuple[str, ...]) -> str:
        """A sweep's condition where none is given: the example's (embedded: no `class_names`), else the prompt."""
        return first.get("condition", spec.condition) if not class_names else spec.sd_prompt


@dataclass(frozen=True)
class ClassCondition(Prompt):
    """The condition is one of the world's classes."""

    label = "Class"

    def choices(self, spec, names: list[str], embedded: bool) -> dict[str, Any]:
        return {"choices": names, "value": spec.condition if embedded else names[0] if names else None}

    def default(self, spec, first: dict[str, Any], class_names: tuple[str, ...]) -> str:
        return first.get("condition", spec.condition) if not class_names else class_names[0]


@dataclass(frozen=True)
class MethodList(TaskInput):
    """A request runs each selected method with the request's scheduler."""

    role = "runs"
    over = "methods"  # the request's field that lists the runs' labels
    steps_key, steps_label = "steps", "Steps"  # the steps widget's API name and label

    def method_names(self, spec) -> tuple[str, ...]:
        """The methods a request of the task may run (whose options the tab shows)."""
        return spec.choices

    def parse(self, spec, values: dict[str, Any]) -> dict[str, Any]:
        return {"methods": list(values["methods"] or [])}

    def runs(self, request) -> list[tuple[str, str, str]]:
        """(label, method, scheduler) of each run."""
        return [(m, m, request.scheduler) for m in request.methods]

    def selected(self, request) -> list[str]:
        """The labels of its runs, as the sweep command's --methods names them."""
        return list(getattr(request, self.over))

    def only(self, request, labels: list[str]):
        """The request restricted to the runs of these labels."""
        return replace(request, **{self.over: [label for label in self.selected(request) if label in labels]})

    def single(self, label: str) -> dict[str, Any]:
        """Request fields that run the one run of this label."""
        return {self.over: [label]}

    def command_words(self, inputs) -> list[str]:
        """The sweep command's words for what it runs over, beside --methods."""
        return []


@dataclass(frozen=True)
class SchedulerList(MethodList):
    """A request runs every selected solver with one method (GUIDED_BASES), at the same number of steps (NFE)."""

    over = "schedulers"
    steps_key, steps_label = "nfe", "NFE (solver steps)"

    def method_names(self, spec) -> tuple[str, ...]:
        return GUIDED_BASES

    def run_widgets(self, spec) -> dict[str, Any]:
        import gradio as gr

        return {"guidance": gr.Radio(list(GUIDED_BASES), value="cfg", label="Guidance used with every solver")}

    def parse(self, spec, values: dict[str, Any]) -> dict[str, Any]:
        return {"methods": [values["guidance"]], "schedulers": list(values["methods"] or [])}

    def runs(self, request) -> list[tuple[str, str, str]]:
        return [(s, request.methods[0], s) for s in request.schedulers] if request.methods else []

    def sweep_fields(self, request, values: dict[str, Any]) -> dict[str, Any]:
        return {"guidance": request.methods[0]}

    def from_sweep(self, spec, inputs, first: dict[str, Any], recorded: dict[str, Any]) -> dict[str, Any]:
        if inputs.guidance not in GUIDED_BASES:
            raise MethodConfigError(f"--guidance is one of {', '.join(GUIDED_BASES)}, got {inputs.guidance!r}")
        recorded["guidance"] = inputs.guidance
        return {"methods": [inputs.guidance]}

    def command_words(self, inputs) -> list[str]:
        return ["--guidance", inputs.guidance]


PROMPT, METHOD_LIST = Prompt(), MethodList()  # the roles' defaults
