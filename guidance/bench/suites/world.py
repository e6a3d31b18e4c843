"""`world`: the embedded world's quality bars, each against its baseline in the same run.

Class fidelity (evaluator accuracy of the requested class) with CFG, unguided, Autoguidance and ATG+GFCG; Frechet
distance (evaluator features) of class-conditional samples to as many held-out renders, next to its floor, for the
unguided model (at twice the steps) and ATG (equal NFE); colour saturation against the renders'; face guidance
scored by attribute agreement with held-out reference renders; style distance against the unguided sample's;
ControlNet + FIGD edge F1; the share of guided samples the face detector still calls a face; face-ID verification
ROC-AUC; the time of a batch of 4 unguided 25-step samples.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.utils import save_image

from conditions.control import canny, edge_f1
from conditions.face import crop
from conditions.images import pixels_from_uint8, to_pil, to_tensor
from guidance import distributed
from guidance.bench.common import (
    CONTROL_SEED,
    ID_SEED,
    WORLD_SPEED_BAR_S,
    Options,
    Rows,
    SuiteOutput,
    balanced,
    class_quality,
    generate,
    goal_over,
    goal_told,
    images_of,
    realism,
    renders,
    task_request,
    timing,
    warm_up,
)
from guidance.bench.metrics import roc_auc
from guidance.errors import MethodConfigError
from guidance.methods import LIMITS
from guidance.playground.tasks import preset, run_task, spec
from guidance.sampling import SamplingResult
from guidance.worlds import World
from guidance.worlds.base import realism as world_realism
from guidance.worlds.embedded.vocabulary import ATTRIBUTES, HAIR_STYLES, IDENTITY_ATTRIBUTES

NEEDS = ()
FACE_SEED, STYLE_SEED = 21, 22  # make_dataset seeds of the held-out references
EXAMPLE_TASKS = ("face", "style", "control")
# The energy tabs' guided methods; DPS under the tabs' normalised rule takes FreeDoM's step (tests/test_energy_methods.py)
EXAMPLE_METHODS = ("freedom", "figd", "freedom+dsg", "figd+dsg")


@dataclass(frozen=True)
class Plan:
    per_class: int  # class-conditional samples per class, for each of cfg, plain, atg, atg+gfcg
    face_references: int
    face_seeds: int  # samples per reference
    style_references: int
    control_maps: int
    id_images: int  # held-out renders for verification, 5 per identity
    steps: int = 25  # DDIM steps of the class-conditional samples (plain runs twice as many: equal NFE with ATG)
    task_steps: int = 20  # DDIM steps of the face, style and control runs (the tabs' default)
    cfg_scale: float = 2.5
    batch: int = 20
    speed_repeats: int = 5
    style_seeds: int = 1  # samples per style reference
    style_first: int = 0  # the first of the style references (guidance.worlds.embedded.renderer.textures.style_references)
    example_seeds: int = 4  # samples per example of the face tab, at every method's own preset
    condition_example_seeds: int = 16  # samples per example of the style and control tabs (3 examples each: 48 per method)
    ranking_renders: int = 400  # held-out renders the style energy ranks by background pattern
    examples_only: bool = False  # only the energy tabs' examples (the "examples" plans: their verdicts at more samples)
    example_tasks: tuple[str, ...] = EXAMPLE_TASKS  # the tabs whose examples run
    example_methods: tuple[str, ...] = ("plain", *EXAMPLE_METHODS)  # the methods they run (plain and FreeDoM: the baselines)


def examples_plan(**fields) -> Plan:
    """A plan of the energy tabs' examples alone (`examples_only`), with `fields` (seeds, tabs, methods)."""
    none = {"per_class": 0, "face_references": 0, "face_seeds": 0, "style_references": 0, "control_maps": 0, "id_images": 0}
    return Plan(**none, examples_only=True, **fields)


