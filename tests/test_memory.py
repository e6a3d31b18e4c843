"""Peak memory on the CPU (guidance.recording.PeakMemory)."""

from __future__ import annotations

import pytest


PEAK_MEMORY_CHECK = """
import torch
from guidance.recording import PeakMemory

def touch(megabytes):
    block = torch.ones(megabytes * 2**18)  # float32: 4 bytes each, every page written
    del block

touch(600)  # a peak before the measured blocks, which must not count in them
with PeakMemory(torch.device("cpu")) as idle:
    pass
with PeakMemory(torch.device("cpu")) as busy:
    touch(300)
print(idle.peak_mb, busy.peak_mb)
"""


@pytest.mark.slow
def test_peak_memory_on_the_cpu_counts_a_block_freed_inside_it_and_nothing_from_before_it():
    """In a fresh process: the test session's other threads (app servers) would move a process-wide peak."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", PEAK_MEMORY_CHECK], cwd=root, capture_output=True, text=True, check=True)
    idle, busy = map(float, done.stdout.split())
    assert idle < 50
    assert 280 < busy < 400
