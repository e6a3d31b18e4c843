"""The playground's web app: one tab per task (guidance.playground.tasks.SPECS), each run one call to guidance.playground.tasks.run_task.

    python app.py [--host HOST] [--port PORT] [--world PATH] [--model ID_OR_PATH] [--controlnet ID_OR_PATH]
                  [--queue-size N] [--share]

Tabs: Face, Style, Control map, Classes, Solvers. Each tab's run is an API endpoint (/face, /style,
/control, /classes, /solvers) whose inputs all default to the tab's first example, streaming x0_hat previews
before its result; each tab's sweep is another (/face_sweep, ...), and /face_sweep_command, ... names the `python -m guidance.sweep`
command that runs it at scale; /stop stops the caller's run or sweep
between two steps. One run samples at a time; at most --queue-size runs wait behind it (env GUIDANCE_QUEUE_SIZE), one
per visitor (guidance.playground.crowd), and the endpoints that do not sample skip the queue.
The handlers are in guidance/playground/app_handlers.py; this file lays out the page and wires it.
The launcher decides which weights may be loaded: the embedded world
from --world (env GUIDANCE_WORLD, default assets/world), a diffusers model of any family (SD 1.x/2.x,
SDXL or SD 3, read from its model_index.json) from --model and --controlnet (env GUIDANCE_MODEL, GUIDANCE_CONTROLNET;
"none" offers none).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: idle OpenMP threads sleep, not spin, on a busy CPU

try:  # ZeroGPU: `spaces` must be imported before torch initialises CUDA
    import spaces
except ImportError:
    spaces = None

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from guidance.playground.app_handlers import (
    SNAPSHOTS,
    ExampleCache,
    make_admission,
    make_example,
    make_run,
    make_sweep,
    make_sweep_command,
    solver_paths_view,
    status,
)
from guidance.playground.crowd import DEFAULT_QUEUE_SIZE, Admissions, exposure
from guidance.playground.export import TABLE_COLUMNS
from guidance.playground.launcher import ASSETS, MAX_FILE_BYTES, SD, SD15, WorldRegistry  # noqa: F401  (app.SD: for callers)
from guidance.playground.stops import Stops
from guidance.playground.tasks import EXAMPLES, SPECS, SWEEP_DEFAULTS, SWEEP_SETTINGS, SWEEP_VALUES, TaskSpec  # noqa: F401  (app.EXAMPLES: for callers)
from guidance.playground.upkeep import CacheCleaner, limit_malloc_arenas
from guidance.playground.widgets import common_inputs, condition_widget, has_method_settings, method_inputs, task_inputs

BENCH_FIGURES = Path(__file__).resolve().parent / "docs" / "figures"  # written by `python -m guidance.bench report`
SWEEP_SEEDS = 8  # the most seeds per value a sweep takes in the app (the sweep command takes any number)
SCALE_COMMAND = (
    "The same sweep at scale (one sample per seed; raise --seeds; on N GPUs: accelerate launch --num_processes N "
    "-m guidance.sweep ...; README, Sweeps at scale)"
)


# ----------------------------------------------------------------------------- layout
# Wherever a function takes them: `spec` is the tab's TaskSpec, `backbone` the page's backbone selector, `inputs` the
# tab's input widgets by API parameter name, and `cache` how its examples are cached. Build inside a gr.Blocks.


def benchmark_figures(suite: str, folder: Path = BENCH_FIGURES) -> list[Path]:
    """A suite's committed plots on the embedded world: the full run's where there is one, else the quick run's.

    Args:
        suite: the guidance.bench suite's name.
        folder: where the plots are.

    Returns:
        The PNGs' paths, sorted; none where none is committed.
    """
    for mode in ("full", "quick"):
        if found := sorted(folder.glob(f"{suite}-embedded-{mode}-*.png")):
            return found
    return []


def benchmark_panel(spec: TaskSpec) -> None:
    """The task's benchmark plots from docs/benchmarks.md, in a closed accordion (nothing when none are committed)."""
    figures = benchmark_figures(spec.benchmark) if spec.benchmark else []
    if figures:
        with gr.Accordion(f"Benchmark plots: python -m guidance.bench {spec.benchmark} (docs/benchmarks.md)", open=False):
            for path in figures:
                gr.Image(str(path), show_label=False, interactive=False, elem_id=f"{spec.name}-benchmark-{path.stem}")


