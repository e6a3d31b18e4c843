"""The benchmark suites.

Each module has `run(world, opts) -> SuiteOutput`, `PLANS` (quick and full, "-sd" variants for Stable
Diffusion backbones) and `NEEDS`, the networks besides the backbone that it uses on sd15-random (which
builds only those; quality metrics, and so the evaluator, are computed on the embedded world only).

`run(world, opts)`:

    Args:
        world: the world loaded for the suite (guidance.bench.loading.load).
        opts: the command line's options; `opts.plan(PLANS)` is the plan it runs.

    Returns:
        Its rows, goals, configuration, notes and pictures (guidance.bench.common.SuiteOutput).
"""

from guidance.bench.suites import dsg, families, figd, gfcg, gpu, load, memory, presets, preview, profile, solvers, world

SUITES = {
    "world": world,
    "figd": figd,
    "dsg": dsg,
    "gfcg": gfcg,
    "solvers": solvers,
    "gpu": gpu,
    "profile": profile,
    "preview": preview,
    "presets": presets,
    "memory": memory,
    "load": load,
    "families": families,
}
