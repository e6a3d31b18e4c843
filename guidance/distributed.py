"""Work shared across the processes of `accelerate launch` (or torchrun): each takes its share, all get every result.

One process (plain `python`) is the same code with a share of everything. The process group is accelerate's
`PartialState`: NCCL with one GPU per process where CUDA is there, gloo on CPUs (`accelerate launch --cpu`, or no
GPU). A result is the same whichever process computes it, so gathered results equal one process's, bit for bit on a
CPU with the same torch threads per process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import TypeVar

import torch
from accelerate import PartialState
from accelerate.utils import gather_object

Item, Result = TypeVar("Item"), TypeVar("Result")


def state() -> PartialState:
    """The process group (set up on the first call): the CPU where accelerate was told so or CUDA is missing."""
    cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes") or not torch.cuda.is_available()
    return PartialState(cpu=cpu)


def processes() -> int:
    """How many processes share the work."""
    return state().num_processes


def is_main() -> bool:
    """Whether this is the process that writes files and prints (rank 0)."""
    return state().is_main_process


def wait() -> None:
    """Waits until every process gets here."""
    state().wait_for_everyone()


def share(items: Iterable[Item]) -> list[Item]:
    """This process's contiguous share of `items` (all of them in one process).

    Args:
        items: the work, in the same order on every process.

    Returns:
        The slice accelerate's `split_between_processes` gives this process; the shares concatenated in rank order
        are `items`.
    """
    with state().split_between_processes(list(items)) as mine:
        return list(mine)


def gather(mine: list[Result]) -> list[Result]:
    """Every process's list, concatenated in rank order, on every process (accelerate's `gather_object`)."""
    return list(gather_object(mine)) if processes() > 1 else list(mine)


def shard_map(function: Callable[[Item], Result], items: Iterable[Item]) -> list[Result]:
    """`function` over `items`, each process computing its share; every process gets all results in item order.

    Args:
        function: called once per item; it must not depend on what the process computed before.
        items: the work, in the same order on every process (every process must call this alike).

    Returns:
        `[function(item) for item in items]`, gathered from the processes that computed them.
    """
    return gather([function(item) for item in share(items)])


def finish() -> None:
    """Ends the process group, where there is one (NCCL asks for it before the process exits)."""
    if processes() > 1:
        state().destroy_process_group()
