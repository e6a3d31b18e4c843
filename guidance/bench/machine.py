"""What machine a benchmark ran on: every JSON file and every plot carries this description."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name from /proc/cpuinfo (the platform's processor string elsewhere)."""
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def describe_machine() -> dict:
    """CPU model, core count, torch threads, GPU name (None without CUDA), versions, the 1-minute load average
    (other work on the machine slows every timing) and OMP_WAIT_POLICY (PASSIVE keeps a shared CPU usable)."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": gpu,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
    }


def machine_label(machine: dict) -> str:
    """One line for captions, e.g. 'Intel Xeon ... - 2 cores, 2 torch threads - no GPU'."""
    gpu = machine.get("gpu") or "no GPU"
    load = f", load {machine['load_1m']:g} at start" if machine.get("load_1m") is not None else ""
    load += f", {machine['load_1m_end']:g} at end" if machine.get("load_1m_end") is not None else ""
    return f"{machine['cpu']} - {machine['cores']} cores, {machine['torch_threads']} torch threads{load} - {gpu}"
