"""Keeping a long-running app's footprint flat: freed memory given back to the system after each run, and Gradio's
cache of uploads and outputs emptied of old files.

Gradio's own cleaning (`gr.Blocks(delete_cache=(frequency, age))`) runs in a task that walks each component's set
of cached files while runs add to them; in Gradio 6.31 the first "Set changed size during iteration" ends that task
for good, and files a run returns to a gr.File never enter those sets: the cache grows without bound (`python -m
guidance.bench load` measured it). `CacheCleaner` deletes old files from the cache folder itself.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

M_ARENA_MAX = -8  # glibc's mallopt parameter: the most malloc arenas


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


LIBC = _libc()  # glibc, where the app runs on it (Linux); None elsewhere, where these helpers do nothing


def limit_malloc_arenas(arenas: int = 2) -> None:
    """At most `arenas` malloc arenas for threads started from now on: each of Gradio's worker threads would keep an
    arena of its own, holding the memory its runs freed. Call it before serving."""
    if LIBC is not None:
        LIBC.mallopt(M_ARENA_MAX, arenas)


def release_memory() -> None:
    """Collects Python's garbage and gives the heap's free pages back to the system (glibc's malloc_trim)."""
    gc.collect()
    if LIBC is not None:
        LIBC.malloc_trim(0)


class CacheCleaner:
    """Deletes the files in a Blocks' cache folder (uploads and outputs) once they are `age` seconds old, every
    `every` seconds, in a daemon thread; files Gradio keeps for good (examples, figures shown at start) stay.

    It walks the folder rather than Gradio's sets of each component's cached files: downloads that a run returns to
    a gr.File are cached without entering those sets, and Gradio's own cleaning never deletes them. The folder
    (GRADIO_TEMP_DIR) is taken to be this app's, as on a Space.

    Args:
        blocks: the app.
        every: seconds between two cleanings.
        age: how old a file must be to go, seconds.
    """

    def __init__(self, blocks, every: float, age: float):
        self.blocks, self.every, self.age = blocks, every, age
        self._stop = threading.Event()
        threading.Thread(target=self._run, name="cache-cleaner", daemon=True).start()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.clean()

    def clean(self) -> int:
        """One cleaning; returns how many files went."""
        keep = {path for block in list(self.blocks.blocks.values()) for path in getattr(block, "keep_in_cache", ())}
        now, removed = time.time(), 0
        for folder, _, names in os.walk(self.blocks.GRADIO_CACHE):
            for path in (os.path.join(folder, name) for name in names):
                if path in keep:
                    continue
                with suppress(FileNotFoundError):  # gone meanwhile
                    if now - os.lstat(path).st_ctime > self.age:
                        os.remove(path)
                        removed += 1
        for files in list(self.blocks.temp_file_sets):
            files.difference_update([path for path in list(files) if not os.path.exists(path)])  # a copy: runs add meanwhile
        return removed

    def stop(self) -> None:
        """Ends the thread after its current wait."""
        self._stop.set()


@contextmanager
def released() -> Iterator[None]:
    """The block, then `release_memory`, however it ends."""
    try:
        yield
    finally:
        release_memory()
