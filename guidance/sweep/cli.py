"""`python -m guidance.sweep TASK ...`: every method at every value of one setting from every seed, resumable, on
one process or shared across `accelerate launch --num_processes N -m guidance.sweep ...`.

    python -m guidance.sweep face --methods freedom,figd,figd+dsg --setting scale --values 0.02:0.4:8 \\
        --seeds 0:64 --out runs/sweep-face

Writes OUT/sweep.json (every sample's metric, realism and time; the means with 95% intervals; how it ran),
OUT/curves.png (the metric against the value, and against realism) and OUT/grid.png (a few seeds by the values).
A stopped run keeps its finished cells: the same command continues it, --force starts over.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from guidance import distributed
from guidance.errors import GuidanceError, MethodConfigError
from guidance.playground.tasks import GUIDED_BASES, SWEEP_DEFAULTS, TASKS, spec
from guidance.playground.tasks.command import SweepInputs
from guidance.sweep.plan import MAX_CELLS, base_request, check_plan, parse_methods, parse_seeds, plan_sweep
from guidance.sweep.run import run_sweep
from guidance.worlds import World
from guidance.worlds.registry import EMBEDDED

PROGRAM = "python -m guidance.sweep"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROGRAM, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("task", choices=TASKS)
    p.add_argument("--methods", help="comma-separated methods, or solvers on the solvers task (default: the tab's)")
    p.add_argument("--setting", help="one of the task's sweepable settings (default: its first)")
    p.add_argument("--values", help='a list "0.05,0.1,0.2" or a range "start:stop:count" (default: the app\'s)')
    p.add_argument("--seeds", default="0:8", help="start:stop, one sample per seed at every value (default 0:8)")
    p.add_argument("--steps", type=int, help="sampling steps (default: the task's)")
    p.add_argument("--eta", type=float, help="DDIM eta (default: the task's)")
    p.add_argument("--condition", help='class or prompt ("" unconditional; default: the task\'s)')
    p.add_argument("--reference", help="face or style image (control task: the --extra condition's)")
    p.add_argument("--control-map", help="control map (a ready map unless --annotator names one)")
    p.add_argument("--annotator", help="annotate the control image with canny, ... ('none': it is a map)")
    p.add_argument("--extra", choices=("face", "style"), help="control task: a face or style condition on top, with --reference")
    p.add_argument("--no-controlnet", dest="controlnet", action="store_false", help="control task: without the ControlNet")
    p.add_argument("--no-edge-energy", dest="edge_energy", action="store_false", help="control task: without the edge energy")
    p.add_argument("--guidance", default="cfg", choices=GUIDED_BASES, help="solvers task: the guidance every solver runs")
    p.add_argument(
        "--strength",
        default="1",
        help="x each method's guiding value (its scale, or its dsg_rate with +dsg), or 'none': the settings as given",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        type=setting_pair,
        metavar="NAME=VALUE",
        help="override a setting of the task's preset (repeatable; a window as start,end)",
    )
    p.add_argument(
        "--world", default=EMBEDDED, help="'embedded' (default), an embedded-world folder, or an SD 1.5 hub id or folder"
    )
    p.add_argument(
        "--controlnet", dest="controlnet_model", help="SD 1.5: ControlNet hub id or folder (the control task needs one)"
    )
    p.add_argument("--tiny-vae", help="SD 1.5: AutoencoderTiny hub id or folder for the guidance path")
    p.add_argument("--out", type=Path, required=True, help="the sweep's folder (every process must see it)")
    p.add_argument("--force", action="store_true", help="start over: drop the cells an earlier run left in --out")
    p.add_argument("--max-cells", type=int, default=MAX_CELLS, help=f"the most cells per run (default {MAX_CELLS})")
    p.add_argument("--threads", type=int, help="torch CPU threads per process (bit-identical results need equal counts)")
    return p


def setting_pair(text: str) -> tuple[str, str]:
    """ "name=value" as a pair."""
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"--set takes NAME=VALUE, got {text!r}")
    return name.strip(), value.strip()


def strength(text: str) -> float | None:
    """--strength: a number, or "none"."""
    if text.lower() == "none":
        return None
    try:
        return float(text)
    except ValueError as error:
        raise MethodConfigError(f"--strength is a number or 'none', got {text!r}") from error


def inputs_from(args: argparse.Namespace) -> SweepInputs:
    """The sweep's inputs from the command line."""
    return SweepInputs(
        task=args.task,
        world=args.world,
        controlnet_model=args.controlnet_model,
        tiny_vae=args.tiny_vae,
        steps=args.steps,
        eta=args.eta,
        condition=args.condition,
        reference=args.reference,
        control_map=args.control_map,
        annotator=args.annotator,
        controlnet=args.controlnet,
        edge_energy=args.edge_energy,
        extra=args.extra,
        guidance=args.guidance,
        strength=strength(args.strength),
        settings=tuple(args.set),
    )