PLANS = {
    "quick": Plan(
        per_class=6,
        face_references=4,
        face_seeds=2,
        style_references=2,
        control_maps=6,
        id_images=200,
        example_seeds=1,
        condition_example_seeds=1,
        ranking_renders=200,
    ),
    "full": Plan(per_class=100, face_references=16, face_seeds=2, style_references=8, control_maps=24, id_images=1000),
    # the examples' verdicts at 128 seeds per style and control example (384 samples per method)
    "examples": examples_plan(condition_example_seeds=128),
    # FIGD's control verdict at 256 seeds per example (768 samples): plain, FreeDoM and FIGD alone
    "examples-control": examples_plan(
        condition_example_seeds=256, example_tasks=("control",), example_methods=("plain", "freedom", "figd")
    ),
}
ENERGY_METHODS = ("plain", "freedom", "figd")


def run(world: World, opts: Options) -> SuiteOutput:
    """Class fidelity per class-conditional method, the guided tabs on held-out references and on the app's
    examples, face verification, style ranking and speed (the interface: guidance.bench.suites)."""
    if not opts.embedded:
        raise MethodConfigError("the world suite measures the embedded world: use --backbone embedded")
    plan = opts.plan(PLANS)
    rows, images = Rows("world"), []
    if plan.examples_only:
        for row in example_rows(world, plan):
            rows.append(row)
        return SuiteOutput(rows, example_goals(rows), config=asdict(plan))
    for method in ("cfg", "plain", "atg", "atg+gfcg"):
        if method == "atg" and not world.backbone.has_guide_model:
            continue
        row, samples = class_fidelity(world, method, plan)
        rows.append(row)
        if method == "cfg" and opts.grid is not None:
            if distributed.is_main():
                write_grid(samples, len(world.backbone.class_names), min(plan.per_class, 8), opts.grid)
            images.append(str(opts.grid))
    for row in [*face_rows(world, plan), *style_rows(world, plan), *control_rows(world, plan), *example_rows(world, plan)]:
        rows.append(row)
    for bar in (verification_row, ranking_row, speed_row):
        rows.append(bar(world, plan))
    return SuiteOutput(rows, goals(rows), config=asdict(plan), images=images)


def goals(rows: list[dict]) -> list[dict]:
    """The quality bars' verdicts, each with its measured figure."""
    by = {(r["task"], r["method"]): r for r in rows if r["bar"] != "examples"}
    found = []
    cfg, plain = by[("class", "cfg")], by[("class", "plain")]
    found.append(goal_told("class accuracy, CFG", ">= 0.95", cfg["accuracy"], cfg["accuracy"] >= 0.95))
    found.append(goal_told("class accuracy, unguided conditional", ">= 0.7", plain["accuracy"], plain["accuracy"] >= 0.7))
    ratio = plain["fd"] / plain["fd_floor"]
    found.append(goal_told("Frechet distance of unguided samples vs its floor", "<= 5x floor", ratio, ratio <= 5, "x floor"))
    off = abs(plain["saturation_ratio"] - 1)
    found.append(goal_told("colour saturation of samples vs renders", "within 10%", plain["saturation_ratio"], off <= 0.1, "x"))
    if ("class", "atg") in by:
        atg, both = by[("class", "atg")], by[("class", "atg+gfcg")]
        found.append(
            goal_told("ATG FD vs unguided FD at equal NFE", "lower", atg["fd"] / plain["fd"], atg["fd"] < plain["fd"], "x")
        )
        found.append(goal_told("ATG+GFCG accuracy vs ATG", "higher", both["accuracy"], both["accuracy"] > atg["accuracy"]))
    for method in ("freedom", "figd"):
        agreement = by[("face", method)]["attribute_agreement"]
        found.append(goal_told(f"face attribute agreement, {method}", ">= 0.8", agreement, agreement >= 0.8))
        style = by[("style", method)]
        found.append(
            goal_told(f"style distance vs unguided, {method}", "<= 0.5x", style["style_ratio"], style["style_ratio"] <= 0.5, "x")
        )
        found.append(goal_told(f"style samples judged a face, {method}", ">= 0.9", style["face_rate"], style["face_rate"] >= 0.9))
    found += example_goals(rows)
    for kind, auc in by[("style", "ranking")]["auc"].items():
        found.append(
            goal_told(
                f"style energy ranks renders of the {kind} reference's pattern nearer (AUC)",
                ">= 0.9",
                auc,
                auc >= 0.9,
                n=by[("style", "ranking")]["n"],
            )
        )
    f1 = by[("control", "figd")]["edge_f1"]
    found.append(goal_told("ControlNet + FIGD edge F1", ">= 0.75", f1, f1 >= 0.75))
    guided = [r["face_rate"] for r in rows if "face_rate" in r and r["method"] != "plain"]
    rate = float(np.mean(guided))
    found.append(goal_told("guided samples judged a face, all tabs", ">= 0.95", rate, rate >= 0.95))
    auc = by[("face", "verification")]["roc_auc"]
    found.append(goal_told("face-ID verification ROC-AUC, held-out identities", ">= 0.98", auc, auc >= 0.98))
    seconds = by[("class", "speed")]["batch_seconds"]
    found.append(
        goal_told(
            "batch of 4 unguided 25-step samples", f"<= {WORLD_SPEED_BAR_S:g} s", seconds, seconds <= WORLD_SPEED_BAR_S, " s"
        )
    )
    return found


