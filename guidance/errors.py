"""Typed errors: every failure a user can cause has its own class and a readable message."""


class GuidanceError(Exception):
    """Base of every error this library raises on purpose."""


class WeightsUnavailableError(GuidanceError):
    """Model weights could not be loaded (offline, not cached, wrong id or folder).

    Args:
        what: the weights, as a person would name them ("Stable Diffusion 1.5 weights").
        where: where they were looked for (hub id and cache, or folder).
        how: what to do to get them.
    """

    def __init__(self, what: str, where: str, how: str):
        self.what, self.where, self.how = what, where, how
        super().__init__(f"{what} are not available (looked in: {where}). {how}")


class WeightsDamagedError(WeightsUnavailableError):
    """A weight file is there but cannot be right: cut short, or not a weight file any more.

    Args:
        what: the weights, as a person would name them, with the file.
        where: the file's path.
        how: what is wrong with it, and what to do.
    """


class ImageInputError(GuidanceError, ValueError):
    """An input image is unreadable, too small, too large or otherwise unusable."""


class NoFaceFoundError(ImageInputError):
    """The face detector found no face in an image that must contain one."""


class MethodConfigError(GuidanceError, ValueError):
    """A method, scheduler or option combination that cannot work."""


class SamplingNaNError(GuidanceError, FloatingPointError):
    """Sampling produced NaN or infinite values (usually a guidance scale far too large)."""


class DeviceOutOfMemoryError(GuidanceError, MemoryError):
    """The device ran out of memory; fewer samples or steps, or a smaller size, may fit."""


class UnsupportedModelError(GuidanceError, ValueError):
    """A diffusers pipeline of a family the guided pipelines do not cover (guidance.pipelines.FAMILIES)."""


class EnergyShapeError(GuidanceError, ValueError):
    """An energy returned something other than one finite value per image, shape (B,)."""
