"""Benchmarks of the guidance methods: `python -m guidance.bench SUITE ...` (see guidance/bench/cli.py).

Suites (guidance/bench/suites): world, figd, dsg, gfcg, solvers, gpu. Each writes a JSON document with the
machine it ran on; `python -m guidance.bench report` turns those into docs/benchmarks.md with plots.
"""

from guidance.bench.metrics import frechet_distance, roc_auc

__all__ = ["frechet_distance", "roc_auc"]