def solver_paths_section(spec: TaskSpec, inputs: dict[str, gr.components.Component]) -> None:
    """The Solvers tab's teaching view: the selected solvers' paths on a Gaussian mixture with an exact denoiser, on the
    tab's grid and NFE (app_handlers.solver_paths_view), drawn at first for the tab's defaults."""
    names = ["methods", "grid", spec.runs.steps_key]
    first = solver_paths_view(*(initial_value(inputs[name]) for name in names))
    with gr.Accordion(
        "Teaching view: the same solvers on a Gaussian mixture, whose denoiser is exact",
        open=True,
        elem_id=f"{spec.name}-mixture",
    ):
        gr.Markdown(
            "Eight Gaussians on a ring. Each line is one solver's path from the same noise (a dot per step) to "
            "where it ends; a star is a mode. Change the solvers, the grid or the NFE above, then draw again."
        )
        plot = gr.Plot(first, label="Paths from the same noise", show_label=False, format="png", elem_id=f"{spec.name}-paths")
        draw = gr.Button("Draw the paths", elem_id=f"{spec.name}-paths-draw")
    draw.click(solver_paths_view, [inputs[name] for name in names], plot, api_name=f"{spec.name}_paths", queue=False)


def result_outputs(spec: TaskSpec) -> list[gr.components.Component]:
    """The tab's result widgets.

    Returns:
        Gallery, summary JSON, time and energy plots, metrics table, what was used, downloads: make_run's outputs in
        order, before the status line and the trajectory.
    """
    images = gr.Gallery(
        label="Results", columns=4, height="auto", format="png", object_fit="contain", elem_id=f"{spec.name}-gallery"
    )
    with gr.Row():
        time_plot = gr.Plot(label="Time per step", format="png", elem_id=f"{spec.name}-time-plot")
        energy_plot = gr.Plot(label="Energy per step", format="png", elem_id=f"{spec.name}-energy-plot")
    table = gr.Dataframe(headers=list(TABLE_COLUMNS), label="Metrics", interactive=False, elem_id=f"{spec.name}-metrics")
    with gr.Row():
        used = gr.Gallery(
            label="Face crop / control map used",
            columns=3,
            height="auto",
            format="png",
            object_fit="contain",
            allow_preview=False,
            elem_id=f"{spec.name}-artefacts",
        )
        files = gr.File(label="Download: images and figures as JSON", file_count="multiple", elem_id=f"{spec.name}-downloads")
    with gr.Accordion("Timings and metrics (JSON)", open=False):
        summary = gr.JSON(label="Per method", elem_id=f"{spec.name}-json")
    return [images, summary, time_plot, energy_plot, table, used, files]


def trajectory_output(spec: TaskSpec) -> gr.Image:
    """The trajectory image, shown after a run: per method, x0_hat at evenly spaced steps, then the final image."""
    return gr.Image(
        label=f"Trajectory: x0_hat at {SNAPSHOTS} steps per method",
        type="pil",
        format="png",
        interactive=False,
        elem_id=f"{spec.name}-trajectory",
    )


