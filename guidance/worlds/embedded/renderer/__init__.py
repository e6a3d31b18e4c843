"""The embedded world's procedural renderer: the pictures of cartoon faces its networks were trained on (scene.py says
what a picture shows, render.py draws it, dataset.py samples people and pictures from integer seeds), and the style
textures of its patterns (textures.py). The benchmarks draw held-out pictures from it; nothing here trains
(guidance.worlds.embedded.build does, with these pictures).
"""
