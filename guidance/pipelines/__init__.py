"""Training-free guidance in stock diffusers pipelines: SD 1.x/2.x and SDXL (each + ControlNet), and SD 3.

    pipe = GuidedStableDiffusionXLPipeline.from_pipe(stock_pipe)  # the same modules, no copy
    image = pipe("a portrait", guidance="figd+dsg", energy=my_energy, scale=0.3, dsg_rate=0.1).images[0]

`load_pipeline` loads the guided pipeline of a folder's or hub id's family (its model_index.json).
"""

from guidance.pipelines.denoisers import FAMILIES, PipelineBackbone
from guidance.pipelines.guided import (
    GuidedStableDiffusion3Pipeline,
    GuidedStableDiffusionControlNetPipeline,
    GuidedStableDiffusionPipeline,
    GuidedStableDiffusionXLControlNetPipeline,
    GuidedStableDiffusionXLPipeline,
)

__all__ = [
    "FAMILIES",
    "GuidedStableDiffusion3Pipeline",
    "GuidedStableDiffusionControlNetPipeline",
    "GuidedStableDiffusionPipeline",
    "GuidedStableDiffusionXLControlNetPipeline",
    "GuidedStableDiffusionXLPipeline",
    "PipelineBackbone",
]
