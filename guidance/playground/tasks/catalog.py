"""The playground's tasks, each declared once as a TaskSpec and registered: what it takes, offers and selects, its
preset, energy and examples.

Presets are [ours]: step sizes use FreeDoM's normalised rule (rho_t = scale RMS(w_cfg (eps_c - eps_u)) / RMS(g),
or RMS(eps) without CFG), which makes a scale comparable across worlds; windows and DSG rates follow the papers'
defaults.
A new task is one more TaskSpec (here, or registered where it is declared), plus its energy in conditions/; a new
kind of input is one more TaskInput (guidance/playground/tasks/inputs.py) that its spec lists.
"""

from __future__ import annotations

from guidance.methods import Settings
from guidance.playground.tasks.energies import class_energy, control_energy, reference_task
from guidance.playground.tasks.inputs import EXAMPLES, ClassCondition, ControlMap, ReferenceImage, SchedulerList
from guidance.playground.tasks.spec import ControlRequest, ReferenceRequest, SolverRequest, TaskSpec, register_task
from guidance.schedulers.adapters import SCHEDULERS

ENERGY_METHODS = ("plain", "freedom", "figd", "dps", "freedom+dsg", "figd+dsg", "dps+dsg")
CLASS_METHODS = ("plain", "cfg", "atg", "gfcg", "cfg+gfcg", "atg+gfcg")


def example(name: str) -> str:
    """The path of an example file.

    Args:
        name: its file name under assets/examples.

    Returns:
        The path, as a string.
    """
    return str(EXAMPLES / name)


def guiding_values(scale: dict[str, float], dsg_rate: dict[str, float]) -> dict[str, float]:
    """Each guided method's own value of its guiding setting on an energy task (TaskSpec.guiding): the presets suite's
    picks (docs/methods.md, Presets), DPS taking FreeDoM's (the same step under the normalised rule).

    Args:
        scale: the scale of FreeDoM, FIGD and DPS, by method.
        dsg_rate: the dsg_rate of each "+dsg" method, by its base method.

    Returns:
        Guiding values by method name.
    """
    return {**scale, **{f"{method}+dsg": rate for method, rate in dsg_rate.items()}}


