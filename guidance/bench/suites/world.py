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
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torchvision.utils import save_image

from conditions.control import canny, edge_f1
from conditions.face import crop
from conditions.images import to_pil
from guidance.errors import MethodConfigError
from guidance.tasks import TaskRequest, preset, run_task
from guidance.worlds.embedded.dataset import ATTRIBUTES, HAIR_STYLES, IDENTITY_ATTRIBUTES
from guidance.worlds import World

from ..common import (
    CONTROL_SEED, ID_SEED, Options, Rows, SuiteOutput, balanced, class_quality, generate, goal, images_of, realism,
    renders, timing, warm_up,
)  # fmt: skip
from ..metrics import roc_auc

NEEDS = ()
FACE_SEED, STYLE_SEED = 21, 22  # make_dataset seeds of the held-out references
TASK_SAMPLING = {"face": 0.5, "style": 1.0, "control": 1.0}  # each tab's DDIM eta (app.py)


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


PLANS = {
    "quick": Plan(per_class=6, face_references=4, face_seeds=2, style_references=2, control_maps=6, id_images=200),
    "full": Plan(per_class=100, face_references=16, face_seeds=2, style_references=8, control_maps=24, id_images=1000),
}
SPEED_TARGET_S = 1.5
ENERGY_METHODS = ("plain", "freedom", "figd")


def run(world: World, opts: Options) -> SuiteOutput:
    if not opts.embedded:
        raise MethodConfigError("the world suite measures the embedded world: use --backbone embedded")
    plan = opts.plan(PLANS)
    rows, images = Rows("world"), []
    for method in ("cfg", "plain", "atg", "atg+gfcg"):
        if method == "atg" and not world.backbone.has_guide_model:
            continue
        row, samples = class_fidelity(world, method, plan)
        rows.append(row)
        if method == "cfg" and opts.grid is not None:
            write_grid(samples, len(world.backbone.class_names), min(plan.per_class, 8), opts.grid)
            images.append(str(opts.grid))
    for row in [*face_rows(world, plan), *style_rows(world, plan), *control_rows(world, plan)]:
        rows.append(row)
    for bar in (verification_row, speed_row):
        rows.append(bar(world, plan))
    return SuiteOutput(rows, goals(rows), config=asdict(plan), images=images)


def goals(rows: list[dict]) -> list[dict]:
    """The quality bars' verdicts, each with its measured figure."""
    by = {(r["task"], r["method"]): r for r in rows}
    found = []
    cfg, plain = by[("class", "cfg")], by[("class", "plain")]
    found.append(goal("class accuracy, CFG", ">= 0.95", cfg["accuracy"], cfg["accuracy"] >= 0.95))
    found.append(goal("class accuracy, unguided conditional", ">= 0.7", plain["accuracy"], plain["accuracy"] >= 0.7))
    ratio = plain["fd"] / plain["fd_floor"]
    found.append(goal("Frechet distance of unguided samples vs its floor", "<= 5x floor", ratio, ratio <= 5, "x floor"))
    off = abs(plain["saturation_ratio"] - 1)
    found.append(goal("colour saturation of samples vs renders", "within 10%", plain["saturation_ratio"], off <= 0.1, "x"))
    if ("class", "atg") in by:
        atg, both = by[("class", "atg")], by[("class", "atg+gfcg")]
        found.append(goal("ATG FD vs unguided FD at equal NFE", "lower", atg["fd"] / plain["fd"], atg["fd"] < plain["fd"], "x"))
        found.append(goal("ATG+GFCG accuracy vs ATG", "higher", both["accuracy"], both["accuracy"] > atg["accuracy"]))
    for method in ("freedom", "figd"):
        agreement = by[("face", method)]["attribute_agreement"]
        found.append(goal(f"face attribute agreement, {method}", ">= 0.8", agreement, agreement >= 0.8))
        style = by[("style", method)]
        found.append(goal(f"style distance vs unguided, {method}", "<= 0.5x", style["style_ratio"], style["style_ratio"] <= 0.5, "x"))
        found.append(goal(f"style samples judged a face, {method}", ">= 0.9", style["face_rate"], style["face_rate"] >= 0.9))
    f1 = by[("control", "figd")]["edge_f1"]
    found.append(goal("ControlNet + FIGD edge F1", ">= 0.75", f1, f1 >= 0.75))
    guided = [r["face_rate"] for r in rows if "face_rate" in r and r["method"] != "plain"]
    rate = float(np.mean(guided))
    found.append(goal("guided samples judged a face, all tabs", ">= 0.95", rate, rate >= 0.95))
    auc = by[("face", "verification")]["roc_auc"]
    found.append(goal("face-ID verification ROC-AUC, held-out identities", ">= 0.98", auc, auc >= 0.98))
    seconds = by[("class", "speed")]["batch_seconds"]
    found.append(goal("batch of 4 unguided 25-step samples", f"<= {SPEED_TARGET_S:g} s", seconds, seconds <= SPEED_TARGET_S, " s"))
    return found