# ----------------------------------------------------------------------------- class-conditional samples


def class_fidelity(world: World, method: str, plan: Plan) -> tuple[dict, torch.Tensor]:
    """Class-balanced samples: accuracy, FD against as many held-out renders (and its floor), saturation ratio.

    Args:
        world: the embedded world.
        method: "cfg", "plain", "atg" or "atg+gfcg"; plain takes twice the steps (equal NFE).
        plan: samples per class, steps, CFG scale and batch.

    Returns:
        The row, and the samples.
    """
    names = world.backbone.class_names
    conditions = balanced(names, plan.per_class * len(names))
    steps = 2 * plan.steps if method == "plain" else plan.steps  # plain: one model call a step, ATG two
    settings = preset("classes", cfg_scale=plan.cfg_scale)
    warm_up(world, method, names[0], settings)
    results = generate(world, method, conditions, steps=steps, settings=settings, batch=plan.batch)
    images, targets = images_of(results), torch.tensor([names.index(c) for c in conditions])
    fd = realism(world, images)
    row = {"bar": "class fidelity", "task": "class", "method": method, **timing(results), **class_quality(world, images, targets)}
    row |= {
        "fd": fd["fd"],
        "fd_floor": fd["fd_floor"],
        "saturation_ratio": saturation(images) / saturation(renders(len(images), 11)[0]),
    }
    return row | {"n": len(images)} | ({"cfg_scale": plan.cfg_scale} if "cfg" in method else {}), images


def saturation(images: torch.Tensor) -> float:
    """Mean HSV saturation (max - min) / max of pixels in [-1, 1]."""
    rgb = (images.clamp(-1, 1) + 1) / 2
    high, low = rgb.amax(1), rgb.amin(1)
    return float(((high - low) / high.clamp(min=1e-6)).mean())


# ----------------------------------------------------------------------------- guided tasks


def task_results(
    world: World,
    task: str,
    method: str,
    reference,
    samples: int,
    plan: Plan,
    seed: int,
    strength: float | None = None,
    **overrides,
):
    """One tab run of `method` on one reference (face, style) or control source image: at the tab's preset with
    SHARED_SCALE and `overrides` (shared settings), or, given `strength`, at the method's own guiding value times it.

    Args:
        world: the embedded world.
        task: "face", "style" or "control".
        method: one of the tab's methods.
        reference: the reference image, or the control task's source image (annotated by Canny).
        samples: images in the run.
        plan: the tabs' steps.
        seed: the run's seed.
        strength: times each method's own guiding value (TaskSpec.guiding); None: the preset with SHARED_SCALE and
            `overrides`.
        overrides: settings of the tab's preset.
    """
    request = task_request(
        world, task, method, {task: reference}, steps=plan.task_steps, samples=samples, eta=spec(task).eta, **overrides
    )
    return run_task(world, replace(request, seed=seed, strength=strength)).results[0][1]


def face_rate(world: World, images: torch.Tensor) -> float:
    """Share of images in which the world's face detector finds a face."""
    return float(np.mean(faces_found(world, images)))