SHIPPED = (
    TaskSpec(
        name="face",
        request=ReferenceRequest,
        title="Face",
        intro="Identity guidance: the generated face should be the uploaded person (ID distance, lower is better).",
        inputs=(ReferenceImage(),),
        choices=ENERGY_METHODS,
        selected=("freedom", "figd", "figd+dsg"),
        choices_label="Methods (FreeDoM is the baseline)",
        # dsg_rate: the shared value a request without a strength runs at; each method's own values are `guiding`
        preset=Settings(step_rule="normalized", window=(0.0, 0.9), dsg_rate=0.1, noise_rule="freedom"),
        energy=reference_task("face"),
        metric_label="ID distance",
        sd_prompt="a headshot photo of a person",
        example_fields=("reference", "condition"),
        examples=((example("face_blond.png"), ""), (example("face_ginger.png"), ""), (example("face_black_beard.png"), "")),
        eta=0.5,  # FreeDoM's face set-up: DDIM eta 0.5
        guiding=guiding_values({"freedom": 0.1, "figd": 0.2, "dps": 0.1}, {"freedom": 0.2, "figd": 0.4, "dps": 0.2}),
    ),
    TaskSpec(
        name="style",
        request=ReferenceRequest,
        title="Style",
        intro=(
            "Style guidance: match the Gram matrices of early features of the uploaded image (style distance, lower is better; "
            "on the embedded world also pattern agreement, the share of samples with the reference's pattern, higher is better)."
        ),
        inputs=(ReferenceImage(),),
        choices=ENERGY_METHODS,
        selected=("freedom", "figd", "figd+dsg"),
        choices_label="Methods (FreeDoM is the baseline)",
        # shared scale and dsg_rate as on face; repeats 3 on (0.3, 0.6) and the window: FreeDoM's SD style script
        preset=Settings(step_rule="normalized", window=(0.3, 0.7), repeats=3, travel_window=(0.3, 0.6), dsg_rate=0.1),
        energy=reference_task("style"),
        metric_label="style distance",
        sd_prompt="a portrait of a person, oil painting",
        example_fields=("reference", "condition"),
        examples=tuple((example(f"style_{name}.png"), "") for name in ("stripes", "checker", "dots")),
        eta=1.0,  # DSG's official style runs: DDIM eta 1
        guiding=guiding_values({"freedom": 0.1, "figd": 0.2, "dps": 0.1}, {"freedom": 0.1, "figd": 0.4, "dps": 0.1}),
    ),
    TaskSpec(
        name="control",
        request=ControlRequest,
        title="Control map",
        intro="Follow a control map with the ControlNet and/or the training-free edge energy (edge F1, higher is better).",
        inputs=(ControlMap(),),
        choices=ENERGY_METHODS,
        selected=("plain", "freedom", "figd"),
        choices_label="Methods (plain: the ControlNet alone; FreeDoM is the baseline)",
        preset=Settings(step_rule="normalized", window=(0.0, 0.8), dsg_rate=0.1),
        energy=control_energy,
        metric_label="edge F1",
        sd_prompt="a portrait of a person",
        example_fields=("control_image", "annotator", "extra"),
        examples=(
            (example("control_face.png"), "canny", "none"),
            (example("control_face_bald.png"), "canny", "none"),
            (example("control_face_glasses.png"), "canny", "none"),
            (example("control_canny.png"), "none", "none"),
            (example("control_canny.png"), "none", "face"),
        ),
        eta=1.0,
        guiding=guiding_values({"freedom": 0.1, "figd": 0.2, "dps": 0.1}, {"freedom": 0.1, "figd": 0.1, "dps": 0.1}),
    ),
    TaskSpec(
        name="classes",
        title="Classes",
        intro="Gradient-free classifier guidance (GFCG) against CFG and Autoguidance (class probability under a separate evaluator).",
        inputs=(ClassCondition(),),
        choices=CLASS_METHODS,
        selected=("cfg", "atg", "atg+gfcg"),
        choices_label="Methods (CFG is the baseline; cfg+gfcg / atg+gfcg pick GFCG's base)",
        # one call and interval 3: the gfcg benchmark's pick, CFG+GFCG's accuracy at 1.23x CFG's step (docs/methods.md, GFCG)
        preset=Settings(cfg_scale=2.5, gfcg_max_scale=2.0, gfcg_threshold=0.05, gfcg_one_call=True, gfcg_interval=3),
        energy=class_energy,
        metric_label="class probability",
        condition="ginger hair",
        example_fields=("condition", "seed"),
        examples=(("ginger hair", 0), ("brown hair", 1), ("sunglasses", 2)),
        benchmark="gfcg",
        sweeps=("gfcg_max_scale", "cfg_scale", "steps", "eta"),
    ),
    TaskSpec(
        name="solvers",
        request=SolverRequest,
        title="Solvers",
        intro="EVODiff against DDIM, DPM-Solver++(2M) and UniPC at the same number of steps (NFE).",
        inputs=(ClassCondition(), SchedulerList()),
        choices=SCHEDULERS,
        selected=("ddim", "dpmsolver++", "unipc", "evodiff"),
        choices_label="Solvers (DDIM is the baseline)",
        preset=Settings(cfg_scale=2.5),
        energy=class_energy,
        metric_label="class probability",
        condition="black hair",
        example_fields=("condition", "nfe"),
        examples=(("black hair", 10), ("blue hair", 6), ("bald", 15)),
        steps=10,
        benchmark="solvers",
        sweeps=("steps", "cfg_scale"),
    ),
)
for task in SHIPPED:
    register_task(task)
