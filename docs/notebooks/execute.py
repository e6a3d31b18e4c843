"""Execute the workshop notebooks in place, keeping their outputs, so that they read without a kernel (`make notebooks`).

    python docs/notebooks/execute.py [NOTEBOOK.ipynb ...]      # default: every notebook in this folder

Each notebook runs from the top in a fresh kernel, in its full configuration, on the embedded world and the CPU.
What is written back keeps the outputs (pictures, tables, plots) and leaves out what changes from run to run without
the notebook changing (cell timings, object addresses in the plain-text fallback of pictures) and the JPEG copy that
IPython adds beside a PIL image's PNG. The printed timings of the lessons still change from run to run.
A notebook that fails is left as it was, and the command exits with an error.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
TIMEOUT_S = 1800  # per cell
ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")  # e.g. "<PIL.Image.Image image mode=RGB size=96x96 at 0x7F...>"


def execute(path: Path) -> None:
    """Run one notebook from the top and write it back with its outputs.

    Args:
        path: the notebook; it runs with its own folder as the working directory.
    """
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=TIMEOUT_S, kernel_name="python3", record_timing=False,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/png" in data:
                data.pop("image/jpeg", None)
            if "text/plain" in data:
                data["text/plain"] = ADDRESS.sub("", data["text/plain"])
    nbformat.write(notebook, path)


def main(argv: list[str]) -> None:
    os.environ.pop("GUIDANCE_NOTEBOOK_QUICK", None)  # the full lessons, not the test suite's short ones
    os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the CPU, wherever this runs
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    paths = [Path(p).resolve() for p in argv] or sorted(HERE.glob("*.ipynb"))
    for path in paths:
        print(f"executing {path.name}", flush=True)
        execute(path)


if __name__ == "__main__":
    main(sys.argv[1:])