def faces_found(world: World, images: torch.Tensor) -> list[float]:
    """Per image, 1 where the world's face detector finds a face in it, else 0."""
    return [float(world.face_detector.box(image) is not None) for image in to_pil(images)]


@torch.no_grad()
def attribute_agreement(world: World, samples: torch.Tensor, reference: torch.Tensor) -> list[float]:
    """Per sample, the share of identity attributes (hair colour and style, skin, glasses, beard) on which the
    evaluator reads it as it reads the reference; hair colour is skipped when the reference is read as bald.

    Args:
        world: its evaluator reads the attributes.
        samples: (B, 3, H, W) in [-1, 1].
        reference: (3, H, W) in [-1, 1].
    """
    columns = [list(ATTRIBUTES).index(name) for name in IDENTITY_ATTRIBUTES]
    ours, theirs = world.evaluator.attributes(samples)[:, columns], world.evaluator.attributes(reference[None])[:, columns]
    counted = torch.ones_like(theirs, dtype=torch.bool).expand_as(ours).clone()
    if int(theirs[0, IDENTITY_ATTRIBUTES.index("hair_style")]) == HAIR_STYLES.index("none"):
        counted[:, IDENTITY_ATTRIBUTES.index("hair_colour")] = False
    return (((ours == theirs) & counted).sum(1) / counted.sum(1)).tolist()


def per_sample(world: World, task: str, result, reference) -> dict[str, list[float]]:
    """The per-sample figures of one run: the tab's metric and what the world's own networks judge (realism, face
    found; face: attribute agreement; style: pattern agreement).

    Args:
        world: the embedded world.
        task: "face", "style" or "control" (whose metric is edge F1 against Canny of the source image).
        result: the run's result.
        reference: the reference or source image.

    Returns:
        Per-sample values by name.
    """
    found = {
        "metric": list(result.metric),
        "realism": world_realism(world, result.images),
        "face": faces_found(world, result.images),
    }
    if task == "face":
        found["attribute_agreement"] = attribute_agreement(world, result.images, to_tensor(reference)[0])
    if task == "control":
        found["metric"] = edge_f1(result.images, canny(to_tensor(reference))).tolist()
    return found | result.extra_metrics


def guided_rows(
    world: World,
    task: str,
    methods: tuple[str, ...],
    references: list,
    plan: Plan,
    samples: int,
    strength: float | None = None,
    **overrides,
) -> list[dict]:
    """Each method on every reference (`samples` images each, from runs of at most RUN_SAMPLES: seed k + c R for
    reference k's c-th run of R references): a row with the per-sample figures (`per_sample`, under "values", reference
    by reference) and their means under the world suite's names. The runs are shared across the launched processes.

    Args:
        world, task, plan, strength, overrides: as `task_results` takes them.
        methods: the tab's methods to run.
        references: reference (or source) images.
        samples: images per reference.
    """
    chunks = [min(RUN_SAMPLES, samples - start) for start in range(0, samples, RUN_SAMPLES)]

    def one(run: tuple[str, int, int, Any]) -> tuple[SamplingResult, dict[str, list[float]]]:
        method, k, c, reference = run
        seed = k + c * len(references)
        result = task_results(world, task, method, reference, chunks[c], plan, seed, strength, **overrides)
        return result, per_sample(world, task, result, reference)

    runs = [(method, k, c, reference) for method in methods for k, reference in enumerate(references) for c in range(len(chunks))]
    done = dict(zip([run[:3] for run in runs], distributed.shard_map(one, runs)))
    rows = []
    for method in methods:
        results, values = [], {}
        for k in range(len(references)):
            for c in range(len(chunks)):
                result, figures = done[method, k, c]
                results.append(result)
                for name, numbers in figures.items():
                    values.setdefault(name, []).extend(numbers)
        row = {"bar": f"{task} guidance", "task": task, "method": method, **timing(results), "n": len(values["metric"])}
        means = {name: statistics.fmean(figures) for name, figures in values.items()}
        row |= {METRIC_KEYS[task]: means.pop("metric"), "face_rate": means.pop("face")} | means
        rows.append(row | {"values": values, "options": results[0].options})
    return rows