# ----------------------------------------------------------------------------- class-conditional samples


def class_fidelity(world: World, method: str, plan: Plan) -> tuple[dict, torch.Tensor]:
    """Class-balanced samples: accuracy, FD against as many held-out renders (and its floor), saturation ratio."""
    names = world.backbone.class_names
    conditions = balanced(names, plan.per_class * len(names))
    steps = 2 * plan.steps if method == "plain" else plan.steps  # plain: one model call a step, ATG two
    settings = preset("classes", cfg_scale=plan.cfg_scale)
    warm_up(world, method, names[0], settings)
    results = generate(world, method, conditions, steps=steps, settings=settings, batch=plan.batch)
    images, targets = images_of(results), torch.tensor([names.index(c) for c in conditions])
    fd = realism(world, images)
    row = {"bar": "class fidelity", "task": "class", "method": method, **timing(results), **class_quality(world, images, targets)}
    row |= {"fd": fd["fd"], "fd_floor": fd["fd_floor"], "saturation_ratio": saturation(images) / saturation(renders(len(images), 11)[0])}
    return row | {"n": len(images)} | ({"cfg_scale": plan.cfg_scale} if "cfg" in method else {}), images


def saturation(images: torch.Tensor) -> float:
    """Mean HSV saturation (max - min) / max of pixels in [-1, 1]."""
    rgb = (images.clamp(-1, 1) + 1) / 2
    high, low = rgb.amax(1), rgb.amin(1)
    return float(((high - low) / high.clamp(min=1e-6)).mean())


# ----------------------------------------------------------------------------- guided tasks


def task_results(world: World, task: str, method: str, reference, samples: int, plan: Plan, seed: int, **overrides):
    """One tab run of `method` at the tab's preset (with `overrides`) on one reference (face, style) or control
    source image."""
    control = task == "control"
    request = TaskRequest(
        task=task, methods=[method], samples=samples, steps=plan.task_steps, eta=TASK_SAMPLING[task], seed=seed,
        settings=preset(task, **overrides), reference=None if control else reference, control_image=reference if control else None,
        annotator="canny", use_controlnet=control,
    )  # fmt: skip
    return run_task(world, request).results[0][1]


def face_rate(world: World, images: torch.Tensor) -> float:
    """Share of images in which the world's face detector finds a face."""
    return float(np.mean([world.face_detector.box(image) is not None for image in to_pil(images)]))


