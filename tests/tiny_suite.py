"""A benchmark suite on the tiny plans of tests/test_bench.py, as a script that torchrun can launch:

    python -m torch.distributed.run --nproc_per_node 2 tests/tiny_suite.py solvers --quick --world TINY --json OUT

The solvers plan samples in batches of 4, so that two processes share its batches.
"""

from __future__ import annotations

import sys
from dataclasses import replace

from test_bench import TINY_PLANS

from guidance.bench import cli
from guidance.bench.suites import solvers

PLANS = TINY_PLANS | {solvers: replace(TINY_PLANS[solvers], batch=4)}


def use_tiny_plans() -> None:
    """Every suite's quick plan becomes its tiny one."""
    for module, plan in PLANS.items():
        module.PLANS["quick"] = plan


if __name__ == "__main__":
    use_tiny_plans()
    sys.exit(cli.main(sys.argv[1:]))
