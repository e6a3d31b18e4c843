"""`python -m guidance.bench SUITE ...`: run a suite, write its JSON (and plots), print a table.

    python -m guidance.bench SUITE [--backbone embedded|sd15-random|sdxl-random|sd3-random|sd15] [--device cpu|cuda] [--seeds N]
                                   [--quick] --json PATH [--plots DIR] [--world PATH] [--grid PNG]
                                   [--size PX] [--threads N] [--plan NAME] [--grids G,...|all] [--data D]
    python -m guidance.bench report JSON... [--out docs/benchmarks.md] [--figures docs/figures]

SUITE is one of world, figd, dsg, gfcg, solvers, gpu, profile (where a step's time goes, part by part), presets,
preview, memory (each gradient method's peak memory against an unguided step, with and without gradient checkpointing),
load (the app under a crowd, a soak of runs and Stop), families (each method against unguided on tiny SD, SDXL and SD 3).
--quick is the reduced configuration (minutes on a CPU
for the embedded world; docs/benchmark-notes.md has the times); sd15-random is the SD 1.5 architecture with random weights
(timing only) at --size pixels (default 512 on CUDA, 128 on a CPU, where its plans also take fewer steps); sdxl-random
and sd3-random are SDXL's and SD 3 medium's denoisers and VAEs at their real sizes with random weights, as guided
pipelines (guidance.bench.family_random; --size default 1024 on CUDA, 256 on a CPU).
--plan picks one of a suite's named plans instead of --quick's or the full one (profile: figd-sd, FIGD against
FreeDoM per step on sd15-random with the full VAE and the tiny decoder). On a CPU that other processes share, set OMP_WAIT_POLICY=PASSIVE in the environment: spinning OpenMP
threads then stop stalling each other (it must be set before Python starts; the JSON records it).

Several processes (`accelerate launch --num_processes N -m guidance.bench SUITE ...`, or torchrun) share the samples
of world, solvers, gfcg and dsg: each samples its share on its own device, every process gets every result, and the
main process writes the JSON (its `processes` says how many), whose figures equal one process's (timings aside).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import sys
import time
from pathlib import Path

import torch

from guidance import distributed
from guidance.bench import loading, report
from guidance.bench.common import BenchUnavailable, Options, SuiteOutput
from guidance.bench.machine import describe_machine
from guidance.bench.plots import plot
from guidance.bench.suites import SUITES
from guidance.errors import GuidanceError
from guidance.schedulers.grids import GRIDS


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m guidance.bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("suite", choices=tuple(SUITES))
    p.add_argument("--backbone", choices=loading.BACKBONES, default="embedded")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--seeds", type=int, default=None, help="seeds per setting (default: the suite's plan)")
    p.add_argument("--quick", action="store_true", help="the reduced configuration")
    p.add_argument("--json", type=Path, required=True, help="where to write the results")
    p.add_argument("--plots", type=Path, default=None, help="folder for PNG plots")
    p.add_argument("--world", type=Path, default=None, help="the embedded world's folder (default assets/world)")
    p.add_argument("--grid", type=Path, default=None, help="world and solvers suites: write a sample grid here")
    p.add_argument("--size", type=int, default=None, help="sd15-random, sdxl-random, sd3-random: image size in pixels")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--plan", default=None, help="one of the suite's named plans (default: --quick's, or the full one)")
    p.add_argument(
        "--grids",
        type=time_grids,
        default=None,
        help=f"solvers: shared time grids, comma-separated, or 'all' ({', '.join(GRIDS)})",
    )
    p.add_argument(
        "--data",
        choices=("embedded", "mixture"),
        default="embedded",
        help="solvers: the backbone's world, or a Gaussian mixture with an exact denoiser",
    )
    return p


def time_grids(text: str) -> tuple[str, ...]:
    """--grids: names of GRIDS, comma-separated, or "all".

    Args:
        text: the option's value.

    Raises:
        argparse.ArgumentTypeError: an unknown name.
    """
    names = GRIDS if text == "all" else tuple(name.strip() for name in text.split(","))
    unknown = [name for name in names if name not in GRIDS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown grid(s) {unknown}; known: {', '.join(GRIDS)} or all")
    return names


def document(
    suite: str, opts: Options, output: SuiteOutput, machine: dict, seconds: float, image_size: int, argv: list[str]
) -> dict:
    """The JSON document: suite, backbone, device, machine, rows, and how they were made.

    Args:
        suite: the suite's name.
        opts: how it ran.
        output: what the suite returned.
        machine: from `describe_machine`.
        seconds: the wall time of loading and running.
        image_size: the backbone's pixel size.
        argv: the command line, recorded as `command`.
    """
    notes = list(output.notes)
    if opts.backbone == "sd15-random":
        notes.insert(
            0,
            f"sd15-random: the SD 1.5 architecture at its real sizes with random weights, {image_size} px, "
            f"on {opts.device}: right for timing, not for quality (quality figures are not computed)",
        )
    if opts.backbone in loading.FAMILY_RANDOM:
        notes.insert(
            0,
            f"{opts.backbone}: the denoiser and VAE at their published sizes with random weights and small text encoders "
            f"of the published widths (guidance.bench.family_random), {image_size} px, on {opts.device}: right for "
            "memory and timing, not for quality",
        )
    return {
        "suite": suite,
        "backbone": output.backbone or ("mixture" if opts.data == "mixture" else opts.backbone),
        "data": opts.data,
        "device": opts.device,
        "machine": machine,
        "quick": opts.quick,
        "plan": opts.plan_name,
        "image_size": image_size,
        "command": command(argv),
        "processes": distributed.processes(),
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "wall_seconds": seconds,
        "config": output.config,
        "goals": output.goals,
        "notes": notes,
        "images": output.images,
        "rows": output.rows,
    }


def command(argv: list[str]) -> str:
    """The command line that reproduces a run, with OMP_WAIT_POLICY when it was set."""
    policy = os.environ.get("OMP_WAIT_POLICY")
    return ("" if policy is None else f"OMP_WAIT_POLICY={policy} ") + "python -m guidance.bench " + shlex.join(argv)


def run(args: argparse.Namespace, argv: list[str]) -> dict:
    """Check, load the world, run the suite.

    Args:
        args: the parsed command line.
        argv: the command line as typed.

    Returns:
        The JSON document (`document`).

    Raises:
        BenchUnavailable, GuidanceError: with a readable message.
    """
    module = SUITES[args.suite]
    opts = Options(
        args.backbone, args.device, args.quick, args.seeds, args.size, args.world, args.grid, args.plan, args.grids, args.data
    )
    if (opts.data == "mixture" or opts.time_grids) and not getattr(module, "GRIDS_AND_DATA", False):
        raise BenchUnavailable(f"--grids and --data mixture are the solvers suite's; {args.suite} has neither")
    if opts.plan_name is not None:
        opts.plan(module.PLANS)  # an unknown plan fails before the world loads
    if hasattr(module, "check"):
        module.check(opts)
        opts = module.prepare(opts)
    if opts.device == "cuda" and not torch.cuda.is_available():
        raise BenchUnavailable("--device cuda was asked for, but torch.cuda.is_available() is False here")
    start, machine = time.perf_counter(), describe_machine()
    world = loading.load(opts, module.NEEDS)
    output = module.run(world, opts)
    machine["load_1m_end"] = describe_machine()["load_1m"]
    return document(args.suite, opts, output, machine, time.perf_counter() - start, world.backbone.image_size, argv)


def main(argv: list[str] | None = None) -> int:
    """`python -m guidance.bench`: a suite's JSON (and plots) and its table on stdout, or `report ...`.

    Args:
        argv: the arguments after the program's name (default: sys.argv's).

    Returns:
        The exit status: 0, or 2 when the suite cannot run here or a user error stops it.
    """
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["report"]:
        return report.main(argv[1:])
    args = parser().parse_args(argv)
    distributed.state()  # under accelerate launch or torchrun: the process group, and this process's GPU
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        data = run(args, argv)
    except (BenchUnavailable, GuidanceError) as error:
        if distributed.is_main():
            print(f"guidance.bench {args.suite}: {error}", file=sys.stderr)
        return 2
    finally:
        distributed.finish()
    if not distributed.is_main():  # the main process writes what every process computed together
        return 0
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(data, indent=1) + "\n")
    print(report.describe(data), report.table(data["rows"]), sep="\n\n")
    if data["goals"]:
        print("\n" + report.goals_table(data["goals"]))
    if args.plots is not None:
        for path in plot(data, args.plots):
            print(f"plot: {path}")
    print(f"json: {args.json}")
    return 0