def sweep_section(
    spec: TaskSpec,
    backbone: gr.Dropdown,
    inputs: dict[str, gr.components.Component],
    run_sweep: Callable,
    command_of: Callable,
    admissions: Admissions,
) -> None:
    """Every selected method at 3-8 values of one of the task's settings (TaskSpec.sweeps), from 1-8 seeds per value,
    and the command that runs the same sweep at scale.

    Args:
        run_sweep: the tab's sweep handler (make_sweep), the /<task>_sweep endpoint.
        command_of: the handler that names the command (make_sweep_command), the /<task>_sweep_command endpoint.
        admissions: who may join the queue (the sweep's validator).
    """
    low, high = SWEEP_VALUES
    with gr.Accordion(
        f"Sweep: one setting, {low} to {high} values (Stop above ends it)", open=False, elem_id=f"{spec.name}-sweep"
    ):
        with gr.Row():
            choices = [(SWEEP_SETTINGS[s], s) for s in spec.sweeps]
            setting = gr.Dropdown(choices, value=spec.sweeps[0], label="Setting", elem_id=f"{spec.name}-sweep-setting")
            values = gr.Textbox(
                SWEEP_DEFAULTS[spec.sweeps[0]],
                label="Values",
                info="a list (0.02, 0.05, 0.1) or a range start:stop:count",
                elem_id=f"{spec.name}-sweep-values",
            )
            seeds = gr.Slider(
                1,
                SWEEP_SEEDS,
                value=1,
                step=1,
                label="Seeds per value",
                info="the seed above and the ones after it",
                elem_id=f"{spec.name}-sweep-seeds",
            )
            start = gr.Button("Sweep", variant="primary", elem_id=f"{spec.name}-sweep-run")
        grid = gr.Image(
            label="Grid: methods x values", type="pil", format="png", interactive=False, elem_id=f"{spec.name}-sweep-grid"
        )
        with gr.Row():
            metric = gr.Plot(label="Metric against the value", format="png", elem_id=f"{spec.name}-sweep-metric")
            seconds = gr.Plot(label="Seconds per image against the value", format="png", elem_id=f"{spec.name}-sweep-seconds")
        files = gr.File(
            label="Download: grid and figures as PNG, data as JSON", file_count="multiple", elem_id=f"{spec.name}-sweep-downloads"
        )
        with gr.Accordion("Sweep data (JSON)", open=False):
            summary = gr.JSON(label="Per method", elem_id=f"{spec.name}-sweep-json")
        with gr.Row():
            command = gr.Code(
                label=SCALE_COMMAND,
                language="shell",
                lines=2,
                interactive=False,
                wrap_lines=True,
                elem_id=f"{spec.name}-sweep-command",
            )
            name = gr.Button("Name the command", elem_id=f"{spec.name}-sweep-name", scale=0)
    setting.input(lambda key: SWEEP_DEFAULTS[key], setting, values, api_visibility="private", queue=False)  # the user's pick only
    sweep_inputs = {"backbone": backbone, **inputs, "sweep_setting": setting, "sweep_values": values, "sweep_seeds": seeds}
    start.click(
        run_sweep,
        inputs_kwargs=sweep_inputs,
        outputs=[grid, metric, seconds, files, summary, command],
        api_name=f"{spec.name}_sweep",
        concurrency_id="sampling",
        show_progress_on=grid,
        preprocess=False,
        validator=make_admission(admissions, list(sweep_inputs), "sweep_values"),
    )
    name.click(
        command_of,
        inputs_kwargs=sweep_inputs,
        outputs=command,
        api_name=f"{spec.name}_sweep_command",
        preprocess=False,
        queue=False,
    )


def initial_value(component: gr.components.Component) -> Any:
    """A widget's starting value as an example row holds it.

    Args:
        component: the widget.

    Returns:
        Its value; an image's file path.
    """
    value = component.value
    return value["path"] if isinstance(value, dict) and "path" in value else value


def examples_section(
    spec: TaskSpec, inputs: dict[str, gr.components.Component], outputs: list, example: Callable, cache: ExampleCache
) -> gr.Examples:
    """The task's examples. Each row holds every input of the tab (those it does not show at their defaults), so a
    cached example's outputs match every widget it sets. Caching is Gradio's own, as `cache` says.

    Args:
        outputs: the widgets an example fills: the result widgets and the trajectory.
        example: gr.Examples' function (make_example).

    Returns:
        The gr.Examples.
    """
    names = list(inputs)
    rows = [
        [dict(zip(spec.example_fields, row)).get(name, initial_value(inputs[name])) for name in names] for row in spec.examples
    ]
    return gr.Examples(
        rows,
        list(inputs.values()),
        outputs=outputs,
        fn=example,
        cache_examples=cache.enabled,
        cache_mode=cache.mode,
        visible_columns=[names.index(field) for field in spec.example_fields],
        preprocess=False,
        label="Examples",
        elem_id=f"{spec.name}-examples",
        api_visibility="private",
    )