def is_embedded(source: str) -> bool:
    """Whether --world names the embedded world (or a folder holding one) rather than Stable Diffusion 1.5."""
    from guidance.worlds.embedded import FILES, LABEL_EMBEDDING

    return source == EMBEDDED or (Path(source) / FILES["unet"] / LABEL_EMBEDDING).exists()


def load_world(source: str, device: torch.device, controlnet: str | None = None, tiny_vae: str | None = None) -> World:
    """The world a sweep samples in.

    Args:
        source: "embedded", an embedded-world folder, or an SD 1.5 hub id or folder.
        device: where it loads.
        controlnet: SD 1.5 only: a ControlNet's hub id or folder.
        tiny_vae: SD 1.5 only: an AutoencoderTiny's hub id or folder for the guidance path.

    Raises:
        WeightsUnavailableError: its weights cannot be loaded.
    """
    if is_embedded(source):
        from guidance.worlds.embedded import ASSETS
        from guidance.worlds.embedded import load_world as load_embedded

        return load_embedded(ASSETS if source == EMBEDDED else source, device)
    from guidance.worlds.sd15 import SD_CLASSES, load_sd15_world

    return load_sd15_world(source, controlnet, device, class_names=SD_CLASSES, tiny_vae=tiny_vae)


def run(args: argparse.Namespace, argv: list[str]) -> dict | None:
    """Checks everything, loads the world on this process's device, runs the sweep.

    Args:
        args: the parsed command line.
        argv: the command line as typed, recorded in sweep.json.

    Returns:
        The sweep's document (sweep.json's content) on the main process, None on the others.
    """
    from guidance.worlds.sd15 import SD_CLASSES

    inputs = inputs_from(args)
    setting = args.setting or spec(args.task).sweeps[0]
    request, recorded = base_request(inputs, () if is_embedded(args.world) else SD_CLASSES)
    methods = parse_methods(args.task, args.methods or ",".join(spec(args.task).selected))
    values = args.values or SWEEP_DEFAULTS.get(setting, "")
    plan = plan_sweep(request, setting, values, methods, parse_seeds(args.seeds), args.max_cells, recorded)
    world = load_world(inputs.world, distributed.state().device, inputs.controlnet_model, inputs.tiny_vae)
    check_plan(world, plan)
    bars: list[tqdm] = []

    def started(mine: int, resumed: int) -> None:
        """The main process's bar over its share: samples done, their rate and the time left."""
        shared = f" (process 1 of {distributed.processes()}: its share)" if distributed.processes() > 1 else ""
        bars.append(tqdm(total=mine, desc=f"{args.task} {setting}{shared}", unit="sample", disable=not distributed.is_main()))
        if resumed:
            bars[0].write(f"{resumed} of {len(plan.cells())} cells were finished in {args.out}: kept (--force starts over)")

    try:
        return run_sweep(
            world,
            plan,
            args.out,
            force=args.force,
            command=f"{PROGRAM} {shlex.join(argv)}",
            progress=lambda done, total: bars[0].update(1),
            on_start=started,
        )
    finally:
        for bar in bars:
            bar.close()


def report(data: dict, out: Path) -> str:
    """What a finished run prints: its cells, time and throughput, and the files.

    Args:
        data: the sweep's document (`run`'s result).
        out: the sweep's folder.
    """
    run = data["run"]
    rate = "" if run["samples_per_second"] is None else f", {run['samples_per_second']:.3g} samples/s"
    lines = [
        f"{run['cells_run']} cells run ({run['cells_resumed']} kept from before) in {run['wall_seconds']:.1f} s on "
        f"{run['processes']} process(es){rate}"
    ]
    lines += [f"{name}: {out / name}" for name in ("sweep.json", "curves.png", "grid.png")]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """`python -m guidance.sweep`.

    Args:
        argv: the arguments after the program's name (default: sys.argv's).

    Returns:
        The exit status: 0, or 2 after a user error, printed on one line.
    """
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    distributed.state()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        data = run(args, argv)
    except GuidanceError as error:
        if distributed.is_main():
            print(f"guidance.sweep: {error}", file=sys.stderr)
        return 2
    finally:
        distributed.finish()
    if data is not None:
        print(report(data, args.out))
    return 0
