"""Conditions: one energy per file, each a `guidance.energy.Energy` (decoded pixels in [-1, 1] in, one value per
image out, small when the condition is met), and safe image reading (`images.py`).

Adding a condition takes three files, in this order:
1. its energy, here (`face.py`, `style.py`, `control.py` and `classes.py` are the shipped ones);
2. its builder, in guidance/playground/tasks/energies.py: from a world and a request, the energy (and the
   ControlNet input, and pictures of what was used);
3. its tab, a TaskSpec in guidance/playground/tasks/catalog.py naming that builder.
An energy used only from Python, or in a diffusers pipeline (`guidance.pipelines`), needs step 1 alone.
"""
