"""Tests for the shared time grids (guidance/schedulers/grids.py), EVODiff's official options on them, the Gaussian
mixture's exact denoiser (guidance/worlds/mixture.py) and the solvers suite's grid comparison, CPU only, seconds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler

from guidance.worlds.mixture import RING_STD, WORLD_SCHEDULE, GaussianMixture, MixtureBackbone, solver_paths
from guidance.bench.solver_grids import GridPlan, compare, end_level, exact_solution
from guidance.schedulers.grids import SOLVERS, ode_solve
from guidance.schedulers.grids import SHARED, grid_scheduler, levels

ALPHAS = MixtureBackbone().alphas_cumprod


@pytest.mark.parametrize("grid", SHARED)
@pytest.mark.parametrize("steps", [1, 5, 10, 37])
def test_levels_run_from_the_top_label_to_label_0(grid, steps):
    labels = levels(grid, steps, ALPHAS)
    assert len(labels) == steps + 1 and labels[0] == 999 and labels[-1] == 0
    assert (np.diff(labels) < 0).all()


def test_grids_place_their_levels_as_named():
    a = ALPHAS.double().numpy()
    lambdas = 0.5 * (np.log(a) - np.log1p(-a))
    assert np.allclose(levels("time", 10, ALPHAS), np.linspace(999, 0, 11).round())
    spacing = np.diff(lambdas[levels("logsnr", 10, ALPHAS)])  # integer labels: near label 0 one label spans 0.35 in lambda
    assert np.allclose(spacing[:8], (lambdas[0] - lambdas[999]) / 10, rtol=0.05) and np.allclose(spacing, spacing[0], rtol=0.2)
    quadratic = levels("quadratic", 10, ALPHAS)
    assert np.allclose(np.diff(np.sqrt((quadratic + 1) / 1000)), np.diff(np.sqrt((quadratic + 1) / 1000))[0], atol=3e-3)
    kappa = np.exp(-lambdas[levels("edm", 10, ALPHAS)])
    assert np.allclose(np.diff(kappa ** (1 / 7))[:8], np.diff(kappa ** (1 / 7))[0], rtol=0.05)


@pytest.mark.parametrize("grid", SHARED)
@pytest.mark.parametrize("solver", SOLVERS)
def test_every_solver_calls_the_grid_and_ends_at_label_0(grid, solver):
    scheduler = grid_scheduler(solver, WORLD_SCHEDULE, grid, 8)
    assert scheduler.timesteps.tolist() == levels(grid, 8, ALPHAS)[:-1].tolist()
    assert end_level(scheduler) == "label 0"


@pytest.mark.parametrize("options", [{"final_denoise": True}, {"lower_order_final": False}])
def test_evodiff_options_call_every_level_of_one_step_fewer(options):
    scheduler = grid_scheduler("evodiff", WORLD_SCHEDULE, "logsnr", 8, **options)
    assert scheduler.timesteps.tolist() == levels("logsnr", 7, ALPHAS).tolist()
    assert end_level(scheduler) == ("clean" if options.get("final_denoise") else "label 0")


def test_the_grids_ddim_is_diffusers_ddim_on_its_uniform_grid():
    """On DDIMScheduler's own labels (leading spacing, offset 1, ending at a_0), the grid's DDIM is the same solve."""
    backbone, noise = MixtureBackbone(), torch.randn(16, 2, generator=torch.Generator().manual_seed(0))
    ddim = DDIMScheduler.from_config(WORLD_SCHEDULE)
    ddim.set_timesteps(10)
    on_grid = grid_scheduler("ddim", WORLD_SCHEDULE, "time", 10)
    on_grid.set_timesteps(timesteps=ddim.timesteps.tolist())
    embeddings = backbone.embed([None] * 16)
    expected = ode_solve(backbone, ddim, noise, embeddings)
    assert torch.allclose(ode_solve(backbone, on_grid, noise, embeddings), expected, atol=1e-4)


def test_the_mixture_denoiser_is_the_score_of_its_density():
    """eps_hat = -sqrt(1 - a) grad log p_t, checked by central differences of log p_t in float64."""
    mixture = GaussianMixture(
        torch.tensor([[3.0, 0.0], [-1.0, 2.0], [0.5, -2.5]]), torch.tensor([0.3, 0.6, 0.2]), torch.tensor([1.0, 2.0, 0.5])
    )
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 2
    step = 1e-5
    for a in (0.999, 0.7, 0.2, 0.005):
        score = torch.stack(
            [
                (mixture.log_density(x + step * e, a) - mixture.log_density(x - step * e, a)) / (2 * step)
                for e in torch.eye(2, dtype=torch.float64)
            ],
            dim=1,
        )
        assert torch.allclose(mixture.eps_hat(x, a), -((1 - a) ** 0.5) * score, atol=1e-6)


@pytest.mark.slow
def test_the_mixtures_ends_are_consistent():
    """At label 0 the exact clean estimate is the denoiser's; the exact solution's own error shrinks with refine."""
    backbone = MixtureBackbone()
    noise = backbone.initial_noise(8, torch.Generator().manual_seed(1))
    embeddings = backbone.embed([None] * 8)
    fine = exact_solution(backbone, noise, embeddings, refine=8)
    coarse = exact_solution(backbone, noise, embeddings, refine=2)
    coarser = exact_solution(backbone, noise, embeddings, refine=1)
    assert (coarse["label 0"] - fine["label 0"]).norm() < 0.6 * (coarser["label 0"] - fine["label 0"]).norm()
    assert torch.allclose(fine["clean"], backbone.mixture.x0_hat(fine["label 0"], float(backbone.alphas_cumprod.double()[0])))


@pytest.mark.slow
def test_second_order_solvers_converge_on_a_shared_grid():
    """On the mixture, DPM-Solver++ and UniPC lose most of their error from NFE 5 to 20 on every shared grid, and EVODiff
    with its full last step does on the quadratic grid, where its last-step rule keeps a floor."""
    rows, errors, check = compare(
        MixtureBackbone(), [None] * 16, ("logsnr", "quadratic"), GridPlan(nfes=(5, 20), samples=16, refine=2)
    )
    mean = {key: float(np.mean(value)) for key, value in errors.items()}
    for grid in ("logsnr", "quadratic"):
        for solver in ("dpmsolver++", "unipc"):
            assert mean[grid, solver, 20] < 0.25 * mean[grid, solver, 5]
    assert mean["quadratic", "evodiff, full last step", 20] < 0.2 * mean["quadratic", "evodiff", 20]
    assert max(check.values()) < 0.01
    assert {r["grid"] for r in rows} == {"logsnr", "quadratic"} and all(r["error_n"] == 16 for r in rows)


def test_sample_runs_every_solver_on_the_shared_grid(tiny_sd):
    """sample(grid=...) gives every solver the grid's labels, and records the grid in the options."""
    from guidance import build_method, sample

    runs = {
        name: sample(tiny_sd, build_method("plain"), ["a cat"], steps=5, scheduler=name, grid="logsnr")
        for name in ("ddim", "dpmsolver++", "unipc", "evodiff")
    }
    labels = {name: [record.timestep for record in run.steps] for name, run in runs.items()}
    assert len({tuple(v) for v in labels.values()}) == 1 and labels["ddim"][0] == 999
    assert all(run.options["grid"] == "logsnr" for run in runs.values())
    own = sample(tiny_sd, build_method("plain"), ["a cat"], steps=5, scheduler="dpmsolver++")
    assert [record.timestep for record in own.steps] != labels["ddim"] and "grid" not in own.options


