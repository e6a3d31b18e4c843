"""A sweep's folder: its finished cells, the images grid.png needs, and what decides every cell.

    config.json        what every cell shares (SweepPlan.config): a run with other inputs is refused
    cells.jsonl        one JSON line per finished cell, merged when a run ends
    cells-rank<R>.jsonl  the lines process R writes as it finishes cells (a stopped run leaves them; they count; a line
                       cut short by a kill is dropped when the next run starts, and its cell redone)
    images/            the final image of every cell on one of the grid's seeds, as PNG

The folder must be one that every process sees (on several nodes, a shared file system).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from PIL import Image

from guidance.errors import MethodConfigError
from guidance.sweep.plan import Cell

CONFIG, MERGED, IMAGES = "config.json", "cells.jsonl", "images"
OUTPUTS = ("sweep.json", "curves.png", "grid.png")


class CellStore:
    """The finished cells of the sweep in `folder`, read by every process and written line by line.

    Args:
        folder: the sweep's folder (`--out`), seen by every process.
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def rank_file(self, rank: int) -> Path:
        """The file process `rank` appends its finished cells to."""
        return self.folder / f"cells-rank{rank}.jsonl"

    def check(self, config: dict) -> None:
        """Raises MethodConfigError when the folder holds cells of other inputs, naming the first that differs."""
        path = self.folder / CONFIG
        if not path.exists():
            return
        stored = json.loads(path.read_text())
        for key in sorted(set(stored) | set(config)):
            if stored.get(key) != config.get(key):
                raise MethodConfigError(
                    f"{self.folder} holds a sweep with {key} {json.dumps(stored.get(key))}, not "
                    f"{json.dumps(config.get(key))}: add --force to start over, or pick another --out"
                )

    def start(self, config: dict, force: bool) -> None:
        """Creates the folder, writes the plan's config (through a temporary file, so that a kill leaves the old one
        or the new one) and drops the line a killed run left half-written at the end of a process's file.

        Args:
            config: what every cell shares (SweepPlan.config).
            force: first remove every cell, image and output an earlier run left there.
        """
        if force:
            for path in [*self.folder.glob("cells*.jsonl"), *(self.folder / name for name in (CONFIG, *OUTPUTS))]:
                path.unlink(missing_ok=True)
            shutil.rmtree(self.folder / IMAGES, ignore_errors=True)
        (self.folder / IMAGES).mkdir(parents=True, exist_ok=True)
        temporary = self.folder / f"{CONFIG}.tmp"
        temporary.write_text(json.dumps(config, indent=1) + "\n")
        temporary.replace(self.folder / CONFIG)
        for path in self.folder.glob("cells-rank*.jsonl"):
            cut_partial_line(path)

    def finished(self) -> dict[str, dict]:
        """Every finished cell's record by its key (Cell.key); a line cut short by a stop is skipped."""
        records = {}
        for path in [self.folder / MERGED, *sorted(self.folder.glob("cells-rank*.jsonl"))]:
            if not path.exists():
                continue
            for line in path.read_text().splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                records[cell_of(record).key] = record
        return records

    def append(self, rank: int, record: dict) -> None:
        """Adds one finished cell to a process's file, flushed at once.

        Args:
            rank: the process's rank.
            record: the cell's record (JSON-ready).
        """
        with self.rank_file(rank).open("a") as file:
            file.write(json.dumps(record) + "\n")
            file.flush()

    def merge(self, records: list[dict]) -> None:
        """Writes `records` as cells.jsonl (through a temporary file) and removes the processes' files."""
        temporary = self.folder / f"{MERGED}.tmp"
        temporary.write_text("".join(json.dumps(record) + "\n" for record in records))
        temporary.replace(self.folder / MERGED)
        for path in self.folder.glob("cells-rank*.jsonl"):
            path.unlink()

    def image_path(self, cell: Cell) -> Path:
        """Where the cell's image is kept: images/<method>_<value>_<seed>.png, unsafe characters as "-"."""
        name = "_".join(re.sub(r"[^A-Za-z0-9.+-]", "-", str(part)) for part in (cell.method, cell.value, cell.seed))
        return self.folder / IMAGES / f"{name}.png"

    def save_image(self, cell: Cell, image: Image.Image) -> None:
        """Keeps the cell's final image for grid.png."""
        image.save(self.image_path(cell))

    def image(self, cell: Cell) -> Image.Image | None:
        """The cell's image, None where it was not kept."""
        path = self.image_path(cell)
        return Image.open(path).convert("RGB") if path.exists() else None


def cut_partial_line(path: Path) -> None:
    """Truncates a file of JSON lines after its last newline: a line a kill cut short would otherwise run into the
    next line appended."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as file:
            file.truncate(data.rfind(b"\n") + 1)


def cell_of(record: dict) -> Cell:
    """The cell a record is of."""
    return Cell(record["method"], record["value"], record["seed"])
