"""The embedded world's build pipeline, on the pictures of its procedural renderer (guidance.worlds.embedded.renderer):
the stages that train the world's models and write them under assets/world (stages.py and the
modules it names; train.py is the command line), their quality figures (evaluate.py), the realism score's
reference (realism.py) and the app's example inputs (examples.py).

Nothing at runtime imports this package, the benchmarks included (tests/test_layout.py checks it):
guidance.worlds.embedded loads the files it writes.

    python -m guidance.worlds.embedded.build.train all        # every stage
    python -m guidance.worlds.embedded.build.evaluate         # quality figures of the networks
"""