def test_the_teaching_view_draws_each_solver_from_the_same_noise_to_the_modes():
    """The Solvers tab's paths: the solvers that run on every grid (others skipped), one path per noise, all from the
    same noise, each ending near a mode of the ring; another grid gives other points."""
    paths = solver_paths([*SOLVERS, "euler"], "logsnr", 10, samples=4)
    assert list(paths) == list(SOLVERS)
    means = MixtureBackbone().mixture.means
    for points in paths.values():
        assert points.shape == (11, 4, 2) and torch.equal(points[0], paths["ddim"][0])
        assert torch.cdist(points[-1].double(), means).min(dim=1).values.max() < 3 * RING_STD
    other = solver_paths(["dpmsolver++"], "time", 10, samples=4)["dpmsolver++"]
    assert not torch.allclose(other[1:], paths["dpmsolver++"][1:])


def test_the_solvers_tab_draws_the_teaching_view():
    """The app's handler: a figure for the selected solvers, and a readable refusal when none runs on every grid."""
    import gradio as gr

    from guidance.playground.app_handlers import solver_paths_view

    figure = solver_paths_view(["ddim", "evodiff"], "edm", 6)
    assert [line.get_label() for line in figure.axes[0].get_lines() if not line.get_label().startswith("_")] == [
        "ddim",
        "evodiff",
    ]
    assert "EDM" in figure.axes[0].get_title() and "NFE 6" in figure.axes[0].get_title()
    with pytest.raises(gr.Error, match="select one of"):
        solver_paths_view(["euler"], "edm", 6)
    with pytest.raises(gr.Error, match="NFE must lie in"):
        solver_paths_view(["ddim"], "edm", 0)