@torch.no_grad()
def attribute_agreement(world: World, samples: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean share of identity attributes (hair colour and style, skin, glasses, beard) on which the evaluator reads
    the sample as it reads the reference; hair colour is skipped when the reference is read as bald."""
    columns = [list(ATTRIBUTES).index(name) for name in IDENTITY_ATTRIBUTES]
    ours, theirs = world.evaluator.attributes(samples)[:, columns], world.evaluator.attributes(reference[None])[:, columns]
    counted = torch.ones_like(theirs, dtype=torch.bool).expand_as(ours).clone()
    if int(theirs[0, IDENTITY_ATTRIBUTES.index("hair_style")]) == HAIR_STYLES.index("none"):
        counted[:, IDENTITY_ATTRIBUTES.index("hair_colour")] = False
    return float(((ours == theirs) & counted).sum() / counted.sum())


def face_rows(world: World, plan: Plan, methods: tuple[str, ...] = ENERGY_METHODS, **overrides) -> list[dict]:
    """Each method at the face tab's preset (with `overrides`) on held-out reference renders, scored by attribute
    agreement."""
    references = renders(plan.face_references, FACE_SEED)[0]
    rows = []
    for method in methods:
        results, agreements = [], []
        for k, reference in enumerate(references):
            result = task_results(world, "face", method, to_pil(reference[None])[0], plan.face_seeds, plan, k, **overrides)
            results.append(result)
            agreements.append(attribute_agreement(world, result.images, reference))
        images = images_of(results)
        rows.append({
            "bar": "face guidance", "task": "face", "method": method, **timing(results),
            "attribute_agreement": statistics.fmean(agreements), "face_rate": face_rate(world, images),
            "id_distance": statistics.fmean(v for r in results for v in r.metric), "n": len(images),
        })  # fmt: skip
    return rows


def style_rows(world: World, plan: Plan, methods: tuple[str, ...] = ENERGY_METHODS, **overrides) -> list[dict]:
    """Each method at the style tab's preset (with `overrides`); style_ratio: its style distance over the unguided
    sample's (same seeds; "plain" must come first in `methods`)."""
    from guidance.worlds.embedded.examples import style_references

    references = style_references(plan.style_references)
    rows, unguided = [], None
    for method in methods:
        results = [task_results(world, "style", method, image, 1, plan, k, **overrides) for k, image in enumerate(references)]
        distance = statistics.fmean(v for r in results for v in r.metric)
        unguided = distance if method == "plain" else unguided
        rows.append({
            "bar": "style guidance", "task": "style", "method": method, **timing(results), "style_distance": distance,
            "style_ratio": distance / unguided, "face_rate": face_rate(world, images_of(results)), "n": len(results),
        })  # fmt: skip
    return rows


def control_rows(world: World, plan: Plan, methods: tuple[str, ...] = ("plain", "figd"), **overrides) -> list[dict]:
    """The ControlNet alone (plain) and with FIGD's edge energy (preset with `overrides`), on Canny maps of held-out
    renders."""
    if not world.backbone.has_controlnet:
        raise MethodConfigError("this world has no ControlNet (assets/world/controlnet)")
    pixels = renders(plan.control_maps, CONTROL_SEED)[0]
    sources, maps = to_pil(pixels), canny(pixels)
    rows = []
    for method in methods:
        results = [task_results(world, "control", method, image, 1, plan, k, **overrides) for k, image in enumerate(sources)]
        images = images_of(results)
        rows.append({
            "bar": "control", "task": "control", "method": method, **timing(results),
            "edge_f1": float(edge_f1(images, maps).mean()), "face_rate": face_rate(world, images), "n": len(images),
        })  # fmt: skip
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
    embeddings = torch.cat([embedder(crop(chunk.to(device), full_frame, embedder.input_size)).cpu() for chunk in images.split(250)])
    upper = np.triu_indices(len(ids), 1)
    distances = torch.cdist(embeddings, embeddings).numpy()[upper]
    same = (ids[:, None] == ids[None, :]).numpy()[upper]
    row = {"bar": "face verification", "task": "face", "method": "verification", "roc_auc": roc_auc(-distances, same)}
    return row | {"n": len(ids), "identities": len(ids.unique())}


def speed_row(world: World, plan: Plan) -> dict:
    """Median over repeats of the time of one batch of 4 unguided (conditional, no CFG) 25-step DDIM samples,
    the final decode included."""
    conditions = list(world.backbone.class_names[:4])
    warm_up(world, "plain", conditions[0])
    runs = [generate(world, "plain", conditions, steps=25, seed=r)[0] for r in range(plan.speed_repeats)]
    seconds = statistics.median(r.seconds + r.decode_seconds for r in runs)
    return {"bar": "speed", "task": "class", "method": "speed", **timing(runs), "batch": 4, "batch_seconds": seconds}


def write_grid(images: torch.Tensor, classes: int, columns: int, path: Path) -> None:
    """A PNG with one row per class; `images` cycle through the classes (sample i has class i % classes)."""
    rows = [images[c::classes][:columns] for c in range(classes)]
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(torch.cat(rows) * 0.5 + 0.5, str(path), nrow=columns, padding=2, pad_value=1.0)
