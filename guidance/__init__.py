"""Training-free guided diffusion: FreeDoM, FIGD, DSG, GFCG and the EVODiff scheduler on diffusers."""
from .backbone import Backbone, Control, UNetBackbone
from .errors import (
    DeviceOutOfMemoryError,
    GuidanceError,
    ImageInputError,
    MethodConfigError,
    NoFaceFoundError,
    SamplingNaNError,
    WeightsUnavailableError,
)
from .evodiff import EVODiffScheduler
from .methods import METHODS, Settings, build_method
from .sampling import SamplingResult, StepRecord, sample
from .scheduler_steps import SCHEDULERS

__all__ = [
    "METHODS", "SCHEDULERS", "Backbone", "Control", "DeviceOutOfMemoryError", "EVODiffScheduler", "GuidanceError",
    "ImageInputError", "MethodConfigError", "NoFaceFoundError", "SamplingNaNError", "SamplingResult", "Settings",
    "StepRecord", "UNetBackbone", "WeightsUnavailableError", "build_method", "sample",
]  # fmt: skip
