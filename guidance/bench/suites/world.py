"""`world`: the embedded world's quality bars.

Class fidelity (evaluator accuracy of the requested class) with CFG and unguided; Frechet distance of
unconditional samples to held-out renders next to its floor; ControlNet edge F1; face-ID verification
ROC-AUC on held-out identities; the time of a batch of 4 unguided 25-step samples.
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
from guidance.errors import MethodConfigError
from guidance.tasks import preset
from guidance.worlds import World

from ..common import (
    CONTROL_SEED, ID_SEED, Options, Rows, SuiteOutput, balanced, class_quality, generate, goal, images_of, realism,
    renders, timing, warm_up,
)  # fmt: skip
from ..metrics import roc_auc

NEEDS = ()

@dataclass(frozen=True)
class Plan:
    per_class: int  # samples per class for class fidelity (CFG and unguided)
    fd_samples: int  # N of the Frechet distance
    control_maps: int
    id_images: int  # held-out renders for verification, 5 per identity
    steps: int = 50  # DDIM steps of class fidelity and ControlNet samples
    fd_steps: int = 25  # DDIM steps of the unconditional samples of the Frechet distance
    cfg_scale: float = 2.5
    batch: int = 16
    speed_repeats: int = 5


PLANS = {
    "quick": Plan(per_class=3, fd_samples=60, control_maps=12, id_images=200, steps=25),
    "full": Plan(per_class=10, fd_samples=1000, control_maps=50, id_images=1000),
}
SPEED_TARGET_S = 2.0


def run(world: World, opts: Options) -> SuiteOutput:
    if not opts.embedded:
        raise MethodConfigError("the world suite measures the embedded world: use --backbone embedded")
    plan = opts.plan(PLANS)
    rows, images = Rows("world"), []
    for method in ("cfg", "plain"):
        row, samples = class_fidelity(world, method, plan)
        rows.append(row)
        if method == "cfg" and opts.grid is not None:
            write_grid(samples, len(world.backbone.class_names), min(plan.per_class, 8), opts.grid)
            images.append(str(opts.grid))
    for bar in (fd_row, control_row, verification_row, speed_row):
        rows.append(bar(world, plan))
    return SuiteOutput(rows, goals(rows), config=asdict(plan), images=images)


def goals(rows: list[dict]) -> list[dict]:
    """The quality bars' verdicts, each with its measured figure."""
    by = {(r["bar"], r["method"]): r for r in rows}
    cfg, plain = by[("class fidelity", "cfg")]["accuracy"], by[("class fidelity", "plain")]["accuracy"]
    fd = by[("Frechet distance", "plain")]
    ratio = fd["fd"] / fd["fd_floor"]
    f1, auc = by[("ControlNet", "plain")]["edge_f1"], by[("face verification", "verification")]["roc_auc"]
    seconds = by[("speed", "plain")]["batch_seconds"]
    return [
        goal("class accuracy, CFG", ">= 90%", cfg, cfg >= 0.9),
        goal("class accuracy, unguided conditional", ">= 70%", plain, plain >= 0.7),
        goal("Frechet distance of samples vs its floor", "<= 3x floor", ratio, ratio <= 3, "x floor"),
        goal("ControlNet edge F1", ">= 0.6", f1, f1 >= 0.6),
        goal("face-ID verification ROC-AUC, held-out identities", ">= 0.98", auc, auc >= 0.98),
        goal("batch of 4 unguided 25-step samples", f"<= {SPEED_TARGET_S:g} s", seconds, seconds <= SPEED_TARGET_S, " s"),
    ]


def class_fidelity(world: World, method: str, plan: Plan) -> tuple[dict, torch.Tensor]:
    """Class-balanced samples with `method` (cfg: the classes preset's scale; plain: no guidance), 50 DDIM steps."""
    names = world.backbone.class_names
    conditions = balanced(names, plan.per_class * len(names))
    settings = preset("classes", cfg_scale=plan.cfg_scale)
    warm_up(world, method, names[0], settings)
    results = generate(world, method, conditions, steps=plan.steps, settings=settings, batch=plan.batch)
    images, targets = images_of(results), torch.tensor([names.index(c) for c in conditions])
    row = {"bar": "class fidelity", "task": "class", "method": method, **timing(results), **class_quality(world, images, targets)}
    return row | {"n": len(images)} | ({"cfg_scale": plan.cfg_scale} if method == "cfg" else {}), images


def fd_row(world: World, plan: Plan) -> dict:
    """Unconditional samples against held-out renders; the floor is two disjoint render sets of the same size."""
    results = generate(world, "plain", [None] * plan.fd_samples, steps=plan.fd_steps, batch=plan.batch, seed=1000)
    row = {"bar": "Frechet distance", "task": "unconditional", "method": "plain", **timing(results)}
    return row | realism(world, images_of(results)) | {"n": plan.fd_samples}


def control_row(world: World, plan: Plan) -> dict:
    """Samples conditioned on Canny maps of held-out renders (and their class); F1 of Canny(sample) vs map."""
    if not world.backbone.has_controlnet:
        raise MethodConfigError("this world has no ControlNet (assets/world/controlnet)")
    images, labels, _ = renders(plan.control_maps, CONTROL_SEED)
    maps = canny(images)
    conditions = [world.backbone.class_names[i] for i in labels.tolist()]
    control = maps.float().expand(-1, 3, -1, -1)
    results = generate(world, "plain", conditions, steps=plan.steps, batch=plan.batch, seed=2000, control=control)
    f1 = edge_f1(images_of(results), maps)
    return {"bar": "ControlNet", "task": "control", "method": "plain", **timing(results), "edge_f1": float(f1.mean()), "n": len(f1)}


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
    auc = roc_auc(-distances, same)
    row = {"bar": "face verification", "task": "face", "method": "verification", "roc_auc": auc}
    return row | {"n": len(ids), "identities": len(ids.unique())}


def speed_row(world: World, plan: Plan) -> dict:
    """Median over repeats of the time of one batch of 4 unguided (conditional, no CFG) 25-step DDIM samples."""
    conditions = list(world.backbone.class_names[:4])
    warm_up(world, "plain", conditions[0])
    runs = [generate(world, "plain", conditions, steps=25, seed=r)[0] for r in range(plan.speed_repeats)]
    seconds = statistics.median(r.seconds for r in runs)
    return {"bar": "speed", "task": "class", "method": "plain", **timing(runs), "batch": 4, "batch_seconds": seconds}


def write_grid(images: torch.Tensor, classes: int, columns: int, path: Path) -> None:
    """A PNG with one row per class; `images` cycle through the classes (sample i has class i % classes)."""
    rows = [images[c::classes][:columns] for c in range(classes)]
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(torch.cat(rows) * 0.5 + 0.5, str(path), nrow=columns, padding=2, pad_value=1.0)