def build_tab(
    spec: TaskSpec,
    backbone: gr.Dropdown,
    condition: dict[str, Any],
    status_line: gr.Markdown,
    run: Callable,
    run_sweep: Callable,
    command_of: Callable,
    cache: ExampleCache,
    admissions: Admissions | None = None,
) -> tuple:
    """One tab, wired to its handlers.

    Args:
        condition: the condition widget's choices and value on the start-up backbone (condition_widget).
        status_line: the page's status line, which a run updates.
        run: the tab's run handler (make_run), the /<task> endpoint.
        run_sweep: the tab's sweep handler; see sweep_section.
        command_of: the tab's sweep-command handler; see sweep_section.
        admissions: who may join the queue (the run's and the sweep's validator); None: a line of its own.

    Returns:
        Its condition widget (the backbone selector updates it) and its Stop button.
    """
    admissions = admissions or Admissions()
    with gr.Tab(spec.title, id=spec.name):
        gr.Markdown(spec.intro)
        with gr.Row():
            with gr.Column(scale=2):
                inputs = task_inputs(spec)  # what the task takes (uploads, map options), at its first example
                inputs |= common_inputs(spec, condition)
                if has_method_settings(spec):  # the options its methods declare
                    with gr.Accordion("Method settings", open=False, elem_id=f"{spec.name}-method-settings"):
                        inputs |= method_inputs(spec)
                with gr.Row():
                    start = gr.Button("Run", variant="primary", elem_id=f"{spec.name}-run")
                    halt = gr.Button("Stop", variant="stop", elem_id=f"{spec.name}-stop")
                examples_column = gr.Column()
            with gr.Column(scale=3):
                outputs = result_outputs(spec)
                trajectory = trajectory_output(spec)
                if spec.runs_over == "schedulers":
                    solver_paths_section(spec, inputs)
                benchmark_panel(spec)
        with examples_column:
            examples_section(spec, inputs, [*outputs, trajectory], make_example(run, list(inputs), cache.backbone), cache)
        sweep_section(spec, backbone, inputs, run_sweep, command_of, admissions)
        run_inputs = {"backbone": backbone, **inputs}
        start.click(
            run,
            inputs_kwargs=run_inputs,
            outputs=[*outputs, status_line, trajectory],
            api_name=spec.name,
            concurrency_id="sampling",
            show_progress_on=outputs[0],
            preprocess=False,  # uploads reach load_image unopened
            validator=make_admission(admissions, list(run_inputs), "methods"),
        )
    return inputs["condition"], halt


def build_app(
    world: str | Path = ASSETS,
    sd_model: str | None = None,
    controlnet: str | None = None,
    tiny_vae: str | None = None,
    queue_size: int = DEFAULT_QUEUE_SIZE,
    cache_seconds: int = 3600,
) -> gr.Blocks:
    """The whole UI; every run goes through guidance.playground.tasks.run_task. Queued, one run at a time, at most
    `queue_size` waiting, one per visitor (guidance.playground.crowd); Stop, the status line and the sweep command
    skip the queue.

    Args:
        world: the embedded world's folder.
        sd_model: a diffusers model's hub id or folder (SD 1.x/2.x, SDXL or SD 3); None offers none.
        controlnet: the ControlNet's hub id or folder (SD 1.x/2.x, SDXL).
        tiny_vae: an AutoencoderTiny's hub id or folder for SD 1.x/2.x's guidance path.
        queue_size: the most runs waiting behind the one running.
        cache_seconds: how long uploads and outputs stay in Gradio's cache, checked as often (its `delete_cache`, and
            guidance.playground.upkeep.CacheCleaner, which goes on where Gradio's cleaning stops).

    Returns:
        The queued gr.Blocks, to launch.
    """
    limit_malloc_arenas()
    worlds = WorldRegistry(Path(world), sd_model, controlnet, tiny_vae)
    stops, downloads, admissions = Stops(), Path(tempfile.mkdtemp(prefix="guidance-app-")), Admissions(queue_size)

    async def stop(request: gr.Request) -> None:
        """Stops the caller's run or sweep before its next step (on the event loop: it waits for no worker thread)."""
        if not stops.stop(request.session_hash):
            gr.Info("Nothing is running.")

    def leave(request: gr.Request) -> None:
        """Forgets the run of a visitor who closed the page."""
        admissions.release(request.session_hash)

    def arrive(key: str) -> str:
        """The status line when a page opens: the backbone, and how full the line is (it also opens the visitor's
        session, so that their first run's request to join the line need not)."""
        return f"{status(worlds, key)} · {admissions.line()}"

    def switch(key: str) -> list:
        """The status line and every tab's prompt / class widget for the chosen backbone."""
        return [status(worlds, key), *(gr.Dropdown(**condition_widget(spec, worlds, key)) for spec in SPECS)]

    with gr.Blocks(title="Training-free guidance playground", delete_cache=(cache_seconds, cache_seconds)) as demo:
        gr.Markdown("# Training-free guided diffusion\nFreeDoM, FIGD, DSG, GFCG and EVODiff side by side, from the same seed.")
        with gr.Row():
            default = worlds.default()
            choices = [(worlds.title(key), key) for key in worlds.keys()]
            backbone = gr.Dropdown(choices, value=default, label="Backbone", scale=1, elem_id="backbone")
            status_line = gr.Markdown(status(worlds, default), label="Status", elem_id="status")
        handlers = [
            (
                make_run(spec, worlds, stops, downloads, spaces, admissions),
                make_sweep(spec, worlds, stops, downloads, spaces, admissions),
                make_sweep_command(spec, worlds),
            )
            for spec in SPECS
        ]
        cache = ExampleCache(default)
        tabs = [
            build_tab(spec, backbone, condition_widget(spec, worlds, default), status_line, *pair, cache, admissions)
            for spec, pair in zip(SPECS, handlers)
        ]
        conditions, halts = zip(*tabs)
        gr.on([halt.click for halt in halts], stop, api_name="stop", queue=False)
        backbone.change(switch, backbone, [status_line, *conditions], api_visibility="private", queue=False)
        demo.load(arrive, backbone, status_line, api_visibility="private", queue=False)
        demo.unload(leave)
    CacheCleaner(demo, every=cache_seconds, age=cache_seconds)  # Gradio's own cleaning stops at its first race
    return demo.queue(max_size=admissions.gradio_max_size, default_concurrency_limit=1)


