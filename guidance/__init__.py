"""Training-free guided diffusion: FreeDoM, FIGD, DSG, GFCG and the EVODiff scheduler on diffusers."""

from guidance.backbone import Backbone, Control, UNetBackbone
from guidance.errors import (
    DeviceOutOfMemoryError,
    GuidanceError,
    ImageInputError,
    MethodConfigError,
    NoFaceFoundError,
    SamplingNaNError,
    WeightsUnavailableError,
)
from guidance.methods import METHODS, Settings, build_method
from guidance.sampling import SamplingResult, StepRecord, sample
from guidance.schedulers import SCHEDULERS, EVODiffScheduler

__all__ = [
    "METHODS",
    "SCHEDULERS",
    "Backbone",
    "Control",
    "DeviceOutOfMemoryError",
    "EVODiffScheduler",
    "GuidanceError",
    "ImageInputError",
    "MethodConfigError",
    "NoFaceFoundError",
    "SamplingNaNError",
    "SamplingResult",
    "Settings",
    "StepRecord",
    "UNetBackbone",
    "WeightsUnavailableError",
    "build_method",
    "sample",
]