METRIC_KEYS = {"face": "id_distance", "style": "style_distance", "control": "edge_f1"}
RUN_SAMPLES = int(LIMITS["samples"].high)  # the most images of one run


def face_rows(world: World, plan: Plan, methods: tuple[str, ...] = ENERGY_METHODS, **overrides) -> list[dict]:
    """Each method at the face tab's preset (with `overrides`) on held-out reference renders, scored by attribute
    agreement.

    Args:
        world: the embedded world.
        plan: how many references and seeds.
        methods: the face tab's methods to run.
        overrides: settings of the tab's preset.
    """
    references = to_pil(renders(plan.face_references, FACE_SEED)[0])
    return guided_rows(world, "face", methods, references, plan, plan.face_seeds, **overrides)


def style_rows(world: World, plan: Plan, methods: tuple[str, ...] = ENERGY_METHODS, **overrides) -> list[dict]:
    """Each method at the style tab's preset (with `overrides`) on the plan's style references; style_ratio: its
    style distance over the first method's (plain, where it comes first: the same references and seeds).

    Args:
        world, plan, methods, overrides: as `face_rows` takes them, for the style tab.
    """
    from guidance.worlds.embedded.renderer.textures import style_references

    references = style_references(plan.style_references, plan.style_first)
    rows = guided_rows(world, "style", methods, references, plan, plan.style_seeds, **overrides)
    for row in rows:
        row["style_ratio"] = row["style_distance"] / rows[0]["style_distance"]
    return rows


def control_rows(world: World, plan: Plan, methods: tuple[str, ...] = ("plain", "figd"), **overrides) -> list[dict]:
    """The ControlNet alone (plain) and with an edge energy (preset with `overrides`), on Canny maps of held-out
    renders.

    Args:
        world, plan, methods, overrides: as `face_rows` takes them, for the control tab.

    Raises:
        MethodConfigError: the world has no ControlNet.
    """
    if not world.backbone.has_controlnet:
        raise MethodConfigError("this world has no ControlNet (assets/world/controlnet)")
    sources = to_pil(renders(plan.control_maps, CONTROL_SEED)[0])
    return guided_rows(world, "control", methods, sources, plan, 1, **overrides)


def example_goals(rows: list[dict]) -> list[dict]:
    """On each energy tab's examples: every guided method moves the tab's metric at least 60% as far from plain
    sampling as FreeDoM does (the ratio of mean gains, bootstrapped over the same examples and seeds), and on Style
    the reference's pattern is drawn in at least 0.8 of the samples (pattern agreement)."""
    found = []
    for task in dict.fromkeys(r["task"] for r in rows if r["bar"] == "examples"):
        tab = {r["method"]: r["values"] for r in rows if r["bar"] == "examples" and r["task"] == task}
        plain, freedom = tab["plain"]["metric"], tab["freedom"]["metric"]
        for method, values in tab.items():
            if method == "plain":
                continue
            if task == "style":
                found.append(
                    goal_over(
                        f"style examples, {method}: pattern agreement", values["pattern_agreement"], 0.8, higher_is_better=True
                    )
                )
            if method != "freedom":
                triples = list(zip(values["metric"], plain, freedom))
                found.append(
                    goal_over(
                        f"{task} examples, {method}: metric gain over plain vs FreeDoM's",
                        triples,
                        0.6,
                        "x",
                        higher_is_better=True,
                        statistic=gain_ratio,
                    )
                )
    return found


def gain_ratio(triples: np.ndarray) -> float:
    """(mean of a method's metric - plain's) / (FreeDoM's - plain's), over rows (method, plain, FreeDoM)."""
    method, plain, freedom = triples.mean(0)
    return float((method - plain) / (freedom - plain)) if freedom != plain else float("nan")


