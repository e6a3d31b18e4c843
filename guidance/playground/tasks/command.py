"""The command line that runs a sweep at scale (`python -m guidance.sweep`), as the app shows it for copying and as
guidance.sweep parses it: the sweep's inputs, and every value spelled out and shell-quoted."""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass
from typing import Any

from guidance.methods import Settings
from guidance.playground.tasks.spec import preset, spec
from guidance.worlds.registry import EMBEDDED


@dataclass(frozen=True)
class SweepInputs:
    """Everything a sweep's cells share besides their (method, value, seed), as the command line gives it.

    None means the task's own: its first example's reference or control map, its condition (on Stable Diffusion its
    prompt, or its first class), its steps and eta. `strength` None runs every method at `settings` as given; a number
    multiplies each method's guiding value (guidance.playground.tasks.method_settings). `settings` overrides the task's
    preset, as (name, text) pairs (`--set name=value`). `controlnet_model` and `tiny_vae` complete a Stable Diffusion
    world (hub ids or folders).
    """

    task: str
    world: str = EMBEDDED
    controlnet_model: str | None = None
    tiny_vae: str | None = None
    steps: int | None = None
    eta: float | None = None
    condition: str | None = None
    reference: str | None = None
    control_map: str | None = None
    annotator: str | None = None
    controlnet: bool = True
    edge_energy: bool = True
    extra: str | None = None
    guidance: str = "cfg"
    strength: float | None = 1.0
    settings: tuple[tuple[str, str], ...] = ()


def sweep_command(
    inputs: SweepInputs,
    setting: str,
    values_text: str,
    methods: tuple[str, ...],
    seeds: range,
    out: str,
    launcher: str = "python -m guidance.sweep",
) -> str:
    """The command line that runs this sweep: every input that differs from the task's own, spelled out.

    Args:
        inputs: the sweep's inputs.
        setting, values_text, methods, seeds: what it sweeps, over which methods and seeds.
        out: its folder.
        launcher: what runs the module (`accelerate launch -m guidance.sweep` on several processes).

    Returns:
        A shell-quoted command line.
    """
    words = [
        inputs.task,
        "--methods",
        ",".join(methods),
        "--setting",
        setting,
        "--values",
        values_text,
        "--seeds",
        f"{seeds.start}:{seeds.stop}",
    ]
    for flag, value in (
        ("--steps", inputs.steps),
        ("--eta", inputs.eta),
        ("--condition", inputs.condition),
        ("--reference", inputs.reference),
        ("--control-map", inputs.control_map),
        ("--annotator", inputs.annotator),
        ("--extra", inputs.extra),
    ):
        if value is not None:
            words += [flag, text_of(value)]
    words += spec(inputs.task).runs.command_words(inputs)
    if inputs.strength != 1.0:
        words += ["--strength", "none" if inputs.strength is None else text_of(inputs.strength)]
    words += [] if inputs.controlnet else ["--no-controlnet"]
    words += [] if inputs.edge_energy else ["--no-edge-energy"]
    for name, text in inputs.settings:
        words += ["--set", f"{name}={text}"]
    words += [] if inputs.world == EMBEDDED else ["--world", inputs.world]
    for flag, value in (("--controlnet", inputs.controlnet_model), ("--tiny-vae", inputs.tiny_vae)):
        words += [] if value is None else [flag, value]
    return f"{launcher} {shlex.join([*words, '--out', out])}"


def setting_pairs(task: str, settings: Settings) -> tuple[tuple[str, str], ...]:
    """What `--set` must say to turn the task's preset into `settings`.

    Args:
        task: the task whose preset is the base.
        settings: the settings wanted.

    Returns:
        (name, text) pairs, one per setting that differs from the preset.
    """
    base = asdict(preset(task))
    pairs = []
    for name, value in asdict(settings).items():
        if value != base[name]:
            text = ",".join(f"{v:g}" for v in value) if isinstance(value, (tuple, list)) else text_of(value)
            pairs.append((name, text))
    return tuple(pairs)


def text_of(value: Any) -> str:
    """A value as a command line spells it (true/false, %g for floats)."""
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)
