"""The embedded world's build pipeline: the procedural face renderer, its dataset, and the stages that train the
world's models and write them under assets/world.

    python -m guidance.worlds.embedded.build.train all        # every stage (train.py)
    python -m guidance.worlds.embedded.build.evaluate         # quality figures of the networks (evaluate.py)
"""