def example_rows(world: World, plan: Plan) -> list[dict]:
    """Every method of each energy tab on the tab's own examples (the app's first inputs; on Control, the source
    renders that the app annotates by Canny), `plan.example_seeds` samples each on Face and
    `plan.condition_example_seeds` on Style and Control, at each method's own preset (strength 1): what a person sees
    in the app. The plan names the tabs and methods (`example_tasks`, `example_methods`)."""
    rows = []
    for task in plan.example_tasks:
        tab = spec(task)
        references = [
            Image.open(example[0]).convert("RGB") for example in tab.examples if example[1:] in (("",), ("canny", "none"))
        ]
        seeds = plan.example_seeds if task == "face" else plan.condition_example_seeds
        for row in guided_rows(world, task, plan.example_methods, references, plan, seeds, strength=1.0):
            rows.append(row | {"bar": "examples"})
    return rows


# ----------------------------------------------------------------------------- networks and speed


@torch.no_grad()
def verification_row(world: World, plan: Plan) -> dict:
    """ROC-AUC of -distance between face embeddings, same identity vs different identities (held-out ids)."""
    per_class = max(1, plan.id_images // len(world.backbone.class_names) // 5)
    images, _, ids = renders(plan.id_images, ID_SEED, per_class)
    embedder = world.face_embedder
    device = next(embedder.parameters()).device
    full_frame = (0.0, 0.0, 1.0, 1.0)  # rendered faces fill the frame
    embeddings = torch.cat(
        [embedder(crop(chunk.to(device), full_frame, embedder.input_size)).cpu() for chunk in images.split(250)]
    )
    upper = np.triu_indices(len(ids), 1)
    distances = torch.cdist(embeddings, embeddings).numpy()[upper]
    same = (ids[:, None] == ids[None, :]).numpy()[upper]
    row = {"bar": "face verification", "task": "face", "method": "verification", "roc_auc": roc_auc(-distances, same)}
    return row | {"n": len(ids), "identities": len(ids.unique())}


@torch.no_grad()
def ranking_row(world: World, plan: Plan) -> dict:
    """How well the style energy sees patterns: for each style example, the ROC-AUC of -E (its Gram distance) at
    telling held-out renders with the reference's background pattern (as rendered) from the others."""
    from guidance.playground.tasks import reference_energy
    from guidance.worlds.embedded.renderer.dataset import make_dataset
    from guidance.worlds.embedded.vocabulary import BG_PATTERNS

    images, _, _, attributes = make_dataset(plan.ranking_renders, seed=STYLE_SEED, split="heldout")
    pixels, background = pixels_from_uint8(images), attributes[:, list(ATTRIBUTES).index("background")]
    aucs = {}
    for example in spec("style").examples:
        kind = Path(example[0]).stem.removeprefix("style_")
        energy = reference_energy(world, "style", Image.open(example[0]).convert("RGB"), {})
        distances = torch.cat([energy(chunk.to(world.backbone.device)).cpu() for chunk in pixels.split(100)]).numpy()
        aucs[kind] = roc_auc(-distances, background == BG_PATTERNS.index(kind))
    return {"bar": "style ranking", "task": "style", "method": "ranking", "auc": aucs, "n": len(pixels)}


def speed_row(world: World, plan: Plan) -> dict:
    """Median over repeats of the time of one batch of 4 unguided (conditional, no CFG) 25-step DDIM samples,
    the final decode included."""
    conditions = list(world.backbone.class_names[:4])
    warm_up(world, "plain", conditions[0])
    runs = [generate(world, "plain", conditions, steps=25, seed=r)[0] for r in range(plan.speed_repeats)]
    seconds = statistics.median(r.seconds + r.decode_seconds for r in runs)
    return {"bar": "speed", "task": "class", "method": "speed", **timing(runs), "batch": 4, "batch_seconds": seconds}


def write_grid(images: torch.Tensor, classes: int, columns: int, path: Path) -> None:
    """A PNG with one row per class.

    Args:
        images: (N, 3, H, W) in [-1, 1], cycling through the classes (sample i has class i % classes).
        classes: how many classes.
        columns: samples per row.
        path: the PNG to write.
    """
    rows = [images[c::classes][:columns] for c in range(classes)]
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(torch.cat(rows) * 0.5 + 0.5, str(path), nrow=columns, padding=2, pad_value=1.0)