def public_endpoints(demo: gr.Blocks) -> list[str]:
    """The API endpoints anyone who reaches the app may call, as "/name"."""
    return [f"/{fn.api_name}" for fn in demo.fns.values() if fn.api_name and fn.api_visibility != "private"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The launcher's options (the module docstring); the environment gives their defaults, "none" as --model None.

    Args:
        argv: the arguments (None: sys.argv's).

    Returns:
        The options.
    """
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument(
        "--world", type=Path, default=Path(os.environ.get("GUIDANCE_WORLD", ASSETS)), help="embedded-world folder"
    )
    parser.add_argument(
        "--model",
        dest="sd_model",
        default=os.environ.get("GUIDANCE_MODEL", SD15),
        help="a diffusers model's hub id or folder: SD 1.x/2.x, SDXL or SD 3 (its model_index.json says which); 'none' offers none",
    )
    parser.add_argument(
        "--controlnet", default=os.environ.get("GUIDANCE_CONTROLNET"), help="ControlNet hub id or folder (SD 1.x/2.x, SDXL)"
    )
    parser.add_argument(
        "--sd-tiny-vae",
        default=os.environ.get("GUIDANCE_SD_TINY_VAE"),
        help="AutoencoderTiny hub id or folder for SD 1.5's guidance path, e.g. madebyollin/taesd",
    )
    parser.add_argument(
        "--queue-size",
        type=int,
        default=int(os.environ.get("GUIDANCE_QUEUE_SIZE", DEFAULT_QUEUE_SIZE)),
        help=f"the most runs waiting behind the one running (default {DEFAULT_QUEUE_SIZE})",
    )
    parser.add_argument("--share", action="store_true", help="also serve through a public gradio.live link")
    args = parser.parse_args(argv)
    args.sd_model = None if str(args.sd_model).lower() in ("", "none") else args.sd_model
    return args


def main(argv: list[str] | None = None) -> None:
    """Builds the app from the command line's options and serves it.

    Args:
        argv: the arguments (None: sys.argv's).
    """
    args = parse_args(argv)
    demo = build_app(args.world, args.sd_model, args.controlnet, args.sd_tiny_vae, args.queue_size)
    if args.share or args.host not in ("127.0.0.1", "localhost", "::1"):
        print(exposure(args.host, args.port, args.share, public_endpoints(demo), args.queue_size, MAX_FILE_BYTES))
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, max_file_size=MAX_FILE_BYTES)


if __name__ == "__main__":
    main()
